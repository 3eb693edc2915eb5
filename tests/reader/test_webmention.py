"""Webmention's network half (PROTOCOL.md §1.6; W3C Webmention): endpoint discovery
in every form the spec allows, what a source links to, the microformats read from it,
the rule on local addresses, and the caps on what is downloaded. The pure parts
directly; the I/O against real HTTP servers on 127.0.0.1 (and, for the address rule,
on this machine's own non-loopback address)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import parse_qs

import pytest

from o2m_pub.reader import webmention as wm
from o2m_pub.reader.public_web import Caps, WebPage, Reach, WebRefused, reach_of, request

TARGET = "https://ada.example/2026/trip/"


def page(body: str = "", *, url: str = "https://ada.example/2026/trip/", link: list[str] = (),
         content_type: str = "text/html; charset=utf-8") -> WebPage:
    """A fetched page as `public_web.request` returns it."""
    headers = {"content-type": [content_type]}
    if link:
        headers["link"] = list(link)
    return WebPage(url, 200, headers, body.encode())


# ---------------------------------------------------------------- discovery (pure)


@pytest.mark.parametrize("links, body, expected", [
    # the Link header, absolute and relative (webmention.rocks 1, 2)
    (['<https://e.example/wm>; rel="webmention"'], "", "https://e.example/wm"),
    (['</wm>; rel="webmention"'], "", "https://ada.example/wm"),
    (['<wm>; rel=webmention'], "", "https://ada.example/2026/trip/wm"),  # unquoted, relative path
    # a rel with several values (17), several links in one header and in several (18)
    (['</wm>; rel="other webmention"'], "", "https://ada.example/wm"),
    (['</a>; rel="other", </wm>; rel="webmention"'], "", "https://ada.example/wm"),
    (['</a>; rel="other"', '</wm>; rel="webmention"'], "", "https://ada.example/wm"),
    (['</a>; title="a, b"; rel="other", </wm>; rel=webmention'], "", "https://ada.example/wm"),
    # the header wins over the document
    (['</header>; rel="webmention"'], '<link rel="webmention" href="/doc">',
     "https://ada.example/header"),
    # <link> and <a>, the first in document order (3-6, 16)
    ([], '<link rel="webmention" href="/l">', "https://ada.example/l"),
    ([], '<a rel="webmention" href="/a">x</a>', "https://ada.example/a"),
    ([], '<a rel="webmention" href="/a">x</a><link rel="webmention" href="/l">',
     "https://ada.example/a"),
    ([], '<link rel="webmention" href="/l"><a rel="webmention" href="/a">x</a>',
     "https://ada.example/l"),
    ([], '<LINK REL="Webmention" HREF="/upper">', "https://ada.example/upper"),
    # query strings kept (21), an empty href is the target itself (15)
    ([], '<link rel="webmention" href="/wm?version=1&amp;a=b">',
     "https://ada.example/wm?version=1&a=b"),
    (['</wm?x=1>; rel="webmention"'], "", "https://ada.example/wm?x=1"),
    ([], '<link rel="webmention" href="">', TARGET),
    # not endpoints: a comment (13), escaped text (14), rel="not-webmention" (12), a
    # <link> without href (20), another rel
    ([], '<!-- <link rel="webmention" href="/c"> --><link rel="webmention" href="/ok">',
     "https://ada.example/ok"),
    ([], '<code>&lt;a rel="webmention" href="/e"&gt;</code><a rel="webmention" href="/ok">x</a>',
     "https://ada.example/ok"),
    ([], '<a rel="not-webmention" href="/n">x</a><a rel="webmention" href="/ok">x</a>',
     "https://ada.example/ok"),
    ([], '<link rel="webmention"><link rel="webmention" href="/ok">', "https://ada.example/ok"),
    ([], '<link rel="stylesheet" href="/s.css">', None),
    ([], "", None),
])
def test_discovery_follows_the_spec_order_and_resolves_relative_endpoints(links, body, expected):
    """Webmention §3.1.2: the first Link header with rel webmention, else the first
    <link> or <a> in document order; relative URLs resolved against the target's URL,
    query strings kept, an empty href the target itself; comments, escaped markup and
    other rels never count."""
    assert expected == wm.discover_in(page(body, link=links))


def test_a_relative_endpoint_resolves_against_the_final_url_after_redirects():
    """The page's URL after redirects is the base (webmention.rocks 23)."""
    fetched = page('<link rel="webmention" href="wm">', url="https://other.example/moved/here")
    assert "https://other.example/moved/wm" == wm.discover_in(fetched)


