"""Attacks on the desk, one test each: CSRF, session fixation, brute force, path
traversal in uploads, XSS in titles, names, alt text and cards, DNS rebinding,
clickjacking, and what an unauthenticated request learns (nothing). The cookie over
plain HTTP and the body caps are tested against real servers in test_desk_servers.py."""

from __future__ import annotations

import io
import re

import pytest
from support.desk import HOST, PASS, Client, form_value, text
from support.desk_world import friend_card, store_posts

from o2m_pub.desk import guard
from o2m_pub.desk.forms import Upload
from o2m_pub.desk.sessions import DeskStore
from o2m_pub.desk.web import CONTENT_SECURITY_POLICY, SECURITY_HEADERS, all_headers
from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.reader.model import PostRow
from o2m_pub.reader.store import ReaderStore

XSS = '</title><script>alert(1)</script><img src=x onerror=alert(2)>"\'&'


# ---------------------------------------------------------------- signed out


def test_unauthenticated_requests_leak_nothing(world, app):
    """Without a session every page is a redirect to sign in and everything else a bare
    401: no title, friend name, count or post text in any answer."""
    stranger = Client(app)
    secrets_ = ("Ridge", "Bob", "bob", "carol", "Jam", "sourdough", "family", "3")
    ridge = ReaderStore.open(world["root"]).timeline()[-1].short_id
    for path in ("/", "/search?q=jam", f"/post/{ridge}", "/friends", "/friends/bob", "/posts",
                 "/notifications", "/card", "/groups", "/profile", "/sessions", "/write"):
        response = stranger.get(path)
        assert response.status == 303 and response.headers["Location"].startswith("/signin?")
        assert response.body == b""
    for path in (f"/file/{ridge}/0", "/avatar/bob", "/card.svg", "/events"):
        response = stranger.get(path)
        assert (response.status, response.body) == (401, b"Sign in first.\n")
    for path, form in (("/read-all", {}), ("/friends/bob/remove", {"confirm": "yes"}),
                       ("/write", {"title": "x"}), ("/preview", {"body": "x"})):
        assert stranger.request("POST", path, form).status == 401
    page = text(stranger.get("/signin"))
    assert not any(s in page for s in secrets_[:7])
    assert FriendStore(world["root"]).get("bob")


def test_sign_in_with_the_passphrase_and_out_again(app):
    """The right passphrase makes a session (a new random cookie, its hash stored, never
    the passphrase); the wrong one does not; signing out ends it."""
    c = Client(app)
    assert c.sign_in("wrong").status == 401 and app.cookies.session not in c.cookies
    assert c.sign_in().status == 303
    token = c.cookies[app.cookies.session]
    rows = app.desk.db.execute("SELECT * FROM sessions").fetchall()
    assert [r[0] for r in rows] == [guard.token_hash(token)]
    assert token not in repr(rows) and PASS not in repr(rows)
    assert c.get("/").status == 200
    assert c.post("/signout").status == 303 and app.cookies.session not in c.cookies
    c.cookies[app.cookies.session] = token  # a copy kept after sign-out is worth nothing
    assert c.get("/").status == 303


def test_sessions_expire_when_idle_and_absolutely_and_can_be_revoked(app, tmp_path):
    """Idle for 12 h, or 7 days after sign-in, a session is gone; the owner lists
    sessions and ends another one."""
    t = [1_800_000_000.0]
    app.clock = lambda: t[0]
    a, b = Client(app), Client(app, address="10.0.0.2")
    a.sign_in()
    b.sign_in()
    assert len(app.desk.sessions(t[0])) == 2
    t[0] += guard.IDLE - 60
    assert a.get("/").status == 200
    t[0] += guard.IDLE - 60  # b idle past 12 h, a was seen a moment ago
    assert b.get("/").status == 303 and a.get("/").status == 200
    for _ in range(25):  # used every six hours: alive, until 7 days after sign-in
        assert a.get("/").status == 200
        t[0] += 6 * 3600
    assert a.get("/").status == 303
    a.sign_in()
    b.sign_in()
    listed = re.findall(r'name="session" value="([0-9a-f]{16})"', text(a.get("/sessions")))
    assert len(listed) == 2
    b_id = guard.token_hash(b.cookies[app.cookies.session])[:16]
    assert a.post("/sessions/revoke", {"session": b_id}).status == 303
    assert b.get("/").status == 303 and a.get("/").status == 200


# ---------------------------------------------------------------- forged requests


