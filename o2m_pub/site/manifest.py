"""What the last build knew, kept in SQLite in the state folder (never in `build/`).

A build reads it whole at the start, plans against it, and commits its changes in
one transaction at the end, after every output is in place: a build killed midway
leaves the old manifest, and the next build redoes what was not recorded. Opened by
`_sqlite.open_db`; a manifest of another schema version is a cache to drop, except the
friends' feed state (`_start_afresh`); one of schema 5 gains the planning column
(`_add_plan_column`), one of 5 or 6 the planning blob's tables.

A one-post edit reads every post's state but plans with a few fields of each: those
are kept apart from the record's JSON (`sources.plan`), and the rest of a record is
parsed only when something asks for it (`_LazyRecord`). The posts' and outputs' rows
are also kept as one blob (`planning_blob`, table `planning`), read in one call
(`planning_state`): the keys committed since it was written are listed in
`planning_pending` and read from their rows; once they are many, the commit writes
the blob again. The rows stay the authority: a blob that is absent, stale or damaged
is passed over for them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

from o2m_pub._sqlite import DBErrors, connect_read_only, has_table, open_db
from o2m_pub.errors import SiteError
from o2m_pub.site.model import PAIRS_FIELDS, RECORD_FIELDS, TUPLE_FIELDS, PostRecord
from o2m_pub.site.planning_blob import BlobError, decode, encode

# 6: sources.plan, the fields planning reads of every post (`_plan_json`)
# 7: the planning blob (tables planning and planning_pending)
SCHEMA_VERSION = 7
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    sha TEXT NOT NULL, digest TEXT NOT NULL, list_digest TEXT NOT NULL, record TEXT NOT NULL,
    plan TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS outputs (
    path TEXT PRIMARY KEY, sig TEXT NOT NULL, sha TEXT NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bodies (key TEXT PRIMARY KEY, html TEXT NOT NULL, toc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, sha TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (reader TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sealed (digest TEXT PRIMARY KEY, sealed TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS planning (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS planning_pending (
    name TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (name, key)) WITHOUT ROWID;
"""
_BLOB_STAMP = "planning_blob"  # kv: the stamp of the blob that is the rows' image
# keys committed since the blob was written, read from their rows, before the commit
# writes the blob again (a one-post edit adds 2 to 20; reading 512 of them costs a few
# ms, writing 10,000 posts' blob 0.2-0.3 s)
PENDING_LIMIT = 512


@dataclass
class SourceState:
    mtime_ns: int
    size: int
    sha: str
    record: PostRecord


class OutputState(NamedTuple):
    """An output as the build that wrote it recorded it (a named tuple: a build loads
    one per page, 14,000 on the benchmark site, straight from the manifest's rows)."""

    digest: str  # what the page was made from (plan.digest_of); "failed" forces a redo
    sha: str
    size: int


@dataclass(frozen=True)
class FileState:
    """A media or static file's last known stat and hash (to skip re-hashing)."""

    mtime_ns: int
    size: int
    sha: str


# What selecting, sorting and planning read of every post (the rest of a record is read
# for the few posts whose pages are made): kept in `sources.plan`, in this order, then
# the number of the record's fields (a record of another shape is another version's)
_PLANNED = ("utc", "path", "draft", "audience", "media")


def _plan_json(record: PostRecord) -> str:
    """The `sources.plan` of a record: its `_PLANNED` fields and its number of fields."""
    return json.dumps([record.utc, record.path, record.draft, list(record.audience),
                       list(record.media), len(RECORD_FIELDS)], ensure_ascii=False,
                      separators=(",", ":"))


