"""One way to open o2m's SQLite databases, and one way to report their failures.

o2m keeps three databases in the private state folder `.o2m/`: the build state
(`build.db`, `site/manifest.py`), the reader's store (`reader.db`, `reader/store.py`)
and the publish record (`publish.db`, `host/publish/record.py`). `open_db` opens each
the same way:

- the folder 0700 and the file 0600 from the moment it exists (they hold post keys and
  friends' feed secrets); SQLite gives the `-wal` and `-shm` files the file's mode;
- WAL journal, `synchronous=FULL` (a commit is durable when it returns, THREATS.md 47),
  and a busy timeout, so two o2m processes queue instead of failing at once;
- the schema version in the database header (`PRAGMA user_version`). Databases from
  before kept it in a table of their own (the build state in `kv`, the reader's store
  in `meta`): the store's `legacy_version` reads that once, when such a database is
  first opened, and the version moves to the header.

`DBErrors` turns whatever `sqlite3` raises into one `O2MError` line and a hint (the
database is busy, damaged, or could not be read or written); a store wraps its SQLite
calls in `with errors:`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from o2m_pub.errors import O2MError

BUSY_TIMEOUT_MS = 5000

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@dataclass(frozen=True)
class DBErrors:
    """How one database's failures read: `with errors:` around SQLite calls turns any
    `sqlite3.Error` into `error` (or `busy_error` when another process holds the
    database), one line naming `where` and `what`, with the hint for that case."""

    where: str  # the file as the user knows it: ".o2m/build.db"
    what: str  # what it is to the user: "the build state"
    error: type[O2MError]
    damaged_hint: str  # what to do with a damaged database, and what that costs
    busy_error: type[O2MError] | None = None
    busy_hint: str = ("wait for the other o2m (a build, watch, fetch, publish or the "
                      "reader) to finish, then try again")
    io_hint: str = "check that the disk has room and that .o2m/ is yours and writable"

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise self.convert(exc) from None

    def convert(self, e: sqlite3.Error) -> O2MError:
        """The one-line error for what SQLite raised: busy, damaged, or anything else
        (a full disk, an I/O error, no permission) as could not be read or written."""
        primary = _primary(e)
        if _is_busy(e):
            return (self.busy_error or self.error)(
                f"{self.where}: {self.what} is busy: another o2m is using it",
                hint=self.busy_hint)
        if primary in _DAMAGED or (primary is None and type(e) is sqlite3.DatabaseError):
            return self.error(f"{self.where}: {self.what} is damaged ({e})",
                              hint=self.damaged_hint)
        return self.error(f"{self.where}: {self.what} could not be read or written ({e})",
                          hint=self.io_hint)


def open_db(path: Path, schema_sql: str, version: int, errors: DBErrors, *,
            legacy_version: Callable[[sqlite3.Connection], int | None] | None = None,
            migrate: Callable[[sqlite3.Connection, int], None] | None = None,
            foreign_keys: bool = False, check_same_thread: bool = True,
            busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open (creating it if need be) the database at `path`, at schema `version`.

    Args:
        path: the database file, in the state folder.
        schema_sql: statements that create what is missing (`CREATE ... IF NOT EXISTS`),
            run when the database is new or of another version.
        version: the schema version this o2m writes (> 0).
        errors: how failures read.
        legacy_version: for a database from before `user_version` was set: reads (and
            removes) the version its store kept elsewhere; None when there is none,
            which means the schema of today.
        migrate: called inside the upgrade's transaction, before `schema_sql`, for a
            database of another version (older or newer). Without it a newer database
            is refused and an older one gets what `schema_sql` adds.
        foreign_keys, check_same_thread: as their SQLite and sqlite3 namesakes.
        busy_timeout_ms: how long to wait for another process's write.

    Returns:
        An autocommit connection (`isolation_level=None`): the store opens its own
        transactions.

    Raises:
        O2MError: `errors.error` (or `busy_error`): the database is damaged, busy, of a
            newer o2m, or cannot be read or written.
    """
    create_private(path)
    with errors:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    try:
        with errors:
            db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            use_wal(db, busy_timeout_ms)
            db.execute("PRAGMA synchronous=FULL")
            if foreign_keys:
                db.execute("PRAGMA foreign_keys=ON")
            if _user_version(db) != version:
                _bring_up_to_date(db, schema_sql, version, errors, legacy_version, migrate)
    except BaseException:
        db.close()
        raise
    return db


def connect_read_only(path: Path | str, **kwargs: object) -> sqlite3.Connection:
    """A connection that can only read the database at `path`, whatever characters
    its path holds (a URI's `?`, `#` and `%` are escaped, not read as the URI's own)."""
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, **kwargs)  # type: ignore[arg-type]


def use_wal(db: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch the database to write-ahead logging (a no-op once it is). SQLite answers
    "database is locked" at once, without waiting as `busy_timeout` says, when another
    connection holds the file during the switch: two o2m opening a new store at once
    (the server's first Webmention and `o2m mention list`, say). Retried, then, until
    that timeout."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.002
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _primary(e: sqlite3.Error) -> int | None:
    """SQLite's primary result code of `e` (its extended codes carry it), if known."""
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_busy(e: sqlite3.Error) -> bool:
    primary = _primary(e)
    return primary in _BUSY if primary is not None else "locked" in str(e)


def create_private(path: Path) -> None:
    """The state folder 0700 and the database 0600 before SQLite first writes to it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)


def _user_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether the database has a table of that name (for `legacy_version`)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (name,)).fetchone() is not None


def _bring_up_to_date(db: sqlite3.Connection, schema_sql: str, version: int,
                      errors: DBErrors,
                      legacy_version: Callable[[sqlite3.Connection], int | None] | None,
                      migrate: Callable[[sqlite3.Connection, int], None] | None) -> None:
    """Create, upgrade or refuse, in one transaction (two o2m opening one new database
    at once: the second waits, then finds it done)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = _user_version(db)
        if found == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                     ).fetchone():
            legacy = legacy_version(db) if legacy_version else None
            found = version if legacy is None else legacy
        if found != version:
            if migrate is not None and found != 0:
                migrate(db, found)
            elif found > version:
                raise errors.error(f"{errors.where} was written by a newer o2m "
                                   f"(schema {found})", hint="upgrade o2m")
        for statement in _statements(schema_sql):
            db.execute(statement)
        db.execute(f"PRAGMA user_version={int(version)}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back by itself; the first error is the one to tell
        raise


def _statements(sql: str) -> list[str]:
    """`sql` cut into whole statements (executescript would commit our transaction)."""
    statements, pending = [], ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    statements.append(pending)
    return [s for s in statements if s.strip(" \n\t;")]
