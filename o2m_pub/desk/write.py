"""Writing: compose a post (Markdown with a preview by the builder's own renderer,
title, tags, audience, a photo with its alt text), save it as a draft or publish it,
edit and delete the owner's posts, and the profile. Files in `content/` stay the source
of truth: `posts.Posts` writes them as the owner would by hand."""

from __future__ import annotations

import posixpath
from functools import lru_cache
from typing import TYPE_CHECKING

from markupsafe import Markup

from o2m_pub.desk import photos as photo_rules
from o2m_pub.desk import profile
from o2m_pub.desk.app import Ctx, Routes
from o2m_pub.desk.posts import Draft, EditConflictError, PostPathError
from o2m_pub.desk.web import DeskError, DeskResponse, Slow, redirect
from o2m_pub.errors import O2MError, PostError
from o2m_pub.friends.friend_store import FriendError, resolve_audience

if TYPE_CHECKING:
    from o2m_pub.desk.app import DeskApp

ROUTES = Routes()
MAX_ALT_CHARS = 500


# ---------------------------------------------------------------- the form


def draft_from_form(app: "DeskApp", form: dict[str, str]) -> Draft:
    """The compose form as a Draft (the audience checked against friends and groups).

    Raises:
        FriendError: an audience name that names nobody.
        DeskError: "some people" with nobody chosen.
    """
    mode = form.get("audience", "friends")
    if mode == "public":
        audience: tuple[str, ...] = ("public",)
    elif mode == "some":
        names = tuple(n for n in form.get("people[]", "").split("\n") if n)
        if not names:
            raise DeskError("choose at least one group or friend, or another audience")
        audience = tuple(dict.fromkeys(names))
    else:
        audience = ("friends",)
    resolve_audience(audience, app.directory.people(), app.directory.groups())
    return Draft(title=form.get("title", "")[:300], body=form.get("body", ""),
                 tags=form.get("tags", "")[:500], audience=audience,
                 draft=form.get("action") == "draft")


def _photo_from(ctx: Ctx) -> tuple[bytes, str, str] | None:
    """The uploaded photo, checked and re-encoded, with its alt text.

    Raises:
        PhotoError: not a usable photo; DeskError: no alt text.
    """
    upload = ctx.request.files.get("photo")
    if upload is None:
        return None
    alt = " ".join(ctx.form.get("alt", "").split())[:MAX_ALT_CHARS]
    if not alt:
        raise DeskError("describe the photo in a few words (its alt text), for people "
                        "who cannot see it")
    photo = photo_rules.prepare(upload.data)
    return photo.data, photo.extension, alt


def _compose_page(app: "DeskApp", ctx: Ctx, draft: Draft, *, path: str | None = None,
                  base: str = "", status: int = 200, message: str | None = None,
                  preview: str | None = None) -> DeskResponse:
    people = app.directory.people()
    groups = app.directory.groups()
    mode = "public" if draft.audience == ("public",) else \
        "friends" if draft.audience == ("friends",) else "some"
    photos = []
    if path is not None:
        folder_photos = _bundle_photos(app, path)
        photos = [(name, app.link("media") + "?" + _q(path=path, name=name))
                  for name in folder_photos]
    title = "Edit post" if path else "Write"
    return app.page(ctx, "compose.html", status=status, title=title, draft=draft,
                    path=path, base_digest=base, mode=mode, chosen=set(draft.audience),
                    people=people, groups=groups, message=message, photos=photos,
                    preview=Markup(preview) if preview is not None else None,
                    nav="write")


def _q(**values: str) -> str:
    from urllib.parse import urlencode
    return urlencode(values)


def _bundle_photos(app: "DeskApp", path: str) -> list[str]:
    import os

    from o2m_pub.desk.posts import PHOTO_RE, resolve
    if not path.endswith("/index.md"):
        return []
    folder = resolve(app.root, path).parent
    try:
        return sorted(n for n in os.listdir(folder) if PHOTO_RE.fullmatch(n))
    except OSError:
        return []


# ---------------------------------------------------------------- preview


