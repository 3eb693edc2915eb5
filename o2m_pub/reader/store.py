"""The reader's store: friends' posts, feed state and notifications in SQLite.

Lives at ``<site>/.o2m/reader.db`` (the private state folder, 0700; the database 0600,
never under ``build/``, never served). Decrypted attachments are cached beside it
(`attachments.AttachmentCache`, ``ReaderStore.attachments``); the values it reads and
writes are in `model.py`.

Crash safety (THREATS.md 47): WAL journal, ``synchronous=FULL``, and one transaction per
accepted friend update, holding the items, the sequence high-water mark, the head's
digest and the HTTP validators together, so a kill -9 at any point leaves all of an
update or none of it. Attachment files are written whole before the transaction that
refers to them commits; an orphan file is harmless.

Attachments are credited per friend (THREATS.md 23): the decrypted bytes are cached once,
by the hash of their object, but a friend's post shows a cached attachment without
downloading it again only if that friend's own download of it matched its hash and
opened with the key their post gives (`attachment_credits`, written with the post).

Rollback (THREATS.md 10): the fetcher compares a head with the state it read before it
began; `apply_update` compares again inside its write transaction, so that of two
overlapping fetches the older head can never overwrite the newer. `fetch_lock` keeps
to one `o2m fetch` per site at a time anyway.

Read API (used by `o2m timeline`, `o2m show`, `o2m notifications` and the desk):
`ReaderStore.open`, `timeline`, `post`, `mark_read`, `unread_count`, `friends_summary`,
`notifications`, `add_notification`, `mark_notifications_seen`, `attachments.path`.
Write API (used by the fetcher): `friend_state`, `credited_attachments`, `apply_update`,
`record_failure`, `attachments.save`, `fetch_lock`; and for the renderings it makes
after each update (`render.py`, schema 2): `unrendered`, `save_rendered`.

    StoreError (O2MError)          the reader's store cannot be used
    ├── StoreBusyError             another process holds the store (or the fetch lock)
    ├── StaleUpdateError           an update's head is not newer than the stored one
    ├── OverQuotaError             an update would take a friend past their quota
    └── AmbiguousPostError         a short id prefix matches several posts

Quota (THREATS.md 52): each post row keeps `size`, the bytes it costs (its text as
received, its rendering, its attachments); `apply_update` refuses, whole, an update
after which a friend's posts would pass the quota, so a friend's share of the store
is bounded across runs, not only per run. Long texts reach the store through the
spool (`spool.py`), read back one at a time in the update's transaction.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from o2m_pub import _faults
from o2m_pub._sqlite import DBErrors, has_table, open_db
from o2m_pub.config import STATE_DIR
from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import utc_text
from o2m_pub.protocol.feeds import EquivocationError, RollbackError, is_newer
from o2m_pub.protocol.public_media import media_from_json
from o2m_pub.reader import search
from o2m_pub.reader.attachments import AttachmentCache
from o2m_pub.reader.model import (
    FeedStateChange,
    FriendState,
    FriendSummary,
    FriendUpdate,
    Notification,
    Reason,
    StoredPost,
)
from o2m_pub.reader.post_rows import (
    attachments_size,
    delete_post,
    sha256_of_text,
    upsert_posts,
    used_after,
    used_bytes,
)
from o2m_pub.reader.spool import SPOOL_DIR, TextSpool
from o2m_pub.reader.thread_store import THREAD_SCHEMA, apply_thread_update

if TYPE_CHECKING:
    from o2m_pub.friends.friend_store import FriendStore

DB_NAME = "reader.db"
FETCH_LOCK = "fetch.lock"
OBJECTS_DIR = "objects"
SCHEMA_VERSION = 4
# Schema 4 (THREATS.md 54) keeps with each public post the files its feed item lists
# (`_o2m.media`, PROTOCOL.md §1.4: URL, SHA-256, size), the only photos of the friend's
# site the desk shows inline. `_migrate` adds the column (an older post lists none: its
# photos are links), forgets which version of each public post is stored, and marks
# every friend's feed.json to be read once more, whole, at their next fetch
# (`pub_reread`), so their posts get their lists without waiting for a new publish;
# the rollback guard (`pub_seq`, `pub_sha256`) stays as it is.
# Schema 3 (protocol 1.1, conversations, PROTOCOL.md §4) adds the tables of
# `thread_store`: replies and reactions, and the replies the owner hid; made by the
# schema's CREATE ... IF NOT EXISTS when a store of 2 is opened (nothing to convert).
# Schema 2 (protocol 1.1 and the 2026-12 security review) adds to a store of schema 1,
# in `_migrate`: in friend_state, what the fetcher keeps of a friend's card and signed
# public feed; in posts, each post's rendering, made once by the fetch (`render.py`,
# finding 1: posts of an older store are rendered by the next fetch of their friend),
# and its cost in bytes for the per-friend quota (finding 5: computed from what the
# store holds).
_ADDED_IN_2 = ("card_etag TEXT", "card_last_modified TEXT", "sig_etag TEXT",
               "sig_last_modified TEXT", "pub_seq INTEGER", "pub_sha256 TEXT")
_COLUMNS_OF_2 = """\
    , card_etag TEXT, card_last_modified TEXT  -- validators of their published card
    , sig_etag TEXT, sig_last_modified TEXT    -- validators of their feed.json.sig (§1.4)
    , pub_seq INTEGER, pub_sha256 TEXT  -- the feed.json.sig accepted: rollback guard (§1.4)
    , pub_reread INTEGER NOT NULL DEFAULT 0  -- 1: read feed.json whole at the next fetch
