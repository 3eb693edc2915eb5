"""The card refresh of `o2m fetch` (PROTOCOL.md §2.4 update rule, §2.5 chain rule,
§3.5), rule by rule and bad input by bad input, over a friend's site held in memory
(as test_fetch_plan's simulator: real cards and statements, signed by real keys; `get`
serves the files), plus the address rule at connect time against a real TLS server and
the high-water mark across key changes against a real store (THREATS.md 17, 56)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import nacl.signing
import pytest

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.cards import (
    CARD_TYPE,
    SIG_CONTEXT,
    Card,
    key_commitment,
    make_card,
    parse_card,
)
from o2m_pub.protocol.rotation import ROTATIONS_PATH, make_rotation, rotations_file
from o2m_pub.reader.attachments import FriendAttachments
from o2m_pub.reader.card_refresh import refresh_card
from o2m_pub.reader.fetch_plan import (
    CARD_PATH,
    FriendKeys,
    Reason,
    Refused,
    Download,
    fetch_friend,
)
from o2m_pub.reader.http_fetch import HTTPFetcher, Limits
from o2m_pub.reader.store import ReaderStore

WHEN = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(6)]
BOX = bytes(range(32))
PIN_A, PIN_B = b"\x0a" * 32, b"\x0b" * 32


def pk(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


def card(key: int = 0, *, seq: int | None = 5, url: str = "https://ada.example/",
         pin: bytes | None = PIN_A, next_key: int | None = 1, name: str = "Ada",
         box: bytes = BOX) -> Card:
    """A card of KEYS[key], committing to KEYS[next_key]."""
    return make_card(KEYS[key], name=name, url=url, box_pk=box, tls_pin=pin, created=WHEN,
                     seq=seq, next_digest=None if next_key is None
                     else key_commitment(pk(KEYS[next_key])))


class Site:
    """A friend's site in memory: `get` serves `files` as the HTTPS getter does (200
    with an ETag, 304 for a matching If-None-Match, 404), and records each path."""

    def __init__(self, published: Card | bytes | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        if published is not None:
            self.publish(published)

    def publish(self, published: Card | bytes) -> None:
        self.files[CARD_PATH] = published.raw if isinstance(published, Card) else published

    def get(self, path: str, *, cap: int, etag: str | None = None,
            last_modified: str | None = None) -> Download:
        self.requests.append(path)
        data = self.files.get(path)
        if data is None:
            return Download(404)
        tag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if etag == tag:
            return Download(304)
        if len(data) > cap:
            raise Refused(Reason.OVERSIZED, f"{path}: over the cap")
        return Download(200, data, tag)


# ---------------------------------------------------------------- the update rule (§2.4)


def test_threat_56_a_newer_card_of_the_same_key_is_adopted_with_its_new_url_and_pin():
    """THREATS 56: a new URL and TLS pin, signed by the known key with a higher seq and
    the same commitment, is adopted without a paste; friends are told what changed."""
    stored, newer = card(), card(seq=6, url="https://ada.example:8553/", pin=PIN_B)
    got = refresh_card(stored, Site(newer).get)
    assert (newer, None) == (got.adopted, got.error)
    assert not got.rekeyed and got.card == newer
    kinds = [kind for kind, _ in got.notifications]
    assert ["moved", "certificate_changed"] == kinds
    assert ("moved", "https://ada.example:8553/") in got.notifications


def test_a_card_that_drops_its_pin_is_adopted():
    """A site moved to a CA's certificate: a newer card with no pin is adopted, and the
    notification says the server is now checked by a CA."""
    got = refresh_card(card(), Site(card(seq=6, pin=None)).get)
    assert got.adopted is not None and got.adopted.tls_pin is None
    assert [("certificate_changed", "now checked by a certificate authority (no pin)")] \
        == got.notifications


def test_the_same_card_is_unchanged_and_asked_for_conditionally():
    """The same bytes: nothing to adopt; the validators are kept, and the next request
    sends them and gets a 304."""
    stored = card()
    site = Site(stored)
    first = refresh_card(stored, site.get)
    assert (None, None, []) == (first.adopted, first.error, first.notifications)
    again = refresh_card(stored, site.get, etag=first.validators.etag)
    assert (None, None) == (again.adopted, again.validators)
    assert [CARD_PATH, CARD_PATH] == site.requests


def test_a_site_without_a_published_card_changes_nothing():
    """No card at the well-known path (404): the card held stays, no error."""
    got = refresh_card(card(), Site().get)
    assert (None, None) == (got.adopted, got.error)


def test_threat_56_a_replayed_older_card_is_refused():
    """THREATS 56: an older card of the same key (lower seq), however validly signed,
    is refused with one line and a notification; the card held stays."""
    stored = card(seq=7)
    got = refresh_card(stored, Site(card(seq=6, url="https://old.example/")).get)
    assert got.adopted is None and got.card == stored
    assert "older card" in got.error
    assert ["card_refused"] == [kind for kind, _ in got.notifications]


def test_threat_56_two_cards_with_one_seq_are_an_equivocation():
    """The same seq with other bytes: refused, and reported as equivocation."""
    got = refresh_card(card(seq=5), Site(card(seq=5, name="Eve")).get)
    assert got.adopted is None and "same seq" in got.error
    assert ["equivocation"] == [kind for kind, _ in got.notifications]


def test_two_cards_of_o2m_1_0_have_no_order_and_are_not_an_equivocation():
    """Cards without seq, next or feed_pk (o2m 1.0): a changed one is refused (it cannot
    be ordered) with a line that says so, not as an equivocation."""
    old = card(seq=None, next_key=None)
    got = refresh_card(old, Site(card(seq=None, next_key=None, url="https://new.example/")).get)
    assert got.adopted is None and "older o2m" in got.error
    assert ["card_refused"] == [kind for kind, _ in got.notifications]


def test_a_first_commitment_is_adopted_and_a_changed_one_is_refused():
    """A card of o2m 1.0 (no `next`) may gain one (the first `o2m card --renew` after
    upgrading); once a card commits to a next key, a card of the same key with another
    commitment is refused: only a rotation changes it (else a thief of the current key
    could commit to a key of their own)."""
    legacy = card(seq=None, next_key=None)
    assert refresh_card(legacy, Site(card(seq=1)).get).adopted is not None
    changed = refresh_card(card(seq=5), Site(card(seq=6, next_key=3)).get)
    assert changed.adopted is None and "commitment" in changed.error


def test_threat_56_a_card_signed_by_another_key_without_a_rotation_is_refused():
    """THREATS 56: their site's card has another key, and no rotation statement leads
    to it: refused with one line naming the new fingerprint, and a key-change
    notification; the card held stays."""
    stored = card()
    site = Site(card(key=3, next_key=4))
    got = refresh_card(stored, site.get)
    assert got.adopted is None and got.card == stored
    assert "another key" in got.error and "no verified key rotation" in got.error
    assert ["key_changed"] == [kind for kind, _ in got.notifications]
    assert [CARD_PATH, ROTATIONS_PATH] == site.requests


def _http_card() -> bytes:
    """A card whose URL is http://, signed by KEYS[0] (make_card refuses to make one)."""
    doc = {"box_pk": b64u_encode(BOX), "created": "2026-12-01T09:00:00Z", "name": "Ada",
           "seq": 6, "sign_pk": b64u_encode(pk(KEYS[0])), "type": CARD_TYPE,
           "url": "http://ada.example/", "v": 1,
           "next": "sha256/" + b64u_encode(key_commitment(pk(KEYS[1])))}
    doc["sig"] = b64u_encode(KEYS[0].sign(SIG_CONTEXT + canonical_json(doc)).signature)
    return canonical_json(doc)