@lru_cache(maxsize=1)
def _renderer():  # noqa: ANN202 - site.markup.MarkdownRenderer: one pipeline, reused
    from o2m_pub.site.markup import MarkdownRenderer
    return MarkdownRenderer()


def preview_html(app: "DeskApp", body: str, path: str | None) -> str:
    """The body as the builder renders it (`site.markup`), its references to files of
    the post's folder shown from the desk, then cleaned by nh3 like a friend's post."""
    from o2m_pub.reader.sanitize import sanitize_html
    from o2m_pub.site.markers import resolve_markers

    source = f"content/{path}" if path else "content/new/index.md"
    rendered = _renderer().render(body[:512 * 1024], source)
    folder = posixpath.dirname(source)
    local: dict[str, str] = {}

    def resolve(kind: str, target: str, fragment: str) -> str:
        if kind == "MEDIA" and path and posixpath.dirname(target) == folder:
            name = posixpath.basename(target)
            local[name] = app.link("media") + "?" + _q(path=path, name=name)
            return name
        return "#"

    html = resolve_markers(rendered.html, resolve)
    return sanitize_html(html, local).html


@ROUTES.add("POST", r"/preview")
def preview_fragment(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """The preview alone (the script's call, as the owner types)."""
    path = ctx.form.get("path") or None
    return DeskResponse(200, preview_html(app, ctx.form.get("body", ""), path).encode())


@ROUTES.add("GET", r"/media")
def media(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """A photo of one of the owner's bundle posts (for the preview and the edit page)."""
    try:
        found = app.posts.media(ctx.query.get("path", ""), ctx.query.get("name", ""))
    except PostPathError:
        found = None
    if found is None:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    kind = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[found.suffix[1:]]
    return DeskResponse(200, found.read_bytes(), kind, {"Cache-Control": "private, no-cache"})


# ---------------------------------------------------------------- new post


@ROUTES.add("GET", r"/write")
def write_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    from o2m_pub.config import load
    return _compose_page(app, ctx, Draft(audience=load(app.root).default_audience))


@ROUTES.add("POST", r"/write")
def write_post(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    form = ctx.form
    try:
        draft = draft_from_form(app, form)
    except (FriendError, DeskError) as e:
        return _compose_page(app, ctx, _loose_draft(form), status=400, message=str(e))
    if form.get("action") == "preview":
        return _compose_page(app, ctx, draft, preview=preview_html(app, draft.body, None))
    try:
        photo = _photo_from(ctx)
        if not draft.title.strip() and not draft.body.strip() and photo is None:
            raise DeskError("write something first")
        path = app.posts.create(draft, ctx.now, [photo] if photo else [])
    except (DeskError, PostError) as e:
        return _compose_page(app, ctx, draft, status=400, message=_message(e))
    done = "draft" if draft.draft else "saved"
    return redirect(app.link("posts/edit") + "?" + _q(path=path, done=done))


def _loose_draft(form: dict[str, str]) -> Draft:
    """The form as typed, to show again with a message (nothing checked)."""
    names = tuple(n for n in form.get("people[]", "").split("\n") if n)
    mode = form.get("audience", "friends")
    audience = ("public",) if mode == "public" else names if mode == "some" and names \
        else ("friends",)
    return Draft(title=form.get("title", ""), body=form.get("body", ""),
                 tags=form.get("tags", ""), audience=audience)


def _message(e: O2MError) -> str:
    if isinstance(e, PostError):
        return f"{e.problem.message}" + (f" ({e.problem.hint})" if e.problem.hint else "")
    return f"{e}" + (f" ({e.hint})" if e.hint else "")


# ---------------------------------------------------------------- the owner's posts


@ROUTES.add("GET", r"/posts")
def posts_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    posts = app.posts.list()
    try:
        start = max(0, int(ctx.query.get("from", "0")))
    except ValueError:
        start = 0
    shown = posts[start:start + 50]
    rows = [{"path": p.path, "title": p.title or "(a note)", "draft": p.draft,
             "audience": ", ".join(p.audience), "problem": p.problem,
             "date": p.date.astimezone(app.tz).strftime("%Y-%m-%d %H:%M") if not p.problem
             else "", "thread": None, "talk": None} for p in shown]
    _add_threads(app, rows)
    return app.page(ctx, "posts.html", title="Your posts", rows=rows, total=len(posts),
                    next_from=start + 50 if len(posts) > start + 50 else None,
                    prev_from=max(0, start - 50) if start else None, nav="posts")


def _add_threads(app: "DeskApp", rows: list[dict]) -> None:
    """Each post's page with its thread (PROTOCOL.md §4), and what is in it ("💬 1  👍 2")."""
    from o2m_pub.desk.feed import own_posts
    from o2m_pub.reader.thread_store import summaries_by_ref
    own = own_posts(app.root)
    if own is None:
        return
    refs = {r["path"]: own.ref_of(f"content/{r['path']}") for r in rows if not r["problem"]}
    talk = summaries_by_ref(app.reader.db, [ref for ref, _ in refs.values()])
    for r in rows:
        if r["path"] in refs:
            ref, short = refs[r["path"]]
            r["thread"] = app.link(f"post/{short}")
            r["talk"] = talk.get(ref)


@ROUTES.add("GET", r"/posts/edit")
def edit_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    path = ctx.query.get("path", "")
    own, draft, data = app.posts.open(path)
    from o2m_pub.desk.posts import digest
    return _compose_page(app, ctx, draft, path=path, base=digest(data),
                         message=own.problem, preview=preview_html(app, draft.body, path))


@ROUTES.add("POST", r"/posts/edit")
def edit_post(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    form = ctx.form
    path, base = form.get("path", ""), form.get("base", "")
    app.posts.open(path)  # a path of content/ that exists, or PostPathError
    try:
        draft = draft_from_form(app, form)
    except (FriendError, DeskError) as e:
        return _compose_page(app, ctx, _loose_draft(form), path=path, base=base, status=400,
                             message=str(e))
    if form.get("action") == "preview":
        return _compose_page(app, ctx, draft, path=path, base=base,
                             preview=preview_html(app, draft.body, path))
    try:
        photo = _photo_from(ctx)
        app.posts.save(path, draft, base, ctx.now, [photo] if photo else [])
    except EditConflictError as e:
        return _compose_page(app, ctx, draft, path=path, base=base, status=409,
                             message=_message(e))
    except (DeskError, PostError) as e:
        return _compose_page(app, ctx, draft, path=path, base=base, status=400,
                             message=_message(e))
    done = "draft" if draft.draft else "saved"
    return redirect(app.link("posts/edit") + "?" + _q(path=path, done=done))


@ROUTES.add("GET", r"/posts/delete")
def delete_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    from o2m_pub.desk.posts import digest
    path = ctx.query.get("path", "")
    own, draft, data = app.posts.open(path)
    return app.page(ctx, "confirm.html", title="Delete post", action=app.link("posts/delete"),
                    question=f"Delete “{own.title or '(a note)'}”?",
                    detail="Its file (and the photos in its folder) go from content/; the "
                           "next build takes it off your site and out of friends' feeds.",
                    fields={"path": path, "base": digest(data)}, button="Delete",
                    cancel=app.link("posts/edit") + "?" + _q(path=path), nav="posts")


@ROUTES.add("POST", r"/posts/delete")
def delete_post(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    path, base = ctx.form.get("path", ""), ctx.form.get("base", "")
    try:
        app.posts.delete(path, base)
    except EditConflictError as e:
        return app.error(ctx, 409, str(e), "open the post again to see what changed")
    return redirect(app.link("posts") + "?done=deleted")


# ---------------------------------------------------------------- profile


@ROUTES.add("GET", r"/profile")
def profile_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    return _profile_page(app, ctx)


def _profile_page(app: "DeskApp", ctx: Ctx, *, status: int = 200,
                  message: str | None = None, name: str | None = None,
                  bio: str | None = None) -> DeskResponse:
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card
    config = load(app.root)
    card = own_card(app.root)
    return app.page(ctx, "profile.html", status=status, title="Profile",
                    name=name if name is not None else config.author, url=config.url,
                    card_name=card.name if card else None, message=message,
                    bio=bio if bio is not None else (card.bio or "" if card else ""),
                    has_avatar=card is not None and card.avatar is not None,
                    fields=app.caps.profile_fields, nav="settings")


@ROUTES.add("GET", r"/profile/avatar")
def own_avatar(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """The owner's picture as their card names it (keys/avatar, if it is that one)."""
    import hashlib

    from o2m_pub.friends.identity import own_card
    from o2m_pub.site.build import AVATAR_FILE
    card = own_card(app.root)
    try:
        data = (app.root / AVATAR_FILE).read_bytes() if card and card.avatar else b""
    except OSError:
        data = b""
    if not data or hashlib.sha256(data).hexdigest() != card.avatar.sha256:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    return DeskResponse(200, data, card.avatar.media_type, {"Cache-Control": "private, no-cache"})


@ROUTES.add("POST", r"/profile")
def save_profile(app: "DeskApp", ctx: Ctx) -> DeskResponse | Slow:
    """A new display name (o2m.toml's author), bio and picture, and a card signed anew
    with them (the passphrase is asked again: signing needs the key, which the desk
    never keeps). The picture is checked and cut square before anything is written."""
    from o2m_pub.desk.photos import PhotoError, square_avatar
    from o2m_pub.friends.identity import own_card

    name, fields = ctx.form.get("name", ""), app.caps.profile_fields
    bio_text = ctx.form.get("bio", "")
    changes: dict = {}
    picture = None
    try:
        name = profile.check_name(name)
        if "bio" in fields:
            bio = profile.check_bio(bio_text)
            card = own_card(app.root)
            if card is None or bio != card.bio:
                changes["bio"] = bio
        if "avatar" in fields:
            upload = ctx.request.files.get("avatar")
            if upload is not None and upload.data:
                picture = square_avatar(upload.data)
            elif ctx.form.get("remove_avatar") == "yes":
                changes["avatar"] = None
    except (DeskError, PhotoError) as e:
        return _profile_page(app, ctx, status=400, message=str(e), name=name, bio=bio_text)
    if app.caps.renew_card is None:
        return _profile_page(app, ctx, status=500, name=name, bio=bio_text,
                             message="this desk cannot sign a card (run `o2m card --renew`)")
    passphrase = ctx.form.get("passphrase", "")
    wait = app.desk.begin_attempt(ctx.request.client, app.clock()) if passphrase else 0
    if not passphrase or wait > 0:
        text = "Type your passphrase: a new card is signed with your key." if not passphrase \
            else f"Too many attempts: try again in {int(wait) + 1} seconds."
        return _profile_page(app, ctx, status=400 if not passphrase else 429, message=text,
                             name=name, bio=bio_text)
    secret = passphrase.encode("utf-8")

    def then(result: object) -> DeskResponse:
        from o2m_pub.protocol.cards import CardError
        from o2m_pub.protocol.keyfile import WrongPassphraseError
        if isinstance(result, WrongPassphraseError):
            return _profile_page(app, ctx, status=401, name=name, bio=bio_text,
                                 message="That is not your passphrase.")
        if isinstance(result, BaseException):
            raise result
        app.desk.forgive(ctx.request.client)
        old = profile.set_author(app.root, name)
        before = None
        if picture is not None:
            changes["avatar"], before = profile.install_avatar(app.root, picture)
        try:
            app.caps.renew_card(app.root, result, **changes)  # type: ignore[misc]
        except BaseException as e:
            profile.restore(app.root, old)
            if picture is not None:
                profile.restore_avatar(app.root, before)
            if isinstance(e, CardError):
                return _profile_page(app, ctx, status=400, name=name, bio=bio_text,
                                     message=str(e))
            raise
        return redirect(app.link("profile") + "?done=profile")

    return Slow(work=lambda: app.unlock(secret), then=then)
