"""The desk's pages and actions through its core (`DeskApp.handle`), over a real site:
keys, content/, the reader's store and the desk's store on disk."""

from __future__ import annotations

import re

import yaml
from support.desk import Client, form_value, make_app, text
from support.desk_world import NOW, PNG, friend_card, store_posts

from o2m_pub.desk.actions import Capabilities
from o2m_pub.desk.feed import relative_time
from o2m_pub.desk.forms import Upload
from o2m_pub.desk.people import card_avatar, initials
from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.protocol.cards import card_to_text
from o2m_pub.protocol.keyfile import fingerprint
from o2m_pub.reader.model import PostRow
from o2m_pub.reader.store import ReaderStore
from o2m_pub.site.content import parse_post


def entries(page: str) -> list[str]:
    return re.findall(r'<li class="entry[^"]*" data-id="([a-z2-7]+)"', page)


def short(root, title: str) -> str:
    with ReaderStore.open(root) as store:
        return next(p.short_id for p in store.timeline(limit=100)
                    if (p.title or p.markdown or "").startswith(title))


# ---------------------------------------------------------------- the timeline


def test_home_shows_posts_newest_first_with_names_avatars_and_photos(world, client):
    """Each post shows the friend's own name (from their card), initials for an avatar,
    a relative time, the note's text when it has no title, and its photo inline from
    the local store with the alt text its Markdown gives."""
    page = text(client.get("/"))
    assert entries(page) == [short(world["root"], t) for t in ("Jam", "A short", "Ridge")]
    assert "Bob Builder" in page and "(<bdi>bob</bdi>)" in page
    assert '<span class="avatar hue-' in page and ">BB</span>" in page
    assert "A short note about sourdough bread." in page
    ridge = short(world["root"], "Ridge")
    assert f'<img src="/file/{ridge}/0" alt="the ridge at dawn" loading="lazy">' in page
    photo = client.get(f"/file/{ridge}/0")
    assert (photo.status, photo.content_type, photo.body) == (200, "image/png", PNG)


def test_filters_by_friend_and_group_and_older_links(world, app, client):
    """?friend= and ?group= keep their posts; a page holds 20 and links to older ones."""
    assert entries(text(client.get("/?friend=bob"))) == [
        short(world["root"], "A short"), short(world["root"], "Ridge")]
    assert entries(text(client.get("/?group=family"))) == [short(world["root"], "Jam")]
    store_posts(world["root"], "carol", world["carol"], [
        PostRow(id=f"n{i}", audience="private", date=f"2026-10-{i + 1:02d}T00:00:00Z",
                title=f"Old {i}", markdown="x") for i in range(25)])
    page = text(client.get("/?group=family"))
    assert len(entries(page)) == 20
    older = re.search(r'href="(/\?[^"]*before=[^"]+)" id="older"', page).group(1)
    rest = text(client.get(older.replace("&amp;", "&")))
    assert len(entries(rest)) == 6 and 'id="newest"' in rest


def test_search_finds_fetched_posts_and_explains_its_syntax(world, client):
    """Full-text search over everything fetched, with the syntax in one line."""
    page = text(client.get("/search?q=sourdough"))
    assert entries(page) == [short(world["root"], "A short")]
    assert "All words must appear" in page
    assert entries(text(client.get("/search?q=plum+OR+dawn"))) == [
        short(world["root"], "Jam"), short(world["root"], "Ridge")]
    assert "Nothing fetched matches" in text(client.get("/search?q=zzzz"))


