"""Pages of the public web, fetched with hard limits: the HTTP client of Webmention
(PROTOCOL.md §1.6), which talks to any site, http or https, not only to friends.

`http_fetch` is friend-shaped (https only, redirects kept on the friend's origin, TLS
pins); a Webmention goes wherever its target or source is, so this client follows
redirects across sites and speaks plain http too. What it keeps of `http_fetch`'s rules
(THREATS.md 24-28): a wall-clock deadline over the whole exchange (a timer cuts the
socket when it passes, whatever step is waiting), a read timeout per step, a cap on the
body counted on the bytes received (a Content-Length over it is refused unread),
``Accept-Encoding: identity`` with any other Content-Encoding refused at the headers,
at most `MAX_REDIRECTS` redirects and no loop, no proxy from the environment, CA checks
($O2M_CA_BUNDLE names a private CA).

And one rule of its own, against server-side request forgery: every address is put in
a `Reach` (loopback, private, public) and a request never goes to an address more local
than its `floor`. The host name is resolved once per hop, every address it resolves to
is checked, and the connection is made to a checked address (a name that resolves to a
public address for the check and to 127.0.0.1 for the connection cannot slip through).
A Webmention receiver's floor is the reach of the owner's own site; a sender's, the
reach of the target (`reach_of_url`): an endpoint may not be more local than its target.

    WebRefused (Exception)   a page not fetched, or an answer refused; not an O2MError:
                             the caller records it as the outcome of that one mention
"""

from __future__ import annotations

import enum
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from o2m_pub import __version__
from o2m_pub.reader.http_fetch import load_ca_bundle

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
MAX_URL_CHARS = 2048
USER_AGENT = f"o2m/{__version__} (Webmention)"


class Reach(enum.IntEnum):
    """How far an address is from this machine; a request may go to its floor or
    further, never nearer."""

    LOOPBACK = 0  # this machine
    PRIVATE = 1  # this network: RFC 1918, link-local, unique-local, CGNAT, reserved
    PUBLIC = 2  # the internet


