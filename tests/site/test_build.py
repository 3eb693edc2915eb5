"""`o2m build` on real folders: what the public site holds, and how it is kept in step."""

from __future__ import annotations

import datetime as dt
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import feedparser
import pytest
from conftest import run_o2m

from o2m_pub.site.build import build_site


def test_site_structure(site):
    """Every page kind lands at its documented path (docs/THEMING.md)."""
    site.post("2026/first.md", title="First", date="2026-01-05", tags="[python, Travel]")
    site.post("2026/second.md", title="Second", date="2026-02-05", tags="[travel]")
    site.post("2025/note.md", title=None, date="2025-12-24", body="Merry *note*.")
    site.o2m("build")
    files = set(site.outputs())
    assert {"index.html", "404.html", "feed.json", "atom.xml", "sitemap.xml",
            "2026/first/index.html", "2026/second/index.html", "2025/note/index.html",
            "tags/index.html", "tags/python/index.html", "tags/travel/index.html",
            "archive/index.html", "archive/2026/index.html", "archive/2025/index.html",
            "static/style.css", "static/highlight.css"} <= files
    home = site.read("index.html")
    assert home.index("Second") < home.index("First")  # newest first
    assert "Merry <em>note</em>." in home  # notes show in full
    assert 'href="2026/first/index.html"' in home  # relative links, index.html named


def test_raw_html_false_escapes_raw_html_in_pages_and_feeds(site):
    """[site] raw_html = false (docs/CONFIG.md): a public post's `<script>` is text in
    its page and in feed.json, also for a post built before the setting changed (its
    file unchanged: the setting alone renders it again)."""
    site.post("2026/raw.md", title="Raw", body="Hi <script>alert(1)</script> there.")
    site.o2m("build")
    assert "<script>alert(1)</script>" in site.read("2026/raw/index.html")
    config = site.root / "o2m.toml"
    config.write_text(config.read_text().replace("[groups]", "raw_html = false\n\n[groups]"))
    site.o2m("build")
    page = site.read("2026/raw/index.html")
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    (item,) = json.loads(site.read("feed.json"))["items"]
    assert "<script>" not in item["content_html"] and "&lt;script&gt;" in item["content_html"]
    config.write_text(config.read_text().replace("raw_html = false\n", ""))
    site.o2m("build")
    assert "<script>alert(1)</script>" in site.read("2026/raw/index.html")


def test_markdown_features(site):
    """Highlighted code, tables, footnotes, heading anchors and smart quotes."""
    site.post("2026/md.md", body='''"Quoted" -- it's here...

## Setup

```python
def f(x): return x
```

| a | b |
|---|---|
| 1 | 2 |

Note[^1].

## Use

[^1]: The footnote.
''')
    site.o2m("build")
    page = site.read("2026/md/index.html")  # the slug is the file name's, not the title's
    assert '<span class="k">def</span>' in page
    assert "<table>" in page and 'class="footnote"' in page
    assert 'id="setup"' in page and 'class="headerlink"' in page
    assert "“Quoted” – it’s here…" in page


