"""`o2m serve`'s own TLS transport: OpenSSL on the socket itself (docs/adr/0004).

Twisted's TLS layer (`TLSMemoryBIOProtocol`) runs OpenSSL over memory BIOs: each piece
the socket gives is copied into OpenSSL through pyOpenSSL's cffi, each answer copied
out again, in many small calls, and every read ends in a Python exception. Here the
accepted socket is wrapped by Python's `ssl` module, non-blocking, and OpenSSL reads
and writes it directly, in C: a request costs one ``recv`` and an answer one ``send``,
usually without a turn of the reactor (an answer goes out from within the read that
asked for it; only what the socket cannot take now is buffered, as Twisted does).

`TLSServer` is Twisted's own TCP connection (the reactor, the producer and consumer
logic, the write buffer, abort) with reading, writing and closing done through the
`ssl.SSLSocket`; the HTTP code above it sees the transport it saw before (ALPN's
choice for the h2 switch, the peer's and host's addresses, producers, ISSLTransport).
Its close is TLS's: the buffer is flushed, our close_notify sent, and the connection
read on (bytes still given to the protocol, as Twisted's TLS does) until the client's
close_notify or its end of the stream; a client that sends neither is cut by the
sweep's idle timeout, as before. Twisted's internals it relies on are fenced in
_twisted_compat.py.

`O2M_SERVE_TLS=twisted` serves with Twisted's TLS layer instead (docs/CONFIG.md).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable

from twisted.internet import main, tcp
from twisted.internet.interfaces import ISSLTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from o2m_pub.host import _twisted_compat as compat

_SEND_LIMIT = compat.SEND_LIMIT  # what one `send` is given: a retry must be given the same
_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
_LOST = (ssl.SSLError, OSError, ValueError)  # ValueError: the SSLSocket is closed


@implementer(ISSLTransport)
class TLSServer(tcp.Server):
    """One accepted client connection, TLS done by OpenSSL on the socket.

    Made by the listening port with Twisted's arguments for `tcp.Server`, plus the
    context first (`transport_factory` binds it).
    """

    accepts_views = True  # `write` takes a memoryview whole (write_now: no copy)
    _handshaken = False
    _alpn: bytes | None = None
    _close_sent = False  # our close_notify is out: reading on until the client's
    _close_blocked = False  # our close_notify waits for room in the socket's buffer
    _peer_closed = False  # the client's close_notify (or its end of the stream) came

    def __init__(self, context: ssl.SSLContext, sock: socket.socket, protocol: Any,
                 client: tuple, server: Any, sessionno: int, reactor: Any) -> None:
        try:  # each answer is one write: nothing to gain from Nagle's wait
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        # A socket the client reset already is wrapped all the same: its handshake
        # fails, and nothing is read or written before the handshake.
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        super().__init__(tls, protocol, client, server, sessionno, reactor)

    # -- reading ----------------------------------------------------------------------

    def doRead(self):  # noqa: ANN201, N802 - Twisted's name; None or why it ended
        if not self._handshaken:
            return self._handshake()
        return self._read()

    def _handshake(self):  # noqa: ANN202
        try:
            self.socket.do_handshake()
        except ssl.SSLWantReadError:
            self.stopWriting()  # if a write started it: nothing can go before the handshake
            return None
        except ssl.SSLWantWriteError:
            self.startWriting()  # our flight did not fit the socket's buffer: on when it does
            return None
        except _LOST:  # refused (an old version, no shared suite...), or gone
            return main.CONNECTION_LOST
        self._handshaken = True
        name = self.socket.selected_alpn_protocol()
        self._alpn = name.encode("ascii") if name else None
        if compat.buffered_bytes(self) or self.disconnecting:
            self.startWriting()
        else:
            self.stopWriting()
        return self._read()  # a request may have come with the client's Finished

    def _read(self):  # noqa: ANN202
        tls = self.socket
        while True:
            try:
                data = tls.recv(self.bufferSize)  # at most one record (16 KiB)
            except _WANT:
                return None
            except ssl.SSLZeroReturnError:
                return self._client_closed()
            except _LOST:
                return main.CONNECTION_LOST
            if not data:
                return self._client_closed()
            self.protocol.dataReceived(data)
            # OpenSSL holds what is left of a record larger than the read (never with
            # 64 KiB reads), and epoll does not see it: read it now, unless paused
            if self.disconnected or not tls.pending() or not self._reading():
                return None

    def _reading(self) -> bool:
        return self in self.reactor.getReaders()

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted's name
        super().resumeProducing()
        if self._handshaken and self.connected and self.socket.pending():
            self.reactor.callLater(0, self._read_held)

    def _read_held(self) -> None:
        if self.connected and self._reading():
            why = self._read()
            if why is not None:
                self.connectionLost(Failure(why))

    def _client_closed(self):  # noqa: ANN202
        """The client's close_notify, or the end of its stream: done if ours went out
        already; else ours follows what is left to send, and then the socket closes."""
        if self._close_sent:
            return main.CONNECTION_DONE
        self._peer_closed = True
        self.stopReading()
        self.loseConnection()
        return None

    # -- writing ----------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Send `data` now, as far as the socket takes it; buffer the rest (Twisted's
        buffer, drained when the socket is writable)."""
        if not self.connected or self._close_sent or self._close_blocked:
            return  # after our close_notify, nothing (as Twisted's TLS drops it)
        if self._handshaken and not compat.buffered_bytes(self):
            data = self._send_now(data)
            if not data:
                return
        super().write(bytes(data) if isinstance(data, memoryview) else data)

    def writeSequence(self, iovec: list[bytes]) -> None:  # noqa: N802 - Twisted's name
        self.write(b"".join(iovec))

    def _send_now(self, data: bytes | memoryview) -> bytes | memoryview:
        """Write `data` through OpenSSL in pieces of at most `_SEND_LIMIT` bytes, as
        `doWrite` would give them; returns what the socket did not take. A piece cut
        short is left whole in what is returned: OpenSSL wants the same bytes again,
        and Twisted's buffer gives the same first piece."""
        size = len(data)
        if size <= _SEND_LIMIT:
            try:
                self.socket.send(data)
            except _WANT:
                return data
            except _LOST:
                self.abortConnection()
            return b""
        view = memoryview(data)
        sent = 0
        try:
            while sent < size:
                sent += self.socket.send(view[sent:sent + _SEND_LIMIT])
        except _WANT:
            return view[sent:]
        except _LOST:
            self.abortConnection()
        return b""

    def writeSomeData(self, data: bytes) -> Any:  # noqa: N802 - Twisted's name
        try:
            return self.socket.send(memoryview(data)[:_SEND_LIMIT])
        except _WANT:
            return 0
        except _LOST:
            return main.CONNECTION_LOST

    def doWrite(self):  # noqa: ANN201, N802 - Twisted's name
        if not self._handshaken:
            return self._handshake()
        if self._close_blocked:
            return self._close_tls()
        return super().doWrite()

    # -- closing ----------------------------------------------------------------------

    def loseConnection(self) -> None:  # noqa: N802 - Twisted's name
        """Flush, then close TLS (`_close_tls`): reading goes on meanwhile, unlike a
        plain TCP close, so the client's close_notify is read (and a body it still
        sends is given to the protocol, which may drop it)."""
        if not self.connected or self.disconnecting:
            return
        if not self._handshaken:  # nothing to say yet: as Twisted's TLS, cut
            self.abortConnection()
            return
        self.disconnecting = True
        self.startWriting()

    def _postLoseConnection(self):  # noqa: ANN202, N802 - Twisted's hook: all is written
        return self._close_tls()

    def _close_tls(self):  # noqa: ANN202
        try:
            self.socket.unwrap()  # our close_notify; done if the client's came already
        except ssl.SSLWantReadError:  # ours is out; the client's to come, read for it
            self._close_sent, self._close_blocked = True, False
            self.stopWriting()
            return main.CONNECTION_DONE if self._peer_closed else None
        except ssl.SSLWantWriteError:  # no room for it yet
            self._close_blocked = True
            self.startWriting()
            return None
        except _LOST:
            return main.CONNECTION_DONE if self._peer_closed else main.CONNECTION_LOST
        return main.CONNECTION_DONE

    # -- what the code above asks --------------------------------------------------------

    @property
    def negotiatedProtocol(self) -> bytes | None:  # noqa: N802 - Twisted's name
        """ALPN's choice (b"h2", b"http/1.1"), None without one or before the handshake."""
        return self._alpn

    def getPeerCertificate(self) -> None:  # noqa: N802 - Twisted's name
        return None  # clients present none


def transport_factory(context: Callable[[], ssl.SSLContext]) -> Callable[..., TLSServer]:
    """What a listening port calls for each accepted socket: a `TLSServer` with the
    context `context()` gives now (a certificate reload swaps it; open connections keep
    theirs)."""
    def make(sock: socket.socket, protocol: Any, client: tuple, server: Any,
             sessionno: int, reactor: Any) -> TLSServer:
        return TLSServer(context(), sock, protocol, client, server, sessionno, reactor)
    return make