def test_a_post_page_shows_its_body_and_conversation_and_never_marks_on_get(world, client):
    """GET /post/ID shows the rendered body and the conversation (the reply form, now
    that conversations are wired) and changes nothing (THREATS.md 53); marking read is a
    POST with the CSRF token."""
    ridge = short(world["root"], "Ridge")
    page = text(client.get(f"/post/{ridge}"))
    assert "<em>dawn</em>" in page and 'id="reply-text"' in page
    with ReaderStore.open(world["root"]) as store:
        assert store.unread_count() == 3
    assert client.post(f"/post/{ridge}/read", {"read": "1", "back": "/"}).status == 303
    with ReaderStore.open(world["root"]) as store:
        assert [p.read for p in store.timeline() if p.short_id == ridge] == [True]
        assert store.unread_count() == 2
    client.post("/read-all", {"friend": "carol"})
    with ReaderStore.open(world["root"]) as store:
        assert store.unread_count() == 1


def test_relative_times_read_as_people_expect():
    """just now, minutes, hours, yesterday, days, then the date."""
    import datetime as dt
    tz = dt.timezone.utc
    cases = {"2026-11-24T11:59:30Z": "just now", "2026-11-24T11:55:00Z": "5 min ago",
             "2026-11-24T09:00:00Z": "3 h ago", "2026-11-23T08:00:00Z": "yesterday",
             "2026-11-20T12:00:00Z": "4 days ago", "2026-11-02T12:00:00Z": "2 Nov",
             "2025-11-02T12:00:00Z": "2 Nov 2025"}
    assert {k: relative_time(k, NOW, tz) for k in cases} == cases


def test_a_card_picture_is_shown_only_when_kept_and_of_its_type(tmp_path):
    """A friend's picture is the file the fetch kept for their card's hash
    (reader/avatars.py), and only if its bytes begin as its type says; else there is
    none (their initials show). test_desk_avatars.py has the rest."""
    import hashlib

    from o2m_pub.protocol.cards import Avatar
    from o2m_pub.reader.avatars import avatar_file

    class Card:
        def __init__(self, data: bytes, media_type: str = "image/png") -> None:
            self.avatar = Avatar("a.png", hashlib.sha256(data).hexdigest(), media_type)

    assert card_avatar(Card(PNG), tmp_path) is None  # not fetched
    avatar_file(tmp_path, Card(PNG).avatar).parent.mkdir()
    avatar_file(tmp_path, Card(PNG).avatar).write_bytes(PNG)
    assert card_avatar(Card(PNG), tmp_path).data == PNG
    assert card_avatar(Card(PNG, "image/jpeg"), tmp_path) is None
    svg = b"<svg onload='alert(1)'/>"
    avatar_file(tmp_path, Card(svg).avatar).write_bytes(svg)
    assert card_avatar(Card(svg), tmp_path) is None
    assert card_avatar(object(), tmp_path) is None
    assert (initials("Ada Lovelace"), initials("bob"), initials("  ")) == ("AL", "B", "?")


# ---------------------------------------------------------------- compose and edit


def test_write_a_post_with_a_photo_as_a_page_bundle(world, client):
    """The desk writes content/YEAR/SLUG/index.md as the owner would, the photo beside
    it (re-encoded, named by the desk), and the builder's parser accepts it."""
    response = client.post("/write", {"title": "Picnic: the sequel", "body": "Sun **and** tea.",
                                      "tags": "outdoors, tea", "audience": "some",
                                      "people[]": "family\nbob", "alt": "a blanket",
                                      "action": "publish"},
                           files={"photo": Upload("../../evil.png", "image/png", _photo())})
    assert response.status == 303, text(response)
    path = re.search(r"path=([^&]+)", response.headers["Location"]).group(1)
    assert path.replace("%2F", "/").endswith("/picnic-the-sequel/index.md")
    folder = next((world["root"] / "content").glob("*/picnic-the-sequel"))
    assert sorted(p.name for p in folder.iterdir()) == ["index.md", "photo-1.png"]
    post = parse_post((folder / "index.md").read_bytes(), "content/x/index.md",
                      tz=NOW.tzinfo, default_audience=("friends",))
    assert (post.title, post.tags, post.audience, post.draft) == (
        "Picnic: the sequel", ("outdoors", "tea"), ("family", "bob"), False)
    assert post.body.strip() == "Sun **and** tea.\n\n![a blanket](photo-1.png)"
    assert not list(world["root"].rglob("evil.png"))


