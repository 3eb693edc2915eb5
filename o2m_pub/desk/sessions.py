"""The desk's own store, ``.o2m/desk.db`` (0600, in the private state folder): the
sessions (the SHA-256 of each token, never the token), the sign-in failures that the
back-off reads, and the owner's passkeys (public keys only) with their pending
challenges (passkeys.py). Shared by every process of one site (`o2m serve --desk` runs one
per core), so a limit holds for all of them; the rules are in `guard.py`.

    DeskStoreError (DeskError)   the desk's store cannot be used
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from o2m_pub._sqlite import DBErrors, open_db
from o2m_pub.config import STATE_DIR
from o2m_pub.desk import guard
from o2m_pub.desk.web import DeskError

DB_NAME = "desk.db"
SCHEMA_VERSION = 2  # 2: passkeys and their challenges (a store of 1 gets the tables)
MAX_SESSIONS = 50  # the oldest go first: a session list a person can read

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,  -- hex SHA-256 of the cookie's token
    created REAL NOT NULL,        -- seconds since the epoch
    last_seen REAL NOT NULL,
    client TEXT NOT NULL DEFAULT '',   -- the address it signed in from
    agent TEXT NOT NULL DEFAULT ''     -- its User-Agent, cut short
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,         -- "client:ADDRESS" or "all"
    count INTEGER NOT NULL,
    last REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS passkeys (
    id BLOB PRIMARY KEY,          -- the credential's id
    public_key BLOB NOT NULL,     -- COSE, as the authenticator gave it
    sign_count INTEGER NOT NULL,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
CREATE TABLE IF NOT EXISTS challenges (
    key TEXT PRIMARY KEY,         -- "add:" or "signin:" + the hash of the cookie it is for
    challenge BLOB NOT NULL,
    expires REAL NOT NULL
);
"""


class DeskStoreError(DeskError):
    """The desk's store cannot be used."""

    hint = ("delete .o2m/desk.db: every session ends and the owner signs in again; "
            "nothing else is lost")


_ERRORS = DBErrors(f"{STATE_DIR}/{DB_NAME}", "the desk's store", DeskStoreError,
                   damaged_hint=DeskStoreError.hint)


@dataclass(frozen=True)
class Session:
    """A signed-in browser, as the sessions page lists it."""

    token_hash: str
    created: float
    last_seen: float
    client: str
    agent: str


class DeskStore:
    """Sessions and sign-in failures; open with `DeskStore.open(site_root)`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @classmethod
    def open(cls, root: Path | str) -> "DeskStore":
        db = open_db(Path(root) / STATE_DIR / DB_NAME, _SCHEMA, SCHEMA_VERSION, _ERRORS,
                     check_same_thread=False, busy_timeout_ms=2000)
        return cls(db)

    def close(self) -> None:
        self.db.close()

    # -- sessions

    def create(self, token: str, client: str, agent: str, now: float | None = None) -> None:
        """Record a new session (its hash); the oldest beyond MAX_SESSIONS end."""
        now = time.time() if now is None else now
        with _ERRORS:
            with self.db:
                self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                                (guard.token_hash(token), now, now, client[:64],
                                 _clip_agent(agent)))
                self.db.execute("DELETE FROM sessions WHERE token_hash NOT IN (SELECT "
                                "token_hash FROM sessions ORDER BY created DESC LIMIT ?)",
                                (MAX_SESSIONS,))

    def check(self, token: str | None, now: float | None = None) -> Session | None:
        """The live session of this cookie value, or None (an expired one is deleted;
        a live one's last_seen moves on, at most once a minute)."""
        if not guard.well_formed(token):
            return None
        now = time.time() if now is None else now
        digest = guard.token_hash(token or "")
        with _ERRORS:
            row = self.db.execute("SELECT * FROM sessions WHERE token_hash = ?",
                                  (digest,)).fetchone()
            if row is None:
                return None
            session = Session(*row)
            if not guard.session_alive(guard.SessionTimes(session.created, session.last_seen),
                                       now):
                with self.db:
                    self.db.execute("DELETE FROM sessions WHERE token_hash = ?", (digest,))
                return None
            if now - session.last_seen >= guard.TOUCH_EVERY:
                with self.db:
                    self.db.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?",
                                    (now, digest))
        return session

    def sessions(self, now: float | None = None) -> list[Session]:
        """The live sessions, newest first (expired ones are dropped on the way)."""
        now = time.time() if now is None else now
        with _ERRORS:
            rows = [Session(*r) for r in self.db.execute(
                "SELECT * FROM sessions ORDER BY created DESC")]
        alive = [s for s in rows
                 if guard.session_alive(guard.SessionTimes(s.created, s.last_seen), now)]
        if len(alive) != len(rows):
            with _ERRORS, self.db:
                self.db.executemany("DELETE FROM sessions WHERE token_hash = ?",
                                    [(s.token_hash,) for s in rows if s not in alive])
        return alive

    def revoke(self, token_hash: str) -> bool:
        """End a session by its hash; whether there was one."""
        with _ERRORS, self.db:
            return self.db.execute("DELETE FROM sessions WHERE token_hash = ?",
                                   (token_hash,)).rowcount > 0

    def revoke_others(self, keep_hash: str) -> int:
        with _ERRORS, self.db:
            return self.db.execute("DELETE FROM sessions WHERE token_hash != ?",
                                   (keep_hash,)).rowcount

    # -- sign-in back-off

    def wait_before_attempt(self, client: str, now: float | None = None) -> float:
        """Seconds this client must wait before trying a passphrase (0: go ahead)."""
        now = time.time() if now is None else now
        with _ERRORS:
            rows = dict(((k, (c, t)) for k, c, t in self.db.execute(
                "SELECT key, count, last FROM failures WHERE key IN (?, 'all')",
                (_client_key(client),))))
        mine = rows.get(_client_key(client), (0, 0.0))
        everyone = rows.get("all", (0, 0.0))
        return max(guard.PER_CLIENT.wait(mine[0], mine[1], now),
                   guard.GLOBAL.wait(everyone[0], everyone[1], now))

    def begin_attempt(self, client: str, now: float | None = None) -> float:
        """Count an attempt as a failure before it runs (parallel guesses all count),
        unless the client must wait: then nothing is counted and the wait returned."""
        now = time.time() if now is None else now
        with _ERRORS:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                wait = self.wait_before_attempt(client, now)
                if wait <= 0:
                    for key, policy in ((_client_key(client), guard.PER_CLIENT),
                                        ("all", guard.GLOBAL)):
                        row = self.db.execute("SELECT count, last FROM failures WHERE key = ?",
                                              (key,)).fetchone()
                        count = 0 if row is None or now - row[1] >= policy.forget_after \
                            else row[0]
                        self.db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)",
                                        (key, count + 1, now))
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        return wait

    def forgive(self, client: str) -> None:
        """The passphrase was right: this client's count restarts, and the attempt is
        taken back from the global count."""
        with _ERRORS, self.db:
            self.db.execute("DELETE FROM failures WHERE key = ?", (_client_key(client),))
            self.db.execute("UPDATE failures SET count = max(0, count - 1) WHERE key = 'all'")


