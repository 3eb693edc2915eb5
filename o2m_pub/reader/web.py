"""`o2m reader`: the local web reader, on 127.0.0.1 only, from the reader's store.

Two layers. `ReaderApp` maps one request (method, path, query, form, headers) to one
`Response` using the store, `timeline.py` and `sanitize.py`; it knows nothing of
Twisted, so it is easy to reason about. `listen` and `run` put it behind Twisted web on
a loopback address. It never serves from `build/`: every page comes from the store
(`.o2m/reader.db`) and every image from the store's attachment cache.

What a friend wrote is hostile until proven otherwise, and the page is defended in
depth (THREATS.md 33-36, 39):

- bodies are rendered and cleaned by nh3 once, when `o2m fetch` stores them
  (`render.py`, in a worker process with hard limits): no parser runs on a friend's
  text while a page is asked for (THREATS.md 49). A post not rendered yet, or too
  complex to render, is shown as its escaped text with a note. Names, titles and tags
  are neutralised (`sanitize.display_text`) and autoescaped by Jinja2;
- every response carries a strict Content-Security-Policy (no script at all, images
  and styles only from this server), ``X-Content-Type-Options: nosniff``, no referrer
  to other sites, no framing; an attachment is served inline only if it is a raster image, any other
  type is a download;
- the Host header must name the loopback address and port the reader listens on, so
  a web page cannot reach the reader by DNS rebinding;
- the one state-changing form ("mark all read") needs the per-process secret token it
  was rendered with and, when the browser sends one, our own Origin (CSRF). Opening a
  post marks it read, as opening a mail does, and opening the notifications marks them
  seen, but only on the person's own navigation (`user_navigation`): a cross-site GET,
  an image, a frame or a prefetch changes nothing (THREATS.md 53).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, unquote

from o2m_pub.errors import O2MError
from o2m_pub.reader.sanitize import display_text
from o2m_pub.reader.store import AmbiguousPostError, StoreBusyError
from o2m_pub.reader.timeline import (
    INLINE_TYPES,
    attachments,
    check_cursor,
    entry,
    friends_unread,
    human_size,
    inline_urls,
    local_time,
    mark_all_read,
    notification_text,
    post_text,
)

if TYPE_CHECKING:
    from o2m_pub.reader.model import StoredPost
    from o2m_pub.reader.store import ReaderStore

THEME_DIR = Path(__file__).parent / "theme"
PAGE_SIZE = 20
LOOPBACK_HOSTS = ("127.0.0.1", "::1")
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src 'self'; style-src 'self'; "
                           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # with no-referrer, forms send "Origin: null"
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
HTML_TYPE = "text/html; charset=utf-8"
SHOWN_TEXT_CHARS = 256 * 1024  # of a post shown as its text (`o2m show` prints it all)


class ReaderWebError(O2MError):
    """The web reader cannot start."""


@dataclass
class Response:
    """What the reader answers to one request."""

    status: int
    body: bytes
    content_type: str = HTML_TYPE
    headers: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- templates


@lru_cache(maxsize=1)
def _environment():  # noqa: ANN202 - jinja2.Environment, imported only when needed
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(THEME_DIR)),
                             autoescape=True,  # every template, whatever its name
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    env.filters["size"] = human_size
    return env


def render_page(template: str, **context: Any) -> str:
    """One reader page; every value is autoescaped except `body` (already sanitised
    by nh3, passed as `markupsafe.Markup`)."""
    return _environment().get_template(template).render(**context)


@lru_cache(maxsize=1)
def _stylesheet() -> bytes:
    return (THEME_DIR / "reader.css").read_bytes()


# ---------------------------------------------------------------- the application


class ReaderApp:
    """Requests to responses over the reader's store (no Twisted in here)."""

    def __init__(self, store: "ReaderStore", tz: dt.tzinfo) -> None:
        self.store = store
        self.tz = tz
        self.token = secrets.token_urlsafe(32)  # per process: forms carry it
        self.hosts: frozenset[str] = frozenset()
        self.origins: frozenset[str] = frozenset()

    def bound_to(self, host: str, port: int) -> None:
        """Accept requests for this address only (Host header; Origin of forms)."""
        names = [f"[{host}]" if ":" in host else host]
        if host == "127.0.0.1" or host == "::1":
            names.append("localhost")
        self.hosts = frozenset(f"{n}:{port}" for n in names)
        self.origins = frozenset(f"http://{h}" for h in self.hosts)

    # -- dispatch

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
               headers: dict[str, str]) -> Response:
        """Answer one request. `path` is still percent-encoded; header names are lower
        case. An O2MError is a page saying what went wrong: 503 while another o2m
        process writes the store (try again), 400 for anything else."""
        if headers.get("host", "").lower() not in self.hosts:
            return self._error(421, "This reader answers only at its own address.")
        segments = [unquote(s) for s in path.split("/")[1:]]
        try:
            if method == "POST":
                if segments == ["mark-all-read"]:
                    return self._mark_all_read(form, headers)
                return self._error(405, "Not allowed here.")
            if method not in ("GET", "HEAD"):
                return self._error(405, "Not allowed here.")
            return self._get(segments, query, method == "GET" and user_navigation(headers))
        except StoreBusyError as e:
            return self._error(503, f"{e} ({e.hint})" if e.hint else str(e))
        except O2MError as e:
            return self._error(400, str(e))

    def _get(self, segments: list[str], query: dict[str, str], navigation: bool) -> Response:
        """`navigation`: the person opened this page in the reader itself; only then
        may reading it mark something read or seen."""
        before = check_cursor(query["before"]) if query.get("before") else None
        match segments:
            case [""]:
                return self._timeline(before=before)
            case ["friend", name] if name:
                return self._timeline(before=before, friend=name)
            case ["tag", tag] if tag:
                return self._timeline(before=before, tag=tag)
            case ["post", short_id]:
                return self._post(short_id, navigation)
            case ["file", short_id, index]:
                return self._file(short_id, index)
            case ["notifications"]:
                return self._notifications(navigation)
            case ["static", "reader.css"]:
                return Response(200, _stylesheet(), "text/css; charset=utf-8",
                                {"Cache-Control": "no-cache"})
        return self._error(404, "There is nothing here.")

    # -- pages

    def _common(self) -> dict[str, Any]:
        return {"token": self.token, "unread_total": self.store.unread_count(),
                "unseen": len(self.store.notifications(unseen_only=True, limit=100))}

    def _timeline(self, *, before: str | None, friend: str | None = None,
                  tag: str | None = None) -> Response:
        posts = self.store.timeline(limit=PAGE_SIZE + 1, before=before, friend=friend, tag=tag)
        entries = [entry(p, self.tz) for p in posts[:PAGE_SIZE]]
        older = entries[-1].cursor if len(posts) > PAGE_SIZE else None
        if friend is not None:
            heading, kind = display_text(friend), "friend"
            state = self.store.friend_state(friend)
            health = self._health(state) if state else None
            if state is None and not entries:
                return self._error(404, "No posts or feed of this friend are stored.")
        else:
            heading, kind, health = (f"#{display_text(tag)}" if tag else "Timeline"), \
                ("tag" if tag else "timeline"), None
        friends = [] if kind != "timeline" else [
            {"name": display_text(name), "raw": name, "unread": unread}
            for name, unread in friends_unread(self.store)]
        page = render_page("timeline.html", heading=heading, kind=kind, entries=entries,
                           older=older, newest=before is not None, friend=friend,
                           friend_unread=self.store.unread_count(friend) if friend else 0,
                           health=health, friends=friends, **self._common())
        return Response(200, page.encode())

    def _health(self, s: Any) -> list[str]:
        """A friend's feed health as short lines (model.FriendSummary)."""
        lines = []
        if s.last_success:
            lines.append(f"last fetched {local_time(s.last_success, self.tz)}")
        if s.failing_since:
            reason = display_text(s.last_reason or "failing")
            lines.append(f"failing since {local_time(s.failing_since, self.tz)} ({reason})")
        if s.stale_since:
            lines.append(f"stale since {local_time(s.stale_since, self.tz)}")
        return lines

    def _exact_post(self, short_id: str) -> "StoredPost | None":
        """The post with exactly this short id. The reader's own links carry full ids,
        so a prefix, even one that matches several posts, names nothing here."""
        try:
            post = self.store.post(short_id)
        except AmbiguousPostError:
            return None
        return post if post is not None and post.short_id == short_id else None

    def _post(self, short_id: str, navigation: bool) -> Response:
        post = self._exact_post(short_id)
        if post is None:
            return self._error(404, "No such post.")
        files = attachments(post, self.store)
        urls = inline_urls(post, files)
        from markupsafe import Markup

        note = None
        if post.rendered is not None and not post.too_complex:
            body, shown = Markup(post.rendered), set(post.rendered_images)  # nh3's (render.py)
        else:  # its text, escaped (linear: no parser), and why
            text = post_text(post, SHOWN_TEXT_CHARS)
            if len(text) >= SHOWN_TEXT_CHARS:
                text += "\n[…]"
            body, shown = Markup(f"<pre>{escape(text)}</pre>"), set()
            note = ("This post was too complex to render: here is its text."
                    if post.too_complex else
                    "This post is not rendered yet (the next o2m fetch does it): here is its "
                    "text.")
        line = entry(post, self.tz)
        page = render_page(
            "post.html", heading=line.headline, post=post, entry=line, body=body, note=note,
            gallery=[f for f in files if f.name in urls and f.name not in shown],
            files=files, url=post.url if post.url and post.url.startswith("https://") else None,
            **self._common())
        if navigation:
            self.store.mark_read([post.short_id])  # opening a post reads it
        return Response(200, page.encode())

    def _file(self, short_id: str, index: str) -> Response:
        post = self._exact_post(short_id)
        if post is None or not index.isdigit():
            return self._error(404, "No such file.")
        files = attachments(post, self.store)
        i = int(index)
        if i >= len(files) or files[i].path is None:
            return self._error(404, "This file is not in the cache (yet): run `o2m fetch`.")
        f = files[i]
        data = f.path.read_bytes()
        if f.media_type in INLINE_TYPES:
            return Response(200, data, f.media_type, {"Cache-Control": "private, no-cache"})
        return Response(200, data, "application/octet-stream",
                        {"Content-Disposition": _attachment_disposition(f.name),
                         "Cache-Control": "private, no-cache"})

    def _notifications(self, navigation: bool) -> Response:
        items = self.store.notifications()
        lines = [{"date": local_time(n.created, self.tz), "text": notification_text(n),
                  "seen": n.seen} for n in items]
        page = render_page("notifications.html", heading="Notifications", items=lines,
                           **self._common())
        if navigation:
            self.store.mark_notifications_seen([n.id for n in items if not n.seen])
        return Response(200, page.encode())

    # -- the one form

    def _mark_all_read(self, form: dict[str, str], headers: dict[str, str]) -> Response:
        """CSRF: the token of this process, and our Origin when the browser sends one."""
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return self._error(403, "This form must be sent from the reader's own page.")
        if not hmac.compare_digest(form.get("token", "").encode(), self.token.encode()):
            return self._error(403, "This form is out of date: reload the page and try again.")
        friend = form.get("friend") or None
        mark_all_read(self.store, friend)
        target = f"/friend/{quote(friend, safe='')}" if friend else "/"
        return Response(303, b"", headers={"Location": target})

    def _error(self, status: int, message: str) -> Response:
        page = render_page("error.html", heading=f"{status}", message=message, token=self.token,
                           unread_total=None, unseen=0)
        return Response(status, page.encode())