def test_page_bundle_media_is_copied_content_hashed(site):
    """A bundle's image gets a content-hashed path and the page links to it."""
    site.post("2026/trip/index.md", title="Trip", body="![The view](view.svg)\n")
    site.write("content/2026/trip/view.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    site.o2m("build")
    media = [p for p in site.outputs() if p.startswith("media/")]
    assert len(media) == 1 and media[0].endswith("/view.svg")
    page = site.read("2026/trip/index.html")
    assert f'src="../../{media[0]}"' in page
    feed = json.loads(site.read("feed.json"))
    assert f"https://test.example/{media[0]}" in feed["items"][0]["content_html"]


def test_link_to_another_post_by_its_file(site):
    """A link to another post's Markdown file (with a fragment) becomes a relative link to
    that post's page, at its slug."""
    site.post("2026/a.md", title="A", body="See [b](b.md#part).")
    site.post("2026/b.md", title="B", slug="bee", date="2026-03-02")
    site.o2m("build")
    assert 'href="../../2026/bee/index.html#part"' in site.read("2026/a/index.html")


def test_feeds_parse_with_a_real_feed_parser(site):
    """Atom and JSON Feed carry full content, and a real parser reads them."""
    for i in range(5):
        site.post(f"2026/p{i}.md", title=f"Post {i} & <b>", date=f"2026-01-0{i + 1}",
                  body=f"Body **{i}**", tags="[t]")
    site.post("2026/note.md", title=None, date="2026-01-09", body="A short note.")
    site.o2m("build")
    atom = feedparser.parse(site.read("atom.xml"))
    assert not atom.bozo, atom.bozo_exception
    assert atom.feed.title == "Test site"
    assert [e.title for e in atom.entries][:2] == ["A short note.", "Post 4 & <b>"]
    assert "<strong>4</strong>" in atom.entries[1].content[0].value
    assert atom.entries[1].link == "https://test.example/2026/p4/"
    raw = json.loads(site.read("feed.json"))
    _check_json_feed_1_1(raw)
    assert len(raw["items"]) == 6
    assert raw["version"] == "https://jsonfeed.org/version/1.1"
    assert "title" not in raw["items"][0]  # a note has no title
    assert raw["items"][1]["date_published"] == "2026-01-05T00:00:00+01:00"


def _check_json_feed_1_1(feed: dict) -> None:
    """The required fields and types of https://www.jsonfeed.org/version/1.1/ (feedparser
    6 reads Atom but not JSON Feed)."""
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["items"] is not None
    for key in ("home_page_url", "feed_url"):
        assert feed[key].startswith("https://")
    assert all(isinstance(a["name"], str) for a in feed["authors"])
    ids = [item["id"] for item in feed["items"]]
    assert len(set(ids)) == len(ids)
    for item in feed["items"]:
        assert isinstance(item["id"], str)
        assert isinstance(item.get("content_html"), str) or isinstance(item.get("content_text"), str)
        for key in ("date_published", "date_modified"):
            if key in item:
                dt.datetime.fromisoformat(item[key])  # RFC 3339
        assert isinstance(item.get("tags", []), list)


def test_sitemap_is_valid_xml(site):
    """sitemap.xml parses as XML and lists the home page and each post's permalink."""
    site.post("2026/a.md")
    site.o2m("build")
    root = ET.fromstring(site.read("sitemap.xml"))
    locs = [e.text for e in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert locs == ["https://test.example/", "https://test.example/2026/a/"]


def test_pagination_is_numbered_from_the_oldest(site):
    """3 per page: home shows the newest 3; numbered pages hold older chunks."""
    for i in range(7):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-{i + 10}")
    site.o2m("build")
    home = site.read("index.html")
    assert all(f">P{i}<" in home for i in (6, 5, 4)) and ">P3<" not in home
    assert 'href="page/2/index.html"' in home
    page1 = site.read("page/1/index.html")
    assert all(f">P{i}<" in page1 for i in (0, 1, 2))
    before = site.stamps()
    site.post("2026/p7.md", title="P7", date="2026-01-20")
    site.o2m("build")
    after = site.stamps()
    changed = {p for p in after if before.get(p) != after[p]}
    assert "page/1/index.html" not in changed and "page/2/index.html" not in changed


def test_drafts_never_reach_build_but_preview_in_their_own_folder(site):
    """A draft never reaches build/ (not its page, not its title anywhere); --drafts
    previews it in .o2m/preview and leaves build/ alone."""
    site.post("2026/pub.md", title="Public")
    site.post("2026/wip.md", title="Work in progress", draft="true")
    result = site.o2m("build")
    assert "1 draft skipped" in result.output
    assert "wip" not in " ".join(site.outputs())
    assert "Work in progress" not in "".join(v.decode() for v in site.outputs().values())
    result = site.o2m("build", "--drafts")
    preview = site.root / ".o2m" / "preview"
    assert (preview / "2026/wip/index.html").exists()
    assert "preview:" in result.output
    assert "wip" not in " ".join(site.outputs())  # build/ untouched by the preview


def test_private_audiences_stay_off_the_public_site(site):
    """Only posts whose audience includes `public` reach the public pages and feeds; a
    private one is never there in clear (it goes, encrypted, into its readers' feeds
    once the site has friends: tests/site/test_private_build.py)."""
    site.post("2026/pub.md", title="Open")
    site.post("2026/fam.md", title="Family secret", audience="family")
    site.post("2026/fr.md", title="Friends only", audience="friends")
    site.post("2026/mix.md", title="Mixed", audience="[family, public]")
    result = site.o2m("build")
    text = "".join(v.decode(errors="replace") for v in site.outputs().values())
    assert "Family secret" not in text and "Friends only" not in text
    assert "Mixed" in text and "2 private kept off the public site" in result.output


def test_a_missing_file_of_a_private_post_is_warned_about_even_with_no_friends_yet(site):
    """`o2m build` says, once, in the public warning's words, that a friends-only post
    links to a file that is not there (exit 0), though no friend reads it yet."""
    site.post("2026/fr.md", title="Friends only", audience="friends", body="![x](nothere.png)")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert ["o2m: warning: content/2026/fr.md: links to content/2026/nothere.png, which does"
            " not exist"] == [line for line in result.stderr.splitlines() if "nothere" in line]


def test_threat_36_names_are_autoescaped(site):
    """THREATS.md 36: `</title><script>` in names stays text."""
    site.post("2026/x.md", title='"</title><script>alert(1)</script>"', tags='["<b>t</b>"]')
    site.o2m("build")
    for name, data in site.outputs().items():
        if name.endswith(".html"):
            assert b"<script>alert(1)" not in data, name
    assert "&lt;/title&gt;&lt;script&gt;" in site.read("2026/x/index.html")


def test_threat_38_a_content_symlink_to_ssh_is_not_published(site, tmp_path, monkeypatch):
    """THREATS.md 38: symlinks in content/ into ~/.ssh (a folder link, a link to a file
    that even looks like a post, a link to a key used as an image) and posts that point
    at ~/.ssh by relative, absolute or ~ paths publish nothing of it: the build says
    "outside content/" and no byte of a key reaches build/."""
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert Path(os.path.expanduser("~/.ssh")) == ssh
    (ssh / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEY\n")
    (ssh / "notes.md").write_text("---\ndate: 2026-01-01\naudience: public\n---\nSECRETNOTE\n")
    (ssh / "key.png").write_bytes(b"\x89PNG SECRETPNG")
    content = site.root / "content"
    os.symlink(ssh, content / "ssh")  # the whole folder
    os.symlink(ssh / "notes.md", content / "notes.md")  # a file that parses as a post
    os.symlink(ssh / "id_ed25519", content / "id.png")  # a key posing as an image
    site.post("2026/a.md", title="Pictures", audience="public",
              body=f"![a](../ssh/key.png) ![b](../id.png) ![c]({ssh}/key.png) "
                   f"![d](~/.ssh/key.png) ![e](../../../home/.ssh/key.png) [f](../ssh/notes.md)")
    result = site.o2m("build")
    assert "outside content/" in result.output
    assert "Pictures" in site.read("2026/a/index.html")
    for name, data in site.outputs().items():
        assert b"SECRET" not in data, name
        assert "id_ed25519" not in name and "notes" not in name, name


def test_no_change_build_writes_nothing(site):
    """A second build with nothing changed writes no file (every output keeps its inode and
    mtime) and says so."""
    for i in range(4):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-0{i + 1}")
    site.o2m("build")
    before = site.stamps()
    result = site.o2m("build")
    assert "nothing to write" in result.output and "(0 changed)" in result.output
    assert site.stamps() == before


def test_editing_one_post_rewrites_only_what_shows_it(site):
    """Editing one post's body rewrites its page, the list page showing its summary and the
    feeds, nothing else."""
    for i in range(6):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-0{i + 1}", body="Old body.")
    site.o2m("build")
    before = site.stamps()
    site.post("2026/p0.md", title="P0", date="2026-01-01", body="New body.")
    result = site.o2m("build")
    assert "(1 changed)" in result.output
    after = site.stamps()
    changed = {p for p in after if before[p] != after[p]}
    # its page, the one list page that shows its summary, and the feeds (all 6 in them)
    assert changed == {"2026/p0/index.html", "page/1/index.html", "feed.json", "atom.xml"}
    assert "New body." in site.read("2026/p0/index.html")


def test_template_change_rerenders_what_uses_it(site):
    """A changed template rewrites only the pages made from it; a changed base.html reaches
    every page."""
    site.post("2026/a.md", title="A")
    site.o2m("build")
    before = site.stamps()
    site.write("site_templates/tags.html",
               '{% extends "base.html" %}{% block content %}<h1>All the tags</h1>{% endblock %}')
    site.o2m("build")
    after = site.stamps()
    changed = {p for p in after if before[p] != after[p]}
    assert changed == {"tags/index.html"}
    assert "All the tags" in site.read("tags/index.html")
    # a change to base.html reaches every page
    assert not (site.root / "site_templates/base.html").exists()  # the theme's own is used
    site.write("site_templates/base.html",
               _builtin("base.html").replace("Skip to content", "Skip ahead"))
    site.o2m("build")
    assert "Skip ahead" in site.read("2026/a/index.html") and "Skip ahead" in site.read("index.html")


def _builtin(name: str) -> str:
    from o2m_pub.site.render import BUILTIN_THEME
    return (BUILTIN_THEME / name).read_text()


def test_config_change_rerenders_everything(site):
    """A changed o2m.toml (the site's name) reaches every page and the feeds."""
    site.post("2026/a.md", title="A")
    site.o2m("build")
    cfg = site.root / "o2m.toml"
    cfg.write_text(cfg.read_text().replace('name = "Test site"', 'name = "Renamed"'))
    site.o2m("build")
    assert "Renamed" in site.read("2026/a/index.html") and "Renamed" in site.read("atom.xml")


def test_removed_post_loses_its_outputs(site):
    """A removed post's page goes, and so does a tag page that only it had; the home page no
    longer shows it."""
    site.post("2026/a.md", title="A")
    p = site.post("2026/b.md", title="Gone soon", tags="[lonely]")
    site.o2m("build")
    assert (site.build_dir / "tags/lonely/index.html").exists()
    p.unlink()
    result = site.o2m("build")
    assert "removed" in result.output
    assert not (site.build_dir / "2026/b").exists()
    assert not (site.build_dir / "tags/lonely").exists()
    assert "Gone soon" not in site.read("index.html")


def test_deleted_output_is_repaired(site):
    """An output deleted or damaged by hand is written again by the next build."""
    site.post("2026/a.md", title="A")
    site.o2m("build")
    (site.build_dir / "2026/a/index.html").unlink()
    (site.build_dir / "index.html").write_text("truncat")
    site.o2m("build")
    assert "A" in site.read("2026/a/index.html")
    assert site.read("index.html").startswith("<!doctype html>")


def test_incremental_equals_clean_build(site, tmp_path):
    """After a series of edits, the incremental result equals a build from scratch."""
    for i in range(8):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-{i + 10}", tags=f"[t{i % 3}]")
    site.o2m("build")
    site.post("2026/p3.md", title="P3 renamed", date="2026-01-13", tags="[t9]")
    (site.root / "content/2026/p5.md").unlink()
    site.post("2026/p9.md", title=None, date="2026-02-01", body="new note")
    site.o2m("build")
    incremental = site.outputs()
    import shutil
    shutil.rmtree(site.build_dir)
    shutil.rmtree(site.root / ".o2m")
    site.o2m("build")
    assert site.outputs() == incremental


def test_parallel_and_serial_builds_agree(site, monkeypatch):
    """Worker processes (for posts and for pages) produce exactly the serial result."""
    monkeypatch.setattr("o2m_pub.site.pages.PAGE_PARALLEL_THRESHOLD", 10)
    for i in range(60):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-02-{i % 28 + 1:02d} 10:{i:02d}",
                  body=f"```python\nx = {i}\n```\n")
    build_site(site.root, jobs=2)
    parallel = site.outputs()
    import shutil
    shutil.rmtree(site.build_dir)
    shutil.rmtree(site.root / ".o2m")
    build_site(site.root, jobs=1)
    assert site.outputs() == parallel


@pytest.mark.parametrize("count", [0, 1])
def test_empty_and_tiny_sites_build(site, count):
    """A site with no post, or one post, builds a home page."""
    for i in range(count):
        site.post(f"2026/p{i}.md")
    site.o2m("build")
    assert (site.build_dir / "index.html").exists()


def test_editing_only_an_image_republishes_it_and_the_pages_that_show_it(site):
    """The media path is content-hashed: the post page (and a note showing it in a
    list) must follow the new file; the old copy goes."""
    site.post("2026/trip/index.md", title="Trip", body="![v](view.svg)\n")
    site.post("2026/note.md", title=None, date="2026-03-02", body="![w](wide.svg)")
    site.write("content/2026/trip/view.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    site.write("content/2026/wide.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    site.o2m("build")
    site.write("content/2026/trip/view.svg", '<svg xmlns="http://www.w3.org/2000/svg" id="v2"/>')
    site.write("content/2026/wide.svg", '<svg xmlns="http://www.w3.org/2000/svg" id="w2"/>')
    site.o2m("build")
    media = sorted(p for p in site.outputs() if p.startswith("media/"))
    assert len(media) == 2
    for page in ("2026/trip/index.html", "index.html", "2026/note/index.html"):
        html = site.read(page)
        for m in media:
            if m.endswith("view.svg") and "trip" in page or m.endswith("wide.svg") and "trip" not in page:
                assert m in html, (page, m)


def test_a_one_off_build_unfreezes_what_it_froze(site):
    """`build_site` freezes the process's objects out of the garbage collector's walks
    once the manifest is read (a one-off build); it unfreezes them when done, so a
    process that lives on (a test run, a server) can still collect its garbage."""
    import gc

    site.post("2026/a.md", title="A")
    build_site(site.root)  # the first build: an empty manifest
    frozen_before = gc.get_freeze_count()
    site.post("2026/b.md", title="B")
    report = build_site(site.root)  # reads the manifest the first one wrote
    assert report.changed == 1
    assert gc.get_freeze_count() == frozen_before


def test_the_report_counts_drafts_private_and_changed_posts_public_or_not(site):
    """The summary's counts: drafts and private posts apart from the public ones, and
    "changed" counting every post rendered again, a private one too; an audience that
    names nobody known is reported once per post that uses it."""
    site.post("2026/a.md", title="A")
    site.post("2026/b.md", title="B", audience="friends")
    site.post("2026/c.md", title="C", draft="true")
    site.post("2026/d.md", title="D", audience="family")
    site.post("2026/e.md", title="E", audience="[public, nobody]")
    site.post("2026/f.md", title="F", audience="[public, nobody]")
    report = build_site(site.root)
    assert (report.posts, report.private, report.drafts, report.changed) == (3, 2, 1, 5)
    assert 2 == sum("unknown audience 'nobody'" in p.message for p in report.problems)
    site.post("2026/b.md", title="B again", audience="friends")
    report = build_site(site.root)
    assert (report.posts, report.private, report.drafts, report.changed) == (3, 2, 1, 1)
    site.post("2026/a.md", title="A again")
    site.post("2026/d.md", title="D again", audience="family")
    assert 2 == build_site(site.root).changed


def test_links_to_posts_with_no_public_page_warn_once_per_link(site):
    """Newcomer trial: `[x](nothere.md)`, `[y](gone/index.md)` and a link to a
    friends-only post turned into "#missing" without a word. Each is a warning naming the
    file, the link's line, what is missing and what to do, once per link in each build
    (said again while the page stands, as a missing picture's is); mended, it goes."""
    site.post("2026/secret.md", title="Secret", audience="friends")
    site.post("2026/pub.md", title="Pub", body="Intro.\n\n[the other post](nothere.md)\n\n"
              "[another](gone/index.md) and [a secret](secret.md), [again](secret.md).")
    expected = [
        "o2m: warning: content/2026/pub.md:7: links to content/2026/nothere.md, which does "
        "not exist: the link leads nowhere; link to a post's .md file by its path from this "
        "post's folder",
        "o2m: warning: content/2026/pub.md:9: links to content/2026/gone/index.md, which "
        "does not exist: the link leads nowhere; link to a post's .md file by its path from "
        "this post's folder",
        "o2m: warning: content/2026/pub.md:9: links to content/2026/secret.md, which is not "
        "public (audience: friends): the link leads nowhere; link to a public post, or make "
        "that one public"]
    for _ in range(2):  # the second build writes nothing, and says it again
        result = run_o2m("build", cwd=site.root)
        assert 0 == result.returncode
        assert expected == sorted(result.stderr.splitlines())
    assert site.read("2026/pub/index.html").count('href="#missing"') == 4
    site.post("2026/secret.md", title="Secret", audience="public")
    site.post("2026/nothere.md", title="Here now")
    site.write("content/2026/gone/index.md", "---\ntitle: Gone\ndate: 2026-01-01\n---\nx\n")
    result = run_o2m("build", cwd=site.root)
    assert (0, "") == (result.returncode, result.stderr)
    assert "#missing" not in site.read("2026/pub/index.html")