def test_threat_53_a_form_without_its_token_or_from_another_site_changes_nothing(world, client):
    """CSRF: no token, a wrong one, another session's, a foreign Origin or a cross-site
    fetch: 403 and nothing changes (SameSite=Strict keeps the cookie off anyway)."""
    before = FriendStore(world["root"]).list()
    other = Client(client.app)
    other.sign_in()
    for form, headers in (({}, {}), ({"csrf": "x" * 43}, {}), ({"csrf": other.csrf()}, {}),
                          ({"csrf": client.csrf()}, {"origin": "https://evil.example"}),
                          ({"csrf": client.csrf()}, {"origin": "null"}),
                          ({"csrf": client.csrf()}, {"sec-fetch-site": "cross-site"})):
        response = client.request("POST", "/friends/bob/remove", {"confirm": "yes", **form},
                                  headers=headers)
        assert response.status == 403, (form, headers)
    assert FriendStore(world["root"]).list() == before
    with ReaderStore.open(world["root"]) as store:
        assert store.unread_count() == 3
    assert client.post("/read-all", headers={"origin": f"http://{HOST}"}).status == 303


def test_the_sign_in_form_is_bound_to_its_own_cookie(app):
    """Login CSRF: a sign-in posted without the form's token (or with another browser's)
    is refused before the passphrase is even tried."""
    victim, attacker = Client(app), Client(app)
    attacker.get("/signin")
    token = form_value(attacker.get("/signin").body, "csrf")
    victim.get("/signin")
    response = victim.request("POST", "/signin", {"csrf": token, "passphrase": PASS})
    assert response.status == 403 and app.cookies.session not in victim.cookies
    assert app.desk.db.execute("SELECT count(*) FROM failures").fetchone()[0] == 0


def test_session_fixation_a_planted_cookie_is_never_adopted(app):
    """A session value planted before sign-in (by a page of another port, say) is not
    the one the sign-in issues, and grants nothing before or after."""
    c = Client(app)
    planted = "A" * 43
    c.cookies[app.cookies.session] = planted
    assert c.get("/").status == 303
    c.sign_in()
    issued = c.cookies[app.cookies.session]
    assert issued != planted
    attacker = Client(app, cookies={app.cookies.session: planted})
    assert attacker.get("/").status == 303


def test_brute_force_is_slowed_per_client_and_for_everyone(app):
    """Five wrong passphrases from one address, then each try waits longer (429 with
    Retry-After), and the right one is not even tried while it waits; many addresses
    together meet the global back-off. A right passphrase clears its address's count."""
    t = [1_900_000_000.0]
    app.clock = lambda: t[0]
    mallory = Client(app, address="203.0.113.9")
    for _ in range(5):
        assert mallory.sign_in("guess").status == 401
    response = mallory.sign_in("guess")
    assert response.status == 429 and response.headers["Retry-After"] == "2"
    assert mallory.sign_in(PASS).status == 429  # not tried while it must wait
    t[0] += 2
    assert mallory.sign_in("guess").status == 401
    assert mallory.sign_in("guess").status == 429
    assert Client(app, address="198.51.100.1").sign_in().status == 303  # others unaffected
    for i in range(20):  # a botnet: each address under its own limit, the sum over
        t[0] += 0.01
        Client(app, address=f"192.0.2.{i}").sign_in("guess")
    assert Client(app, address="192.0.2.200").sign_in(PASS).status == 429
    t[0] += 60
    owner = Client(app, address="192.0.2.201")
    assert owner.sign_in(PASS).status == 303


def test_threat_36_and_39_xss_in_titles_names_alt_text_and_cards_is_text(world, client):
    """A friend's title, card name, alt text and tags holding markup are shown as text
    (escaped) on the timeline, the post page, the friends page and the add-card page."""
    evil = friend_card(7, "eve", display="Eve" + XSS[:40])
    FriendStore(world["root"]).add("eve", evil, now=__import__("support.desk_world",
                                                                fromlist=["NOW"]).NOW)
    store_posts(world["root"], "eve", evil, [PostRow(
        id="e1", audience="private", date="2026-11-23T10:00:00Z", title=XSS + "\u202e",
        tags=(XSS,),
        markdown=f'![{XSS}](p.png) <script>alert(3)</script> [x](javascript:alert(4))',
        attachments=({"name": "p.png", "media_type": "image/png", "hash": "ab" * 32,
                      "size": 1},))])
    short = ReaderStore.open(world["root"]).timeline()[0].short_id
    pages = [text(client.get(p)) for p in ("/", f"/post/{short}", "/friends", "/friends/eve",
                                          "/search?q=alert")]
    from o2m_pub.protocol.cards import card_to_text
    pages.append(text(client.post("/friends/add", {"card": card_to_text(evil)})))
    for page in pages:
        assert "<script>alert" not in page and "onerror=alert" not in page.replace(
            "onerror=alert(2)&gt;", "")
        assert "javascript:" not in page and "\u202e" not in page
    assert "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "\ufffd" in pages[0]  # the title's right-to-left override, neutralised
    assert "Eve&lt;/title&gt;" in pages[2]


