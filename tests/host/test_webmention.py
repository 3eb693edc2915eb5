"""`o2m serve`'s Webmention endpoint, ``POST /.well-known/webmention`` (PROTOCOL.md §1.6;
W3C Webmention §3.2): the synchronous checks as pure rules, the inbox's machinery
(body cap at the headers, token buckets) shared with it, and a real server answering
bad input; then a stdlib sender's mention verified, approved and built onto the page,
and one whose source does not link refused with nothing shown."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.o2m_server import o2m_serve
from support.sites import new_site

from o2m_pub.cli import main
from o2m_pub.host import inbox
from o2m_pub.host.webmention import WebmentionReceiver, check_request

FORM = b"application/x-www-form-urlencoded"
SITE = "https://ada.example/"


def _posts(url: str) -> str | None:
    return "2026/trip/" if url.rstrip("/") == SITE + "2026/trip" else None


def form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


# ---------------------------------------------------------------- the rules (pure)


@pytest.mark.parametrize("method, length, expected", [
    (b"POST", 300, 4096), (b"POST", 4096, 4096), (b"POST", None, 4096), (b"POST", 0, 4096),
    (b"POST", 4097, inbox.Refuse(413)), (b"GET", 10, inbox.Refuse(405)), (b"GET", 0, 0),
])
def test_the_endpoint_takes_a_body_of_at_most_4_kib(method, length, expected):
    """The inbox's body rule, with the endpoint's own cap: more is refused at the
    headers (413), a body on another method too (405)."""
    assert expected == inbox.body_rule(method, b"/.well-known/webmention", length)


@pytest.mark.parametrize("content_type, body, expected", [
    (b"text/plain", form(source="https://b.example/r", target=SITE + "2026/trip/"), 415),
    (FORM, b"", 400),
    (FORM, form(source="https://b.example/r"), 400),
    (FORM, b"source=https://b.example/r&source=https://c.example/&target=" + SITE.encode(), 400),
    (FORM, form(source="b.example/r", target=SITE + "2026/trip/"), 400),
    (FORM, form(source="javascript:alert(1)", target=SITE + "2026/trip/"), 400),
    (FORM, form(source="https://b.example/r r", target=SITE + "2026/trip/"), 400),
    (FORM, form(source="https://b.example/" + "x" * 2100, target=SITE + "2026/trip/"), 400),
    (FORM, form(source=SITE + "2026/trip/", target=SITE + "2026/trip/"), 400),  # same
    (FORM, form(source=SITE + "2026/trip/#x", target=SITE + "2026/trip/"), 400),  # same page
    (FORM, form(source="https://b.example/r", target=SITE + "2026/secret/"), 400),
    (FORM, form(source="https://b.example/r", target="https://other.example/2026/trip/"), 400),
    (FORM, b"\xff\xfe", 400),
    (FORM + b"; charset=utf-8", form(source="https://b.example/r", target=SITE + "2026/trip/"),
     202),
    (FORM, form(source="http://b.example/r", target=SITE + "2026/trip"), 202),
])
def test_the_synchronous_checks_are_the_specs(content_type, body, expected):
    """Webmention §3.2.1: a form with one source and one target, http(s) URLs, not the
    same, the target a public post of this site; 400 otherwise (415 for another type)."""
    assert expected == check_request(content_type, body, _posts)[0]


def _box(received: list, per_address: int = 10) -> inbox.Inbox:
    return inbox.Inbox({}, per_address=per_address, total=100, clock=lambda: 0.0,
                       later=lambda run: run(), on_error=received.append,
                       webmention=WebmentionReceiver(_posts, lambda *a: received.append(a)),
                       background=lambda run: run())


def test_202_comes_first_and_the_mention_is_handled_after_it():
    """The handler runs only once the answer is sent (in the background), with the
    source, the target as sent and the post's path."""
    received: list = []
    box = _box(received)
    status, _, text, run = box.answer_webmention(
        b"POST", "a", FORM, form(source="https://b.example/r", target=SITE + "2026/trip"))
    assert (202, b"Accepted\n", []) == (status, text, received)
    run()
    assert [("https://b.example/r", SITE + "2026/trip", "2026/trip/")] == received


def test_a_flood_gets_429_and_does_not_touch_the_inbox_s_own_limit():
    """Every POST takes a token, malformed ones too; past the rate, 429 with
    Retry-After. The inbox's buckets are separate: acceptances still get in."""
    box = _box([], per_address=3)
    statuses = [box.answer_webmention(b"POST", "a", FORM, b"")[0] for _ in range(4)]
    assert [400, 400, 400, 429] == statuses
    assert {b"retry-after": b"20"} == box.answer_webmention(b"POST", "a", FORM, b"")[1]
    assert 400 == box.answer(b"POST", "a", b"application/octet-stream", b"x" * 16)[0]


