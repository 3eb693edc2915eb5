"""Highlighted code blocks kept between builds, in `.o2m/highlight.db`.

Highlighting a block first compiles its lexer's regular expressions (25-45 ms for
Pygments' Python lexer), in every new process: without this store, an edit that leaves
a post's code alone pays that in each `o2m build`. The store knows nothing of
highlighting: `markup.MarkdownRenderer` asks it by a key that holds everything a
block's HTML depends on (`markup.block_key`), so a hit is the HTML highlighting would
make, byte for byte.

A cache and nothing more: an entry that does not match its check is ignored (and made
again), a database that cannot be opened, read or written turns the store off for the
process (one that is damaged is replaced first), and writes skip the fsyncs. Worker
processes are forked: each opens its own connection, never its parent's. Writes are
batched (`flush` ends a batch). Old entries (a block since edited) are dropped, oldest
first, once the file outgrows its budget (`prune`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from o2m_pub._sqlite import create_private, use_wal

NAME = "highlight.db"  # in the site's state folder
MAX_BYTES = 64 * 1024 * 1024  # the file's budget; pruned to half of it when over
_SCHEMA = ("CREATE TABLE IF NOT EXISTS blocks "
           "(key TEXT PRIMARY KEY, html TEXT NOT NULL, check_ TEXT NOT NULL)")
_BATCH = 256
_INHERITED: list[sqlite3.Connection] = []  # a forked child's copies of its parent's
_BUSY_SECONDS = 1.0  # a store busy longer than this is skipped (a cache)


def _check(html: str) -> str:
    return hashlib.sha256(html.encode()).hexdigest()[:16]


class CodeCache:
    """The store at `path`, opened on first use in each process.

    Args:
        path: the database file (made 0600, as the manifest: friends-only posts'
            code is in it too).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._pending: list[tuple[str, str, str]] = []
        self._off = False
        # the store held nothing when this process opened it (a first build): its
        # lookups would all miss, so they are skipped until `next_build`
        self._empty = False

    def next_build(self) -> None:
        """A new build starts in a process that keeps this store (a `Builder`
        session): write what is pending, and look again whether it is empty."""
        self.flush()
        if self._empty and self._connection() is not None:
            self._empty = self._is_empty(self._db)  # type: ignore[arg-type]

    def get(self, key: str) -> str | None:
        """The HTML kept under `key`, or None (not there, damaged, or no store)."""
        db = self._connection()
        if db is None or self._empty:
            return None
        try:
            row = db.execute("SELECT html, check_ FROM blocks WHERE key=?", (key,)).fetchone()
        except sqlite3.Error:
            self._turn_off()
            return None
        if row is None or not isinstance(row[0], str) or row[1] != _check(row[0]):
            return None
        return row[0]

    def put(self, key: str, html: str) -> None:
        """Keep `html` under `key` (written at the next `flush`, or when a batch is full)."""
        if self._connection() is None:
            return
        self._pending.append((key, html, _check(html)))
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Write what `put` collected, in one transaction."""
        pending, db = self._pending, self._db
        if not pending or db is None or self._pid != os.getpid():
            return
        self._pending = []
        try:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)", pending)
            db.execute("COMMIT")
        except sqlite3.Error:
            self._turn_off()

    def _connection(self) -> sqlite3.Connection | None:
        if self._pid != os.getpid():  # new, or forked since: this process opens its own
            if self._db is not None:  # the parent's: never used, nor closed, here
                _INHERITED.append(self._db)
            self._db, self._pending, self._pid = None, [], os.getpid()
        if self._db is None and not self._off:
            self._db = _open(self.path)
            if self._db is None:
                self._off = True
            else:
                self._empty = self._is_empty(self._db)
        return self._db

    @staticmethod
    def _is_empty(db: sqlite3.Connection) -> bool:
        try:
            return db.execute("SELECT 1 FROM blocks LIMIT 1").fetchone() is None
        except sqlite3.Error:
            return True

    def _turn_off(self) -> None:
        """The store failed: off for the rest of this process."""
        db = self._db
        try:
            if db is not None and db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._db, self._pending, self._off = None, [], True


def _open(path: Path) -> sqlite3.Connection | None:
    for attempt in (1, 2):
        try:
            create_private(path)
            db = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_SECONDS)
            try:
                use_wal(db, int(_BUSY_SECONDS * 1000))  # (two workers open it at once)
                db.execute("PRAGMA synchronous=OFF")
                db.execute(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            return db
        except sqlite3.DatabaseError as e:
            if attempt == 1 and _damaged(e):
                _remove(path)  # a damaged cache: start a new one
                continue
            return None
        except (sqlite3.Error, OSError):
            return None
    return None


def _damaged(e: sqlite3.Error) -> bool:
    return getattr(e, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT,
                                                    sqlite3.SQLITE_NOTADB)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except OSError:
            pass


def prune(path: Path, max_bytes: int | None = None) -> int:
    """Keep the store within `max_bytes`: when the file (and its log) is larger, keep
    the newest entries that fit in half of it and drop the rest (blocks since edited
    or deleted, and old ones that are made again when next needed). One `stat` when
    under budget; called once a build, after its posts are rendered.

    Returns:
        The number of entries dropped.
    """
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    try:
        size = sum(os.stat(f"{path}{suffix}").st_size for suffix in ("", "-wal")
                   if os.path.exists(f"{path}{suffix}"))
    except OSError:
        return 0
    if size <= max_bytes:
        return 0
    db = _open(path)
    if db is None:  # busy, or no access (a damaged one `_open` replaced already)
        return 0
    try:
        keep, oldest_kept = max_bytes // 2, None
        for rowid, length in db.execute(
                "SELECT rowid, length(CAST(html AS BLOB)) + 100 FROM blocks ORDER BY rowid DESC"):
            keep -= length
            if keep < 0:
                break
            oldest_kept = rowid
        if oldest_kept is None:
            dropped = db.execute("DELETE FROM blocks").rowcount
        else:
            dropped = db.execute("DELETE FROM blocks WHERE rowid < ?", (oldest_kept,)).rowcount
        db.execute("VACUUM")  # give the space back: the budget is the file's size
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dropped
    except sqlite3.Error as e:
        db.close()
        if _damaged(e):  # a cache that cannot be read is dropped whole
            _remove(path)
        return 0  # busy (another build, `o2m watch`): pruned next time
    finally:
        db.close()