def test_threat_56_a_card_that_moves_to_http_is_refused():
    """THREATS 56 (bad input): a validly signed, newer card whose URL is http:// is not a
    card at all (§2.4: https only): refused with one line; nothing changes."""
    got = refresh_card(card(), Site(_http_card()).get)
    assert got.adopted is None and "https://" in got.error


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/", "https://10.1.2.3:8443/", "https://192.168.1.20/",
    "https://172.16.0.9/", "https://169.254.10.1/", "https://100.64.0.1/",
    "https://[::1]/", "https://[fd00::7]/", "https://[fe80::1]/",
    "https://[::ffff:127.0.0.1]/", "https://localhost:8443/", "https://printer.localhost/",
    "https://nas.lan/", "https://nas.home.arpa/", "https://0.0.0.0/"])
def test_threat_56_a_public_site_may_not_move_to_a_local_address(url):
    """THREATS 56: a friend's site may not steer your fetcher into your own network: a
    newer card (their key, higher seq) moving from a public host to a loopback, private,
    link-local, unique-local or shared address, or to a local name, is refused."""
    got = refresh_card(card(), Site(card(seq=6, url=url)).get)
    assert got.adopted is None and "local" in got.error, url
    assert ["card_refused"] == [kind for kind, _ in got.notifications]


