"""The sample content as files: every post parses and builds, the dating keeps the demo
recent and seasonal, and the files are found where a wheel puts them."""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
import subprocess
import sys
import tomllib
import zipfile
import zoneinfo
from pathlib import Path

import pytest

from o2m_pub.demo import PEOPLE, STORY, demo_content
from o2m_pub.site.build import build_site
from o2m_pub.site.content import parse_post
from o2m_pub.site.sample_trees import (
    SAMPLES,
    date_now,
    date_tree,
    read_sample,
    read_tree,
    sample_text,
    write_tree,
)
from o2m_pub.site.scaffold import init_site

PACKAGE = Path(__file__).resolve().parents[2] / "o2m_pub"
SAMPLES_DIR = PACKAGE / "site" / "samples"
UTC = dt.timezone.utc


def _parse(data: bytes, source: str, timezone: str = "UTC"):  # noqa: ANN202 - PostSource
    return parse_post(data, source, tz=zoneinfo.ZoneInfo(timezone),
                      default_audience=("friends",))


def _tree_digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for path, data in sorted(files.items()):
        h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def _days(files: dict[str, bytes], timezone: str = "UTC") -> dict[str, dt.date]:
    return {path: _parse(data, f"content/{path}", timezone).date.date()
            for path, data in files.items() if path.endswith(".md")}


# --- the files themselves -----------------------------------------------------------

def test_the_samples_are_files_and_no_prose_is_left_in_python():
    """The demo's three people and init's hello post are Markdown files under
    site/samples/, page bundles with their images; sample.py is gone."""
    found = {p.relative_to(SAMPLES_DIR).as_posix() for p in SAMPLES_DIR.rglob("*") if p.is_file()}
    assert "init/hello-world.md" in found
    assert "demo/demo.toml" in found
    assert {"demo/ada/2025/the-ridgeway-in-three-days/index.md",
            "demo/ada/2025/the-ridgeway-in-three-days/ridge.svg",
            "demo/ada/2025/the-ridgeway-in-three-days/elevation.svg",
            "demo/ada/2026/the-anatomy-of-a-loaf/loaf.svg"} <= found
    assert [p.slug for p in PEOPLE] == ["ada", "sam", "mum"]
    assert all(any(f.startswith(f"demo/{p.slug}/") for f in found) for p in PEOPLE)
    assert not (PACKAGE / "site" / "sample.py").exists()


@pytest.mark.parametrize("tree", ["init"] + [f"demo/{p.slug}" for p in PEOPLE])
def test_every_sample_post_parses_with_the_builders_parser(tree):
    """Each .md file of each tree is a valid post: a date, known fields only, a title
    or a note, and for the demo dated before the anchor."""
    posts = {path: data for path, data in read_sample(tree).items() if path.endswith(".md")}
    assert posts
    for path, data in posts.items():
        post = _parse(data, f"content/{path}")
        assert post.extra == {}, path  # no field the builder would ignore
        assert post.body.strip(), path
        if tree != "init":
            assert post.date.date() < STORY.anchor, path


def test_the_story_file_names_the_people_and_groups_of_the_demo():
    """demo.toml holds what is not a post: the same three people as before, Ada's
    family group, the anchor, and seasonal posts that exist in Ada's tree."""
    assert [(p.slug, p.site_name, p.author, p.timezone) for p in PEOPLE] == [
        ("ada", "Ada's notebook", "Ada", "Europe/London"),
        ("sam", "Sam's workshop", "Sam", "Europe/Berlin"),
        ("mum", "Mum's kitchen", "Mum", "Europe/London"),
    ]
    assert {p.slug: p.groups for p in PEOPLE} == {"ada": {"family": ("mum",)}, "sam": {},
                                                  "mum": {}}
    assert isinstance(STORY.anchor, dt.date)
    ada = read_sample("demo/ada")
    assert len(STORY.seasonal["ada"]) == 11
    assert set(STORY.seasonal["ada"]) <= set(ada)