class _Deferred:
    """A field of a `_LazyRecord` read from its JSON when first asked for (a non-data
    descriptor: once read, the instance's own value is found first)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, record: "_LazyRecord | None", owner: type | None = None):  # noqa: ANN204
        if record is None:
            return self
        record._load()
        return record.__dict__[self.name]


class _LazyRecord(PostRecord):
    """A PostRecord read from the manifest: its source, digests and `_PLANNED` fields
    at once, every other field from the record's JSON (kept as `_raw`) when first read.
    Equal to the PostRecord it was made from; `to_json` gives the same text back."""

    def _load(self) -> None:
        d = self.__dict__
        values = json.loads(d["_raw"])
        for name, value in zip(RECORD_FIELDS, values):
            if name not in d:
                d[name] = (tuple(value) if name in TUPLE_FIELDS else
                           tuple(map(tuple, value)) if name in PAIRS_FIELDS else value)

    def to_json(self) -> str:
        raw = self.__dict__.get("_raw")
        return raw if raw is not None else super().to_json()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PostRecord):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in RECORD_FIELDS)

    __hash__ = PostRecord.__hash__


for _name in RECORD_FIELDS:
    if _name != "source" and _name not in _PLANNED:
        setattr(_LazyRecord, _name, _Deferred(_name))


def _lazy_records(rows: list[tuple]) -> list[PostRecord]:
    """Records from rows of (source, digest, list_digest, plan, record), parsing only
    the plans (one JSON document for all: 10,000 separate loads cost twice as much).

    Raises:
        ValueError, TypeError: a row written by another version of o2m.
    """
    plans = json.loads("[" + ",".join(r[3] for r in rows) + "]")
    out = []
    new, n_fields = object.__new__, len(RECORD_FIELDS)
    for (source, digest, list_digest, _, raw), plan in zip(rows, plans):
        if len(plan) != 6 or plan[5] != n_fields:
            raise ValueError("record from another version of o2m")
        record = new(_LazyRecord)  # skips the frozen dataclass's slow __init__
        record.__dict__.update(source=source, utc=plan[0], path=plan[1], draft=plan[2],
                               audience=tuple(plan[3]), media=tuple(plan[4]), digest=digest,
                               list_digest=list_digest, _raw=raw)
        out.append(record)
    return out


def _states_from_columns(columns: list[tuple]) -> dict[str, SourceState]:
    """Source -> state from the blob's columns (`planning_blob.SOURCE_COLUMNS`): the
    same objects `_lazy_records` and `_source_state` make from rows."""
    out = {}
    new = object.__new__
    for source, mtime_ns, size, sha, digest, list_digest, utc, path, draft, audience, \
            media, raw in zip(*columns):
        record = new(_LazyRecord)
        record.__dict__.update(source=source, utc=utc, path=path, draft=draft,
                               audience=audience, media=media, digest=digest,
                               list_digest=list_digest, _raw=raw)
        state = new(SourceState)
        state.__dict__.update(mtime_ns=mtime_ns, size=size, sha=sha, record=record)
        out[source] = state
    return out


def _source_state(mtime_ns: int, size: int, sha: str, record: PostRecord) -> SourceState:
    """SourceState(...) without the dataclass's __init__ (a build loads 10,000)."""
    state = object.__new__(SourceState)
    state.__dict__.update(mtime_ns=mtime_ns, size=size, sha=sha, record=record)
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
        """Source path -> its state; each record parsed lazily (`_LazyRecord`)."""
        with self.errors:
            rows = self.db.execute(
                "SELECT source, mtime_ns, size, sha, digest, list_digest, plan, record "
                "FROM sources").fetchall()
        try:
            records = _lazy_records([(r[0], r[4], r[5], r[6], r[7]) for r in rows])
        except (ValueError, TypeError):  # written by another version: start over
            return {}
        return {row[0]: _source_state(row[1], row[2], row[3], record)
                for row, record in zip(rows, records)}

    def planning_state(self) -> tuple[dict[str, SourceState], dict[str, OutputState]]:
        """`sources()` and `outputs()` as of one moment, from the planning blob and the
        rows committed since, or from the rows alone when the blob is absent, stale or
        damaged."""
        with self.errors:
            self.db.execute("BEGIN")  # one read transaction: all as one commit left it
            try:
                state = self._from_blob()
                return state if state is not None else (self.sources(), self.outputs())
            finally:
                self.db.execute("COMMIT")

    def _from_blob(self) -> tuple[dict[str, SourceState], dict[str, OutputState]] | None:
        """The planning state from the blob and the pending keys' rows; None when the
        blob is not the rows' image (absent, stale, damaged, another version's)."""
        db = self.db
        row = db.execute("SELECT (SELECT rowid FROM planning WHERE name='all'), "
                         "(SELECT value FROM kv WHERE key=?), (SELECT count(*) FROM sources), "
                         "(SELECT count(*) FROM outputs)", (_BLOB_STAMP,)).fetchone()
        rowid, stamp, n_sources, n_outputs = row
        if rowid is None or stamp is None:
            return None
        try:
            # read in place (incremental blob I/O): half the time of a SELECT of it,
            # which copies its 10 MB once more
            with db.blobopen("planning", "data", rowid, readonly=True) as blob:
                data = blob.read()
            columns, out_columns = decode(data, stamp, len(RECORD_FIELDS))
            sources = _states_from_columns(columns)
            new = tuple.__new__
            paths, digests, shas, sizes = out_columns  # 14,000 states made by map, in C
            outputs = dict(zip(paths, map(partial(new, OutputState), zip(digests, shas, sizes))))
            rows = db.execute(
                "SELECT p.key, s.mtime_ns, s.size, s.sha, s.digest, s.list_digest, s.plan, "
                "s.record FROM planning_pending p LEFT JOIN sources s ON s.source = p.key "
                "WHERE p.name = 'sources'").fetchall()
            for key in [r[0] for r in rows]:
                sources.pop(key, None)
            rows = [r for r in rows if r[1] is not None]
            records = _lazy_records([(r[0], r[4], r[5], r[6], r[7]) for r in rows])
            sources.update((r[0], _source_state(r[1], r[2], r[3], record))
                           for r, record in zip(rows, records))
            for path, sig, sha, size in db.execute(
                    "SELECT p.key, o.sig, o.sha, o.size FROM planning_pending p LEFT JOIN "
                    "outputs o ON o.path = p.key WHERE p.name = 'outputs'"):
                outputs.pop(path, None)
                if sig is not None:
                    outputs[path] = new(OutputState, (sig, sha, size))
        except (BlobError, ValueError, TypeError, sqlite3.Error):  # the rows then say
            return None
        if (len(sources), len(outputs)) != (n_sources, n_outputs):
            return None  # not the rows' image
        return sources, outputs

    def outputs(self) -> dict[str, OutputState]:
        new = tuple.__new__
        with self.errors:
            return {row[0]: new(OutputState, row[1:]) for row in
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
        db = connect_read_only(path)

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
            ("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             [(s, st.mtime_ns, st.size, st.sha, st.record.digest, st.record.list_digest,
               st.record.to_json(), _plan_json(st.record))
              for s, st in sources.items() if st is not None]),
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
        changed = [("sources", s) for s in sources] + [("outputs", p) for p in outputs]
        self._transaction(statements, then=lambda db: _note_changes(db, changed))

    def _transaction(self, statements: list[tuple[str, list[tuple]]], *,
                     immediate: bool = True,
                     then: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """Run `statements` (each with its rows), then `then`, in one transaction, or
        none of them."""
        db = self.db
        with self.errors:
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                for sql, rows in statements:
                    if rows:
                        db.executemany(sql, rows)
                if then is not None:
                    then(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back by itself
                    db.execute("ROLLBACK")
                raise

    def set(self, key: str, value: str) -> None:
        with self.errors:
            self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))


