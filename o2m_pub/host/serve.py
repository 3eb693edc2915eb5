"""`o2m serve`: build/ over HTTPS with Twisted, fit for the open internet.

The decisions (which path may be served, which headers, what may be compressed)
are pure functions in static_rules.py; this module is the I/O around them: requests,
TLS, signals and worker processes. The file cache is file_cache.py, the listening
sockets listen.py, each client connection connection.py (with the fast path that
answers a plain GET or HEAD without Twisted's parser: fast_request.py reads it,
fast_path.py answers it through `StaticSite.render_GET`, the same bytes as Twisted's
path), TLS by OpenSSL on the socket itself (tls_transport.py; Twisted's TLS layer with
O2M_SERVE_TLS=twisted), and every private part of Twisted it leans on is fenced in
_twisted_compat.py (docs/adr/0004).

Requests carry no body, except a POST to the inbox (inbox.py, PROTOCOL.md §5) or to the
Webmention endpoint (webmention.py, §1.6): what a
request may carry is decided at its headers (`inbox.body_rule`), a refused one is
answered there and its connection closed, and what is read is kept in memory, never
spooled to a temporary file as Twisted does past 100 kB (THREATS 51).

Speed comes from doing per file what others do per request: the headers of a
file, and the bytes of small ones (gzipped once when they are public text and a
client asks for gzip), are kept in memory and checked against one ``stat`` per
request. One process per core
shares the listening socket, each with its own reactor, as nginx's workers do.
"""

from __future__ import annotations

import html
import io
import os
import re
import signal
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Protocol
from urllib.parse import quote, urlsplit

from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.python.failure import Failure
from twisted.web import http, resource, server
from zope.interface import implementer

from o2m_pub.host import _twisted_compat as compat
from o2m_pub.host import inbox as inbox_rules
from o2m_pub.host import static_rules as rules
from o2m_pub.host.connection import Connection, channel_factory
from o2m_pub.host.fast_path import FastRequest, HandOver
from o2m_pub.host.file_cache import CachedFile, FileCache, ResponseHeaders, cache_budget
from o2m_pub.host.file_watch import FolderWatch
from o2m_pub.host.listen import Listening, ServeError, bind, own_socket, raise_fd_limit
from o2m_pub.host.live_reload import LiveReload
from o2m_pub.host.tls import (
    KeyPair,
    TLSError,
    load_pair,
    server_context,
    stdlib_context,
)
from o2m_pub.host.webmention import WEBMENTION_PATH, WebmentionReceiver

__all__ = ["FileCache", "Listening", "Mount", "ServeError", "ServeOptions", "bind", "run"]



class Mount(Protocol):
    """An application served under one path of the site (`o2m serve --desk`): `host`
    never imports it; `cli/` passes a factory in `ServeOptions.mount`, called once in
    each worker process after the fork. Requests whose path starts with `prefix` go to
    `resource` (a Twisted resource), any method; `body_cap(method, headers)` says, from
    the request line and headers alone, how many body bytes such a request may send
    (past it: 413, and the connection closed before the body is read)."""

    prefix: bytes
    resource: Any

    def body_cap(self, method: str, headers: dict[str, str]) -> int: ...


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
    cache_bytes: int | None = None  # per worker; None: file_cache.cache_budget's
    report: Callable[[str], None] = field(default=lambda line: None)
    # the inbox (PROTOCOL.md §5): what it takes, by magic, and its rates (POSTs a minute,
    # per worker)
    inbox_kinds: Mapping[bytes, inbox_rules.InboxKind] = field(default_factory=dict)
    inbox_per_address: int = inbox_rules.DEFAULT_PER_ADDRESS
    inbox_total: int = inbox_rules.DEFAULT_TOTAL
    mount: Callable[[object], Mount] | None = None  # (reactor) -> the app under one path
    moved_to: str | None = None  # `[serve] moved_to`: redirect there, all but the card
    site_url: str = ""  # [site] url: where the plain-HTTP port redirects
    # the Webmention endpoint (PROTOCOL.md §1.6), when the site takes them; it shares
    # the inbox's rates
    webmention: WebmentionReceiver | None = None
    # plain GETs and HEADs answered without Twisted's parser (docs/adr/0004); the same
    # bytes either way. O2M_SERVE_FAST_PATH=0 turns it off (to compare, or rule it out).
    fast_path: bool = field(default_factory=lambda: os.environ.get("O2M_SERVE_FAST_PATH") != "0")
    # who does TLS: "ssl", o2m's own transport (OpenSSL on the socket, tls_transport.py),
    # or "twisted", Twisted's TLS layer over memory BIOs. O2M_SERVE_TLS picks one.
    tls: str = field(default_factory=lambda: chosen_tls_transport())


