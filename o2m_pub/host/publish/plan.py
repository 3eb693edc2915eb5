"""What `o2m publish` sends, and in which order: a pure plan over file digests.

Inputs are the files of `build/` (path -> sha256 and size) and the record of what the
target last received; the output is an ordered list of batches and the deletions that
are due. No I/O here: the clock and the grace period are passed in.

The order is the builder's write order (PROTOCOL.md §1.5), applied to a remote host,
so that the host always serves a consistent site even if a publish stops midway:

1. ``objects``: content-addressed and versioned files (``o/``, ``p/``, ``media/``,
   ``static/``). Nothing links to a new one yet.
2. ``pages``: pages at new paths, then rewritten pages, then the public feeds, the
   sitemap and the card (which announce what the pages hold).
3. ``heads``: friends' feed heads (``f/``), last: a head names objects and archive
   pages that are, by now, all on the host.
4. ``deletions``: what `build/` no longer has. Encrypted objects, archive pages and
   static files wait out a grace period first (§3.4: a reader in the middle of a fetch,
   or a cache still serving the previous head, must not meet a missing object). Pages,
   media, feeds and heads go at once, after the heads: a post made private or deleted
   must leave the public host at the next publish.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Mapping

from o2m_pub.protocol.canonical import parse_utc_text, utc_text

# The builder keeps superseded objects as long (private.OBJECT_GRACE, PROTOCOL.md §3.4).
DEFAULT_GRACE = dt.timedelta(days=7)

PHASES = ("objects", "pages", "heads", "deletions")
IMMUTABLE_TOPS = frozenset({"o", "p", "media"})  # named by their hash: never change
# feed.json.sig goes with feed.json (PROTOCOL.md §1.4): a reader meets the two of one
# build, but within the batch that sends them.
FEED_FILES = frozenset({"feed.json", "feed.json.sig", "atom.xml", "sitemap.xml"})
_POST_PAGE = re.compile(r"^\d{4}/[^/]+/index\.html$")
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


@dataclass(frozen=True)
class FileInfo:
    """One file of `build/`: its SHA-256 (hex) and size in bytes."""

    sha: str
    size: int


@dataclass(frozen=True)
class Sent:
    """What the target holds at one path, as far as o2m knows: the digest it sent, and
    since when `build/` has no longer had that path (None while it still has)."""

    sha: str
    size: int
    gone_since: str | None = None  # RFC 3339 UTC, "2026-11-24T10:30:00Z"


@dataclass(frozen=True)
class Batch:
    """Files sent together (one `rclone copy`, or one run of the folder copier).

    `recheck` says the destination's own size-and-time comparison must not be trusted to
    skip a file: true for everything that changes in place (a padded head keeps its size).
    """

    phase: str
    label: str
    files: tuple[tuple[str, FileInfo], ...]
    recheck: bool = True

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.files]

    @property
    def bytes(self) -> int:
        return sum(info.size for _, info in self.files)


@dataclass
class PublishPlan:
    """The ordered work of one publish, and the record changes it implies."""

    batches: list[Batch] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    newly_gone: list[str] = field(default_factory=list)  # mark "gone since now"
    returned: list[str] = field(default_factory=list)  # back in build/, same bytes
    waiting: list[tuple[str, str]] = field(default_factory=list)  # (path, deletable from)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not self.batches and not self.deletions


def path_class(path: str) -> str:
    """`immutable` (o/, p/, media/), `static`, `head` (f/) or `page` (all the rest)."""
    top = path.split("/", 1)[0]
    if top in IMMUTABLE_TOPS:
        return "immutable"
    if top == "static":
        return "static"
    if top == "f":
        return "head"
    return "page"


def has_grace(path: str) -> bool:
    """Whether a path, once gone from build/, stays on the host for the grace period:
    what a reader may be about to fetch after reading an older head or page."""
    return path_class(path) in ("immutable", "static")


def parse_duration(text: str) -> dt.timedelta:
    """`7d`, `12h`, `30m`, `90s`, `2w`, or a bare number of days; `0` for none.

    Raises:
        ValueError: anything else.
    """
    m = _DURATION.fullmatch(text.lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration")
    return dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def duration_text(duration: dt.timedelta) -> str:
    """The text `parse_duration` reads back as `duration` (`7d`, `12h`, `0`), for the
    default shown in `o2m publish --help`."""
    seconds = int(duration.total_seconds())
    for unit in "dhm":
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s" if seconds else "0"


def _page_order(path: str) -> int:
    """Within rewritten pages: post pages before index pages (PROTOCOL.md §1.5)."""
    return 0 if _POST_PAGE.match(path) else 1


def plan_publish(local: Mapping[str, FileInfo], record: Mapping[str, Sent], *,
                 now: dt.datetime, grace: dt.timedelta) -> PublishPlan:
    """Order what the target lacks into phases, and find what is due for deletion.

    A file is sent when the record has no copy of it with the same digest; files the
    target already holds are skipped, so an interrupted publish resumes where it
    stopped. Deletions are planned only for paths recorded as sent.
    """
    plan = PublishPlan()
    todo: dict[str, list[tuple[str, FileInfo]]] = {
        k: [] for k in ("immutable", "static", "new", "page", "feed", "head")}
    for path in sorted(local):
        info = local[path]
        sent = record.get(path)
        if sent is not None and sent.sha == info.sha and sent.size == info.size:
            plan.unchanged += 1
            if sent.gone_since is not None:
                plan.returned.append(path)
            continue
        kind = path_class(path)
        if kind == "page":
            if path in FEED_FILES or path.startswith(".well-known/"):
                kind = "feed"
            elif sent is None or sent.gone_since is not None:
                kind = "new"
        todo[kind].append((path, info))
    todo["page"].sort(key=lambda item: (_page_order(item[0]), item[0]))
    steps = (("objects", "immutable", "new objects and media", False),
             ("objects", "static", "theme files", True),
             ("pages", "new", "new pages", True),
             ("pages", "page", "changed pages", True),
             ("pages", "feed", "feeds, sitemap and card", True),
             ("heads", "head", "friends' feed heads", True))
    for phase, kind, label, recheck in steps:
        if todo[kind]:
            plan.batches.append(Batch(phase, label, tuple(todo[kind]), recheck))

    now_text = utc_text(now)
    for path in sorted(set(record) - set(local)):
        since = record[path].gone_since
        if since is None:
            plan.newly_gone.append(path)
            since = now_text
        if not has_grace(path) or parse_utc_text(since) + grace <= now:
            plan.deletions.append(path)
        else:
            plan.waiting.append((path, utc_text(parse_utc_text(since) + grace)))
    return plan


@dataclass
class CheckResult:
    """How the target's listing compares with the record."""

    missing: list[str] = field(default_factory=list)  # recorded, absent or another size
    unknown: list[str] = field(default_factory=list)  # on the target, not sent by o2m


def compare_listing(record: Mapping[str, Sent], listing: Mapping[str, int]) -> CheckResult:
    """Compare what the target holds (path -> size) with what the record says was sent.

    A recorded file that is missing or has another size is forgotten by the caller, so
    the next plan sends it again; files o2m never sent are reported and left alone.
    """
    result = CheckResult()
    for path, sent in sorted(record.items()):
        if listing.get(path) != sent.size:
            result.missing.append(path)
    result.unknown = sorted(p for p in listing if p not in record)
    return result
