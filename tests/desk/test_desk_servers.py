"""The desk behind real sockets: `o2m desk` on loopback HTTP, and `o2m serve --desk` under
/desk/ of the owner's TLS server. Cookies as the browser gets them, body caps at the
headers, and the cookie over plain HTTP."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys

import pytest
import requests
from support.desk import PASS, make_app, make_site, start_desk, stop
from support.o2m_server import o2m_serve

from o2m_pub.desk.forms import SIGNED_OUT_BODY_BYTES


def sign_in(session: requests.Session, base: str, **kw) -> requests.Response:  # noqa: ANN003
    page = session.get(base + "signin", **kw)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return session.post(base + "signin", data={"csrf": token, "passphrase": PASS,
                                               "next": "/"}, allow_redirects=False, **kw)


def raw_post(host: str, port: int, path: str, length: int, body: bytes = b"x",
             tls: bool = False) -> bytes:
    """A POST claiming `length` body bytes, sending only `body`: the answer that comes
    before the body is read (or b"" when the server closed at once)."""
    sock = socket.create_connection((host, port), timeout=10)
    if tls:
        import ssl
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname="localhost")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: "
            f"application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n").encode()
    try:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(4096)):
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        sock.close()
    return data


def test_o2m_desk_on_loopback_cookie_flags_body_cap_and_a_clean_stop(tmp_path):
    """`o2m desk`: the session cookie is host-only, HttpOnly, SameSite=Strict (no Secure
    and no __Host- prefix on plain http, see web.CookiePolicy), named with its port; a
    signed-out body past a
    few KiB gets 413 at its headers; SIGTERM stops it with status 0."""
    root = make_site(tmp_path)
    proc, url = start_desk(root)
    try:
        s = requests.Session()
        response = sign_in(s, url)
        assert response.status_code == 303
        port = int(url.rsplit(":", 1)[1].strip("/"))
        cookie = next(c for c in response.raw.headers.getlist("Set-Cookie")
                      if c.startswith("o2m-desk-"))
        assert re.fullmatch(rf"o2m-desk-{port}=[A-Za-z0-9_-]{{43}}; Path=/; HttpOnly; "
                            "SameSite=Strict", cookie), cookie
        assert s.get(url).status_code == 200 and "Home" in s.get(url).text
        answer = raw_post("127.0.0.1", port, "/signin", SIGNED_OUT_BODY_BYTES + 1)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert requests.get(url, headers={"Host": "evil.example"}).status_code == 421
    finally:
        assert stop(proc) == 0
    assert proc.stdout.read() == "" and proc.stderr.read() == ""


def test_o2m_reader_is_the_desk_under_its_old_name(tmp_path):
    """`o2m reader` runs the desk (and says so)."""
    result = subprocess.run([sys.executable, "-m", "o2m_pub", "reader", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "The same as `o2m desk`" in result.stdout


def test_the_desk_listens_on_loopback_only(tmp_path):
    """--host 0.0.0.0 is refused in one line: decrypted posts stay on this machine. (A
    bad option value: exit status 2, a usage error.)"""
    root = make_site(tmp_path)
    result = subprocess.run([sys.executable, "-m", "o2m_pub", "-C", str(root), "desk",
                             "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "127.0.0.1 or ::1 only" in result.stderr


@pytest.fixture
def served(tmp_path):
    """Ada's site built and served with `o2m serve --desk --http-port N`."""
    root = make_site(tmp_path, url="https://localhost/")
    subprocess.run([sys.executable, "-m", "o2m_pub", "-C", str(root), "build"], check=True,
                   capture_output=True, timeout=120)
    from support.hosts import free_port
    http_port = free_port()
    with o2m_serve(root, "--desk", "--http-port", str(http_port)) as server:
        yield root, server, http_port