TLS_TRANSPORTS = ("ssl", "twisted")


def chosen_tls_transport() -> str:
    """The TLS transport O2M_SERVE_TLS names (o2m's own by default), checked before the
    server makes a certificate or binds a port.

    Raises:
        ServeError: it names none, or o2m's own lacks a part of this Twisted (then
            Twisted's TLS layer still serves: the parts it needs are checked apart).
    """
    name = os.environ.get("O2M_SERVE_TLS") or "ssl"
    if name not in TLS_TRANSPORTS:
        raise ServeError(f"O2M_SERVE_TLS={name}: not a TLS transport",
                         hint="unset it, or give one of " + ", ".join(TLS_TRANSPORTS))
    missing = compat.transport_parts_missing() if name == "ssl" else []
    if missing:
        raise ServeError(f"o2m's TLS transport needs {', '.join(missing)} of this Twisted",
                         hint="serve with O2M_SERVE_TLS=twisted, or install a Twisted "
                              f"{compat.TWISTED_REQUIREMENT}")
    return name


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

# Served as ever by an old server of a site that moved (`[serve] moved_to`): what
# friends' fetchers read to follow the move (PROTOCOL.md §2.4, §2.5).
_NOT_MOVED = (b"/.well-known/o2m-card.json", b"/.well-known/o2m-rotations.json")


