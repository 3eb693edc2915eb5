"""The fetcher's shell: HTTPS downloads with hard limits, friends in parallel, results
into the reader's store. The decisions are in `fetch_plan.py`; this module moves bytes.

What a hostile or broken host can do, and what stops it (THREATS.md 24-32):

- hang or trickle: a wall-clock deadline per friend over everything done for them:
  every socket step (each address tried, the TLS handshake, sending the request, each
  read of the headers and of the body) waits at most until that deadline (the
  thread's deadline, checked by the TLS socket itself before each step), besides the
  connect and read timeouts. Only resolving the host name is left to the system's
  resolver and its own timeouts;
- send too much (endless body, lying Content-Length): a cap per file, counted on the
  bytes received; a Content-Length over the cap is refused unread;
- compress a bomb: we ask for ``Accept-Encoding: identity``, and a body sent with any
  other Content-Encoding is refused at its headers, unread (nothing is decoded, so
  nothing can decode to more, or to nothing while the host streams on);
- redirect: at most 3, only to https on the same origin (`cards.site_origin`, the rule
  pins follow too), never in a loop;
- answer 404, 500, or a 200 HTML page: refused for that friend, state kept;
- present a bad certificate: normal CA checks (``$O2M_CA_BUNDLE`` names a private CA),
  or, when the card has a ``tls_pin``, the SHA-256 of the server's SubjectPublicKeyInfo
  is checked right after the handshake, before a byte of the request (whose path is a
  semi-secret, §3.1) is sent. Pins are kept per friend, not per origin: each pin has
  its own connections, so a friend's card can never pin (or unpin) another friend's
  site on the same origin. When that check fails, the friend's card alone is asked
  for again over an unverified TLS connection of its own (`card_refresh`: a card is
  trusted by its signature), and a newer card's pin is then used;
- steer the fetcher into the reader's own network (§2.4, §3.5): for a site whose host
  name is public, an address that resolves to loopback, private, link-local or
  unique-local ranges is never connected to;
- reset mid-object: nothing partial is kept (attachments are renamed into place whole,
  the store commits one friend at a time);
- fail: only that friend; the others go on (a pool of `workers` threads).

The private parts of urllib3 used here are fenced in `_urllib3_compat.py`.

    CABundleError (O2MError)    the CA bundle named in $O2M_CA_BUNDLE cannot be used
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.connection import allowed_gai_family, create_connection
from urllib3.util.ssl_ import create_urllib3_context

from o2m_pub import __version__
from o2m_pub.errors import O2MError
from o2m_pub.protocol.cards import (
    CertificateError,
    host_is_local,
    is_local_address,
    site_origin,
    tls_pin_from_certificate,
)
from o2m_pub.reader import _urllib3_compat as compat
from o2m_pub.reader.fetch_plan import (
    CARD_PATH,
    MAX_FRIEND_BYTES,
    Refused,
    Download,
)
from o2m_pub.reader.model import Reason
from o2m_pub.reader.render import BUDGET_SECONDS as RENDER_BUDGET_SECONDS
from o2m_pub.reader.render import CPU_SECONDS as RENDER_CPU_SECONDS

MAX_REDIRECTS = 3
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds), parallelism and the byte budget of one fetch run."""

    connect_timeout: float = 15.0  # equal timeouts: urllib3 sets each per request, and
    read_timeout: float = 15.0  # setting the value the socket has costs nothing
    deadline: float = 120.0  # per friend: every file of theirs, start to end
    workers: int = 8
    friend_bytes: int = MAX_FRIEND_BYTES  # per friend: new archive pages and objects
    render_cpu_seconds: float = RENDER_CPU_SECONDS  # per post (render.py)
    render_budget: float = RENDER_BUDGET_SECONDS  # per friend: rendering their posts


class CABundleError(O2MError):
    """The CA bundle named in $O2M_CA_BUNDLE cannot be used."""

    hint = ("name a PEM file (or a folder of them) of the CA certificates to trust, or "
            "unset O2M_CA_BUNDLE to trust the usual public CAs")


