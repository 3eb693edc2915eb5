"""Reading: the home timeline (filters by friend and group), search, one post with its
thread, read marks, friends' photos and files, notifications, live updates, and the
sessions page. GETs only read; every change is a POST (THREATS.md 53)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from markupsafe import Markup

from o2m_pub.desk import feed, guard
from o2m_pub.desk.app import Ctx, Routes
from o2m_pub.desk.web import DeskResponse, Slow, Stream, redirect
from o2m_pub.reader import thread_store
from o2m_pub.reader.search import SYNTAX_HELP
from o2m_pub.reader.store import AmbiguousPostError
from o2m_pub.reader.timeline import check_cursor, mark_all_read, notification_text

if TYPE_CHECKING:
    from o2m_pub.desk.app import DeskApp
    from o2m_pub.reader.model import StoredPost

ROUTES = Routes()
_ID = r"([a-z2-7]{4,52})"


def _filters(app: "DeskApp", ctx: Ctx) -> dict[str, str | None]:
    friend = ctx.query.get("friend") or None
    group = ctx.query.get("group") or None
    before = ctx.query.get("before") or None
    return {"friend": friend, "group": group,
            "before": check_cursor(before) if before else None}


@ROUTES.add("GET", r"/")
def home(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    return _timeline(app, ctx, query=None)


@ROUTES.add("GET", r"/search")
def search_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    return _timeline(app, ctx, query=ctx.query.get("q", "").strip()[:500])


def _timeline(app: "DeskApp", ctx: Ctx, *, query: str | None) -> DeskResponse:
    filters = _filters(app, ctx)
    people = app.directory.people()
    groups = app.directory.groups()
    page = feed.timeline(app.reader, app.directory, ctx.now, app.tz, app.link,
                         before=filters["before"], friend=filters["friend"],
                         group=filters["group"], query=query, refused=app.images.why_not)
    if query is not None:
        heading = f"Search: {query}" if query else "Search"
    elif filters["friend"]:
        heading = app.directory.person(filters["friend"]).display
    elif filters["group"]:
        heading = f"Group: {filters['group']}"
    else:
        heading = "Home"
    return app.page(ctx, "timeline.html", title=heading, heading=heading, page=page,
                    people=people, groups=groups, filters=filters, query=query,
                    search_help=SYNTAX_HELP, nav="search" if query is not None else "home")


def _post(app: "DeskApp", short_id: str) -> "StoredPost | None":
    """The post with exactly this short id (a prefix names nothing here)."""
    try:
        post = app.reader.post(short_id)
    except AmbiguousPostError:
        return None
    return post if post is not None and post.short_id == short_id else None


@ROUTES.add("GET", rf"/post/{_ID}")
def post_page(app: "DeskApp", ctx: Ctx, short_id: str) -> DeskResponse:
    post = _post(app, short_id)
    own = feed.own_posts(app.root)
    if post is None:  # one of the owner's own posts, or a reply of a thread
        return _not_in_timeline(app, ctx, short_id, own)
    view = feed.post_view(post, app.directory, app.reader, ctx.now, app.tz, app.link,
                          refused=app.images.why_not, own=own)
    from o2m_pub.desk.web import user_navigation
    names = {n: k for k, n in thread_store.friend_names(app.reader.db).items()}
    return app.page(ctx, "post.html", title=view.entry.headline, view=view,
                    body=Markup(view.body),  # nh3's output (reader.sanitize)
                    thread=_thread(app, f"o2m:{names.get(post.friend, '')}/{post.id}", own),
                    mark_on_open=user_navigation(ctx.request.headers))


def _thread(app: "DeskApp", root: str, own: Any) -> dict[str, Any]:  # noqa: ANN401
    """PROTOCOL.md §4: the reactions to the post `root` names and its replies in order
    (their text is shown as text, never as HTML), for the thread view."""
    own_key = own.key if own is not None else None
    mine = own is not None and root.startswith(f"o2m:{own.key}/")  # the owner's thread:
    replies, _ = thread_store.thread(app.reader.db, root, own_key,  # with their replies
                                     own.replies_in(root) if mine else ())
    counts = thread_store.reactions(app.reader.db, [root, *(r.ref for r in replies)], own_key)
    return {"replies": replies, "reactions": counts.get(root, []), "counts": counts}


def _not_in_timeline(app: "DeskApp", ctx: Ctx, short_id: str, own: Any) -> DeskResponse:  # noqa: ANN401
    """/post/ID of a post that is no friend's post of the timeline: one of the owner's
    own (its page, with the thread their friends' feeds brought: a notification's id
    leads here), or a reply known through a thread (its place in that thread)."""
    mine = own.find(short_id) if own is not None else None
    if mine is not None and mine.short_id == short_id:
        return _own_post_page(app, ctx, mine, own)
    found = thread_store.reply_row(app.reader.db, short_id, own.key if own else None)
    if found is not None and found[0].short_id == short_id:
        root = thread_store.post_label(app.reader.db, found[1], own.key if own else None,
                                       own.title_of if own is not None else None)
        if root.short_id and root.title is not None and root.short_id != short_id:
            return redirect(app.link(f"post/{root.short_id}") + f"#r-{short_id}")
    return app.error(ctx, 404, "No such post.")


def _own_post_page(app: "DeskApp", ctx: Ctx, mine: Any, own: Any) -> DeskResponse:  # noqa: ANN401
    """One of the owner's posts with its thread (as their friends' feeds brought it, the
    thread their next build links): its text as written, shown as text."""
    when = mine.date.astimezone(app.tz) if mine.date is not None else None
    post = {"title": feed.display_text(mine.title) if mine.title else None,
            "text": mine.body.strip(), "when": when.strftime("%Y-%m-%d %H:%M") if when else "",
            "iso": when.isoformat() if when else "", "audience": ", ".join(mine.audience),
            "draft": mine.draft, "problem": mine.problem, "path": mine.path,
            "short_id": mine.short_id,
            "reply_to": feed.reply_context(mine.reply_to, app.reader, own, app.link)
            if mine.reply_to else None}
    title = post["title"] or feed.display_text(" ".join(mine.body.split())[:80]) or "A note"
    return app.page(ctx, "own_post.html", title=title, post=post,
                    thread=_thread(app, mine.ref, own), nav="posts")


@ROUTES.add("POST", rf"/post/{_ID}/read")
def mark_post(app: "DeskApp", ctx: Ctx, short_id: str) -> DeskResponse:
    post = _post(app, short_id)
    if post is None:
        return app.error(ctx, 404, "No such post.")
    app.reader.mark_read([post.short_id], read=ctx.form.get("read", "1") == "1")
    if ctx.form.get("quiet") == "1":  # the script's call: no page
        return DeskResponse(204)
    return redirect(_back(app, ctx.form.get("back")))


@ROUTES.add("POST", r"/read-all")
def read_all(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    friend = ctx.form.get("friend") or None
    group = ctx.form.get("group") or None
    if group is not None:
        for member in app.directory.groups().get(group, ()):
            mark_all_read(app.reader, member)
    else:
        mark_all_read(app.reader, friend)
    return redirect(_back(app, ctx.form.get("back")))


def _back(app: "DeskApp", value: str | None) -> str:
    """Back to a page of the desk the form came from (never elsewhere)."""
    from o2m_pub.desk.web import safe_next
    return safe_next(value, app.origin.base)


@ROUTES.add("GET", rf"/file/{_ID}/(\d{{1,4}})")
def attachment(app: "DeskApp", ctx: Ctx, short_id: str, index: str) -> DeskResponse:
    """A friend's attachment from the local store: inline only if it is a raster image;
    anything else is a download."""
    from o2m_pub.reader.timeline import attachments

    post = _post(app, short_id)
    files = attachments(post, app.reader) if post is not None else []
    i = int(index)
    if i >= len(files) or files[i].path is None:
        return DeskResponse(404, b"Not in the store (yet): `o2m fetch` brings it.\n",
                        "text/plain; charset=utf-8")
    f = files[i]
    data = f.path.read_bytes()
    headers = {"Cache-Control": "private, max-age=3600"}
    if f.media_type in feed.INLINE_TYPES:
        return DeskResponse(200, data, f.media_type, headers)
    headers["Content-Disposition"] = _download_name(f.name)
    return DeskResponse(200, data, "application/octet-stream", headers)


def _download_name(name: str) -> str:
    from urllib.parse import quote
    base = name.rsplit("/", 1)[-1] or "file"
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in base)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


@ROUTES.add("GET", rf"/img/{_ID}/(\d{{1,3}})")
def remote_image(app: "DeskApp", ctx: Ctx, short_id: str, index: str) -> DeskResponse | Slow:
    """A photo of a friend's public post, from their own site, when the post's signed
    feed lists it, with those bytes only (desk/images.py, THREATS.md 54)."""
    from o2m_pub.desk.images import own_images

    post = _post(app, short_id)
    friend = app.directory.friend(post.friend) if post is not None else None
    images = own_images(post.rendered, friend.card.url, post.media) \
        if post and friend and post.markdown is None and not post.too_complex else []
    i = int(index)
    if i >= len(images) or friend is None:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    listed = images[i].listed

    def answer(found: object) -> DeskResponse:
        if not isinstance(found, tuple):
            why = app.images.why_not(listed)
            text = why.detail if why else "This photo could not be had from their site."
            return DeskResponse(404, f"{text}\n".encode(), "text/plain; charset=utf-8")
        data, kind = found
        return DeskResponse(200, data, kind, {"Cache-Control": "private, max-age=3600"})

    if app.images.why_not(listed) is not None:
        return answer(None)
    cached = app.images.cached(listed)
    if cached is not None:
        return answer(cached)
    card = friend.card
    return Slow(work=lambda: app.images.fetch(listed, card), then=answer)


@ROUTES.add("GET", r"/avatar/([^/]+)")
def avatar(app: "DeskApp", ctx: Ctx, name: str) -> DeskResponse:
    found = app.directory.avatar(unquote(name))
    if found is None:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    return DeskResponse(200, found.data, found.media_type, {"Cache-Control": "private, no-cache"})


@ROUTES.add("GET", r"/notifications")
def notifications(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    items = app.reader.notifications(limit=200)
    lines = [{"id": n.id, "when": feed.relative_time(n.created, ctx.now, app.tz),
              "when_full": feed.local_time(n.created, app.tz),
              "parts": _linked(app, notification_text(n)), "seen": n.seen, "kind": n.kind}
             for n in items]
    return app.page(ctx, "notifications.html", title="Notifications", items=lines,
                    nav="notifications")


_POST_ID = re.compile(r"\(([a-z2-7]{10})\)")  # "bob replied to your post (apbexfu3xo)"


def _linked(app: "DeskApp", text: str) -> list[tuple[str, str | None]]:
    """A notification's text as (text, link) parts: each post id it names in brackets
    links to that post's page (a friend's post, one of the owner's, a reply)."""
    parts: list[tuple[str, str | None]] = []
    at = 0
    for m in _POST_ID.finditer(text):
        parts += [(text[at:m.start(1)], None), (m.group(1), app.link(f"post/{m.group(1)}"))]
        at = m.end(1)
    return [*parts, (text[at:], None)]