def test_get_is_405_and_a_server_without_the_endpoint_says_404():
    """The endpoint is POST only; `webmention = false` means no endpoint at all."""
    assert 405 == _box([]).answer_webmention(b"GET", "a", None, b"")[0]
    box = inbox.Inbox({}, per_address=1, total=1, clock=lambda: 0.0, later=lambda r: r(),
                      on_error=print)
    assert 404 == box.answer_webmention(b"POST", "a", FORM, b"")[0]


# ---------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_site(tmp_path: Path, *, serve: str = "") -> tuple[Path, str]:
    """Ada's site at https://127.0.0.1:PORT/ (PORT free now, served later with
    `--port PORT`): a public post and one for friends, built."""
    port = free_port()
    url = f"https://127.0.0.1:{port}/"
    root = new_site(tmp_path, "ada", url)
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    (root / "content/2026/trip.md").write_text(
        "---\ntitle: Trip\ndate: 2026-11-01\naudience: public\n---\nWe went.\n")
    (root / "content/2026/secret.md").write_text(
        "---\ntitle: Secret\ndate: 2026-11-02\naudience: friends\n---\nShh.\n")
    if serve:
        with open(root / "o2m.toml", "a") as f:
            f.write(f"\n[serve]\n{serve}\n")
    o2m(root, "build")
    return root, url


def o2m(root: Path, *args: str):  # noqa: ANN201 - click Result
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert 0 == result.exit_code, result.output
    return result


def post(server, fields: dict[str, str]) -> tuple[int, str]:  # noqa: ANN001
    """A stdlib POST of a form to the server's endpoint: (status, body)."""
    context = ssl.create_default_context(cafile=server.verify)
    request = urllib.request.Request(server.url + ".well-known/webmention",
                                     data=urllib.parse.urlencode(fields).encode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@contextmanager
def static_pages(pages: dict[str, str]):
    """A stdlib HTTP server on 127.0.0.1 serving `pages` (path -> HTML): the replier's
    site. Yields its base URL."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            data = (body or "not found").encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(root: Path, status: str, deadline: float = 30) -> str:
    """`o2m mention list --all` once some mention has left "verifying" for `status`."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        listed = o2m(root, "mention", "list", "--all").output
        if f"  {status} " in listed:
            return listed
        time.sleep(0.2)
    raise AssertionError(f"no mention became {status}: {listed}")


def test_bad_requests_are_refused_at_the_endpoint(tmp_path):
    """A real `o2m serve`: source == target, a friends-only post, another site's page
    and a missing field are each 400, with a one-line reason; GET is 405."""
    root, url = make_site(tmp_path)
    port = url.rsplit(":", 1)[1].strip("/")
    with o2m_serve(root, "--port", port) as server:
        trip = url + "2026/trip/"
        assert (400, "Source and target are the same\n") == post(server, {"source": trip,
                                                                          "target": trip})
        assert (400, "The target is not a public post of this site\n") == post(
            server, {"source": "https://b.example/r", "target": url + "2026/secret/"})
        assert 400 == post(server, {"source": "https://b.example/r",
                                    "target": "https://elsewhere.example/2026/trip/"})[0]
        assert 400 == post(server, {"target": trip})[0]
        context = ssl.create_default_context(cafile=server.verify)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + ".well-known/webmention", context=context, timeout=10)
        assert 405 == e.value.code


def test_a_flood_gets_429(tmp_path):
    """[serve] inbox_per_address = 3 (the endpoint shares the inbox's rates): the
    fourth POST of the minute from one address is 429, with Retry-After."""
    root, url = make_site(tmp_path, serve="inbox_per_address = 3")
    with o2m_serve(root, "--port", url.rsplit(":", 1)[1].strip("/")) as server:
        fields = {"source": "https://b.example/r", "target": url + "2026/nothing/"}
        assert [400, 400, 400, 429] == [post(server, fields)[0] for _ in range(4)]


def test_a_body_over_the_cap_is_refused_at_its_headers(tmp_path):
    """Content-Length 5000 (over 4 KiB): 413 before a byte of the body is sent, and the
    connection closed."""
    root, url = make_site(tmp_path)
    with o2m_serve(root, "--port", url.rsplit(":", 1)[1].strip("/")) as server:
        context = ssl.create_default_context(cafile=server.verify)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"POST /.well-known/webmention HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 5000\r\n\r\n")
            answer = b""
            try:
                while chunk := tls.recv(65536):
                    answer += chunk
            except (ConnectionResetError, ssl.SSLError):
                pass
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"Connection: close" in answer


