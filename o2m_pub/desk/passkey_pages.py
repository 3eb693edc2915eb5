"""The passkeys page: list the owner's passkeys, add one (the passphrase asked again,
then the browser's own dialog), remove one. Signing in with one is the gate's
(`app.DeskApp`). The rules are in passkeys.py; the keys in desk.db (sessions.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from o2m_pub.desk import guard
from o2m_pub.desk.app import Ctx, Routes
from o2m_pub.desk.passkeys import (
    CHALLENGE_SECONDS,
    PasskeyError,
    registration_options,
    relying_party,
    verify_new,
)
from o2m_pub.desk.sessions import PasskeyStore
from o2m_pub.desk.web import DeskError, DeskResponse, Slow, redirect
from o2m_pub.protocol.canonical import b64u_decode, b64u_encode

if TYPE_CHECKING:
    from o2m_pub.desk.app import DeskApp

ROUTES = Routes()
_KEY_ID = r"([A-Za-z0-9_-]{1,400})"
USER_ID = b"o2m-desk-owner"  # one user: the owner


def _store(app: "DeskApp") -> PasskeyStore:
    return PasskeyStore(app.desk.db)


def _rp(app: "DeskApp", ctx: Ctx):  # noqa: ANN202 - RelyingParty | None
    return relying_party(app.origin.scheme, ctx.request.headers.get("host", ""))


def _challenge_key(ctx: Ctx) -> str:
    return "add:" + guard.token_hash(ctx.token)


def _page(app: "DeskApp", ctx: Ctx, *, status: int = 200, message: str | None = None,
          options: str | None = None, name: str = "") -> DeskResponse:
    rp = _rp(app, ctx)
    keys = [{"id": b64u_encode(k.id), "name": k.name,
             "created": _when(app, k.created), "used": _when(app, k.last_used)}
            for k in _store(app).all()]
    port = app.origin.port
    return app.page(ctx, "passkeys.html", status=status, title="Passkeys", keys=keys,
                    available=rp is not None, message=message, options=options, name=name,
                    localhost=f"http://localhost:{port}/" if port else None, nav="settings")


def _when(app: "DeskApp", stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, app.tz).strftime("%Y-%m-%d %H:%M")


@ROUTES.add("GET", r"/passkeys")
def passkeys_page(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    return _page(app, ctx)


@ROUTES.add("POST", r"/passkeys/begin")
def begin(app: "DeskApp", ctx: Ctx) -> DeskResponse | Slow:
    """The passphrase again, then the options for the browser's dialog (the page's
    script opens it; the answer goes to /passkeys/add)."""
    rp = _rp(app, ctx)
    name = " ".join(ctx.form.get("name", "").split())[:64] or "A passkey"
    if rp is None:
        return _page(app, ctx, status=400, name=name,
                     message="Passkeys need the desk at a name, not an IP address.")
    passphrase = ctx.form.get("passphrase", "")
    wait = app.desk.begin_attempt(ctx.request.client, app.clock()) if passphrase else 0
    if not passphrase or wait > 0:
        text = "Type your passphrase: a passkey is a new way in." if not passphrase \
            else f"Too many attempts: try again in {int(wait) + 1} seconds."
        return _page(app, ctx, status=400 if not passphrase else 429, message=text,
                     name=name)
    secret = passphrase.encode("utf-8")

    def then(result: object) -> DeskResponse:
        from o2m_pub.protocol.keyfile import WrongPassphraseError
        if isinstance(result, WrongPassphraseError):
            return _page(app, ctx, status=401, name=name,
                         message="That is not your passphrase.")
        if isinstance(result, BaseException):
            raise result
        app.desk.forgive(ctx.request.client)
        store = _store(app)
        options, challenge = registration_options(rp, USER_ID, name,
                                                  [k.id for k in store.all()])
        store.put_challenge(_challenge_key(ctx), challenge, app.clock() + CHALLENGE_SECONDS)
        return _page(app, ctx, options=options, name=name)

    return Slow(work=lambda: app.unlock(secret), then=then)


@ROUTES.add("POST", r"/passkeys/add")
def add(app: "DeskApp", ctx: Ctx) -> DeskResponse:
    """The browser's answer to the challenge of /passkeys/begin, for this session."""
    rp = _rp(app, ctx)
    store = _store(app)
    challenge = store.take_challenge(_challenge_key(ctx), app.clock())
    name = " ".join(ctx.form.get("name", "").split())[:64] or "A passkey"
    if rp is None or challenge is None:
        return _page(app, ctx, status=400, message="That took too long, or was answered "
                     "already: start again.")
    try:
        new = verify_new(ctx.form.get("credential", ""), challenge, rp)
        store.add(new.id, new.public_key, new.sign_count, name, app.clock())
    except PasskeyError:
        return _page(app, ctx, status=400, message="The passkey could not be checked.")
    except DeskError as e:
        return _page(app, ctx, status=400, message=str(e))
    return redirect(app.link("passkeys") + "?done=passkey-added")


@ROUTES.add("POST", rf"/passkeys/{_KEY_ID}/remove")
def remove(app: "DeskApp", ctx: Ctx, key_id: str) -> DeskResponse:
    try:
        found = _store(app).remove(b64u_decode(key_id))
    except ValueError:
        found = False
    if not found:
        return app.error(ctx, 404, "You have no such passkey.")
    return redirect(app.link("passkeys") + "?done=passkey-removed")
