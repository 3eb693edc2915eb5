"""Pictures and bios (PROTOCOL.md §2.4 `avatar`, `bio`): a friend's picture downloaded by
the fetch, checked (size, hash, type and pixels, with Pillow) and kept by its hash
(reader/avatars.py), shown by the desk with their bio, initials otherwise; the owner's
own picture and bio set in the desk's profile, which signs a new card that the build
publishes. Real sites, stores and renderers; the hostile pictures through a site of
files in memory (the `get` of fetch_plan), the whole way through a real fetch over TLS."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zlib

import pytest
from support.desk import form_value, text
from support.desk_world import NOW, store_posts
from support.people import Person, server_context

from o2m_pub.desk.forms import Upload
from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.friends.identity import own_card
from o2m_pub.protocol.cards import Avatar, make_card
from o2m_pub.reader.avatars import avatar_file, fetch_avatar
from o2m_pub.reader.fetch_plan import Reason, Refused, Download
from o2m_pub.reader.model import PostRow


def picture(size=(300, 200), kind: str = "PNG", colour=(40, 120, 200)) -> bytes:  # noqa: ANN001
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, kind)
    return out.getvalue()


class Site:
    """A friend's site as files in memory, answering as fetch_plan's `get` does
    (404 for what it lacks, Refused past the cap), recording each request."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, []

    def get(self, path: str, *, cap: int, etag: str | None = None,
            last_modified: str | None = None) -> Download:
        self.requests.append(path)
        data = self.files.get(path)
        if data is None:
            return Download(404)
        if len(data) > cap:
            raise Refused(Reason.OVERSIZED, f"{path}: over the cap of {cap:,} bytes")
        return Download(200, data)


def card_with(data: bytes, media_type: str = "image/png", *, seed: int = 9,
              digest: str | None = None, bio: str | None = None):  # noqa: ANN201 - a Card
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey
    avatar = Avatar(path="media/me/avatar.png", sha256=digest or hashlib.sha256(data).hexdigest(),
                    media_type=media_type)
    return make_card(SigningKey(bytes([seed]) * 32), name="Dora Explorer",
                     url="https://dora.example/", box_pk=bytes(
                         PrivateKey(bytes([seed + 50]) * 32).public_key),
                     tls_pin=None, created=NOW, avatar=avatar, bio=bio)


def test_a_friends_picture_is_downloaded_checked_and_kept_by_its_hash(tmp_path):
    """The picture the card names is downloaded from the friend's site, its hash and
    content checked, and kept as it came (§2.4: re-encoded nothing) under
    .o2m/avatars/SHA256, 0600; a second fetch asks nothing (kept by hash)."""
    data = picture()
    card = card_with(data)
    site = Site({"media/me/avatar.png": data})
    assert fetch_avatar(card, site.get, tmp_path) is None
    kept = avatar_file(tmp_path, card.avatar)
    assert kept.read_bytes() == data and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert fetch_avatar(card, site.get, tmp_path) is None
    assert site.requests == ["media/me/avatar.png"]


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims another size (its CRC made right)."""
    png = bytearray(picture((1, 1)))
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    return bytes(png)


def _bomb() -> bytes:
    """A real decompression bomb: 6000 x 6000 black pixels (36 M, 108 MB decoded) in a
    PNG of a few dozen KiB."""
    from PIL import Image
    out = io.BytesIO()
    Image.new("L", (6000, 6000)).save(out, "PNG", optimize=True)
    return out.getvalue()


HOSTILE = {
    "too big": (b"\x89PNG\r\n\x1a\n" + b"\0" * (512 * 1024 + 1), "image/png",
                "could not be downloaded (oversized)"),
    "not an image": (b"<svg onload='alert(1)'/>", "image/png", "refused: not a readable PNG"),
    "another type": (picture(kind="JPEG"), "image/png", "refused: not a readable PNG"),
    "damaged": (picture()[:60], "image/png", "refused: not a readable PNG"),
    "a bomb": (_bomb(), "image/png", "refused: too large in pixels"),
    "a header claiming a bomb": (_png_claiming(100_000, 100_000), "image/png",
                                 "refused: too large in pixels"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_picture_is_refused_and_nothing_is_kept(tmp_path, case):
    """Too big (the 512 KiB cap, at the download), not an image, another type than the
    card says, damaged, a decompression bomb, or a header claiming billions of
    pixels: refused with the reason, nothing kept, and the friend's fetch goes on."""
    data, media_type, reason = HOSTILE[case]
    card = card_with(data, media_type)
    got = fetch_avatar(card, Site({"media/me/avatar.png": data}).get, tmp_path)
    assert got is not None and reason in got, got
    assert not (tmp_path / "avatars").exists() or list((tmp_path / "avatars").iterdir()) == []


