"""`o2m serve`'s fast path for plain GETs and HEADs (docs/adr/0004): the same bytes as
Twisted's path, request for request, on two real TLS servers of one site (one with the
fast path, one without), read with raw sockets; and the same access log lines."""

from __future__ import annotations

import os
import re
import socket
import ssl
import time
from pathlib import Path

import pytest
from conftest import run_o2m
from support.o2m_server import site_with_a_friend, start_o2m_serve

TWISTED_ONLY = {"O2M_SERVE_FAST_PATH": "0"}
TWISTED_TLS = {"O2M_SERVE_TLS": "twisted"}  # Twisted's TLS layer instead of o2m's own


@pytest.fixture(scope="module")
def site_root(tmp_path_factory) -> Path:
    """A built site with a friend (o/, p/, f/), a file too large for the cache and one
    of 200 KiB."""
    root = site_with_a_friend(tmp_path_factory.mktemp("fast") / "site", "Fast")
    build = run_o2m("build", cwd=root)
    assert build.returncode == 0, build.stderr
    (root / "build" / "large.bin").write_bytes(os.urandom((1 << 20) + 4096))
    (root / "build" / "small.txt").write_text("a small text, " * 40)
    (root / "build" / "medium.bin").write_bytes(os.urandom(200 * 1024))  # cached, 13 records
    return root


@pytest.fixture(scope="module")
def servers(site_root, tmp_path_factory):
    """(fast, twisted): the same site served twice, each with its own access log."""
    logs = tmp_path_factory.mktemp("logs")
    fast = start_o2m_serve(site_root, "--access-log", str(logs / "fast.log"))
    try:
        twisted = start_o2m_serve(site_root, "--access-log", str(logs / "twisted.log"),
                                  env=TWISTED_ONLY)
    except BaseException:
        fast.stop()
        raise
    fast.log, twisted.log = logs / "fast.log", logs / "twisted.log"
    yield fast, twisted
    for server in (fast, twisted):
        if server.process.poll() is None:
            server.stop()


def exchange(server, pieces: list[bytes], pause: float = 0.0) -> bytes:
    """Send `pieces` on one TLS connection (with `pause` between them) and read
    everything until the server closes it (or says nothing more for 3 s: then the
    answer ends with a mark of it)."""
    ctx = ssl.create_default_context(cafile=server.verify)
    chunks = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            for piece in pieces:
                tls.sendall(piece)
                if pause:
                    time.sleep(pause)
            try:
                while chunk := tls.recv(65536):
                    chunks.append(chunk)
            except (ssl.SSLError, ConnectionResetError):
                pass  # a connection cut after a 400 or 413
            except TimeoutError:
                chunks.append(b"\n(the server kept the connection open)")
    return b"".join(chunks) or b"(closed without an answer)"


_DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def comparable(answer: bytes) -> bytes:
    """An answer with its Date header's value blanked (the clocks of two servers)."""
    return _DATE.sub(b"\r\nDate: -\r\n", answer)


def _first(build: Path, folder: str) -> str:
    return "/" + next(p for p in sorted((build / folder).iterdir())
                      if p.is_file()).relative_to(build).as_posix()


def _etag_and_date(site_root: Path, path: str) -> tuple[bytes, bytes]:
    from o2m_pub.host.static_rules import FileFacts
    st = (site_root / "build" / path.lstrip("/")).stat()
    facts = FileFacts(st.st_size, st.st_mtime_ns, st.st_ino)
    return facts.etag.encode(), facts.last_modified.encode()