@ROUTES.add("POST", r"/notifications/seen")
def notifications_seen(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    app.reader.mark_notifications_seen()
    return redirect(app.link("notifications") + "?done=seen")


@ROUTES.add("GET", r"/events")
def events(app: "DeskApp", ctx: Ctx) -> Stream:
    """Server-sent events: one whenever the reader's store or the notifications change
    (a fetch stored something); the page's script offers to show the new posts."""
    def changed() -> object:
        row = app.reader.db.execute("SELECT (SELECT max(rowid) FROM posts), "
                                    "(SELECT max(id) FROM notifications)").fetchone()
        return tuple(row)
    return Stream(changed)


# ---------------------------------------------------------------- sessions


@ROUTES.add("GET", r"/sessions")
def sessions_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    mine = guard.token_hash(ctx.token)
    import datetime as dt
    rows = []
    for s in app.desk.sessions(app.clock()):
        created = dt.datetime.fromtimestamp(s.created, dt.timezone.utc)
        seen = dt.datetime.fromtimestamp(s.last_seen, dt.timezone.utc)
        rows.append({"id": s.token_hash[:16], "this": s.token_hash == mine,
                     "created": created.astimezone(app.tz).strftime("%Y-%m-%d %H:%M"),
                     "seen": feed.relative_time(seen.strftime("%Y-%m-%dT%H:%M:%SZ"), ctx.now,
                                                app.tz),
                     "client": s.client, "agent": s.agent})
    return app.page(ctx, "sessions.html", title="Sessions", sessions=rows, nav="settings")


@ROUTES.add("POST", r"/sessions/revoke")
def revoke(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    prefix = ctx.form.get("session", "")
    mine = guard.token_hash(ctx.token)
    if ctx.form.get("others") == "1":
        app.desk.revoke_others(mine)
        return redirect(app.link("sessions") + "?done=revoked")
    for s in app.desk.sessions(app.clock()):
        if len(prefix) == 16 and s.token_hash.startswith(prefix):
            app.desk.revoke(s.token_hash)
            if s.token_hash == mine:
                return app.sign_out(ctx)
    return redirect(app.link("sessions") + "?done=revoked")


@ROUTES.add("POST", r"/signout")
def sign_out(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    return app.sign_out(ctx)


# ---------------------------------------------------------------- conversations (later)


@ROUTES.add("POST", rf"/post/{_ID}/reply")
def reply(app: "DeskApp", ctx: Ctx, short_id: str) -> DeskResponse:
    """Reply to a friend's post, or to one of the owner's own (its thread's continuation,
    PROTOCOL.md §4.2): only once conversations plug a `ReplyAction` in (actions.py);
    until then this route is a 404 like any unknown one."""
    post = _post(app, short_id)
    own = feed.own_posts(app.root) if post is None else None
    mine = own.find(short_id) if own is not None else None
    if mine is not None and mine.short_id != short_id:
        mine = None  # (a prefix names nothing here)
    if app.caps.reply is None or (post is None and mine is None):
        return app.error(ctx, 404, "There is nothing here.")
    text = ctx.form.get("text", "").strip()
    if not text:
        return redirect(app.link(f"post/{short_id}"))
    if post is not None:
        app.caps.reply.reply(post, text)
    else:
        app.caps.reply.reply_own(mine, text)
    return redirect(app.link(f"post/{short_id}") + "?done=saved")


@ROUTES.add("POST", rf"/post/{_ID}/react")
def react(app: "DeskApp", ctx: Ctx, short_id: str) -> DeskResponse:
    """React to a friend's post: only once conversations plug a `ReactAction` in."""
    post = _post(app, short_id)
    if app.caps.react is None or post is None:
        return app.error(ctx, 404, "There is nothing here.")
    choice = ctx.form.get("choice", "")
    if choice not in app.caps.react.choices:
        return app.error(ctx, 400, "Not a reaction the desk knows.")
    app.caps.react.react(post, choice)
    return redirect(_back(app, ctx.form.get("back")))