def test_a_picture_that_is_not_the_one_the_card_names_is_refused(tmp_path):
    """The bytes on the site must hash to the card's `sha256` (a host cannot swap the
    picture); a missing picture is said as such."""
    card = card_with(picture(), digest="0" * 64)
    got = fetch_avatar(card, Site({"media/me/avatar.png": picture()}).get, tmp_path)
    assert got == "the picture is not the one the card names (its hash differs)"
    assert fetch_avatar(card, Site({}).get, tmp_path) == \
        "the picture could not be downloaded (HTTP 404)"


def test_the_desk_shows_a_friends_picture_and_bio_else_initials(world, client):
    """Before the fetch kept Dora's picture the desk shows her initials; after, her
    picture on the timeline, the friends page and her page (served with its type,
    nosniff), and her bio there, each line as text (escaped)."""
    data = picture()
    card = card_with(data, bio="Maps & <b>boots</b>\nand the odd trick")
    FriendStore(world["root"]).add("dora", card, now=NOW)
    store_posts(world["root"], "dora", card, [PostRow(
        id="d1", audience="private", date="2026-11-23T10:00:00Z", title="Up the hill",
        markdown="Hello.")])
    page = text(client.get("/"))
    assert ">DE</span>" in page and 'src="/avatar/dora"' not in page
    assert client.get("/avatar/dora").status == 404
    state_dir = world["root"] / ".o2m"
    assert fetch_avatar(card, Site({"media/me/avatar.png": data}).get, state_dir) is None
    for path in ("/", "/friends", "/friends/dora"):
        assert '<img class="avatar' in text(client.get(path)) and \
            'src="/avatar/dora"' in text(client.get(path)), path
    served = client.get("/avatar/dora")
    assert (served.status, served.content_type, served.body) == (200, "image/png", data)
    mine = text(client.get("/friends/dora"))
    assert ('<p class="bio" id="bio"><bdi>Maps &amp; &lt;b&gt;boots&lt;/b&gt;</bdi><br>'
            "<bdi>and the odd trick</bdi></p>") in mine
    assert "Maps &amp; &lt;b&gt;boots&lt;/b&gt; and the odd" in text(client.get("/friends"))


def test_the_fetch_brings_a_friends_picture_over_tls(tmp_path, ca):
    """End to end: Ada gives her card a picture (`o2m card --renew --avatar`) and builds;
    Bob's `o2m fetch` takes her new card and her picture from her site over TLS, and
    keeps it by its hash."""
    from support.people import o2m
    authority, bundle = ca
    context = server_context(authority)
    ada, bob = Person(tmp_path, "ada", context), Person(tmp_path, "bob", context)
    ada.befriend(bob)
    bob.befriend(ada)
    (tmp_path / "me.png").write_bytes(picture((64, 64)))
    o2m("-C", str(ada.root), "card", "--renew", "--avatar", str(tmp_path / "me.png"))
    ada.build()
    got = bob.fetch(bundle)
    assert got["ada"].ok, got
    card = FriendStore(bob.root).get("ada").card
    assert card.avatar == ada.card.avatar
    assert avatar_file(bob.root / ".o2m", card.avatar).read_bytes() == picture((64, 64))
    ada.server.stop()
    bob.server.stop()


# ---------------------------------------------------------------- the owner's profile


