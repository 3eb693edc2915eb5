"""Settings of o2m.toml that a post is parsed with (docs/CONFIG.md: changing a setting
re-renders what it affects): the next build parses every post again, so no post keeps
the audience or the time zone of the settings it was first built with."""

from __future__ import annotations

import json

from conftest import run_o2m


def set_setting(site, key: str, value: str) -> None:
    """Replace `key = ...` in the site's o2m.toml."""
    config = site.root / "o2m.toml"
    lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line
             for line in config.read_text().splitlines()]
    config.write_text("\n".join(lines) + "\n")


def public_traces(site, slug: str) -> list[str]:
    """Where the post `slug` shows on the public site."""
    found = [rel for rel in site.outputs() if rel.startswith(f"2026/{slug}/")]
    for rel in ("feed.json", "atom.xml", "index.html", "sitemap.xml", "archive/index.html"):
        if f"2026/{slug}/" in site.read(rel):
            found.append(rel)
    return found


def test_default_audience_public_to_friends_takes_the_post_off_the_public_site(site):
    """PRIVACY (newcomer trial): a post without `audience:` built while
    default_audience = "public", then the setting made "friends", file untouched: the
    next build takes it off every public page and feed."""
    site.post("2026/diary.md", title="Diary", body="Dear diary.")
    site.post("2026/open.md", title="Open", audience="public")
    site.o2m("build")
    assert public_traces(site, "diary")
    set_setting(site, "default_audience", '"friends"')
    result = site.o2m("build")
    assert [] == public_traces(site, "diary")
    assert "nothing to write" not in result.output
    assert public_traces(site, "open")  # a post that names its audience stays
    # and back: the post is public again, though its file never changed
    set_setting(site, "default_audience", '"public"')
    site.o2m("build")
    assert public_traces(site, "diary")


def test_a_new_timezone_dates_naive_dates_in_it(site):
    """A post's `date:` without a zone is in the site's time zone: changing `timezone`
    moves it, in feed.json, at the next build (the file untouched)."""
    site.post("2026/late.md", title="Late", date="2026-03-01T23:30:00")
    site.o2m("build")
    (item,) = json.loads(site.read("feed.json"))["items"]
    assert "2026-03-01T23:30:00+01:00" == item["date_published"]  # in Berlin
    set_setting(site, "timezone", '"America/New_York"')
    site.o2m("build")
    (item,) = json.loads(site.read("feed.json"))["items"]
    assert "2026-03-01T23:30:00-05:00" == item["date_published"]  # in New York


def test_a_post_is_not_blamed_for_a_setting_once_it_is_mended(site):
    """A post without `audience:` under a default naming a group that then goes: the
    error is the setting's, once; mended, the next build is clean, the post untouched."""
    site.post("2026/diary.md", title="Diary")
    set_setting(site, "default_audience", '"family"')
    site.o2m("build")
    config = site.root / "o2m.toml"
    config.write_text(config.read_text().replace('family = ["alice"]\n', ""))
    broken = run_o2m("build", cwd=site.root)
    assert broken.returncode == 1
    assert "content/2026/diary.md" not in broken.stderr
    set_setting(site, "default_audience", '"public"')
    mended = run_o2m("build", cwd=site.root)
    assert (0, "") == (mended.returncode, mended.stderr)
    assert public_traces(site, "diary")


def test_an_unchanged_site_parses_nothing_again(site):
    """The settings' record costs an unchanged build nothing: no post is parsed again."""
    site.post("2026/a.md", title="A")
    site.o2m("build")
    again = site.o2m("build")
    assert "(0 changed)" in again.output and "nothing to write" in again.output