# ---------------------------------------------------------------- the friend's deadline


_deadline = threading.local()  # .at: time.monotonic() by which this thread's friend is done


class _DeadlineSSLSocket(ssl.SSLSocket):
    """A TLS socket whose every blocking step (the handshake, each read, each write)
    waits at most until the deadline of the friend fetched on this thread (THREATS.md
    24). A read timeout alone bounds each read, not their sum: headers (or a handshake)
    trickled a byte at a time would never end."""

    def _within_deadline(self) -> None:
        at = getattr(_deadline, "at", None)
        if at is None:
            return
        remaining = at - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the deadline for this friend passed")
        current = self.gettimeout()
        if current is None or current > remaining:
            self.settimeout(remaining)

    def settimeout(self, value: float | None) -> None:
        # urllib3 sets the timeout twice per request; each call is an ioctl that lets
        # go of the interpreter lock, which the other fetch threads then hold: the same
        # timeout again is no change (None always goes through: it means blocking).
        if value is None or value != self.gettimeout():
            super().settimeout(value)

    def do_handshake(self, block: bool = False) -> None:
        self._within_deadline()
        super().do_handshake(block)

    def read(self, len: int = 1024, buffer: object = None) -> object:  # noqa: A002
        self._within_deadline()
        return super().read(len, buffer)

    def write(self, data: bytes) -> int:
        self._within_deadline()
        return super().write(data)

    def send(self, data: bytes, flags: int = 0) -> int:
        self._within_deadline()
        return super().send(data, flags)


def _ca_context(verify: str | None) -> ssl.SSLContext:
    """One client context for every CA-checked connection of a run: the CAs of
    `verify` (a file or folder), else certifi's bundle (as requests uses), loaded once."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)  # checks the host name
    load_ca_bundle(context, verify)
    context.sslsocket_class = _DeadlineSSLSocket
    return context


def load_ca_bundle(context: ssl.SSLContext, where: str | None) -> None:
    """Trust the CAs of `where` (a file or a folder), else certifi's bundle.

    Raises:
        CABundleError: they cannot be read.
    """
    import certifi
    where = where or certifi.where()
    try:
        if os.path.isdir(where):
            context.load_verify_locations(capath=where)
        else:
            context.load_verify_locations(cafile=where)
    except (OSError, ssl.SSLError) as e:
        raise CABundleError(f"the CA bundle {where} cannot be read ({_short(e)})") from None


def _pinned_context() -> ssl.SSLContext:
    """A client context for a pinned site (§2.4): no CA chain or name check, as the card
    pins a self-signed key; the pin is checked right after the handshake instead. The
    unverified connections of the card refresh use it too, without a pin."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.sslsocket_class = _DeadlineSSLSocket
    return context


# ---------------------------------------------------------------- connections (§2.4)


class PinMismatchError(ssl.SSLError):
    """The server's key is not the one pinned in the friend's card."""


