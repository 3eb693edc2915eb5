"""The sample content `o2m init` and `o2m demo` copy: plain `content/` trees in `samples/`.

`samples/init/` holds the post a new site starts with, `samples/demo/` one tree per
person of the demo (and `demo.toml`, read by `o2m_pub.demo`). They are files a person
could have written, read through `importlib.resources` so that they are found in an
installed wheel as in a checkout.

Dating is the only logic, and it is pure (files and a day in, files out): the demo's
posts are dated as if written up to an *anchor* day; `date_tree` moves each one by the
days from the anchor to today, so the demo always looks recent, and moves a seasonal
post (frost, tomatoes) by whole months into one of its months, so it never shows frost
in July. A post whose year changes moves to that year's folder, and the relative `.md`
links between posts are rewritten to follow it. The same files and day give the same
result, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Collection, Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from o2m_pub._files import write_file

SAMPLES: Traversable = resources.files("o2m_pub.site") / "samples"

Files = dict[str, bytes]  # a tree: "/"-separated path below its root -> the file's bytes

_YEAR_FOLDER = re.compile(r"\d{4}")
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.M)
# A `date:` or `updated:` line of the front matter: the day is what moves; a time of
# day (or zone) after it is kept as written.
_DATE_LINE = re.compile(r"^(?P<key>date|updated)(?P<sep>[ \t]*:[ \t]*[\"']?)"
                        r"(?P<day>\d{4}-\d{2}-\d{2})(?P<rest>.*)$", re.M)
_INLINE_LINK = re.compile(r"(?P<open>\]\(<?)(?P<target>[^()\s<>#]+)(?P<end>[^()\s<>]*>?[\s)])")
_AVERAGE_MONTH_DAYS = 30.44


# --- reading and writing trees (the only I/O) ---------------------------------------

def read_tree(root: Traversable) -> Files:
    """Every file under `root`, by its path below it, sorted by path.

    `root` is any `importlib.resources` Traversable: a folder of the package in a
    checkout, or one inside an installed wheel or zip.
    """
    files: Files = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            if entry.name == "__pycache__":
                continue
            path = f"{prefix}{entry.name}"
            if entry.is_dir():
                stack.append((entry, f"{path}/"))
            else:
                files[path] = entry.read_bytes()
    return dict(sorted(files.items()))


def read_sample(name: str) -> Files:
    """The tree of `samples/NAME` (e.g. "init", "demo/ada")."""
    return read_tree(SAMPLES.joinpath(*name.split("/")))


def sample_text(name: str) -> str:
    """One file of `samples/` as text (e.g. "demo/demo.toml")."""
    return SAMPLES.joinpath(*name.split("/")).read_text(encoding="utf-8")


def write_tree(files: Mapping[str, bytes], folder: Path) -> list[Path]:
    """Write `files` under `folder` (made as needed); return the files written.

    Raises:
        ValueError: a path would leave `folder`.
    """
    written = []
    for path, data in files.items():
        parts = path.split("/")
        if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"sample path {path!r} leaves its folder")
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, data, sync=False)
        written.append(target)
    return written


# --- dating (pure) ------------------------------------------------------------------

def date_now(files: Mapping[str, bytes], now: dt.datetime) -> Files:
    """The tree as written at `now`, for `o2m init`: each post's `date:` is `now`, and
    every file goes in the folder of `now`'s year, where the hello post tells the
    owner to keep posts."""
    stamp = now.replace(microsecond=0).isoformat()
    return {f"{now.year:04d}/{path}": (_set_date(data, stamp) if path.endswith(".md") else data)
            for path, data in files.items()}


def date_tree(files: Mapping[str, bytes], today: dt.date, *, anchor: dt.date,
              seasonal: Mapping[str, Collection[int]] | None = None) -> Files:
    """The tree as if its posts, written up to `anchor`, had been written up to `today`.

    Each post's `date:` and `updated:` move by the days from `anchor` to `today`, their
    time of day kept. A post named in `seasonal` moves instead by whole months into
    one of its months, nearest first, kept between yesterday and the oldest other post
    and off days that already have a post. An `updated:` moves with its post's date,
    but never past yesterday. A post whose year changes moves to that year's folder
    (a page bundle with its files), and relative `.md` links between posts follow.

    Args:
        files: the tree, by path; `.md` files are posts, each with a `date:`.
        today: the day the tree is copied, in the site's time zone.
        anchor: the day the tree's dates are written relative to.
        seasonal: tree path of a post -> the months (1-12) it belongs in.

    Returns:
        The new tree; the same arguments give the same bytes.

    Raises:
        ValueError: a post has no `date:` or is not dated before `anchor`; a seasonal
            path is not a post of the tree, or a month is not 1-12.
    """
    seasonal = dict(seasonal or {})
    days = {path: _post_day(data, path) for path, data in files.items() if path.endswith(".md")}
    for path, months in seasonal.items():
        if path not in days:
            raise ValueError(f"seasonal post {path!r} is not in the tree")
        if not months or not set(months) <= set(range(1, 13)):
            raise ValueError(f"seasonal post {path!r}: months must be numbers 1-12")
    for path, day in days.items():
        if day >= anchor:
            raise ValueError(f"{path}: dated {day}, not before the anchor {anchor}")
    ages = _ages({path: (anchor - day).days for path, day in days.items()}, seasonal, today)
    shifts = {path: (today - dt.timedelta(days=ages[path])) - days[path] for path in days}
    latest = today - dt.timedelta(days=1)
    destinations = _destinations(files, {path: (days[path] + shifts[path]).year
                                         for path in days})
    moved: Files = {}
    for path, data in files.items():
        if path in days:
            text = _shift_dates(data.decode("utf-8"), shifts[path], latest)
            data = _follow_links(text, path, destinations).encode("utf-8")
        moved[destinations[path]] = data
    if len(moved) != len(files):
        raise ValueError("two sample files would move to the same path")
    return dict(sorted(moved.items()))


def _front_matter_length(text: str) -> int:
    """Where the front matter ends (0 when there is none): dates are only read there."""
    if not text.startswith(("---\n", "---\r\n")):
        return 0
    end = _FRONT_MATTER_END.search(text, text.index("\n") + 1)
    return end.start() if end else 0


def _post_day(data: bytes, path: str) -> dt.date:
    text = data.decode("utf-8")
    front = text[:_front_matter_length(text)]
    for match in _DATE_LINE.finditer(front):
        if match["key"] == "date":
            return dt.date.fromisoformat(match["day"])
    raise ValueError(f"{path}: no `date:` line in the front matter")


def _set_date(data: bytes, stamp: str) -> bytes:
    text = data.decode("utf-8")
    end = _front_matter_length(text)
    front = _DATE_LINE.sub(lambda m: f"date: {stamp}" if m["key"] == "date" else m[0],
                           text[:end])
    return (front + text[end:]).encode("utf-8")


def _shift_dates(text: str, shift: dt.timedelta, latest: dt.date) -> str:
    """Move the days of the front matter's `date:` and `updated:` lines by `shift`;
    an `updated:` no later than `latest`."""
    def moved(m: re.Match[str]) -> str:
        day = dt.date.fromisoformat(m["day"]) + shift
        if m["key"] == "updated":
            day = min(day, latest)
        return f"{m['key']}{m['sep']}{day.isoformat()}{m['rest']}"

    end = _front_matter_length(text)
    return _DATE_LINE.sub(moved, text[:end]) + text[end:]


def _seasonal_candidates(age: int) -> Iterator[int]:
    """Ages to try for a seasonal post, nearest first: whole months earlier or later,
    each nudged by up to three days."""
    for months in range(13):
        for sign in (-1, 1):
            for nudge in (0, 1, -1, 2, -2, 3, -3):
                yield age + sign * round(months * _AVERAGE_MONTH_DAYS) + nudge


def _ages(ages: Mapping[str, int], seasonal: Mapping[str, Collection[int]],
          today: dt.date) -> dict[str, int]:
    """Each post's age in days before `today`: its age at the anchor, except for a
    seasonal post, moved by whole months into one of its months. Whole months keep the
    day of the month, so moved posts stay spread out instead of piling up on the edge
    of a season; a nudge of a day or two keeps them off days that already have a post.
    The oldest posts are placed first; all stay between yesterday and the oldest post
    that is not seasonal (the first post stays the first)."""
    placed = {path: age for path, age in ages.items() if path not in seasonal}
    oldest = max(placed.values(), default=max(ages.values(), default=0) + 1)
    taken = set(placed.values())
    for path in sorted(seasonal, key=lambda p: (-ages[p], p)):
        months = seasonal[path]
        age = next((days for days in _seasonal_candidates(ages[path])
                    if 1 <= days < oldest and days not in taken
                    and (today - dt.timedelta(days=days)).month in months), None)
        if age is None:
            raise ValueError(f"seasonal post {path!r} finds no free day in its months")
        placed[path] = age
        taken.add(age)
    return placed


def _destinations(files: Mapping[str, bytes], years: Mapping[str, int]) -> dict[str, str]:
    """Where each file goes: a post under a year folder goes to its new year's folder;
    a file of a page bundle goes with the bundle's index.md; anything else stays."""
    destinations = {}
    for path in files:
        parts = path.split("/")
        owner = path if path in years else _bundle_index(path, years)
        if owner is None or len(parts) < 2 or not _YEAR_FOLDER.fullmatch(parts[0]):
            destinations[path] = path
        else:
            destinations[path] = "/".join([f"{years[owner]:04d}", *parts[1:]])
    return destinations


def _bundle_index(path: str, posts: Collection[str]) -> str | None:
    """The index.md of the page bundle holding `path`, if it is in one."""
    folder = posixpath.dirname(path)
    while folder:
        if f"{folder}/index.md" in posts:
            return f"{folder}/index.md"
        folder = posixpath.dirname(folder)
    return None


def _follow_links(text: str, path: str, destinations: Mapping[str, str]) -> str:
    """Rewrite the relative links `](../2025/post.md)` of the post at `path` so they
    still reach their target after both have moved; other links stay as written."""
    here, there = posixpath.dirname(path), posixpath.dirname(destinations[path])

    def follow(m: re.Match[str]) -> str:
        target = posixpath.normpath(posixpath.join(here, m["target"]))
        if target not in destinations:
            return m[0]
        new = posixpath.relpath(destinations[target], there or ".")
        return f"{m['open']}{new}{m['end']}" if new != m["target"] else m[0]

    return _INLINE_LINK.sub(follow, text)
