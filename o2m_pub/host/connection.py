"""One client connection of `o2m serve`: deadlines, h2 by ALPN, and the fast path.

`DeadlineChannel` is Twisted's HTTP/1.1 channel with nginx's deadlines (THREATS 45) and,
in front of Twisted's parser, the fast path (docs/adr/0004): while a connection has
nothing in flight, each whole request head it receives that `fast_request.parse_head`
reads as a plain GET or HEAD is answered at once by `fast_path`; the first bytes that
are anything else go to Twisted's parser unchanged, and the connection stays with it
until Twisted has answered them and holds nothing more of it. `Connection` wraps the
channel in Twisted's switch to h2 (which never takes the fast path), and is what the
site counts, caps and sweeps.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from twisted.web import http

from o2m_pub.host import _twisted_compat as compat
from o2m_pub.host import fast_path
from o2m_pub.host.fast_request import HAND_OVER, parse_head

if TYPE_CHECKING:
    from o2m_pub.host.serve import ServeOptions


class DeadlineChannel(http.HTTPChannel):
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

    request_line: tuple[bytes | None, bytes | None] = (None, None)  # method, path

    fast = False  # the fast path reads this connection's bytes (until it hands over)
    _pending = b""  # bytes of a request head not yet whole, on the fast path
    _closed = False  # answered a last request on the fast path: ignore what follows

    def connectionMade(self) -> None:
        super().connectionMade()
        self.waiting_since = time.monotonic()
        # Twisted asks both ends' addresses for every request (two system calls and two
        # objects each time); they cannot change on a connection.
        self._peer, self._host = self.transport.getPeer(), self.transport.getHost()
        self.client_host = getattr(self._peer, "host", "-")  # for the access log
        self.fast = self.site.static.fast_path

    def getPeer(self):  # noqa: ANN201, N802 - Twisted's name
        return self._peer

    def getHost(self):  # noqa: ANN201, N802 - Twisted's name
        return self._host

    def dataReceived(self, data: bytes) -> None:
        if self.receiving_since is None and not compat.handling_request(self):
            self.receiving_since = time.monotonic()
            self.waiting_since = None
        if self.fast:
            self._fast_received(data)
        elif not self._closed:
            super().dataReceived(data)

    def _fast_received(self, data: bytes) -> None:
        """Answer each whole plain request in the bytes received so far; keep a head
        not yet whole; give Twisted the rest from the first request that is not plain
        (or when the transport asked us to pause), and the connection with it."""
        buffer = self._pending + data if self._pending else data
        self._pending = b""
        start = 0
        while start < len(buffer):
            if compat.waiting_for_transport(self):
                break
            head = parse_head(buffer, start)
            if head is None:  # not yet whole: the request deadline runs on
                self._pending = buffer[start:]
                if start:
                    self.receiving_since = time.monotonic()
                return
            if head is HAND_OVER:
                break
            keep = fast_path.answer(self, head)
            if keep is None:
                break
            start = head.end
            if not keep:  # Connection: close, or HTTP/1.0: as Twisted, drop the rest
                self.fast, self._closed = False, True
                # TLS's close waits for the client's: the idle timeout ends the wait
                self.receiving_since, self.waiting_since = None, time.monotonic()
                self.loseConnection()
                return
        else:
            self.receiving_since = None
            self.waiting_since = time.monotonic()
            return
        self.fast = False
        super().dataReceived(buffer[start:])

    def lineReceived(self, line: bytes) -> None:  # noqa: N802 - Twisted's name
        """Keep each request's method and path as its first line arrives: the body rule
        (THREATS 51) is decided at the headers, before Twisted gives them to the request."""
        pending = len(self.requests)
        super().lineReceived(line)
        if len(self.requests) > pending:  # that line began a request
            parts = line.split(b" ")
            self.request_line = (parts[0], parts[1]) if len(parts) == 3 else (None, None)

    def allContentReceived(self) -> None:
        self.receiving_since = None
        super().allContentReceived()

    def requestDone(self, request: http.Request) -> None:
        super().requestDone(request)
        if not compat.handling_request(self) or not self.persistent:
            # done, or closing: TLS's close waits for the client's, the idle timeout
            # ends the wait (Twisted leaves a closing channel "handling" its request)
            self.waiting_since = time.monotonic()
        self._back_to_the_fast_path()

    def _back_to_the_fast_path(self) -> None:
        """Once Twisted has answered what it was handed (a large file streamed, another
        method) and holds nothing more of this connection (no request begun, no
        request line being read, nothing pipelined it has not parsed, the connection
        kept open), the next plain requests take the fast path again: else a client
        that once fetched a large file would stay on Twisted's path for good."""
        if (self.fast or self._closed or not self.site.static.fast_path or self.requests
                or compat.handling_request(self) or compat.waiting_for_transport(self)
                or not self.persistent or not self.line_mode
                or getattr(self.transport, "disconnecting", True)):
            return
        self.fast = True
        rest = self.clearLineBuffer()  # what Twisted read of the next head, unparsed
        if rest:  # a request begun: its deadline runs
            self.receiving_since, self.waiting_since = time.monotonic(), None
            self._fast_received(rest)

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
        return bool(self.requests) or compat.handling_request(self) or \
            compat.waiting_for_transport(self)

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


def channel_factory(site: object):  # noqa: ANN202
    return Connection(DeadlineChannel())


class Connection(compat.GenericHTTPChannelProtocol):
    """One client connection, HTTP/1.1 or h2: counted, capped, swept.

    Its base is Twisted's protocol that picks HTTP/1.1 or h2 by ALPN (private in
    Twisted, but the only way to keep its h2 support with a channel of our own). When
    ALPN picks h2, Twisted swaps our HTTP/1.1 channel for its H2Connection on the first
    bytes; the connection stays the same object, so it is what the site counts, and
    h2 gets an idle timeout of its own.
    """

    def makeConnection(self, transport: object) -> None:
        super().makeConnection(transport)
        connections = self.site.connections
        if len(connections) >= self.site.options.max_connections:
            transport.abortConnection()
            return
        connections.add(self)

    _http1: DeadlineChannel | None = None  # ours for good: Twisted picks on the first bytes

    def dataReceived(self, data: bytes) -> None:
        if self._http1 is not None:
            self._http1.dataReceived(data)
            return
        before = compat.current_channel(self)
        super().dataReceived(data)
        channel = compat.current_channel(self)
        if channel is not before:  # now h2
            channel.setTimeout(self.site.options.idle_timeout)
        elif isinstance(channel, DeadlineChannel):
            self._http1 = channel

    def connectionLost(self, reason: object) -> None:
        self.site.connections.discard(self)
        super().connectionLost(reason)

    def overdue(self, now: float, options: ServeOptions) -> bool:
        channel = compat.current_channel(self)
        return isinstance(channel, DeadlineChannel) and channel.overdue(now, options)

    def busy(self) -> bool:
        channel = compat.current_channel(self)
        if isinstance(channel, DeadlineChannel):
            return channel.busy()
        return compat.h2_busy(channel)

    def abort(self) -> None:
        compat.current_channel(self).transport.abortConnection()
