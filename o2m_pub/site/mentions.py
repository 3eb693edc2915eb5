"""Webmention state (PROTOCOL.md §1.6): the mentions received for the owner's public
posts, waiting for approval or shown on their pages, and the record of what was sent,
in `.o2m/mentions.db` (private state, never published); and the reads of the build's
manifest that Webmention needs (which public posts are published, with what).

A received mention goes through these states::

    verifying --verified--> pending --approve--> approved   (shown on the post's page)
        |                      |  \\--reject---> rejected   (kept, so a re-send stays out)
        \\--no link, gone, --> refused   <--no link or gone, on a re-send--/
            too large, ...

A re-sent mention updates the one stored for the same source and post (an approved one
stays approved while it verifies); `o2m mention delete` forgets it. The pure rules
(which URL is a post, what is due, what a page shows) are in `mention_plan`.

    MentionError (O2MError)              the mentions' store cannot be used
    └── UnknownMentionError              no stored mention has that id
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from o2m_pub._sqlite import DBErrors, connect_read_only, open_db
from o2m_pub.config import MANIFEST, STATE_DIR
from o2m_pub.errors import O2MError
from o2m_pub.site.mention_plan import MentionView, PublicPost, SentRecord, mention_view
from o2m_pub.site.model import PostRecord

DB_NAME = "mentions.db"
SCHEMA_VERSION = 1
STATUSES = ("verifying", "pending", "approved", "rejected", "refused")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS received (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, target TEXT NOT NULL, post TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'mention', author_name TEXT NOT NULL DEFAULT '',
    author_url TEXT NOT NULL DEFAULT '', author_photo TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '', published TEXT NOT NULL DEFAULT '',
    received TEXT NOT NULL, verified TEXT NOT NULL DEFAULT '',
    UNIQUE (source, post));
CREATE TABLE IF NOT EXISTS sent (
    post TEXT NOT NULL, target TEXT NOT NULL, source TEXT NOT NULL, digest TEXT NOT NULL,
    outcome TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', endpoint TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, at TEXT NOT NULL, PRIMARY KEY (post, target));
CREATE TABLE IF NOT EXISTS told (post TEXT PRIMARY KEY, digest TEXT NOT NULL);
"""


class MentionError(O2MError):
    """The store of Webmentions cannot be used."""


class UnknownMentionError(MentionError):
    """No stored mention has that id."""

    hint = "`o2m mention list --all` shows every mention with its id"


@dataclass(frozen=True)
class Mention:
    """One received Webmention, as stored."""

    id: int
    source: str
    target: str
    post: str  # the post's path, "2026/trip/"
    status: str  # one of STATUSES
    reason: str  # why it was refused, or the last verification's problem
    kind: str
    author_name: str
    author_url: str
    author_photo: str
    summary: str
    published: str
    received: str
    verified: str


_COLUMNS = ("id, source, target, post, status, reason, kind, author_name, author_url, "
            "author_photo, summary, published, received, verified")