def test_a_source_that_does_not_link_is_refused_and_nothing_is_shown(tmp_path):
    """Bad input: the sender gets its 202 (verification comes after), then the source
    is found not to link to the target: refused "no link", not approvable, and the
    post's page shows nothing after a build."""
    root, url = make_site(tmp_path)
    with static_pages({"/r": '<div class="h-entry"><p class="p-author h-card">Mal</p>'
                             f'<p>{url}2026/trip/ is not a link</p></div>'}) as base, \
            o2m_serve(root, "--port", url.rsplit(":", 1)[1].strip("/")) as server:
        assert 202 == post(server, {"source": f"{base}/r", "target": url + "2026/trip/"})[0]
        listed = wait_for(root, "refused")
    assert f"{base}/r -> /2026/trip/  [no link]" in listed
    result = CliRunner().invoke(main, ["-C", str(root), "mention", "approve", "1"])
    assert 1 == result.exit_code and "only a verified mention" in result.output
    o2m(root, "build")
    page = (root / "build/2026/trip/index.html").read_text()
    assert "Mal" not in page and 'class="mentions"' not in page


# ---------------------------------------------------------------- a stdlib sender


def stdlib_discover(url: str, context: ssl.SSLContext) -> str:
    """A minimal Webmention sender's discovery, written here with urllib and
    html.parser (not o2m's code): the Link header, else the first <link>/<a>."""
    import html.parser

    with urllib.request.urlopen(url, context=context, timeout=10) as answer:
        final, links = answer.geturl(), answer.headers.get_all("Link") or []
        body = answer.read().decode("utf-8", "replace")
    for link in links:
        for part in link.split(","):
            target, _, params = part.partition(";")
            if "webmention" in params:
                return urllib.parse.urljoin(final, target.strip(" <>"))
    found: list[str] = []

    class Finder(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN202
            a = dict(attrs)
            if tag in ("link", "a") and "webmention" in (a.get("rel") or "").split() \
                    and a.get("href") is not None and not found:
                found.append(a["href"])
    Finder().feed(body)
    return urllib.parse.urljoin(final, found[0])


def test_a_stdlib_sender_s_reply_is_verified_approved_and_built_onto_the_page(tmp_path):
    """Interoperability: a sender written with the standard library (not o2m) discovers
    the endpoint from the post's page and POSTs a form; o2m serve verifies the reply
    (its source on a plain-http site), `o2m mention list` shows it pending with author
    and kind, `o2m mention approve` and a build put it on the page. Then the replier
    removes the link and sends again: the mention is refused and the next build takes
    it off the page, approved as it was."""
    root, url = make_site(tmp_path)
    target = url + "2026/trip/"
    reply = (f'<article class="h-entry"><p class="p-author h-card"><a class="p-name u-url" '
             f'href="/">Bob</a></p><a class="u-in-reply-to" href="{target}">Ada\'s trip</a>'
             '<div class="e-content">Lovely photos!</div>'
             '<time class="dt-published" datetime="2026-11-03T10:00:00+00:00">3 Nov</time>'
             '</article>')
    pages = {"/2026/re": reply}
    with static_pages(pages) as base, \
            o2m_serve(root, "--port", url.rsplit(":", 1)[1].strip("/")) as server:
        context = ssl.create_default_context(cafile=server.verify)
        endpoint = stdlib_discover(target, context)
        assert url + ".well-known/webmention" == endpoint
        data = urllib.parse.urlencode({"source": f"{base}/2026/re", "target": target}).encode()

        def send() -> int:
            with urllib.request.urlopen(urllib.request.Request(endpoint, data=data),
                                        context=context, timeout=10) as answer:
                return answer.status
        assert 202 == send()
        listed = wait_for(root, "pending")
        assert "   1  pending    reply     " in listed and f"Bob <{base}/>" in listed
        assert f"{base}/2026/re -> /2026/trip/" in listed
        o2m(root, "mention", "approve", "1")
        o2m(root, "build")
        page = (root / "build/2026/trip/index.html").read_text()
        assert (f'<a class="u-url" href="{base}/2026/re" rel="nofollow ugc"><span '
                'class="p-author">Bob</span></a> replied') in page
        assert "Lovely photos" not in page  # no content copied

        pages["/2026/re"] = reply.replace(f'href="{target}"', 'href="/elsewhere"')
        assert 202 == send()
        assert "[no link]" in wait_for(root, "refused")
        o2m(root, "build")
        assert 'class="mentions"' not in (root / "build/2026/trip/index.html").read_text()
