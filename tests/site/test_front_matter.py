"""Front matter mistakes a new user makes (newcomer review, friction 7 and point 20):
a misspelt field is named with a "did you mean", a misspelt `audience` or `draft`
never silently changes who reads the post, and dates say what is wrong with them."""

from __future__ import annotations

import datetime as dt

from conftest import run_o2m

from o2m_pub.site.build import build_site

PRIVATE_BY_DEFAULT = """\
[site]
name = "Test site"
author = "Tess"
url = "https://test.example/"
timezone = "UTC"
default_audience = "friends"
"""


def test_a_misspelt_audience_refuses_the_post_instead_of_making_it_private(site):
    """`audiance: public` on a site whose default is friends: before, the post silently
    went to friends only. Now the post is refused with one line naming the line and
    the field meant; it is neither public nor private, and the rest builds."""
    (site.root / "o2m.toml").write_text(PRIVATE_BY_DEFAULT)
    site.post("2026/other.md", title="Other", audience="public")
    site.post("2026/trip.md", title="Trip", audiance="public")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 1
    assert ("o2m: error: content/2026/trip.md:4: unknown field 'audiance' (did you mean "
            "'audience'?)") in result.stderr
    assert "the default audience instead of the one you meant" in result.stderr
    report = build_site(site.root)
    assert [p.path for p in report.problems] == ["content/2026/trip.md"]
    assert (report.posts, report.private) == (1, 0)
    assert not (site.build_dir / "2026/trip").exists()


def test_a_misspelt_draft_refuses_the_post_instead_of_publishing_it(site):
    """`drafts: true` (for `draft`) would publish a draft: refused the same way."""
    site.post("2026/secret.md", title="Not yet", drafts="true")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 1
    assert "content/2026/secret.md:4: unknown field 'drafts' (did you mean 'draft'?)" \
        in result.stderr
    assert not (site.build_dir / "2026/secret").exists()


def test_other_unknown_fields_are_warned_about_and_ignored(site):
    """`tag: [x]` is a warning naming the line and the field meant; `colour` one with
    no guess. The post is built."""
    site.post("2026/p.md", title="P", tag="[x]", colour="blue")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert ("o2m: warning: content/2026/p.md:4: unknown field 'tag' (did you mean 'tags'?), "
            "ignored") in result.stderr
    assert "o2m: warning: content/2026/p.md:5: unknown field 'colour', ignored" in result.stderr
    assert (site.build_dir / "2026/p/index.html").exists()


def test_a_time_with_a_one_digit_hour_is_read(site):
    """`2026-03-14T9:30` is what people write: read as 09:30 in the site's zone."""
    site.post("2026/early.md", title="Early", date="2026-03-14T9:30")
    site.post("2026/spaced.md", title="Spaced", date="2026-03-15 7:05")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 0, result.stderr
    page = site.read("2026/early/index.html")
    assert 'datetime="2026-03-14T09:30:00+01:00"' in page  # Europe/Berlin in March


def test_a_wrong_date_says_what_is_wrong_and_has_a_hint_line(site):
    """`2026-13-45` names the reason (no month 13) and, like every error, a hint line."""
    site.post("2026/when.md", title="When", date="2026-13-45")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    i = next(i for i, line in enumerate(lines) if "content/2026/when.md:3" in line)
    assert lines[i] == ("o2m: error: content/2026/when.md:3: `date` '2026-13-45' is not a "
                        "date: month must be in 1..12")
    assert lines[i + 1].strip().startswith("hint: write it as 2026-11-24, 2026-11-24 09:30")


def test_a_date_in_the_future_is_warned_about(site):
    """A far-future date (2030 typed for 2026) is built, with a warning naming it."""
    year = dt.date.today().year + 4
    site.post("2026/later.md", title="Later", date=f"{year}-01-01")
    result = run_o2m("build", cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert (f"o2m: warning: content/2026/later.md:3: dated {year}-01-01, in the future; it "
            "is published now, with that date") in result.stderr
