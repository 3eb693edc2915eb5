"""`o2m serve`: build/ over HTTPS with Twisted, fit for the open internet.

The decisions (which path may be served, which headers, what may be compressed)
are pure functions in static_rules.py; this module is the I/O around them:
sockets, TLS, files, signals and worker processes.

Speed comes from doing per file what others do per request: the headers of a
file, and the bytes of small ones (gzipped once when they are public text), are
kept in memory and checked against one ``stat`` per request. One process per core
shares the listening socket, each with its own reactor, as nginx's workers do.
"""

from __future__ import annotations

import gzip
import html
import os
import signal
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable
from urllib.parse import quote

from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from zope.interface import implementer

from o2m_pub.errors import O2MError
from o2m_pub.host import static_rules as rules
from o2m_pub.host.tls import KeyPair, TLSError, load_pair, server_context

SMALL_FILE = 1 << 20  # files up to this size are kept in memory
LIVE_PATH = b"/_o2m/live"
LIVE_SCRIPT_PATH = b"/_o2m/live.js"
LIVE_SCRIPT = (b'"use strict";new EventSource("/_o2m/live").onmessage=function(){'
               b'location.reload();};\n')
LIVE_TAG = b'<script src="/_o2m/live.js" defer></script>'


class ServeError(O2MError):
    """The server cannot start: a port in use, no build/, a bad certificate."""


@dataclass
class ServeOptions:
    """How to serve; `o2m serve`'s flags and the ``[serve]`` table land here."""

    workers: int = 1
    live_reload: bool = False
    access_log: IO[str] | None = None
    log_addresses: bool = True
    request_timeout: float = 10.0  # from a request's first byte to the whole of it
    idle_timeout: float = 30.0  # no request in progress, nothing left to send
    stall_timeout: float = 120.0  # a client that takes none of an answer's bytes
    max_connections: int = 4096  # per worker; more are closed at once
    cache_bytes: int = 64 << 20  # per worker
    report: Callable[[str], None] = field(default=lambda line: None)


# -- files --------------------------------------------------------------------------

@dataclass
class _Entry:
    """A servable file as of one stat: its headers and, when small, its bytes."""

    fs_path: str
    facts: rules.FileFacts
    headers: http.Headers
    body: bytes | None
    gzipped: bytes | None
    gz_headers: http.Headers | None


