"""Every private part of Twisted that `o2m serve` uses, fenced in one place.

serve.py calls the small functions here instead of touching Twisted's underscored
names, so that a Twisted upgrade has one module to read. Importing this
module checks that the installed Twisted still has each part, in the shape the server
relies on, and raises `ServeError` ("this o2m needs Twisted 24.7–26.x; found …")
otherwise: the server then refuses to start with one line, instead of failing on the
first request or, worse, sending wrong headers. The check asks for features, not for a
version number: a Twisted outside the range that still has them all is used. The parts
of o2m's own TLS transport are checked apart (`transport_parts_missing`), when
`o2m serve` chooses it: without them, O2M_SERVE_TLS=twisted still serves.

The parts, and why each is needed (docs/adr/0004 says what breaks if one changes):

    twisted.web.http._GenericHTTPChannelProtocol  Twisted's HTTP/1.1-or-h2 switch by ALPN,
                                                  kept with a channel of our own
    its ._channel                                 the channel speaking now (ours, or h2)
    HTTPChannel._handlingRequest                  a request is being answered
    HTTPChannel._waitingForTransport              an answer waits for the transport
    Headers._rawHeaders, read                     a cached header set copied in one step
    Headers._rawHeaders, written                  ...and adopted without re-encoding
    twisted.web._http2 (H2Connection.streams)     open h2 streams, for a graceful stop
    HTTPChannel._command, ._path                  the request line while its headers are
                                                  read (a mount's body cap: read with a
                                                  default, so a rename only loses the cap)
    BufferingTLSTransport._aggregator (.flush)    the fast path's answer written through
                                                  TLS at once, past Twisted's batching of
                                                  small writes
    TLSMemoryBIOProtocol._tlsConnection,          ...and a large answer in one call into
      ._appSendBuffer, ._lostTLSConnection        OpenSSL (all four read with a default:
                                                  a rename only costs those savings)
    FileDescriptor.dataBuffer, .offset,           o2m's own TLS transport (tls_transport.py):
      ._tempDataLen                               is anything waiting in the write buffer
                                                  (else an answer is sent at once)
    FileDescriptor._postLoseConnection            ...its hook when a close has flushed the
                                                  buffer: TLS's close_notify instead
    FileDescriptor.SEND_LIMIT                     ...the most one send is given (a TLS
                                                  write retried must be given the same)
    tcp.Port.transport                            ...the class a port makes its accepted
                                                  connections with (its docstring says
                                                  it may be replaced)

Not private, but undocumented: ``twisted.web.http.H2_ENABLED`` (h2 is offered by ALPN
only when Twisted can speak it); and the hooks the body rule overrides (THREATS 51,
PROTOCOL.md §5), public methods Twisted marks "not intended for users":

    Request.gotLength                             the body's declared length, at the headers
    Request.handleContentChunk                    each piece of the body as it arrives
    Request.requestReceived                       the whole request is in
    HTTPChannel.requests                          the requests of a connection (a list):
                                                  grows when a request line arrives
"""

from __future__ import annotations

from types import ModuleType
from typing import TypeVar

import twisted
from OpenSSL import SSL as _SSL
from twisted.internet import abstract, tcp
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOProtocol as _TLSMemoryBIOProtocol
from twisted.web import http

from o2m_pub.host.listen import ServeError

# The Twisted releases this module was checked against, as pyproject.toml pins them
# (tests/host/test_twisted_compat.py keeps the two equal). Twisted numbers its releases
# year.month, with no major version that announces a break, and any release may change a
# private name: the floor is 24.7 (the fix for CVE-2024-41810), the ceiling the first
# release of the year after the newest one checked (26.10).
TWISTED_FLOOR, TWISTED_CEILING = "24.7", "27"
TWISTED_REQUIREMENT = f">={TWISTED_FLOOR},<{TWISTED_CEILING}"

GenericHTTPChannelProtocol: type = getattr(http, "_GenericHTTPChannelProtocol", object)
"""The base class of a connection that may switch from HTTP/1.1 to h2 on its first bytes."""

_HeadersT = TypeVar("_HeadersT", bound=http.Headers)


