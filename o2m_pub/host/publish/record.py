"""What each publish target has received, kept in SQLite in the state folder.

`.o2m/publish.db`, one row per (target, path): the digest and size sent, and since
when `build/` has lacked the path (for the deletion grace period). Rows are written
as files land on the target (per batch, or per few hundred files of a folder copy),
each time in one transaction, so an interrupted publish resumes where it stopped and
never believes the target holds a file it does not. A SQLite failure (a full disk,
an I/O error) is a `PublishError`: one line, and the record keeps its last commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from o2m_pub._sqlite import DBErrors, open_db
from o2m_pub.host.publish.plan import FileInfo, Sent
from o2m_pub.host.publish.target import PublishError

RECORD_NAME = "publish.db"
SCHEMA_VERSION = 1  # (records from before user_version have none, and this schema)
# Records made before this schema also have targets.last (the time of the last whole
# publish): nullable, never read, so they are used as they are.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    target TEXT PRIMARY KEY, in_progress INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sent (
    target TEXT NOT NULL, path TEXT NOT NULL, sha TEXT NOT NULL, size INTEGER NOT NULL,
    gone_since TEXT, PRIMARY KEY (target, path));
"""


class PublishRecord:
    """The record of one target in `.o2m/publish.db`."""

    def __init__(self, state_dir: Path, target: str) -> None:
        self.target = target
        self.name = f"{state_dir.name}/{RECORD_NAME}"
        self.errors = DBErrors(
            self.name, "the publish record", PublishError,
            damaged_hint=f"delete {self.name}; the next publish sends every file again",
            io_hint="free disk space or mend the state folder's disk, then run "
                    "`o2m publish` again: it resumes where this one stopped")
        self.db = open_db(state_dir / RECORD_NAME, _SCHEMA, SCHEMA_VERSION, self.errors)

    def close(self) -> None:
        self.db.close()

    def load(self) -> dict[str, Sent]:
        with self.errors:
            return {p: Sent(h, z, g) for p, h, z, g in self.db.execute(
                "SELECT path, sha, size, gone_since FROM sent WHERE target=?", (self.target,))}

    def interrupted(self) -> bool:
        """Whether the last publish to this target stopped before its end."""
        with self.errors:
            row = self.db.execute("SELECT in_progress FROM targets WHERE target=?",
                                  (self.target,)).fetchone()
        return bool(row and row[0])

    def _transaction(self, statements: Iterable[tuple[str, list[tuple]]]) -> None:
        with self.errors:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    if rows:
                        self.db.executemany(sql, rows)
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back by itself
                    self.db.execute("ROLLBACK")
                raise

    def begin(self, *, newly_gone: list[str], returned: list[str], now: str) -> None:
        """Mark the publish as under way, and note paths gone from (or back in) build/."""
        self._transaction([
            ("INSERT INTO targets (target, in_progress) VALUES (?, 1) ON CONFLICT(target) "
             "DO UPDATE SET in_progress=1", [(self.target,)]),
            ("UPDATE sent SET gone_since=? WHERE target=? AND path=?",
             [(now, self.target, p) for p in newly_gone]),
            ("UPDATE sent SET gone_since=NULL WHERE target=? AND path=?",
             [(self.target, p) for p in returned]),
        ])

    def sent(self, files: Iterable[tuple[str, FileInfo]]) -> None:
        """These files are now on the target, durably."""
        self._transaction([("INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?, NULL)",
                            [(self.target, p, i.sha, i.size) for p, i in files])])

    def forget(self, paths: Iterable[str]) -> None:
        """These paths are not on the target (deleted, or found missing by a check)."""
        self._transaction([("DELETE FROM sent WHERE target=? AND path=?",
                            [(self.target, p) for p in paths])])

    def finish(self) -> None:
        """The publish reached its end: nothing to resume."""
        self._transaction([("UPDATE targets SET in_progress=0 WHERE target=?",
                            [(self.target,)])])