def _note_changes(db: sqlite3.Connection, changed: list[tuple[str, str]]) -> None:
    """Within a commit, after its rows: list the keys it changed as pending, or, when
    there is no blob or the pending keys would be too many, write the blob anew."""
    if not changed:
        return
    has_blob, pending = db.execute("SELECT (SELECT count(*) FROM planning), "
                                   "(SELECT count(*) FROM planning_pending)").fetchone()
    if has_blob and pending + len(changed) <= PENDING_LIMIT:
        db.executemany("INSERT OR IGNORE INTO planning_pending VALUES (?, ?)", changed)
    else:
        write_planning_blob(db)


def write_planning_blob(db: sqlite3.Connection) -> None:
    """Write the blob of the rows as they are now, with a new stamp, and clear the
    pending keys (within the caller's transaction). Rows whose plans cannot be read get
    no blob: the rows are read, and their posts rendered again, which rewrites them."""
    stamp = os.urandom(8).hex()
    sources = db.execute("SELECT source, mtime_ns, size, sha, digest, list_digest, plan, "
                         "record FROM sources").fetchall()
    outputs = db.execute("SELECT path, sig, sha, size FROM outputs").fetchall()
    db.execute("DELETE FROM planning_pending")
    try:
        data = encode(stamp, len(RECORD_FIELDS), sources, outputs)
    except BlobError:
        db.execute("DELETE FROM planning")
        db.execute("DELETE FROM kv WHERE key=?", (_BLOB_STAMP,))
        return
    del sources, outputs  # (the rows' 10,000 records go before SQLite's work)
    # written in place (incremental blob I/O): SQLite keeps no copy of its own of it
    db.execute("INSERT OR REPLACE INTO planning VALUES ('all', zeroblob(?))", (len(data),))
    rowid = db.execute("SELECT rowid FROM planning WHERE name='all'").fetchone()[0]
    with db.blobopen("planning", "data", rowid) as blob:
        blob.write(data)
    db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_BLOB_STAMP, stamp))


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
    again. Schema 5 differs only by `sources.plan` and the planning blob's tables, 6
    only by those tables: they gain them instead (a blob left by an earlier schema 7,
    which the other version's builds did not keep up, is dropped; the next commit
    writes it again)."""
    for table in ("planning", "planning_pending"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    if has_table(db, "kv"):
        db.execute("DELETE FROM kv WHERE key=?", (_BLOB_STAMP,))
    if found in (5, 6) and has_table(db, "sources"):
        if found == 5:
            _add_plan_column(db)
        return
    for table in ("sources", "outputs", "bodies", "files"):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    if has_table(db, "kv"):
        db.execute("DELETE FROM kv WHERE key NOT IN ('seq_floor', 'feed_index')")


def _add_plan_column(db: sqlite3.Connection) -> None:
    """Schema 5 -> 6: `sources.plan` made from each record (nothing is rendered again).
    A record that cannot be read gets an empty plan, which makes the next build read
    the manifest's posts as another version's and render them all (as before)."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(sources)")]
    if "plan" not in columns:
        db.execute("ALTER TABLE sources ADD COLUMN plan TEXT NOT NULL DEFAULT ''")
    rows = db.execute("SELECT source, digest, list_digest, record FROM sources").fetchall()
    plans = []
    for source, digest, list_digest, text in rows:
        try:
            record = PostRecord.many_from_json([digest], [text], [list_digest])[0]
            plans.append((_plan_json(record), source))
        except (ValueError, TypeError, KeyError):
            plans.append(("", source))
    db.executemany("UPDATE sources SET plan=? WHERE source=?", plans)
