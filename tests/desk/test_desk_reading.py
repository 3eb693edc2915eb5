"""What the old web reader (reader/web.py, retired: `o2m reader` is the desk) protected,
held by the desk: no state change on a cross-site GET (THREATS.md 53), clear pages for
an ambiguous id or a busy store, downloads for what is not a raster image, labelled
landmarks, and a friend's names and titles autoescaped everywhere. Through the desk's
core (`DeskApp.handle`) over a real site and real stores."""

from __future__ import annotations

import re
import sqlite3

import pytest
from markupsafe import escape
from support.desk import text
from support.desk_world import PNG, friend_card, store_posts

from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.reader.model import PostRow, short_id_for
from o2m_pub.reader.store import ReaderStore


def titles(root) -> dict[str, str]:
    with ReaderStore.open(root) as store:
        return {p.title or "": p.short_id for p in store.timeline(limit=1000)}


def state(root) -> tuple[int, list[bool]]:
    """(unread posts, each notification's seen flag)."""
    with ReaderStore.open(root) as store:
        return store.unread_count(), [n.seen for n in store.notifications()]


NAVIGATION = {"sec-fetch-site": "same-origin", "sec-fetch-mode": "navigate",
              "sec-fetch-dest": "document", "sec-fetch-user": "?1"}