class FileCache:
    """Entries by the file they name, least recently used dropped past `max_bytes`.

    Keyed by the resolved path, not the raw one, so the many %-spellings of one file
    share one entry; every entry costs a fixed overhead besides its bytes, so a
    flood of distinct paths (or of large, streamed files) cannot grow it unbounded.
    """

    ENTRY_COST = 2048  # bytes charged per entry for its headers and bookkeeping

    def __init__(self, build_dir: Path, *, live_reload: bool, max_bytes: int) -> None:
        self.root = os.path.realpath(build_dir)
        self.live_reload = live_reload
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, bool], _Entry] = OrderedDict()
        self._bytes = 0

    def lookup(self, raw_path: bytes, versioned: bool) -> _Entry | str | None:
        """The entry for a request path; a str is a redirect target; None is a 404."""
        if b"%" in raw_path or b"\\" in raw_path:
            rel = rules.resolve(raw_path)  # the slow, careful way, for every odd spelling
            if rel is None:
                return None
        else:
            # Without %-escapes a path spells its file one way only: the cache may be
            # asked directly; a miss below still goes through rules.resolve.
            try:
                rel = raw_path[1:].decode("utf-8")
            except UnicodeDecodeError:
                return None
            if rel == "" or rel.endswith("/"):
                rel += "index.html"
        key = (rel, versioned)
        entry = self._entries.get(key)
        if entry is not None:
            try:
                st = os.stat(entry.fs_path)
            except OSError:
                st = None
            if st is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == (
                    entry.facts.size, entry.facts.mtime_ns, entry.facts.inode):
                self._entries.move_to_end(key)
                return entry
            self._drop(key)
        if rules.resolve(raw_path) != rel:
            return None
        fs_path = os.path.join(self.root, rel)
        if not self._contained(fs_path):
            return None  # a symlink out of build/ (THREATS 42)
        try:
            st = os.stat(fs_path)
        except OSError:
            return None
        if os.path.isdir(fs_path):
            # /dir -> /dir/ only where a page is there to show; never a listing (THREATS 40)
            if os.path.isfile(os.path.join(fs_path, "index.html")):
                return "/" + quote(rel, safe="/") + "/"
            return None
        entry = self._make_entry(fs_path, rel, st, versioned)
        self._entries[key] = entry
        self._bytes += self._cost(entry)
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        return entry

    def _cost(self, entry: _Entry) -> int:
        return self.ENTRY_COST + len(entry.body or b"") + len(entry.gzipped or b"")

    def _drop(self, key: tuple[str, bool]) -> None:
        self._bytes -= self._cost(self._entries.pop(key))

    def _contained(self, fs_path: str) -> bool:
        real = os.path.realpath(fs_path)
        return real == self.root or real.startswith(self.root + os.sep)

    def _make_entry(self, fs_path: str, rel: str, st: os.stat_result, versioned: bool) -> _Entry:
        facts = rules.FileFacts(st.st_size, st.st_mtime_ns, st.st_ino)
        ctype = rules.content_type(rel)
        inject = self.live_reload and ctype.startswith("text/html")
        body = None
        if st.st_size <= SMALL_FILE:
            with open(fs_path, "rb") as f:
                body = f.read()
            if inject:
                body = _inject_live_script(body)
        headers = _ResponseHeaders()
        for name, value in rules.response_headers(rel, facts, versioned=versioned,
                                                  live_reload=inject):
            headers.setRawHeaders(name, [value])
        headers.setRawHeaders(b"server", [b"o2m"])
        if inject:  # a different body under the same stat: a different tag
            headers.setRawHeaders(b"etag", [facts.etag[:-1].encode() + b'-live"'])
        gzipped = gz_headers = None
        if body is not None and len(body) >= 256 and rules.compressible(rel, ctype):
            packed = gzip.compress(body, compresslevel=6, mtime=0)
            if len(packed) < len(body):
                gzipped, gz_headers = packed, headers.copy()
                gz_headers.setRawHeaders(b"content-encoding", [b"gzip"])
                gz_headers.setRawHeaders(b"content-length", [b"%d" % len(packed)])
                gz_headers.removeHeader(b"accept-ranges")
        if body is not None:
            headers.setRawHeaders(b"content-length", [b"%d" % len(body)])
        headers.wire = _wire_form(headers)
        if gz_headers is not None:
            gz_headers.wire = _wire_form(gz_headers)
        return _Entry(fs_path, facts, headers, body, gzipped, gz_headers)


def _inject_live_script(page: bytes) -> bytes:
    at = page.rfind(b"</body>")
    return page + LIVE_TAG if at < 0 else page[:at] + LIVE_TAG + page[at:]


def _accepts_gzip(request: server.Request) -> bool:
    value = request.requestHeaders.getRawHeaders(b"accept-encoding")
    if not value:
        return False
    for part in b",".join(value).lower().split(b","):
        coding, _, params = part.strip().partition(b";")
        if coding.strip() == b"gzip":
            return params.replace(b" ", b"") not in (b"q=0", b"q=0.0", b"q=0.00", b"q=0.000")
    return False


# -- resources ----------------------------------------------------------------------

