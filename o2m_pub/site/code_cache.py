"""Highlighted code blocks kept between builds, in `.o2m/highlight.db`.

Highlighting a block first compiles its lexer's regular expressions (25-45 ms for
Pygments' Python lexer), in every new process: without this cache, an edit that leaves
a post's code alone pays that in each `o2m build`. An entry's key is everything its
HTML depends on (Pygments' version, the language as written, the lexer's and the
formatter's options, what markup.highlight adds, the code), so a hit is the HTML that
highlighting would make, byte for byte.

A cache and nothing more: an entry that does not match its check is ignored (and made
again), a database that cannot be opened, read or written turns the cache off for the
process (one that is damaged is replaced first), and writes skip the fsyncs. Each
process opens its own connection (worker processes are forked: they never use their
parent's). Writes are batched: `flush` ends a batch.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

# Changes whenever markup.highlight changes what it makes of a block
FORMAT = ("o2m-highlight-1;stripnl=False,ensurenl=True;cssclass=highlight,wrapcode=True;"
          "tabindex=0")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS blocks "
           "(key TEXT PRIMARY KEY, html TEXT NOT NULL, check_ TEXT NOT NULL)")
_BATCH = 256

# "empty": the cache held nothing when this process opened it (a first build): its
# lookups would all miss, so they are skipped
_state: dict = {"path": None, "db": None, "pid": None, "pending": [], "version": None,
                "empty": False}


def _check(html: str) -> str:
    return hashlib.sha256(html.encode()).hexdigest()[:16]


def key_of(code: str, lang: str) -> str:
    """The entry's key: what the block's HTML depends on."""
    if _state["version"] is None:
        import pygments  # the package alone: no lexer, no formatter
        _state["version"] = pygments.__version__
    return hashlib.sha256(
        f"{FORMAT}\0{_state['version']}\0{lang}\0{code}".encode()).hexdigest()


def use(path: Path | None) -> None:
    """Keep the cache at `path` from now on in this process (None: keep none). Called
    at each build's start: a cache found empty is looked at again (a `Builder` session
    that filled it reads it from its next build on)."""
    if _state["path"] == path and _state["pid"] == os.getpid():
        if _state["empty"] and _state["db"] is not None:
            flush()
            try:
                _state["empty"] = _state["db"].execute(
                    "SELECT 1 FROM blocks LIMIT 1").fetchone() is None
            except sqlite3.Error:
                _off()
        return
    flush()
    _forget()
    _state.update(path=path, pid=os.getpid())


def _forget() -> None:
    db = _state["db"]
    if db is not None and _state["pid"] == os.getpid():
        db.close()
    # (a connection made before a fork is dropped, never closed, in the child)
    _state.update(db=None, pending=[])


def _connection() -> sqlite3.Connection | None:
    """The open cache, opened on first use; None when there is none or it failed."""
    if _state["pid"] != os.getpid():  # forked since `use`: this process opens its own
        _state.update(db=None, pending=[], pid=os.getpid())
    if _state["db"] is None and _state["path"] is not None:
        _state["db"] = _open(_state["path"])
        if _state["db"] is None:
            _state["path"] = None  # off for this process
    return _state["db"]


def _open(path: Path) -> sqlite3.Connection | None:
    for attempt in (1, 2):
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # 0600, as the manifest: friends-only posts' code is in it too
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(path, isolation_level=None, timeout=1.0)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")
                db.execute(_SCHEMA)
                _state["empty"] = db.execute("SELECT 1 FROM blocks LIMIT 1").fetchone() is None
            except sqlite3.Error:
                db.close()
                raise
            return db
        except sqlite3.DatabaseError as e:
            damaged = getattr(e, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT,
                                                                sqlite3.SQLITE_NOTADB)
            if attempt == 1 and damaged:
                for suffix in ("", "-wal", "-shm"):  # a damaged cache: start a new one
                    try:
                        os.unlink(f"{path}{suffix}")
                    except OSError:
                        pass
                continue
            return None
        except (sqlite3.Error, OSError):
            return None
    return None


def get(key: str) -> str | None:
    """The cached HTML of the block with this key, or None (not there, or damaged)."""
    db = _connection()
    if db is None or _state["empty"]:
        return None
    try:
        row = db.execute("SELECT html, check_ FROM blocks WHERE key=?", (key,)).fetchone()
    except sqlite3.Error:
        _off()
        return None
    if row is None or not isinstance(row[0], str) or row[1] != _check(row[0]):
        return None
    return row[0]


def put(key: str, html: str) -> None:
    """Remember a block's HTML (written at the next `flush`, or when a batch is full)."""
    if _connection() is None:
        return
    _state["pending"].append((key, html, _check(html)))
    if len(_state["pending"]) >= _BATCH:
        flush()


def flush() -> None:
    """Write what `put` collected, in one transaction."""
    pending, db = _state["pending"], _state["db"]
    if not pending or db is None or _state["pid"] != os.getpid():
        return
    _state["pending"] = []
    try:
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)", pending)
        db.execute("COMMIT")
    except sqlite3.Error:
        _off()


def _off() -> None:
    """The cache failed: off for the rest of this process."""
    db = _state["db"]
    try:
        if db is not None and db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        pass
    _forget()
    _state["path"] = None