def _get(path: bytes | str, *headers: bytes | str, method: bytes = b"GET",
         version: bytes = b"HTTP/1.1", close: bool = True) -> bytes:
    path = path.encode() if isinstance(path, str) else path
    lines = [method + b" " + path + b" " + version, b"Host: fast.example"]
    lines += [h.encode() if isinstance(h, str) else h for h in headers]
    if close and version == b"HTTP/1.1":
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def cases(site_root: Path) -> dict[str, list[bytes]]:
    """Every kind of request `o2m serve` answers, by name: the pieces sent on one
    connection, the last of which closes it."""
    build = site_root / "build"
    etag, modified = _etag_and_date(site_root, "/index.html")
    big_etag, _ = _etag_and_date(site_root, "/large.bin")
    obj, head = _first(build, "o"), _first(build, "f")
    css = "/" + next((build / "static").rglob("*.css")).relative_to(build).as_posix()
    plain = _get("/index.html", close=False)
    return {
        "page": [_get("/")],
        "page by name": [_get("/index.html")],
        "HEAD of a page": [_get("/index.html", method=b"HEAD")],
        "HTTP/1.0": [_get("/index.html", version=b"HTTP/1.0")],
        "HTTP/1.0 HEAD": [_get("/index.html", method=b"HEAD", version=b"HTTP/1.0")],
        "HTTP/1.0 keep-alive asked": [_get("/", "Connection: keep-alive", version=b"HTTP/1.0")],
        "gzip": [_get("/index.html", "Accept-Encoding: gzip, deflate")],
        "gzip HEAD": [_get("/index.html", "Accept-Encoding: gzip", method=b"HEAD")],
        "gzip refused by q=0": [_get("/index.html", "Accept-Encoding: gzip;q=0")],
        "gzip in a second header": [_get("/small.txt", "Accept-Encoding: br",
                                         "Accept-Encoding: gzip")],
        "gzip of ciphertext asked": [_get(obj, "Accept-Encoding: gzip")],
        "feed head": [_get(head)],
        "If-None-Match": [_get("/index.html", b"If-None-Match: " + etag)],
        "If-None-Match weak and listed": [_get("/index.html",
                                               b'If-None-Match: "x", W/' + etag)],
        "If-None-Match star": [_get("/index.html", "If-None-Match: *")],
        "If-None-Match other": [_get("/index.html", 'If-None-Match: "other"',
                                     b"If-Modified-Since: " + modified)],
        "If-Modified-Since": [_get("/index.html", b"If-Modified-Since: " + modified)],
        "If-Modified-Since old": [_get("/index.html",
                                       "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT")],
        "If-Modified-Since garbage": [_get("/index.html", "If-Modified-Since: yesterday")],
        "304 HEAD": [_get("/index.html", b"If-None-Match: " + etag, method=b"HEAD")],
        "range": [_get("/small.txt", "Range: bytes=10-99")],
        "range suffix": [_get("/small.txt", "Range: bytes=-10")],
        "range open": [_get("/small.txt", "Range: bytes=500-")],
        "range past the end": [_get("/small.txt", "Range: bytes=99999-")],
        "range HEAD": [_get("/small.txt", "Range: bytes=0-9", method=b"HEAD")],
        "range of several": [_get("/small.txt", "Range: bytes=0-1,5-6")],
        "range garbage": [_get("/small.txt", "Range: lines=1-2")],
        "If-Range holds": [_get("/index.html", "Range: bytes=0-9", b"If-Range: " + etag)],
        "If-Range stale": [_get("/index.html", "Range: bytes=0-9", 'If-Range: "old"')],
        "range with gzip": [_get("/index.html", "Range: bytes=0-9", "Accept-Encoding: gzip")],
        "200 KiB": [_get("/medium.bin")],
        "200 KiB twice, pipelined": [_get("/medium.bin", close=False) + _get("/medium.bin")],
        "200 KiB range": [_get("/medium.bin", "Range: bytes=1000-150000")],
        "large file": [_get("/large.bin")],
        "large file HEAD": [_get("/large.bin", method=b"HEAD")],
        "large file range": [_get("/large.bin", "Range: bytes=100-199")],
        "large file 304": [_get("/large.bin", b"If-None-Match: " + big_etag)],
        "large file, then plain ones": [_get("/large.bin", close=False), plain,
                                        _get("/small.txt")],
        "large file, then plain ones, pipelined": [_get("/large.bin", close=False) + plain
                                                   + _get("/small.txt")],
        "another method, then plain ones, pipelined": [
            _get("/", method=b"OPTIONS", close=False) + plain + _get("/small.txt")],
        "another method, then a head in pieces": [
            _get("/", method=b"OPTIONS", close=False) + plain[:20], plain[20:],
            _get("/small.txt")],
        "versioned asset": [_get(css + "?v=1")],
        "versioned asset by an encoded key": [_get(css + "?%76=2&x")],
        "asset with a bare v": [_get(css + "?v")],
        "404": [_get("/nothing-here")],
        "404 HEAD": [_get("/nothing-here", method=b"HEAD")],
        "404 HTTP/1.0": [_get("/nothing-here", version=b"HTTP/1.0")],
        "folder without its slash": [_get("/tags")],
        "folder without its slash, with a query": [_get("/tags?a=1&b")],
        "folder without its slash, HEAD": [_get("/tags", method=b"HEAD")],
        "listing refused": [_get("/o/")],
        "percent-encoded": [_get("/%69ndex.html")],
        "traversal": [_get("/../../etc/passwd")],
        "encoded traversal": [_get("/%2e%2e/%2e%2e/etc/passwd")],
        "dotfile": [_get("/.o2m/access.log")],
        "double slash": [_get("//index.html")],
        "no Host": [b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"],
        "Content-Length 0": [_get("/", "Content-Length: 0")],
        "close among tokens": [_get("/", "Connection: keep-alive close", close=False)],
        "close after a comma": [_get("/", "Connection: close, keep-alive", close=False),
                                _get("/small.txt")],
        "keep-alive, then close": [plain, plain, _get("/small.txt")],
        "pipelined": [plain + _get("/small.txt", close=False) + _get("/index.html",
                                                                     method=b"HEAD")],
        "pipelined with a 404 and a redirect": [plain + _get("/nope", close=False)
                                                + _get("/tags", close=False) + _get("/")],
        "one byte at a time": [bytes([b]) for b in _get("/small.txt")],
        "a head in two pieces": [plain[:20], plain[20:] + _get("/")],
        "a body on a GET, mid-pipeline": [plain + b"GET / HTTP/1.1\r\nContent-Length: 5"
                                          b"\r\n\r\nhello" + _get("/")],
        "chunked GET": [_get("/", "Transfer-Encoding: chunked") + b"0\r\n\r\n"],
        "Expect": [_get("/", "Expect: 100-continue")],
        "POST": [b"POST /index.html HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"],
        "lowercase method": [_get("/", method=b"get")],
        "OPTIONS": [_get("/", method=b"OPTIONS")],
        "inbox GET": [_get("/.well-known/o2m-inbox")],
        "webmention GET": [_get("/.well-known/webmention")],
        "live reload path without --watch": [_get("/_o2m/live.js")],
        "asterisk target": [b"OPTIONS * HTTP/1.1\r\nConnection: close\r\n\r\n"],
        "absolute-form target": [_get("https://fast.example/")],
        "HTTP/2 preface on HTTP/1.1": [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
        "HTTP/0.9": [b"GET /\r\n\r\n"],
        "folded header": [b"GET / HTTP/1.1\r\nX-A: one\r\n two\r\nConnection: close\r\n\r\n"],
        "bare LF": [b"GET / HTTP/1.1\nConnection: close\r\n\r\n"],
        "bare CR in a value": [b"GET / HTTP/1.1\r\nX-A: o\rne\r\nConnection: close\r\n\r\n"],
        "NUL in a value": [b"GET / HTTP/1.1\r\nX-A: \x00\r\nConnection: close\r\n\r\n"],
        "no colon": [b"GET / HTTP/1.1\r\nX-A one\r\nConnection: close\r\n\r\n"],
        "space before the colon": [b"GET / HTTP/1.1\r\nX-A : one\r\nConnection: close\r\n\r\n"],
        "two Content-Lengths": [_get("/", "Content-Length: 0", "Content-Length: 0")],
        "an empty line first": [b"\r\n" + _get("/")],
        "a long head": [_get("/", "X-Long: " + "a" * 10_000)],
        "a head too long for Twisted": [_get("/", "X-Long: " + "a" * 20_000)],
        "obs-text in a value": [_get("/", "User-Agent: caf\xe9".encode("latin-1"))],
        "control character in a value": [_get("/", b"User-Agent: a\x01b")],
        "odd target bytes": [_get(b"/\x80index.html")],
        "log-worthy headers": [_get("/?q=\"x\"", 'User-Agent: agent "quoted"',
                                    "Referer: https://r.example/a\\b")],
    }


def test_every_request_gets_the_same_bytes_on_both_paths(site_root, servers):
    """For each kind of request (conditional, range, gzip, HEAD, 404, redirects, HTTP/1.0,
    pipelining, heads in pieces, and everything the fast path hands to Twisted: bodies,
    other methods, malformed heads, endpoints), the server with the fast path sends the
    very bytes the one without sends, the Date's value aside."""
    fast, twisted = servers
    expected, actual = {}, {}
    for name, pieces in cases(site_root).items():
        pause = 0.01 if len(pieces) > 1 else 0.0
        expected[name] = comparable(exchange(twisted, pieces, pause))
        actual[name] = comparable(exchange(fast, pieces, pause))
        assert expected[name], name  # every case is answered, if only with a 400
    assert expected == actual


# Where Twisted's TLS layer and o2m's own transport differ, on purpose: Twisted closes a
# connection whose header line passes its 16 KiB limit without an answer, and its TLS
# layer then waits for the client's close_notify, which a client waiting for an answer
# never sends (the idle timeout ends it); o2m's transport sends its close_notify at once.
TLS_DIFFERENCES = {"a head too long for Twisted": (b"\n(the server kept the connection open)",
                                                   b"(closed without an answer)")}


def test_every_request_gets_the_same_bytes_over_either_tls_transport(site_root, servers):
    """The same requests to a server on Twisted's TLS layer (`O2M_SERVE_TLS=twisted`)
    get the very bytes o2m's own transport sends (Date aside), but for the one
    difference in `TLS_DIFFERENCES`: the transport changes how bytes travel, not which."""
    own, _ = servers
    old = start_o2m_serve(site_root, env=TWISTED_TLS)
    try:
        expected, actual = {}, {}
        for name, pieces in cases(site_root).items():
            pause = 0.01 if len(pieces) > 1 else 0.0
            expected[name] = comparable(exchange(old, pieces, pause))
            actual[name] = comparable(exchange(own, pieces, pause))
    finally:
        assert old.stop() == 0
    for name, (before, now) in TLS_DIFFERENCES.items():
        assert (expected.pop(name), actual.pop(name)) == (before, now)
    assert expected == actual


def test_the_access_log_lines_are_the_same(site_root, tmp_path):
    """The access log of a server with the fast path has the same lines, in the same
    order, as one without, for the same requests (timestamps aside)."""
    logs = {}
    for name, env in (("fast", None), ("twisted", TWISTED_ONLY)):
        log = tmp_path / f"{name}.log"
        server = start_o2m_serve(site_root, "--access-log", str(log), env=env)
        try:
            for pieces in cases(site_root).values():
                exchange(server, pieces, 0.01 if len(pieces) > 1 else 0.0)
        finally:
            assert server.stop() == 0
        logs[name] = re.sub(r"\[[^]]*\]", "[-]", log.read_text())
    assert len(logs["fast"].splitlines()) > 60
    assert logs["twisted"] == logs["fast"]


@pytest.mark.parametrize("env", [None, TWISTED_ONLY], ids=["fast path", "Twisted's path"])
def test_deadlines_cut_connections_on_either_path(site_root, env):
    """A client that sends part of a request head and then nothing is cut when the
    request deadline passes (the fast path holds the part; THREATS 45); one that stays
    idle after an answer is closed at the idle timeout; and one that asked to close but
    never answers the server's TLS close is cut at the idle timeout too."""
    server = start_o2m_serve(site_root, "--request-timeout", "1", "--idle-timeout", "1",
                             env=env)
    try:
        ctx = ssl.create_default_context(cafile=server.verify)
        for first in (b"GET /index.html HTTP/1.1\r\nHost: x\r\n",
                      b"GET /index.html HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                    tls.sendall(first)
                    received = b""
                    try:
                        while chunk := tls.recv(65536):
                            received += chunk
                    except (ssl.SSLError, ConnectionResetError):
                        pass
            assert received.startswith(b"HTTP/1.1 200 OK\r\n") == first.endswith(b"\r\n\r\n")
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                tls.sendall(_get("/index.html"))  # Connection: close; never read, never closed
                raw = socket.socket(fileno=os.dup(tls.fileno()))
                raw.settimeout(30)
                try:
                    while raw.recv(65536):  # the sealed answer, the server's close, then EOF
                        pass
                except ConnectionResetError:
                    pass  # cut: as good as closed
                finally:
                    raw.close()
    finally:
        server.stop()


# The cases the fast path gives to Twisted (by design: nothing else may be among them,
# or a plain request silently lost its speed).
HANDED_OVER = {
    "large file", "large file range", "large file, then plain ones",
    "large file, then plain ones, pipelined", "a body on a GET, mid-pipeline", "chunked GET",
    "Expect", "POST", "lowercase method", "OPTIONS", "inbox GET", "webmention GET",
    "asterisk target", "absolute-form target", "HTTP/2 preface on HTTP/1.1", "HTTP/0.9",
    "folded header", "bare LF", "bare CR in a value", "NUL in a value", "no colon",
    "space before the colon", "two Content-Lengths", "an empty line first", "a long head",
    "a head too long for Twisted", "obs-text in a value", "control character in a value",
    "odd target bytes",
}


def test_plain_requests_stay_on_the_fast_path_and_the_rest_are_handed_over(site_root):
    """Driven in this process, on Twisted's in-memory transport: a connection given a
    plain request answers it on the fast path (a failure there would fall back to
    Twisted unnoticed by the byte comparison), and one given anything else hands it to
    Twisted's parser."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    from o2m_pub.host.file_cache import FileCache
    from o2m_pub.host.serve import O2MSite, ServeOptions, StaticSite

    cache = FileCache(site_root / "build", live_reload=False, max_bytes=64 << 20)
    site = O2MSite(StaticSite(cache, None, fast_path=True), ServeOptions(fast_path=True),
                   Clock())
    handed_over = set()
    for name, pieces in cases(site_root).items():
        connection = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        connection.makeConnection(transport)
        channel = connection._channel
        for piece in pieces:
            if channel.fast:
                connection.dataReceived(piece)
        if not channel.fast and not channel._closed:
            handed_over.add(name)
        else:
            assert transport.value().startswith(b"HTTP/1."), name  # answered here
        connection.connectionLost(Failure(ConnectionDone()))
    assert HANDED_OVER == handed_over


def test_a_connection_comes_back_to_the_fast_path_after_twisted_answered(site_root):
    """Driven in this process: a request Twisted answers (another method, kept alive)
    hands the connection to Twisted's parser; once that answer is done and Twisted
    holds nothing more, the connection is back on the fast path, which answers the
    next plain request (and a head Twisted had begun to read, given back whole)."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    from o2m_pub.host.file_cache import FileCache
    from o2m_pub.host.serve import O2MSite, ServeOptions, StaticSite

    cache = FileCache(site_root / "build", live_reload=False, max_bytes=64 << 20)
    site = O2MSite(StaticSite(cache, None, fast_path=True), ServeOptions(fast_path=True),
                   Clock())
    connection = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
    connection.makeConnection(transport)
    channel = connection._channel
    plain = _get("/small.txt", close=False)
    connection.dataReceived(_get("/", method=b"OPTIONS", close=False) + plain[:15])
    assert transport.value().startswith(b"HTTP/1.1 405 ")
    assert channel.fast and channel._pending == plain[:15]  # back, holding the head begun
    transport.clear()
    connection.dataReceived(plain[15:])
    assert channel.fast and transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    connection.connectionLost(Failure(ConnectionDone()))