def test_a_photo_needs_alt_text_and_must_be_an_image(world, client):
    """No alt text, or bytes that are no image whatever their name says: refused, the
    text kept in the form, nothing written."""
    form = {"title": "Photo", "body": "b", "audience": "friends", "action": "publish"}
    before = sorted((world["root"] / "content").rglob("*"))
    no_alt = client.post("/write", form, files={"photo": Upload("a.png", "image/png", _photo())})
    assert no_alt.status == 400 and "alt text" in text(no_alt) and "Photo" in text(no_alt)
    fake = client.post("/write", {**form, "alt": "x"},
                       files={"photo": Upload("a.jpg", "image/jpeg", b"<svg onload=alert(1)>")})
    assert fake.status == 400 and "cannot be read" in text(fake)
    assert sorted((world["root"] / "content").rglob("*")) == before


def test_preview_uses_the_builders_renderer(client):
    """The preview is the builder's Markdown (typography included), cleaned."""
    response = client.post("/preview", {"body": '"Quoted" -- *em* <script>x()</script>'})
    assert response.status == 200
    assert "\u201cQuoted\u201d \u2013 <em>em</em>" in text(response)
    assert "<script" not in text(response)
    page = client.post("/write", {"title": "T", "body": "**b**", "action": "preview",
                                  "audience": "friends"})
    assert "<strong>b</strong>" in text(page) and list(_content(client)) == []


def test_drafts_edit_and_delete_with_conflict_detection(world, client):
    """Save as draft, then publish (dated then); an edit of a file changed on disk since
    the form was opened is refused with the text kept; delete needs the current file."""
    response = client.post("/write", {"title": "Plans", "body": "v1", "audience": "friends",
                                      "action": "draft"})
    edit_url = response.headers["Location"]
    page = client.get(edit_url)
    path, base = form_value(page.body, "path"), form_value(page.body, "base")
    file = world["root"] / "content" / path
    assert yaml.safe_load(file.read_text().split("---")[1])["draft"] is True
    assert client.post("/posts/edit", {"path": path, "base": base, "title": "Plans",
                                       "body": "v2", "audience": "public",
                                       "action": "publish"}).status == 303
    meta = yaml.safe_load(file.read_text().split("---")[1])
    assert "draft" not in meta and meta["audience"] == "public"
    file.write_text(file.read_text() + "\nchanged by hand\n")
    stale = client.post("/posts/edit", {"path": path, "base": base, "title": "Plans",
                                        "body": "v3", "audience": "public", "action": "publish"})
    assert stale.status == 409 and "changed on disk" in text(stale) and "v3" in text(stale)
    assert "changed by hand" in file.read_text()
    assert client.post("/posts/delete", {"path": path, "base": base}).status == 409
    fresh = form_value(client.get("/posts/delete?path=" + path).body, "base")
    assert client.post("/posts/delete", {"path": path, "base": fresh}).status == 303
    assert not file.exists() and not file.parent.exists()


def test_the_owners_posts_are_listed_with_problems_first(world, client):
    """The posts page lists content/, a post the build would refuse first, with why."""
    (world["root"] / "content/2026").mkdir(parents=True, exist_ok=True)
    (world["root"] / "content/2026/good.md").write_text("---\ntitle: Good\ndate: 2026-01-01\n"
                                                        "---\nx\n")
    (world["root"] / "content/2026/bad.md").write_text("---\ntitle: Bad\n---\nno date\n")
    page = text(client.get("/posts"))
    assert page.index("no `date:`") < page.index("Good")


# ---------------------------------------------------------------- friends