@pytest.mark.parametrize("old,new", [("https://127.0.0.1:8443/", "https://127.0.0.1:8553/"),
                                     ("https://localhost:8443/", "https://ada.example/")])
def test_a_local_site_may_stay_local_or_go_public(old, new):
    """Cards made on 127.0.0.1 (tests, the demo, a LAN) are local from the start: they
    may move to another local address, or to a public one."""
    assert refresh_card(card(url=old), Site(card(seq=6, url=new)).get).adopted is not None


def test_a_card_over_the_cap_is_refused_in_one_line():
    """A card file over 4 KiB is not downloaded past the cap."""
    site = Site(b"{" + b" " * 5000)
    with pytest.raises(Refused):
        refresh_card(card(), site.get)


# ---------------------------------------------------------------- rotations (§2.5)


def rotated_site(stored_key: int = 0, new_key: int = 1, after: int = 2, *,
                 signer: nacl.signing.SigningKey | None = None) -> tuple[Site, Card]:
    """Their site after a rotation from KEYS[stored_key] to KEYS[new_key]; `signer`
    replaces the new key's signature (one key only)."""
    new_box = bytes(range(1, 33))
    statement = make_rotation(KEYS[stored_key], signer or KEYS[new_key], new_box_pk=new_box,
                              new_next_sign_pk=pk(KEYS[after]), created=WHEN)
    if signer is not None:  # it names KEYS[new_key]; the old key signs, and `signer`
        import json
        body = {k: v for k, v in json.loads(statement).items() if not k.startswith("sig_")}
        body["new_sign_pk"] = b64u_encode(pk(KEYS[new_key]))
        message = b"o2m-rotation-v1\n" + canonical_json(body)
        statement = canonical_json({
            **body, "sig_old": b64u_encode(KEYS[stored_key].sign(message).signature),
            "sig_new": b64u_encode(signer.sign(message).signature)})
    published = card(key=new_key, next_key=after, seq=9, box=new_box)
    site = Site(published)
    site.files[ROTATIONS_PATH] = rotations_file([statement])
    return site, published


def test_a_verified_rotation_is_followed():
    """A card of the committed next key, with a statement signed by the old and the new
    key: adopted with the statements, rekeyed, and a key_rotated notification."""
    site, published = rotated_site()
    got = refresh_card(card(), site.get)
    assert published == got.adopted and got.rekeyed and 1 == len(got.rotations)
    assert "key_rotated" == got.notifications[0][0]
    assert "moved to a new key" in got.notifications[0][1]


def test_a_compromised_rotation_says_so():
    """reason "compromised": the notification says the previous key was stolen."""
    statement = make_rotation(KEYS[0], KEYS[1], new_box_pk=BOX, new_next_sign_pk=pk(KEYS[2]),
                              created=WHEN, reason="compromised")
    site = Site(card(key=1, next_key=2, seq=9))
    site.files[ROTATIONS_PATH] = rotations_file([statement])
    got = refresh_card(card(), site.get)
    assert "previous key stolen on 2026-12-01" in got.notifications[0][1]


def test_threat_17_a_rotation_statement_signed_by_one_key_only_is_not_followed():
    """THREATS 17 in the reader: the statement names the committed key, but the new
    key's signature is another key's (the thief holds the old key only, and signs
    the rest with a key of their own): the card of the named key is refused, the card
    held stays."""
    site, _ = rotated_site(signer=KEYS[5])
    got = refresh_card(card(), site.get)
    assert got.adopted is None and "not signed by the new key" in got.error
    assert ["key_changed"] == [kind for kind, _ in got.notifications]


def test_threat_17_a_rotation_to_an_uncommitted_key_is_not_followed():
    """THREATS 17 (pre-rotation): a thief who holds the current key signs a rotation to
    a key of their own, with both signatures: the card held committed to another key,
    so it is refused."""
    site, _ = rotated_site(new_key=4, after=5)
    got = refresh_card(card(next_key=1), site.get)
    assert got.adopted is None and "not committed" in got.error


# ---------------------------------------------------------------- the address rule at connect time