"""
_RENDERED_COLUMNS = (
    ("rendered", "TEXT"),  # sanitised HTML of the body; NULL: not rendered yet
    ("rendered_images", "TEXT NOT NULL DEFAULT '[]'"),  # attachments it shows inline
    ("too_complex", "INTEGER NOT NULL DEFAULT 0"),  # 1: shown as its escaped text
)
_SIZE_COLUMN = ("size", "INTEGER NOT NULL DEFAULT 0")
_MEDIA_COLUMN = ("media", "TEXT NOT NULL DEFAULT '[]'")  # schema 4
_REREAD_COLUMN = ("pub_reread", "INTEGER NOT NULL DEFAULT 0")  # schema 4
_SIZE_OF_ROW = ("length(CAST(coalesce(markdown, '') AS BLOB)) + "
                "length(CAST(coalesce(html, '') AS BLOB)) + "
                "length(CAST(coalesce(rendered, '') AS BLOB))")

# Added to schema 1 later: made when a store of before is first opened (an older o2m
# ignores it).
_CREDITS_TABLE = """
CREATE TABLE IF NOT EXISTS attachment_credits (
    friend TEXT NOT NULL,             -- whose own download and key check ...
    hash TEXT NOT NULL,               -- ... vouched for the cached attachment of this hash
    PRIMARY KEY (friend, hash)
) WITHOUT ROWID
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS friend_state (
    friend TEXT PRIMARY KEY,          -- the local friend name (keys/friends/NAME.json)
    sign_pk TEXT NOT NULL,            -- b64u: the key the stored state was verified with
    seq INTEGER,                      -- the accepted high-water mark (NULL: none yet)
    head_digest TEXT,                 -- hex SHA-256 of the accepted head's signed bytes
    head_signed BLOB,                 -- those bytes (equivocation check, PROTOCOL §3.5 step 8)
    updated TEXT, expires TEXT,       -- of the accepted head
    pages TEXT NOT NULL DEFAULT '[]', -- JSON list of archive page hashes already stored
    etag TEXT, last_modified TEXT,    -- validators of the head (conditional requests)
    pub_etag TEXT, pub_last_modified TEXT,  -- validators of their public feed.json
    first_seen TEXT,                  -- when their feed for us first appeared
    last_attempt TEXT, last_success TEXT,
    failing_since TEXT,               -- first failure of the current run of failures
    last_reason TEXT, last_error TEXT,-- reason code and one-line detail of the last failure
    stale_since TEXT,                 -- the expiry of a stale head (freeze warning)
    keys_for TEXT,                    -- the four public keys the cached feed secrets are for
    feed_name TEXT, head_key BLOB     -- §3.1 secrets of their feed for us (no unlock needed)
""" + _COLUMNS_OF_2 + """);
CREATE TABLE IF NOT EXISTS posts (
    friend TEXT NOT NULL,
    id TEXT NOT NULL,                 -- the item id in their feed, or the permalink (public)
    short_id TEXT NOT NULL UNIQUE,
    audience TEXT NOT NULL,           -- 'private' (their feed for us) or 'public' (feed.json)
    title TEXT,
    markdown TEXT,                    -- the source as they published it (private posts)
    html TEXT,                        -- UNTRUSTED html of a public post: sanitise before use
    summary TEXT,
    date TEXT NOT NULL,               -- UTC, RFC 3339 with Z: the timeline's order
    updated TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    reply_to TEXT, url TEXT,
    attachments TEXT NOT NULL DEFAULT '[]',
    object_hash TEXT,                 -- the object this version came from (refetch guard)
    read INTEGER NOT NULL DEFAULT 0,
    fetched TEXT NOT NULL,
    rendered TEXT,                    -- sanitised HTML, made by the fetch (render.py)
    rendered_images TEXT NOT NULL DEFAULT '[]',
    too_complex INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,  -- bytes: texts, rendering, attachments (quota)
    media TEXT NOT NULL DEFAULT '[]', -- a public post's listed files (§1.4 _o2m.media)
    PRIMARY KEY (friend, id)
);
CREATE INDEX IF NOT EXISTS posts_by_date ON posts (date DESC, short_id DESC);
CREATE INDEX IF NOT EXISTS posts_by_friend ON posts (friend, date DESC, short_id DESC);
CREATE INDEX IF NOT EXISTS posts_unread ON posts (read) WHERE read = 0;
CREATE INDEX IF NOT EXISTS posts_unrendered ON posts (friend, date) WHERE rendered IS NULL;
CREATE INDEX IF NOT EXISTS posts_size ON posts (friend, size);
CREATE TABLE IF NOT EXISTS post_tags (
    tag TEXT NOT NULL, date TEXT NOT NULL, short_id TEXT NOT NULL,
    PRIMARY KEY (tag, date, short_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS post_tags_by_post ON post_tags (short_id);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,               -- see model.NOTIFICATION_KINDS
    friend TEXT,
    detail TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_unseen ON notifications (seen, id);
""" + _CREDITS_TABLE + ";" + THREAD_SCHEMA


class StoreError(O2MError):
    """The reader's store cannot be used."""

    hint = ("delete .o2m/reader.db to start the timeline afresh; the next `o2m fetch` "
            "gathers your friends' feeds again")


class StoreBusyError(StoreError):
    """The reader's store is busy."""

    hint = ("another o2m process (a fetch, or the reader) is writing to it; try again "
            "when it is done")


class StaleUpdateError(StoreError):
    """A friend's fetched head is not newer than the one stored meanwhile: nothing of it
    is stored. `reason` is ROLLBACK (lower, or the same seq with the same bytes) or
    EQUIVOCATION (the same seq with other bytes), as the fetcher reports them."""

    hint = "another fetch stored a newer head of theirs while this one ran"

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PostFacts:
    """A stored post's identity and the lengths of its texts (characters)."""

    short_id: str
    friend: str
    object_hash: str | None
    markdown_chars: int | None  # None: no Markdown (a public post)
    html_chars: int


class OverQuotaError(StoreError):
    """A friend's update would take their posts past the quota for one friend: nothing
    of it is stored."""

    hint = "raise [reader] quota_per_friend in o2m.toml (docs/CONFIG.md) to take it"

    def __init__(self, friend: str, used: int, quota: int) -> None:
        super().__init__(f"storing it would take {friend}'s posts and attachments to "
                         f"{used:,} bytes, over the quota of {quota:,} for one friend")
        self.used, self.quota = used, quota


class AmbiguousPostError(StoreError):
    """That short id matches more than one post."""

    def __init__(self, prefix: str, matches: Sequence[str]) -> None:
        super().__init__(f"{prefix!r} matches {len(matches)} posts: {', '.join(matches[:5])}",
                         hint="give more characters of the id")


_STATE_COLUMNS = frozenset(FriendState.__dataclass_fields__) - {"friend", "sign_pk"}


def _stamp(now: dt.datetime | None) -> str:
    """`now`, or the clock's time, as the store writes times (§2.1)."""
    return utc_text(now or dt.datetime.now(dt.timezone.utc))


# ---------------------------------------------------------------- the store


class ReaderStore:
    """The reader's SQLite store. One instance per thread (sqlite3 connections are not
    shared); open it with `ReaderStore.open(site_root)`."""

    def __init__(self, db: sqlite3.Connection, root: Path) -> None:
        self.db = db
        self.root = root
        self.state_dir = root / STATE_DIR
        self.attachments = AttachmentCache(self.state_dir / OBJECTS_DIR)
        self.spool = TextSpool(self.state_dir / SPOOL_DIR)
        self.own_key: str | None = None  # b64u: whose posts replies notify (§4)
        # compares a stored text with a new one without holding the old in Python
        db.create_function("o2m_sha256", 1, sha256_of_text, deterministic=True)

    # -- opening

    @classmethod
    def open(cls, root: Path | str) -> "ReaderStore":
        """Open (creating it if need be) the store of the site at `root`.

        Raises:
            StoreError: the database is damaged or from a newer o2m.
            StoreBusyError: another process holds it past the busy timeout.
        """
        root = Path(root)
        db = open_db(root / STATE_DIR / DB_NAME, _SCHEMA, SCHEMA_VERSION, _ERRORS,
                     legacy_version=_legacy_version, migrate=_migrate, foreign_keys=True,
                     check_same_thread=False)
        try:
            with _ERRORS:
                search.prepare(db)  # the full-text index: a migration step of its own
        except BaseException:
            db.close()
            raise
        return cls(db, root)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ReaderStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading posts

    def timeline(self, limit: int = 20, before: str | None = None, friend: str | None = None,
                 tag: str | None = None, since: str | None = None) -> list[StoredPost]:
        """The newest posts first, at most `limit` of them.

        Args:
            limit: page size.
            before: the `cursor` of the last post of the previous page (keyset paging:
                every page costs the same, however deep).
            friend: only this friend's posts (their local name).
            tag: only posts with this tag.
            since: only posts dated at or after this RFC 3339 UTC time (or date prefix,
                e.g. "2026-11-01").
        """
        # With a tag, walk the tag index in timeline order and join each post by its
        # short id; else walk posts_by_date (or posts_by_friend). Either way the first
        # page reads `limit` index entries, however many posts there are.
        order = "t" if tag is not None else "p"
        where, args = [], []
        if tag is not None:
            where.append("t.tag = ?")
            args.append(tag)
        if before:
            date, _, short = before.partition("|")
            where.append(f"({order}.date < ? OR ({order}.date = ? AND {order}.short_id < ?))")
            args += [date, date, short]
        if friend is not None:
            where.append("p.friend = ?")
            args.append(friend)
        if since:
            where.append(f"{order}.date >= ?")
            args.append(since)
        source = ("post_tags t JOIN posts p ON p.short_id = t.short_id" if tag is not None
                  else "posts p")
        sql = (f"SELECT p.* FROM {source}" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {order}.date DESC, {order}.short_id DESC LIMIT ?")
        rows = self.db.execute(sql, [*args, limit]).fetchall()
        return [_post(self.db, r) for r in rows]

    def post(self, short_id: str) -> StoredPost | None:
        """The post whose short id is, or starts with, `short_id` (at least 4
        characters); None when none does.

        Raises:
            AmbiguousPostError: the prefix matches several posts.
        """
        prefix = short_id.strip().lower()
        if len(prefix) < 4:
            return None
        rows = self.db.execute(
            "SELECT * FROM posts WHERE short_id >= ? AND short_id < ? ORDER BY short_id LIMIT 6",
            (prefix, prefix + "\uffff")).fetchall()
        exact = [r for r in rows if r[2] == prefix]
        if exact:
            return _post(self.db, exact[0])
        if len(rows) > 1:
            raise AmbiguousPostError(prefix, [r[2] for r in rows])
        return _post(self.db, rows[0]) if rows else None

    def mark_read(self, ids: Iterable[str], read: bool = True) -> int:
        """Mark posts (by full short id) read, or unread; returns how many changed."""
        ids = list(ids)
        with _transaction(self.db):
            n = 0
            for short in ids:
                n += self.db.execute("UPDATE posts SET read = ? WHERE short_id = ? AND read != ?",
                                     (int(read), short, int(read))).rowcount
        return n

    def unread_count(self, friend: str | None = None) -> int:
        """How many stored posts are not marked read (of one friend, or of all)."""
        if friend is None:
            return self.db.execute("SELECT count(*) FROM posts WHERE read = 0").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM posts WHERE read = 0 AND friend = ?",
                               (friend,)).fetchone()[0]

    # -- renderings (render.py)

    def unrendered(self, friend: str, limit: int = 100_000) -> list[str]:
        """The short ids of `friend`'s posts not rendered yet, newest first."""
        return [r[0] for r in self.db.execute(
            "SELECT short_id FROM posts WHERE friend = ? AND rendered IS NULL "
            "ORDER BY date DESC LIMIT ?", (friend, limit))]

    def save_rendered(self, post: StoredPost | PostFacts, html: str, images: Sequence[str],
                      too_complex: bool, quota: int | None = None) -> bool | None:
        """Keep the rendering of `post` (too complex: none, it is shown as its text),
        unless the stored post changed meanwhile (then it stays to be rendered). A
        rendering that would take its friend past `quota` is not kept either: the post
        is shown as its text.

        Returns:
            None when nothing was kept (the post changed), else whether the post is
            shown as its text.
        """
        if too_complex:
            html, images = "", ()
        with _transaction(self.db):
            size = len(html.encode("utf-8"))
            if quota is not None and size and used_bytes(self.db, post.friend) + size > quota:
                html, images, too_complex, size = "", (), True, 0
            kept = self.db.execute(
                "UPDATE posts SET rendered = ?, rendered_images = ?, too_complex = ?, "
                "size = size + ? WHERE short_id = ? AND rendered IS NULL AND object_hash IS ?",
                (html, json.dumps(list(images)), int(too_complex), size, post.short_id,
                 post.object_hash)).rowcount == 1
            return too_complex if kept else None

    def used(self, friend: str) -> int:
        """The bytes `friend`'s posts take in the store (the quota's measure)."""
        return used_bytes(self.db, friend)

    def post_facts(self, short_id: str) -> PostFacts | None:
        """What rendering a post needs to know before reading its text (which may be
        megabytes), or None when it is gone."""
        row = self.db.execute(
            "SELECT short_id, friend, object_hash, length(markdown), coalesce(length(html), 0) "
            "FROM posts WHERE short_id = ?", (short_id,)).fetchone()
        return PostFacts(*row) if row else None

    # -- friends and notifications

    def friends_summary(self) -> list[FriendSummary]:
        """Every friend the fetcher knows of, by name, with counts and feed health."""
        rows = self.db.execute(
            "SELECT s.friend, "
            " (SELECT count(*) FROM posts p WHERE p.friend = s.friend),"
            " (SELECT count(*) FROM posts p WHERE p.friend = s.friend AND p.read = 0),"
            " s.seq, s.last_success, s.first_seen, s.failing_since, s.last_reason,"
            " s.last_error, s.stale_since, s.expires FROM friend_state s ORDER BY s.friend"
        ).fetchall()
        return [FriendSummary(*r) for r in rows]

    def notifications(self, unseen_only: bool = False, limit: int = 200) -> list[Notification]:
        """Notifications, newest first."""
        sql = "SELECT id, kind, friend, detail, created, seen FROM notifications"
        if unseen_only:
            sql += " WHERE seen = 0"
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [Notification(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    def add_notification(self, kind: str, friend: str | None, detail: str = "", *,
                         now: dt.datetime | None = None) -> int | None:
        """Record a notification, unless the same one (kind, friend, detail) is still
        unseen; returns its id, or None when it was already there."""
        with _transaction(self.db):
            return _add_notification(self.db, kind, friend, detail, _stamp(now))

    def mark_notifications_seen(self, ids: Iterable[int] | None = None) -> int:
        """Mark these notifications (or all) seen; returns how many changed."""
        with _transaction(self.db):
            if ids is None:
                return self.db.execute("UPDATE notifications SET seen = 1 WHERE seen = 0").rowcount
            return sum(self.db.execute("UPDATE notifications SET seen = 1 WHERE id = ? AND "
                                       "seen = 0", (i,)).rowcount for i in ids)

    # -- the fetcher's side

    def friend_state(self, friend: str) -> FriendState | None:
        """What was accepted from `friend` so far, or None for a friend never fetched."""
        row = self.db.execute("SELECT * FROM friend_state WHERE friend = ?",
                              (friend,)).fetchone()
        if row is None:
            return None
        names = [d[0] for d in self.db.execute("SELECT * FROM friend_state LIMIT 0").description]
        values = dict(zip(names, row))
        values["pages"] = tuple(json.loads(values["pages"] or "[]"))
        return FriendState(**values)

    def credited_attachments(self, friend: str) -> frozenset[str]:
        """The attachment hashes `friend`'s own fetches downloaded, checked and opened
        with the keys of their posts: their posts may show these from the cache."""
        return frozenset(h for (h,) in self.db.execute(
            "SELECT hash FROM attachment_credits WHERE friend = ?", (friend,)))

    def drop_uncredited_attachments(self, hashes: Iterable[str]) -> None:
        """Remove cached attachments that no friend's stored post is credited with:
        what a refused update brought (its friend's quota stays theirs to use)."""
        for digest in set(hashes):
            if self.db.execute("SELECT 1 FROM attachment_credits WHERE hash = ?",
                               (digest,)).fetchone() is None:
                self.attachments.remove(digest)

    def stored_object_hashes(self, friend: str) -> dict[str, str | None]:
        """item id -> the object hash of the stored version, for one friend."""
        return dict(self.db.execute("SELECT id, object_hash FROM posts WHERE friend = ?",
                                    (friend,)).fetchall())

    def apply_update(self, update: FriendUpdate, *, now: dt.datetime | None = None,
                     quota: int | None = None) -> None:
        """Apply one accepted fetch of one friend, all of it or nothing (THREATS.md 47).
        Spooled texts (`model.SpooledText`) are read from the spool one at a time.

        Args:
            quota: the bytes the friend's posts may take once it is stored (THREATS.md
                52); None for no limit.

        Raises:
            StaleUpdateError: the update sets a head that is not newer than the one
                stored now (another fetch committed a newer one since this fetch read
                the state; THREATS.md 10); nothing of it is stored.
            OverQuotaError: after it, the friend's posts would pass `quota`; nothing
                of it is stored.
            StoreBusyError, StoreError: the store cannot be written.
        """
        stamp = _stamp(now)
        with _transaction(self.db):
            _check_newer(self.db, update)
            if quota is not None and update.upserts:  # before writing a byte of it
                used = used_after(self.db, update)
                if used > quota:
                    raise OverQuotaError(update.friend, used, quota)
            _ensure_friend(self.db, update.friend, update.sign_pk, adopt_key=True)
            for post_id in update.deletes:
                delete_post(self.db, update.friend, post_id)
            upsert_posts(self.db, update.friend, update.sign_pk, update.upserts, stamp,
                          self.spool)
            self.db.executemany(
                "INSERT OR IGNORE INTO attachment_credits VALUES (?, ?)",
                {(update.friend, a["hash"]) for r in update.upserts if r.audience == "private"
                 for a in r.attachments})
            _faults.in_fetch_commit()  # O2M_FETCH_FAULT, for the crash tests
            if update.state is not None:
                _set_state(self.db, update.friend, _state_columns(update.state))
            notes = apply_thread_update(self.db, update, self.own_key, stamp)
            for kind, detail in [*update.notifications, *notes]:
                _add_notification(self.db, kind, update.friend, detail, stamp)

    def record_failure(self, friend: str, sign_pk: str, reason: Reason, detail: str, *,
                       now: dt.datetime | None = None,
                       notifications: Sequence[tuple[str, str]] = ()) -> None:
        """Note that fetching `friend` failed; nothing they had stored changes."""
        stamp = _stamp(now)
        with _transaction(self.db):
            _ensure_friend(self.db, friend, sign_pk)
            self.db.execute(
                "UPDATE friend_state SET last_attempt = ?, last_reason = ?, last_error = ?, "
                "failing_since = coalesce(failing_since, ?) WHERE friend = ?",
                (stamp, reason, detail, stamp, friend))
            for kind, detail_text in notifications:
                _add_notification(self.db, kind, friend, detail_text, stamp)

    def save_secrets(self, friend: str, sign_pk: str, keys_for: str, feed_name: str,
                     head_key: bytes) -> None:
        """Keep a friend's feed secrets (§3.1) so that a later fetch needs no passphrase.
        They open only that friend's feed for us; this file is 0600 like the build state,
        which keeps every post key."""
        with _transaction(self.db):
            _ensure_friend(self.db, friend, sign_pk)
            _set_state(self.db, friend, {"keys_for": keys_for, "feed_name": feed_name,
                                         "head_key": head_key})

    def forget_friend(self, friend: str) -> None:
        """Drop all that is kept of a friend (after `o2m friend remove`): their feed's
        state (its sequence number, validators and secrets: someone given the name later
        starts afresh, not refused as a rollback of the other's feed), their posts and
        notifications, the thread items their feed carried, and the cached attachments
        no other friend is credited with."""
        credited = self.credited_attachments(friend)
        with _transaction(self.db):
            for (post_id,) in self.db.execute("SELECT id FROM posts WHERE friend = ?",
                                              (friend,)).fetchall():
                delete_post(self.db, friend, post_id)
            self.db.execute("DELETE FROM friend_state WHERE friend = ?", (friend,))
            self.db.execute("DELETE FROM attachment_credits WHERE friend = ?", (friend,))
            self.db.execute("DELETE FROM thread_items WHERE via = ?", (friend,))
            self.db.execute("DELETE FROM notifications WHERE friend = ?", (friend,))
        self.drop_uncredited_attachments(credited)

    def rename_friend(self, old: str, new: str) -> None:
        """Keep what is kept of the friend `old` under `new` (after `o2m friend
        rename`): their feed's state, posts with their read marks, notifications and
        thread items. Whatever was still kept under `new` (a friend removed before o2m
        forgot them) is forgotten first: it was someone else's."""
        if new == old:
            return
        self.forget_friend(new)
        with _transaction(self.db):
            for table, column in _FRIEND_COLUMNS:
                self.db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?",
                                (new, old))


# every column that holds a friend's local name
_FRIEND_COLUMNS = (("friend_state", "friend"), ("posts", "friend"),
                   ("attachment_credits", "friend"), ("thread_items", "via"),
                   ("notifications", "friend"))


@contextmanager
def store_for_friend_change(root: Path | str, *, wait: bool = False,
                            on_wait: Callable[[], None] | None = None,
                            ) -> Iterator["ReaderStore | None"]:
    """The store, to forget or rename a friend, with no fetch running meanwhile (one
    that fetched the friend would store their posts under the old name once more); None
    when the site has never fetched. `wait` and `on_wait` as for `fetch_lock`.

    Raises:
        StoreBusyError: a fetch is running (and `wait` is false).
    """
    with fetch_lock(root, wait=wait, on_wait=on_wait):
        if not (Path(root) / STATE_DIR / DB_NAME).exists():
            yield None
            return
        with ReaderStore.open(root) as store:
            yield store


def remove_friend(friends: "FriendStore", reader: ReaderStore | None, name: str) -> None:
    """Remove the friend `name` and all the reader keeps of them (`o2m friend remove`,
    the desk), under the fetch lock (`store_for_friend_change`); `reader` None: the
    site never fetched. The reader's part first: a crash between leaves a friend whose
    feed is fetched afresh."""
    if reader is not None:
        reader.forget_friend(name)
    friends.remove(name)


def rename_friend(friends: "FriendStore", reader: ReaderStore | None, old: str,
                  new: str) -> None:
    """Rename the friend `old` to `new`, what the reader keeps of them too (`o2m friend
    rename`, the desk), under the fetch lock. Both or neither: a rename the reader's
    store refuses is undone in the friend store (which first checks the new name)."""
    friends.rename(old, new)
    if reader is None:
        return
    try:
        reader.rename_friend(old, new)
    except BaseException:
        friends.rename(new, old)
        raise


@contextmanager
def fetch_lock(root: Path | str, *, wait: bool = False,
               on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One `o2m fetch` at a time per site (a cron job and `o2m fetch --every` may
    overlap; THREATS.md 10): an exclusive lock on ``.o2m/fetch.lock`` for the whole run.
    With `wait`, queue behind the other fetch instead of failing; `on_wait` is called
    once, just before queueing, when another fetch holds the lock (to say so).

    Raises:
        StoreBusyError: another fetch holds the lock (and `wait` is false).
    """
    state_dir = Path(root) / STATE_DIR
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / FETCH_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise StoreBusyError("another o2m fetch is running for this site",
                                     hint="wait for it to finish, or stop it (`o2m fetch "
                                          "--every` waits its turn by itself)") from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets go of the lock


# ---------------------------------------------------------------- helpers


_ERRORS = DBErrors(f"{STATE_DIR}/{DB_NAME}", "the reader's store", StoreError,
                   damaged_hint=StoreError.hint, busy_error=StoreBusyError,
                   busy_hint=StoreBusyError.hint)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception; what SQLite raises
    (a busy store, a full disk) becomes a StoreError."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _ERRORS.convert(e) from None
        return self.db

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error as e:
                exc = e
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection dropped the transaction itself
        if isinstance(exc, sqlite3.Error):
            raise _ERRORS.convert(exc) from None


def _check_newer(db: sqlite3.Connection, update: FriendUpdate) -> None:
    """§3.5 step 8 once more, inside the transaction that stores the update: the fetch
    compared its head with the state it read before it began, and another fetch may
    have committed a newer head since. A head of a key other than the stored state's
    starts afresh only after a verified key rotation (§2.5), as in the fetcher: a key
    the owner accepted by hand keeps the high-water mark (THREATS.md 17)."""
    change = update.state
    if change is None or (change.head is None and not change.forget_head):
        return  # the update sets no head (304, or only the public feed)
    row = db.execute("SELECT sign_pk, seq, head_signed FROM friend_state WHERE friend = ?",
                     (update.friend,)).fetchone()
    if row is None or row[1] is None:
        return
    if row[0] != update.sign_pk and change.forget_head:
        return  # a verified key rotation (§2.5) reset the high-water mark: the one way
    stored_seq, stored_signed = row[1], row[2]
    seq = change.head.seq if change.head is not None else None
    try:
        if change.head is not None and is_newer(change.head.seq, change.head.signed,
                                                stored_seq, stored_signed):
            return
    except EquivocationError:
        raise StaleUpdateError(f"a head with seq {seq} and other bytes than the one stored "
                               "meanwhile", Reason.EQUIVOCATION) from None
    except RollbackError:
        pass
    raise StaleUpdateError(f"this fetch's head (seq {seq}) is not newer than the one stored "
                           f"meanwhile (seq {stored_seq})", Reason.ROLLBACK)


def _migrate(db: sqlite3.Connection, found: int) -> None:
    """Bring a store of schema `found` to SCHEMA_VERSION (inside open_db's upgrade
    transaction, before the schema's CREATE ... IF NOT EXISTS run). Each step checks
    what is there, so a store half-way between schemas is mended too.

    Raises:
        StoreError: the store was written by a newer o2m.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(f"{_ERRORS.where} was written by a newer o2m (schema {found})",
                         hint="upgrade o2m")
    if has_table(db, "friend_state"):
        have = {row[1] for row in db.execute("PRAGMA table_info(friend_state)")}
        for column in _ADDED_IN_2:
            if column.split()[0] not in have:
                db.execute(f"ALTER TABLE friend_state ADD COLUMN {column}")
        if _REREAD_COLUMN[0] not in have:  # schema 4: every public feed read once more
            db.execute(f"ALTER TABLE friend_state ADD COLUMN {' '.join(_REREAD_COLUMN)}")
            db.execute("UPDATE friend_state SET pub_reread = 1")
    if not has_table(db, "posts"):
        return
    have = {r[1] for r in db.execute("PRAGMA table_info(posts)")}
    for name, kind in _RENDERED_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE posts ADD COLUMN {name} {kind}")
    if _SIZE_COLUMN[0] not in have:
        db.execute(f"ALTER TABLE posts ADD COLUMN {_SIZE_COLUMN[0]} {_SIZE_COLUMN[1]}")
        for rowid, texts, attachments in db.execute(
                f"SELECT rowid, {_SIZE_OF_ROW}, attachments FROM posts").fetchall():
            db.execute("UPDATE posts SET size = ? WHERE rowid = ?",
                       (texts + attachments_size(json.loads(attachments)), rowid))
    if _MEDIA_COLUMN[0] not in have:  # (after size: columns keep `_post`'s order)
        db.execute(f"ALTER TABLE posts ADD COLUMN {' '.join(_MEDIA_COLUMN)}")
        # public versions forgotten: the re-read (`pub_reread`) stores each again, list
        # and all, whatever digest its row had (read marks stay: the text is the same)
        db.execute("UPDATE posts SET object_hash = NULL WHERE audience = 'public'")


def _legacy_version(db: sqlite3.Connection) -> int | None:
    """Stores from before `user_version` kept their version in a table of their own,
    `meta`, gone once the version is in the header."""
    if not has_table(db, "meta"):
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    db.execute("DROP TABLE meta")
    return int(row[0]) if row and str(row[0]).isdigit() else None


def _ensure_friend(db: sqlite3.Connection, friend: str, sign_pk: str, *,
                   adopt_key: bool = False) -> None:
    """Make sure the friend has a state row. Only an accepted update adopts a new key:
    the stored high-water mark belongs to the key it was verified with."""
    db.execute("INSERT OR IGNORE INTO friend_state (friend, sign_pk) VALUES (?, ?)",
               (friend, sign_pk))
    if adopt_key:
        db.execute("UPDATE friend_state SET sign_pk = ? WHERE friend = ?", (sign_pk, friend))


def _state_columns(change: FeedStateChange) -> dict[str, Any]:
    """The friend_state columns a fetch's change sets, in the order they apply."""
    columns: dict[str, Any] = {
        "last_attempt": change.succeeded_at, "last_success": change.succeeded_at,
        "failing_since": None, "last_reason": None, "last_error": None,
        "stale_since": change.stale_since}
    if change.forget_head:
        columns.update(seq=None, head_digest=None, head_signed=None, pages="[]", etag=None,
                       last_modified=None)
    if change.head_validators is not None:
        columns.update(etag=change.head_validators.etag,
                       last_modified=change.head_validators.last_modified)
    if change.head is not None:
        head = change.head
        columns.update(seq=head.seq, head_signed=head.signed, head_digest=head.digest,
                       updated=head.updated, expires=head.expires,
                       pages=json.dumps(list(head.pages)))
    if change.public_validators is not None:
        columns.update(pub_etag=change.public_validators.etag,
                       pub_last_modified=change.public_validators.last_modified)
    if change.card_validators is not None:
        columns.update(card_etag=change.card_validators.etag,
                       card_last_modified=change.card_validators.last_modified)
    if change.sig_validators is not None:
        columns.update(sig_etag=change.sig_validators.etag,
                       sig_last_modified=change.sig_validators.last_modified)
    if change.public_signature is not None:
        columns.update(pub_seq=change.public_signature[0], pub_sha256=change.public_signature[1])
    if change.public_read:
        columns["pub_reread"] = 0
    if change.first_seen is not None:
        columns["first_seen"] = change.first_seen
    return columns


def _set_state(db: sqlite3.Connection, friend: str, state: dict[str, Any]) -> None:
    unknown = set(state) - _STATE_COLUMNS
    if unknown:
        raise ValueError(f"unknown friend_state columns: {sorted(unknown)}")
    if not state:
        return
    columns = sorted(state)
    db.execute(f"UPDATE friend_state SET {', '.join(c + ' = ?' for c in columns)} "
               "WHERE friend = ?", [state[c] for c in columns] + [friend])


def _add_notification(db: sqlite3.Connection, kind: str, friend: str | None, detail: str,
                      stamp: str) -> int | None:
    same = db.execute("SELECT id FROM notifications WHERE seen = 0 AND kind = ? AND "
                      "friend IS ? AND detail = ?", (kind, friend, detail)).fetchone()
    if same is not None:
        return None
    return db.execute("INSERT INTO notifications (kind, friend, detail, created) "
                      "VALUES (?, ?, ?, ?)", (kind, friend, detail, stamp)).lastrowid


def _post(db: sqlite3.Connection, r: Sequence[Any]) -> StoredPost:
    (friend, post_id, short, audience, title, markdown, html, summary, date, updated, tags,
     reply_to, url, attachments, object_hash, read, fetched, rendered, rendered_images,
     too_complex) = r[:20]  # then size, then media
    return StoredPost(friend, post_id, short, audience, title, markdown, html, summary, date,
                      updated, tuple(json.loads(tags)), reply_to, url,
                      tuple(json.loads(attachments)), bool(read), fetched, rendered,
                      tuple(json.loads(rendered_images)), bool(too_complex), object_hash,
                      media_from_json(json.loads(r[21])) if r[21] != "[]" else ())