def test_add_a_friend_by_pasting_a_card_only_with_the_fingerprint_confirmed(world, client):
    """Step 1 shows who the card is and its fingerprint; adding needs the box ticked or
    the fingerprint typed; a wrongly typed one is refused and nothing is written."""
    dora = friend_card(3, "dora", "Dora Explorer")
    card = card_to_text(dora)
    fp = fingerprint(dora.sign_pk, dora.box_pk)
    step1 = client.post("/friends/add", {"card": card})
    assert step1.status == 200 and fp in text(step1) and "Dora Explorer" in text(step1)
    assert form_value(step1.body, "name") == "dora"
    for extra in ({}, {"typed": "AAAA BBBB"}):
        refused = client.post("/friends/add", {"card": card, "step": "confirm", "name": "dora",
                                               **extra})
        assert refused.status == 400
    assert FriendStore(world["root"]).find_by_keys(dora.sign_pk) is None
    added = client.post("/friends/add", {"card": card, "step": "confirm", "name": "dora",
                                         "typed": fp.lower().upper()})
    assert added.status == 303 and added.headers["Location"] == "/friends/dora?done=added"
    assert FriendStore(world["root"]).get("dora").card.raw == dora.raw
    assert "Dora Explorer" in text(client.get("/friends"))
    bad = client.post("/friends/add", {"card": card[:-4] + "AAAA"})
    assert bad.status == 400


def test_rename_remove_and_groups(world, client):
    """The friend page renames, sets groups, and removes (with the box ticked)."""
    assert client.post("/friends/bob/groups", {"groups[]": "family",
                                               "new_group": "walkers"}).status == 303
    assert FriendStore(world["root"]).groups() == {"family": ("bob", "carol"),
                                                   "walkers": ("bob",)}
    assert client.post("/friends/bob/rename", {"new": "bobby"}).status == 303
    assert [f.name for f in FriendStore(world["root"]).list()] == ["bobby", "carol"]
    assert client.post("/friends/bobby/remove", {}).status == 400
    assert client.post("/friends/bobby/remove", {"confirm": "yes"}).status == 303
    assert [f.name for f in FriendStore(world["root"]).list()] == ["carol"]
    assert client.post("/groups", {"name": "pals", "members[]": "carol"}).status == 303
    assert client.post("/groups/pals/delete", {}).status == 303
    assert "pals" not in FriendStore(world["root"]).groups()


def test_renaming_or_removing_a_friend_takes_their_posts_along(world, app, client):
    """Bob renamed: his posts are shown under the new name; removed: they leave the
    timeline. While an `o2m fetch` runs, neither is done (409, said in words), so a
    fetch of his cannot store his posts under the old name afterwards."""
    from o2m_pub.reader.store import fetch_lock
    with fetch_lock(world["root"]):
        busy = client.post("/friends/bob/rename", {"new": "bobby"})
        assert busy.status == 409 and "fetch" in text(busy)
        assert client.post("/friends/bob/remove", {"confirm": "yes"}).status == 409
    assert {f.name for f in FriendStore(world["root"]).list()} == {"bob", "carol"}

    assert client.post("/friends/bob/rename", {"new": "bobby"}).status == 303
    assert {p.title for p in app.reader.timeline(friend="bobby")} == {"Ridge walk", None}
    assert app.reader.timeline(friend="bob") == []
    assert client.post("/friends/bobby/remove", {"confirm": "yes"}).status == 303
    assert [p.friend for p in app.reader.timeline()] == ["carol"]
    assert client.post("/friends/nobody/remove", {"confirm": "yes"}).status == 404