def test_threat_56_a_public_host_name_that_resolves_to_a_local_address_is_refused(
        https_folder):
    """THREATS 56 at connect time: for a host name that is not a local one, an address
    in local ranges is never connected to. `2130706433` is 127.0.0.1 written as one
    number (the system resolver reads it so): a public name as far as the card goes,
    loopback once resolved. The same server under `localhost` is reached."""
    url, folder, bundle = https_folder
    (folder / ".well-known").mkdir()
    (folder / ".well-known/o2m-card.json").write_bytes(card().raw)
    port = url.rsplit(":", 1)[1].strip("/")
    fetcher = HTTPFetcher(Limits(deadline=10), ca_bundle=str(bundle))
    try:
        deadline = time.monotonic() + 10
        with pytest.raises(Refused) as e:
            fetcher.getter(f"https://2130706433:{port}/", deadline)(CARD_PATH, cap=4096)
        assert e.value.reason == Reason.UNREACHABLE and "own network" in e.value.detail
        assert card().raw == fetcher.getter(url, deadline)(CARD_PATH, cap=4096).body
    finally:
        fetcher.close()


# ---------------------------------------------------------------- the high-water mark (§3.5)


BOB = nacl.signing.SigningKey(b"\x42" * 32)


def _head_site(author: nacl.signing.SigningKey, author_box, seq: int) -> tuple[Site, FriendKeys]:
    """A site with one head of `author` for Bob at `seq` (no posts), and Bob's keys."""
    import nacl.public
    bob_box = nacl.public.PrivateKey(b"\x43" * 32)
    secrets = feeds.pairwise_secrets(bytes(author_box), bytes(bob_box.public_key),
                                     pk(author), pk(BOB))
    head = feeds.seal_head(signing_key=author, reader_sign_pk=pk(BOB), secrets=secrets,
                           seq=seq, updated="2026-12-01T09:00:00Z",
                           expires="2026-12-31T09:00:00Z", items=[], prev=None,
                           nonce=bytes(24))
    site = Site()
    site.files[secrets.head_path] = head
    keys = FriendKeys("ada", pk(author), bytes(author_box.public_key), pk(BOB), secrets,
                      "https://ada.example/")
    return site, keys


def _fetch(store: ReaderStore, keys: FriendKeys, site: Site):  # noqa: ANN202
    outcome = fetch_friend(keys, store.friend_state("ada"), store.stored_object_hashes("ada"),
                           site.get, FriendAttachments(store.attachments, frozenset()), WHEN,
                           public=False)
    if outcome.update is not None:
        store.apply_update(outcome.update, now=WHEN)
    return outcome


def test_threat_17_a_key_accepted_by_hand_keeps_the_high_water_mark(tmp_path):
    """THREATS 17 (fast-forward, reset only on a verified rotation): Bob accepted a new
    card for Ada by hand (`friend add --accept-key-change`): her new key's feed must go
    on above seq 7; a head of seq 3 is refused as rollback. After a verified rotation
    from her old key to the new one (kept with the friend), the same head is taken: the
    one way the mark is reset."""
    import nacl.public
    old_box, new_box = nacl.public.PrivateKey(b"\x10" * 32), nacl.public.PrivateKey(b"\x11" * 32)
    with ReaderStore.open(tmp_path) as store:
        site, old_keys = _head_site(KEYS[0], old_box, 7)
        assert _fetch(store, old_keys, site).ok
        assert 7 == store.friend_state("ada").seq
        site, new_keys = _head_site(KEYS[1], new_box, 3)
        refused = _fetch(store, new_keys, site)
        assert (refused.status, refused.reason) == ("refused", Reason.ROLLBACK)
        assert 7 == store.friend_state("ada").seq
        statement = make_rotation(KEYS[0], KEYS[1], new_box_pk=bytes(new_box.public_key),
                                  new_next_sign_pk=pk(KEYS[2]), created=WHEN)
        rotated = FriendKeys(**{**new_keys.__dict__, "rotations": (statement,)})
        assert _fetch(store, rotated, site).ok
        assert (3, b64u_encode(pk(KEYS[1]))) == (store.friend_state("ada").seq,
                                                 store.friend_state("ada").sign_pk)


def test_parse_card_reads_back_every_new_field():
    """A card made with seq, next, feed_pk, avatar and bio reads back equal."""
    from o2m_pub.protocol.cards import Avatar
    made = make_card(KEYS[0], name="Ada", url="https://ada.example/", box_pk=BOX,
                     tls_pin=None, created=WHEN, seq=12, next_digest=b"\x07" * 32,
                     feed_pk=pk(KEYS[3]), bio="Walks.\nBread.",
                     avatar=Avatar("media/0011223344556677/avatar.png", "ab" * 32, "image/png"))
    assert made == parse_card(made.raw)
    assert (12, b"\x07" * 32, pk(KEYS[3]), "Walks.\nBread.") == (made.seq, made.next,
                                                                   made.feed_pk, made.bio)
