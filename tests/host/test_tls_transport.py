"""`o2m serve`'s TLS, on both of its transports: o2m's own (OpenSSL on the socket, the
default) and Twisted's TLS layer (`O2M_SERVE_TLS=twisted`). The policy is checked by
real handshakes from Python's ssl and openssl s_client, never by reading a context:
old protocol versions and weak suites refused, the server's order of suites, ALPN,
session resumption, a TLS close, and connections that never finish a handshake."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_o2m
from support.hosts import need_program
from support.o2m_server import o2m_serve

TRANSPORTS = {"own TLS": {}, "Twisted's TLS": {"O2M_SERVE_TLS": "twisted"}}


@pytest.fixture(scope="module")
def site_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tls") / "site"
    assert run_o2m("init", str(root), "--name", "T", "--url", "https://t.example/",
                   cwd=root.parent).returncode == 0
    assert run_o2m("build", cwd=root).returncode == 0
    (root / "build" / "medium.bin").write_bytes(os.urandom(200 * 1024))  # cached, 13 records
    return root


@pytest.fixture(scope="module", params=list(TRANSPORTS))
def server(request, site_root):
    """The site served with 1 s deadlines, once on each transport."""
    with o2m_serve(site_root, "--request-timeout", "1", "--idle-timeout", "1",
                   env=TRANSPORTS[request.param]) as running:
        running.root = site_root
        yield running


def tls12(ciphers: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2 client that trusts anything (the policy is under test, not the pin)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(server, ctx: ssl.SSLContext, **kw) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1", **kw)
    except BaseException:
        sock.close()
        raise


def ask(tls: ssl.SSLSocket, path: bytes = b"/", close: bool = False) -> bytes:
    """One request on an open connection; its whole answer (Content-Length framed)."""
    tls.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n"
                + (b"Connection: close\r\n" if close else b"") + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += tls.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("suite", [
    "AES128-GCM-SHA256",  # no forward secrecy (RSA key exchange)
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",  # CBC, not AEAD
    "ECDHE-ECDSA-NULL-SHA",  # no encryption at all
])
def test_weak_tls12_suites_are_refused(server, suite):
    """A TLS 1.2 client that offers only a suite without forward secrecy, or without
    AEAD, gets no connection."""
    try:
        ctx = tls12(suite + ":@SECLEVEL=0")
    except ssl.SSLError:
        pytest.skip(f"this OpenSSL cannot even offer {suite}")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(server, ctx).close()


def test_tls12_takes_the_servers_order_of_aead_suites(server):
    """A TLS 1.2 client that prefers ChaCha20 gets AES-128-GCM, the server's first
    choice, with an ephemeral key exchange; and no compression."""
    ctx = tls12("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256")
    with handshake(server, ctx) as tls:
        assert (tls.version(), tls.cipher()[0]) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert tls.compression() is None
        assert ask(tls).startswith(b"HTTP/1.1 200 OK\r\n")


def test_old_versions_are_refused_by_openssl_s_client(server):
    """TLS 1.0 and 1.1 are refused (openssl s_client, with every suite allowed)."""
    need_program("openssl", "openssl")
    for version in ("-tls1", "-tls1_1"):
        s_client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}",
                                   version, "-cipher", "DEFAULT:@SECLEVEL=0"],
                                  input="", capture_output=True, text=True, timeout=30)
        assert s_client.returncode != 0, version


def test_renegotiation_is_refused(server):
    """A TLS 1.2 client that asks to renegotiate (openssl s_client's `R`) is refused
    with OpenSSL's no_renegotiation, and gets nothing more."""
    need_program("openssl", "openssl")
    s_client = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}",
                                 "-tls1_2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        s_client.stdin.write("R\n")
        s_client.stdin.flush()
        s_client.wait(timeout=20)  # stdin left open: it ends by itself when refused
        output = s_client.stdout.read()
    finally:
        if s_client.poll() is None:
            s_client.kill()
        s_client.stdin.close()
        s_client.stdout.close()
    assert "RENEGOTIATING" in output and "no renegotiation" in output
    assert s_client.returncode != 0


