"""The desk's cache of photos of friends' public posts (desk/images.py), against a real
HTTPS host on 127.0.0.1 and real files in the state folder: bounded in bytes and in
files, the least recently shown evicted first, across desk runs (THREATS.md 52)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import nacl.signing
import pytest

from o2m_pub.desk.images import CACHE_DIR, MAX_CACHE_BYTES, MAX_IMAGE_BYTES, ImageCache
from o2m_pub.protocol.cards import make_card
from o2m_pub.protocol.public_media import ListedFile

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def friend_site(https_folder, tmp_path):
    """A friend's host with photos under p/, their card, and Bob's state folder."""
    url, folder, bundle = https_folder
    (folder / "p").mkdir()
    card = make_card(nacl.signing.SigningKey(b"\1" * 32), name="Ada", url=url,
                     box_pk=bytes(range(32)), tls_pin=None,
                     created=dt.datetime.now(dt.timezone.utc))
    state = tmp_path / ".o2m"
    state.mkdir()
    return url, folder / "p", str(bundle), card, state


def listed(url: str, path) -> ListedFile:  # noqa: ANN001 - a Path
    """The file at `path` as a signed feed lists it at `url` (PROTOCOL.md §1.4)."""
    data = path.read_bytes()
    return ListedFile(url, hashlib.sha256(data).hexdigest(), len(data))


def _cached(state) -> dict[str, int]:  # noqa: ANN001 - a Path
    return {p.name: p.stat().st_size for p in (state / CACHE_DIR).iterdir()}


def test_threat_52_one_friends_photos_under_many_urls_stay_within_the_cache_bound(
        friend_site):
    """Ten photos of one friend, each under three URLs (`?v=0`, `?v=1`, `?v=2`: three
    entries of the cache): the folder never holds more than its bound in bytes, the
    photo just fetched is always kept, and each answer is still the photo. (Unbounded,
    the 30 URLs took 30 photos' worth: 300 MiB of 10 MiB photos.)"""
    url, photos, bundle, card, state = friend_site
    size = 200_000
    for i in range(10):
        (photos / f"{i}.png").write_bytes(PNG + os.urandom(size - len(PNG)))
    cache = ImageCache(state, ca_bundle=bundle, max_bytes=5 * size + size // 2)
    for i in range(10):
        for v in range(3):
            photo = listed(f"{url}p/{i}.png?v={v}", photos / f"{i}.png")
            got = cache.fetch(photo, card)
            assert got is not None and got[0] == (photos / f"{i}.png").read_bytes()
            assert cache.cached(photo) == got  # just kept: never the one evicted
            assert sum(_cached(state).values()) <= cache.max_bytes
    assert 5 == len(_cached(state))
    assert MAX_IMAGE_BYTES < MAX_CACHE_BYTES  # the default bound keeps any one photo


def test_threat_52_the_least_recently_shown_photo_is_evicted_first_across_desk_runs(
        friend_site):
    """A cache with room for three photos holds a, b, c (kept in that order); a is
    shown again; a desk started afresh (a new cache on the same folder) fetches d: b,
    the least recently shown, is evicted, and a, c and d stay. A bound in files holds
    too: two files at most, however small the photos."""
    url, photos, bundle, card, state = friend_site
    for name in "abcd":
        (photos / f"{name}.png").write_bytes(PNG + os.urandom(50_000))
    room = 3 * (50_000 + len(PNG))
    first = ImageCache(state, ca_bundle=bundle, max_bytes=room)
    for name in "abc":
        assert first.fetch(listed(f"{url}p/{name}.png", photos / f"{name}.png"), card)
    assert first.cached(listed(f"{url}p/a.png", photos / "a.png")) is not None

    again = ImageCache(state, ca_bundle=bundle, max_bytes=room)
    assert again.fetch(listed(f"{url}p/d.png", photos / "d.png"), card) is not None
    kept = {name for name in "abcd"
            if again.cached(listed(f"{url}p/{name}.png", photos / f"{name}.png")) is not None}
    assert {"a", "c", "d"} == kept

    few = ImageCache(state, ca_bundle=bundle, max_files=2)
    (photos / "tiny.png").write_bytes(PNG)
    for v in range(5):
        assert few.fetch(listed(f"{url}p/tiny.png?v={v}", photos / "tiny.png"), card)
    assert 2 == len(_cached(state))
    assert few.cached(listed(f"{url}p/tiny.png?v=4", photos / "tiny.png")) is not None


def test_every_photo_a_post_may_list_is_shown_and_no_more():
    """A post's item may list 64 files (PROTOCOL.md §1.4); the desk shows as many of its
    photos inline (it stopped at 50, so the last listed photos were links), and a photo
    the item does not list stays a link whatever its place."""
    from o2m_pub.desk.images import own_images
    from o2m_pub.protocol.post_limits import MAX_PUBLIC_MEDIA
    from o2m_pub.reader.sanitize import REMOTE_IMAGE_CLASS

    site = "https://ada.example/"
    urls = [f"{site}2026/trip/{i}.png" for i in range(MAX_PUBLIC_MEDIA + 1)]
    rendered = "".join(f'<p><a class="{REMOTE_IMAGE_CLASS}" href="{u}" rel="nofollow">'
                       f"[image from ada.example]</a></p>" for u in urls)
    media = tuple(ListedFile(u, "0" * 64, 10) for u in urls[1:])  # the first is not listed
    assert [image.url for image in own_images(rendered, site, media)] == urls[1:]
    again = rendered + rendered.split("</p>")[1] + "</p>"  # one listed photo shown twice
    assert len(own_images(again, site, media)) == MAX_PUBLIC_MEDIA