def test_dns_rebinding_a_request_for_another_host_is_refused(app, client):
    """A page of evil.example whose name now resolves to 127.0.0.1 names its own Host:
    421, whatever the cookie."""
    for host in ("evil.example:8480", "127.0.0.1:9999", "", "127.0.0.1"):
        response = client.request("GET", "/", headers={"host": host})
        assert response.status == 421 and b"Ridge" not in response.body
    assert Client(app, host="localhost:8480").get("/signin").status == 200


def test_clickjacking_every_answer_forbids_framing(client):
    """frame-ancestors 'none' and X-Frame-Options DENY on every answer, with a CSP that
    allows no script but the desk's own file and no image from elsewhere."""
    headers = all_headers(client.get("/"), secure=False)
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "img-src 'self';" in \
        CONTENT_SECURITY_POLICY
    assert "Strict-Transport-Security" in all_headers(client.get("/"), secure=True)
    assert SECURITY_HEADERS["Cache-Control"] == "no-store"


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize("name", ["../../../../etc/cron.d/x.png", "/tmp/abs.png",
                                  "..\\..\\win.png", "a\x00b.png", ".htaccess"])
def test_threat_37_an_uploads_name_never_becomes_a_path(world, client, name):
    """Whatever the uploaded file is called, the photo lands in the post's own folder
    as photo-1.png, and nothing is written elsewhere."""
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    before = {p for p in world["root"].parent.rglob("*") if p.is_file()}
    response = client.post("/write", {"title": "Up", "body": "x", "audience": "friends",
                                      "alt": "a", "action": "publish"},
                           files={"photo": Upload(name, "image/png", out.getvalue())})
    assert response.status == 303
    new = {p for p in world["root"].parent.rglob("*") if p.is_file()} - before
    content = world["root"] / "content"
    assert {p.relative_to(content).parts[1:] for p in new if p.is_relative_to(content)} == {
        ("up", "index.md"), ("up", "photo-1.png")}
    assert all(p.is_relative_to(world["root"]) for p in new)


def test_an_edit_or_a_photo_names_only_posts_of_content(world, client):
    """A post path from a form that leaves content/ (.., absolute, a symlink out) is
    refused; a media name other than photo-N.ext is a 404."""
    outside = world["root"] / "keys"
    (world["root"] / "content/link").symlink_to(outside)
    for path in ("../o2m.toml", "/etc/passwd.md", "../keys/card.md", "link/x.md",
                 "2026/../../o2m.md", ""):
        response = client.get("/posts/edit?path=" + path)
        assert response.status == 400 and b"not one of your posts" in response.body
        assert client.post("/posts/delete", {"path": path, "base": "0"}).status == 400
    assert client.get("/media?path=../keys/x/index.md&name=identity.secret").status == 404


def test_a_photos_metadata_such_as_gps_is_removed(world, client):
    """A JPEG with EXIF (a GPS position, a camera serial) is stored re-encoded with no
    EXIF at all, turned upright by its orientation."""
    from PIL import Image
    image = Image.new("RGB", (60, 40), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90°
    exif[0xA431] = "SERIAL-12345"  # BodySerialNumber
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    raw = out.getvalue()
    assert b"SERIAL-12345" in raw
    client.post("/write", {"title": "GPS", "body": "x", "audience": "friends", "alt": "a",
                           "action": "publish"}, files={"photo": Upload("g.jpg", "image/jpeg", raw)})
    stored = next((world["root"] / "content").rglob("photo-1.jpg")).read_bytes()
    assert b"SERIAL" not in stored and b"Exif" not in stored
    with Image.open(io.BytesIO(stored)) as photo:
        assert photo.size == (40, 60) and not photo.getexif()


def test_a_decompression_bomb_is_refused(client):
    """A small PNG claiming a huge image is refused before it is decoded."""
    from PIL import Image
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")
    assert len(out.getvalue()) < 100_000
    response = client.post("/write", {"title": "Bomb", "body": "x", "audience": "friends",
                                      "alt": "a", "action": "publish"},
                           files={"photo": Upload("b.png", "image/png", out.getvalue())})
    assert response.status == 400 and b"too large in pixels" in response.body


def test_the_desk_store_keeps_only_hashes(app, world):
    """.o2m/desk.db is 0600 and holds no cookie value."""
    c = Client(app)
    c.sign_in()
    path = world["root"] / ".o2m/desk.db"
    assert path.stat().st_mode & 0o777 == 0o600
    token = c.cookies[app.cookies.session]
    assert token.encode() not in path.read_bytes()
    assert isinstance(app.desk, DeskStore)