@pytest.mark.parametrize(("offered", "chosen"), [
    (["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"), (["http/1.1"], "http/1.1"),
    (["spdy/3"], None), (None, None),
])
def test_alpn_in_the_servers_order(server, offered, chosen):
    """ALPN picks h2 when the client offers it, whatever its order; HTTP/1.1 when
    only that is offered; nothing, and the handshake goes on, when nothing overlaps or
    the client offers none (then HTTP/1.1 is spoken)."""
    ctx = ssl.create_default_context(cafile=server.verify)
    if offered:
        ctx.set_alpn_protocols(offered)
    with handshake(server, ctx) as tls:
        assert tls.selected_alpn_protocol() == chosen
        if chosen != "h2":
            assert ask(tls).startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_tls12_session_is_resumed(server):
    """A TLS 1.2 client coming back with its session resumes it (the server's session
    cache), and is answered."""
    ctx = tls12()
    with handshake(server, ctx) as first:
        ask(first)
        session = first.session
    with handshake(server, ctx, session=session) as second:
        assert second.session_reused
        assert ask(second).startswith(b"HTTP/1.1 200 OK\r\n")


def test_pipelined_answers_past_the_socket_buffer_arrive_whole(server):
    """Thirty 200 KiB answers asked at once, read only after a pause (the socket's
    buffer fills, the transport holds the rest and OpenSSL's half-written record is
    given again as it must be): every byte arrives, in order."""
    body = (server.root / "build" / "medium.bin").read_bytes()
    ask_one = b"GET /medium.bin HTTP/1.1\r\nHost: t\r\n\r\n"
    last = b"GET /medium.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with handshake(server, ssl.create_default_context(cafile=server.verify)) as tls:
        tls.sendall(ask_one * 29 + last)
        time.sleep(0.5)
        received = bytearray()
        while chunk := tls.recv(1 << 20):
            received += chunk
    answers = bytes(received).split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 30
    assert all(answer.partition(b"\r\n\r\n")[2] == body for answer in answers)


def test_the_close_is_tls_close_notify(server):
    """After an answer with `Connection: close`, the server closes TLS properly: its
    close_notify comes before the end of the stream (a client that does not accept a
    bare end of stream reads an orderly end), on TLS 1.3 and 1.2."""
    for ctx in (ssl.create_default_context(cafile=server.verify), tls12()):
        with handshake(server, ctx, suppress_ragged_eofs=False) as tls:
            answer = ask(tls, close=True)
            assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0]
            assert tls.recv(65536) == b""  # close_notify: not SSLEOFError


def test_threat_45_handshakes_that_never_finish_are_cut(server):
    """A client that sends half a ClientHello, or bytes that are no TLS at all, or
    completes the TCP handshake and nothing else, is cut by the idle timeout or at
    once; the server answers others meanwhile and after."""
    hello = _client_hello()
    clients = []
    for first in (hello[: len(hello) // 2], b"", b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\xff\xff"):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(first)
        clients.append(sock)
    with handshake(server, ssl.create_default_context(cafile=server.verify)) as tls:
        assert ask(tls).startswith(b"HTTP/1.1 200 OK\r\n")
    deadline = time.monotonic() + 30
    for sock in clients:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            while sock.recv(65536):  # an alert maybe, then the end
                pass
        except ConnectionResetError:
            pass
        sock.close()
    with handshake(server, ssl.create_default_context(cafile=server.verify)) as tls:
        assert ask(tls).startswith(b"HTTP/1.1 200 OK\r\n")


def _client_hello() -> bytes:
    """The first flight of a real TLS client: its ClientHello, made by Python's ssl
    over memory BIOs."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname="t.example")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_an_unknown_tls_transport_is_one_clear_line(site_root):
    """`O2M_SERVE_TLS` other than `ssl` or `twisted` stops `o2m serve` with one line
    naming the choices, before it listens."""
    r = run_o2m("serve", "--port", "0", cwd=site_root, timeout=60,
                env={"O2M_SERVE_TLS": "gnutls"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "O2M_SERVE_TLS=gnutls" in r.stderr and "ssl, twisted" in r.stderr


def test_an_unknown_tls_transport_is_one_line_before_a_certificate_is_made(site):
    """Bad input: O2M_SERVE_TLS names no transport. `o2m serve` says so in one line and
    stops before it makes a self-signed certificate or binds a port."""
    site.post("hello.md")
    site.o2m("build")

    result = run_o2m("serve", "--port", "0", cwd=site.root, env={"O2M_SERVE_TLS": "openssl"})

    assert 0 != result.returncode
    assert result.stderr.startswith("o2m: error: O2M_SERVE_TLS=openssl: not a TLS transport")
    assert "Traceback" not in result.stderr
    assert not (site.root / "keys/tls").exists()
