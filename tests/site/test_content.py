"""Front matter and post parsing (pure): valid forms and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.errors import PostError
from o2m_pub.site.content import parse_post, slugify

TZ = zoneinfo.ZoneInfo("Europe/Berlin")


def parse(text: str, source: str = "content/2026/post.md"):
    return parse_post(text.encode(), source, tz=TZ, default_audience=("friends",))


def error(text: str, source: str = "content/2026/post.md") -> PostError:
    with pytest.raises(PostError) as e:
        parse(text, source)
    return e.value


def test_full_front_matter():
    """Every documented field is read and typed."""
    post = parse("---\ntitle: Trip\ndate: 2026-05-01T10:00:00+02:00\nupdated: 2026-05-02\n"
                 "tags: [travel, alps]\nsummary: Up high\nslug: alps-trip\ndraft: false\n"
                 "audience: [family, bob]\nreply_to: https://x.example/p/\n---\nBody\n")
    assert post.title == "Trip"
    assert post.date == dt.datetime(2026, 5, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert post.updated == dt.datetime(2026, 5, 2, tzinfo=TZ)
    assert post.tags == ("travel", "alps")
    assert (post.summary, post.slug, post.draft) == ("Up high", "alps-trip", False)
    assert post.audience == ("family", "bob")
    assert post.reply_to == "https://x.example/p/"
    assert post.path == "2026/alps-trip/"
    assert post.body == "Body\n" and post.body_line == 12


@pytest.mark.parametrize("value, expected", [
    ("2026-11-24", dt.datetime(2026, 11, 24, tzinfo=TZ)),
    ("2026-11-24 09:30", dt.datetime(2026, 11, 24, 9, 30, tzinfo=TZ)),
    ("2026-11-24T09:30:00Z", dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.timezone.utc)),
    ("'2026-11-24T09:30:00-05:00'",
     dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
])
def test_dates_with_and_without_time_and_zone(value, expected):
    """ISO 8601 with or without time and zone; naive times are in the site's zone."""
    assert parse(f"---\ndate: {value}\n---\nx").date == expected


def test_note_without_title_and_date_from_file_name():
    """A short note needs no title; a Jekyll-style file name gives date and slug."""
    post = parse("Just a thought.\n", "content/2026-02-03-a-thought.md")
    assert post.title is None
    assert post.date == dt.datetime(2026, 2, 3, tzinfo=TZ)
    assert post.slug == "a-thought"
    assert post.audience == ("friends",)  # private by default


def test_bundle_slug_comes_from_its_folder():
    """A page bundle's slug comes from its folder's name (made URL-safe), not from index.md."""
    post = parse("---\ndate: 2026-01-01\n---\nx", "content/2026/Summer Trip/index.md")
    assert post.slug == "summer-trip"


def test_broken_yaml_names_the_line():
    """Broken YAML: the file and the line of the problem, and a hint."""
    e = error("---\ntitle: ok\ndate: 2026-01-01\ntags: [a, b\n---\nbody")
    assert e.problem.path == "content/2026/post.md"
    assert e.problem.line in (4, 5)
    assert "not valid YAML" in e.problem.message and e.hint


def test_unclosed_front_matter():
    """Front matter that never closes is reported as such."""
    assert "never ends" in error("---\ntitle: x\n\nbody").problem.message


@pytest.mark.parametrize("text", ["title: Trip\ndate: 2026-03-01\n\nWe went.",
                                  "Date: 2026-03-01\nTitle: Pelican's way\n\nBody.",
                                  "\ufefftags: [a]\n\nBody."])
def test_fields_without_the_dashes_are_named_at_line_1(text):
    """Front matter fields with no `---` around them (forgotten, or Pelican's own
    format) are refused at line 1, naming the first field and the missing dashes: they
    would otherwise be published as the post's first paragraph."""
    e = error(text)
    assert 1 == e.problem.line
    assert "are not between lines of three dashes" in e.problem.message
    assert text.lstrip("\ufeff").split(":")[0] in e.problem.message
    assert "---" in e.problem.hint


def test_a_body_that_starts_like_another_field_is_a_body():
    """Only o2m's own fields make a first line front matter: `Note: …` starts a body;
    so does one sentence like a field (`Thread: …`) in a post dated by its file name,
    which needs no front matter."""
    assert "Note: the body" in parse("Note: the body starts here.\n",
                                     "content/2026/2026-03-01-note.md").body
    assert "Thread: a few" in parse("Thread: a few thoughts on leaving the city.\n\nMore.",
                                    "content/2026/2026-11-24-thread.md").body
    e = error("Title: Trip\nTags: [a]\n\nWe went.", "content/2026/2026-11-24-trip.md")
    assert "`Title:` and the fields below it" in e.problem.message  # two fields: refused


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "2026/01/02", "12", "[2026]"])
def test_invalid_date_names_its_line(value):
    """An invalid date is reported at its own line, naming `date`."""
    e = error(f"---\ntitle: x\ndate: {value}\n---\n")
    assert e.problem.line == 3
    assert "date" in e.problem.message


def test_missing_date():
    """A post without a date (none in its front matter or its file name) says so, with a
    hint showing one."""
    e = error("---\ntitle: x\n---\nbody")
    assert "no `date:`" in e.problem.message and "date:" in e.hint


