"""o2m sends Webmentions (PROTOCOL.md §1.6) to a receiver written here with the
standard library (http.server and urllib, not o2m): it records each POST and checks
that the source links to the target, as any IndieWeb receiver would. A public reply
is mentioned once, again when it changes, a final time when it is deleted; `o2m mention
send`, `o2m publish` and `o2m serve --watch` send, and only once the post is live."""

from __future__ import annotations

import functools
import html.parser
import http.server
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner
from support.o2m_server import o2m_serve
from support.sites import new_site

from o2m_pub.cli import main


# ---------------------------------------------------------------- the stdlib receiver


def _links(html_text: str, base: str) -> set[str]:
    """Every href of a page, resolved (the receiver's own link check)."""
    found: set[str] = set()

    class Anchors(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN202
            for name, value in attrs:
                if name in ("href", "src") and value:
                    found.add(urllib.parse.urljoin(base, value))
    Anchors().feed(html_text)
    return found


class Receiver:
    """A Webmention receiver on https://127.0.0.1:PORT/ (a test CA's certificate):
    `/post` is a page naming its endpoint, `/webmention?key=k` the endpoint (its query
    string must come back as it is). Each POST is recorded with what the receiver found
    at the source: (source, target, query, source status, links to the target)."""

    def __init__(self, ca: trustme.CA, trust: list[Path]) -> None:
        self.received: list[tuple[str, str, str, int, bool]] = []
        self.ca, self.trust = ca, trust  # the certificates it trusts when it fetches
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = b'<html><head><link rel="webmention" href="/webmention?key=k"></head>' \
                       b'<body><p>Carol\'s post</p></body></html>'
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["Content-Length"])
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                source, target = form["source"][0], form["target"][0]
                context = ssl.create_default_context()
                for trusted in receiver.trust:
                    context.load_verify_locations(cafile=str(trusted))
                try:
                    with urllib.request.urlopen(source, timeout=10, context=context) as page:
                        status, text = page.status, page.read().decode()
                except urllib.error.HTTPError as e:
                    status, text = e.code, ""
                receiver.received.append((source, target, self.path.partition("?")[2], status,
                                          target in _links(text, source)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.post_url = f"https://127.0.0.1:{self.server.server_address[1]}/post"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """The stdlib receiver, and o2m trusting its CA ($O2M_CA_BUNDLE)."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("O2M_CA_BUNDLE", str(bundle))
    r = Receiver(ca, [bundle])
    r.bundle = bundle
    yield r
    r.close()


@contextmanager
def static_site(folder: Path, ca: trustme.CA):
    """A static file server (the stdlib's, over TLS with a certificate of `ca`)
    serving `folder`: where the sender's site is live. Yields its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def o2m(root: Path, *args: str):  # noqa: ANN201 - click Result
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert 0 == result.exit_code, result.output
    return result


def make_site(tmp_path: Path, url: str, extra: str = "") -> Path:
    root = new_site(tmp_path, "bob", url)
    if extra:
        text = (root / "o2m.toml").read_text()
        (root / "o2m.toml").write_text(text.replace("[site]\n", "[site]\n" + extra + "\n", 1))
    return root


def reply(root: Path, target: str, body: str = "I agree.", name: str = "re") -> None:
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    (root / f"content/2026/{name}.md").write_text(
        f"---\ntitle: Re\ndate: 2026-11-05\naudience: public\nreply_to: {target}\n---\n{body}\n")


# ---------------------------------------------------------------- the tests


def test_a_reply_is_mentioned_once_again_when_changed_and_finally_when_deleted(
        tmp_path, receiver):
    """o2m -> the stdlib receiver: the POST carries the reply's URL and the target (to
    the endpoint with its query string kept) and the receiver finds the link; sending
    again sends nothing; an edit resends; a deletion sends a final mention whose source
    is a 404."""
    with static_site(tmp_path / "bob" / "build", receiver.ca) as url:
        root = make_site(tmp_path, url)
        reply(root, receiver.post_url)
        o2m(root, "build")
        dry = o2m(root, "mention", "send", "--dry-run").output
        assert f"would send (new): {url}2026/re/ -> {receiver.post_url}" in dry
        assert [] == receiver.received
        out = o2m(root, "mention", "send").output
        assert f"sent: {url}2026/re/ -> {receiver.post_url} (HTTP 202)" in out
        source = url + "2026/re/"
        assert [(source, receiver.post_url, "key=k", 200, True)] == receiver.received
        o2m(root, "mention", "send")
        assert 1 == len(receiver.received)  # unchanged: not mentioned again
        reply(root, receiver.post_url, body="I agree, and more.")
        o2m(root, "build")
        o2m(root, "mention", "send")
        assert (source, 200, True) == (receiver.received[1][0], *receiver.received[1][3:])
        (root / "content/2026/re.md").unlink()
        o2m(root, "build")
        out = o2m(root, "mention", "send").output
        assert "deleted: " in out
        assert (source, receiver.post_url, "key=k", 404, False) == receiver.received[2]
        o2m(root, "mention", "send")
        assert 3 == len(receiver.received)
        listed = o2m(root, "mention", "list", "--sent").output
        assert f"deleted      /2026/re/ -> {receiver.post_url}" in listed


def test_nothing_is_sent_before_the_post_is_live(tmp_path, receiver):
    """Built but not yet served: the sender reads its own page first, finds it missing,
    and keeps the mention due; once the page is there, it goes out."""
    live = tmp_path / "www"
    with static_site(live, receiver.ca) as url:
        root = make_site(tmp_path, url)
        reply(root, receiver.post_url)
        o2m(root, "build")
        out = o2m(root, "mention", "send").output
        assert "not sent: " in out and "not live yet (HTTP 404)" in out
        assert [] == receiver.received
        o2m(root, "publish", str(live))  # the upload, then the mentions due
        assert [(url + "2026/re/", receiver.post_url, "key=k", 200, True)] == receiver.received


def test_links_are_mentioned_only_when_the_site_asks(tmp_path, receiver):
    """A post that only links to the receiver's page: no mention by default; with
    `webmention_links = true`, one, like a reply's."""
    with static_site(tmp_path / "bob" / "build", receiver.ca) as url:
        root = make_site(tmp_path, url)
        (root / "content/2026").mkdir(parents=True, exist_ok=True)
        (root / "content/2026/note.md").write_text(
            "---\ntitle: Note\ndate: 2026-11-05\naudience: public\n---\n"
            f"See [Carol's post]({receiver.post_url}).\n")
        o2m(root, "build")
        o2m(root, "mention", "send")
        assert [] == receiver.received
        text = (root / "o2m.toml").read_text()
        (root / "o2m.toml").write_text(text.replace("[site]\n",
                                                    "[site]\nwebmention_links = true\n"))
        o2m(root, "build")
        o2m(root, "mention", "send")
        assert [(url + "2026/note/", receiver.post_url, "key=k", 200, True)] == receiver.received


def test_serve_watch_sends_after_the_build_that_publishes_the_reply(tmp_path, receiver):
    """`o2m serve --watch`: a reply saved while serving is built, served, then
    mentioned, with nothing typed (the receiver fetches it from o2m serve itself)."""
    from support.hosts import free_port

    port = free_port()
    url = f"https://127.0.0.1:{port}/"
    root = make_site(tmp_path, url)
    o2m(root, "build")
    own_cert = root / "keys" / "tls" / "cert.pem"
    bundle = tmp_path / "both.pem"  # the receiver's CA and the server's own certificate
    with o2m_serve(root, "--port", str(port), "--watch",
                   env={"O2M_CA_BUNDLE": str(bundle)}) as server:
        bundle.write_bytes(receiver.bundle.read_bytes() + own_cert.read_bytes())
        receiver.trust.append(own_cert)  # the receiver fetches the reply from o2m serve
        reply(root, receiver.post_url)
        end = time.monotonic() + 40
        while not receiver.received and time.monotonic() < end:
            time.sleep(0.2)
        server.stop()
        assert [(url + "2026/re/", receiver.post_url, "key=k", 200, True)] == \
            receiver.received, server.output()