class WebRefused(Exception):
    """A page not fetched or an answer refused: `reason` is a short word for the
    record ("unreachable", "timeout", "too large", "private address", "http", ...),
    `detail` the line to show."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class WebPage:
    """A whole answer: the URL it came from after redirects, its status, its headers
    (lower-case name -> every value, in order) and its body (never decoded)."""

    url: str
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def media_type(self) -> str:
        return self.header("content-type").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Caps:
    """The limits of one exchange: the body's bytes, the wall-clock seconds for all of
    it (redirects included), and the seconds any one step may wait."""

    max_bytes: int = 1 << 20
    deadline: float = 10.0
    step_timeout: float = 10.0


# ---------------------------------------------------------------- reach (pure)


def reach_of(address: str) -> Reach:
    """The reach of one IP address (IPv4-mapped IPv6 addresses as their IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:  # 0.0.0.0 reaches this machine too
        return Reach.LOOPBACK
    if ip.is_global and not ip.is_multicast:
        return Reach.PUBLIC
    return Reach.PRIVATE


def _resolve(host: str, port: int) -> list[tuple[int, tuple]]:
    """(family, socket address) of every address `host` resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise WebRefused("unreachable", f"{host}: no such host ({e})") from None
    if not infos:
        raise WebRefused("unreachable", f"{host}: no address")
    return [(info[0], info[4]) for info in infos]


def reach_of_url(url: str) -> Reach:
    """The nearest reach of the addresses `url`'s host resolves to (the floor a sender
    keeps for a target, a receiver for its own site).

    Raises:
        WebRefused: not an http(s) URL, or the host does not resolve.
    """
    scheme, host, port = _origin(url)
    return min(reach_of(address[0]) for _, address in _resolve(host, port))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise WebRefused("bad url", f"not an http(s) URL: {url[:200]}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebRefused("bad url", f"a bad port in {url[:200]}") from None
    return scheme, parts.hostname, port


# ---------------------------------------------------------------- the client


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_ca_bundle(context, os.environ.get("O2M_CA_BUNDLE"))
    return context


class _Exchange:
    """One request on its own connection, within a deadline: a timer shuts the socket
    down when the deadline passes, which ends any step waiting on it."""

    def __init__(self, deadline_at: float, step_timeout: float) -> None:
        self.deadline_at, self.step_timeout = deadline_at, step_timeout
        self.sock: socket.socket | None = None
        self.expired = False
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        left = self.deadline_at - time.monotonic()
        if left <= 0:
            self.expired = True
            raise WebRefused("timeout", "no whole answer in time")
        return left

    def connect(self, host: str, port: int, scheme: str, floor: Reach,
                context: ssl.SSLContext | None) -> socket.socket:
        """A connection to `host` on one of its addresses, all of which reach at least
        `floor`."""
        addresses = _resolve(host, port)
        near = [a[0] for _, a in addresses if reach_of(a[0]) < floor]
        if near:
            raise WebRefused("private address", f"{host} is at {near[0]}, nearer than "
                             f"the {floor.name.lower()} addresses allowed here")
        error: Exception | None = None
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(min(self.step_timeout, self.remaining()))
            try:
                sock.connect(address)
                break
            except OSError as e:
                sock.close()
                error = e
        else:
            if isinstance(error, TimeoutError):
                raise WebRefused("timeout", f"{host}: no connection in time")
            raise WebRefused("unreachable", f"{host}: {error}")
        self.sock = sock
        self._timer = threading.Timer(self.remaining(), self._cut)
        self._timer.daemon = True
        self._timer.start()
        if scheme == "https":
            assert context is not None
            try:
                self.sock = context.wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as e:
                sock.close()
                raise WebRefused("bad certificate", f"{host}: {e.verify_message or e}") from None
            except (ssl.SSLError, OSError) as e:
                sock.close()
                raise self._broken(f"{host}: TLS failed ({e})") from None
        return self.sock

    def _cut(self) -> None:
        self.expired = True
        sock = self.sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP, under any TLS
            except OSError:
                pass

    def _broken(self, detail: str) -> WebRefused:
        if self.expired or self.deadline_at <= time.monotonic():
            return WebRefused("timeout", "no whole answer in time")
        return WebRefused("unreachable", detail)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.sock is not None:
            self.sock.close()


def request(url: str, *, floor: Reach, caps: Caps = Caps(), method: str = "GET",
            form: bytes | None = None, accept: str = "text/html, */*;q=0.5",
            follow: bool = True) -> WebPage:
    """Fetch `url` (GET), or POST `form` (``application/x-www-form-urlencoded``) to it.

    Redirects are followed (at most `MAX_REDIRECTS`, never in a loop, each to http(s)
    and each hop's addresses checked against `floor`) when `follow`: for a GET any of
    301, 302, 303, 307, 308; for a POST only 307 and 308, which keep the method and
    body. The body of every answer is read whole within `caps`.

    Returns:
        The final answer, whatever its status.

    Raises:
        WebRefused: unreachable, too slow, too large, a bad certificate, an address
            nearer than `floor`, an encoding not asked for, too many redirects.
        CABundleError: $O2M_CA_BUNDLE names no usable bundle.
    """
    deadline_at = time.monotonic() + caps.deadline
    context: ssl.SSLContext | None = None
    seen = {url}
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port = _origin(url)
        if scheme == "https" and context is None:
            context = _tls_context()
        page = _one(url, scheme, host, port, method, form, accept, floor, caps, deadline_at,
                    context)
        location = page.header("location")
        redirect = page.status in ((301, 302, 303, 307, 308) if method == "GET"
                                   else (307, 308))
        if not (follow and redirect and location):
            return page
        url = urljoin(url, location.strip())
        if len(url) > MAX_URL_CHARS or url in seen:
            raise WebRefused("redirect", "a redirect loop" if url in seen
                             else "redirected to an overlong URL")
        seen.add(url)
    raise WebRefused("redirect", f"more than {MAX_REDIRECTS} redirects")


def _one(url: str, scheme: str, host: str, port: int, method: str, form: bytes | None,
         accept: str, floor: Reach, caps: Caps, deadline_at: float,
         context: ssl.SSLContext | None) -> WebPage:
    """One request and its whole answer, on a connection of its own."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    exchange = _Exchange(deadline_at, caps.step_timeout)
    try:
        sock = exchange.connect(host, port, scheme, floor, context)
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = kind(host, port, timeout=caps.step_timeout)
        connection.sock = sock  # ours, connected to a checked address
        headers = {"User-Agent": USER_AGENT, "Accept": accept,
                   "Accept-Encoding": "identity", "Connection": "close"}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, target, body=form, headers=headers)
        response = connection.getresponse()
        received = {}
        for name, value in response.getheaders():
            received.setdefault(name.lower(), []).append(value)
        page = WebPage(url, response.status, received)
        encoding = page.header("content-encoding").strip().lower()
        if encoding not in ("", "identity"):
            raise WebRefused("encoding", f"sent with Content-Encoding {encoding[:40]!r}, "
                             "which was not asked for")
        length = page.header("content-length").strip()
        if length.isdigit() and int(length) > caps.max_bytes:
            raise WebRefused("too large", f"{int(length):,} bytes, over the cap of "
                             f"{caps.max_bytes:,}")
        body = _read(response, caps.max_bytes, exchange)
        return WebPage(url, response.status, received, body)
    except WebRefused:
        raise
    except (http.client.HTTPException, OSError, ValueError) as e:
        raise exchange._broken(f"{host}: {e.__class__.__name__}: {e}"[:200]) from None
    finally:
        exchange.close()


def _read(response: http.client.HTTPResponse, cap: int, exchange: _Exchange) -> bytes:
    """The body, at most `cap` bytes (one more is never asked for), by the deadline."""
    chunks, total = [], 0
    while True:
        exchange.remaining()
        chunk = response.read1(min(CHUNK, cap + 1 - total))
        if not chunk:
            if exchange.expired:
                raise WebRefused("timeout", "no whole answer in time")
            break
        total += len(chunk)
        if total > cap:
            raise WebRefused("too large", f"over the cap of {cap:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["Caps", "MAX_REDIRECTS", "WebPage", "Reach", "WebRefused", "reach_of",
           "reach_of_url", "request"]