def current_channel(connection: object) -> object:
    """The channel a `GenericHTTPChannelProtocol` speaks through now: the HTTP/1.1
    channel it was made with, or Twisted's H2Connection once ALPN picked h2."""
    return connection._channel  # type: ignore[attr-defined]


def handling_request(channel: http.HTTPChannel) -> bool:
    """Is an HTTP/1.1 channel answering a request (from its head until it is done)?"""
    return channel._handlingRequest


def waiting_for_transport(channel: http.HTTPChannel) -> bool:
    """Has an HTTP/1.1 channel paused reading until the transport drains an answer?"""
    return channel._waitingForTransport


def raw_headers(headers: http.Headers) -> dict[bytes, list[bytes]]:
    """Twisted's own storage of `headers`: canonical name to list of values.

    Not a copy: copy it before changing anything (one ``dict()`` copies a whole
    cached header set, where ``setRawHeaders`` would encode every name again).
    """
    return headers._rawHeaders


def headers_over(raw: dict[bytes, list[bytes]], cls: type[_HeadersT] = http.Headers) -> _HeadersT:
    """A headers object of `cls` whose storage is `raw` itself, names already canonical
    (as `raw_headers` gives them)."""
    headers = cls()
    headers._rawHeaders = raw
    return headers


SEND_LIMIT: int = getattr(abstract.FileDescriptor, "SEND_LIMIT", 128 * 1024)
"""The most a FileDescriptor's `doWrite` gives `writeSomeData` at once."""