def _billion_laughs() -> str:
    lines = ["---", "date: 2026-01-01",
             'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")  # 9^9 values in all
    return "\n".join(lines + ["---", ""])


def _merge_bomb() -> str:
    lines = ["---", "date: 2026-01-01", "a: &a {" + ", ".join(f"k{i}: {i}" for i in range(500)) + "}"]
    lines += [f"m{i}: &m{i} {{<<: *a, n: {i}}}" for i in range(40)]
    return "\n".join(lines + ["---", ""])


HOSTILE_FRONT_MATTER = {
    # name: (file text, words of the error); {pwned} is a path the payload would create
    "python-object-apply": ("---\ndate: 2026-01-01\nx: !!python/object/apply:os.mkdir "
                            "['{pwned}']\n---\n", "not valid YAML"),
    "python-object-new": ("---\ndate: 2026-01-01\nx: !!python/object/new:pathlib.Path.mkdir "
                          "['{pwned}']\n---\n", "not valid YAML"),
    "python-object": ("---\ndate: 2026-01-01\nx: !!python/object:argparse.Namespace "
                      "{{a: 1}}\n---\n", "not valid YAML"),
    "python-name": ("---\ndate: 2026-01-01\nx: !!python/name:os.system\n---\n",
                    "not valid YAML"),
    "python-module": ("---\ndate: 2026-01-01\nx: !!python/module:os\n---\n", "not valid YAML"),
    "billion-laughs": (_billion_laughs(), "too many values"),
    "alias-merge-bomb": (_merge_bomb(), "too many values"),
    "front-matter-over-64-KiB": ("---\ndate: 2026-01-01\nsummary: " + "x" * 70_000 + "\n---\n",
                                 "over 64 KiB"),
    "many-small-values-within-64-KiB": ("---\ndate: 2026-01-01\ntags: [" + ", ".join(
        ["t"] * 20_000) + "]\n---\n", "too many values"),
    "file-over-8-MiB": ("---\ndate: 2026-01-01\n---\n" + "x" * (8 << 20), "over 8 MiB"),
}


@pytest.mark.parametrize("name", HOSTILE_FRONT_MATTER)
def test_threat_35_python_tags_billion_laughs_and_huge_front_matter_are_refused(name, tmp_path):
    """THREATS.md 35: front matter using `!!python/...` tags is never constructed (the
    safe loader: the payload's side effect does not happen), aliases that expand to
    millions of values ("billion laughs", merge keys) are refused after a bounded walk,
    and a huge front matter or file is refused by a size cap before YAML sees it.
    Each is one PostError naming the file and line."""
    pwned = tmp_path / "pwned"
    text, words = HOSTILE_FRONT_MATTER[name]
    e = error(text.replace("{pwned}", str(pwned)).replace("{{", "{").replace("}}", "}"))
    assert words in e.problem.message, e.problem
    assert e.problem.path == "content/2026/post.md" and e.problem.line >= 1
    assert not pwned.exists()


@pytest.mark.parametrize("slug", [
    "../etc", "../../../../home/me/.ssh", "..", "a/../b", "a/b", "/abs", "/etc/passwd",
    "..\\\\x", "C:\\\\x", "\\\\\\\\server\\\\share", "a\\0b", "\\0", "\\0../x",
    ".hidden", "a b", "%2e%2e", "\\uff0e\\uff0e", "-rf", "~",
])
def test_threat_37_slugs_with_dot_dot_absolute_paths_or_nul_are_rejected(slug):
    """THREATS.md 37: a `slug:` holding ../, an absolute path (POSIX or Windows), a
    backslash or NUL (written as a YAML escape, as the file itself may hold no NUL) is
    refused on its own line; a slug is one plain path segment (PROTOCOL.md §1.1). The
    build writing nothing outside build/: tests/site/test_bad_input.py."""
    e = error(f'---\ndate: 2026-01-01\nslug: "{slug}"\n---\n')
    assert e.problem.line == 3 and "`slug`" in e.problem.message


def test_nul_in_body_is_refused():
    """A NUL byte in the body is refused, by name."""
    assert "NUL" in error("---\ndate: 2026-01-01\n---\nab\x00c").problem.message


def test_not_utf8():
    """A post that is not UTF-8 is refused, saying so."""
    with pytest.raises(PostError) as e:
        parse_post(b"---\ndate: 2026-01-01\n---\n\xff\xfe", "content/x.md", tz=TZ,
                   default_audience=("public",))
    assert "UTF-8" in e.value.problem.message


@pytest.mark.parametrize("field, value", [("tags", "{a: 1}"), ("tags", "[1, [2]]"),
                                          ("draft", "maybe"), ("audience", "[]"),
                                          ("title", "[a, b]")])
def test_wrongly_typed_fields(field, value):
    """A field of the wrong type is reported at its line, by name."""
    e = error(f"---\ndate: 2026-01-01\n{field}: {value}\n---\n")
    assert e.problem.line == 3 and field in e.problem.message


@given(st.text(max_size=60))
def test_slugify_is_always_safe(text):
    """Whatever the title, a derived slug is a single safe path segment."""
    slug = slugify(text)
    assert slug and "/" not in slug and "\x00" not in slug and not slug.startswith(".")
    assert slug == slugify(slug)