def test_serve_desk_mounts_the_desk_under_tls_with_host_prefixed_secure_cookies(served):
    """Under `o2m serve --desk` the desk is at /desk/ over TLS: its cookie is
    __Host-o2m-desk with Secure, and HSTS is sent; the public site is still served,
    and nothing of the desk is in build/."""
    root, server, _ = served
    base = server.url + "desk/"
    s = requests.Session()
    s.verify, s.trust_env = server.verify, False  # REQUESTS_CA_BUNDLE would win
    first = s.get(server.url + "desk", allow_redirects=False)
    assert first.status_code == 301 and first.headers["Location"] == "/desk/"
    assert s.get(base, allow_redirects=False).headers["Location"].startswith("/desk/signin")
    response = sign_in(s, base)
    assert response.status_code == 303
    cookie = next(c for c in response.raw.headers.getlist("Set-Cookie")
                  if c.startswith("__Host-o2m-desk="))
    assert cookie.endswith("; Path=/; HttpOnly; SameSite=Strict; Secure")
    home = s.get(base)
    assert home.status_code == 200 and 'href="/desk/write"' in home.text
    assert home.headers["Strict-Transport-Security"].startswith("max-age=")
    assert s.get(server.url).status_code == 200  # the public site
    assert not [p for p in (root / "build").rglob("*") if "desk" in p.name]
    answer = raw_post("127.0.0.1", server.port, "/desk/signin", SIGNED_OUT_BODY_BYTES + 1,
                      tls=True)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_desk_cookie_over_plain_http_gets_nothing(served):
    """The plain-HTTP port only redirects to HTTPS: a valid session cookie sent over it
    (as a browser never would: it is Secure) reads nothing of the desk."""
    _, server, http_port = served
    s = requests.Session()
    s.verify, s.trust_env = server.verify, False  # REQUESTS_CA_BUNDLE would win
    sign_in(s, server.url + "desk/")
    value = s.cookies.get("__Host-o2m-desk")
    assert value
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    conn.request("GET", "/desk/", headers={"Cookie": f"__Host-o2m-desk={value}",
                                           "Host": f"localhost:{http_port}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 301 and response.getheader("Location").startswith("https://")
    assert b"Home" not in body and b"timeline" not in body


def test_live_updates_tell_an_open_page_when_a_fetch_stored_something(tmp_path):
    """Server-sent events: /events (signed in) sends `data: changed` once the reader's
    store holds a new post; signed out it is a bare 401."""
    from support.desk_world import friend_card, store_posts

    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.reader.model import PostRow

    root = make_site(tmp_path)
    bob = friend_card(1, "bob")
    FriendStore(root).add("bob", bob, now=__import__("support.desk_world",
                                                    fromlist=["NOW"]).NOW)
    proc, url = start_desk(root)
    try:
        assert requests.get(url + "events").status_code == 401
        s = requests.Session()
        sign_in(s, url)
        with s.get(url + "events", stream=True, timeout=(5, 20)) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            lines = stream.iter_lines(decode_unicode=True)
            assert next(lines) == "retry: 5000"
            store_posts(root, "bob", bob, [PostRow(id="n1", audience="private",
                                                   date="2026-11-24T10:00:00Z", title="New",
                                                   markdown="x")])
            assert "data: changed" in [next(lines) for _ in range(3)]
    finally:
        assert stop(proc) == 0


def test_the_desk_listens_with_the_reactor_it_is_given(tmp_path):
    """`listen` binds through the reactor passed to it (never the global one, which a
    test process may share), on the loopback address asked for, and hands `make_app`
    the port bound: here a Twisted MemoryReactor, which records what was asked."""
    from twisted.internet.testing import MemoryReactor

    from o2m_pub.desk.server import listen
    from o2m_pub.desk.web import loopback_origin

    root, reactor, ports = make_site(tmp_path), MemoryReactor(), []

    def make(port: int):  # noqa: ANN202 - a DeskApp
        ports.append(port)
        return make_app(root, loopback_origin("127.0.0.1", port))

    bound = listen(make, "127.0.0.1", 48_480, reactor)
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (48_480, "127.0.0.1")]
    assert ports == [48_480] and bound.url == "http://127.0.0.1:48480/"