class StaticSite(resource.Resource):
    """build/ and nothing else: GET and HEAD, conditional and range requests; the
    inbox's POST (§5) and the Webmention endpoint's (§1.6), when the server has them;
    the mounted desk, when there is one. With `moved_to`, every other path but the
    card's is a redirect to the same path there."""

    isLeaf = True
    allowedMethods = (b"GET", b"HEAD")

    def __init__(self, cache: FileCache, live: LiveReload | None,
                 inbox: inbox_rules.Inbox | None = None, mount: Mount | None = None,
                 moved_to: str | None = None, fast_path: bool = True) -> None:
        super().__init__()
        self.cache = cache
        self.live = live
        self.inbox = inbox
        self.mount = mount
        self.moved_to = moved_to
        self.not_found = _NotFoundPage(cache)
        self.fast_path = fast_path and moved_to is None  # a moved site: Twisted's path

    def answers_fast(self, path: bytes) -> bool:
        """Whether a plain GET or HEAD of `path` may take the fast path: not one of the
        endpoints (the inbox, Webmention, the live reload's, the mounted desk)."""
        return not (path in inbox_rules.POST_PATHS or self.mounted(path)
                    or (self.live is not None and path.startswith(b"/_o2m/")))

    def mounted(self, path: bytes) -> bool:
        """Whether `path` belongs to the mounted application (its prefix, with or
        without the final slash)."""
        return self.mount is not None and (path.startswith(self.mount.prefix) or
                                           path == self.mount.prefix.rstrip(b"/"))

    def render(self, request: server.Request) -> bytes | int:
        if not request.uri.startswith(b"/"):
            # only origin-form targets (RFC 9112 §3.2.1): not `*`, not `?x`, not
            # `xfeed.json`, not absolute-form (security review finding 8)
            request.setResponseCode(http.BAD_REQUEST)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Bad request\n"
        if self.inbox is not None and request.path == inbox_rules.INBOX_PATH:
            return _render_inbox(self.inbox, request)
        if (self.inbox is not None and self.inbox.webmention is not None
                and request.path == WEBMENTION_PATH):
            return _render_webmention(self.inbox, request)
        if self.mounted(request.path):
            return self.mount.resource.render(request)  # type: ignore[union-attr]
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
        if self.moved_to is not None and path not in _NOT_MOVED:
            rel = rules.resolve(path)
            if rel is not None:  # a path that could name a file: the same one there
                where = self.moved_to + quote(rel.removesuffix("index.html"), safe="/")
                return _redirect(request, where + _query(request))
        entry = self.cache.lookup(path, b"v" in request.args)
        if entry is None:
            return self.not_found.render(request)
        if isinstance(entry, str):
            return _redirect(request, entry + _query(request))
        headers = request.requestHeaders
        if_none_match = _one(headers, b"if-none-match")
        if_modified_since = _one(headers, b"if-modified-since")
        if (if_none_match is not None or if_modified_since is not None) and rules.not_modified(
                entry.facts, if_none_match, if_modified_since,
                etag=_one(entry.headers, b"etag")):  # the tag sent: a live page has its own
            request.setResponseCode(http.NOT_MODIFIED)
            _set_headers(request, entry.headers, keep_length=False)
            return b""
        if entry.compressible and _accepts_gzip(request):
            variant = self.cache.gzip_variant(entry)
            if variant is not None:
                _set_headers(request, variant[1])
                return variant[0]
        span = rules.parse_range(_one(headers, b"range"), entry.facts.size)
        if span is not None and _if_range_holds(request, entry):
            return self._partial(request, entry, span)
        _set_headers(request, entry.headers)
        if entry.body is not None:
            return entry.body
        return _stream(request, entry.fs_path, 0, entry.facts.size)

    def _partial(self, request: server.Request, entry: CachedFile,
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


def _render_inbox(inbox: inbox_rules.Inbox, request: server.Request) -> bytes:
    """The inbox's answer (§5); the handler runs once the answer is on its way."""
    status, headers, run = inbox.answer(request.method, _client(request),
                                        _one(request.requestHeaders, b"content-type"),
                                        request.content.getvalue())
    return _plain_answer(inbox, request, status, headers, inbox_rules.status_text(status), run)


def _render_webmention(inbox: inbox_rules.Inbox, request: server.Request) -> bytes:
    """The Webmention endpoint's answer (§1.6); the mention is verified in a thread
    once the answer is on its way."""
    status, headers, text, run = inbox.answer_webmention(
        request.method, _client(request), _one(request.requestHeaders, b"content-type"),
        request.content.getvalue())
    return _plain_answer(inbox, request, status, headers, text, run)


def _client(request: server.Request) -> str:
    return getattr(request.channel, "client_host", None) or \
        getattr(request.getClientAddress(), "host", "-")


def _plain_answer(inbox: inbox_rules.Inbox, request: server.Request, status: int,
                  headers: dict, text: bytes, run) -> bytes:  # noqa: ANN001 - a callable
    """A POST endpoint's short text answer, never cached; `run` (the work the request
    asked for) is started once the answer is on its way."""
    request.setResponseCode(status)
    for name, value in headers.items():
        request.setHeader(name, value)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"server", b"o2m")
    if run is not None:
        inbox.later(run)
    return text


def _one(headers: http.Headers, name: bytes) -> bytes | None:
    values = headers.getRawHeaders(name)
    return values[0] if values else None


def _query(request: server.Request) -> str:
    _, sep, query = request.uri.partition(b"?")
    return "?" + quote(query.decode("latin-1"), safe="=&;%+") if sep else ""


def _if_range_holds(request: server.Request, entry: CachedFile) -> bool:
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
    if isinstance(request, FastRequest):
        raise HandOver  # streamed by Twisted's producer
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
        if isinstance(entry, CachedFile) and entry.body is not None:
            return entry.body
        return b"<!doctype html><title>Not found</title><h1>Not found</h1>\n"