def buffered_bytes(transport: abstract.FileDescriptor) -> int:
    """Bytes waiting in a transport's write buffer (Twisted's ``dataBuffer`` from
    ``offset``, and the pieces not yet joined to it)."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def use_transport(port: object, make: object) -> None:
    """Have a listening TCP port make its connections with `make` (called as
    `tcp.Server` is: socket, protocol, address, port, session number, reactor)."""
    port.transport = make  # type: ignore[attr-defined]


def write_now(transport: object, data: bytes | memoryview) -> None:
    """Write `data` through a TLS transport now, as one piece.

    Twisted's TLS transport (`BufferingTLSTransport`) copies each write into a list,
    joins the list on the reactor's next turn (a timer per answer) and hands OpenSSL
    the result in 16 KiB slices, each copied, each its own call into OpenSSL and write
    to the socket's buffer. The fast path writes a whole answer at once: here it goes
    to OpenSSL straight away (what the transport held is flushed first, so the order
    stays); a large one (a memoryview, never copied) in one call that makes all its
    records, read back and handed to the socket's transport in one write. o2m's own
    TLS transport (tls_transport.py) sends at once anyway, and takes a memoryview
    whole. Any other transport, or a Twisted without those parts, gets a plain
    `write`."""
    if getattr(transport, "accepts_views", False):
        transport.write(data)  # type: ignore[attr-defined]
        return
    aggregator = getattr(transport, "_aggregator", None)
    if aggregator is None or not isinstance(transport, _TLSMemoryBIOProtocol):
        transport.write(bytes(data))  # type: ignore[attr-defined]
        return
    aggregator.flush()
    tls = getattr(transport, "_tlsConnection", None)
    if (len(data) <= TLS_RECORD or tls is None or getattr(transport, "_appSendBuffer", True)
            or getattr(transport, "_lostTLSConnection", True) or transport.disconnecting):
        _TLSMemoryBIOProtocol.write(transport, data)
        return
    view = memoryview(data)
    try:
        sent = 0
        while sent < len(view):  # records as OpenSSL cuts them, all into the memory BIO
            sent += tls.send(view[sent:])
        records = []
        while True:
            try:
                records.append(tls.bio_read(len(view) + TLS_RECORD))
            except _SSL.WantReadError:
                break
    except _SSL.Error:  # no renegotiation in TLS 1.3, a broken one in 1.2: drop it
        transport.abortConnection()
        return
    transport.transport.write(records[0] if len(records) == 1 else b"".join(records))


TLS_RECORD = 16 * 1024  # the most a TLS record carries


def h2_busy(channel: object) -> bool:
    """Does an h2 channel still have streams open (answers being written)?"""
    return bool(getattr(channel, "streams", None))


def h2_available() -> bool:
    """Can Twisted speak h2 here (the `h2` package is installed and importable)?"""
    return bool(getattr(http, "H2_ENABLED", False))


def missing_parts(web_http: ModuleType | object = http) -> list[str]:
    """The parts named in this module's docstring that `web_http` lacks or has changed.

    Args:
        web_http: twisted.web.http, or a stand-in with its names (for the tests).

    Returns:
        One description per missing part; empty when the server can run.
    """
    missing = []
    channel_class = getattr(web_http, "HTTPChannel", None)
    headers_class = getattr(web_http, "Headers", None)
    if channel_class is None or headers_class is None:
        return ["twisted.web.http.HTTPChannel and Headers"]
    channel = channel_class()
    generic = getattr(web_http, "_GenericHTTPChannelProtocol", None)
    if generic is None:
        missing.append("twisted.web.http._GenericHTTPChannelProtocol")
    elif getattr(_try(lambda: generic(channel)), "_channel", None) is not channel:
        missing.append("_GenericHTTPChannelProtocol._channel")
    for name in ("_handlingRequest", "_waitingForTransport"):
        if not isinstance(getattr(channel, name, None), bool):
            missing.append(f"HTTPChannel.{name}")
    headers = headers_class()
    headers.setRawHeaders(b"content-type", [b"text/plain"])
    if getattr(headers, "_rawHeaders", None) != {b"Content-Type": [b"text/plain"]}:
        missing.append("Headers._rawHeaders (canonical names to lists of values)")
    else:
        adopted = _try(lambda: headers_over({b"Server": [b"o2m"]}, headers_class))
        if adopted is None or _try(lambda: adopted.getRawHeaders(b"server")) != [b"o2m"]:
            missing.append("Headers._rawHeaders (written)")
    request_class = getattr(web_http, "Request", None)
    for name in ("gotLength", "handleContentChunk", "requestReceived"):
        if not callable(getattr(request_class, name, None)):
            missing.append(f"Request.{name}")
    if not isinstance(getattr(channel, "requests", None), list):
        missing.append("HTTPChannel.requests")
    if getattr(web_http, "H2_ENABLED", False):  # else h2 is not offered, and not needed
        h2 = _try(lambda: web_http.H2Connection(reactor=Clock()))  # not the global reactor
        if not isinstance(getattr(h2, "streams", None), dict):
            missing.append("twisted.web._http2.H2Connection.streams")
    return missing


def transport_parts_missing(fd_class: type = abstract.FileDescriptor,
                             port_class: type = tcp.Port) -> list[str]:
    """The parts o2m's own TLS transport needs of Twisted's FileDescriptor and Port."""
    missing = []
    fd = _try(lambda: fd_class(reactor=Clock()))  # not the global reactor
    if _try(lambda: buffered_bytes(fd)) != 0:
        missing.append("FileDescriptor.dataBuffer, .offset and ._tempDataLen")
    if not callable(getattr(fd_class, "_postLoseConnection", None)):
        missing.append("FileDescriptor._postLoseConnection")
    if not isinstance(getattr(fd_class, "SEND_LIMIT", None), int):
        missing.append("FileDescriptor.SEND_LIMIT")
    if getattr(port_class, "transport", None) is not tcp.Server:
        missing.append("tcp.Port.transport")
    return missing


def check(web_http: ModuleType | object = http, version: str = twisted.__version__) -> None:
    """Refuse to serve with a Twisted that lacks a part this module relies on.

    Raises:
        ServeError: one line naming the range of releases checked, the one found,
            and what it lacks.
    """
    missing = missing_parts(web_http)
    if missing:
        ceiling = int(TWISTED_CEILING) - 1
        raise ServeError(
            f"this o2m needs Twisted {TWISTED_FLOOR}–{ceiling}.x; found {version}, "
            f"which lacks {', '.join(missing)}",
            hint=f"install one in that range: pip install 'twisted[tls]{TWISTED_REQUIREMENT}'")


def _try(make):  # noqa: ANN001, ANN202 - a probe: None where the part does not work
    try:
        return make()
    except Exception:  # noqa: BLE001 - any failure means the part is not there as expected
        return None


check()