def test_a_document_that_is_not_html_is_not_searched_and_only_http_endpoints_count():
    """An HTML-looking body served as text/plain names no endpoint (only the Link
    header counts there); a javascript: or mailto: endpoint is none."""
    assert None is wm.discover_in(page('<link rel="webmention" href="/wm">',
                                       content_type="text/plain"))
    assert None is wm.discover_in(page('<link rel="webmention" href="javascript:alert(1)">'))
    assert None is wm.discover_in(page("", link=['<mailto:a@b>; rel="webmention"']))


# ---------------------------------------------------------------- what a source links to (pure)


@pytest.mark.parametrize("body, expected", [
    (f'<a href="{TARGET}">x</a>', True),
    ('<a href="/2026/trip/">x</a>', True),  # relative, resolved against the source's URL
    ('<img src="../2026/trip/">', True),
    ('<base href="https://ada.example/2026/"><a href="trip/">x</a>', True),
    (f'<blockquote cite="{TARGET}">q</blockquote>', True),
    (f'<p>{TARGET}</p>', False),  # text is not a link in HTML
    (f'<!-- <a href="{TARGET}"> -->', False),
    (f'<a href="{TARGET}x">x</a>', False),  # exactly the target
    ('<a href="https://ada.example/2026/trip">x</a>', False),
    (f'<a data-x="{TARGET}">x</a>', False),
])
def test_a_source_links_to_the_target_only_through_an_attribute_equal_to_it(body, expected):
    """Webmention §3.2.2: an href or src (or cite, data, poster) equal to the target
    once resolved against the source's own URL (or its <base>): anything else is no
    link."""
    fetched = page(body, url="https://ada.example/other/")
    assert expected == (TARGET in wm.links_in(fetched))


def test_plain_text_and_json_sources_link_by_writing_the_url_out():
    """A text/plain source links by containing the URL; a JSON one by a string equal
    to it; an image cannot link at all."""
    assert TARGET in wm.links_in(page(f"see {TARGET} here", content_type="text/plain"))
    assert TARGET in wm.links_in(page(f'{{"in-reply-to": "{TARGET}"}}',
                                      content_type="application/json"))
    assert None is wm.links_in(page("GIF89a", content_type="image/gif"))


# ---------------------------------------------------------------- microformats


def test_the_kind_and_the_author_come_from_the_microformats():
    """mf2py parses the source and mf2util classifies it (in a child process): a reply
    with its author's name, URL and photo, its date and a short summary."""
    html = (f'<article class="h-entry"><a class="u-in-reply-to" href="{TARGET}">re</a>'
            '<p class="p-author h-card"><a class="u-url p-name" href="https://bob.example/">Bob'
            '</a><img class="u-photo" src="/me.png" alt=""></p>'
            '<div class="e-content">Nice trip!</div>'
            '<time class="dt-published" datetime="2026-12-01T10:00:00Z">1 Dec</time></article>')
    facts = wm.read_mf2(html, "https://bob.example/2026/re/", TARGET)
    assert wm.MentionFacts(kind="reply", author_name="Bob", author_url="https://bob.example/",
                           author_photo="https://bob.example/me.png", summary="Nice trip!",
                           published="2026-12-01T10:00:00Z") == facts


def test_a_like_and_a_plain_mention_are_told_apart():
    """u-like-of makes a like; a page that only links is a mention; a page that makes
    the parser give up (deep nesting) is a mention with no author, not an error."""
    like = f'<div class="h-entry"><a class="u-like-of" href="{TARGET}">♥</a></div>'
    assert "like" == wm.read_mf2(like, "https://bob.example/l/", TARGET).kind
    plain = f'<p>Read <a href="{TARGET}">this</a></p>'
    assert wm.MentionFacts() == wm.read_mf2(plain, "https://bob.example/m/", TARGET)
    deep = "<div>" * 20000 + f'<a href="{TARGET}">x</a>' + "</div>" * 20000
    assert wm.MentionFacts() == wm.read_mf2(deep, "https://bob.example/d/", TARGET)


