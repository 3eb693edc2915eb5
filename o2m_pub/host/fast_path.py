"""`o2m serve`'s fast path: a plain request answered without Twisted's HTTP machinery.

A GET or HEAD with no body, read by `fast_request.parse_head`, is answered by the very
code that answers it on Twisted's path (`StaticSite.render_GET`, the file cache, the
404 page, the redirects), through a `FastRequest`: the few parts of Twisted's request
that code uses, and the way Twisted's `Request.write` and `finish` turn an answer into
bytes (status line, headers in order, chunked framing, HEAD and 304 without a body,
the length the access log records). So an answer is the same, byte for byte, on either
path (tests/host/test_fast_path.py holds them side by side), and costs a fraction.

What this path does not answer (a large file streamed from disk, the live reload's
endpoints, the inbox, the desk), `HandOver` sends back to Twisted, before any byte of
it was written (docs/adr/0004).
"""

from __future__ import annotations

from typing import Any

from twisted.web import http, server

from o2m_pub.host import _twisted_compat as compat
from o2m_pub.host.fast_request import RequestHead

_NO_BODY = http.NO_BODY_CODES
_DEFAULT_TYPE = server.Request.defaultContentType  # what Twisted adds to an untyped answer


class HandOver(Exception):  # noqa: N818 - a verdict, not an error
    """This request is Twisted's to answer (raised before anything is written)."""


class _RequestHeaders:
    """What the answering code asks of a request's headers: Twisted's `getRawHeaders`,
    over the parser's dict (called with lowercase names only)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[bytes, bytes]) -> None:
        self._values = values

    def getRawHeaders(self, name: bytes, default: Any = None) -> Any:  # noqa: N802
        value = self._values.get(name)
        return default if value is None else [value]


class FastRequest:
    """The parts of `twisted.web.server.Request` that `StaticSite.render_GET` and the
    access log use, for one plain request; `answer` gives its bytes as Twisted would
    write them.

    A cached file's headers are taken whole (`use_headers`) and, unless something
    changes them, sent as their prepared wire form; asking for `responseHeaders`
    makes a real `Headers` from them, as `_StaticRequest.use_headers` does."""

    __slots__ = ("channel", "method", "uri", "path", "args", "clientproto", "requestHeaders",
                 "code", "code_message", "sentLength", "_date", "_closing", "_cached",
                 "_response", "_wire")

    def __init__(self, channel: Any, head: RequestHead, date: bytes, closing: bool) -> None:
        self.channel = channel
        self.method = head.method
        self.uri = head.target
        path, query_mark, query = head.target.partition(b"?")
        self.path = path
        self.args = http.parse_qs(query, 1) if query_mark else {}
        self.clientproto = head.version
        self.requestHeaders = _RequestHeaders(head.headers)
        self.code = 200
        self.code_message = b"OK"
        self.sentLength = 0
        self._date = date
        self._closing = closing
        self._cached: http.Headers | None = None
        self._response: http.Headers | None = None
        self._wire: bytes | None = None

    def setResponseCode(self, code: int) -> None:  # noqa: N802 - Twisted's name
        self.code = code
        self.code_message = http.RESPONSES.get(code, b"Unknown Status")

    def setHeader(self, name: bytes, value: bytes) -> None:  # noqa: N802 - Twisted's name
        self.responseHeaders.setRawHeaders(name, [value])

    def use_headers(self, headers: http.Headers) -> None:
        """A cached file's headers, plus the Date (and Connection: close)."""
        self._cached, self._response = headers, None
        wire = getattr(headers, "wire", None)
        if wire is not None:
            closing = b"Connection: close\r\n" if self._closing else b""
            wire = wire + closing + b"Date: " + self._date + b"\r\n\r\n"
        self._wire = wire

    @property
    def responseHeaders(self) -> http.Headers:  # noqa: N802 - Twisted's name
        """The answer's headers as an object, made on first use (then the wire form
        is dropped, as a change to Twisted's ResponseHeaders drops it)."""
        if self._response is None:
            if self._cached is not None:  # as _StaticRequest.use_headers
                raw = dict(compat.raw_headers(self._cached))
                raw[b"Date"] = [self._date]
                if self._closing:
                    raw[b"Connection"] = [b"close"]
                self._response = compat.headers_over(raw)
            else:  # Twisted's checkPersistence set it on a new request's headers
                self._response = http.Headers()
                if self._closing:
                    self._response.setRawHeaders(b"Connection", [b"close"])
            self._wire = None
        return self._response

    def answer(self, body: bytes) -> tuple[bytes, bytes]:
        """(head, rest): the bytes of the answer Twisted's `write(body)` and `finish()`
        would send; `sentLength` set as they set it."""
        code = self.code
        status = b"%s %d %s\r\n" % (self.clientproto, code, self.code_message)
        bodiless = self.method == b"HEAD" or code in _NO_BODY
        wire = self._wire
        if wire is not None and (self._cached is None or not _has_type_and_length(self._cached)):
            wire = None
            self.responseHeaders  # noqa: B018 - as Twisted would: headers to add to
        chunked = False
        if wire is None:
            headers = self.responseHeaders
            length = headers.getRawHeaders(b"Content-Length")
            if (code not in (http.NOT_MODIFIED, http.NO_CONTENT)
                    and headers.getRawHeaders(b"Content-Type") is None
                    and not (length and length[0] == b"0")):
                headers.setRawHeaders(b"Content-Type", [_DEFAULT_TYPE])
            if self.clientproto == b"HTTP/1.1" and length is None and not bodiless:
                headers.setRawHeaders(b"Transfer-Encoding", [b"chunked"])
                chunked = True
            wire = b"".join(name + b": " + value + b"\r\n"
                            for name, values in headers.getAllRawHeaders()
                            for value in values) + b"\r\n"
        if bodiless:
            return status + wire, b""
        self.sentLength = len(body)
        if chunked:
            framed = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            return status + wire, framed + b"0\r\n\r\n"
        return status + wire, body


def _has_type_and_length(headers: http.Headers) -> bool:
    raw = compat.raw_headers(headers)
    return b"Content-Type" in raw and b"Content-Length" in raw


def answer(channel: Any, head: RequestHead) -> bool | None:
    """Answer a plain request on `channel` (a `connection.DeadlineChannel`) as
    Twisted's path would, and log it.

    Returns:
        Whether the connection stays open for the next request (Twisted's
        `checkPersistence`: HTTP/1.1 without a ``close`` token in the first Connection
        header); None when the request is Twisted's to answer: then nothing was written.
    """
    site = channel.site
    static = site.static
    if not static.answers_fast(head.target.partition(b"?")[0]):
        return None
    if head.version == b"HTTP/1.1":
        connection = head.headers.get(b"connection")
        closing = connection is not None and b"close" in connection.lower().split(b" ")
        keep = not closing
    else:  # Twisted keeps no HTTP/1.0 connection open, and says nothing of it
        closing = keep = False
    request = FastRequest(channel, head, site.date, closing)
    try:
        body = static.render_GET(request)
        status_and_headers, rest = request.answer(body)
    except HandOver:
        return None
    except Exception:  # noqa: BLE001 - a bug: Twisted's path answers it (a 500, logged)
        return None
    if len(rest) <= compat.TLS_RECORD:  # larger: TLS slices it, a copy of each slice
        compat.write_now(channel.transport, status_and_headers + rest)
    else:  # a large body: its bytes uncopied (Twisted's path copies them four times)
        compat.write_now(channel.transport, status_and_headers)
        compat.write_now(channel.transport, memoryview(rest))
    site.log(request)
    return keep
