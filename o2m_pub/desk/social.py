"""Friends: the owner's card (text and QR), adding a friend by pasting their card with the
fingerprint check made visible, groups, rename, remove, and each friend's last fetch and
any problem in plain words. The changes go through `friends.friend_store.FriendStore`,
the same code as `o2m friend …` and `o2m group …`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlencode

from o2m_pub.desk import feed
from o2m_pub.desk.app import Ctx, Routes
from o2m_pub.desk.people import health
from o2m_pub.desk.web import DeskResponse, Slow, redirect
from o2m_pub.errors import O2MError
from o2m_pub.friends.friend_store import FriendError, KeyChangeError, valid_name
from o2m_pub.protocol.cards import CardError, card_from_any, card_to_text
from o2m_pub.protocol.keyfile import fingerprint
from o2m_pub.reader.store import StoreBusyError, fetch_lock, remove_friend, rename_friend

if TYPE_CHECKING:
    from o2m_pub.desk.app import DeskApp

ROUTES = Routes()
_NAME = r"([^/]{1,200})"


def _relative(app: "DeskApp", ctx: Ctx):  # noqa: ANN202 - utc text -> words
    return lambda stored: feed.relative_time(stored, ctx.now, app.tz)


@ROUTES.add("GET", r"/friends")
def friends_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    people = app.directory.people()
    rows = []
    for name, person in people.items():
        state = app.reader.friend_state(name)
        rows.append({"person": person, "health": health(state, ctx.now, _relative(app, ctx))})
    return app.page(ctx, "friends.html", title="Friends", rows=rows,
                    groups=app.directory.groups(), nav="friends",
                    old_name=_old_name_uses(app, ctx, "removed"))


def _old_name_uses(app: "DeskApp", ctx: Ctx, done: str) -> dict[str, object] | None:
    """On the page after a rename or a removal (`?done=renamed&from=OLD`, `…removed…`):
    the posts and o2m.toml lines that still name the old name as an audience, as
    `o2m friend rename` and `remove` list them (site.audience_uses). That name now
    means no one: what they name does not reach the friend, and the next build stops on
    them. None: not such a page, or nothing names it."""
    old = ctx.query.get("from", "")
    if ctx.query.get("done") != done or not valid_name(old) or app.directory.friend(old):
        return None
    from o2m_pub.config import load
    from o2m_pub.site.audience_uses import find_uses
    try:
        uses = find_uses(app.root, load(app.root), old)
    except O2MError:  # o2m.toml unreadable now: the build says so, in its own words
        return None
    if not uses:
        return None
    return {"name": old, "uses": [
        {"where": str(use), "what": use.what,
         "edit": use.path.split("/", 1)[1] if use.what == "audience" else None}
        for use in uses]}


@ROUTES.add("GET", rf"/friends/{_NAME}")
def friend_page(app: "DeskApp", ctx: Ctx, raw: str, *, status: int = 200,
                message: str | None = None) -> DeskResponse:
    name = unquote(raw)
    if name in ("add",):
        return add_page(app, ctx)
    friend = app.directory.friend(name)
    if friend is None:
        return app.error(ctx, 404, "You have no friend of that name.")
    person = app.directory.person(name)
    state = app.reader.friend_state(name)
    return app.page(ctx, "friend.html", status=status, title=person.display, person=person,
                    health=health(state, ctx.now, _relative(app, ctx)),
                    groups=app.directory.groups(), message=message,
                    previous_keys=len(friend.previous_keys), nav="friends",
                    old_name=_old_name_uses(app, ctx, "renamed"))


# ---------------------------------------------------------------- adding a friend


@ROUTES.add("GET", r"/friends/add")
def add_page(app: "DeskApp", ctx: Ctx, *, status: int = 200, message: str | None = None,
             card_text: str = "", name: str = "", accept_text: str = "") -> DeskResponse:
    return app.page(ctx, "add_friend.html", status=status, title="Add a friend",
                    message=message, card_text=card_text, name=name, card=None,
                    accept_text=accept_text, nav="friends")


@ROUTES.add("POST", r"/friends/add")
def add_friend(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """Step 1 (no `confirm`): read the pasted card and show who it is, with its
    fingerprint to compare. Step 2: add it, only with the fingerprint confirmed (typed,
    or ticked as compared)."""
    form = ctx.form
    text = "".join(form.get("card", "").split())[:8000]
    name = form.get("name", "").strip().lower()
    try:
        card = card_from_any(text)
    except CardError as e:
        return add_page(app, ctx, status=400, message=f"{e} ({e.hint})" if e.hint else str(e),
                        card_text=text, name=name)
    fp = fingerprint(card.sign_pk, card.box_pk)
    suggested = name or _suggest_name(card.name, app.directory.people())
    show = {"name": feed.display_text(card.name), "url": feed.display_text(card.url),
            "fingerprint": fp}
    step2 = form.get("step") == "confirm"
    typed = " ".join(form.get("typed", "").split())
    confirmed = form.get("compared") == "yes" or (typed and typed == fp)
    if not step2 or not confirmed:
        message = None
        if step2 and typed:
            message = "The fingerprint you typed is not this card's: do not add it."
        elif step2:
            message = "Compare the fingerprint with your friend first, then tick the box " \
                      "or type it."
        return app.page(ctx, "add_friend.html", status=400 if step2 else 200,
                        title="Add a friend", message=message, card_text=text,
                        name=suggested, card=show, key_change=None, nav="friends")
    if not valid_name(name):
        return app.page(ctx, "add_friend.html", status=400, title="Add a friend",
                        message="A friend's name is lower-case letters, digits, - and _ "
                                "(it is how you name them in audience:)", card_text=text,
                        name=suggested, card=show, key_change=None, nav="friends")
    accept = form.get("accept_key_change") == "yes"
    try:
        app.directory.store.add(name, card, now=ctx.now, accept_key_change=accept)
    except KeyChangeError as e:
        return app.page(ctx, "add_friend.html", status=409, title="Add a friend",
                        message=str(e), card_text=text, name=name, card=show,
                        key_change={"old": e.old_fingerprint, "new": e.new_fingerprint},
                        nav="friends")
    except FriendError as e:
        return app.page(ctx, "add_friend.html", status=400, title="Add a friend",
                        message=f"{e} ({e.hint})" if e.hint else str(e), card_text=text,
                        name=name, card=show, key_change=None, nav="friends")
    app.directory.forget()
    return redirect(app.link(f"friends/{name}") + "?done=added")


def _suggest_name(display: str, people: dict) -> str:  # noqa: ANN001
    """A local name from the card's name: "Ada Lovelace" -> "ada"."""
    word = "".join(c for c in display.split()[0].lower() if c.isascii() and
                   (c.isalnum() or c in "-_")) if display.split() else ""
    word = word or "friend"
    name, n = word[:60], 2
    while name in people:
        name, n = f"{word[:58]}-{n}", n + 1
    return name