class _HTTPSConnection(compat.HTTPSConnection):
    """An HTTPS connection on one of our contexts, connected within the friend's
    deadline; with `spki_pin`, it accepts exactly the server key of that SPKI SHA-256.

    The pin is checked right after the handshake and before `connect` returns, so
    urllib3 never sends the request line on a connection whose key does not match
    (THREATS.md 30). Subclasses set `tls_context` and `spki_pin` (one per pool manager)."""

    tls_context: ssl.SSLContext
    spki_pin: bytes | None = None
    unverified: bool = False  # the card refresh's own connections (no pin, no CA)

    def open_socket(self) -> socket.socket:
        """urllib3's, one address at a time, each tried only within the deadline (a
        host name with many unanswering addresses would otherwise get a whole connect
        timeout for each), never to a local address for a public host name (§3.5)."""
        at = getattr(_deadline, "at", None)
        host = self.dns_host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, self.port, allowed_gai_family(),
                                       socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        if not host_is_local(host):
            public = [i for i in infos if not _local(i[4][0])]
            if not public:
                raise NewConnectionError(self, f"{self.host} resolves to an address of your "
                                               "own network: refused for a public site")
            infos = public
        limit = self.timeout if isinstance(self.timeout, (int, float)) else None
        error: Exception = NewConnectionError(self, f"{self.host} has no address")
        for info in infos:
            remaining = (at if at is not None else time.monotonic() + (limit or 60)) \
                - time.monotonic()
            if remaining <= 0:
                error = ConnectTimeoutError(self, f"connecting to {self.host}: the deadline "
                                                  "for this friend passed")
                break
            try:
                return create_connection(info[4][:2], min(limit or remaining, remaining),
                                         source_address=self.source_address,
                                         socket_options=self.socket_options)
            except socket.timeout:
                error = ConnectTimeoutError(self, f"connection to {self.host} timed out")
            except OSError as e:
                error = NewConnectionError(self, f"Failed to establish a new connection: {e}")
        raise error

    def connect(self) -> None:
        self.ssl_context = self.tls_context  # its CA file is loaded in it already
        self.ca_certs = self.ca_cert_dir = self.ca_cert_data = None
        if self.unverified:  # only ever asked for a card, which is checked by its signature
            self.cert_reqs = "CERT_NONE"
            self.assert_hostname = False
            self.assert_fingerprint = None
            super().connect()
            self.mark_verified()
            return
        if self.spki_pin is None:
            self.cert_reqs = "CERT_REQUIRED"
            super().connect()
            return
        self.cert_reqs = "CERT_NONE"
        self.assert_hostname = False
        self.assert_fingerprint = None
        super().connect()
        der = self.sock.getpeercert(binary_form=True) if self.sock else None
        try:
            pin = tls_pin_from_certificate(der) if der else None
        except CertificateError:
            pin = None
        if pin != self.spki_pin:
            self.sock.close()
            self.sock = None
            raise PinMismatchError("the server's key does not match the pin in their card")
        self.mark_verified()  # by the pin, which is stronger than a CA for this host


def _local(address: str) -> bool:
    import ipaddress
    try:
        return is_local_address(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return True  # not an address at all: never connect to it


def _pool_manager(context: ssl.SSLContext, spki_pin: bytes | None, *, hosts: int,
                  maxsize: int, unverified: bool = False) -> urllib3.PoolManager:
    """A urllib3 PoolManager whose HTTPS connections use `context` and, if given, check
    `spki_pin` (or, `unverified`, check nothing: for cards only); plain http has no
    pool at all. (urllib3 directly, not requests: the same connections at half the
    interpreter time per request, and fetching is bound by the interpreter.)"""
    connection = type("O2MHTTPSConnection", (_HTTPSConnection,),
                      {"tls_context": context, "spki_pin": spki_pin,
                       "unverified": unverified})
    pool = type("O2MHTTPSPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": connection})
    manager = urllib3.PoolManager(num_pools=max(10, hosts), maxsize=maxsize, retries=False)
    compat.use_https_pool(manager, pool)
    return manager


def _redirect_target(url: str, location: str, origin: tuple[str, str, int], seen: set[str],
                     name: str) -> str:
    """Where a redirect from `url` leads, when it may be followed: to https, on the
    friend's own origin (`cards.site_origin`, as for pins), not seen before in this
    download (THREATS.md 28).

    Raises:
        Refused(REDIRECT): anywhere else.
    """
    target = urljoin(url, location)
    if not target.lower().startswith("https://"):
        scheme = urlsplit(target).scheme[:20] or "a URL without a scheme"
        raise Refused(Reason.REDIRECT, f"{name}: redirected to {scheme}:, not https")
    try:
        elsewhere = site_origin(target) != origin
    except ValueError:  # a port that is not a number
        elsewhere = True
    if elsewhere:
        raise Refused(Reason.REDIRECT, f"{name}: redirected to another host")
    if target in seen:
        raise Refused(Reason.REDIRECT, f"{name}: redirect loop")
    return target


# ---------------------------------------------------------------- downloads


