"""A public post's listed files (`_o2m.media`, PROTOCOL.md §1.4) on the reader's side:
checked as untrusted input (a bad list is ignored whole, a bad entry alone, the item
read all the same), kept with the stored post, and a store of schema 3 brought to 4 so
that the lists of what it stored before arrive at the next fetch (THREATS.md 54). Real
signatures by real keys, the fetch plan over an in-memory site, a real SQLite store."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3

import nacl.public
import nacl.signing
import pytest

from o2m_pub.protocol import feeds
from o2m_pub.protocol.feed_signature import sign_feed
from o2m_pub.protocol.public_media import ListedFile
from o2m_pub.reader.attachments import FriendAttachments
from o2m_pub.reader.fetch_plan import (
    Download,
    FriendKeys,
    Refused,
    fetch_friend,
    parse_public_feed,
)
from o2m_pub.reader.model import FriendUpdate
from o2m_pub.reader.store import SCHEMA_VERSION, ReaderStore

SITE = "https://ada.example/"
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
ADA_SIGN = nacl.signing.SigningKey(bytes([1]) * 32)
ADA_BOX = nacl.public.PrivateKey(bytes([2]) * 32)
ADA_FEED = nacl.signing.SigningKey(bytes([5]) * 32)
BOB_SIGN = nacl.signing.SigningKey(bytes([3]) * 32)
BOB_BOX = nacl.public.PrivateKey(bytes([4]) * 32)
PHOTO = ListedFile(SITE + "media/0123456789abcdef/view.png", "ab" * 32, 1234)
GOOD = PHOTO.to_json()


def feed(media: object, *, missing: bool = False) -> bytes:
    """Ada's feed.json: one post showing her photo, its `_o2m.media` given (or none)."""
    extension: dict = {"id": "AAECAwQFBgcICQoLDA0ODw"}
    if not missing:
        extension["media"] = media
    item = {"id": SITE + "2026/hello/", "url": SITE + "2026/hello/", "title": "Hello",
            "content_html": f'<p><img src="{PHOTO.url}" alt="a view"></p>',
            "date_published": "2026-03-01T10:00:00+01:00", "_o2m": extension}
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [item]}).encode()


def listed(media: object) -> tuple[ListedFile, ...]:
    [row] = parse_public_feed(feed(media), SITE, signed=True)
    assert "Hello" == row.title  # the item is read whatever its list holds
    return row.media


def test_threat_54_a_malformed_media_list_is_ignored_and_its_item_read():
    """§1.4: a `media` that is no array, or of more than 64 entries, is ignored whole; an
    entry that breaks the rule is ignored alone (the good ones stay); of two entries
    for one URL the first stands; unknown keys in an entry are ignored. The post is
    read in every case: only its photos would stay links."""
    assert (PHOTO,) == listed([GOOD])
    assert (PHOTO,) == listed([{**GOOD, "caption": "unknown keys are fine"}])
    for whole in ("a string", {"url": PHOTO.url}, 7, None, [GOOD] * 65):
        assert () == listed(whole), whole
    assert 64 == len(listed([{**GOOD, "url": f"{SITE}m/{i}.png"} for i in range(64)]))
    bad_entries = [
        "not an object", [PHOTO.url], {"sha256": GOOD["sha256"], "size": 1},
        {**GOOD, "url": "https://evil.example/view.png"},  # not under her site
        {**GOOD, "url": "https://ada.example.evil/x.png"},
        {**GOOD, "url": SITE},  # the site itself, no file
        {**GOOD, "url": PHOTO.url + "#top"},  # a fragment: no file's URL
        {**GOOD, "url": SITE + "x" * 2048},  # over 2,048 characters
        {**GOOD, "url": 7},
        {**GOOD, "sha256": "AB" * 32}, {**GOOD, "sha256": "ab" * 31},
        {**GOOD, "sha256": "zz" * 32}, {**GOOD, "sha256": None},
        {**GOOD, "size": True}, {**GOOD, "size": "1234"}, {**GOOD, "size": None},
    ]
    for entry in bad_entries:
        assert () == listed([entry]), entry
    second = {**GOOD, "url": SITE + "media/2/b.png"}
    assert (PHOTO, ListedFile(**second)) == listed([*bad_entries, GOOD, second])
    assert (PHOTO,) == listed([GOOD, {**GOOD, "sha256": "cd" * 32}])  # the first stands
    assert () == listed(None) == tuple(parse_public_feed(feed(None, missing=True), SITE)[0].media)
    for number in (-1, 1 << 53, 1.5):  # §2.1's parser: such a number refuses feed.json
        with pytest.raises(Refused, match="public feed.json: (integer out of range|floats)"):
            parse_public_feed(feed([{**GOOD, "size": number}]), SITE, signed=True)


def test_threat_54_the_listed_files_are_kept_with_the_stored_post(tmp_path):
    """The list parsed from the feed is what the store gives back with the post, and
    its bytes count toward the friend's quota (THREATS.md 52)."""
    rows = parse_public_feed(feed([GOOD]), SITE, signed=True)
    with ReaderStore.open(tmp_path) as store:
        store.apply_update(FriendUpdate("ada", "KEY", upserts=rows), now=NOW)
        [post] = store.timeline()
        assert (PHOTO,) == post.media
        html_bytes = len(rows[0].html.encode())
        assert store.used("ada") == html_bytes + len(json.dumps([GOOD]))