# ---------------------------------------------------------------- rename, remove, groups


@ROUTES.add("POST", rf"/friends/{_NAME}/rename")
def rename(app: "DeskApp", ctx: Ctx, raw: str) -> DeskResponse:
    name = unquote(raw)
    new = ctx.form.get("new", "").strip().lower()
    try:
        with fetch_lock(app.root):  # their posts go with them (`o2m friend rename`)
            rename_friend(app.directory.store, app.reader, name, new)
    except FriendError as e:
        return friend_page(app, ctx, raw, status=400,
                           message=f"{e} ({e.hint})" if e.hint else str(e))
    except StoreBusyError:
        return friend_page(app, ctx, raw, status=409, message=_FETCH_RUNNING)
    app.directory.forget()  # the page lists what still names the old name (_old_name_uses)
    return redirect(app.link(f"friends/{new}") + "?" + urlencode({"done": "renamed",
                                                                  "from": name}))


@ROUTES.add("POST", rf"/friends/{_NAME}/remove")
def remove(app: "DeskApp", ctx: Ctx, raw: str) -> DeskResponse:
    name = unquote(raw)
    if ctx.form.get("confirm") != "yes":
        return friend_page(app, ctx, raw, status=400,
                           message="Tick the box to confirm that you want to remove them.")
    if app.directory.friend(name) is None:
        return app.error(ctx, 404, "You have no friend of that name.")
    try:
        with fetch_lock(app.root):  # their posts leave the timeline (`o2m friend remove`)
            remove_friend(app.directory.store, app.reader, name)
    except StoreBusyError:
        return friend_page(app, ctx, raw, status=409, message=_FETCH_RUNNING)
    app.directory.forget()
    return redirect(app.link("friends") + "?" + urlencode({"done": "removed", "from": name}))