class HTTPFetcher:
    """The HTTPS client of one fetch run: one pool of connections for the friends
    checked by CAs, and one per TLS pin (§2.4), so that a pin vouches only for the
    friends whose cards carry it (thread-safe for plain GETs).

    Raises:
        CABundleError: the CA bundle (`ca_bundle` or $O2M_CA_BUNDLE) cannot be read.
    """

    def __init__(self, limits: Limits = Limits(), *, ca_bundle: str | None = None,
                 hosts: int = 10, pins: Iterable[bytes] = ()) -> None:
        self.limits = limits
        self._sizes = dict(hosts=hosts, maxsize=limits.workers)
        ca = _ca_context(ca_bundle or os.environ.get("O2M_CA_BUNDLE") or None)
        self._pools: dict[bytes | None, urllib3.PoolManager] = {
            None: _pool_manager(ca, None, **self._sizes)}
        self._pinned = _pinned_context()
        self._lock = threading.Lock()  # pools for pins met during the run (a new card's)
        self._unverified: urllib3.PoolManager | None = None
        for pin in pins:
            self._pool_for(pin)
        self._headers = {"User-Agent": f"o2m/{__version__}", "Accept-Encoding": "identity"}

    def close(self) -> None:
        for manager in [*self._pools.values(), self._unverified]:
            if manager is not None:
                manager.clear()

    def getter(self, site_url: str, deadline_at: float,
               tls_pin: bytes | None = None, *,
               unverified: bool = False) -> Callable[..., Download]:
        """The `get` of fetch_plan for one friend: paths under `site_url`, checked by
        their card's `tls_pin` (else by CAs), all done by `deadline_at`
        (time.monotonic()). `unverified`: no TLS check at all, on connections of their
        own, for the card refresh alone (§3.5: a card is trusted by its signature)."""
        origin = site_origin(site_url)
        manager = self._unverified_pool() if unverified else self._pool_for(tls_pin)
        pool = manager.connection_from_url(site_url)  # redirects stay on it

        def get(path: str, *, cap: int, etag: str | None = None,
                last_modified: str | None = None) -> Download:
            outer = getattr(_deadline, "at", None)
            _deadline.at = deadline_at  # every socket step on this thread, until we return
            try:
                return self._get(urljoin(site_url, path), cap, deadline_at, etag,
                                 last_modified, origin, pool, _label(path))
            finally:
                _deadline.at = outer
        return get

    def _pool_for(self, tls_pin: bytes | None) -> urllib3.PoolManager:
        manager = self._pools.get(tls_pin)
        if manager is None:
            with self._lock:
                manager = self._pools.get(tls_pin)
                if manager is None:
                    manager = self._pools[tls_pin] = _pool_manager(
                        self._pinned, tls_pin, **self._sizes)
        return manager

    def _unverified_pool(self) -> urllib3.PoolManager:
        with self._lock:
            if self._unverified is None:
                self._unverified = _pool_manager(self._pinned, None, unverified=True,
                                                 **self._sizes)
            return self._unverified

    def _get(self, url: str, cap: int, deadline_at: float, etag: str | None,
             last_modified: str | None, origin: tuple[str, str, int],
             pool: urllib3.HTTPSConnectionPool, name: str) -> Download:
        """`get` on the connection pool of the friend's origin (redirects must stay on
        that origin, so they stay on that pool); `name` is what refusals call the file."""
        headers = dict(self._headers)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        seen = {url}
        for _ in range(MAX_REDIRECTS + 1):
            if not url.lower().startswith("https://"):
                raise Refused(Reason.REDIRECT, f"{name}: not https")
            response = self._send(pool, url, headers, deadline_at)
            try:
                if response.status in (301, 302, 303, 307, 308):
                    url = _redirect_target(url, response.headers.get("Location", ""), origin,
                                           seen, name)
                    seen.add(url)
                    continue
                if response.status in (304, 404, 410):
                    self._drain(response, deadline_at)
                    return Download(304 if response.status == 304 else 404)
                if response.status != 200:
                    raise Refused(Reason.HTTP_ERROR, f"{name}: HTTP {response.status}")
                ctype = response.headers.get("Content-Type", "").lower()
                if ctype.startswith("text/html"):
                    raise Refused(Reason.MALFORMED, f"{name}: the host answered with an HTML page")
                encoding = response.headers.get("Content-Encoding", "").strip().lower()
                if encoding not in ("", "identity"):  # THREATS.md 27: we asked for none
                    raise Refused(Reason.MALFORMED, f"{name}: sent with Content-Encoding "
                                  f"{encoding[:40]!r}, which was not asked for")
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > cap:
                    raise Refused(Reason.OVERSIZED, f"{name}: {int(length):,} bytes, over the cap "
                                  f"of {cap:,}")
                body = self._read(response, cap, deadline_at, name)
                return Download(200, body, response.headers.get("ETag"),
                                _strong_last_modified(response.headers))
            finally:
                # a no-op for a connection already given back whole; else it is closed
                # (a body not read to its end) and its place in the pool freed
                response.close()
                response.release_conn()
        raise Refused(Reason.REDIRECT, f"{name}: too many redirects")

    def _send(self, pool: urllib3.HTTPSConnectionPool, url: str, headers: dict[str, str],
              deadline_at: float) -> urllib3.BaseHTTPResponse:
        remaining = deadline_at - time.monotonic()
        if remaining <= 0:
            raise Refused(Reason.TIMEOUT, "the deadline for this friend passed")
        timeout = urllib3.Timeout(connect=min(self.limits.connect_timeout, remaining),
                                  read=min(self.limits.read_timeout, remaining))
        try:
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return pool.urlopen("GET", target, headers=headers, redirect=False, retries=False,
                                preload_content=False, decode_content=False, timeout=timeout,
                                release_conn=False)
        except urllib3.exceptions.SSLError as e:
            raise _tls_refusal(e) from None
        except NewConnectionError as e:  # a ConnectTimeoutError too, for urllib3's reasons
            raise Refused(Reason.UNREACHABLE, _short(e)) from None
        except (ConnectTimeoutError, ReadTimeoutError):
            raise Refused(Reason.TIMEOUT, "no answer in time") from None
        except ProtocolError as e:
            if isinstance(e.args[-1], TimeoutError):  # the deadline, while sending
                raise Refused(Reason.TIMEOUT, "no answer in time") from None
            raise Refused(Reason.UNREACHABLE, _short(e)) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise Refused(Reason.UNREACHABLE, _short(e)) from None

    def _read(self, response: urllib3.BaseHTTPResponse, cap: int, deadline_at: float,
              name: str) -> bytes:
        """The whole body as received (never decoded), at most `cap` bytes, by
        `deadline_at` (each read also stops there: `_DeadlineSSLSocket`)."""
        chunks, total = [], 0
        while True:
            if deadline_at <= time.monotonic():
                raise Refused(Reason.TIMEOUT, f"{name}: still downloading at the deadline")
            try:
                # never more than one byte past the cap (THREATS 20: abort at length+1)
                chunk = response.read1(min(CHUNK, cap + 1 - total), decode_content=False)
            except (socket.timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError):
                raise Refused(Reason.TIMEOUT, f"{name}: the body stopped coming") from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise Refused(Reason.UNREACHABLE, f"{name}: the connection broke ({_short(e)})") \
                    from None
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                raise Refused(Reason.OVERSIZED, f"{name}: over the cap of {cap:,} bytes")
            chunks.append(chunk)
        response.release_conn()  # read whole: the connection goes back to the pool
        return b"".join(chunks)

    def _drain(self, response: urllib3.BaseHTTPResponse, deadline_at: float) -> None:
        """Read a small error or 304 body so the connection can be reused."""
        try:
            self._read(response, 64 * 1024, deadline_at, "")
        except Refused:
            pass