class RedirectToHTTPS(resource.Resource):
    """The optional plain-HTTP port: nothing but a redirect to the same path over TLS,
    on the site's own address (`origin`, from [site] url), never on the Host the
    request names (security review finding 9)."""

    isLeaf = True

    def __init__(self, origin: str) -> None:
        super().__init__()
        self.origin = origin

    def render(self, request: server.Request) -> bytes:
        target = request.uri.decode("latin-1")
        if not target.startswith("/"):
            target = "/"  # not origin-form: the site's front page
        target = quote(target, safe="/?=&;%+:@!$'()*,~-._")
        return _redirect(request, self.origin + target)


def redirect_origin(site_url: str, https_port: int) -> str:
    """Where the plain-HTTP port sends browsers: the scheme and authority of the
    site's configured URL, or this server's own port on localhost without one."""
    parts = urlsplit(site_url)
    if parts.scheme == "https" and parts.netloc:
        return f"https://{parts.netloc}"
    return "https://localhost" + ("" if https_port == 443 else f":{https_port}")


class O2MSite(server.Site):
    """Twisted's Site with our channel and request, and a buffered access log."""

    protocol = channel_factory

    def __init__(self, root: StaticSite, options: ServeOptions, reactor: object = None) -> None:
        super().__init__(root, timeout=None, reactor=reactor)  # the sweep's deadline replaces it
        self.static = root
        self.options = options
        self.displayTracebacks = False
        self.requestFactory = _StaticRequest
        self.connections: set[Connection] = set()
        self.date = http.datetimeToString()
        self.log_date = http.datetimeToLogString()
        self._log_lines: list[str] = []

    def every_second(self) -> None:
        self.date = http.datetimeToString()
        self.log_date = http.datetimeToLogString()
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
            request, self.log_date, with_address=self.options.log_addresses))

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
            f'"{_clf_repeated(referrer)}" "{_clf_repeated(agent)}"\n')


_PLAIN_LOG_TEXT = re.compile(rb'[ !#-\[\]-~]*')  # printable ASCII but '"' and '\\'


def _clf(raw: bytes) -> str:
    if _PLAIN_LOG_TEXT.fullmatch(raw):
        return raw.decode("ascii")
    text = raw.decode("latin-1")
    if '"' in text or "\\" in text or not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return text


# a client sends the same Referer and User-Agent with request after request
_clf_repeated = lru_cache(maxsize=256)(_clf)

_REFUSALS = {405: b"405 Method Not Allowed", 413: b"413 Content Too Large"}
_LINGER_BYTES = 64 * 1024  # of a refused body, read and dropped while the answer goes out


def _request_line(channel: object) -> tuple[bytes | None, bytes | None]:
    """(method, path) of the request whose headers were just read, before Twisted hands
    them to the request: kept by `DeadlineChannel.lineReceived` over HTTP/1.1, known to
    the stream over h2."""
    return getattr(channel, "request_line", None) or (
        getattr(channel, "command", None), getattr(channel, "path", None))


class _BodyRule(server.Request):
    """A request whose body follows `inbox.body_rule` (THREATS 51): allowed bytes are
    kept in memory (never Twisted's temporary file), anything else is refused at the
    headers and the connection closed (HTTP/1.1), or the stream reset (h2).

    A TLS close waits for the client's own; a client that keeps sending meanwhile has
    up to `_LINGER_BYTES` dropped unread (time for the answer to reach it, as nginx's
    lingering close gives), then the connection is cut."""

    _body_cap = 0
    _refused = False
    _dropped = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        self.content = io.BytesIO()
        method, path = _request_line(self.channel)
        rule = inbox_rules.body_rule(method, path, length)
        if isinstance(rule, inbox_rules.Refuse):
            self._refuse(rule.status)
        else:
            self._body_cap = rule

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self._refused:
            self._dropped += len(data)
            if self._dropped > _LINGER_BYTES and isinstance(self.channel, http.HTTPChannel):
                self.channel.transport.abortConnection()
            return
        if self.content.tell() + len(data) > self._body_cap:  # a chunked body, or h2
            self._refuse(413)
            return
        self.content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self, status: int) -> None:
        """Answer `status` now and close, reading nothing more of the body."""
        self._refused = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after this
        channel = self.channel
        if not isinstance(channel, http.HTTPChannel):  # an h2 stream, maybe not yet
            channel.site.reactor.callLater(0, channel.abortConnection)  # registered
            return
        body = inbox_rules.status_text(status)
        allow = b"Allow: POST\r\n" if status == 405 else b""
        channel.transport.write(
            b"HTTP/1.1 " + _REFUSALS[status] + b"\r\nContent-Type: text/plain; charset=utf-8"
            b"\r\nContent-Length: %d\r\n" % len(body) + allow
            + b"Connection: close\r\nServer: o2m\r\n\r\n" + body)
        channel.loseConnection()


