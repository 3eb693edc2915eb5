"""The fence around Twisted's private parts (o2m_pub/host/_twisted_compat.py, ADR 0004):
the installed Twisted has every part, the adapters behave, and a Twisted that lacks
one is refused at import with one clear line.

A missing part is simulated on a stand-in for ``twisted.web.http`` (a namespace with
its names, one of them replaced), never by changing Twisted in this process.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import twisted
from twisted.internet.interfaces import IProtocol
from twisted.internet.task import Clock
from twisted.python.components import proxyForInterface
from twisted.web import http

from o2m_pub.host import _twisted_compat as compat
from o2m_pub.host.listen import ServeError

ROOT = Path(__file__).resolve().parents[2]


def stand_in(**replaced: object) -> types.SimpleNamespace:
    """twisted.web.http's names, with `replaced` swapped in (None: the name is gone)."""
    names = {**vars(http), **replaced}
    return types.SimpleNamespace(**{k: v for k, v in names.items() if v is not None})


class _ChannelWithout(http.HTTPChannel):
    """An HTTPChannel as a later Twisted might make it: one attribute renamed."""

    gone = ""

    def __getattribute__(self, name: str) -> object:
        if name == type(self).gone:
            raise AttributeError(name)
        return super().__getattribute__(name)


class _ChannelWithoutHandling(_ChannelWithout):
    gone = "_handlingRequest"


class _ChannelWithoutWaiting(_ChannelWithout):
    gone = "_waitingForTransport"


class _ChannelWithoutRequests(_ChannelWithout):
    gone = "requests"


class _LowercaseHeaders(http.Headers):
    """Headers kept as Twisted did before 24.7: lowercase names, canonical on output."""

    def setRawHeaders(self, name, values):  # noqa: ANN001, ANN201, N802
        self._rawHeaders[name.lower()] = list(values)


class _CopyingHeaders(http.Headers):
    """Headers whose storage can no longer be replaced from outside."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        if name == "_rawHeaders" and hasattr(self, "_rawHeaders"):
            raise AttributeError("read-only")
        super().__setattr__(name, value)


_RenamedProxy = proxyForInterface(IProtocol, "_wrapped")


class _H2WithoutStreams:
    """An h2 connection that keeps its open streams under another name."""

    def __init__(self, reactor: object = None) -> None:
        self.open_streams: dict[int, object] = {}


def test_the_installed_twisted_has_every_private_part():
    """Each private name ADR 0004 lists exists in this Twisted, in the shape serve uses."""
    channel = http.HTTPChannel()
    assert isinstance(http._GenericHTTPChannelProtocol, type)
    assert http._GenericHTTPChannelProtocol(channel)._channel is channel
    assert (False, False) == (channel._handlingRequest, channel._waitingForTransport)
    headers = http.Headers()
    headers.setRawHeaders(b"x-frame-options", [b"DENY"])
    assert {b"X-Frame-Options": [b"DENY"]} == headers._rawHeaders
    assert isinstance(http.H2_ENABLED, bool)
    if http.H2_ENABLED:
        assert {} == http.H2Connection(reactor=Clock()).streams
    assert [] == compat.missing_parts()


def test_the_adapters_read_and_write_what_twisted_uses():
    """The adapters give what the private names hold: the wrapped channel, the flags,
    the header storage itself, and headers adopted without re-encoding."""
    channel = http.HTTPChannel()
    connection = compat.GenericHTTPChannelProtocol(channel)
    assert channel is compat.current_channel(connection)
    assert (False, False) == (compat.handling_request(channel),
                              compat.waiting_for_transport(channel))
    headers = http.Headers({b"content-type": [b"text/plain"]})
    assert {b"Content-Type": [b"text/plain"]} == compat.raw_headers(headers)
    raw = {b"Server": [b"o2m"], b"Date": [b"today"]}

    class Mine(http.Headers):
        pass

    adopted = compat.headers_over(raw, Mine)
    assert isinstance(adopted, Mine)
    assert [b"o2m"] == adopted.getRawHeaders(b"server")
    assert raw is compat.raw_headers(adopted)
    assert (False, True) == (compat.h2_busy(types.SimpleNamespace(streams={})),
                             compat.h2_busy(types.SimpleNamespace(streams={1: object()})))


@pytest.mark.parametrize(("replaced", "named"), [
    ({"_GenericHTTPChannelProtocol": None}, "twisted.web.http._GenericHTTPChannelProtocol"),
    ({"_GenericHTTPChannelProtocol": _RenamedProxy}, "_GenericHTTPChannelProtocol._channel"),
    ({"HTTPChannel": _ChannelWithoutHandling}, "HTTPChannel._handlingRequest"),
    ({"HTTPChannel": _ChannelWithoutWaiting}, "HTTPChannel._waitingForTransport"),
    ({"Headers": _LowercaseHeaders}, "Headers._rawHeaders (canonical names"),
    ({"Headers": _CopyingHeaders}, "Headers._rawHeaders (written)"),
    ({"H2_ENABLED": True, "H2Connection": _H2WithoutStreams},
     "twisted.web._http2.H2Connection.streams"),
    ({"Request": type("Request", (), {"handleContentChunk": print,
                                      "requestReceived": print})}, "Request.gotLength"),
    ({"HTTPChannel": _ChannelWithoutRequests}, "HTTPChannel.requests"),
])
def test_a_twisted_without_a_part_is_refused_with_one_clear_line(replaced, named):
    """A missing or changed part gives ServeError naming the range of Twisted this o2m
    was checked against, the version found, and the part."""
    with pytest.raises(ServeError) as caught:
        compat.check(stand_in(**replaced), version="99.1.0")
    message = str(caught.value)
    assert message.startswith("this o2m needs Twisted 24.7–26.x; found 99.1.0, which lacks ")
    assert named in message
    assert "\n" not in message
    assert "pip install 'twisted[tls]>=24.7,<27'" in caught.value.hint


def test_the_pinned_range_is_the_checked_one_and_admits_the_installed_twisted():
    """pyproject.toml's Twisted bounds are those the compat module names, and the
    installed Twisted is inside them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra]
    twisted_pins = {re.sub(r"^twisted\[\w+\]", "", r) for r in requirements
                    if r.startswith("twisted")}
    assert {compat.TWISTED_REQUIREMENT} == twisted_pins

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", text)[:2])

    found = version(twisted.__version__)
    assert version(compat.TWISTED_FLOOR) <= found < version(compat.TWISTED_CEILING)


