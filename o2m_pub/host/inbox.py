"""The server's one POST endpoint, ``/.well-known/o2m-inbox`` (PROTOCOL.md §5), and the
rule for request bodies on every route (THREATS 51).

The inbox takes small binary messages that other o2m sites push: today acceptances of
invitations (§2.7, magic ``O2MACPT1``); later notices of replies and reactions (§4,
``O2MNOTE1``). It is a dispatcher by magic: the first 8 bytes pick an `InboxKind` from
the registry the command wires in (the server itself knows no invitation, friend or
reader: a kind is a shape check and a handler). Every well-formed POST within the caps
gets 202 before its handler runs, whatever the handler then decides, so the answer never
tells whether an invitation exists.

The server's other POST, the Webmention endpoint (``/.well-known/webmention``,
`webmention.py`), rides on the same machinery: its own body cap in `body_rule`, its own
token buckets at the same rates, the same 202-then-handle order (`Inbox.answer_webmention`).

Pure parts, tested directly: `body_rule` (what a request may carry, decided at its
headers) and `TokenBuckets` (the rate limits, per client address and for everyone, with
the time passed in). `Inbox.render` is the thin Twisted part.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from o2m_pub.host import webmention as wm

INBOX_PATH = b"/.well-known/o2m-inbox"
MAX_INBOX_BYTES = 8192  # §5: the largest message of any kind
MAGIC_BYTES = 8
CONTENT_TYPE = b"application/octet-stream"
DEFAULT_PER_ADDRESS = 10  # POSTs a minute from one client address (an IPv6 /64), and burst
DEFAULT_TOTAL = 120  # POSTs a minute from everyone together, and burst
MAX_TRACKED_ADDRESSES = 4096  # least recently seen addresses are forgotten first


# ---------------------------------------------------------------- request bodies (pure)


@dataclass(frozen=True)
class Refuse:
    """Refuse the request at its headers with `status`, then close the connection;
    its body is never read."""

    status: int


def body_rule(method: bytes | None, path: bytes | None, length: int | None) -> int | Refuse:
    """How many bytes of body a request may carry, decided from its headers alone
    (§5; THREATS 51): `length` is its Content-Length, None for a chunked body, 0 for
    none. The inbox's POST may carry up to `MAX_INBOX_BYTES`, the Webmention endpoint's
    up to `webmention.MAX_WEBMENTION_BYTES`; nothing else may carry any (a GET or HEAD
    with a body included). `method` and `path` are None when not known (then the
    request is neither's).

    Returns:
        The cap on the body's bytes (a chunked body is cut there), or a `Refuse`.
    """
    cap = _BODY_CAPS.get(path.split(b"?", 1)[0]) if path is not None else None
    if length == 0:
        return cap if cap is not None and method == b"POST" else 0
    if cap is None:
        return Refuse(413)
    if method != b"POST":
        return Refuse(405)
    if length is not None and length > cap:
        return Refuse(413)
    return cap


_BODY_CAPS = {INBOX_PATH: MAX_INBOX_BYTES, wm.WEBMENTION_PATH: wm.MAX_WEBMENTION_BYTES}
POST_PATHS = frozenset(_BODY_CAPS)


# ---------------------------------------------------------------- rate limits (pure)


class TokenBuckets:
    """A token bucket per client address and one for everyone (§5): each holds up to a
    minute's worth of its rate and refills continuously. A POST takes one token from
    its address's bucket and one from the global one, or is refused (429) and takes
    none. IPv6 clients are counted by /64, the block one subscriber usually holds.

    Args:
        per_address: POSTs a minute (and the burst) for one address.
        total: POSTs a minute (and the burst) for all addresses together.
        max_addresses: buckets kept; the least recently used go first (a forgotten
            address starts again with a full bucket, still within the global one).
    """

    def __init__(self, per_address: int, total: int,
                 max_addresses: int = MAX_TRACKED_ADDRESSES) -> None:
        if per_address < 1 or total < 1:
            raise ValueError("rates are at least 1 a minute")
        self.per_address, self.total, self.max_addresses = per_address, total, max_addresses
        self._global: tuple[float, float] | None = None  # (tokens, at)
        self._addresses: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @staticmethod
    def _refill(state: tuple[float, float] | None, rate: int, now: float) -> float:
        if state is None:
            return float(rate)
        tokens, at = state
        return min(float(rate), tokens + max(0.0, now - at) * rate / 60.0)

    def take(self, address: str, now: float) -> float:
        """Take a token for a POST from `address` at `now` (seconds, monotonic).

        Returns:
            0 when allowed; else the seconds until a token is due (for Retry-After).
        """
        key = _address_key(address)
        mine = self._refill(self._addresses.get(key), self.per_address, now)
        everyone = self._refill(self._global, self.total, now)
        if mine < 1 or everyone < 1:
            wait = max((1 - mine) * 60 / self.per_address if mine < 1 else 0.0,
                       (1 - everyone) * 60 / self.total if everyone < 1 else 0.0)
            self._remember(key, (mine, now))
            self._global = (everyone, now)
            return wait
        self._remember(key, (mine - 1, now))
        self._global = (everyone - 1, now)
        return 0.0

    def _remember(self, key: str, state: tuple[float, float]) -> None:
        self._addresses[key] = state
        self._addresses.move_to_end(key)
        while len(self._addresses) > self.max_addresses:
            self._addresses.popitem(last=False)


def _address_key(address: str) -> str:
    """An IPv4 address as it is; an IPv6 one as its /64 (IPv4-mapped ones as IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# ---------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class InboxKind:
    """One kind of message the inbox takes, registered under its 8-byte magic.

    `well_formed` is a cheap check of the message's shape (no secret, no I/O): what
    passes gets 202. `handle` runs after the answer is sent, in the server's process;
    it decides everything else and must not reveal its outcome to the sender. An
    exception it raises is reported to the server's log (`on_error`), never to the
    client.
    """

    name: str  # in the server's log: "acceptance", "notice"
    well_formed: Callable[[bytes], bool]
    handle: Callable[[bytes], None]


class Inbox:
    """`POST /.well-known/o2m-inbox` (§5) for one server process.

    Args:
        kinds: the registry, magic -> kind (an acceptance today; notices later).
        per_address, total: the rate limits, POSTs a minute.
        clock: time.monotonic, or a test's clock.
        later: schedules a call after the answer is written (the reactor's callLater(0)).
        on_error: one line for the server's log when a handler fails.
    """

    def __init__(self, kinds: Mapping[bytes, InboxKind], *, per_address: int, total: int,
                 clock: Callable[[], float], later: Callable[[Callable[[], None]], object],
                 on_error: Callable[[str], None],
                 webmention: wm.WebmentionReceiver | None = None,
                 background: Callable[[Callable[[], None]], object] | None = None) -> None:
        if any(len(magic) != MAGIC_BYTES for magic in kinds):
            raise ValueError(f"an inbox magic is {MAGIC_BYTES} bytes")
        self.kinds = dict(kinds)
        self.buckets = TokenBuckets(per_address, total)
        self.clock, self.later, self.on_error = clock, later, on_error
        # the Webmention endpoint: buckets of its own (a flood of mentions must not
        # keep friends' acceptances out), and its handler in a thread (`background`:
        # the reactor's callInThread), since verifying fetches the source
        self.webmention = webmention
        self.webmention_buckets = TokenBuckets(per_address, total)
        self.background = background or later

    def answer(self, method: bytes, client: str, content_type: bytes | None,
               body: bytes) -> tuple[int, dict[bytes, bytes], Callable[[], None] | None]:
        """What to answer a whole request to the inbox, and what to run after it.

        Returns:
            (status, extra headers, the handler's call or None).
        """
        if method != b"POST":
            return 405, {b"allow": b"POST"}, None
        wait = self.buckets.take(client, self.clock())
        if wait:
            return 429, {b"retry-after": b"%d" % max(1, round(wait + 0.5))}, None
        if (content_type or b"").split(b";", 1)[0].strip().lower() != CONTENT_TYPE:
            return 415, {}, None
        kind = self.kinds.get(body[:MAGIC_BYTES])
        if kind is None or not kind.well_formed(body):
            return 400, {}, None

        def run() -> None:
            try:
                kind.handle(body)
            except Exception as e:  # noqa: BLE001 - the sender must never see it
                self.on_error(f"inbox: {kind.name} not taken: {e}")
        return 202, {}, run


    def answer_webmention(self, method: bytes, client: str, content_type: bytes | None,
                          body: bytes) -> tuple[int, dict[bytes, bytes], bytes,
                                                Callable[[], None] | None]:
        """What to answer a whole request to the Webmention endpoint, in the inbox's
        order: the method, then the rate limits, then the request's own checks
        (`webmention.check_request`); 202 with the handler to run after it.

        Returns:
            (status, extra headers, the answer's text, the handler's call or None).
        """
        if self.webmention is None:
            return 404, {}, b"Not found\n", None
        if method != b"POST":
            return 405, {b"allow": b"POST"}, status_text(405), None
        wait = self.webmention_buckets.take(client, self.clock())
        if wait:
            return (429, {b"retry-after": b"%d" % max(1, round(wait + 0.5))},
                    status_text(429), None)
        receiver = self.webmention
        status, reason, accepted = wm.check_request(content_type, body, receiver.target_post)
        if accepted is None:
            return status, {}, reason.encode() + b"\n", None

        def job() -> None:
            try:
                receiver.receive(*accepted)
            except Exception as e:  # noqa: BLE001 - the sender must never see it
                self.on_error(f"webmention: {accepted[0][:200]} not taken: {e}")
        return 202, {}, status_text(202), lambda: self.background(job)


_REASONS = {202: b"Accepted\n", 400: b"Not an o2m inbox message\n",
            405: b"Method not allowed\n", 413: b"Content too large\n",
            415: b"Send application/octet-stream\n", 429: b"Too many requests\n"}


def status_text(status: int) -> bytes:
    """The short plain-text body of an inbox answer."""
    return _REASONS.get(status, b"\n")


__all__ = ["INBOX_PATH", "Inbox", "InboxKind", "MAX_INBOX_BYTES", "POST_PATHS", "Refuse",
           "TokenBuckets", "body_rule", "status_text"]
