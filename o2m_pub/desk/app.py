"""The desk's core: one `web.Request` in, one answer out (`web.DeskResponse`, or `web.Slow`
for the passphrase check, or `web.Stream` for live updates). No Twisted in here.

Every request passes the same gate, in this order:

1. the Host header must name the desk (DNS rebinding: 421 otherwise);
2. the stylesheet, the script and the icon are public (they hold no data); everything
   else needs a live session, except the sign-in page itself. Without one, a page is a
   redirect to the sign-in page and anything else a bare 401: neither says anything of
   what is behind it (no titles, names or counts);
3. a POST must come from the desk's own pages: the Origin header, when the browser
   sends one, is ours; Sec-Fetch-Site, when sent, is not cross-site; and the form
   carries the CSRF token of its session (THREATS.md 53: a GET never changes state).

The pages themselves are in `read`, `write` and `social` (one module per area), each
a table of routes: (method, path pattern) -> handler(app, ctx, *parts).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from o2m_pub.desk import guard, pages
from o2m_pub.desk.actions import Capabilities
from o2m_pub.desk.web import (
    Answer,
    CookiePolicy,
    Origin,
    Request,
    DeskResponse,
    Slow,
    redirect,
    safe_next,
)
from o2m_pub.errors import O2MError

if TYPE_CHECKING:
    from o2m_pub.desk.people import Directory
    from o2m_pub.desk.posts import Posts
    from o2m_pub.desk.sessions import DeskStore, Session
    from o2m_pub.reader.store import ReaderStore

PASSPHRASE_MAX = 1024


@dataclass
class Ctx:
    """One signed-in request: what every handler and page needs."""

    request: Request
    session: "Session"
    token: str  # the session's cookie value
    csrf: str
    now: dt.datetime
    notice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def form(self) -> dict[str, str]:
        return self.request.form

    @property
    def query(self) -> dict[str, str]:
        return self.request.query


Handler = Callable[..., Answer]


class Routes:
    """(method, pattern) -> handler; a pattern's groups are the handler's arguments."""

    def __init__(self) -> None:
        self.table: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append((method, re.compile(pattern), handler))
            return handler
        return register


class DeskApp:
    """Requests to answers for one site's desk.

    Args:
        root: the site folder.
        reader: the reader's store (friends' posts).
        desk: the desk's store (sessions, sign-in failures).
        directory: the friends, as the desk shows them.
        posts: the owner's posts in content/.
        origin: where the desk is (scheme, Host values, base path).
        tz: the site's time zone.
        unlock: the passphrase check (`friends.identity.load_identity` on this site); it
            runs Argon2id, so the shell calls it in a worker thread.
        capabilities: the actions other parts plug in (`actions.Capabilities`).
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(self, root: Path, *, reader: "ReaderStore", desk: "DeskStore",
                 directory: "Directory", posts: "Posts", origin: Origin, tz: dt.tzinfo,
                 unlock: Callable[[bytes], object], capabilities: Capabilities = Capabilities(),
                 clock: Callable[[], float] = time.time) -> None:
        self.root, self.reader, self.desk = root, reader, desk
        self.directory, self.posts, self.origin, self.tz = directory, posts, origin, tz
        self.unlock, self.caps, self.clock = unlock, capabilities, clock
        self.cookies = CookiePolicy(secure=origin.scheme == "https", port=origin.port)
        from o2m_pub.config import STATE_DIR
        from o2m_pub.desk.images import ImageCache
        self.images = ImageCache(root / STATE_DIR)
        from o2m_pub.desk import passkey_pages, read, social, write
        self.routes = [*read.ROUTES.table, *write.ROUTES.table, *social.ROUTES.table,
                       *passkey_pages.ROUTES.table]

    # ---------------------------------------------------------------- links and pages

    def link(self, path: str = "") -> str:
        return self.origin.link(path)

    def page(self, ctx: Ctx | None, template: str, *, status: int = 200, title: str,
             **values: Any) -> DeskResponse:
        """A page of the desk, with what its header shows."""
        common: dict[str, Any] = {"base": self.origin.base, "link": self.link, "title": title,
                                  "signed_in": ctx is not None, "caps": self.caps,
                                  "csrf": ctx.csrf if ctx else "", "notice": None,
                                  "unread_total": 0, "unseen": 0, "nav": values.pop("nav", "")}
        if ctx is not None:
            common["notice"] = ctx.notice
            common["unread_total"] = self.reader.unread_count()
            common["unseen"] = len(self.reader.notifications(unseen_only=True, limit=100))
        return DeskResponse(status, pages.render(template, **{**common, **values}))

    def error(self, ctx: Ctx | None, status: int, message: str, hint: str | None = None
              ) -> DeskResponse:
        return self.page(ctx, "error.html", status=status, title=f"{status}",
                         message=message, hint=hint)

    # ---------------------------------------------------------------- the gate

    def handle(self, request: Request) -> Answer:
        """Answer one request (see the module docstring for the gate)."""
        if not self.origin.host_ok(request.headers.get("host")):
            return DeskResponse(421, b"This desk answers only at its own address.\n",
                            "text/plain; charset=utf-8")
        path = request.path
        if request.method in ("GET", "HEAD") and path.startswith("/static/"):
            return _static(path[len("/static/"):])
        try:
            return self._handle(request)
        except O2MError as e:
            from o2m_pub.reader.store import StoreBusyError
            if isinstance(e, StoreBusyError):
                return self.error(None, 503, str(e), e.hint)
            return self.error(None, 400, str(e), e.hint)

    def _handle(self, request: Request) -> Answer:
        self.directory.begin_request()
        token = request.cookies.get(self.cookies.session)
        session = self.desk.check(token, self.clock()) if token else None
        if request.path == "/signin":
            return self._sign_in(request, signed_in=session is not None)
        if session is None:
            if request.method == "GET" and not _is_resource(request.path):
                return redirect(self.link("signin") + "?" + _query(next=self.origin.base +
                                                                   request.path.lstrip("/")))
            return DeskResponse(401, b"Sign in first.\n", "text/plain; charset=utf-8")
        assert token is not None
        ctx = Ctx(request, session, token, guard.csrf_token(token),
                  dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc),
                  notice=_notice(request.query.get("done")))
        if request.method == "POST":
            refusal = self._check_post(request, ctx.csrf)
            if refusal is not None:
                return refusal
        elif request.method not in ("GET", "HEAD"):
            return self.error(ctx, 405, "Not allowed here.")
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, pattern, handler in self.routes:
            if route_method != method:
                continue
            m = pattern.fullmatch(request.path)
            if m:
                return handler(self, ctx, *m.groups())
        return self.error(ctx, 404, "There is nothing here.")

    def _check_post(self, request: Request, expected: str) -> DeskResponse | None:
        """CSRF (see the module docstring): None when the form may be acted on."""
        if not self.origin.origin_ok(request.headers.get("origin")) or \
                request.headers.get("sec-fetch-site") == "cross-site":
            return self.error(None, 403, "This form must be sent from the desk's own page.")
        if not guard.same(request.form.get("csrf"), expected):
            return self.error(None, 403, "This form is out of date or not from the desk.",
                              "reload the page and try again")
        return None

    # ---------------------------------------------------------------- sign-in, sign-out

    def _sign_in(self, request: Request, *, signed_in: bool) -> Answer:
        base = self.origin.base
        target = safe_next(request.query.get("next") or request.form.get("next"), base)
        if request.method == "GET":
            if signed_in:
                return redirect(target)
            return self._sign_in_page(request, target)
        if request.method != "POST":
            return DeskResponse(405, b"", "text/plain; charset=utf-8")
        pre = request.cookies.get(self.cookies.pre)
        if not self.origin.origin_ok(request.headers.get("origin")) or \
                request.headers.get("sec-fetch-site") == "cross-site" or \
                not guard.well_formed(pre) or \
                not guard.same(request.form.get("csrf"), guard.sign_in_token(pre or "")):
            return self._sign_in_page(request, target, status=403,
                                      message="This form was out of date: try again.")
        if request.form.get("credential"):
            return self._sign_in_with_passkey(request, target, pre or "")
        passphrase = request.form.get("passphrase", "")
        if not passphrase or len(passphrase) > PASSPHRASE_MAX:
            return self._sign_in_page(request, target, status=400,
                                      message="Type your passphrase.")
        refused = self._back_off(request, target)
        if refused is not None:
            return refused
        secret = passphrase.encode("utf-8")

        def then(result: object) -> DeskResponse:
            if isinstance(result, BaseException):
                from o2m_pub.protocol.keyfile import WrongPassphraseError
                if isinstance(result, WrongPassphraseError):
                    return self._sign_in_page(request, target, status=401,
                                              message="That is not your passphrase.")
                if isinstance(result, O2MError):
                    return self._sign_in_page(request, target, status=500,
                                              message=f"The key cannot be opened: {result}")
                raise result
            return self._signed_in(request, target)

        return Slow(work=lambda: self.unlock(secret), then=then)

    def _back_off(self, request: Request, target: str) -> DeskResponse | None:
        """Count a sign-in attempt (passphrase or passkey alike); the 429 page when this
        client, or everyone, must wait first."""
        wait = self.desk.begin_attempt(request.client, self.clock())
        if wait <= 0:
            return None
        response = self._sign_in_page(
            request, target, status=429,
            message=f"Too many attempts: try again in {_seconds(wait)}.")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response

    def _signed_in(self, request: Request, target: str) -> DeskResponse:
        self.desk.forgive(request.client)
        fresh = secrets.token_urlsafe(guard.TOKEN_BYTES)  # never one the browser sent
        self.desk.create(fresh, request.client, request.headers.get("user-agent", ""),
                         self.clock())
        return redirect(target, cookies=[self.cookies.set(self.cookies.session, fresh),
                                         self.cookies.clear(self.cookies.pre)])

    def _sign_in_with_passkey(self, request: Request, target: str, pre: str) -> DeskResponse:
        """A passkey's answer to the challenge of this browser's sign-in page
        (passkeys.py): an attempt for the back-off, as a passphrase is."""
        from o2m_pub.desk import passkeys
        from o2m_pub.desk.sessions import PasskeyStore

        refused = self._back_off(request, target)
        if refused is not None:
            return refused
        store = PasskeyStore(self.desk.db)
        rp = passkeys.relying_party(self.origin.scheme, request.headers.get("host", ""))
        challenge = store.take_challenge("signin:" + guard.token_hash(pre), self.clock())
        credential = request.form.get("credential", "")
        try:
            if rp is None or challenge is None:
                raise passkeys.PasskeyError("no challenge for this browser")
            key = store.get(passkeys.credential_id(credential))
            if key is None:
                raise passkeys.PasskeyError("not a passkey of this desk")
            count = passkeys.verify_sign_in(credential, challenge, rp, key.public_key,
                                            key.sign_count)
        except passkeys.PasskeyError:
            return self._sign_in_page(request, target, status=401,
                                      message="That passkey could not be checked.")
        store.used(key.id, count, self.clock())
        return self._signed_in(request, target)

    def _sign_in_page(self, request: Request, target: str, *, status: int = 200,
                      message: str | None = None) -> DeskResponse:
        pre = request.cookies.get(self.cookies.pre)
        cookies = []
        if not guard.well_formed(pre):
            pre = secrets.token_urlsafe(guard.TOKEN_BYTES)
            cookies.append(self.cookies.set(self.cookies.pre, pre))
        response = self.page(None, "signin.html", status=status, title="Sign in",
                             sign_in_token=guard.sign_in_token(pre or ""), next=target,
                             message=message,
                             passkey_options=self._passkey_challenge(request, pre or ""))
        response.cookies += cookies
        return response

    def _passkey_challenge(self, request: Request, pre: str) -> str | None:
        """The options of a passkey sign-in for this browser's sign-in page (its
        challenge kept for its cookie), when the owner has a passkey and the desk is
        at a name; else None."""
        from o2m_pub.desk import passkeys
        from o2m_pub.desk.sessions import PasskeyStore

        rp = passkeys.relying_party(self.origin.scheme, request.headers.get("host", ""))
        store = PasskeyStore(self.desk.db)
        keys = store.all() if rp is not None else []
        if rp is None or not keys:
            return None
        options, challenge = passkeys.authentication_options(rp, [k.id for k in keys])
        store.put_challenge("signin:" + guard.token_hash(pre), challenge,
                            self.clock() + passkeys.CHALLENGE_SECONDS)
        return options

    def sign_out(self, ctx: Ctx) -> DeskResponse:
        self.desk.revoke(guard.token_hash(ctx.token))
        return redirect(self.link("signin"), cookies=[self.cookies.clear(self.cookies.session)])