def test_o2m_serve_with_such_a_twisted_says_so_in_one_line(site):
    """In a process whose Twisted lacks a part, `o2m serve` stops before listening with
    the error line and its hint, and no traceback."""
    cripple = ("import twisted.web.http as h; del h.HTTPChannel._waitingForTransport; "
               "from o2m_pub.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", cripple, "serve", "--watch", "--port", "0"],
                          cwd=site.root, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert 1 == done.returncode
    assert done.stderr.startswith(
        f"o2m: error: this o2m needs Twisted 24.7–26.x; found {twisted.__version__}, which "
        "lacks HTTPChannel._waitingForTransport\n"), done.stderr
    assert "Traceback" not in done.stderr


class _Sink:
    """An application protocol that says nothing, for a TLS transport under test."""

    def makeConnection(self, transport) -> None:  # noqa: N802, ANN001 - Twisted's name
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        pass

    def connectionLost(self, reason) -> None:  # noqa: N802, ANN001
        pass


def test_write_now_sends_through_tls_in_order_past_the_batching(tmp_path):
    """`write_now` on Twisted's real TLS transport (memory BIOs, a client made with
    OpenSSL, no sockets): its bytes arrive after what an earlier `write` left batched,
    a memoryview is taken whole, and nothing waits for the reactor's next turn; on
    any other transport it is a plain write."""
    import datetime as dt

    from OpenSSL import SSL
    from twisted.internet.address import IPv4Address
    from twisted.internet.protocol import Factory
    from twisted.internet.testing import StringTransport
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from o2m_pub.host.serve import ReloadableTLS
    from o2m_pub.host.tls import ensure_self_signed

    pair, _ = ensure_self_signed(tmp_path, ["127.0.0.1"], dt.datetime.now(dt.timezone.utc))
    sink = _Sink()
    factory = TLSMemoryBIOFactory(ReloadableTLS(pair, [b"http/1.1"]), False,
                                  Factory.forProtocol(lambda: sink), clock=Clock())
    server = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    wire = StringTransport()
    server.makeConnection(wire)
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    def pump() -> None:
        for _ in range(10):
            try:
                server.dataReceived(client.bio_read(1 << 20))
            except SSL.WantReadError:
                pass
            if wire.value():
                client.bio_write(wire.value())
                wire.clear()

    def received() -> bytes:
        got = b""
        while True:
            try:
                got += client.recv(1 << 20)
            except SSL.WantReadError:
                return got

    for _ in range(10):
        try:
            client.do_handshake()
            break
        except SSL.WantReadError:
            pump()
    pump()
    # the parts write_now reads with a default are there (else it is only a plain write)
    assert server._aggregator is not None and server._appSendBuffer == []
    assert server._tlsConnection is not None and server._lostTLSConnection is False
    big = bytes(range(256)) * 1000
    sink.transport.write(b"batched first, ")
    compat.write_now(sink.transport, b"then now, ")
    compat.write_now(sink.transport, memoryview(big))
    client.bio_write(wire.value())  # no clock.advance: nothing waited for the next turn
    wire.clear()
    assert b"batched first, then now, " + big == received()
    plain = StringTransport()
    compat.write_now(plain, memoryview(b"plain"))
    assert plain.value() == b"plain"


class _BufferWithoutPieces:
    """A FileDescriptor as a later Twisted might make it: no `_tempDataLen`."""

    dataBuffer, offset, SEND_LIMIT = b"", 0, 128 * 1024

    def __init__(self, reactor: object = None) -> None:
        self._pieces: list[bytes] = []

    def _postLoseConnection(self) -> None:  # noqa: N802
        pass


class _NoCloseHook(_BufferWithoutPieces):
    _postLoseConnection = None  # type: ignore[assignment]

    def __init__(self, reactor: object = None) -> None:
        self._tempDataLen = 0


def test_the_transport_parts_are_there_and_a_missing_one_is_named():
    """o2m's own TLS transport's parts of Twisted (the write buffer's fields, the hook
    a flushed close calls, the send limit, a port's transport class) are in this
    Twisted; a stand-in without one is named, and `check` would refuse it."""
    from twisted.internet import abstract, tcp

    assert [] == compat.transport_parts_missing()
    fd = abstract.FileDescriptor(reactor=Clock())
    fd._tempDataBuffer.append(b"abc")
    fd._tempDataLen += 3
    fd.dataBuffer, fd.offset = b"12345", 2
    assert 6 == compat.buffered_bytes(fd)
    assert ["FileDescriptor.dataBuffer, .offset and ._tempDataLen"] == \
        compat.transport_parts_missing(fd_class=_BufferWithoutPieces)
    assert ["FileDescriptor._postLoseConnection"] == \
        compat.transport_parts_missing(fd_class=_NoCloseHook)
    assert ["tcp.Port.transport"] == compat.transport_parts_missing(
        port_class=type("Port", (tcp.Port,), {"transport": object}))
    port = types.SimpleNamespace(transport=tcp.Server)
    compat.use_transport(port, print)
    assert port.transport is print