_FETCH_RUNNING = "A fetch of your friends' feeds is running: try again when it ends."


@ROUTES.add("POST", rf"/friends/{_NAME}/groups")
def friend_groups(app: "DeskApp", ctx: Ctx, raw: str) -> DeskResponse:
    """The groups a friend is in, as ticked (groups of o2m.toml stay as they are)."""
    name = unquote(raw)
    if app.directory.friend(name) is None:
        return app.error(ctx, 404, "You have no friend of that name.")
    wanted = {g for g in ctx.form.get("groups[]", "").split("\n") if g}
    new_group = ctx.form.get("new_group", "").strip().lower()
    if new_group:
        wanted.add(new_group)
    store = app.directory.store
    try:
        for group, members in store.groups().items():
            if name in members and group not in wanted and \
                    name not in store.config_groups.get(group, ()):
                store.group_remove(group, [name])
        for group in wanted:
            if name not in store.groups().get(group, ()):
                store.group_add(group, [name])
    except FriendError as e:
        app.directory.forget()
        return friend_page(app, ctx, raw, status=400,
                           message=f"{e} ({e.hint})" if e.hint else str(e))
    app.directory.forget()
    return redirect(app.link(f"friends/{raw}") + "?done=groups")


@ROUTES.add("GET", r"/groups")
def groups_page(app: "DeskApp", ctx: Ctx, *, status: int = 200,
                message: str | None = None) -> DeskResponse:
    return app.page(ctx, "groups.html", status=status, title="Groups",
                    groups=app.directory.groups(), people=app.directory.people(),
                    config_groups=app.directory.store.config_groups, message=message,
                    nav="friends")


@ROUTES.add("POST", r"/groups")
def make_group(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    group = ctx.form.get("name", "").strip().lower()
    members = [m for m in ctx.form.get("members[]", "").split("\n") if m]
    try:
        app.directory.store.group_add(group, members)
    except FriendError as e:
        return groups_page(app, ctx, status=400, message=f"{e} ({e.hint})" if e.hint else str(e))
    app.directory.forget()
    return redirect(app.link("groups") + "?done=groups")


@ROUTES.add("POST", rf"/groups/{_NAME}/delete")
def delete_group(app: "DeskApp", ctx: Ctx, raw: str) -> DeskResponse:
    try:
        app.directory.store.group_delete(unquote(raw))
    except FriendError as e:
        return groups_page(app, ctx, status=400, message=f"{e} ({e.hint})" if e.hint else str(e))
    app.directory.forget()
    return redirect(app.link("groups") + "?done=groups")


# ---------------------------------------------------------------- your card


@ROUTES.add("GET", r"/card")
def card_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    from o2m_pub.friends.identity import own_card
    card = own_card(app.root)
    if card is None:
        return app.error(ctx, 404, "This site has no card yet.", "`o2m card` makes one")
    return app.page(ctx, "card.html", title="Your card", text=card_to_text(card),
                    name=card.name, url=card.url,
                    fingerprint=fingerprint(card.sign_pk, card.box_pk), nav="friends")


@ROUTES.add("GET", r"/card\.svg")
def card_qr(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.qr import qr_svg
    card = own_card(app.root)
    if card is None:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    try:
        svg = qr_svg(card_to_text(card), scale=4)
    except O2MError:
        return DeskResponse(404, b"", "text/plain; charset=utf-8")
    return DeskResponse(200, svg, "image/svg+xml", {"Cache-Control": "private, no-cache"})


# ---------------------------------------------------------------- invitations


def _said(e: O2MError) -> str:
    """An error as one line for a page, its hint in brackets."""
    return f"{e} ({e.hint})" if e.hint else str(e)


EXPIRY_CHOICES = (("1d", "a day"), ("7d", "a week"), ("30d", "a month"))
_INVITATION_ID = r"([A-Za-z0-9_-]{4,22})"


def inline_qr(text: str, label: str) -> str | None:
    """The QR code of `text` as an <svg> element to put in a page (no file, no data:
    URL: the CSP allows images from the desk only), scaling to the screen; None when
    `text` does not fit in one."""
    import re

    from o2m_pub.friends.qr import qr_svg
    try:
        svg = qr_svg(text, scale=4).decode()
    except O2MError:
        return None
    svg = svg[svg.index("<svg"):]
    size = re.match(r'<svg xmlns="http://www.w3.org/2000/svg" width="(\d+)" height="(\d+)"', svg)
    if size is None:
        return None
    from markupsafe import escape
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size[1]} {size[2]}" '
            f'width="{size[1]}" height="{size[2]}" role="img" aria-label="{escape(label)}"')
    return head + svg[size.end():]