class StaticSite(resource.Resource):
    """build/ and nothing else: GET and HEAD, conditional and range requests."""

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD")

    def __init__(self, cache: FileCache, live: LiveReload | None) -> None:
        super().__init__()
        self.cache = cache
        self.live = live
        self.not_found = _NotFoundPage(cache)

    def render(self, request: server.Request) -> bytes | int:
        if request.method not in self.allowedMethods:
            request.setResponseCode(http.NOT_ALLOWED)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Method not allowed\n"
        return self.render_GET(request)

    def render_GET(self, request: server.Request) -> bytes | int:
        path = request.path
        if self.live is not None and path.startswith(b"/_o2m/"):
            return self.live.render(request)
        entry = self.cache.lookup(path, b"v" in request.args)
        if entry is None:
            return self.not_found.render(request)
        if isinstance(entry, str):
            return _redirect(request, entry + _query(request))
        headers = request.requestHeaders
        if rules.not_modified(entry.facts, _one(headers, b"if-none-match"),
                              _one(headers, b"if-modified-since")):
            request.setResponseCode(http.NOT_MODIFIED)
            _set_headers(request, entry.headers, keep_length=False)
            return b""
        if entry.gzipped is not None and _accepts_gzip(request):
            _set_headers(request, entry.gz_headers)
            return entry.gzipped
        span = rules.parse_range(_one(headers, b"range"), entry.facts.size)
        if span is not None and _if_range_holds(request, entry):
            return self._partial(request, entry, span)
        _set_headers(request, entry.headers)
        if entry.body is not None:
            return entry.body
        return _stream(request, entry.fs_path, 0, entry.facts.size)

    def _partial(self, request: server.Request, entry: _Entry,
                 span: tuple[int, int] | str) -> bytes | int:
        size = entry.facts.size
        if span == "unsatisfiable":
            request.setResponseCode(http.REQUESTED_RANGE_NOT_SATISFIABLE)
            request.setHeader(b"content-range", b"bytes */%d" % size)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b""
        start, end = span
        request.setResponseCode(http.PARTIAL_CONTENT)
        _set_headers(request, entry.headers, keep_length=False)
        request.setHeader(b"content-range", b"bytes %d-%d/%d" % (start, end - 1, size))
        request.setHeader(b"content-length", b"%d" % (end - start))
        if entry.body is not None:
            return entry.body[start:end]
        return _stream(request, entry.fs_path, start, end - start)


def _one(headers: http.Headers, name: bytes) -> bytes | None:
    values = headers.getRawHeaders(name)
    return values[0] if values else None


def _query(request: server.Request) -> str:
    _, sep, query = request.uri.partition(b"?")
    return "?" + quote(query.decode("latin-1"), safe="=&;%+") if sep else ""


def _if_range_holds(request: server.Request, entry: _Entry) -> bool:
    """A Range with an If-Range that no longer matches gets the whole file (RFC 9110 §13.1.5)."""
    condition = _one(request.requestHeaders, b"if-range")
    return condition is None or condition == entry.facts.etag.encode() or \
        condition == entry.facts.last_modified.encode()


def _set_headers(request: server.Request, headers: http.Headers, keep_length: bool = True) -> None:
    request.use_headers(headers)
    if not keep_length:
        request.responseHeaders.removeHeader(b"content-length")


def _stream(request: server.Request, fs_path: str, offset: int, length: int) -> int:
    """A large file, read as the client takes it (no whole file in memory)."""
    from twisted.web.static import SingleRangeStaticProducer

    request.setHeader(b"content-length", b"%d" % length)
    if request.method == b"HEAD":
        return b""  # type: ignore[return-value]
    f = open(fs_path, "rb")
    request.notifyFinish().addBoth(lambda _: f.close())
    SingleRangeStaticProducer(request, f, offset, length).start()
    return server.NOT_DONE_YET


def _redirect(request: server.Request, location: str) -> bytes:
    """A 301 whose Location is percent-encoded and whose body is escaped (THREATS 40)."""
    request.setResponseCode(http.MOVED_PERMANENTLY)
    request.setHeader(b"location", location.encode("ascii"))
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"content-security-policy", rules.DATA_CSP.encode())
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"server", b"o2m")
    link = html.escape(location, quote=True)
    return f'<!doctype html><title>Moved</title><a href="{link}">{link}</a>\n'.encode()


