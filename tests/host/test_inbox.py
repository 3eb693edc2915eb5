"""The inbox, `POST /.well-known/o2m-inbox` (PROTOCOL.md §5), and the rule for request
bodies on every route (THREATS 51): the pure rules directly, then a real `o2m serve` on
127.0.0.1 queried with requests, raw TLS sockets and curl."""

from __future__ import annotations

import datetime as dt
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import run_o2m
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from support.o2m_server import o2m_serve

from o2m_pub.host import inbox
from o2m_pub.protocol import invite
from o2m_pub.protocol.cards import make_card

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
BOB = make_card(SigningKey(bytes([2]) * 32), name="Bob", url="https://bob.example/",
                box_pk=bytes(PrivateKey(bytes([102]) * 32).public_key), tls_pin=None,
                created=NOW)
OCTETS = {"Content-Type": "application/octet-stream"}


# ---------------------------------------------------------------- the rules (pure)


@pytest.mark.parametrize("method, path, length, expected", [
    (b"POST", b"/.well-known/o2m-inbox", 600, 8192),
    (b"POST", b"/.well-known/o2m-inbox", 8192, 8192),
    (b"POST", b"/.well-known/o2m-inbox?x=1", 600, 8192),
    (b"POST", b"/.well-known/o2m-inbox", None, 8192),  # chunked: cut at the cap
    (b"POST", b"/.well-known/o2m-inbox", 0, 8192),
    (b"POST", b"/.well-known/o2m-inbox", 8193, inbox.Refuse(413)),
    (b"PUT", b"/.well-known/o2m-inbox", 10, inbox.Refuse(405)),
    (b"GET", b"/.well-known/o2m-inbox", 10, inbox.Refuse(405)),
    (b"GET", b"/.well-known/o2m-inbox", 0, 0),
    (b"GET", b"/", 0, 0),
    (b"HEAD", b"/", 0, 0),
    (b"GET", b"/", 1, inbox.Refuse(413)),
    (b"HEAD", b"/", 200_000, inbox.Refuse(413)),
    (b"GET", b"/", None, inbox.Refuse(413)),
    (b"POST", b"/index.html", 10, inbox.Refuse(413)),
    (b"POST", b"/.well-known/o2m-inbox/x", 10, inbox.Refuse(413)),
    (None, None, 10, inbox.Refuse(413)),  # not known (the plain-HTTP port)
    (None, None, 0, 0),
])
def test_body_rule(method, path, length, expected):
    """Only the inbox's POST carries a body, up to 8 KiB; anything else with a body is
    refused at its headers (THREATS 51)."""
    assert expected == inbox.body_rule(method, path, length)


def test_token_buckets_per_address_and_for_all():
    """A minute's worth per bucket, refilled continuously; a refused POST takes no
    token; each address has its own bucket, all share the global one."""
    buckets = inbox.TokenBuckets(per_address=3, total=5)
    assert [buckets.take("10.0.0.1", 0) for _ in range(4)] == [0, 0, 0, 20.0]
    assert buckets.take("10.0.0.1", 20) == 0  # one token came back in 20 s
    assert buckets.take("10.0.0.2", 20) == 0
    assert buckets.take("10.0.0.3", 20) == 0  # the global bucket: 2 + 20 s x 5/min - 3
    assert buckets.take("10.0.0.4", 20) == pytest.approx(4.0)  # 2/3 of a token left: 4 s
    assert buckets.take("10.0.0.4", 60) == 0


def test_ipv6_clients_are_counted_by_their_64():
    """Addresses in one /64 share a bucket; an IPv4-mapped address counts as IPv4."""
    buckets = inbox.TokenBuckets(per_address=1, total=100)
    assert buckets.take("2001:db8::1", 0) == 0
    assert buckets.take("2001:db8::ffff:2", 0) > 0
    assert buckets.take("2001:db8:0:1::1", 0) == 0
    assert buckets.take("192.0.2.1", 0) == 0
    assert buckets.take("::ffff:192.0.2.1", 0) > 0


def test_forgotten_addresses_are_bounded():
    """At most `max_addresses` buckets are kept (least recently used go first)."""
    buckets = inbox.TokenBuckets(per_address=1, total=10**6, max_addresses=3)
    for n in range(10):
        buckets.take(f"10.0.0.{n}", 0)
    assert len(buckets._addresses) == 3