# ---------------------------------------------------------------- helpers


def _static(name: str) -> DeskResponse:
    data = pages.static_file(name)
    if data is None:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    return DeskResponse(200, data, pages.STATIC[name], {"Cache-Control": "no-cache"})


_RESOURCE = re.compile(r"/(file|img|avatar|media|events|card\.svg|preview)(/|$)")


def _is_resource(path: str) -> bool:
    """Not a page: an image, a file, the event stream. Answered 401 when signed out."""
    return bool(_RESOURCE.match(path))


def _query(**values: str) -> str:
    from urllib.parse import urlencode
    return urlencode(values)


def _seconds(wait: float) -> str:
    seconds = int(wait) + 1
    return f"{seconds} seconds" if seconds < 120 else f"{seconds // 60 + 1} minutes"


_NOTICES = {
    "saved": "Saved. `o2m watch` (or `o2m serve --watch`) rebuilds the site with it.",
    "draft": "Saved as a draft: it is not published until you publish it.",
    "deleted": "Deleted. The next build takes it off your site and out of friends' feeds.",
    "added": "Friend added. Your next build writes their feed; they see your posts once "
             "they add you back.",
    "renamed": "Renamed.", "removed": "Removed. Their feed goes at your next build.",
    "groups": "Groups saved.", "profile": "Profile saved; the next build publishes your card.",
    "revoked": "Session ended.", "read": "Marked read.", "seen": "Marked seen.",
    "invitation-revoked": "Invitation revoked: it can no longer be used.",
    "passkey-added": "Passkey added: the sign-in page offers it from now on.",
    "passkey-removed": "Passkey removed.",
}


def _notice(key: str | None) -> str | None:
    return _NOTICES.get(key or "")


def open_app(root: Path, origin: Origin, *, unlock: Callable[[bytes], object],
             capabilities: Capabilities = Capabilities()) -> DeskApp:
    """The desk of the site at `root`: its stores opened, its friends and posts read.

    Raises:
        O2MError: o2m.toml, the reader's store or the desk's store cannot be used.
    """
    from o2m_pub.config import load
    from o2m_pub.desk.people import Directory
    from o2m_pub.desk.posts import Posts
    from o2m_pub.desk.sessions import DeskStore
    from o2m_pub.friends.identity import own_card
    from o2m_pub.reader.store import ReaderStore

    config = load(root)
    reader = ReaderStore.open(root)
    reader.db.execute("PRAGMA busy_timeout=1500")  # a page waits a little, then says busy
    desk = DeskStore.open(root)
    card = own_card(root)
    directory = Directory(root, config.groups, card.sign_pk if card else None)
    posts = Posts(root, config.tz, config.default_audience)
    return DeskApp(root, reader=reader, desk=desk, directory=directory, posts=posts,
                   origin=origin, tz=config.tz, unlock=unlock, capabilities=capabilities)