class _NotFoundPage:
    """The site's own 404.html (its links are root-relative, PROTOCOL.md §1.1)."""

    def __init__(self, cache: FileCache) -> None:
        self.cache = cache

    def render(self, request: server.Request) -> bytes:
        request.setResponseCode(http.NOT_FOUND)
        entry = self.cache.lookup(b"/404.html", False)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", rules.PAGE_CSP.encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"server", b"o2m")
        if isinstance(entry, _Entry) and entry.body is not None:
            return entry.body
        return b"<!doctype html><title>Not found</title><h1>Not found</h1>\n"


class RedirectToHTTPS(resource.Resource):
    """The optional plain-HTTP port: nothing but a redirect to the same path over TLS."""

    isLeaf = True

    def __init__(self, https_port: int) -> None:
        super().__init__()
        self.https_port = https_port

    def render(self, request: server.Request) -> bytes:
        host = (request.getRequestHostname() or b"localhost").decode("ascii", "replace")
        if not all(c.isalnum() or c in ".-:[]" for c in host):
            host = "localhost"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = "" if self.https_port == 443 else f":{self.https_port}"
        target = quote(request.uri.decode("latin-1"), safe="/?=&;%+:@!$'()*,~-._")
        return _redirect(request, f"https://{host}{port}{target}")


class LiveReload:
    """Server-sent events that tell open pages to reload after a build.

    Each worker watches the build's manifest (it changes on every commit), so this
    works whichever process rebuilt, and however many workers there are.
    """

    def __init__(self, state_dir: Path) -> None:
        self.stamp_paths = [state_dir / "build.db", state_dir / "build.db-wal"]
        self.listeners: list[server.Request] = []
        self.stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[int, ...]:
        stamp = []
        for path in self.stamp_paths:
            try:
                stamp.append(path.stat().st_mtime_ns)
            except OSError:
                stamp.append(0)
        return tuple(stamp)

    def render(self, request: server.Request) -> bytes | int:
        if request.path == LIVE_SCRIPT_PATH:
            request.setHeader(b"content-type", b"text/javascript; charset=utf-8")
            request.setHeader(b"cache-control", b"no-cache")
            return LIVE_SCRIPT
        if request.path != LIVE_PATH:
            request.setResponseCode(http.NOT_FOUND)
            return b""
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-store")
        request.write(b"retry: 1000\n\n")
        self.listeners.append(request)
        request.notifyFinish().addBoth(lambda _: self._forget(request))
        return server.NOT_DONE_YET

    def _forget(self, request: server.Request) -> None:
        if request in self.listeners:
            self.listeners.remove(request)

    def poll(self) -> None:
        stamp = self._read_stamp()
        if stamp != self.stamp:
            self.stamp = stamp
            for request in list(self.listeners):
                request.write(b"data: reload\n\n")

    def close_all(self) -> None:
        for request in list(self.listeners):
            request.finish()


# -- connections --------------------------------------------------------------------