def _inbox(handled: list, **kw) -> inbox.Inbox:  # noqa: ANN003
    kinds = {invite.ACCEPT_MAGIC: inbox.InboxKind("acceptance", invite.acceptance_well_formed,
                                                  kw.pop("handle", handled.append))}
    errors = kw.pop("errors", [])
    return inbox.Inbox(kinds, per_address=kw.get("per_address", 10), total=100,
                       clock=lambda: 0.0, later=lambda run: run(), on_error=errors.append)


def test_inbox_answers_by_method_type_magic_and_shape():
    """405 for GET, 415 for another type, 400 for an unknown magic or a bad shape; 202
    and the handler for a well-formed acceptance, whether or not it will open."""
    handled: list = []
    box = _inbox(handled)
    good = invite.seal_acceptance(bytes(32), BOB, nonce=bytes(24))
    assert box.answer(b"GET", "a", None, b"")[:2] == (405, {b"allow": b"POST"})
    assert box.answer(b"POST", "a", b"text/plain", good)[0] == 415
    assert box.answer(b"POST", "a", b"application/octet-stream", b"O2MNOTE1" + good[8:])[0] == 400
    assert box.answer(b"POST", "a", b"application/octet-stream", good[:-1])[0] == 400
    status, headers, run = box.answer(b"POST", "a", b"Application/Octet-Stream; x=y", good)
    assert (status, headers) == (202, {}) and handled == []
    run()
    assert handled == [good]


def test_a_failing_handler_is_logged_not_told():
    """The handler's exception goes to the server's log; the sender got its 202."""
    errors: list[str] = []

    def handle(body: bytes) -> None:
        raise invite.BadAcceptanceError()
    box = _inbox([], handle=handle, errors=errors)
    status, _, run = box.answer(b"POST", "a", b"application/octet-stream",
                                invite.seal_acceptance(bytes(32), BOB, nonce=bytes(24)))
    run()
    assert status == 202 and errors == ["inbox: acceptance not taken: This reply does not "
                                        "open with its invitation's secret: forged or altered."]


def test_every_post_takes_a_token_and_429_says_when_to_retry():
    """Malformed POSTs count too; past the limit, 429 with Retry-After in seconds."""
    box = _inbox([], per_address=2)
    assert [box.answer(b"POST", "a", None, b"")[0] for _ in range(3)] == [415, 415, 429]
    status, headers, run = box.answer(b"POST", "a", None, b"")
    assert (status, headers, run) == (429, {b"retry-after": b"30"}, None)


# ---------------------------------------------------------------- a real o2m serve


def _site(tmp_path: Path, name: str = "ada", serve: str = "") -> Path:
    root = tmp_path / name
    assert run_o2m("init", str(root), "--name", name.title(), "--url",
                   f"https://{name}.example/", cwd=tmp_path).returncode == 0
    if serve:
        with open(root / "o2m.toml", "a", encoding="utf-8") as f:
            f.write(f"\n[serve]\n{serve}\n")
    assert run_o2m("build", cwd=root).returncode == 0
    return root


def _invite(root: Path, name: str = "bob") -> invite.Invitation:
    """An invitation of the site at `root`, kept where `o2m friend invite` keeps it."""
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.invitations import InvitationBook

    now = dt.datetime.now(dt.timezone.utc)
    return InvitationBook(root).create(own_card(root), secret=os.urandom(32), name=name,
                                       now=now, expires=now + dt.timedelta(days=7))


def _post(server, body: bytes, **kw) -> requests.Response:  # noqa: ANN001, ANN003
    return requests.post(server.url + ".well-known/o2m-inbox", data=body, timeout=10,
                         verify=server.verify, headers=kw.pop("headers", OCTETS), **kw)