def _label(path: str) -> str:
    """What a refusal calls a file of a friend's site: "head", "archive page", "object"
    and its hash, or the file's name. Never a feed's name: `f/<name>` is semi-secret
    (PROTOCOL.md §3.1), and refusal lines reach terminals, logs and `last_error`
    (security review finding 12)."""
    folder, _, rest = path.partition("/")
    if folder == "f":
        return "head"
    if folder == "p":
        return "archive page"
    if folder == "o":
        return f"object {rest[:12]}"
    return path.rsplit("/", 1)[-1][:40] or "/"


# What OpenSSL says when the two sides share no TLS version (we offer 1.2 and 1.3).
_TLS_VERSION_REASONS = frozenset({"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION",
                                  "NO_PROTOCOLS_AVAILABLE"})


def _tls_refusal(e: urllib3.exceptions.SSLError) -> Refused:
    """The refusal for a failed TLS handshake, naming what failed: the pin, the
    certificate, or a server too old to speak TLS 1.2 (security review finding 10)."""
    if "pin" in str(e):
        return Refused(Reason.BAD_CERTIFICATE, "the server's key does not match the pin in "
                       f"their card: {_FRESH_CARD}")
    reason = next((getattr(x, "reason", None) for x in _chain(e)
                   if isinstance(x, ssl.SSLError) and not isinstance(
                       x, ssl.SSLCertVerificationError)), None)
    if reason in _TLS_VERSION_REASONS:
        return Refused(Reason.TLS_TOO_OLD, "the server offers only TLS older than 1.2")
    return Refused(Reason.BAD_CERTIFICATE, "the server's certificate is not valid for it "
                   f"({_verify_message(e)}): {_FRESH_CARD}, or name a private CA in "
                   "$O2M_CA_BUNDLE")