class _DeadlineChannel(http.HTTPChannel):
    """HTTP/1.1 with deadlines instead of Twisted's idle timeout.

    An idle timeout restarts with every byte, so a client trickling a header byte
    at a time (slowloris) would hold a connection forever. Here, as in nginx, a
    request must arrive whole (head and body) within `request_timeout` of its first
    byte, whatever trickles in meanwhile (THREATS 45); a connection with no request
    in progress and nothing left to send, a fresh one included, is closed after
    `idle_timeout`; and a client that takes none of an answer's bytes for
    `stall_timeout` is dropped. An answer the kernel still holds for a slow reader
    is not idle. The site sweeps its connections twice a second: one timer for all,
    almost nothing per request.
    """

    waiting_since: float | None = None  # idle (between requests) since
    receiving_since: float | None = None  # the first byte of the current request
    stalled_since: float | None = None  # the client has not taken our bytes since
    _last_unsent = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.waiting_since = time.monotonic()
        # Twisted asks both ends' addresses for every request (two system calls and two
        # objects each time); they cannot change on a connection.
        self._peer, self._host = self.transport.getPeer(), self.transport.getHost()
        self.client_host = getattr(self._peer, "host", "-")  # for the access log

    def getPeer(self):  # noqa: ANN201, N802 - Twisted's name
        return self._peer

    def getHost(self):  # noqa: ANN201, N802 - Twisted's name
        return self._host

    def dataReceived(self, data: bytes) -> None:
        if self.receiving_since is None and not self._handlingRequest:
            self.receiving_since = time.monotonic()
            self.waiting_since = None
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        self.receiving_since = None
        super().allContentReceived()

    def requestDone(self, request: http.Request) -> None:
        super().requestDone(request)
        if not self._handlingRequest:
            self.waiting_since = time.monotonic()

    def pauseProducing(self) -> None:  # the transport's buffer is full
        super().pauseProducing()
        if self.stalled_since is None:
            self.stalled_since = time.monotonic()

    def resumeProducing(self) -> None:  # ...and drained
        super().resumeProducing()
        self.stalled_since = None

    def overdue(self, now: float, options: ServeOptions) -> bool:
        if self.receiving_since is not None and now - self.receiving_since > options.request_timeout:
            return True
        if self.stalled_since is not None and now - self.stalled_since > options.stall_timeout:
            return True
        if self.waiting_since is not None and now - self.waiting_since > options.idle_timeout:
            unsent = _unsent_bytes(self.transport)
            if unsent and unsent != self._last_unsent:  # a slow reader, still reading
                self._last_unsent, self.waiting_since = unsent, now
                return False
            return True
        return False

    def busy(self) -> bool:
        return bool(self.requests) or self._handlingRequest or self._waitingForTransport

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes,  # noqa: N802
                     headers: http.Headers) -> None:
        """A cached file's headers go out as one prepared block (docs/adr/0004)."""
        wire = getattr(headers, "wire", None)
        if wire is None:
            super().writeHeaders(version, code, reason, headers)
        else:
            self.transport.write(version + b" " + code + b" " + reason + b"\r\n" + wire)


def _unsent_bytes(transport: object) -> int:
    """Bytes of ours the client has not yet acknowledged, from the kernel (Linux
    SIOCOUTQ); 0 where that cannot be asked."""
    try:
        import fcntl
        import struct
        import termios
        tcp = getattr(transport, "transport", transport)  # under TLS, the TCP transport
        fd = tcp.getHandle().fileno()
        return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (ImportError, AttributeError, OSError, ValueError):
        return 0


def _channel_factory(site: O2MSite):  # noqa: ANN202
    return _Connection(_DeadlineChannel())


def _generic_channel_protocol() -> type:
    """Twisted's protocol that picks HTTP/1.1 or h2 by ALPN (private in Twisted, but
    the only way to keep its h2 support with a channel of our own)."""
    from twisted.web.http import _GenericHTTPChannelProtocol
    return _GenericHTTPChannelProtocol


class _Connection(_generic_channel_protocol()):
    """One client connection, HTTP/1.1 or h2: counted, capped, swept.

    When ALPN picks h2, Twisted swaps our HTTP/1.1 channel for its H2Connection on
    the first bytes; the connection stays the same object, so it is what the site
    counts, and h2 gets an idle timeout of its own.
    """

    def makeConnection(self, transport: object) -> None:
        super().makeConnection(transport)
        connections = self.site.connections
        if len(connections) >= self.site.options.max_connections:
            transport.abortConnection()
            return
        connections.add(self)

    def dataReceived(self, data: bytes) -> None:
        before = self._channel
        super().dataReceived(data)
        if self._channel is not before:  # now h2
            self._channel.setTimeout(self.site.options.idle_timeout)

    def connectionLost(self, reason: object) -> None:
        self.site.connections.discard(self)
        super().connectionLost(reason)

    def overdue(self, now: float, options: ServeOptions) -> bool:
        channel = self._channel
        return isinstance(channel, _DeadlineChannel) and channel.overdue(now, options)

    def busy(self) -> bool:
        channel = self._channel
        if isinstance(channel, _DeadlineChannel):
            return channel.busy()
        return bool(getattr(channel, "streams", None))  # h2: streams still open

    def abort(self) -> None:
        self._channel.transport.abortConnection()