def _now(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


class MentionStore:
    """`.o2m/mentions.db`. One connection; each change is its own transaction."""

    def __init__(self, root: Path) -> None:
        path = root / STATE_DIR / DB_NAME
        where = f"{STATE_DIR}/{DB_NAME}"
        self.errors = DBErrors(where, "the Webmention store", MentionError,
                               damaged_hint=f"move {where} away; mentions received so far "
                               "are lost, and sent ones are sent again")
        self.db = open_db(path, _SCHEMA, SCHEMA_VERSION, self.errors, check_same_thread=False)

    @classmethod
    def exists(cls, root: Path) -> bool:
        return (root / STATE_DIR / DB_NAME).is_file()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "MentionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- received
    def receive(self, source: str, target: str, post: str, now: dt.datetime) -> int:
        """Record a Webmention the endpoint took (or take a re-send of a known one):
        a new one is "verifying" until `verified`; a known one keeps its status."""
        with self.errors:
            self.db.execute(
                "INSERT INTO received (source, target, post, status, received) "
                "VALUES (?, ?, ?, 'verifying', ?) ON CONFLICT (source, post) DO UPDATE SET "
                "target = excluded.target, received = excluded.received",
                (source, target, post, _now(now)))
            return self.db.execute("SELECT id FROM received WHERE source=? AND post=?",
                                   (source, post)).fetchone()[0]

    def verified(self, mention_id: int, outcome: str, *, reason: str = "",
                 facts: Any = None, now: dt.datetime) -> None:  # noqa: ANN401
        """Apply a verification (`reader.webmention.Verification` fields): "verified"
        stores the facts, and a new or refused mention waits for approval; "no link" and
        "gone" refuse it, an approved one too (it leaves the page); any other outcome
        refuses a new mention and only notes the problem on a known one."""
        with self.errors:
            row = self.db.execute("SELECT status FROM received WHERE id=?",
                                  (mention_id,)).fetchone()
            if row is None:
                return
            status = row[0]
            if outcome == "verified":
                new = "pending" if status in ("verifying", "refused") else status
                self.db.execute(
                    "UPDATE received SET status=?, reason='', kind=?, author_name=?, "
                    "author_url=?, author_photo=?, summary=?, published=?, verified=? "
                    "WHERE id=?",
                    (new, facts.kind, facts.author_name, facts.author_url,
                     facts.author_photo, facts.summary, facts.published,
                     _now(now), mention_id))
                return
            new = "refused" if outcome in ("no link", "gone") or status == "verifying" \
                else status
            self.db.execute("UPDATE received SET status=?, reason=?, verified=? WHERE id=?",
                            (new, reason or outcome, _now(now), mention_id))

    def get(self, mention_id: int) -> Mention:
        with self.errors:
            row = self.db.execute(f"SELECT {_COLUMNS} FROM received WHERE id=?",
                                  (mention_id,)).fetchone()
        if row is None:
            raise UnknownMentionError(f"no mention has the id {mention_id}")
        return Mention(*row)

    def mentions(self, statuses: Iterable[str] = STATUSES) -> list[Mention]:
        wanted = tuple(statuses)
        marks = ",".join("?" * len(wanted))
        with self.errors:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM received WHERE status IN "
                                   f"({marks}) ORDER BY id", wanted).fetchall()
        return [Mention(*row) for row in rows]

    def unverified(self) -> list[Mention]:
        """Those still "verifying" (a server stopped before it was done with them)."""
        return self.mentions(("verifying",))

    def set_status(self, mention_id: int, status: str) -> Mention:
        """Approve or reject one (`status`: "approved" or "rejected").

        Raises:
            UnknownMentionError: no such id.
            MentionError: it is not verified (still verifying, or refused).
        """
        mention = self.get(mention_id)
        if mention.status in ("verifying", "refused"):
            raise MentionError(f"mention {mention_id} is {mention.status}"
                               f"{' (' + mention.reason + ')' if mention.reason else ''}: "
                               "only a verified mention can be approved or rejected",
                               hint="the sender can send it again once its page links here")
        with self.errors:
            self.db.execute("UPDATE received SET status=? WHERE id=?", (status, mention_id))
        return self.get(mention_id)

    def delete(self, mention_id: int) -> Mention:
        mention = self.get(mention_id)
        with self.errors:
            self.db.execute("DELETE FROM received WHERE id=?", (mention_id,))
        return mention

    def approved_views(self) -> dict[str, tuple[MentionView, ...]]:
        """Post path -> its approved mentions as its page shows them, oldest first."""
        out: dict[str, list[MentionView]] = {}
        with self.errors:
            rows = self.db.execute(
                "SELECT post, source, kind, author_name, published, verified FROM received "
                "WHERE status='approved' ORDER BY id").fetchall()
        for post, source, kind, name, published, verified in rows:
            out.setdefault(post, []).append(mention_view(source, kind, name, published,
                                                         verified))
        return {post: tuple(sorted(views, key=lambda v: (v.date, v.url)))
                for post, views in out.items()}

    # -- sent
    def sent(self) -> dict[tuple[str, str], SentRecord]:
        with self.errors:
            rows = self.db.execute("SELECT post, target, source, digest, outcome, detail, "
                                   "endpoint, attempts, at FROM sent").fetchall()
        return {(r[0], r[1]): SentRecord(*r) for r in rows}

    def told(self) -> dict[str, str]:
        with self.errors:
            return dict(self.db.execute("SELECT post, digest FROM told"))

    def record_sent(self, record: SentRecord) -> None:
        with self.errors:
            self.db.execute("INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (record.post, record.target, record.source, record.digest,
                             record.outcome, record.detail, record.endpoint, record.attempts,
                             record.at))

    def set_told(self, told: dict[str, str | None]) -> None:
        """Post path -> the version whose mentions are all dealt with (None: forget)."""
        with self.errors:
            self.db.executemany("DELETE FROM told WHERE post=?",
                                [(p,) for p, d in told.items() if d is None])
            self.db.executemany("INSERT OR REPLACE INTO told VALUES (?, ?)",
                                [(p, d) for p, d in told.items() if d is not None])