class AdaSite:
    """Ada's site as Bob's fetch sees it: no feed for him yet (404), her signed public
    feed. It answers 304 to a validator it gave, and records each path asked for."""

    def __init__(self, data: bytes, seq: int = 1) -> None:
        sig = sign_feed(ADA_FEED, author_sign_pk=bytes(ADA_SIGN.verify_key), feed=data,
                        seq=seq, updated=NOW)
        self.files = {"feed.json": data, "feed.json.sig": sig}
        self.asked: list[tuple[str, str | None]] = []

    def get(self, path: str, *, cap: int, etag: str | None = None,
            last_modified: str | None = None) -> Download:
        self.asked.append((path, etag))
        data = self.files.get(path)
        if data is None:
            return Download(404)
        tag = f'"{hashlib.sha256(data).hexdigest()[:12]}"'
        return Download(304) if etag == tag else Download(200, data, etag=tag)


def bob_fetches(store: ReaderStore, site: AdaSite, signed: bool = True):  # noqa: ANN201
    """One `o2m fetch` of Ada for Bob (her card names a feed key, or, not `signed`, none:
    a site of o2m 1.0, its feed.json read alone), stored; its outcome."""
    ada_pk, bob_pk = bytes(ADA_SIGN.verify_key), bytes(BOB_SIGN.verify_key)
    secrets = feeds.pairwise_secrets(bytes(BOB_BOX), bytes(ADA_BOX.public_key), ada_pk, bob_pk)
    keys = FriendKeys("ada", ada_pk, bytes(ADA_BOX.public_key), bob_pk, secrets, SITE,
                      feed_pk=bytes(ADA_FEED.verify_key) if signed else None)
    site.asked.clear()
    outcome = fetch_friend(keys, store.friend_state("ada"), store.stored_object_hashes("ada"),
                           site.get, FriendAttachments(store.attachments,
                                                       store.credited_attachments("ada")), NOW)
    assert outcome.update is not None and outcome.public_error is None, outcome
    store.apply_update(outcome.update, now=NOW)
    return outcome


def public_asks(site: AdaSite) -> list[tuple[str, str | None]]:
    return [(path, etag) for path, etag in site.asked if path.startswith("feed.json")]


def test_threat_54_a_store_of_schema_3_gets_the_lists_at_the_next_fetch(tmp_path):
    """Bob's reader of before stored Ada's signed feed, list and all, and kept no list
    (schema 3: made here by taking the columns of 4 away). Opened by this o2m, the
    store is schema 4: the post is there, read still, with no list (its photo would be
    a link). The next fetch reads her feed.json again though its signature is the one
    accepted (same seq, same hash, a 304 otherwise), and stores the post with its list,
    still read, and reports no news (it said "1 updated" of every public post: found
    by a review); the fetch after it is a 304 again."""
    site = AdaSite(feed([GOOD]))
    with ReaderStore.open(tmp_path) as store:
        bob_fetches(store, site)
        store.mark_read([store.timeline()[0].short_id])
    as_schema_3(tmp_path)

    with ReaderStore.open(tmp_path) as store:
        version = store.db.execute("PRAGMA user_version").fetchone()[0]
        assert 4 == SCHEMA_VERSION == version
        [post] = store.timeline()
        assert ((), True) == (post.media, post.read)
        state = store.friend_state("ada")
        assert (1, 1) == (state.pub_reread, state.pub_seq)  # the rollback guard stays
        assert state.sig_etag is not None

        outcome = bob_fetches(store, site)
        assert (0, 0) == (outcome.new, outcome.updated)
        assert [("feed.json.sig", None), ("feed.json", None)] == public_asks(site)
        [post] = store.timeline()
        assert ((PHOTO,), True) == (post.media, post.read)
        assert (0, 1) == (store.friend_state("ada").pub_reread, store.friend_state("ada").pub_seq)

        bob_fetches(store, site)
        assert [("feed.json.sig", state.sig_etag)] == public_asks(site)
        assert (PHOTO,) == store.timeline()[0].media


def test_a_store_of_schema_3_reads_an_unsigned_feed_again_too(tmp_path):
    """The same for a friend read without a signature (no `feed_pk`): the first fetch
    after the upgrade asks for feed.json without its validator, the next one with it."""
    site = AdaSite(feed([GOOD]))
    with ReaderStore.open(tmp_path) as store:
        bob_fetches(store, site, signed=False)
        etag = store.friend_state("ada").pub_etag
        assert etag is not None
    as_schema_3(tmp_path)
    with ReaderStore.open(tmp_path) as store:
        assert () == store.timeline()[0].media
        bob_fetches(store, site, signed=False)
        assert [("feed.json", None)] == public_asks(site)
        assert (PHOTO,) == store.timeline()[0].media
        bob_fetches(store, site, signed=False)
        assert [("feed.json", etag)] == public_asks(site)


def as_schema_3(root) -> None:  # noqa: ANN001 - a Path
    """The store at `root` as schema 3 left it: without the columns 4 added."""
    db = sqlite3.connect(root / ".o2m/reader.db")
    db.executescript("ALTER TABLE posts DROP COLUMN media; "
                     "ALTER TABLE friend_state DROP COLUMN pub_reread; "
                     "PRAGMA user_version = 3;")
    db.close()