def _profile(client, **fields):  # noqa: ANN001, ANN003, ANN202
    page = text(client.get("/profile"))
    form = {"csrf": client.csrf(), "name": form_value(page.encode(), "name"),
            "passphrase": "test passphrase", **fields}
    files = fields.pop("files", None)
    form.pop("files", None)
    return client.request("POST", "/profile", form, files=files)


def test_the_owner_sets_a_picture_and_a_bio_and_a_new_card_is_signed(world, client):
    """A 640 x 480 photo uploaded in the profile becomes a 256 px square PNG in
    keys/avatar (no metadata), named by a new card (a higher seq) with the bio; the
    profile shows it; the next build publishes the card and the picture where it
    says."""
    from PIL import Image

    from o2m_pub.site.build import build_site
    root = world["root"]
    before = own_card(root)
    photo = picture((640, 480), "JPEG")
    response = _profile(client, bio="Walks,\r\nbread and code.",
                        files={"avatar": Upload("me.jpg", "image/jpeg", photo)})
    assert response.status == 303, text(response)
    card = own_card(root)
    assert card.seq > before.seq and card.bio == "Walks,\nbread and code."
    kept = (root / "keys" / "avatar").read_bytes()
    assert card.avatar.sha256 == hashlib.sha256(kept).hexdigest()
    assert card.avatar.media_type == "image/png"
    with Image.open(io.BytesIO(kept)) as image:
        assert (image.format, image.size) == ("PNG", (256, 256)) and not image.info.get("exif")
    page = text(client.get("/profile"))
    assert 'id="own-avatar"' in page and "Walks,\nbread and code.</textarea>" in page
    assert client.get("/profile/avatar").body == kept
    from o2m_pub.friends.identity import load_identity
    report = build_site(root, unlock=lambda: load_identity(root, b"test passphrase"))
    assert not report.problems, report.problems
    assert (root / "build" / card.avatar.path).read_bytes() == kept
    published = json.loads((root / "build" / ".well-known/o2m-card.json").read_bytes())
    assert published["seq"] == card.seq and published["bio"] == card.bio


def test_the_owner_can_take_the_picture_and_bio_away(world, client):
    """"No picture" and an empty bio: the new card has neither."""
    _profile(client, bio="Hello", files={"avatar": Upload("a.png", "image/png", picture())})
    assert own_card(world["root"]).avatar is not None
    assert _profile(client, bio="", remove_avatar="yes").status == 303
    card = own_card(world["root"])
    assert (card.avatar, card.bio) == (None, None)


@pytest.mark.parametrize("upload, said", [
    (b"<svg onload='alert(1)'/>", "cannot be read"),
    (b"GIF89a" + b"\0" * 20, "cannot be read"),
    (None, "too large in pixels"),  # the bomb
], ids=["not an image", "damaged", "a decompression bomb"])
def test_a_hostile_upload_changes_nothing(world, client, upload, said):
    """Not an image, a damaged one, or a decompression bomb: refused before anything is
    written or signed; the card and keys/ stay as they were."""
    root = world["root"]
    before = own_card(root).raw
    data = upload if upload is not None else _bomb_for_upload()
    response = _profile(client, files={"avatar": Upload("x.png", "image/png", data)})
    assert response.status == 400 and said in text(response)
    assert own_card(root).raw == before and not (root / "keys" / "avatar").exists()


def _bomb_for_upload() -> bytes:
    """Past the desk's 40 M pixels for a photo: 7000 x 7000, a few dozen KiB."""
    from PIL import Image
    out = io.BytesIO()
    Image.new("L", (7000, 7000)).save(out, "PNG", optimize=True)
    return out.getvalue()


def test_a_bio_past_the_cards_limit_is_refused(world, client):
    """A bio of 281 characters is refused with the reason, nothing signed."""
    before = own_card(world["root"]).raw
    response = _profile(client, bio="x" * 281)
    assert response.status == 400 and "at most 280 characters" in text(response)
    assert own_card(world["root"]).raw == before
