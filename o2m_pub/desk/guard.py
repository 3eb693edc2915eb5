"""The desk's rules of who may do what, as pure functions (time and randomness passed in):
session tokens and their hashes, CSRF tokens, session expiry, and the back-off that
rate-limits sign-in attempts.

- A session token is 32 random bytes (b64url) in a cookie; the store keeps only its
  SHA-256, so a copy of `.o2m/desk.db` signs nobody in.
- A form's CSRF token is an HMAC of a fixed label under the session token: the server
  can check it without storing it, and a page of another site can neither read the
  cookie nor compute it. The sign-in form, before any session, is bound the same way to
  a random cookie of its own (double submit, signed).
- A session ends when it is idle for `IDLE`, at `ABSOLUTE` after sign-in whatever its
  use, at sign-out, or when the owner revokes it.
- Sign-in back-off (per client address, and for all clients together): the first
  `free` failures cost nothing more; each one after that doubles the wait before the
  next attempt, up to `cap`. An attempt is counted as a failure when it starts (so
  parallel guesses are all counted) and forgiven when the passphrase was right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

TOKEN_BYTES = 32
IDLE = 12 * 3600  # seconds without a request
ABSOLUTE = 7 * 24 * 3600  # seconds after sign-in
TOUCH_EVERY = 60  # last_seen is written at most once a minute
_CSRF_LABEL = b"o2m-desk-csrf-v1"
_SIGN_IN_LABEL = b"o2m-desk-sign-in-v1"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def well_formed(token: str | None) -> bool:
    """A token as the desk makes them (43 b64url characters)."""
    return token is not None and len(token) == 43 and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in token)


def csrf_token(session_token: str) -> str:
    """The token every form of a signed-in page carries."""
    return b64u(hmac.new(session_token.encode("ascii"), _CSRF_LABEL, hashlib.sha256).digest())


def sign_in_token(pre_cookie: str) -> str:
    """The token of the sign-in form, bound to its own random cookie."""
    return b64u(hmac.new(pre_cookie.encode("ascii"), _SIGN_IN_LABEL, hashlib.sha256).digest())


def same(a: str | None, b: str) -> bool:
    """A constant-time comparison of a token from a form with the expected one."""
    return a is not None and hmac.compare_digest(a.encode("utf-8", "replace"), b.encode())


@dataclass(frozen=True)
class SessionTimes:
    created: float
    last_seen: float


def session_alive(times: SessionTimes, now: float, *, idle: int = IDLE,
                  absolute: int = ABSOLUTE) -> bool:
    """Whether a session is still valid at `now` (seconds since the epoch)."""
    return now - times.last_seen < idle and now - times.created < absolute and \
        times.created <= now + 300  # a clock set back far: sign in again


@dataclass(frozen=True)
class Backoff:
    """How sign-in failures slow the next attempt (see the module docstring)."""

    free: int
    cap: float  # seconds
    forget_after: float  # seconds without a failure, after which the count restarts

    def wait(self, failures: int, last_failure: float, now: float) -> float:
        """Seconds to wait before the next attempt may run (0: now)."""
        if failures < self.free or now - last_failure >= self.forget_after:
            return 0.0
        delay = min(self.cap, 2.0 ** (failures - self.free))
        return max(0.0, last_failure + delay - now)


#: One client address: five tries, then 1 s, 2 s, 4 s … up to 15 minutes.
PER_CLIENT = Backoff(free=5, cap=900.0, forget_after=24 * 3600.0)
#: Everyone together: twenty tries, then doubling up to one minute, so that guesses
#: from many addresses are slowed too, but the owner is never locked out for long.
GLOBAL = Backoff(free=20, cap=60.0, forget_after=3600.0)