def _until(check, seconds: float = 15) -> bool:  # noqa: ANN001
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Ada's site, served by `o2m serve` (one worker), for the module's gentle tests."""
    root = _site(tmp_path_factory.mktemp("inbox"))
    with o2m_serve(root) as server:
        server.root = root
        yield server


def test_an_acceptance_gets_the_same_202_whether_or_not_the_invitation_exists(served):
    """The answer to a valid acceptance and to one for an invitation never made is the
    same, byte for byte but the Date; only the valid one makes a friend, at once, with
    a notification for the owner."""
    from o2m_pub.reader.store import ReaderStore

    invitation = _invite(served.root)
    unknown = _post(served, invite.seal_acceptance(os.urandom(32), BOB, nonce=os.urandom(24)))
    valid = _post(served, invite.seal_acceptance(invitation.secret, BOB, nonce=os.urandom(24)))
    for r in (unknown, valid):
        assert (r.status_code, r.content) == (202, b"Accepted\n")
        assert r.headers["Cache-Control"] == "no-store"
    assert {k: v for k, v in unknown.headers.items() if k != "Date"} == \
        {k: v for k, v in valid.headers.items() if k != "Date"}
    assert _until(lambda: (served.root / "keys/friends/bob.json").exists())

    def notes() -> list:  # recorded just after the friend is added: wait for it too
        with ReaderStore.open(served.root) as store:
            return store.notifications()
    assert _until(notes)
    [note] = notes()
    assert (note.kind, note.friend) == ("invitation_accepted", "bob")
    assert "theirs" in note.detail and "yours" in note.detail
    replay = _post(served, invite.seal_acceptance(invitation.secret, BOB, nonce=os.urandom(24)))
    assert replay.status_code == 202 and replay.content == b"Accepted\n"


def test_other_methods_types_and_shapes(served):
    """GET and HEAD: 405 with Allow; text/plain: 415; unknown magic or bad shape: 400."""
    url = served.url + ".well-known/o2m-inbox"
    got = requests.get(url, verify=served.verify, timeout=10)
    assert (got.status_code, got.headers["Allow"]) == (405, "POST")
    assert requests.head(url, verify=served.verify, timeout=10).status_code == 405
    good = invite.seal_acceptance(os.urandom(32), BOB, nonce=os.urandom(24))
    assert _post(served, good, headers={"Content-Type": "text/plain"}).status_code == 415
    assert _post(served, b"O2MXXXX1" + good[8:]).status_code == 400  # no such kind
    assert _post(served, b"O2MNOTE1" + good[8:100]).status_code == 400  # too short a notice
    assert _post(served, good + b"\0").status_code == 400
    assert _post(served, b"").status_code == 400


def _tls(server, port: int | None = None) -> ssl.SSLSocket:  # noqa: ANN001
    ctx = ssl.create_default_context(cafile=server.verify)
    sock = socket.create_connection(("127.0.0.1", port or server.port), timeout=10)
    return ctx.wrap_socket(sock, server_hostname="127.0.0.1")


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, ssl.SSLError):
        pass
    return b"".join(chunks)


def test_a_declared_body_over_8_kib_is_refused_at_its_headers(served):
    """Content-Length 9000: 413 as soon as the headers are in, with no 100 Continue
    asked for, and the connection closed without reading the body."""
    with _tls(served) as tls:
        tls.sendall(b"POST /.well-known/o2m-inbox HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/octet-stream\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 9000\r\n\r\n")
        answer = _answer(tls)
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"Connection: close" in answer and b"100 Continue" not in answer


def test_a_chunked_body_running_past_8_kib_is_cut(served):
    """Without a Content-Length, the body is read up to 8 KiB and refused past it."""
    with _tls(served) as tls:
        tls.sendall(b"POST /.well-known/o2m-inbox HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            tls.sendall(b"1000\r\n" + b"\0" * 4096 + b"\r\n")
        answer = _answer(tls)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_chunked_acceptance_within_the_cap_is_taken(served):
    """A chunked body of an acceptance's size is read whole: 202."""
    body = invite.seal_acceptance(os.urandom(32), BOB, nonce=os.urandom(24))
    with _tls(served) as tls:
        tls.sendall(b"POST /.well-known/o2m-inbox HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        answer = _answer(tls)
    assert answer.startswith(b"HTTP/1.1 202 Accepted\r\n")


def test_an_acceptance_flood_gets_429(tmp_path):
    """From one address, the 11th POST within a minute is 429 (default 10/min), with
    Retry-After; a normal GET is still served."""
    root = _site(tmp_path)
    with o2m_serve(root) as server:
        body = invite.seal_acceptance(os.urandom(32), BOB, nonce=os.urandom(24))
        statuses = [_post(server, body).status_code for _ in range(11)]
        assert statuses == [202] * 10 + [429]
        flooded = _post(server, body)
        assert flooded.status_code == 429 and 1 <= int(flooded.headers["Retry-After"]) <= 6
        assert requests.get(server.url, verify=server.verify, timeout=10).status_code == 200


def test_the_global_limit_is_set_in_o2m_toml(tmp_path):
    """[serve] inbox_total = 3: the 4th POST of the minute is 429, whoever sends it."""
    root = _site(tmp_path, serve="inbox_total = 3\ninbox_per_address = 50")
    with o2m_serve(root) as server:
        assert [_post(server, b"x").status_code for _ in range(4)] == [400, 400, 400, 429]


def _fds_in(pid: int, folder: Path) -> list[str]:
    """The files process `pid` holds open in `folder` (a deleted temporary file shows as
    "folder/#123 (deleted)": Twisted's TemporaryFile has no name)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def _refused_at_headers(server, head: bytes, folder: Path, port: int | None = None,  # noqa: ANN001
                        plain: bool = False) -> bytes:
    """Send a request head announcing a body, none of the body; look at the server's
    open files while it holds the connection; return its answer."""
    sock = socket.create_connection(("127.0.0.1", port or server.port), timeout=10)
    conn = sock if plain else ssl.create_default_context(cafile=server.verify).wrap_socket(
        sock, server_hostname="127.0.0.1")
    with conn:
        conn.sendall(head)
        select.select([conn], [], [], 3)  # an answer, or 3 s of waiting for the body
        assert _fds_in(server.process.pid, folder) == []
        return _answer(conn)


@pytest.mark.parametrize("tls", ["own TLS", "Twisted's TLS"])
def test_threat_51_a_body_on_get_is_refused_at_its_headers_and_nothing_is_spooled(tmp_path, tls):
    """GET and HEAD with a body, a chunked GET, a POST to a page, the inbox's POST over
    the cap, the plain-HTTP port, h2: each refused at its headers (413, or a reset h2
    stream), and the server never holds a file in its temporary folder, nor writes one
    there; it serves on as before; on either TLS transport."""
    root = _site(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    env = {"TMPDIR": str(temp), **({"O2M_SERVE_TLS": "twisted"} if tls != "own TLS" else {})}
    with o2m_serve(root, "--http-port", str(http_port), env=env) as server:
        for head in (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000000\r\n\r\n",
                     b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n",
                     b"GET /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                     b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n",
                     b"POST /.well-known/o2m-inbox HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n"):
            answer = _refused_at_headers(server, head, temp)
            assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), (head, answer)
        answer = _refused_at_headers(server, b"PUT /.well-known/o2m-inbox HTTP/1.1\r\n"
                                     b"Host: x\r\nContent-Length: 200000\r\n\r\n", temp)
        assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: POST" in answer
        plain = _refused_at_headers(server, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: 200000\r\n\r\n", temp, http_port, plain=True)
        assert plain.startswith(b"HTTP/1.1 413 ")
        _stream_a_body(server, temp)
        _h2_bodies(server, tmp_path)
        assert list(temp.iterdir()) == []
        assert requests.get(server.url, verify=server.verify, timeout=10).status_code == 200


def _stream_a_body(server, temp: Path) -> None:  # noqa: ANN001
    """A GET whose body keeps coming (as in the review: 3 GB announced): the server
    stops it, and meanwhile holds nothing in the temporary folder."""
    with _tls(server) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000000\r\n\r\n")
        stopped = threading.Event()

        def send() -> None:
            try:
                for _ in range(400):  # 25 MiB at most, if nothing stopped it
                    tls.sendall(b"\0" * 65536)
            except OSError:
                stopped.set()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(0.5)
        assert _fds_in(server.process.pid, temp) == []
        sender.join(30)
        assert stopped.is_set(), "the server read the whole body"


def _h2_bodies(server, tmp_path: Path) -> None:  # noqa: ANN001
    """Over h2 (curl): a GET with a body is refused (the stream is reset); an acceptance
    POSTed over h2 is taken."""
    if not shutil.which("curl") or "HTTP2" not in subprocess.run(
            ["curl", "--version"], capture_output=True, text=True).stdout:
        return
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 200_000)
    acceptance = tmp_path / "acceptance.bin"
    acceptance.write_bytes(invite.seal_acceptance(os.urandom(32), BOB, nonce=os.urandom(24)))

    def curl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["curl", "-sS", "--http2", "--cacert", server.verify, "-o",
                               os.devnull, "-w", "%{http_version} %{http_code}", *args],
                              capture_output=True, text=True, timeout=60)
    refused = curl("-X", "GET", "--data-binary", f"@{big}", server.url)
    assert refused.returncode != 0 or not refused.stdout.endswith(" 200"), refused
    taken = curl("--data-binary", f"@{acceptance}", "-H",
                 "Content-Type: application/octet-stream", server.url + ".well-known/o2m-inbox")
    assert taken.stdout == "2 202", taken