# what a friend whose server's certificate fails can do (their signed card, fetched with
# the certificate unchecked, was no help either: `fetch_run`)
_FRESH_CARD = "ask them for their card as they have it now (`o2m card`)"


def _chain(e: BaseException) -> list[BaseException]:
    """`e`, what it wraps (urllib3 keeps the ssl error in its args) and its causes."""
    seen: list[BaseException] = []
    todo: list[object] = [e]
    while todo:
        current = todo.pop()
        if isinstance(current, BaseException) and all(current is not s for s in seen):
            seen.append(current)
            todo += [current.__cause__, current.__context__, *current.args]
    return seen


def _strong_last_modified(headers: object) -> str | None:
    """Last-Modified, unless the file changed within a second of the response (RFC 9110
    §8.8.2.2: then it is weak): a head rewritten in that same second would be missed by
    a later If-Modified-Since."""
    from email.utils import parsedate_to_datetime

    def utc(text: object) -> dt.datetime:
        # "-0000" (RFC 5322: UTC, local zone unknown) parses naive, "+0000" or "GMT"
        # aware; a naive one minus an aware one would raise TypeError
        parsed = parsedate_to_datetime(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)

    value = headers.get("Last-Modified")
    try:
        age = utc(headers.get("Date")) - utc(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return value if age.total_seconds() >= 2 else None


def _short(e: BaseException) -> str:
    """What went wrong, as a person says it: "connection refused", not "[Errno 111]
    Connection refused" after a repr of urllib3's connection."""
    text = str(e).split("\n")[0]
    unresolved = re.search(r"Failed to resolve '([^']+)'", text)
    if unresolved:
        return f"no such host: {unresolved.group(1)}"
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker)[-1]
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text.strip("()'\" "))
    text = text[:1].lower() + text[1:] if text[:2].istitle() else text
    return text[:160] or e.__class__.__name__


# ---------------------------------------------------------------- a fetch run

# The fetch run (targets, keys, friends in parallel, the store) is `fetch_run.py`; its
# names are still found here.
_MOVED = frozenset({"FetchTarget", "keys_for", "prepare_keys", "fetch_friends", "run_fetch",
                    "targets_from_friends", "_record", "_gather"})