def test_links_between_sample_posts_are_relative_md_links_that_resolve():
    """Posts link to each other by the relative path of the .md file, as a person
    writes them, and every such link reaches a post of the same tree."""
    import posixpath
    import re

    ada = read_sample("demo/ada")
    links = []
    for path, data in ada.items():
        for target in re.findall(r"\]\(([^()\s#]+\.md)", data.decode()):
            links.append((path, target))
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            assert resolved in ada, (path, target)
    assert ("2026/the-anatomy-of-a-loaf/index.md", "../../2025/sourdough-week-one.md") in links
    assert ("2026/a-year-of-this-notebook.md", "../2025/first-steps.md") in links


# --- init ---------------------------------------------------------------------------

def test_init_copies_the_hello_post_dated_now(tmp_path):
    """`o2m init` writes the sample's hello post under content/YEAR/, dated now to the
    second; the rest of the file is the sample's, byte for byte."""
    now = dt.datetime(2031, 4, 9, 16, 45, 12, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    created = init_site(tmp_path / "s", name="S", url="https://s.example/", timezone="UTC",
                        now=now)
    post = tmp_path / "s/content/2031/hello-world.md"
    assert post in created
    text = post.read_text(encoding="utf-8")
    assert "\ndate: 2031-04-09T16:45:12+02:00\n" in text
    sample = sample_text("init/hello-world.md")
    assert text.splitlines()[3:] == sample.splitlines()[3:]
    parsed = _parse(post.read_bytes(), "content/2031/hello-world.md")
    assert (parsed.title, parsed.audience, parsed.date) == ("Hello, world", ("public",),
                                                            now.replace(microsecond=0))
    assert sorted(p.relative_to(tmp_path / "s/content").as_posix()
                  for p in (tmp_path / "s/content").rglob("*") if p.is_file()) == [
        "2031/hello-world.md"]


def test_the_hello_post_says_where_a_posts_address_comes_from():
    """Newcomer trial: the starter post said "the file name becomes the post's address",
    hiding that the year comes from `date:` (a post in content/2025/ dated 2026 is at
    /2026/...) and that `slug:` names it."""
    text = " ".join(sample_text("init/hello-world.md").split())
    assert "the file name becomes the post's address" not in text
    assert "A post's address is the year of its `date` and its file name" in text
    assert "`slug: other-name`" in text


def test_date_now_sets_only_the_date_line_of_the_front_matter():
    """The hello post keeps every other line, a `date:` in its body included."""
    text = b"---\ntitle: T\ndate: 2020-01-01\n---\n\n```yaml\ndate: 2020-01-01\n```\n"
    now = dt.datetime(2030, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert date_now({"hello.md": text}, now) == {
        "2030/hello.md": b"---\ntitle: T\ndate: 2030-02-03T04:05:06+00:00\n---\n\n"
                         b"```yaml\ndate: 2020-01-01\n```\n"}


# --- dating the demo ------------------------------------------------------------------

def test_the_demo_at_its_anchor_is_the_files_as_written():
    """Copied on the anchor day, every tree comes out exactly as it is in samples/."""
    for person in PEOPLE:
        files = read_sample(f"demo/{person.slug}")
        assert date_tree(files, STORY.anchor, anchor=STORY.anchor,
                         seasonal=STORY.seasonal.get(person.slug)) == files


def _slug(path: str) -> str:
    parts = path.removesuffix(".md").split("/")
    return parts[-2] if parts[-1] == "index" else parts[-1]


def _ages(files: dict[str, bytes], today: dt.date) -> dict[str, int]:
    """slug -> days before `today` (slugs, since a post's folder follows its year)."""
    return {_slug(path): (today - day).days for path, day in _days(files).items()}


def test_dating_keeps_the_demo_recent_and_seasonal_posts_in_their_months():
    """For every day of a year of `now`s: each post is dated before today and within
    ~18 months; posts that are not seasonal keep their age at the anchor (so their
    order and spacing); seasonal posts land in one of their months, after the first
    post, on a day of their own; and the same day always gives the same bytes."""
    files = read_sample("demo/ada")
    seasonal = {_slug(path): months for path, months in STORY.seasonal["ada"].items()}
    at_anchor = _ages(files, STORY.anchor)
    first = max(at_anchor.values())
    assert at_anchor["first-steps"] == first
    for today in [dt.date(2027, 1, 1) + dt.timedelta(days=n) for n in range(365)]:
        dated = date_tree(files, today, anchor=STORY.anchor, seasonal=STORY.seasonal["ada"])
        assert dated == date_tree(dict(reversed(files.items())), today, anchor=STORY.anchor,
                                  seasonal=STORY.seasonal["ada"])  # whatever the order
        ages = _ages(dated, today)
        assert ages.keys() == at_anchor.keys() and len(dated) == len(files)
        for slug, age in ages.items():
            assert 1 <= age <= first, (today, slug, age)
            if slug in seasonal:
                assert (today - dt.timedelta(days=age)).month in seasonal[slug], (today, slug)
                assert age < first
            else:
                assert age == at_anchor[slug], (today, slug)
        assert len(set(ages.values())) == len(ages), today  # one post a day at most


def test_dating_moves_posts_to_their_years_folder_and_links_follow():
    """A post whose year changes moves to that year's folder, a bundle with its files;
    relative links between posts are rewritten so they still resolve; dates of the
    body and other links stay as written."""
    tree = {
        "2025/a.md": b"---\ndate: 2025-12-20T10:00:00\n---\nSee [b](../2026/b.md#x) and "
                     b"[c](2025/c/index.md) and [out](https://e.org/x.md).\n",
        "2026/b.md": b"---\ndate: 2026-01-10\nupdated: 2026-01-12\n---\n"
                     b"Back to [a](../2025/a.md), [pic](../2025/c/pic.svg).\n",
        "2025/c/index.md": b"---\ndate: 2025-06-01T08:00:00\n---\n![p](pic.svg)\n"
                           b"```\ndate: 2025-06-01\n```\n",
        "2025/c/pic.svg": b"<svg/>",
        "notes.txt": b"stays",
    }
    out = date_tree(tree, dt.date(2027, 1, 14), anchor=dt.date(2026, 1, 14))
    assert sorted(out) == ["2026/a.md", "2026/c/index.md", "2026/c/pic.svg", "2027/b.md",
                           "notes.txt"]
    assert out["2026/a.md"] == (b"---\ndate: 2026-12-20T10:00:00\n---\nSee [b](../2027/b.md#x) "
                                b"and [c](2025/c/index.md) and [out](https://e.org/x.md).\n")
    assert out["2027/b.md"] == (b"---\ndate: 2027-01-10\nupdated: 2027-01-12\n---\n"
                                b"Back to [a](../2026/a.md), [pic](../2026/c/pic.svg).\n")
    assert out["2026/c/index.md"] == (b"---\ndate: 2026-06-01T08:00:00\n---\n![p](pic.svg)\n"
                                      b"```\ndate: 2025-06-01\n```\n")
    assert out["2026/c/pic.svg"] == b"<svg/>" and out["notes.txt"] == b"stays"


def test_an_updated_line_never_moves_past_yesterday():
    """A seasonal post moved later keeps its `updated:` at most at yesterday."""
    tree = {"first.md": b"---\ndate: 2025-01-02\n---\nfirst\n",
            "late.md": b"---\ndate: 2025-11-01T09:00:00\nupdated: 2025-12-30T09:00:00\n---\nx\n"}
    out = date_tree(tree, dt.date(2026, 6, 10), anchor=dt.date(2025, 12, 31),
                    seasonal={"late.md": [6]})
    assert out["late.md"] == b"---\ndate: 2026-06-09T09:00:00\nupdated: 2026-06-09T09:00:00\n---\nx\n"


@pytest.mark.parametrize("tree, seasonal, message", [
    ({"a.md": b"---\ntitle: no date\n---\n"}, {}, "no `date:`"),
    ({"a.md": b"---\ndate: 2026-01-01\n---\n"}, {}, "not before the anchor"),
    ({"a.md": b"---\ndate: 2025-01-01\n---\n"}, {"b.md": [1]}, "not in the tree"),
    ({"a.md": b"---\ndate: 2025-01-01\n---\n"}, {"a.md": [13]}, "months must be"),
])
def test_dating_refuses_what_it_cannot_place(tree, seasonal, message):
    """A post without a date, dated on or after the anchor, or a seasonal entry that
    names no post or no real month: a clear ValueError for whoever edits the samples."""
    with pytest.raises(ValueError, match=message):
        date_tree(tree, dt.date(2027, 1, 1), anchor=dt.date(2026, 1, 1), seasonal=seasonal)


def test_demo_content_is_dated_in_each_persons_time_zone():
    """Late in the evening in UTC it is already tomorrow in Berlin: Sam's newest post is
    dated the day before *his* today, so it is never in the future."""
    now = dt.datetime(2027, 3, 10, 23, 30, tzinfo=UTC)
    sam = next(p for p in PEOPLE if p.slug == "sam")
    days = _days(demo_content(sam, now), sam.timezone)
    assert max(days.values()) == dt.date(2027, 3, 10)  # Sam's today is 11 March
    for path, data in demo_content(sam, now).items():
        assert _parse(data, f"content/{path}", sam.timezone).date < now


# --- building them ----------------------------------------------------------------------

@pytest.mark.parametrize("now", [
    dt.datetime.combine(STORY.anchor, dt.time(12), UTC),
    dt.datetime(2027, 7, 14, 9, 0, tzinfo=UTC),  # summer: the seasonal posts move
    dt.datetime(2028, 1, 1, 0, 30, tzinfo=UTC),  # a new year: posts change folders
])
def test_every_demo_site_builds_without_problems(tmp_path, now):
    """Each person's tree, dated for `now`, builds with no problem, no warning and no
    broken link, with the same counts as the demo has always shown."""
    counts = {}
    for person in PEOPLE:
        root = tmp_path / person.slug
        init_site(root, name=person.site_name, url="https://127.0.0.1:1/",
                  author=person.author, timezone=person.timezone, now=now)
        for p in (root / "content").rglob("*.md"):
            p.unlink()
        write_tree(demo_content(person, now), root / "content")
        report = build_site(root, now=now)
        assert report.problems == [] and report.warnings == [], person.slug
        pages = [p.read_text(encoding="utf-8") for p in (root / "build").rglob("*.html")]
        assert not any("#missing" in page for page in pages), person.slug
        counts[person.slug] = (report.posts, report.private, report.drafts)
    assert counts == {"ada": (33, 2, 1), "sam": (1, 2, 0), "mum": (1, 1, 0)}


# --- from a wheel -----------------------------------------------------------------------

def test_samples_are_read_through_importlib_resources_from_a_zip(tmp_path):
    """Installed from a wheel (a zip), the package reads its samples through
    importlib.resources as from a checkout: the same trees, byte for byte, and the
    demo's story. (Python with -S: no site-packages, so only the zip provides o2m_pub.)"""
    archive = tmp_path / "o2m_pub.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, path.relative_to(PACKAGE.parent).as_posix())
    trees = ["init", "demo/ada", "demo/sam", "demo/mum"]
    script = (
        "import sys, hashlib\n"
        f"sys.path.insert(0, {str(archive)!r})\n"
        "import o2m_pub.site.sample_trees as s, o2m_pub.demo as d\n"
        f"assert s.__file__.startswith({str(archive)!r}), s.__file__\n"
        "def digest(files):\n"
        "    h = hashlib.sha256()\n"
        "    for path, data in sorted(files.items()):\n"
        "        h.update(path.encode() + b'\\0' + hashlib.sha256(data).digest())\n"
        "    return h.hexdigest()\n"
        f"for tree in {trees!r}:\n"
        "    print(tree, digest(s.read_sample(tree)))\n"
        "print('people', ','.join(p.slug for p in d.PEOPLE), d.STORY.anchor)\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    expected = [f"{tree} {_tree_digest(read_sample(tree))}" for tree in trees]
    expected.append(f"people ada,sam,mum {STORY.anchor}")
    assert result.stdout.splitlines() == expected
    assert read_tree(SAMPLES / "demo" / "sam") == read_sample("demo/sam")


def test_package_data_globs_take_every_sample_file():
    """pyproject.toml's package-data patterns, expanded as setuptools does (recursive
    glob from the package folder), cover every file under samples/, nested bundle
    images included."""
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["o2m_pub.site"]
    matched = {Path(m).as_posix() for pattern in patterns
               for m in glob.glob(pattern, root_dir=PACKAGE / "site", recursive=True)}
    files = {p.relative_to(PACKAGE / "site").as_posix()
             for p in SAMPLES_DIR.rglob("*") if p.is_file()}
    assert files and files <= matched