def approved_views(root: Path) -> dict[str, tuple[MentionView, ...]]:
    """What the build puts on post pages; nothing when no mention was ever stored."""
    if not MentionStore.exists(root):
        return {}
    with MentionStore(root) as store:
        return store.approved_views()


# ---------------------------------------------------------------- the build's manifest


def _manifest_rows(root: Path) -> tuple[list[PostRecord], set[str], sqlite3.Connection] | None:
    """The last build's post records and output paths, read-only (None: never built,
    or a manifest of another version)."""
    path = root / STATE_DIR / MANIFEST
    if not path.is_file():
        return None
    db = connect_read_only(path, check_same_thread=False)
    try:
        rows = db.execute("SELECT digest, list_digest, record FROM sources").fetchall()
        records = PostRecord.many_from_json([r[0] for r in rows], [r[2] for r in rows],
                                            [r[1] for r in rows])
        outputs = {r[0] for r in db.execute(
            "SELECT path FROM outputs WHERE path LIKE '%/index.html'")}
    except (sqlite3.Error, ValueError, TypeError):
        db.close()
        return None
    return records, outputs, db


def _is_published(record: PostRecord, outputs: set[str]) -> bool:
    return record.is_public and not record.draft and f"{record.path}index.html" in outputs


def published_posts(root: Path) -> list[PublicPost]:
    """The public posts whose pages the last build wrote, oldest first; each body is
    read from the build's cache when asked for."""
    found = _manifest_rows(root)
    if found is None:
        return []
    records, outputs, db = found
    # the body is read on demand, from a connection of its own: the caller may be long
    db.close()
    db_path = root / STATE_DIR / MANIFEST

    def body_of(key: str):  # noqa: ANN202 - () -> str
        def body() -> str:
            with connect_read_only(db_path) as conn:
                row = conn.execute("SELECT html FROM bodies WHERE key=?", (key,)).fetchone()
            return row[0] if row else ""
        return body

    posts = sorted((r for r in records if _is_published(r, outputs)), key=lambda r: r.sort_key)
    return [PublicPost(r.path, r.digest, r.reply_to, body_of(r.render_key)) for r in posts]


class PublicPaths:
    """The paths of the published public posts, for the Webmention endpoint's target
    check (on the server's request path): read from the build's manifest again only
    when it changed since (its files' times and sizes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stamp: tuple | None = None
        self._paths: frozenset[str] = frozenset()

    def _read_stamp(self) -> tuple:
        stamp = []
        for name in (MANIFEST, f"{MANIFEST}-wal"):
            try:
                st = os.stat(self.root / STATE_DIR / name)
                stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    def __call__(self) -> frozenset[str]:
        stamp = self._read_stamp()
        if stamp != self._stamp:
            found = _manifest_rows(self.root)
            paths: frozenset[str] = frozenset()
            if found is not None:
                records, outputs, db = found
                db.close()
                paths = frozenset(r.path for r in records if _is_published(r, outputs))
            self._stamp, self._paths = stamp, paths
        return self._paths


__all__ = ["Mention", "MentionError", "MentionStore", "PublicPaths", "UnknownMentionError",
           "approved_views", "published_posts"]