def test_facts_are_cleaned_and_bounded():
    """A name is one line of at most 100 characters; a javascript: URL is dropped."""
    facts = wm.facts_from_mf2({"comment_type": ["reply"], "author": {
        "name": "Mallory\n\u202e" + "x" * 300, "url": "javascript:alert(1)",
        "photo": "https://m.example/p.png"}})
    assert 100 == len(facts.author_name) and facts.author_name.startswith("Mallory ")
    assert "" == facts.author_url
    assert "reply" == facts.kind


# ---------------------------------------------------------------- reach (pure)


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", Reach.LOOPBACK), ("127.8.9.1", Reach.LOOPBACK), ("::1", Reach.LOOPBACK),
    ("0.0.0.0", Reach.LOOPBACK), ("::ffff:127.0.0.1", Reach.LOOPBACK),
    ("10.1.2.3", Reach.PRIVATE), ("192.168.1.1", Reach.PRIVATE), ("172.16.0.1", Reach.PRIVATE),
    ("169.254.169.254", Reach.PRIVATE), ("100.64.0.1", Reach.PRIVATE),
    ("fd00::2", Reach.PRIVATE), ("fe80::1%eth0", Reach.PRIVATE), ("192.0.2.2", Reach.PRIVATE),
    ("::ffff:10.0.0.1", Reach.PRIVATE),
    ("93.184.216.34", Reach.PUBLIC), ("2606:4700::1111", Reach.PUBLIC),
])
def test_every_address_has_a_reach(address, expected):
    """Loopback, private (RFC 1918, link-local with cloud metadata, CGNAT, unique-local,
    documentation ranges) or public; IPv4-mapped IPv6 as its IPv4."""
    assert expected == reach_of(address)


def test_a_request_never_goes_nearer_than_its_floor():
    """Webmention §4 (server-side request forgery): with a public floor, a URL whose
    host is a loopback or private address is refused before connecting."""
    for url in ("http://127.0.0.1:9/", "http://[::1]:9/", "http://169.254.169.254/latest/"):
        with pytest.raises(WebRefused) as e:
            request(url, floor=Reach.PUBLIC)
        assert "private address" == e.value.reason