class _StaticRequest(_BodyRule):
    """A request answered straight from the file cache: no resource traversal, no
    per-request header objects (the cached ones are copied whole). A request for the
    mounted application (the desk) has its body capped at its headers by the mount's
    own rule instead of the inbox's (THREATS 51 either way: kept in memory, never
    spooled)."""

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        static = self.channel.site.static
        method, path = _request_line(self.channel)
        path = (path or b"").split(b"?", 1)[0]
        if static.mount is None or not static.mounted(path):
            super().gotLength(length)
            return
        self.content = io.BytesIO()
        headers = {k.decode("latin-1").lower(): v[0].decode("latin-1")
                   for k, v in self.requestHeaders.getAllRawHeaders() if v}
        self._body_cap = static.mount.body_cap((method or b"").decode("latin-1").upper(),
                                               headers)
        if length is not None and length > self._body_cap:
            self._refuse(413)

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
        wire form ready for `DeadlineChannel.writeHeaders`."""
        raw = dict(compat.raw_headers(headers))  # names already canonical
        raw[b"Date"] = [self.site.date]
        extra = b""
        closing = self.responseHeaders.getRawHeaders(b"connection")  # set by Twisted
        if closing:
            raw[b"Connection"] = closing
            extra = b"Connection: " + closing[0] + b"\r\n"
        fresh = compat.headers_over(raw, ResponseHeaders)
        wire = getattr(headers, "wire", None)
        if wire is not None:
            fresh.wire = wire + extra + b"Date: " + self.site.date + b"\r\n\r\n"
        self.responseHeaders = fresh


@implementer(IOpenSSLServerConnectionCreator)
class ReloadableTLS:
    """Hands each new connection the current context; a reload swaps it, and open
    connections keep theirs, so renewing a certificate drops no one. The context is
    Python's `ssl` one for o2m's own transport (`own`), else pyOpenSSL's for
    Twisted's TLS layer; both from the same policy (tls.py)."""

    def __init__(self, pair: KeyPair, alpn: list[bytes], own: bool = False) -> None:
        self.pair, self.alpn, self.own = pair, alpn, own
        self.context = self._make(pair)
        self.stamp = pair.stamp()

    def _make(self, pair: KeyPair):  # noqa: ANN202 - ssl.SSLContext or OpenSSL.SSL.Context
        return stdlib_context(pair, self.alpn) if self.own else server_context(pair, self.alpn)

    def current(self):  # noqa: ANN201 - the context a new connection gets now
        return self.context

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
        self.context = self._make(pair)
        self.pair = pair


# -- running ------------------------------------------------------------------------