@pytest.mark.parametrize("headers", [
    {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image"},
    {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"},
    {"sec-fetch-site": "same-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"},
    {**NAVIGATION, "sec-fetch-dest": "iframe"},
    {**NAVIGATION, "sec-purpose": "prefetch"},
    {},  # a client that does not say where the request comes from (curl)
    NAVIGATION,  # the person's own click: in the desk, reading is a POST all the same
    {**NAVIGATION, "sec-fetch-site": "none"},  # an address typed in
], ids=["cross-site image", "cross-site link", "same-site link", "frame", "prefetch",
        "no Sec-Fetch", "own navigation", "typed"])
def test_threat_53_a_cross_site_get_changes_nothing(world, client, headers):
    """THREATS 53 (security review finding 6): a GET or HEAD of a post, a friend's
    attachment, the timeline or the notifications, whoever sends it and whatever it
    says of itself, shows the page and changes nothing: the post stays unread, the
    notification unseen. Only the desk's own forms (POST, CSRF token) mark them, and
    its script marks an opened post read only when the person opened it from the desk
    or the address bar (Fetch Metadata: same-origin or none, a document)."""
    root = world["root"]
    store_posts(root, "bob", world["bob"], [], notifications=[("reply", "a reply")])
    before = state(root)
    ridge = titles(root)["Ridge walk"]
    for method, path in (("GET", f"/post/{ridge}"), ("HEAD", f"/post/{ridge}"),
                         ("GET", "/notifications"), ("GET", "/"), ("GET", "/?friend=bob"),
                         ("GET", f"/file/{ridge}/0")):
        assert client.request(method, path, headers=headers).status == 200, path
    assert state(root) == before and before == (3, [False])
    own = headers.get("sec-fetch-site") in ("same-origin", "none") and \
        headers.get("sec-fetch-dest") == "document" and "sec-purpose" not in headers
    page = text(client.get(f"/post/{ridge}", headers=headers))
    assert ('data-mark-read="1"' in page) == own  # desk.js marks an opened post read
    assert client.post(f"/post/{ridge}/read", {"read": "1", "back": "/"}).status == 303
    assert client.post("/notifications/seen", {}).status == 303
    assert state(root) == (2, [True])


def _two_ids_sharing_a_prefix(sign_pk: str) -> tuple[str, str]:
    """Two post ids of one friend whose short ids start with the same 4 characters."""
    seen: dict[str, str] = {}
    for i in range(100_000):
        prefix = short_id_for(sign_pk, f"p{i}")[:4]
        if prefix in seen:
            return seen[prefix], f"p{i}"
        seen[prefix] = f"p{i}"
    raise AssertionError("no shared prefix")  # pragma: no cover - a birthday: ~1,300 ids


def test_an_ambiguous_id_or_a_busy_store_is_a_clear_page_not_a_500(world, app, client):
    """A typed /post/PREFIX, even one matching several posts, names nothing: a 404 page
    (and so for its files); marking a post read while another o2m process writes the
    store is a 503 page saying so, and nothing is marked."""
    root = world["root"]
    sign_pk = b64u_encode(world["bob"].sign_pk)
    first, second = _two_ids_sharing_a_prefix(sign_pk)
    store_posts(root, "bob", world["bob"], [
        PostRow(id=pid, audience="private", date="2026-11-01T00:00:00Z", title=pid,
                markdown="text") for pid in (first, second)])
    full = short_id_for(sign_pk, first)
    for path in (f"/post/{full[:4]}", f"/post/{full[:8]}"):
        response = client.get(path)
        assert response.status == 404 and b"No such post" in response.body
    assert client.get(f"/file/{full[:4]}/0").status == 404
    unread = state(root)[0]
    app.reader.db.execute("PRAGMA busy_timeout=0")  # the writer below holds on: fail now
    writer = sqlite3.connect(root / ".o2m" / "reader.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        response = client.post(f"/post/{full}/read", {"read": "1", "back": "/"})
        assert response.status == 503 and b"busy" in response.body
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert state(root)[0] == unread
    assert client.post(f"/post/{full}/read", {"read": "1", "back": "/"}).status == 303
    assert state(root)[0] == unread - 1


def test_only_raster_images_show_inline_other_files_are_downloads(world, client):
    """A friend's PNG is served as an image (nosniff, as every answer); an SVG or HTML
    attachment is a download, never a page of the desk's origin; a file or post that
    is not there is a 404; a cursor that is no cursor is refused."""
    root = world["root"]
    with ReaderStore.open(root) as store:
        store.attachments.save("cd" * 32, b"<svg onload='alert(1)'/>")
    store_posts(root, "bob", world["bob"], [PostRow(
        id="f1", audience="private", date="2026-11-23T10:00:00Z", title="Files",
        markdown="Two files.", attachments=(
            {"name": "drawing.svg", "media_type": "image/svg+xml", "hash": "cd" * 32,
             "size": 24},
            {"name": "gone.png", "media_type": "image/png", "hash": "ef" * 32, "size": 9}))])
    ids = titles(root)
    png = client.get(f"/file/{ids['Ridge walk']}/0")
    assert (png.status, png.content_type, png.body) == (200, "image/png", PNG)
    svg = client.get(f"/file/{ids['Files']}/0")
    assert (svg.status, svg.content_type) == (200, "application/octet-stream")
    assert svg.headers["Content-Disposition"].startswith('attachment; filename="drawing.svg"')
    page = text(client.get(f"/post/{ids['Files']}"))
    assert "<img" not in page.split('id="body">', 1)[1].split("</article>")[0]
    assert client.get(f"/file/{ids['Files']}/1").status == 404  # not in the store
    assert client.get(f"/file/{ids['Files']}/7").status == 404
    assert client.get("/post/nosuchpost").status == 404
    assert client.get("/?before=junk").status == 400


def _navs(html: str) -> list[tuple[str, str]]:
    """(opening tag, content) of every <nav> of a page."""
    return re.findall(r"(<nav\b[^>]*>)(.*?)</nav>", html, re.S)


def test_every_nav_is_labelled_uniquely_and_none_is_empty(world, client):
    """Landmarks (clients review fix 10, axe `landmark-unique`): on the timeline (both
    of its pages), a friend's posts, a post, the friends and the notifications, every
    <nav> has an aria-label of its own and at least one link."""
    store_posts(world["root"], "bob", world["bob"], [
        PostRow(id=f"p{i}", audience="private", date=f"2026-11-{i + 1:02d}T00:00:00Z",
                title=f"Post {i}", markdown="text") for i in range(25)])
    first = text(client.get("/"))
    older = re.search(r'href="([^"]*before=[^"]+)"', first)
    assert older is not None, "no link to older posts"
    pages = [first, text(client.get(older.group(1).replace("&amp;", "&"))),
             text(client.get("/?friend=bob")),
             text(client.get(f"/post/{titles(world['root'])['Post 3']}")),
             text(client.get("/friends")), text(client.get("/notifications"))]
    for html in pages:
        navs = _navs(html)
        assert navs
        labels = [re.search(r'aria-label="([^"]+)"', tag) for tag, _ in navs]
        assert all(labels), navs
        assert len({m.group(1) for m in labels}) == len(labels)
        assert all(re.search(r"<a\b", content) for _, content in navs), navs


@pytest.mark.parametrize("name", [
    "</title><script>document.title='pwned'</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }}",
])
def test_threat_36_names_and_titles_are_autoescaped(world, client, name):
    """A friend's card name, a post's title and its tags holding markup (or template
    syntax) are text wherever the desk shows them: the page title, the heading, the
    timeline, the friend's filter and the friends page hold the escaped text, never
    the markup."""
    card = friend_card(9, "mallory", display=name)
    FriendStore(world["root"]).add("mallory", card, now=__import__(
        "support.desk_world", fromlist=["NOW"]).NOW)
    store_posts(world["root"], "mallory", card, [PostRow(
        id="m1", audience="private", date="2026-11-23T10:00:00Z", title=name, tags=(name,),
        markdown="text")])
    post = titles(world["root"])[name]
    pages = {path: text(client.get(path)) for path in (
        "/", f"/post/{post}", "/?friend=mallory", "/friends", "/friends/mallory")}
    for path, page in pages.items():
        assert "<script>document" not in page and "<img src=x" not in page, path
        # "{{ 7*7 }}" never evaluated: no text on the page reads 49 (tokens and hashes in
        # attributes, which may hold those digits by chance, are not text)
        assert not re.search(r">[^<]*\b49\b[^<]*<", page.replace(post, "")), path
        assert str(escape(name)).replace("&#39;", "'") in page.replace("&#39;", "'"), path
    assert f"<title>{escape(name)}".replace("&#39;", "'") in \
        pages[f"/post/{post}"].replace("&#39;", "'")


def test_notifications_are_in_plain_words(world, client):
    """Each kind of notification reads as a sentence about the friend, in the desk and
    `o2m notifications` alike: "bob accepted your invitation", "carol's card moved to a
    new address", "a fetch of bob failed: …"; a friend's words in them are escaped."""
    root = world["root"]
    store_posts(root, "bob", world["bob"], [], notifications=[
        ("invitation_accepted", ""), ("unreachable", "connection refused"),
        ("key_rotated", "moved to a new key on 2026-11-20"),
        ("card_changed", "name (Bob <b>B</b>), picture")])
    store_posts(root, "carol", world["carol"], [], notifications=[
        ("moved", "https://carol.example/new/"), ("new_friend_feed", "their feed appeared"),
        ("over_quota", "over 50 MB")])
    page = text(client.get("/notifications"))
    for line in (
            "bob accepted your invitation",
            "a fetch of bob failed: connection refused (the next o2m fetch tries again; "
            "their posts stay)",
            "bob moved to a new key on 2026-11-20: o2m follows them there, and their posts stay",
            "bob changed their name (Bob &lt;b&gt;B&lt;/b&gt;), picture",
            "carol&#39;s card moved to a new address: https://carol.example/new/",
            "carol added you back: you can read what they share with you now<",
            "carol&#39;s new posts were not taken: they would use more room than you give one "
            "friend: over 50 MB"):
        assert line in page, line