# ---------------------------------------------------------------- real servers


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes of the test server: `routes[path] = (status, headers, body)`, or a
    callable `(handler) -> None` that answers itself; POSTs are recorded."""

    routes: dict = {}
    posts: list = []

    def do_GET(self) -> None:  # noqa: N802
        route = self.routes.get(self.path.split("?")[0], (404, {}, b"no"))
        if callable(route):
            route(self)
            return
        status, headers, body = route
        self.send_response(status)
        for name, value in headers.items():
            for v in value if isinstance(value, list) else [value]:
                self.send_header(name, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        self.posts.append((self.path, self.headers.get("Content-Type"),
                           parse_qs(self.rfile.read(length).decode())))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def web_server(address: str = "127.0.0.1"):
    """A threaded HTTP server on `address`, port 0, with its own routes: yields
    (base URL, routes, posts)."""
    handler = type("H", (_Handler,), {"routes": {}, "posts": []})
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}", handler.routes, handler.posts
    finally:
        server.shutdown()
        server.server_close()


HTML = {"Content-Type": "text/html; charset=utf-8"}


@pytest.mark.parametrize("where", ["header", "link", "a", "relative", "query", "empty",
                                   "redirect"])
def test_send_discovers_each_form_of_endpoint_and_posts_the_form(where):
    """o2m's sender against a real server for each discovery variant: the POST carries
    exactly source and target as a form, to the endpoint with its own query string kept
    (not moved into the body); a target that redirects is resolved from where it ends."""
    with web_server() as (base, routes, posts):
        target = f"{base}/post"
        endpoint_path = {"header": "/wm-h", "link": "/wm-l", "a": "/wm-a",
                         "relative": "/dir/wm-r", "query": "/wm-q", "empty": "/post",
                         "redirect": "/moved/wm"}[where]
        page_headers, body = dict(HTML), b"<p>a post</p>"
        if where == "header":
            page_headers["Link"] = [f'<{base}/other>; rel="other"', '</wm-h>; rel="webmention"']
        elif where == "link":
            body = (b'<head><link rel="webmention" href="/wm-l"></head>'
                    b'<a rel="webmention" href="/x">')
        elif where == "a":
            body = b'<p><a href="/nope">n</a> <a rel="webmention" href="/wm-a">send</a></p>'
        elif where == "relative":
            target = f"{base}/dir/post"
            body = b'<link rel="webmention" href="wm-r">'
        elif where == "query":
            body = b'<link rel="webmention" href="/wm-q?token=1&amp;v=2">'
        elif where == "empty":
            body = b'<link rel="webmention" href="">'
        elif where == "redirect":
            routes["/post"] = (301, {"Location": "/moved/here"}, b"")
            routes["/moved/here"] = (200, HTML, b'<link rel="webmention" href="wm">')
        routes.setdefault(target[len(base):], (200, page_headers, body))
        delivery = wm.send("http://source.example/reply", target)
        assert ("sent", f"{base}{endpoint_path}" + ("?token=1&v=2" if where == "query" else "")
                ) == (delivery.outcome, delivery.endpoint)
        path, content_type, form = posts[0]
        assert endpoint_path + ("?token=1&v=2" if where == "query" else "") == path
        assert "application/x-www-form-urlencoded" == content_type
        assert {"source": ["http://source.example/reply"], "target": [target]} == form


def test_a_target_with_no_endpoint_gets_nothing():
    """No Link header, no <link> or <a>: "no endpoint", and nothing is posted."""
    with web_server() as (base, routes, posts):
        routes["/post"] = (200, HTML, b"<p>plain</p>")
        assert "no endpoint" == wm.send("http://s.example/r", f"{base}/post").outcome
        assert [] == posts


def _own_address() -> str | None:
    """This machine's address on its default route, if it has one that is not loopback
    (no packet is sent: a UDP socket only picks its source address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if reach_of(address) == Reach.LOOPBACK else address


def test_an_endpoint_nearer_than_its_target_is_not_sent_to():
    """A target on this machine's network address whose endpoint is on 127.0.0.1 (as a
    public page naming an endpoint on a private address would): "refused", and the
    loopback server never sees the POST. The same endpoint for a target on loopback
    itself is fine (the rule is "no nearer than the target")."""
    own = _own_address()
    if own is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with web_server("127.0.0.1") as (local, local_routes, local_posts), \
            web_server(own) as (base, routes, _):
        routes["/post"] = (200, HTML, f'<link rel="webmention" href="{local}/wm">'.encode())
        delivery = wm.send("http://s.example/r", f"{base}/post")
        assert "refused" == delivery.outcome and "127.0.0.1" in delivery.detail
        assert [] == local_posts
        local_routes["/post"] = (200, HTML, b'<link rel="webmention" href="/wm">')
        assert "sent" == wm.send("http://s.example/r", f"{local}/post").outcome
        assert 1 == len(local_posts)


def test_a_redirect_to_a_nearer_address_is_not_followed():
    """A page on this machine's network address that redirects to 127.0.0.1 is refused
    at the redirect: each hop is held to the first one's reach."""
    own = _own_address()
    if own is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with web_server("127.0.0.1") as (local, local_routes, _), \
            web_server(own) as (base, routes, _):
        local_routes["/secret"] = (200, HTML, b"internal")
        routes["/post"] = (302, {"Location": f"{local}/secret"}, b"")
        with pytest.raises(WebRefused) as e:
            request(f"{base}/post", floor=Reach.PRIVATE)
        assert "private address" == e.value.reason


# ---------------------------------------------------------------- verification


def test_verify_reads_a_reply_and_its_author():
    """A source that links to the target, with microformats: verified, a reply by Bob."""
    with web_server() as (base, routes, _):
        target = "https://ada.example/2026/trip/"
        routes["/re"] = (200, HTML, (
            f'<article class="h-entry"><a class="u-in-reply-to" href="{target}">re</a>'
            '<span class="p-author h-card"><a class="p-name u-url" href="/">Bob</a></span>'
            '<p class="e-content">Lovely.</p></article>').encode())
        result = wm.verify(f"{base}/re", target, floor=Reach.LOOPBACK)
        assert ("verified", "reply", "Bob", f"{base}/") == (
            result.outcome, result.facts.kind, result.facts.author_name, result.facts.author_url)


def test_verify_refuses_a_source_that_does_not_link_to_the_target():
    """Bad input: the source mentions the target in text only: "no link"."""
    with web_server() as (base, routes, _):
        routes["/re"] = (200, HTML, b"<p>https://ada.example/2026/trip/ is nice</p>")
        result = wm.verify(f"{base}/re", "https://ada.example/2026/trip/", floor=Reach.LOOPBACK)
        assert ("no link", "no link") == (result.outcome, result.reason)


def test_verify_says_gone_for_404_and_410():
    """A deleted source (410, or 404) is "gone": the stored mention is taken down."""
    with web_server() as (base, routes, _):
        routes["/gone"] = (410, HTML, b"gone")
        assert "gone" == wm.verify(f"{base}/gone", TARGET, floor=Reach.LOOPBACK).outcome
        assert "gone" == wm.verify(f"{base}/never", TARGET, floor=Reach.LOOPBACK).outcome


def _endless(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A chunked body that never ends (no Content-Length to refuse it by)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"<p>" + b"x" * 65000 + b"</p>"
    try:
        for _ in range(100):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Headers at once, then a byte every 0.2 s (each read in time, the whole never)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(1000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def test_a_huge_source_is_cut_at_the_cap_and_refused():
    """Bad input: a source over 1 MiB, announced by its Content-Length (refused unread)
    or streamed without one (cut one byte past the cap): refused "too large"."""
    with web_server() as (base, routes, _):
        routes["/big"] = (200, HTML, b"<p>" + b"x" * ((1 << 20) + 10))
        routes["/endless"] = _endless
        for path in ("/big", "/endless"):
            result = wm.verify(f"{base}{path}", TARGET, floor=Reach.LOOPBACK)
            assert ("refused", "too large") == (result.outcome, result.reason)


def test_a_slow_source_is_cut_at_the_deadline_and_refused():
    """Bad input: a source that trickles its body is cut when the wall-clock deadline
    passes, though every single read comes in time: refused "timeout"."""
    with web_server() as (base, routes, _):
        routes["/slow"] = _trickle
        caps = Caps(max_bytes=1 << 20, deadline=1.0, step_timeout=10.0)
        result = wm.verify(f"{base}/slow", TARGET, floor=Reach.LOOPBACK, caps=caps)
        assert ("refused", "timeout") == (result.outcome, result.reason)


def test_an_encoding_not_asked_for_is_refused_unread():
    """We ask for identity; a gzip body is refused at its headers (no bomb decoded)."""
    with web_server() as (base, routes, _):
        routes["/gz"] = (200, {**HTML, "Content-Encoding": "gzip"}, b"\x1f\x8b")
        result = wm.verify(f"{base}/gz", TARGET, floor=Reach.LOOPBACK)
        assert ("refused", "encoding") == (result.outcome, result.reason)


def test_redirect_loops_and_long_chains_are_refused():
    """At most five redirects, and never the same URL twice."""
    with web_server() as (base, routes, _):
        routes["/loop"] = (302, {"Location": "/loop2"}, b"")
        routes["/loop2"] = (302, {"Location": "/loop"}, b"")
        for i in range(8):
            routes[f"/c{i}"] = (302, {"Location": f"/c{i + 1}"}, b"")
        for path in ("/loop", "/c0"):
            with pytest.raises(WebRefused) as e:
                request(f"{base}{path}", floor=Reach.LOOPBACK)
            assert "redirect" == e.value.reason