def __getattr__(name: str) -> object:
    if name in _MOVED:
        from o2m_pub.reader import fetch_run
        return getattr(fetch_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- one card (o2m friend add URL)


MAX_CARD_FETCH_BYTES = 64 * 1024  # a card is at most 4 KiB (§2.4); `parse_card` says so


class CardFetchError(O2MError):
    """The contact card could not be fetched from that site."""

    hint = "check the address, or ask your friend for their card as o2m1:… text"


def fetch_card_bytes(url: str, *, deadline: float = 20.0, ca_bundle: str | None = None,
                     max_bytes: int = MAX_CARD_FETCH_BYTES) -> bytes:
    """The bytes of the card a site publishes (PROTOCOL.md §2.4), for `o2m friend add
    NAME URL`: `url` is the site's address (the card is at its well-known path) or the
    card's own ``….json`` address.

    Fetched as a friend's files are (`HTTPFetcher`): https only, checked by CAs (the
    card is not known yet, so no pin; $O2M_CA_BUNDLE or `ca_bundle` names a private
    CA), no proxy from the environment, redirects only on the same origin and to https,
    identity encoding, at most `max_bytes`, and all of it within `deadline` seconds of
    wall-clock time (a host that trickles its headers is cut off then: security review
    finding 4). The bytes are not checked here: `cards.card_from_any` does that.

    Raises:
        CardFetchError: not https, unreachable, a bad certificate (a self-signed one
            says so: such a site's card comes as o2m1:… text), not 200, too big, or
            not whole by the deadline. Its `where` is the card's address.
        CABundleError: the CA bundle cannot be read.
    """
    card_url = url if url.endswith(".json") else url.rstrip("/") + "/" + CARD_PATH
    if not card_url.lower().startswith("https://"):
        raise CardFetchError("only https:// addresses are fetched", path=url)
    limits = Limits(connect_timeout=min(15.0, deadline), read_timeout=min(15.0, deadline),
                    deadline=deadline, workers=1)
    fetcher = HTTPFetcher(limits, ca_bundle=ca_bundle, hosts=1)
    try:
        get = fetcher.getter(card_url, time.monotonic() + deadline)
        response = get(card_url, cap=max_bytes)
    except Refused as e:
        raise _card_refusal(e, deadline, max_bytes, card_url) from None
    finally:
        fetcher.close()
    if response.status != 200:  # the getter folds 404 and 410 into 404
        raise CardFetchError(f"cannot fetch the card: HTTP {response.status}", path=card_url)
    return response.body


def _card_refusal(e: Refused, deadline: float, max_bytes: int, card_url: str) -> CardFetchError:
    """The one line for a refused card fetch (the getter's details name a friend's
    files; these name the card)."""
    name = _label(card_url)  # as the getter names it
    detail = e.detail.removeprefix(f"{name}: ")
    if "Connection(" in detail and "): " in detail:  # urllib3's own name for the connection
        detail = detail.split("): ", 1)[1]
    detail += ")" * (detail.count("(") - detail.count(")"))  # `_short` cut its end
    if e.reason == Reason.BAD_CERTIFICATE and _self_signed(e):
        return CardFetchError(
            "this site uses a self-signed certificate: ask them for their o2m1:… card text",
            path=card_url, hint="they print it with `o2m card`; it carries their "
            "certificate's pin, which `o2m fetch` then checks instead of a CA")
    reason = {
        Reason.TIMEOUT: f"no whole answer within {deadline:g} s",
        Reason.OVERSIZED: f"over {max_bytes:,} bytes, far more than a card",
        Reason.UNREACHABLE: f"cannot reach the site ({detail})",
        Reason.BAD_CERTIFICATE: f"the site's certificate is not valid ({_verify_message(e)})",
    }.get(e.reason, detail)
    hint = ("a private CA can be named in $O2M_CA_BUNDLE; or ask your friend for their "
            "card as o2m1:… text") if e.reason == Reason.BAD_CERTIFICATE else None
    return CardFetchError(f"cannot fetch the card: {reason}", path=card_url, hint=hint)


def _verification_error(e: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that failed, found down the chain of exceptions that led to
    `e` (urllib3 wraps it; the getter's refusal keeps it as its context)."""
    seen: set[int] = set()
    todo: list[object] = [e]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        todo += [current.__cause__, current.__context__, *current.args]
    return None


def _self_signed(e: BaseException) -> bool:
    """Whether the certificate was refused for being self-signed itself, as `o2m serve`
    makes them (OpenSSL's X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT; a chain up to an
    unknown root is a private CA, which $O2M_CA_BUNDLE can name)."""
    found = _verification_error(e)
    return found is not None and found.verify_code == 18


def _verify_message(e: BaseException) -> str:
    found = _verification_error(e)
    return (found.verify_message if found is not None and found.verify_message
            else "no trusted CA vouches for it")


# ---------------------------------------------------------------- the inbox (o2m friend accept)


INBOX_PATH = ".well-known/o2m-inbox"  # PROTOCOL.md §5
MAX_INBOX_ANSWER_BYTES = 8192


@dataclass(frozen=True)
class InboxAnswer:
    """What a site's inbox said to a POST: its HTTP status (None: no answer at all), and
    in words why it is not 202."""

    status: int | None
    detail: str = ""

    @property
    def delivered(self) -> bool:
        return self.status == 202


def post_to_inbox(site_url: str, body: bytes, *, tls_pin: bytes | None,
                  deadline: float = 20.0, ca_bundle: str | None = None) -> InboxAnswer:
    """POST `body` to the inbox of the site at `site_url` (PROTOCOL.md §5) the way a
    friend's files are fetched: https only; the card's `tls_pin` checked right after the
    handshake, before a byte is sent (else the CA check, $O2M_CA_BUNDLE or `ca_bundle`);
    no proxy from the environment; no redirect followed; everything within `deadline`
    seconds of wall-clock time; at most 8 KiB of the answer read.

    Raises:
        CABundleError: the CA bundle cannot be read.
    """
    url = urljoin(site_url, INBOX_PATH)
    if not url.lower().startswith("https://"):
        return InboxAnswer(None, "only https:// sites are sent to")
    limits = Limits(connect_timeout=min(15.0, deadline), read_timeout=min(15.0, deadline),
                    deadline=deadline, workers=1)
    fetcher = HTTPFetcher(limits, ca_bundle=ca_bundle, hosts=1, pins=[tls_pin] if tls_pin else [])
    deadline_at = time.monotonic() + deadline
    outer = getattr(_deadline, "at", None)
    _deadline.at = deadline_at  # every socket step, until we return
    try:
        pool = fetcher._pool_for(tls_pin).connection_from_url(url)
        response = pool.urlopen(
            "POST", urlsplit(url).path, body=body, redirect=False, retries=False,
            headers={**fetcher._headers, "Content-Type": "application/octet-stream"},
            preload_content=False, decode_content=False, release_conn=False,
            timeout=urllib3.Timeout(connect=limits.connect_timeout, read=limits.read_timeout))
        try:
            fetcher._read(response, MAX_INBOX_ANSWER_BYTES, deadline_at, "inbox")
        except Refused:
            pass  # the status is the answer; the body only says it in words
        finally:
            response.close()
            response.release_conn()
        return InboxAnswer(response.status, "" if response.status == 202 else
                           f"the site answered HTTP {response.status}")
    except urllib3.exceptions.SSLError as e:
        return InboxAnswer(None, "the site's key does not match the pin in its card"
                           if "pin" in str(e) else "the site's certificate is not valid for it")
    except NewConnectionError as e:  # before ConnectTimeoutError: urllib3 makes it one
        return InboxAnswer(None, f"cannot reach the site ({_short(e)})")
    except (ConnectTimeoutError, ReadTimeoutError):
        return InboxAnswer(None, f"no answer within {deadline:g} s")
    except (urllib3.exceptions.HTTPError, OSError) as e:
        return InboxAnswer(None, f"cannot reach the site ({_short(e)})")
    finally:
        _deadline.at = outer
        fetcher.close()
