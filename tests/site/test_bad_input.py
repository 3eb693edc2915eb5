"""Bad input: one clear line naming file and line, the rest still builds, the last good
output stays, a non-zero exit with a count, and no traceback (run as a real process)."""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_o2m
from support.system import locked, o2m_unprivileged


def build(site, *args: str):
    return run_o2m("build", *args, cwd=site.root)


def assert_clean_failure(result, where: str, words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = next(l for l in result.stderr.splitlines() if where in l)
    assert line.startswith(f"o2m: error: {where}") and words in line, result.stderr
    assert "hint:" in result.stderr
    assert "in the posts above; the rest of the site was built" in result.stderr


def test_broken_yaml_keeps_last_good_page_and_builds_the_rest(site):
    """Broken YAML front matter is one line naming the file; the post's last good page
    stays, the other posts build, and the problem is reported again on every build until the
    file is fixed."""
    site.post("2026/good.md", title="Good")
    site.post("2026/trip.md", title="Trip v1")
    assert build(site).returncode == 0
    site.write("content/2026/trip.md", "---\ntitle: Trip v2\ndate: 2026-03-01\ntags: [a, b\n---\n")
    site.post("2026/new.md", title="Brand new")
    result = build(site)
    assert_clean_failure(result, "content/2026/trip.md:", "not valid YAML")
    assert "1 problem in the posts above" in result.stderr
    assert "Trip v1" in site.read("2026/trip/index.html")  # last good output stays
    assert "Brand new" in site.read("2026/new/index.html")  # the others still build
    assert "Trip v1" in site.read("index.html")
    # still failing on the next run (nothing forgotten), fixed once the file is
    assert build(site).returncode == 1
    site.post("2026/trip.md", title="Trip v3")
    assert build(site).returncode == 0
    assert "Trip v3" in site.read("2026/trip/index.html")


def test_invalid_date(site):
    """An impossible date is reported at its line; the other posts still build."""
    site.post("2026/ok.md")
    site.write("content/2026/when.md", "---\ntitle: When\ndate: 2026-02-30\n---\nx\n")
    result = build(site)
    assert_clean_failure(result, "content/2026/when.md:3:", "date")
    assert (site.build_dir / "2026/ok/index.html").exists()  # the slug is the file name's
    assert not (site.build_dir / "2026/when").exists()


def test_unknown_audience(site):
    """The name is reported; the post still goes to the known rest of its audience
    (here the public), and a post with no known name at all goes nowhere."""
    site.post("2026/ok.md")
    site.write("content/2026/aud.md", "---\ntitle: X\ndate: 2026-02-03\naudience: [public, bobb]\n---\n")
    site.write("content/2026/nobody.md", "---\ntitle: Y\ndate: 2026-02-04\naudience: bobb\n---\n")
    result = build(site)
    assert_clean_failure(result, "content/2026/aud.md:4:", "unknown audience 'bobb'")
    assert (site.build_dir / "2026/aud/index.html").exists()
    assert not (site.build_dir / "2026/nobody").exists()
    assert "(did you mean" not in result.stderr  # nothing near 'bobb'
    assert "`o2m group list`" in result.stderr


def test_an_audience_name_close_to_a_group_is_told_which(site):
    """`audience: famly`, with a group `family`: the line names the group it is close to."""
    site.write("content/2026/typo.md", "---\ntitle: X\ndate: 2026-02-03\naudience: famly\n---\n")
    result = build(site)
    assert_clean_failure(result, "content/2026/typo.md:4:",
                         "unknown audience 'famly' (did you mean 'family'?)")


def test_duplicate_permalink(site):
    """Two posts claiming one permalink: the second is refused at its slug line, naming the
    first, which keeps the page."""
    site.post("2026/a.md", title="First owner", slug="same")
    site.post("2026/b.md", title="Second", slug="same")
    result = build(site)
    assert_clean_failure(result, "content/2026/b.md:4:", "already used by content/2026/a.md")
    assert "First owner" in site.read("2026/same/index.html")


def test_a_new_post_never_takes_a_published_permalink(site):
    """Newcomer trial: content/2025/public-post.md dated 2026 added beside the published
    content/2026/public-post.md: the newcomer is refused at its date line, with a hint at
    `slug:`, though its path sorts first; the published post keeps its page, its place on
    the home page and its tags, on this build and the next. Given a slug, it builds."""
    site.post("2026/public-post.md", title="The original", date="2026-02-01",
              tags="[walks]")
    assert build(site).returncode == 0
    site.post("2025/public-post.md", title="The newcomer", date="2026-03-01")
    for _ in range(2):
        result = build(site)
        assert_clean_failure(result, "content/2025/public-post.md:3:",
                             "permalink /2026/public-post/ is already used by "
                             "content/2026/public-post.md")
        assert "`slug:`" in result.stderr
        assert "The original" in site.read("2026/public-post/index.html")
        assert "The original" in site.read("index.html")
        assert "The newcomer" not in site.read("index.html")
        assert "The original" in site.read("tags/walks/index.html")
    site.post("2025/public-post.md", title="The newcomer", date="2026-03-01", slug="other")
    assert build(site).returncode == 0
    assert "The newcomer" in site.read("2026/other/index.html")
    assert "The original" in site.read("2026/public-post/index.html")


def test_template_runtime_error_names_template_and_line(site):
    """A template that fails while rendering is one line naming the template and its line;
    the last good page stays, and pages of other templates still build."""
    site.post("2026/a.md", title="A")
    assert build(site).returncode == 0
    site.write("site_templates/post.html",
               '{% extends "base.html" %}\n{% block content %}\n{{ post.nosuchfield.x }}\n'
               '{% endblock %}\n')
    site.post("2026/a.md", title="A changed")
    result = build(site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "o2m: error: site_templates/post.html:3: template error" in result.stderr
    assert "A" in site.read("2026/a/index.html")  # last good page kept
    assert "A changed" in site.read("index.html")  # pages of other templates still built


def test_template_runtime_error_on_a_page_never_built_fails_that_page_alone(site):
    """A template that breaks on a new post's first page: that page is missing, the
    rest is built, the error is one line naming the template, and the next build, with
    the template mended, writes the page."""
    site.write("site_templates/post.html",
               '{% extends "base.html" %}\n{% block content %}\n{{ post.nosuchfield.x }}\n'
               '{% endblock %}\n')
    site.post("2026/a.md", title="A")
    result = build(site)
    assert_clean_failure(result, "site_templates/post.html:3:", "template error")
    assert not (site.build_dir / "2026/a/index.html").exists()
    assert "A" in site.read("index.html")
    (site.root / "site_templates/post.html").unlink()
    assert build(site).returncode == 0
    assert "A" in site.read("2026/a/index.html")


def test_template_syntax_error(site):
    """A template with a syntax error is one line naming the template, no traceback."""
    site.post("2026/a.md", title="A")
    site.write("site_templates/index.html", "{% extends 'base.html' %}\n{% block content %}\n")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("o2m: error: site_templates/index.html:")


@pytest.mark.parametrize("config, words", [
    ('[site]\nname = "x"\nurl = "ftp://x"\n', "site.url must be an absolute https:// URL"),
    ('[site]\nname = "x"\nurl = "https://x/"\ntimezone = "Mars/Olympus"\n', "not a known time zone"),
    ('[site\nname = "x"\n', "not valid TOML"),
    ('title = "x"\n', "no [site] table"),
    ('[site]\nname = "x"\nurl = "https://x/"\nposts_per_page = 0\n', "posts_per_page"),
])
def test_bad_config(site, config, words):
    """A broken or invalid o2m.toml is one line naming it and what is wrong, no traceback."""
    (site.root / "o2m.toml").write_text(config)
    result = build(site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("o2m: error: o2m.toml") and words in result.stderr


@pytest.mark.parametrize("url, words", [
    ("http://ada.example/", "site.url must be an absolute https:// URL, not 'http://ada.example/'"),
    ("https://ada example/", "site.url holds a character that is not allowed"),
    ("https://ada@ada.example/", "site.url must not hold a user name or password"),
    ("https://ada.example:port/", "site.url has a malformed host or port"),
])
def test_a_url_the_card_refuses_is_o2m_tomls_error_at_its_line(site, url, words):
    """docs/CONFIG.md's example (newcomer trial): a url no card can carry is o2m.toml's
    error at the url's line, with a hint, before anything is built or signed (not the
    card's "card field 'url'" at build time, with no file or line)."""
    (site.root / "o2m.toml").write_text(
        f'# a comment\n[site]\nname = "x"\nurl = "{url}"\n')
    result = build(site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, hint = result.stderr.splitlines()[:2]
    assert first.startswith("o2m: error: o2m.toml:4: " + words), result.stderr
    assert hint.lstrip().startswith("hint:")
    assert not site.build_dir.exists()


def test_an_unknown_setting_is_a_warning_with_a_guess(site):
    """`languag = "en"` (a typo) in o2m.toml: a warning naming the file, the line and
    the setting meant, as front matter's unknown fields get; the build goes on."""
    config = site.root / "o2m.toml"
    config.write_text(config.read_text().replace("posts_per_page = 3\n",
                                                 'posts_per_page = 3\nlanguag = "de"\n'
                                                 "[serv]\nport = 1\n"
                                                 '[publish]\ntargte = "www"\n'))
    site.post("2026/a.md", title="A")
    result = build(site)
    assert result.returncode == 0, result.stderr
    assert ("o2m: warning: o2m.toml:8: unknown setting 'languag' in [site] (did you mean "
            "'language'?), ignored") in result.stderr
    assert ("o2m: warning: o2m.toml:9: unknown table 'serv' (did you mean 'serve'?), "
            "ignored") in result.stderr
    assert ("o2m: warning: o2m.toml:12: unknown setting 'targte' in [publish] (did you "
            "mean 'target'?), ignored") in result.stderr


def test_a_default_audience_that_means_no_one_is_one_error_at_its_line(site):
    """default_audience = "everyone" (newcomer trial): one error at o2m.toml's line,
    with a guess, not one at `:1` of every post that names no audience; nothing is
    built. A friend's name (from keys/, which o2m.toml does not list) is one."""
    for i in range(3):
        site.post(f"2026/p{i}.md", title=f"P{i}")
    config = site.root / "o2m.toml"
    config.write_text(config.read_text().replace('default_audience = "public"',
                                                 'default_audience = "familly"'))
    result = build(site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ["o2m: error: o2m.toml:6: site.default_audience names 'familly', which is no "
            "group or friend (did you mean 'family'?)"] == [
        line for line in result.stderr.splitlines() if "error:" in line]
    assert not site.build_dir.exists()


def test_not_a_site(tmp_path):
    """Building outside a site says so and points to `o2m init`."""
    result = run_o2m("build", cwd=tmp_path)
    assert result.returncode == 1
    assert "not an o2m site" in result.stderr and "o2m init" in result.stderr


def test_debug_shows_the_traceback(site):
    """--debug shows the traceback the one-line error hides."""
    (site.root / "o2m.toml").write_text("[site\n")
    result = run_o2m("--debug", "build", cwd=site.root)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_disk_full_publishes_nothing_partial(site):
    """THREATS.md 48: ENOSPC mid-build: one clear line, every file whole, and the next
    build finishes the job."""
    for i in range(5):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-0{i + 1}")
    assert build(site).returncode == 0
    good = site.outputs()
    for i in range(5):
        site.post(f"2026/p{i}.md", title=f"Q{i}", date=f"2026-01-0{i + 1}")
    result = run_o2m("build", cwd=site.root, env={"O2M_FAULT": "enospc:4"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr
    for name, data in site.outputs().items():  # each file is the old or a whole new one
        assert not name.split("/")[-1].startswith(".~o2m-")
        assert data == good.get(name) or data.rstrip().endswith((b"</html>", b"}", b"</feed>",
                                                                  b"</urlset>"))
    assert build(site).returncode == 0
    assert "Q4" in site.read("index.html")


def test_symlink_loop_in_content_is_skipped_with_a_warning(site):
    """A symlink loop in content/ is skipped with a warning; the build succeeds."""
    site.post("2026/a.md", title="A")
    os.symlink(".", site.root / "content/loop")
    result = build(site)
    assert result.returncode == 0, result.stderr
    assert "symlink loop" in result.stderr and "Traceback" not in result.stderr


def test_unreadable_post_fails_alone(site):
    """A post the builder may not read is one line naming it; the rest still builds. As
    root, the build runs without the capabilities that bypass file modes (setpriv), so
    the file really cannot be read, as for any other user."""
    site.post("2026/a.md", title="A")
    p = site.post("2026/locked.md", title="Locked")
    with locked(p):
        result = o2m_unprivileged("build", cwd=site.root)
    assert_clean_failure(result, "content/2026/locked.md:1:", "cannot read it")
    assert (site.build_dir / "2026/a/index.html").exists()
    assert not (site.build_dir / "2026/locked").exists()


def test_an_unreadable_media_file_is_left_out_with_a_warning(site):
    """A picture the builder may not read is a warning naming the post and the file (it
    stopped the whole build with "Permission denied"), as a missing one is: the post
    and the rest are published without it, and the first build that can read it
    publishes it, in the page and in feed.json's list of the post's files (§1.4)."""
    site.post("2026/trip/index.md", title="Trip", body="![the view](view.png)")
    site.post("2026/other.md", title="Other")
    view = site.write("content/2026/trip/view.png", b"\x89PNG\r\n\x1a\n a view")
    with locked(view):
        result = o2m_unprivileged("build", cwd=site.root)
    assert 0 == result.returncode, result.stderr
    assert ["o2m: warning: content/2026/trip/index.md: cannot read content/2026/trip/view.png "
            "(permission denied), not published: check who may read it, then build again"
            ] == result.stderr.splitlines()
    assert 'src="#missing"' in site.read("2026/trip/index.html")
    assert (site.build_dir / "2026/other/index.html").exists()
    items = json.loads(site.read("feed.json"))["items"]
    assert all("media" not in item.get("_o2m", {}) for item in items)
    result = build(site)
    assert (0, "") == (result.returncode, result.stderr)
    assert 'src="../../media/' in site.read("2026/trip/index.html")
    trip = [i for i in json.loads(site.read("feed.json"))["items"] if i["title"] == "Trip"]
    assert [m["url"].rsplit("/", 1)[1] for m in trip[0]["_o2m"]["media"]] == ["view.png"]


def test_damaged_state_database_is_one_line(site):
    """A damaged .o2m/build.db is one line saying to delete it; once deleted, the build
    works again."""
    site.post("2026/a.md", title="A")
    assert build(site).returncode == 0
    (site.root / ".o2m/build.db").write_bytes(b"this is not sqlite" * 100)
    for suffix in ("-wal", "-shm"):
        (site.root / f".o2m/build.db{suffix}").unlink(missing_ok=True)
    result = build(site)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the build state is damaged" in result.stderr and "delete .o2m/build.db" in result.stderr
    (site.root / ".o2m/build.db").unlink()
    assert build(site).returncode == 0


def test_media_with_an_odd_file_name_is_published_under_a_safe_one(site):
    """A media file whose name holds a backslash and a space is published under a safe name
    (file.svg) in its content-hashed folder."""
    site.post("2026/a.md", title="A", body="![x](we%5Cird%20name.svg)")
    site.write("content/2026/we\\ird name.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    result = build(site)
    assert result.returncode == 0, result.stderr
    media = [p for p in site.outputs() if p.startswith("media/")]
    assert len(media) == 1 and media[0].endswith("/file.svg")


def test_reply_to_must_be_an_https_address(site):
    """A reply_to that is not an https:// address fails that post at its line."""
    site.write("content/2026/r.md", "---\ntitle: R\ndate: 2026-01-01\nreply_to: 2026/hello/\n---\n")
    assert_clean_failure(build(site), "content/2026/r.md:4:", "reply_to")


def test_threat_37_a_dangerous_slug_fails_its_post_and_nothing_leaves_build(site, tmp_path):
    """THREATS.md 37: posts whose `slug:` is ../, an absolute path or holds NUL each fail
    alone with file:line; the other post builds; no file or folder appears outside
    build/ (nor any folder named by the slugs inside it)."""
    site.post("2026/good.md", title="Good")
    bad = {"up.md": "../../escape-up", "abs.md": str(tmp_path / "escape-abs"),
           "nul.md": "esc\\0ape"}
    for name, slug in bad.items():
        site.write(f"content/2026/{name}", f'---\ndate: 2026-01-01\nslug: "{slug}"\n---\nBad.\n')

    def outside_build() -> set[str]:
        return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                if not p.is_relative_to(site.build_dir) and not p.is_relative_to(site.root / ".o2m")}

    before = outside_build()
    result = build(site)
    for name in bad:
        assert_clean_failure(result, f"content/2026/{name}:3:", "`slug`")
    assert "Good" in site.read("2026/good/index.html")
    assert outside_build() == before
    assert not [p for p in site.build_dir.rglob("*") if "esc" in p.name]
