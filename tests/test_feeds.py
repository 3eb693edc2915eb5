"""Feed and object cryptography (PROTOCOL.md §3), one test per attack of THREATS.md
cases 8-23 where it belongs to the pure core (the fetcher's cases come with the reader)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.secret import SecretBox
from nacl.signing import SigningKey

from o2m_pub import feeds
from o2m_pub.canonical import b64u_encode
from o2m_pub.feeds import (HEAD_MAGIC, FeedAuthError, FeedFormatError, Item, ObjectRef,
                           accept_head, open_head, open_object, open_page, pad,
                           padded_size, pairwise_secrets, seal_head, seal_object, seal_page,
                           unpad)

NONCE = bytes(24)


class Person:
    def __init__(self, n: int) -> None:
        self.sign = SigningKey(bytes([n]) * 32)
        self.box = PrivateKey(bytes([n + 100]) * 32)

    @property
    def sign_pk(self) -> bytes:
        return bytes(self.sign.verify_key)

    @property
    def box_pk(self) -> bytes:
        return bytes(self.box.public_key)

    def secrets_to(self, reader: "Person") -> feeds.FeedSecrets:
        """As the author computes them."""
        return pairwise_secrets(bytes(self.box), reader.box_pk, self.sign_pk, reader.sign_pk)

    def secrets_from(self, author: "Person") -> feeds.FeedSecrets:
        """As the reader computes them."""
        return pairwise_secrets(bytes(self.box), author.box_pk, author.sign_pk, self.sign_pk)


ada, bob, eve = Person(1), Person(2), Person(3)
ITEM_ID = b64u_encode(bytes(16))


def a_head(author=ada, reader=bob, *, seq=1, items=None, signer=None, expires="2026-12-24T00:00:00Z",
           nonce=NONCE) -> bytes:
    obj, ref = seal_object(b"post", key=bytes(32), nonce=NONCE)
    items = items if items is not None else [Item(ITEM_ID, "2026-11-24T10:00:00Z", ref)]
    return seal_head(signing_key=(signer or author).sign, reader_sign_pk=reader.sign_pk,
                     secrets=author.secrets_to(reader), seq=seq, updated="2026-11-24T10:00:00Z",
                     expires=expires, items=items, prev=None, nonce=nonce)


def bob_opens(data: bytes, author=ada):
    return open_head(data, bob.secrets_from(author), author_sign_pk=author.sign_pk,
                     reader_sign_pk=bob.sign_pk)


def test_both_sides_derive_the_same_secrets_and_directions_differ():
    assert ada.secrets_to(bob) == bob.secrets_from(ada)
    assert ada.secrets_to(bob) != bob.secrets_to(ada)
    assert ada.secrets_to(bob).name != ada.secrets_to(eve).name
    # the name is not the key, nor a part of it
    s = ada.secrets_to(bob)
    assert s.name not in s.key.hex()


def test_head_round_trip():
    head = bob_opens(a_head())
    assert head.seq == 1 and head.items[0].id == ITEM_ID and head.prev is None


def test_non_friend_with_own_keys_decrypts_nothing():
    """Eve holds keys of her own: she cannot derive the name or open the head."""
    data = a_head()
    eves_view = pairwise_secrets(bytes(eve.box), ada.box_pk, ada.sign_pk, bob.sign_pk)
    assert eves_view.name != ada.secrets_to(bob).name
    with pytest.raises(FeedAuthError):
        open_head(data, eves_view, author_sign_pk=ada.sign_pk, reader_sign_pk=bob.sign_pk)


def test_head_signed_by_a_different_key_is_rejected():
    """THREATS 8: Bob knows the head key, so he could forge a head; the signature stops it."""
    with pytest.raises(FeedAuthError, match="signature"):
        bob_opens(a_head(signer=eve))


def test_every_flipped_byte_of_a_head_is_detected():
    data = a_head()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises((FeedAuthError, FeedFormatError)):
            bob_opens(bytes(bad))


def test_every_truncation_and_trailing_garbage_is_rejected():
    """THREATS 9: no exception but the two feed errors escapes."""
    data = a_head()
    for n in range(len(data)):
        with pytest.raises((FeedAuthError, FeedFormatError)):
            bob_opens(data[:n])
    with pytest.raises((FeedAuthError, FeedFormatError)):
        bob_opens(data + b"\x00")


def test_rollback_is_refused():
    """THREATS 10: a lower seq than the stored one."""
    old, new = bob_opens(a_head(seq=4)), bob_opens(a_head(seq=5))
    assert accept_head(new, stored_seq=4, stored_signed=old.signed, now="2026-11-25T00:00:00Z").fresh
    with pytest.raises(feeds.RollbackError):
        accept_head(old, stored_seq=5, stored_signed=new.signed, now="2026-11-25T00:00:00Z")


def test_same_seq_different_bytes_is_equivocation():
    """THREATS 11: the stored head is kept; the same bytes again are just unchanged."""
    one = bob_opens(a_head(seq=7))
    other = bob_opens(a_head(seq=7, items=[]))
    verdict = accept_head(one, stored_seq=7, stored_signed=one.signed, now="2026-11-25T00:00:00Z")
    assert not verdict.fresh
    with pytest.raises(feeds.EquivocationError):
        accept_head(other, stored_seq=7, stored_signed=one.signed, now="2026-11-25T00:00:00Z")


def test_expired_head_is_flagged_stale_not_dropped():
    """THREATS 12: freeze: a valid but expired head is accepted and flagged."""
    head = bob_opens(a_head(expires="2026-11-30T00:00:00Z"))
    assert accept_head(head, stored_seq=None, stored_signed=None, now="2026-12-01T00:00:00Z").stale
    assert not accept_head(head, stored_seq=None, stored_signed=None,
                           now="2026-11-29T00:00:00Z").stale


def _head_with(**changes) -> bytes:
    """A head whose document has `changes` applied, signed with Ada's real key and
    encrypted for Bob, but serialised without o2m's checks: what a hostile or buggy
    implementation holding the key could publish."""
    doc = {"v": 1, "type": "o2m-head", "author": b64u_encode(ada.sign_pk),
           "recipient": b64u_encode(bob.sign_pk), "seq": 1, "updated": "2026-11-24T10:00:00Z",
           "expires": "2026-12-24T10:00:00Z", "items": [], "prev": None}
    doc.update(changes)
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    sig = ada.sign.sign(feeds.FEED_SIG_CONTEXT + body).signature
    return HEAD_MAGIC + bytes(SecretBox(ada.secrets_to(bob).key).encrypt(pad(sig + body), NONCE))


@pytest.mark.parametrize("seq", [True, -1, 1.0, "5", 2**63, None])
def test_bad_sequence_numbers_are_rejected(seq):
    """THREATS 13: only integers in [0, 2^53) are sequence numbers."""
    with pytest.raises(FeedFormatError):
        bob_opens(_head_with(seq=seq))


def test_head_addressed_to_another_recipient_is_rejected():
    """THREATS 14: Ada's valid head for Eve, re-encrypted by Eve for Bob's path."""
    with pytest.raises(FeedAuthError, match="someone else"):
        bob_opens(_head_with(recipient=b64u_encode(eve.sign_pk)))


def test_unknown_version_is_reported_as_unsupported():
    """THREATS 15."""
    with pytest.raises(FeedFormatError, match="unsupported version"):
        bob_opens(_head_with(v=2))


def test_too_many_items_or_oversized_head_is_rejected_first():
    """THREATS 16: 10^6 items never reach the item parser; an oversized file is refused
    before it is decrypted."""
    with pytest.raises(FeedFormatError, match="too large"):
        bob_opens(HEAD_MAGIC + bytes(feeds.MAX_HEAD_BYTES))
    many = [{"id": ITEM_ID, "date": "2026-11-24T10:00:00Z", "deleted": True}] * (feeds.MAX_ITEMS + 1)
    with pytest.raises(FeedFormatError):
        bob_opens(_head_with(items=many))


def test_object_hash_mismatch_is_rejected_before_decryption():
    """THREATS 18."""
    data, ref = seal_object(b"secret post", key=bytes(range(32)), nonce=NONCE)
    other = ObjectRef(hashlib.sha256(b"x").hexdigest(), ref.size, ref.key)
    with pytest.raises(FeedAuthError, match="reference"):
        open_object(data, other)


def test_object_with_the_wrong_key_fails_only_that_item():
    """THREATS 19."""
    data, ref = seal_object(b"secret post", key=bytes(range(32)), nonce=NONCE)
    with pytest.raises(FeedAuthError, match="decrypt"):
        open_object(data, ObjectRef(ref.hash, ref.size, bytes(32)))
    assert open_object(data, ref) == b"secret post"


def test_object_longer_than_signed_size_is_rejected():
    """THREATS 20 (the fetcher stops reading at size+1; the core refuses any other size)."""
    data, ref = seal_object(b"p", key=bytes(32), nonce=NONCE)
    with pytest.raises(FeedAuthError):
        open_object(data + b"x", ref)


@pytest.mark.parametrize("padded", [
    b"", b"\x00\x00\x00\x05abc", (600).to_bytes(4, "big") + bytes(508),
    (3).to_bytes(4, "big") + b"abc" + b"\x01" + bytes(504), bytes(513),
])
def test_bad_padding_and_length_prefix_are_rejected(padded):
    """THREATS 21."""
    with pytest.raises(FeedFormatError):
        unpad(padded)


def test_invalid_utf8_in_a_document_is_rejected():
    """THREATS 21: a signed document that is not UTF-8."""
    with pytest.raises(Exception):
        feeds.parse_json(b'{"a":"\xff"}', max_bytes=100)


@pytest.mark.parametrize("ref", [
    {"hash": "../../etc/passwd", "size": 1, "key": b64u_encode(bytes(32))},
    {"hash": "A" * 64, "size": 1, "key": b64u_encode(bytes(32))},
    {"hash": "0" * 63, "size": 1, "key": b64u_encode(bytes(32))},
    {"hash": "0" * 64, "size": 0, "key": b64u_encode(bytes(32))},
    {"hash": "0" * 64, "size": 1, "key": b64u_encode(bytes(31))},
    {"hash": "0" * 64, "size": 1, "key": b64u_encode(bytes(32)), "url": "https://t/"},
])
def test_object_references_must_be_bare_hashes(ref):
    """THREATS 22: `^[0-9a-f]{64}$` and nothing else (no paths, no other origins)."""
    with pytest.raises(FeedFormatError):
        ObjectRef.from_json(ref)


def test_shared_object_is_attributed_only_by_a_signed_head():
    """THREATS 23: one object listed for Bob by Ada and for Bob by Eve; what attributes it
    is the head that pins it, and each head verifies only as its own author's."""
    data, ref = seal_object(b"a post", key=bytes(range(32)), nonce=NONCE)
    item = Item(ITEM_ID, "2026-11-24T10:00:00Z", ref)
    from_ada, from_eve = a_head(items=[item]), a_head(author=eve, items=[item])
    assert bob_opens(from_ada).items[0].object == ref
    assert bob_opens(from_eve, author=eve).items[0].object == ref
    with pytest.raises(FeedAuthError):
        bob_opens(from_eve, author=ada)  # Eve's head never passes as Ada's


