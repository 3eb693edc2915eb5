"""What the last build knew, kept in SQLite in the state folder (never in `build/`).

A build reads it whole at the start, plans against it, and commits its changes in
one transaction at the end, after every output is in place: a build killed midway
leaves the old manifest, and the next build redoes what was not recorded. Opened by
`_sqlite.open_db`; a manifest of another schema version is a cache to drop, except the
friends' feed state (`_start_afresh`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from o2m_pub._sqlite import DBErrors, has_table, open_db
from o2m_pub.errors import SiteError
from o2m_pub.site.model import PostRecord

SCHEMA_VERSION = 5
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
    digest: str  # what the page was made from (plan.digest_of); "failed" forces a redo
    sha: str
    size: int


@dataclass(frozen=True)
class FileState:
    """A media or static file's last known stat and hash (to skip re-hashing)."""

    mtime_ns: int
    size: int
    sha: str


def _source_state(mtime_ns: int, size: int, sha: str, record: PostRecord) -> SourceState:
    """SourceState(...) without the dataclass's __init__ (a build loads 10,000)."""
    state = object.__new__(SourceState)
    state.__dict__.update(mtime_ns=mtime_ns, size=size, sha=sha, record=record)
    return state


def _output_state(digest: str, sha: str, size: int) -> OutputState:
    """OutputState(...) without the frozen dataclass's slow __init__ (one per page)."""
    state = object.__new__(OutputState)
    state.__dict__.update(digest=digest, sha=sha, size=size)
    return state


class Manifest:
    """The build state store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        where = f"{path.parent.name}/{path.name}"
        self.errors = DBErrors(where, "the build state", SiteError,
                               damaged_hint=f"delete {where}; the next build renders "
                               "everything again (friends' feeds continue)")
        self.db = open_db(path, _SCHEMA, SCHEMA_VERSION, self.errors,
                          legacy_version=_legacy_version, migrate=_start_afresh)
        try:
            with self.errors:  # read a table: a damaged file fails here, not mid-build
                self.db.execute("SELECT count(*) FROM sources").fetchone()
        except SiteError:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def get(self, key: str) -> str | None:
        with self.errors:
            row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def sources(self) -> dict[str, SourceState]:
        with self.errors:
            rows = self.db.execute(
                "SELECT source, mtime_ns, size, sha, digest, list_digest, record FROM sources"
            ).fetchall()
        try:  # one JSON document for all records: 10,000 separate loads cost twice as much
            records = PostRecord.many_from_json([r[4] for r in rows], [r[6] for r in rows],
                                                [r[5] for r in rows])
        except (ValueError, TypeError):  # written by another version: start over
            return {}
        return {row[0]: _source_state(row[1], row[2], row[3], record)
                for row, record in zip(rows, records)}

    def outputs(self) -> dict[str, OutputState]:
        with self.errors:
            return {p: _output_state(g, h, z) for p, g, h, z in
                    self.db.execute("SELECT path, sig, sha, size FROM outputs")}

    def files(self) -> dict[str, FileState]:
        with self.errors:
            return {p: FileState(m, z, h) for p, m, z, h in
                    self.db.execute("SELECT path, mtime_ns, size, sha FROM files")}

    def feed_states(self) -> dict[str, str]:
        """Reader -> what the last build published for them (private.FeedState JSON).
        Kept across schema changes: a feed's sequence number must never go back."""
        with self.errors:
            return dict(self.db.execute("SELECT reader, state FROM feeds"))

    def sealed(self) -> dict[str, str]:
        """Post version digest -> its sealed object reference (holds post keys: secret)."""
        with self.errors:
            return dict(self.db.execute("SELECT digest, sealed FROM sealed"))

    def body(self, key: str) -> tuple[str, str] | None:
        with self.errors:
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
        with self.errors:
            self.db.execute("PRAGMA synchronous=OFF")
            try:
                self._transaction([("INSERT OR REPLACE INTO bodies VALUES (?, ?, ?)", rows)],
                                  immediate=False)
            finally:
                self.db.execute("PRAGMA synchronous=FULL")

    def commit(self, *, sources: dict[str, SourceState | None],
               outputs: dict[str, OutputState | None], files: dict[str, FileState | None],
               kv: dict[str, str], dead_bodies: set[str] = frozenset(),  # type: ignore[assignment]
               feeds: dict[str, str | None] | None = None,
               sealed: dict[str, str | None] | None = None) -> None:
        """Apply this build's changes in one transaction: a value replaces the row of
        its key, None deletes it; `dead_bodies` are rendered bodies no post uses now."""
        statements = [
            ("DELETE FROM sources WHERE source=?",
             [(s,) for s, st in sources.items() if st is None]),
            ("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
             [(s, st.mtime_ns, st.size, st.sha, st.record.digest, st.record.list_digest,
               st.record.to_json()) for s, st in sources.items() if st is not None]),
            ("DELETE FROM outputs WHERE path=?",
             [(p,) for p, o in outputs.items() if o is None]),
            ("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?, ?)",
             [(p, o.digest, o.sha, o.size) for p, o in outputs.items() if o is not None]),
            ("DELETE FROM files WHERE path=?", [(p,) for p, f in files.items() if f is None]),
            ("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
             [(p, f.mtime_ns, f.size, f.sha) for p, f in files.items() if f]),
            ("INSERT OR REPLACE INTO kv VALUES (?, ?)", list(kv.items())),
            ("DELETE FROM bodies WHERE key=?", [(k,) for k in dead_bodies]),
        ]
        for table, key, rows in (("feeds", "reader", feeds), ("sealed", "digest", sealed)):
            rows = rows or {}
            statements += [
                (f"DELETE FROM {table} WHERE {key}=?",
                 [(k,) for k, v in rows.items() if v is None]),
                (f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
                 [(k, v) for k, v in rows.items() if v is not None])]
        self._transaction(statements)

    def _transaction(self, statements: list[tuple[str, list[tuple]]], *,
                     immediate: bool = True) -> None:
        """Run `statements` (each with its rows) in one transaction, or none of them."""
        db = self.db
        with self.errors:
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                for sql, rows in statements:
                    if rows:
                        db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back by itself
                    db.execute("ROLLBACK")
                raise

    def set(self, key: str, value: str) -> None:
        with self.errors:
            self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))


def _legacy_version(db: sqlite3.Connection) -> int | None:
    """Manifests from before `user_version` kept their version in kv('schema')."""
    if not has_table(db, "kv"):
        return None
    row = db.execute("SELECT value FROM kv WHERE key='schema'").fetchone()
    db.execute("DELETE FROM kv WHERE key='schema'")
    return int(row[0]) if row and str(row[0]).isdigit() else None


def _start_afresh(db: sqlite3.Connection, found: int) -> None:
    """Another version's cache: drop it, but keep the friends' feed state (sequence
    numbers must never go back, PROTOCOL.md §3.4); `_SCHEMA` then makes the tables
    again."""
    for table in ("sources", "outputs", "bodies", "files"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    if has_table(db, "kv"):
        db.execute("DELETE FROM kv WHERE key NOT IN ('seq_floor', 'feed_index')")
