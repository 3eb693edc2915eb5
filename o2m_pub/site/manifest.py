"""What the last build knew, kept in SQLite in the state folder (never in `build/`).

A build reads it whole at the start, plans against it, and commits its changes in
one transaction at the end, after every output is in place: a build killed midway
leaves the old manifest, and the next build redoes what was not recorded.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from o2m_pub.errors import SiteError
from o2m_pub.site.model import PostRecord

SCHEMA_VERSION = "5"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    sha TEXT NOT NULL, digest TEXT NOT NULL, list_digest TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (
    path TEXT PRIMARY KEY, sig TEXT NOT NULL, sha TEXT NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bodies (key TEXT PRIMARY KEY, html TEXT NOT NULL, toc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, sha TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (reader TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sealed (digest TEXT PRIMARY KEY, sealed TEXT NOT NULL);
"""


@dataclass
class SourceState:
    mtime_ns: int
    size: int
    sha: str
    record: PostRecord


@dataclass(frozen=True)
class OutputState:
    sig: str
    sha: str
    size: int


@dataclass(frozen=True)
class FileState:
    """A media or static file's last known stat and hash (to skip re-hashing)."""

    mtime_ns: int
    size: int
    sha: str


class Manifest:
    """The build state store."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = path
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # private from the start
        self.db = sqlite3.connect(path, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            self.db.execute("SELECT count(*) FROM sources").fetchone()
        except sqlite3.DatabaseError:
            self.db.close()
            raise SiteError(f"{path.parent.name}/{path.name}: the build state is damaged",
                            hint=f"delete {path.parent.name}/{path.name}; the next build "
                            "renders everything again (friends' feeds continue)") from None
        row = self.db.execute("SELECT value FROM kv WHERE key='schema'").fetchone()
        if row and row[0] != SCHEMA_VERSION:  # another version's cache: start afresh
            # (the friends' feed state survives: sequence numbers must never go back)
            self.db.executescript("DROP TABLE IF EXISTS sources; DROP TABLE IF EXISTS outputs;"
                                  "DROP TABLE IF EXISTS bodies; DROP TABLE IF EXISTS files;"
                                  "DELETE FROM kv WHERE key NOT IN ('seq_floor', 'feed_index');"
                                  + _SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def sources(self) -> dict[str, SourceState]:
        rows = self.db.execute(
            "SELECT source, mtime_ns, size, sha, digest, list_digest, record FROM sources"
        ).fetchall()
        try:  # one JSON document for all records: 10,000 separate loads cost twice as much
            records = PostRecord.many_from_json([r[4] for r in rows], [r[6] for r in rows],
                                                [r[5] for r in rows])
        except (ValueError, TypeError):  # written by another version: start over
            return {}
        return {row[0]: SourceState(row[1], row[2], row[3], record)
                for row, record in zip(rows, records)}

    def outputs(self) -> dict[str, OutputState]:
        return {p: OutputState(g, h, z) for p, g, h, z in
                self.db.execute("SELECT path, sig, sha, size FROM outputs")}

    def files(self) -> dict[str, FileState]:
        return {p: FileState(m, z, h) for p, m, z, h in
                self.db.execute("SELECT path, mtime_ns, size, sha FROM files")}

    def feed_states(self) -> dict[str, str]:
        """Reader -> what the last build published for them (private.FeedState JSON).
        Kept across schema changes: a feed's sequence number must never go back."""
        return dict(self.db.execute("SELECT reader, state FROM feeds"))

    def sealed(self) -> dict[str, str]:
        """Post version digest -> its sealed object reference (holds post keys: secret)."""
        return dict(self.db.execute("SELECT digest, sealed FROM sealed"))

    def body(self, key: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT html, toc FROM bodies WHERE key=?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    @staticmethod
    def body_reader(path: Path):  # noqa: ANN205 - (key) -> (html, toc) | None
        """A read-only lookup of rendered bodies on a connection of its own (for worker
        processes, which must not use a connection made before the fork)."""
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

        def body(key: str) -> tuple[str, str] | None:
            row = db.execute("SELECT html, toc FROM bodies WHERE key=?", (key,)).fetchone()
            return (row[0], row[1]) if row else None
        return body

    def put_bodies(self, rows: list[tuple[str, str, str]]) -> None:
        """Cache rendered bodies right away (they are pure functions of their key, so
        keeping them even if the build dies is harmless and saves the work)."""
        # A cache: a body lost to a power cut is re-rendered next time, so these writes
        # skip the fsyncs that the manifest's own commit (synchronous=FULL) pays for.
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO bodies VALUES (?, ?, ?)", rows)
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA synchronous=FULL")

    def commit(self, *, sources: dict[str, SourceState | None],
               outputs: dict[str, OutputState | None], files: dict[str, FileState | None],
               kv: dict[str, str], dead_bodies: set[str] = frozenset(),  # type: ignore[assignment]
               feeds: dict[str, str | None] | None = None,
               sealed: dict[str, str | None] | None = None) -> None:
        """Apply this build's changes in one transaction: a value replaces the row of
        its key, None deletes it; `dead_bodies` are rendered bodies no post uses now."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM sources WHERE source=?",
                           [(s,) for s, st in sources.items() if st is None])
            db.executemany("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(s, st.mtime_ns, st.size, st.sha, st.record.digest,
                             st.record.list_digest, st.record.to_json())
                            for s, st in sources.items() if st is not None])
            db.executemany("DELETE FROM outputs WHERE path=?",
                           [(p,) for p, o in outputs.items() if o is None])
            db.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?)",
                           [(p, o.sig, o.sha, o.size) for p, o in outputs.items() if o is not None])
            db.executemany("DELETE FROM files WHERE path=?",
                           [(p,) for p, f in files.items() if f is None])
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                           [(p, f.mtime_ns, f.size, f.sha) for p, f in files.items() if f])
            db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                           [("schema", SCHEMA_VERSION), *kv.items()])
            db.executemany("DELETE FROM bodies WHERE key=?", [(k,) for k in dead_bodies])
            for table, key, rows in (("feeds", "reader", feeds), ("sealed", "digest", sealed)):
                rows = rows or {}
                db.executemany(f"DELETE FROM {table} WHERE {key}=?",
                               [(k,) for k, v in rows.items() if v is None])
                db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
                               [(k, v) for k, v in rows.items() if v is not None])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