def test_the_page_after_a_rename_lists_the_posts_that_still_name_the_old_name(world,
                                                                              client):
    """As `o2m friend rename` does: after the desk renames bob to bobby, the page it leads
    to lists each post whose `audience:` still names bob (path and line, linked to its
    editor) and says in plain words what to do; a post that names him only in its text
    is not listed, and nothing in content/ changes. Removing carol, named by o2m.toml's
    group and a post, lists both on the friends page with the removal's wording. A
    rename with nothing left to change lists nothing."""
    root = world["root"]
    folder = root / "content" / "2026"
    folder.mkdir(parents=True, exist_ok=True)
    posts = {
        "walk.md": "---\ntitle: Walk\ndate: 2026-11-20\naudience: [bob, carol]\n---\nHi.\n",
        "only-bob.md": "---\ntitle: Only Bob\ndate: 2026-11-21\naudience:\n  - friends\n"
                       "  - bob\n---\nHi.\n",
        "mention.md": "---\ntitle: Mention\ndate: 2026-11-22\naudience: friends\n---\n"
                      "I saw bob today.\n",
    }
    for name, body in posts.items():
        (folder / name).write_text(body)
    answer = client.post("/friends/bob/rename", {"new": "bobby"})
    assert answer.status == 303
    page = text(client.get(answer.headers["Location"]))
    assert "Renamed." in page
    uses = page[page.index('id="old-name-uses"'):]
    uses = uses[:uses.index("</section>")]
    assert "2 places still name <strong><bdi>bob</bdi></strong> as an audience, which now " \
           "means no one" in uses
    assert '<a href="/posts/edit?path=2026%2Fonly-bob.md"><code>content/2026/only-bob.md:4' \
           "</code></a> (audience)" in uses
    assert "<code>content/2026/walk.md:4</code></a> (audience)" in uses
    assert "mention.md" not in uses
    assert "Change <bdi>bob</bdi> to <bdi>bobby</bdi> in each before your next build" in uses
    assert {name: (folder / name).read_text() for name in posts} == posts  # unchanged
    plain = text(client.get("/friends/bobby"))
    assert 'id="old-name-uses"' not in plain  # only on the page after the rename
    assert 'id="old-name-uses"' not in text(client.get("/friends/bobby?done=renamed&from=carol"))

    config = root / "o2m.toml"
    config.write_text(config.read_text() + '\n[groups]\nhikers = ["carol"]\n')
    answer = client.post("/friends/carol/remove", {"confirm": "yes"})
    assert answer.status == 303
    page = text(client.get(answer.headers["Location"]))
    uses = page[page.index('id="old-name-uses"'):]
    assert "<code>o2m.toml:" in uses and "content/2026/walk.md:4" in uses
    assert "Take <bdi>carol</bdi> out of each" in uses

    answer = client.post("/friends/bobby/rename", {"new": "robert"})
    assert 'id="old-name-uses"' not in text(client.get(answer.headers["Location"]))


def test_each_friends_feed_health_in_plain_words(world, app, client):
    """A friend never fetched, one fetched, one failing: said in words, not codes."""
    import datetime as dt
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.reader.model import Reason
    app.reader.record_failure("carol", b64u_encode(world["carol"].sign_pk), Reason.BAD_SIGNATURE,
                              "bad sig", now=dt.datetime.now(dt.timezone.utc))
    page = text(client.get("/friends"))
    assert "their feed was not signed by their key" in page
    assert "not fetched yet" not in text(client.get("/friends/carol"))


def test_your_card_as_text_and_qr(world, client):
    """The card page shows the o2m1: text and the fingerprint; the QR is an SVG."""
    page = text(client.get("/card"))
    assert "o2m1:" in page and "fingerprint" in page
    qr = client.get("/card.svg")
    assert qr.status == 200 and qr.content_type == "image/svg+xml" and b"<svg" in qr.body


def test_profile_writes_o2m_toml_and_signs_a_new_card(world, client):
    """A new display name: o2m.toml's author changes (comments kept), the card is signed
    anew with it; a wrong passphrase changes nothing."""
    from o2m_pub.friends.identity import own_card
    toml = world["root"] / "o2m.toml"
    toml.write_text("# mine\n" + toml.read_text())
    wrong = client.post("/profile", {"name": "Ada L.", "passphrase": "nope"})
    assert wrong.status == 401 and "Ada L." not in toml.read_text()
    assert client.post("/profile", {"name": "Ada L.", "passphrase": "test passphrase"}
                       ).status == 303
    assert 'author = "Ada L."' in toml.read_text() and toml.read_text().startswith("# mine")
    assert own_card(world["root"]).name == "Ada L."
    assert client.post("/profile", {"name": "bad\u202ename", "passphrase": "x"}).status == 400