def _client_key(client: str) -> str:
    return "client:" + client[:64]


def _clip_agent(agent: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in agent)
    return text[:160]


@dataclass(frozen=True)
class Passkey:
    """A passkey the owner added: its public key, counter and name."""

    id: bytes
    public_key: bytes
    sign_count: int
    name: str
    created: float
    last_used: float | None


MAX_PASSKEYS = 20


class PasskeyStore:
    """The passkeys and challenges of desk.db (a view on `DeskStore.db`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def add(self, key_id: bytes, public_key: bytes, sign_count: int, name: str,
            now: float) -> None:
        """Keep a new passkey.

        Raises:
            DeskError: MAX_PASSKEYS are kept already, or this one is.
        """
        with _ERRORS:
            with self.db:
                count = self.db.execute("SELECT count(*) FROM passkeys").fetchone()[0]
                if count >= MAX_PASSKEYS:
                    raise DeskError(f"{MAX_PASSKEYS} passkeys are kept already: remove one")
                try:
                    self.db.execute("INSERT INTO passkeys VALUES (?, ?, ?, ?, ?, NULL)",
                                    (key_id, public_key, sign_count, name[:64], now))
                except sqlite3.IntegrityError:
                    raise DeskError("this passkey is kept already") from None

    def all(self) -> list[Passkey]:
        with _ERRORS:
            return [Passkey(*r) for r in self.db.execute(
                "SELECT * FROM passkeys ORDER BY created")]

    def get(self, key_id: bytes) -> Passkey | None:
        with _ERRORS:
            row = self.db.execute("SELECT * FROM passkeys WHERE id = ?", (key_id,)).fetchone()
        return Passkey(*row) if row else None

    def used(self, key_id: bytes, sign_count: int, now: float) -> None:
        with _ERRORS:
            with self.db:
                self.db.execute("UPDATE passkeys SET sign_count = ?, last_used = ? "
                                "WHERE id = ?", (sign_count, now, key_id))

    def remove(self, key_id: bytes) -> bool:
        with _ERRORS:
            with self.db:
                return self.db.execute("DELETE FROM passkeys WHERE id = ?",
                                       (key_id,)).rowcount > 0

    def put_challenge(self, key: str, challenge: bytes, expires: float) -> None:
        """Remember a challenge for `key` (a newer one replaces it); expired ones go."""
        with _ERRORS:
            with self.db:
                self.db.execute("DELETE FROM challenges WHERE expires < ?", (expires - 3600,))
                self.db.execute("INSERT OR REPLACE INTO challenges VALUES (?, ?, ?)",
                                (key, challenge, expires))

    def take_challenge(self, key: str, now: float) -> bytes | None:
        """The live challenge for `key`, used up (a second answer to it finds none)."""
        with _ERRORS:
            with self.db:
                row = self.db.execute("SELECT challenge, expires FROM challenges WHERE key = ?",
                                      (key,)).fetchone()
                self.db.execute("DELETE FROM challenges WHERE key = ?", (key,))
        if row is None or row[1] < now:
            return None
        return bytes(row[0])