class O2MSite(server.Site):
    """Twisted's Site with our channel and request, and a buffered access log."""

    protocol = _channel_factory

    def __init__(self, root: StaticSite, options: ServeOptions) -> None:
        super().__init__(root, timeout=None)  # the sweep's deadline replaces it
        self.static = root
        self.options = options
        self.displayTracebacks = False
        self.requestFactory = _StaticRequest
        self.connections: set[_Connection] = set()
        self.date = http.datetimeToString()
        self._log_lines: list[str] = []

    def every_second(self) -> None:
        self.date = http.datetimeToString()
        self.flush_log()

    def sweep(self) -> None:
        """Close connections too slow to send a request, or to take an answer."""
        now = time.monotonic()
        for connection in [c for c in self.connections if c.overdue(now, self.options)]:
            self.connections.discard(connection)
            connection.abort()

    def busy(self) -> bool:
        """Is any response still being written?"""
        return any(c.busy() for c in self.connections)

    def log(self, request: http.Request) -> None:
        """Combined Log Format, buffered and written once a second (off the hot path)."""
        if self.options.access_log is None:
            return
        self._log_lines.append(access_log_line(
            request, self._logDateTime, with_address=self.options.log_addresses))

    def flush_log(self) -> None:
        if self._log_lines and self.options.access_log is not None:
            self.options.access_log.write("".join(self._log_lines))
            self.options.access_log.flush()
            self._log_lines.clear()


def access_log_line(request: http.Request, timestamp: str, *, with_address: bool) -> str:
    """One line of the Combined Log Format; what the client sent is escaped."""
    host = "-"
    if with_address:
        host = getattr(request.channel, "client_host", None) or \
            getattr(request.getClientAddress(), "host", "-")
    headers = request.requestHeaders
    referrer = (headers.getRawHeaders(b"referer") or (b"-",))[0]
    agent = (headers.getRawHeaders(b"user-agent") or (b"-",))[0]
    line = request.method + b" " + request.uri + b" " + request.clientproto
    size = request.sentLength or "-"
    return (f'{host} - - {timestamp} "{_clf(line)}" {request.code} {size} '
            f'"{_clf(referrer)}" "{_clf(agent)}"\n')


def _clf(raw: bytes) -> str:
    text = raw.decode("latin-1")
    if '"' in text or "\\" in text or not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return text


class _StaticRequest(server.Request):
    """A request answered straight from the file cache: no resource traversal, no
    per-request header objects (the cached ones are copied whole)."""

    def process(self) -> None:
        self.site = site = self.channel.site
        try:
            body = site.static.render(self)
        except Exception:  # a bug: a 500 and a log entry, as Twisted does
            self.processingFailed(Failure())
            return
        if body is not server.NOT_DONE_YET:
            self.write(body)
            self.finish()

    def use_headers(self, headers: http.Headers) -> None:
        """Take a cached file's headers (plus the Date) in one dict copy, with their
        wire form ready for `_DeadlineChannel.writeHeaders`."""
        raw = dict(headers._rawHeaders)  # Twisted's own storage, names already canonical
        raw[b"Date"] = [self.site.date]
        extra = b""
        closing = self.responseHeaders.getRawHeaders(b"connection")  # set by Twisted
        if closing:
            raw[b"Connection"] = closing
            extra = b"Connection: " + closing[0] + b"\r\n"
        fresh = _ResponseHeaders()
        fresh._rawHeaders = raw
        wire = getattr(headers, "wire", None)
        if wire is not None:
            fresh.wire = wire + extra + b"Date: " + self.site.date + b"\r\n\r\n"
        self.responseHeaders = fresh


