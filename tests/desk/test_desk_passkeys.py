"""Passkeys (WebAuthn) as a second way to sign in to the desk: added with the passphrase
asked again, offered on the sign-in page, checked by the `webauthn` package. Through the
desk's core over a real site, with a software authenticator (support/passkey.py) that
answers as a browser's platform authenticator does."""

from __future__ import annotations

import html
import re

from support.desk import PASS, Client, text
from support.passkey import SoftPasskey

from o2m_pub.desk.sessions import PasskeyStore

ORIGIN = "http://localhost:8480"


def options_in(page: str, form_id: str) -> str:
    m = re.search(rf'<form [^>]*id="{form_id}" data-options="([^"]+)"', page)
    assert m, f"no {form_id} options in the page"
    return html.unescape(m.group(1))


def add_passkey(client: Client, key: SoftPasskey, name: str = "My phone",
                origin: str = ORIGIN):  # noqa: ANN201 - web.DeskResponse
    page = text(client.post("/passkeys/begin", {"name": name, "passphrase": PASS}))
    return client.post("/passkeys/add", {"name": name,
                                         "credential": key.create(options_in(
                                             page, "passkey-create"), origin)})


def passkey_sign_in(client: Client, key: SoftPasskey, origin: str = ORIGIN,  # noqa: ANN201
                    **kw):  # noqa: ANN003
    page = text(client.get("/signin"))
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    credential = key.get(options_in(page, "passkey-signin"), origin, **kw)
    return client.request("POST", "/signin", {"csrf": token, "next": "/",
                                              "credential": credential})


def test_add_a_passkey_then_sign_in_with_it(app):
    """The owner adds a passkey (passphrase, then the device's answer): it is listed,
    the sign-in page offers it, and signing in with it opens the desk; its counter
    and last use are kept. The store holds its public key only."""
    owner = Client(app, host="localhost:8480")
    owner.sign_in()
    key = SoftPasskey()
    response = add_passkey(owner, key)
    assert response.status == 303 and "passkey-added" in response.headers["Location"]
    assert "My phone" in text(owner.get("/passkeys"))
    phone = Client(app, host="localhost:8480", address="192.0.2.7")
    assert phone.get("/").status == 303  # signed out
    response = passkey_sign_in(phone, key)
    assert response.status == 303, text(response)
    assert phone.get("/").status == 200 and "Home" in text(phone.get("/"))
    (kept,) = PasskeyStore(app.desk.db).all()
    assert (kept.id, kept.sign_count, kept.last_used is not None) == (key.id, 1, True)
    assert b"BEGIN" not in kept.public_key and len(kept.public_key) < 200


def test_adding_a_passkey_needs_the_passphrase(app):
    """A session alone (a stolen cookie) cannot add a way back in: without the
    passphrase, or with a wrong one, no challenge is given, and an answer to none is
    refused."""
    owner = Client(app, host="localhost:8480")
    owner.sign_in()
    for form, status in (({"name": "x"}, 400), ({"name": "x", "passphrase": "wrong"}, 401)):
        page = owner.post("/passkeys/begin", form)
        assert page.status == status and 'id="passkey-create"' not in text(page)
    forged = SoftPasskey().create('{"rp": {"id": "localhost"}, "challenge": "AAAA"}', ORIGIN)
    response = owner.post("/passkeys/add", {"name": "x", "credential": forged})
    assert response.status == 400 and PasskeyStore(app.desk.db).all() == []


def test_a_passkey_answer_is_refused_when_replayed_or_for_another_site(app):
    """Each sign-in challenge is used once; an answer made for another origin or RP
    (a phishing site), or by a passkey the desk does not know, is refused: 401, no
    session."""
    owner = Client(app, host="localhost:8480")
    owner.sign_in()
    key = SoftPasskey()
    assert add_passkey(owner, key).status == 303
    browser = Client(app, host="localhost:8480", address="192.0.2.8")
    page = text(browser.get("/signin"))
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    captured = dict(browser.cookies)  # its sign-in cookie, as an eavesdropper keeps it
    answer = key.get(options_in(page, "passkey-signin"), ORIGIN)
    assert browser.request("POST", "/signin", {"csrf": token, "credential": answer}).status \
        == 303
    replay = Client(app, host="localhost:8480", address="192.0.2.9", cookies=captured)
    response = replay.request("POST", "/signin", {"csrf": token, "credential": answer})
    assert response.status == 401 and replay.get("/").status == 303
    for make in (lambda c: passkey_sign_in(c, key, origin="https://evil.example"),
                 lambda c: passkey_sign_in(c, key, rp_id="evil.example"),
                 lambda c: passkey_sign_in(c, SoftPasskey(), unasked=True)):
        fresh = Client(app, host="localhost:8480", address="192.0.2.10")
        response = make(fresh)
        assert response.status == 401 and "could not be checked" in text(response)
        assert fresh.get("/").status == 303


def test_no_passkey_is_offered_at_an_ip_address_and_a_removed_one_is_gone(app):
    """At 127.0.0.1 (no browser takes an IP address as RP ID) the passkeys page says to
    use localhost and the sign-in page offers none; a removed passkey is no longer
    offered nor accepted."""
    owner = Client(app, host="localhost:8480")
    owner.sign_in()
    key = SoftPasskey()
    assert add_passkey(owner, key).status == 303
    at_ip = Client(app)
    assert 'id="passkey-signin"' not in text(at_ip.get("/signin"))
    at_ip.sign_in()
    page = text(at_ip.get("/passkeys"))
    assert 'id="passkeys-unavailable"' in page and "http://localhost:8480/" in page
    assert at_ip.post("/passkeys/begin", {"name": "x", "passphrase": PASS}).status == 400
    key_id = re.search(r'action="/passkeys/([A-Za-z0-9_-]+)/remove"', page).group(1)
    assert owner.post(f"/passkeys/{key_id}/remove").status == 303
    assert PasskeyStore(app.desk.db).all() == []
    assert 'id="passkey-signin"' not in text(Client(app, host="localhost:8480").get("/signin"))