def test_object_is_encrypted_once_however_many_readers():
    """One object, one key: every friend's head carries the same reference."""
    data, ref = seal_object(b"post", key=bytes(32), nonce=NONCE)
    item = Item(ITEM_ID, "2026-11-24T10:00:00Z", ref)
    for reader in (bob, eve):
        head = open_head(a_head(reader=reader, items=[item]), reader.secrets_from(ada),
                         author_sign_pk=ada.sign_pk, reader_sign_pk=reader.sign_pk)
        assert head.items[0].object == ref


def test_archive_pages_chain_and_verify():
    items = [Item(b64u_encode(i.to_bytes(16, "big")), "2026-11-24T10:00:00Z", None)
             for i in range(3 * feeds.HEAD_ITEMS)]
    head_items, pages = feeds.append_to_feed([], items)
    assert len(head_items) <= 2 * feeds.HEAD_ITEMS and pages
    prev = None
    for page_items in pages:
        data, prev_ref = seal_page(signing_key=ada.sign, reader_sign_pk=bob.sign_pk,
                                   secrets=ada.secrets_to(bob), items=page_items, prev=prev,
                                   nonce=NONCE)
        got, got_prev = open_page(data, prev_ref, bob.secrets_from(ada),
                                  author_sign_pk=ada.sign_pk, reader_sign_pk=bob.sign_pk)
        assert list(got) == page_items and got_prev == prev
        prev = prev_ref
    seen = [i.id for i in head_items] + [i.id for p in reversed(pages) for i in p]
    assert seen == [i.id for i in items]


def test_adding_one_item_cuts_at_most_one_page():
    items = [Item(b64u_encode(i.to_bytes(16, "big")), "2026-11-24T10:00:00Z", None)
             for i in range(2 * feeds.HEAD_ITEMS)]
    head, pages = feeds.append_to_feed([], items)
    assert pages == []
    new = Item(b64u_encode(b"n" * 16), "2026-11-25T10:00:00Z", None)
    head, pages = feeds.append_to_feed(head, [new])
    assert len(pages) == 1 and head[0] == new


@given(st.binary(max_size=3000))
@settings(max_examples=200)
def test_pad_round_trip_and_bucket(data):
    padded = pad(data)
    assert unpad(padded) == data
    assert len(padded) == padded_size(len(padded))
    assert len(padded) <= max(512, (len(data) + 4) * 5 // 4 + 1)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_exceptions(data):
    with pytest.raises((FeedAuthError, FeedFormatError)):
        bob_opens(data)


def test_every_flipped_byte_of_an_object_is_detected():
    """With the reference a signed head gives, no altered object opens."""
    data, ref = seal_object(b"a private post", key=bytes(range(32)), nonce=NONCE)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x80
        with pytest.raises((FeedAuthError, FeedFormatError)):
            open_object(bytes(bad), ref)