class _ResponseHeaders(http.Headers):
    """Response headers that remember their wire form until something changes them."""

    wire: bytes | None = None

    def setRawHeaders(self, name: bytes | str, values: object) -> None:  # noqa: N802
        self.wire = None
        super().setRawHeaders(name, values)

    def addRawHeader(self, name: bytes | str, value: object) -> None:  # noqa: N802
        self.wire = None
        super().addRawHeader(name, value)

    def removeHeader(self, name: bytes | str) -> None:  # noqa: N802
        self.wire = None
        super().removeHeader(name)


def _wire_form(headers: http.Headers) -> bytes:
    """Header lines as Twisted's writeHeaders would send them (without the Date)."""
    return b"".join(name + b": " + value + b"\r\n"
                    for name, values in headers.getAllRawHeaders() for value in values)


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableTLS:
    """Hands each new connection the current context; a reload swaps it, and open
    connections keep theirs, so renewing a certificate drops no one."""

    def __init__(self, pair: KeyPair, alpn: list[bytes]) -> None:
        self.pair, self.alpn = pair, alpn
        self.context = server_context(pair, alpn)
        self.stamp = pair.stamp()

    def serverConnectionForTLS(self, tls_protocol: object):  # noqa: ANN201, N802 - Twisted's name
        from OpenSSL import SSL
        return SSL.Connection(self.context, None)

    def reload(self) -> None:
        """Re-read the files.

        Raises:
            TLSError: they are unusable; the old context stays, and the same files are
                not tried again until they change once more.
        """
        self.stamp = self.pair.stamp()
        pair = load_pair(self.pair.cert_path, self.pair.key_path)
        self.context = server_context(pair, self.alpn)
        self.pair = pair


# -- running ------------------------------------------------------------------------

@dataclass
class Listening:
    """Bound sockets, before any reactor runs (so workers can be forked)."""

    https: socket.socket
    http: socket.socket | None
    url: str
    pair: KeyPair
    reuse_port: bool = False  # each worker opens its own socket on the port

    @property
    def port(self) -> int:
        return self.https.getsockname()[1]


def bind(host: str, port: int, http_port: int | None, pair: KeyPair, *,
         workers: int = 1) -> Listening:
    """Open the listening sockets, or say in one line why not.

    With several workers the HTTPS socket is opened with SO_REUSEPORT, so that each
    worker can open its own on the same port and the kernel spreads connections
    evenly (one shared socket would wake every worker and favour whichever is idle).
    """
    reuse_port = workers > 1 and hasattr(socket, "SO_REUSEPORT")
    https = _bind_one(host, port, reuse_port=reuse_port)
    plain = _bind_one(host, http_port) if http_port is not None else None
    bound = https.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "localhost"
    return Listening(https, plain, f"https://{shown}:{bound}/", pair, reuse_port)


def _bind_one(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ServeError(f"cannot listen on {host}: {e.strerror}",
                         hint="give --host an address of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as e:
        sock.close()
        if e.errno in (98, 48):  # EADDRINUSE (Linux, BSD)
            raise ServeError(f"{host}:{port} is already in use",
                             hint="stop the other server, or pick another --port") from None
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}",
                         hint="ports below 1024 need privileges; try --port 8443") from None
    sock.setblocking(False)
    return sock


def _own_socket(listening: Listening) -> Listening:
    """A worker's own HTTPS socket in the parent's SO_REUSEPORT group."""
    shared = listening.https
    own = socket.socket(shared.family, socket.SOCK_STREAM)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if shared.family == socket.AF_INET6:
        own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                       shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    own.bind(shared.getsockname())
    own.listen(1024)
    own.setblocking(False)
    shared.close()
    return Listening(own, listening.http, listening.url, listening.pair, True)


def _raise_fd_limit() -> None:
    """Many idle clients must meet the header deadline, not the fd limit."""
    import resource as rlimit
    soft, hard = rlimit.getrlimit(rlimit.RLIMIT_NOFILE)
    if hard == rlimit.RLIM_INFINITY or soft < hard:
        try:
            rlimit.setrlimit(rlimit.RLIMIT_NOFILE, (min(hard, 65536), hard))
        except (ValueError, OSError):
            pass