def _invitations_page(app: "DeskApp", ctx: Ctx, *, status: int = 200,  # noqa: ANN001
                      message: str | None = None, made=None, name: str = "") -> DeskResponse:
    from o2m_pub.desk.feed import local_time

    assert app.caps.invite is not None
    rows = [{"id": r.id[:8], "name": r.name, "status": r.status(ctx.now),
             "until": local_time(r.expires, app.tz), "used": local_time(r.used, app.tz)
             if r.used else None, "friend": r.friend}
            for r in reversed(app.caps.invite.invitations())]
    new = None
    if made is not None:
        new = {"id": made.id, "text": made.text, "until": local_time(made.expires, app.tz),
               "qr": inline_qr(made.text, "QR code of this invitation")}
    return app.page(ctx, "invitations.html", status=status, title="Invitations", rows=rows,
                    new=new, message=message, name=name, choices=EXPIRY_CHOICES,
                    nav="friends")


@ROUTES.add("GET", r"/invitations")
def invitations_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """The owner's invitations, open ones first, and the form to make one: only
    once an `InviteAction` is plugged in (actions.py); until then a 404."""
    if app.caps.invite is None:
        return app.error(ctx, 404, "There is nothing here.")
    return _invitations_page(app, ctx)


@ROUTES.add("POST", r"/friends/invite")
def invite(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """Make an invitation, as `o2m friend invite [NAME] --expires …` does, and show it
    once: its text, its QR code and until when it can be used."""
    if app.caps.invite is None:
        return app.error(ctx, 404, "There is nothing here.")
    name = ctx.form.get("name", "").strip().lower() or None
    expires = ctx.form.get("expires", "7d")
    if expires not in dict(EXPIRY_CHOICES):
        return _invitations_page(app, ctx, status=400, message="Choose how long it lasts.")
    try:
        made = app.caps.invite.invite(name, expires)
    except O2MError as e:
        return _invitations_page(app, ctx, status=400, message=_said(e), name=name or "")
    return _invitations_page(app, ctx, made=made)


@ROUTES.add("POST", rf"/invitations/{_INVITATION_ID}/revoke")
def revoke_invitation(app: "DeskApp", ctx: Ctx, ident: str) -> DeskResponse:
    if app.caps.invite is None:
        return app.error(ctx, 404, "There is nothing here.")
    try:
        app.caps.invite.revoke(ident)
    except O2MError as e:
        return _invitations_page(app, ctx, status=400, message=_said(e))
    return redirect(app.link("invitations") + "?done=invitation-revoked")


@ROUTES.add("POST", r"/friends/accept")
def accept(app: "DeskApp", ctx: Ctx) -> DeskResponse | Slow:
    """Accept a friend's invitation pasted here (their site is added; the answer is
    sent to it, off the request thread), or take their reply to one of ours."""
    if app.caps.invite is None:
        return app.error(ctx, 404, "There is nothing here.")
    invite_action = app.caps.invite
    text = ctx.form.get("text", "")[:16_000]
    name = ctx.form.get("name", "").strip().lower() or None
    if name is not None and not valid_name(name):
        return add_page(app, ctx, status=400, message="A friend's name is lower case letters, "
                        "digits, - and _.", accept_text=text)

    def then(result: object) -> DeskResponse:
        if isinstance(result, O2MError):
            return add_page(app, ctx, status=400, message=_said(result), accept_text=text)
        if isinstance(result, BaseException):
            raise result
        app.directory.forget()
        return _accepted_page(app, ctx, result)
    return Slow(work=lambda: invite_action.accept(text, name), then=then)


def _accepted_page(app: "DeskApp", ctx: Ctx, answer) -> DeskResponse:  # noqa: ANN001
    person = app.directory.person(answer.friend)
    return app.page(ctx, "accepted.html", title="Invitation accepted", answer=answer,
                    person=person, nav="friends")