def run(build_dir: Path, state_dir: Path, listening: Listening, options: ServeOptions,
        start_in_parent: Callable[[], Callable[[], None]] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then finish what is in flight and return 0.

    Workers are forked before any reactor exists (an epoll set must not be shared);
    `start_in_parent` (the watcher, say) starts after the fork, in the first process
    only, and returns its stop function.
    """
    raise_fd_limit()
    if options.cache_bytes is None:  # once, before the fork: the site's size and the memory's
        options = replace(options, cache_bytes=cache_budget(build_dir, options.workers))
    children: list[int] = []
    for _ in range(max(1, options.workers) - 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if listening.reuse_port:
                    listening = own_socket(listening)
                code = _serve_in_this_process(_global_reactor(), build_dir, state_dir,
                                              listening, options)
            finally:
                os._exit(code)
        children.append(pid)
    stop_parent_work = start_in_parent() if start_in_parent else None
    try:
        code = _serve_in_this_process(_global_reactor(), build_dir, state_dir, listening,
                                      options, children)
    finally:
        if stop_parent_work:
            stop_parent_work()
        for pid in children:
            _reap(pid)
    return code


def _global_reactor():  # noqa: ANN202 - a Twisted reactor
    """Twisted's global reactor, made on first import: so only after the fork."""
    from twisted.internet import reactor
    return reactor


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _serve_in_this_process(reactor, build_dir: Path, state_dir: Path,  # noqa: ANN001
                           listening: Listening, options: ServeOptions,
                           children: list[int] = ()) -> int:
    """Serve on `reactor` (passed in, as magic-wormhole does) until SIGTERM or SIGINT;
    pass those and SIGHUP on to `children`, the other workers."""
    live = LiveReload(state_dir) if options.live_reload else None
    cache = FileCache(build_dir, live_reload=options.live_reload,
                      max_bytes=options.cache_bytes or cache_budget(build_dir, 1))
    cache.folder_watch = FolderWatch.open(cache.root, cache.changed, workers=options.workers,
                                          reactor=reactor, report=options.report)
    inbox = inbox_rules.Inbox(options.inbox_kinds, per_address=options.inbox_per_address,
                              total=options.inbox_total, clock=time.monotonic,
                              later=lambda run: reactor.callLater(0, run),
                              on_error=options.report, webmention=options.webmention,
                              background=lambda run: reactor.callInThread(run))
    mount = options.mount(reactor) if options.mount is not None else None
    site = O2MSite(StaticSite(cache, live, inbox, mount, options.moved_to, options.fast_path),
                   options, reactor)
    tls = ReloadableTLS(listening.pair, _alpn(), own=options.tls == "ssl")
    ports = _adopt_ports(reactor, listening, tls, site)

    def reload_tls(reason: str) -> None:
        try:
            tls.reload()
            options.report(f"TLS certificate reloaded ({reason})")
        except TLSError as e:
            options.report(f"TLS certificate not reloaded, keeping the old one: {e}")

    def check_tls_files() -> None:
        if tls.pair.stamp() != tls.stamp:
            reload_tls("files changed")

    timers = [(site.every_second, 1.0), (site.sweep, 0.5), (check_tls_files, 5.0)]
    if live is not None:
        timers.append((live.poll, 0.25))
    loops = _start_loops(reactor, timers)
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


def _adopt_ports(reactor, listening: Listening, tls: ReloadableTLS,  # noqa: ANN001
                 site: O2MSite) -> list:
    """The bound sockets, handed to `reactor`: HTTPS (TLS by o2m's own transport, or
    by Twisted's layer), and the plain redirect if any."""
    if tls.own:
        from o2m_pub.host.tls_transport import transport_factory

        https = reactor.adoptStreamPort(listening.https.fileno(), listening.https.family, site)
        compat.use_transport(https, transport_factory(tls.current))  # before the reactor runs
    else:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        https = reactor.adoptStreamPort(listening.https.fileno(), listening.https.family,
                                        TLSMemoryBIOFactory(tls, False, site, clock=reactor))
    ports = [https]
    if listening.http is not None:
        plain = server.Site(RedirectToHTTPS(redirect_origin(site.options.site_url,
                                                            listening.port)), reactor=reactor)
        plain.requestFactory = _BodyRule  # no body here either (THREATS 51)
        plain.displayTracebacks = False
        ports.append(reactor.adoptStreamPort(listening.http.fileno(), listening.http.family,
                                             plain))
    return ports


def _start_loops(reactor, timers: list[tuple[Callable[[], None], float]]) -> list:  # noqa: ANN001
    """One LoopingCall on `reactor` per (function, seconds), first run after one period."""
    from twisted.internet import task

    loops = []
    for function, every in timers:
        loop = task.LoopingCall(function)
        loop.clock = reactor
        loop.start(every, now=False)
        loops.append(loop)
    return loops


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alpn() -> list[bytes]:
    """h2 when Twisted can speak it (the `h2` package), else HTTP/1.1 only."""
    return [b"h2", b"http/1.1"] if compat.h2_available() else [b"http/1.1"]