def run(build_dir: Path, state_dir: Path, listening: Listening, options: ServeOptions,
        start_in_parent: Callable[[], Callable[[], None]] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then finish what is in flight and return 0.

    Workers are forked before any reactor exists (an epoll set must not be shared);
    `start_in_parent` (the watcher, say) starts after the fork, in the first process
    only, and returns its stop function.
    """
    _raise_fd_limit()
    children: list[int] = []
    for _ in range(max(1, options.workers) - 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if listening.reuse_port:
                    listening = _own_socket(listening)
                code = _serve_in_this_process(build_dir, state_dir, listening, options)
            finally:
                os._exit(code)
        children.append(pid)
    stop_parent_work = start_in_parent() if start_in_parent else None
    try:
        code = _serve_in_this_process(build_dir, state_dir, listening, options, children)
    finally:
        if stop_parent_work:
            stop_parent_work()
        for pid in children:
            _reap(pid)
    return code


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _serve_in_this_process(build_dir: Path, state_dir: Path, listening: Listening,
                           options: ServeOptions, children: list[int] = ()) -> int:
    from twisted.internet import reactor, task
    from twisted.protocols.tls import TLSMemoryBIOFactory

    live = LiveReload(state_dir) if options.live_reload else None
    cache = FileCache(build_dir, live_reload=options.live_reload, max_bytes=options.cache_bytes)
    site = O2MSite(StaticSite(cache, live), options)
    tls = ReloadableTLS(listening.pair, _alpn())
    ports = [reactor.adoptStreamPort(listening.https.fileno(), listening.https.family,
                                     TLSMemoryBIOFactory(tls, False, site))]
    if listening.http is not None:
        plain = server.Site(RedirectToHTTPS(listening.port))
        plain.displayTracebacks = False
        ports.append(reactor.adoptStreamPort(listening.http.fileno(), listening.http.family,
                                             plain))

    def reload_tls(reason: str) -> None:
        try:
            tls.reload()
            options.report(f"TLS certificate reloaded ({reason})")
        except TLSError as e:
            options.report(f"TLS certificate not reloaded, keeping the old one: {e}")

    def check_tls_files() -> None:
        if tls.pair.stamp() != tls.stamp:
            reload_tls("files changed")

    loops = [task.LoopingCall(site.every_second), task.LoopingCall(site.sweep),
             task.LoopingCall(check_tls_files)]
    for loop, every in zip(loops, (1.0, 0.5, 5.0)):
        loop.start(every, now=False)
    if live is not None:
        loops.append(task.LoopingCall(live.poll))
        loops[-1].start(0.25, now=False)

    stopping = []

    def graceful_stop() -> None:
        if stopping:
            return
        stopping.append(True)
        for pid in children:
            _signal(pid, signal.SIGTERM)
        for port in ports:
            port.stopListening()
        if live is not None:
            live.close_all()
        give_up = time.monotonic() + 10

        def wait_for_in_flight() -> None:
            if site.busy() and time.monotonic() < give_up:
                reactor.callLater(0.05, wait_for_in_flight)
                return
            for loop in loops:
                if loop.running:
                    loop.stop()
            site.flush_log()
            reactor.stop()
        wait_for_in_flight()

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            for pid in children:
                _signal(pid, signal.SIGHUP)
            reactor.callFromThread(reload_tls, "SIGHUP")
        else:
            reactor.callFromThread(graceful_stop)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    reactor.run(installSignalHandlers=False)
    return 0


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alpn() -> list[bytes]:
    """h2 when Twisted can speak it (the `h2` package), else HTTP/1.1 only."""
    try:
        import twisted.web._http2  # noqa: F401
        from twisted.web.http import H2_ENABLED
    except ImportError:
        return [b"http/1.1"]
    return [b"h2", b"http/1.1"] if H2_ENABLED else [b"http/1.1"]