def test_notifications_are_listed_and_marked_seen_by_post(world, app, client):
    """The notifications page lists them and marks nothing on GET."""
    app.reader.add_notification("new_friend_feed", "bob")
    page = text(client.get("/notifications"))
    assert "bob added you back" in page
    assert len(app.reader.notifications(unseen_only=True)) == 1
    client.post("/notifications/seen", {})
    assert app.reader.notifications(unseen_only=True) == []


# ---------------------------------------------------------------- what comes later


class Recorder:
    """A reply and react action that records its calls."""

    choices = ("♥", "👍")

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def reply(self, post, text):  # noqa: ANN001, ANN201
        self.calls.append(("reply", post.short_id, text))
        return "2026/re/index.md"

    def react(self, post, choice):  # noqa: ANN001, ANN201
        self.calls.append(("react", post.short_id, choice))


def test_reply_and_react_are_absent_until_their_capability_lands(world):
    """Without a capability its buttons are not drawn and its routes are 404: nothing
    pretends to work. (Reply and react are wired by `o2m desk` since conversations
    landed: an app made without them stands for a part not wired. Invitations too:
    tests/desk/test_desk_invitations.py checks the same of an app without them.)"""
    app = make_app(world["root"], capabilities=Capabilities())
    client = Client(app)
    client.sign_in()
    ridge = short(world["root"], "Ridge")
    for page in (text(client.get("/")), text(client.get(f"/post/{ridge}"))):
        assert "/reply" not in page and "/react" not in page and "and reply" not in page
    for path, form in ((f"/post/{ridge}/reply", {"text": "hi"}),
                       (f"/post/{ridge}/react", {"choice": "♥"})):
        assert client.post(path, form).status == 404
    app.reader.close()
    app.desk.close()


def test_reply_and_react_appear_and_are_called_once_wired(world):
    """With the actions plugged in, the buttons show and the desk calls them."""
    recorder = Recorder()
    app = make_app(world["root"], capabilities=Capabilities(reply=recorder, react=recorder))
    client = Client(app)
    client.sign_in()
    ridge = short(world["root"], "Ridge")
    assert "/react" in text(client.get("/")) and "Your reply" in text(client.get(f"/post/{ridge}"))
    client.post(f"/post/{ridge}/reply", {"text": "Lovely"})
    client.post(f"/post/{ridge}/react", {"choice": "♥", "back": "/"})
    assert recorder.calls == [("reply", ridge, "Lovely"), ("react", ridge, "♥")]
    app.reader.close()
    app.desk.close()


def _photo(size=(40, 30)) -> bytes:  # noqa: ANN001
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def _content(client) -> list:  # noqa: ANN001
    return list((client.app.root / "content").rglob("*.md"))


def test_store_key_change_rules_still_apply_when_adding_from_the_desk(world, client):
    """A card with new keys for a friend's site is a key change: shown with both
    fingerprints, added only with the change accepted."""
    import datetime as dt
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey

    from o2m_pub.protocol.cards import make_card
    new = make_card(SigningKey(bytes([9]) * 32), name="Bob Builder", url="https://bob.example/",
                    box_pk=bytes(PrivateKey(bytes([59]) * 32).public_key), tls_pin=None,
                    created=NOW)
    card = card_to_text(new)
    fp = fingerprint(new.sign_pk, new.box_pk)
    change = client.post("/friends/add", {"card": card, "step": "confirm", "name": "bob",
                                          "typed": fp})
    assert change.status == 409 and fingerprint(world["bob"].sign_pk, world["bob"].box_pk) \
        in text(change)
    assert client.post("/friends/add", {"card": card, "step": "confirm", "name": "bob",
                                        "typed": fp, "accept_key_change": "yes"}).status == 303
    assert FriendStore(world["root"]).get("bob").card.sign_pk == new.sign_pk
    assert dt  # noqa: B018