def user_navigation(headers: dict[str, str]) -> bool:
    """Whether a GET is the person's own navigation in the reader: a top-level page
    load (Fetch Metadata: mode navigate, destination document) from one of the
    reader's own pages (same-origin) or from the address bar or a bookmark (none), and
    no prefetch. Anything else, a link or image of another site (cross-site, or
    same-site: another port of 127.0.0.1), a frame, a prefetch, or a client that sends
    no Sec-Fetch headers at all, may read a page but changes no state (THREATS.md 53,
    security review finding 6). Every browser o2m supports sends these headers."""
    return (headers.get("sec-fetch-site") in ("same-origin", "none")
            and headers.get("sec-fetch-mode") == "navigate"
            and headers.get("sec-fetch-dest") == "document"
            and "prefetch" not in headers.get("sec-purpose", "")
            and "prefetch" not in headers.get("purpose", ""))


def _attachment_disposition(name: str) -> str:
    """`attachment` with the file's name: ASCII fallback and RFC 6266 filename*."""
    base = name.rsplit("/", 1)[-1] or "file"
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in base)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


# ---------------------------------------------------------------- Twisted


@dataclass
class Listening:
    """A bound reader: its URL and the Twisted port."""

    url: str
    port: Any


def check_host(host: str) -> str:
    """The reader listens on loopback only: decrypted posts never leave this machine.

    Raises:
        ReaderWebError: any other address.
    """
    value = host.strip("[]")
    if value == "localhost":
        value = "127.0.0.1"
    if value not in LOOPBACK_HOSTS:
        raise ReaderWebError(f"--host {host}: the reader listens on 127.0.0.1 or ::1 only",
                             hint="your friends' posts are decrypted: they stay on this "
                                  "machine (to read elsewhere, run o2m there)")
    return value


def listen(store: "ReaderStore", tz: dt.tzinfo, host: str = "127.0.0.1",
           port: int = 0) -> Listening:
    """Bind the reader (port 0: any free one).

    Raises:
        ReaderWebError: not a loopback host, or the port cannot be had.
    """
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.web.server import Site

    host = check_host(host)
    app = ReaderApp(store, tz)
    site = Site(_Resource(app))
    site.displayTracebacks = False
    site.log = lambda request: None  # no access log: what you read is nobody's business
    try:
        bound = reactor.listenTCP(port, site, interface=host)
    except CannotListenError as e:
        raise ReaderWebError(f"cannot listen on {host} port {port}: {e.socketError}",
                             hint="choose another --port, or 0 for any free one") from None
    actual = bound.getHost().port
    app.bound_to(host, actual)
    netloc = f"[{host}]:{actual}" if ":" in host else f"{host}:{actual}"
    return Listening(url=f"http://{netloc}/", port=bound)


def run(on_started: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then return (the command exits 0). Our own
    handlers: a background job starts with SIGINT ignored, and Twisted keeps that."""
    import signal

    from twisted.internet import reactor

    def stop(_signum: int, _frame: object) -> None:
        reactor.callFromThread(_stop_once, reactor)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    if on_started is not None:
        reactor.callWhenRunning(on_started)
    reactor.run(installSignalHandlers=False)


def _stop_once(reactor) -> None:  # noqa: ANN001
    if reactor.running:
        reactor.stop()


def _resource_class():  # noqa: ANN202 - defined lazily: Twisted is imported only to serve
    from twisted.web.resource import Resource

    class ReaderResource(Resource):
        isLeaf = True

        def __init__(self, app: ReaderApp) -> None:
            super().__init__()
            self.app = app

        def render(self, request) -> bytes:  # noqa: ANN001 - twisted.web.server.Request
            method = request.method.decode("ascii", "replace")
            try:
                response = self.app.handle(method, request.path.decode("utf-8", "replace"),
                                           _args(request.args), _args(request.args)
                                           if method == "POST" else {}, _headers(request))
            except Exception:  # a bug: one line for the browser, no traceback
                response = Response(500, b"<!doctype html><title>500</title>"
                                    b"<p>Something went wrong in the reader.</p>")
            request.setResponseCode(response.status)
            request.setHeader(b"content-type", response.content_type.encode())
            request.setHeader(b"server", b"o2m reader")
            for name, value in {**SECURITY_HEADERS, **response.headers}.items():
                request.setHeader(name.encode(), value.encode("latin-1"))
            return response.body

    return ReaderResource


def _Resource(app: ReaderApp):  # noqa: ANN202, N802 - a twisted Resource
    return _resource_class()(app)


def _args(args: dict[bytes, list[bytes]]) -> dict[str, str]:
    return {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in args.items() if v}


def _headers(request) -> dict[str, str]:  # noqa: ANN001
    return {k.decode("latin-1").lower(): v[0].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders() if v}
