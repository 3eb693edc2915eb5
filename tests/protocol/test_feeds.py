"""Feed and object cryptography (PROTOCOL.md §3), one test per attack of THREATS.md
cases 8-23 where it belongs to the pure core (the fetcher's cases come with the reader)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.secret import SecretBox
from nacl.signing import SigningKey

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.feeds import (
    HEAD_MAGIC,
    OBJECT_MAGIC,
    PAGE_MAGIC,
    FeedAuthError,
    FeedFormatError,
    Item,
    ObjectRef,
    PageRef,
    accept_head,
    open_head,
    open_object,
    open_page,
    pad,
    padded_size,
    pairwise_secrets,
    seal_head,
    seal_object,
    seal_page,
    unpad,
)
from o2m_pub.reader import fetch_plan

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


def bobs_keys_for_ada() -> fetch_plan.FriendKeys:
    """What Bob's fetcher knows to verify Ada's feed for him."""
    return fetch_plan.FriendKeys("ada", ada.sign_pk, ada.box_pk, bob.sign_pk,
                                 bob.secrets_from(ada), "https://ada.example/")


def sealed_body(body: bytes, *, magic: bytes = HEAD_MAGIC, signer=ada, padded=None) -> bytes:
    """Any `body` signed with Ada's real key and sealed for Bob exactly as §3.4 says,
    but with none of o2m's own checks: what a hostile or buggy implementation holding
    the key could publish. `padded` replaces the padded plaintext altogether."""
    sig = signer.sign.sign(feeds.FEED_SIG_CONTEXT + body).signature
    plaintext = pad(sig + body) if padded is None else padded(sig + body)
    return magic + bytes(SecretBox(ada.secrets_to(bob).key).encrypt(plaintext, NONCE))


def test_both_sides_derive_the_same_secrets_and_directions_differ():
    """Ada's secrets for Bob are the ones Bob derives for Ada; Bob's for Ada differ (one
    direction each), so do Ada's for another reader; the feed name reveals nothing of the
    key."""
    assert ada.secrets_to(bob) == bob.secrets_from(ada)
    assert ada.secrets_to(bob) != bob.secrets_to(ada)
    assert ada.secrets_to(bob).name != ada.secrets_to(eve).name
    # the name is not the key, nor a part of it
    s = ada.secrets_to(bob)
    assert s.name not in s.key.hex()


def test_head_round_trip():
    """A head Ada seals for Bob opens with Bob's keys to the same seq and items."""
    head = bob_opens(a_head())
    assert head.seq == 1 and head.items[0].id == ITEM_ID and head.prev is None


def test_non_friend_with_own_keys_decrypts_nothing():
    """Eve holds keys of her own: she cannot derive the name or open the head."""
    data = a_head()
    eves_view = pairwise_secrets(bytes(eve.box), ada.box_pk, ada.sign_pk, bob.sign_pk)
    assert eves_view.name != ada.secrets_to(bob).name
    with pytest.raises(FeedAuthError):
        open_head(data, eves_view, author_sign_pk=ada.sign_pk, reader_sign_pk=bob.sign_pk)


@pytest.mark.parametrize("signer", [bob, eve], ids=["the-recipient", "a-stranger"])
def test_threat_8_head_signed_by_a_different_key_is_rejected(signer):
    """THREATS 8: Bob knows the head key, so he could forge a head, and so could anyone
    who learns it; the signature by Ada's key stops it (the reader says "bad signature")."""
    data = a_head(signer=signer)
    with pytest.raises(FeedAuthError, match="signature"):
        bob_opens(data)
    with pytest.raises(fetch_plan.Refused) as e:
        fetch_plan.verify_head(data, bobs_keys_for_ada(), None, "2026-11-25T00:00:00Z")
    assert e.value.reason == fetch_plan.Reason.BAD_SIGNATURE


def test_every_flipped_byte_of_a_head_is_detected():
    """Flipping the low bit of any one byte of a sealed head makes it fail to open, as a bad
    MAC or a bad format."""
    data = a_head()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises((FeedAuthError, FeedFormatError)):
            bob_opens(bytes(bad))


GARBAGE = [b"\x00", b"\n", b" ", b"x", b"}", b"garbage" * 100, bytes(16), bytes(512)]


def test_threat_9_every_truncation_and_trailing_garbage_is_rejected():
    """THREATS 9: every truncation of a head, and a head with trailing garbage, is
    refused with one of the two feed errors (the reader turns them into a refusal with a
    reason): the file as the host serves it, and also the signed document inside it,
    truncated or extended and then signed and sealed again by someone holding the keys
    (so the parser itself meets every prefix, past the signature and decryption)."""
    keys = bobs_keys_for_ada()
    data = a_head()
    body = open_head(data, bob.secrets_from(ada), author_sign_pk=ada.sign_pk,
                     reader_sign_pk=bob.sign_pk).signed[feeds.SIG_BYTES:]
    served = [data[:n] for n in range(len(data))] + [data + g for g in GARBAGE]
    inner = [sealed_body(body[:n]) for n in range(len(body))] + [
        sealed_body(body + g) for g in GARBAGE]
    for bad in served + inner:
        with pytest.raises((FeedAuthError, FeedFormatError)):
            bob_opens(bad)
        with pytest.raises(fetch_plan.Refused) as e:
            fetch_plan.verify_head(bad, keys, None, "2026-11-25T00:00:00Z")
        assert e.value.reason in (fetch_plan.Reason.MALFORMED, fetch_plan.Reason.BAD_SIGNATURE)
    for n in range(len(body)):  # every prefix of the signed document fails in the parser
        with pytest.raises(FeedFormatError):
            bob_opens(sealed_body(body[:n]))


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


def test_a_head_that_expires_this_second_is_stale():
    """§3.5 step 9: a head is fresh while `expires` > now, so one whose `expires` is
    now itself is flagged stale (and still accepted); a second earlier it is not."""
    head = bob_opens(a_head(expires="2026-12-01T00:00:00Z"))
    verdict = accept_head(head, stored_seq=None, stored_signed=None, now="2026-12-01T00:00:00Z")
    assert (verdict.fresh, verdict.stale) == (True, True)
    assert not accept_head(head, stored_seq=None, stored_signed=None,
                           now="2026-11-30T23:59:59Z").stale


_B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _reply_to_accepted(text: str) -> bool:
    try:
        Item.from_json({"id": b64u_encode(bytes(16)), "date": "2026-11-24T10:00:00Z",
                        "deleted": True, "reply_to": text})
    except FeedFormatError:
        return False
    return True


def test_an_items_reply_to_reference_must_be_canonical_b64u():
    """§4.1 and §2.1: an item's `reply_to` reference is b64u of exactly 32 and 16 bytes,
    canonical: a last character with its spare bits set decodes to the same bytes but
    is not a reference (a reader keys threads by the text)."""
    from o2m_pub.protocol.conversation import PostRef
    good = PostRef(b64u_encode(bytes(range(32))), b64u_encode(bytes(range(16)))).text
    assert _reply_to_accepted(good)
    assert (good[-24], good[-1]) == ("8", "w")  # the last characters of key and id
    for bad in (good[:-1] + "x", good[:-24] + "9" + good[-23:], good + "\n"):
        assert not _reply_to_accepted(bad), bad


@given(st.text(_B64U, min_size=42, max_size=44), st.text(_B64U, min_size=21, max_size=23),
       st.sampled_from(["", "\n", "/", " ", "="]))
@settings(max_examples=300)
def test_an_items_reply_to_reference_is_what_a_post_reference_parses(author, post_id, tail):
    """§4.1: the item's check of a `reply_to` reference accepts exactly the texts that
    `PostRef.parse` (what the reader keys threads by) accepts."""
    from o2m_pub.protocol.conversation import is_post_ref
    text = f"o2m:{author}/{post_id}{tail}"
    assert is_post_ref(text) == _reply_to_accepted(text)


def _head_with(**changes) -> bytes:
    """A head whose document has `changes` applied, signed with Ada's real key and
    encrypted for Bob, but serialised without o2m's checks: what a hostile or buggy
    implementation holding the key could publish."""
    doc = {"v": 1, "type": "o2m-head", "author": b64u_encode(ada.sign_pk),
           "recipient": b64u_encode(bob.sign_pk), "seq": 1, "updated": "2026-11-24T10:00:00Z",
           "expires": "2026-12-24T10:00:00Z", "items": [], "prev": None}
    doc.update(changes)
    for key in [k for k, v in doc.items() if v is DELETE]:
        del doc[key]
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return sealed_body(body)


def _page_with(**changes) -> tuple[bytes, PageRef]:
    """An archive page made like _head_with, and the reference a head would give it."""
    doc = {"v": 1, "type": "o2m-page", "author": b64u_encode(ada.sign_pk),
           "recipient": b64u_encode(bob.sign_pk), "items": [], "prev": None}
    doc.update(changes)
    for key in [k for k, v in doc.items() if v is DELETE]:
        del doc[key]
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    data = sealed_body(body, magic=PAGE_MAGIC)
    return data, PageRef(hashlib.sha256(data).hexdigest(), len(data))


def bob_opens_page(data: bytes, ref: PageRef):
    return open_page(data, ref, bob.secrets_from(ada), author_sign_pk=ada.sign_pk,
                     reader_sign_pk=bob.sign_pk)


DELETE = object()


@pytest.mark.parametrize("seq", [True, False, -1, 1.0, 0.0, "5", 2**63, 2**53, 2**64, None,
                                 [5], {"seq": 5}, DELETE],
                         ids=lambda v: "missing" if v is DELETE else repr(v))
def test_threat_13_bad_sequence_numbers_are_rejected(seq):
    """THREATS 13: only integers in [0, 2^53) are sequence numbers: not true (equal to 1
    in Python), -1, 1.0, "5", 2^63 or 2^53, and the reader refuses such a head as
    malformed."""
    data = _head_with(seq=seq)
    with pytest.raises(FeedFormatError):
        bob_opens(data)
    with pytest.raises(fetch_plan.Refused) as e:
        fetch_plan.verify_head(data, bobs_keys_for_ada(), None, "2026-11-25T00:00:00Z")
    assert e.value.reason == fetch_plan.Reason.MALFORMED


@pytest.mark.parametrize("seq", [0, 1, 2**53 - 1])
def test_sequence_numbers_at_the_bounds_are_accepted(seq):
    """seq 0, 1 and 2^53 - 1 (the largest exact JSON integer) are accepted."""
    assert bob_opens(_head_with(seq=seq)).seq == seq


def test_threat_14_head_addressed_to_another_recipient_is_rejected():
    """THREATS 14: Ada's validly signed head for Eve, re-encrypted for Bob's path by
    someone holding both head keys: the signed recipient is not Bob, so it is refused
    (tests/test_threats_reader.py does the same through a real fetch)."""
    for_eve = open_head(a_head(reader=eve), eve.secrets_from(ada), author_sign_pk=ada.sign_pk,
                        reader_sign_pk=eve.sign_pk)
    forwarded = HEAD_MAGIC + bytes(SecretBox(ada.secrets_to(bob).key).encrypt(
        pad(for_eve.signed), NONCE))
    for data in (forwarded, _head_with(recipient=b64u_encode(eve.sign_pk))):
        with pytest.raises(FeedAuthError, match="someone else"):
            bob_opens(data)


@pytest.mark.parametrize("v", [2, 0, 99, True, "1", None, DELETE],
                         ids=lambda v: "missing" if v is DELETE else repr(v))
def test_threat_15_unknown_version_is_reported_as_unsupported(v):
    """THREATS 15: a head or an archive page of another version says "unsupported
    version" (the reader's refusal carries it) instead of crashing; true, which Python
    takes for 1, is no version 1."""
    data = _head_with(v=v)
    with pytest.raises(FeedFormatError, match="unsupported version"):
        bob_opens(data)
    with pytest.raises(fetch_plan.Refused) as e:
        fetch_plan.verify_head(data, bobs_keys_for_ada(), None, "2026-11-25T00:00:00Z")
    assert e.value.reason == fetch_plan.Reason.MALFORMED and "unsupported version" in e.value.detail
    page, ref = _page_with(v=v)
    with pytest.raises(FeedFormatError, match="unsupported version"):
        bob_opens_page(page, ref)


def _item(n: int, **fields) -> dict:
    return {"id": b64u_encode(n.to_bytes(16, "big")), "date": "2026-11-24T10:00:00Z",
            "deleted": True, **fields}


def _ref(size: int = 600) -> dict:
    return {"hash": "ab" * 32, "key": b64u_encode(bytes(32)), "size": size}


_URL = "https://ada.example/2026/a-post-with-replies/"
_LINK = {"key": "k", "statement": "s"}  # a reply link's shape (§4.4); verified per link later


@pytest.mark.parametrize("items, reason", [
    ([_item(n) for n in range(feeds.MAX_ITEMS + 1)], "too many items"),
    ([{**_item(0, deleted=False), "object": _ref(feeds.MAX_OBJECT_BYTES + 1)}],
     "bad object reference"),
    ([{**_item(0, deleted=False), "object": _ref(2**53 - 1)}], "bad object reference"),
    ([_item(0, reply_to="https://ada.example/" + "a" * 600_000)], "bad reply_to"),
    ([_item(0, replies=[_URL])], "bad replies"),
    ([_item(0, replies=[_LINK] * (feeds.MAX_REPLIES + 1))], "513 replies"),
    ([_item(0, replies=[_LINK] * 20_000)], "20,000 replies"),
    ([_item(0, reactions=["r"] * (feeds.MAX_REACTIONS + 1))], "1,025 reactions"),
    ([_item(0, replies=[{**_LINK, "statement": "s" * 1900}] * 200)],
     r"bytes \(at most 262,144\)"),
    ([_item(0, later_field="x" * 300_000)], r"bytes \(at most 262,144\)"),
    ([{**_item(0, deleted=False), "object": {**_ref(), "later": "x" * 300_000}}],
     r"bytes \(at most 262,144\)"),
    ([_item(0, id=b64u_encode(bytes(16)) + "A" * 300_000)], "bad item id"),
], ids=["4097-items", "object-over-64-MiB", "object-of-2^53-bytes", "huge-reply_to",
        "reply-as-url", "513-replies", "20000-replies", "1025-reactions", "item-over-256-KiB",
        "unknown-key-over-256-KiB", "unknown-key-in-its-reference-over-256-KiB", "huge-id"])
def test_too_many_items_or_an_oversized_item_refuse_the_whole_head(items, reason):
    """THREATS 16 (the core) and the per-item cap of §3.4: a head that lists more than
    4096 items, or one item that is too big (over 512 replies or 256 KiB of canonical
    JSON, whatever keys make it so) or points to a too big object, is refused whole, for
    that reason, so the reader fetches nothing of it; every such head here fits under
    the 1 MiB head cap, so the item's own cap is what refuses it. The case end to end,
    10^6 items included: tests/test_threats_reader.py."""
    data = _head_with(items=items)
    assert len(data) <= feeds.MAX_HEAD_BYTES
    with pytest.raises(FeedFormatError, match=reason):
        bob_opens(data)
    with pytest.raises(FeedFormatError, match=reason):
        bob_opens_page(*_page_with(items=items))


def test_an_oversized_head_is_refused_before_it_is_decrypted():
    """THREATS 16: a file over the 1 MiB head cap is refused on its size alone, such as
    one item of 100,000 replies."""
    with pytest.raises(FeedFormatError, match="too large"):
        bob_opens(HEAD_MAGIC + bytes(feeds.MAX_HEAD_BYTES))
    data = _head_with(items=[_item(0, replies=[_LINK] * 100_000)])
    assert len(data) > feeds.MAX_HEAD_BYTES
    with pytest.raises(FeedFormatError, match="too large"):
        bob_opens(data)


def test_an_item_at_its_caps_is_accepted():
    """512 replies, and an item just under 256 KiB, are still one item each."""
    at_cap = _item(0, replies=[_LINK] * feeds.MAX_REPLIES)
    assert len(bob_opens(_head_with(items=[at_cap])).items[0].replies) == feeds.MAX_REPLIES
    filler = "x" * (feeds.MAX_ITEM_BYTES - len(canonical_json(_item(0, later_field=""))))
    item = _item(0, later_field=filler)
    assert len(canonical_json(item)) == feeds.MAX_ITEM_BYTES
    assert bob_opens(_head_with(items=[item])).items[0].deleted


def test_unknown_keys_in_items_and_object_references_are_accepted_and_ignored():
    """§3.4 (protocol 1.1, review item 20): a later version may add keys to items and
    references; this reader ignores them instead of refusing the head, and what it knows
    reads as before."""
    ref = {**_ref(), "cipher": "something-newer"}
    head = bob_opens(_head_with(items=[{**_item(0, deleted=False), "object": ref,
                                        "applause": {"likes": 3}}]))
    (item,) = head.items
    assert item.object == ObjectRef.from_json(_ref()) and item.replies == ()


def test_threat_18_object_hash_mismatch_is_rejected_before_decryption():
    """THREATS 18: bytes that do not match the hash (and size) a signed head gives are
    refused before any decryption: even another object sealed with the very same key,
    which would decrypt fine, and even with a key that decryption would choke on (the
    error is the reference's, so decryption never ran). The same holds for archive
    pages. Through a real fetch: test_fetch_hostile.py::test_threat_18_…"""
    key = bytes(range(32))
    data, ref = seal_object(b"secret post", key=key, nonce=NONCE)
    swapped, _ = seal_object(b"forged post", key=key, nonce=bytes([7]) * 24)
    assert len(swapped) == ref.size and open_object(swapped, ObjectRef(
        hashlib.sha256(swapped).hexdigest(), ref.size, key)) == b"forged post"
    for bad_data, bad_ref in [
        (swapped, ref),  # decrypts with the key, but is not the object the head pins
        (data, ObjectRef(hashlib.sha256(b"x").hexdigest(), ref.size, key)),
        (data, ObjectRef(ref.hash, ref.size + 1, key)),
        (data + b"x", ref),
        (swapped, ObjectRef(ref.hash, ref.size, b"no key")),  # decryption would fail
    ]:
        with pytest.raises(FeedAuthError, match="does not match its reference"):
            open_object(bad_data, bad_ref)
    page, page_ref = _page_with()
    other_page, _ = _page_with(items=[_item(1)])
    with pytest.raises(FeedAuthError, match="does not match its reference"):
        bob_opens_page(other_page, page_ref)
    assert bob_opens_page(page, page_ref) == ((), None)


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


def _prefix(n: int, body: bytes, size: int) -> bytes:
    """A padded plaintext with a chosen length prefix and total size."""
    out = n.to_bytes(4, "big") + body
    return out + bytes(size - len(out))


BAD_PADDINGS = {  # name: a function from the real plaintext to a badly padded one
    "empty": lambda p: b"",
    "shorter-than-the-prefix": lambda p: p[:3],
    "prefix-one-over-the-body": lambda p: _prefix(padded_size(len(p) + 4) - 3, p,
                                                  padded_size(len(p) + 4)),
    "prefix-of-2^32-1": lambda p: _prefix(2**32 - 1, p, padded_size(len(p) + 4)),
    "prefix-of-a-smaller-bucket": lambda p: _prefix(len(p), p, padded_size(len(p) + 4) * 2),
    "size-not-a-bucket": lambda p: _prefix(len(p), p, padded_size(len(p) + 4) + 1),
    "non-zero-padding": lambda p: _prefix(len(p), p, padded_size(len(p) + 5))[:-1] + b"\x01",
}
INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"]


@pytest.mark.parametrize("how", BAD_PADDINGS)
def test_threat_21_bad_padding_or_a_length_prefix_larger_than_the_body_is_rejected(how):
    """THREATS 21: padding is checked (§3.2) wherever something is decrypted: a head,
    an archive page and an object whose padding or length prefix is wrong are refused
    with FeedFormatError, though they decrypt and (for documents) carry a valid
    signature."""
    bad = BAD_PADDINGS[how]
    body = open_head(a_head(), bob.secrets_from(ada), author_sign_pk=ada.sign_pk,
                     reader_sign_pk=bob.sign_pk).signed[feeds.SIG_BYTES:]
    with pytest.raises(FeedFormatError, match="padding"):
        unpad(bad(b"plain text"))
    with pytest.raises(FeedFormatError, match="padding"):
        bob_opens(sealed_body(body, padded=bad))
    page_body = canonical_json({"v": 1, "type": "o2m-page", "author": b64u_encode(ada.sign_pk),
                                "recipient": b64u_encode(bob.sign_pk), "items": [],
                                "prev": None})
    page = sealed_body(page_body, magic=PAGE_MAGIC, padded=bad)
    with pytest.raises(FeedFormatError, match="padding"):
        bob_opens_page(page, PageRef(hashlib.sha256(page).hexdigest(), len(page)))
    key = bytes(range(32))
    obj = OBJECT_MAGIC + bytes(SecretBox(key).encrypt(bad(b"a post"), NONCE))
    with pytest.raises(FeedFormatError, match="padding"):
        open_object(obj, ObjectRef(hashlib.sha256(obj).hexdigest(), len(obj), key))


@pytest.mark.parametrize("invalid", INVALID_UTF8, ids=lambda b: b.hex())
def test_threat_21_invalid_utf8_is_rejected(invalid):
    """THREATS 21: a signed head, or a post inside a good object, that is not valid
    UTF-8 (a stray byte, an overlong form, a surrogate, a cut sequence, a 5-byte form)
    is refused as malformed, never decoded with replacement characters."""
    body = canonical_json({"v": 1, "type": "o2m-head", "author": b64u_encode(ada.sign_pk),
                           "recipient": b64u_encode(bob.sign_pk), "seq": 1,
                           "updated": "2026-11-24T10:00:00Z", "expires": "2026-12-24T10:00:00Z",
                           "items": [], "prev": None})
    bad_body = body.replace(b'"items":[]', b'"items":[],"x":"' + invalid + b'"')
    with pytest.raises(FeedFormatError, match="not UTF-8"):
        bob_opens(sealed_body(bad_body))
    post = b'{"date":"2026-11-24T10:00:00Z","markdown":"' + invalid + b'","type":"o2m-post","v":1}'
    data, ref = seal_object(post, key=bytes(range(32)), nonce=NONCE)
    with pytest.raises(FeedFormatError, match="not UTF-8"):
        fetch_plan.parse_post(open_object(data, ref))


GOOD_HASH = "0123456789abcdef" * 4
BAD_HASHES = [
    "../../etc/passwd", "A" * 64, GOOD_HASH.upper(), "0" * 63, "0" * 65, GOOD_HASH + "\n",
    " " + GOOD_HASH[1:], GOOD_HASH[:-1] + "g", "\u0660" + GOOD_HASH[1:],  # an Arabic-Indic 0
    "o/" + GOOD_HASH[2:], "https://evil.example/o/" + GOOD_HASH, "/" + GOOD_HASH[1:],
    GOOD_HASH[:32] + "/" + GOOD_HASH[33:], "", 0, None, [GOOD_HASH], {"hash": GOOD_HASH},
]


@pytest.mark.parametrize("bad", BAD_HASHES, ids=repr)
def test_threat_22_object_references_must_be_bare_hashes(bad):
    """THREATS 22: a reference is `^[0-9a-f]{64}$` and nothing else (no paths, no other
    origins, no upper case, no trailing newline that a careless `$` would allow), for
    objects, archive pages and attachments alike, and a head holding one is refused
    whole."""
    key = b64u_encode(bytes(32))
    with pytest.raises(FeedFormatError):
        ObjectRef.from_json({"hash": bad, "size": 600, "key": key})
    with pytest.raises(FeedFormatError):
        PageRef.from_json({"hash": bad, "size": 600})
    with pytest.raises(FeedFormatError):
        bob_opens(_head_with(items=[{**_item(0, deleted=False),
                                     "object": {"hash": bad, "size": 600, "key": key}}]))
    with pytest.raises(FeedFormatError):
        bob_opens(_head_with(prev={"hash": bad, "size": 600}))
    post = canonical_json({"date": "2026-11-24T10:00:00Z", "markdown": "Hi", "type": "o2m-post",
                           "v": 1, "attachments": [{"name": "a.png", "media_type": "image/png",
                                                    "hash": bad, "size": 600, "key": key}]})
    with pytest.raises(FeedFormatError):
        fetch_plan.parse_post(post)


@pytest.mark.parametrize("ref", [
    {"hash": GOOD_HASH, "size": 0, "key": b64u_encode(bytes(32))},
    {"hash": GOOD_HASH, "size": 1, "key": b64u_encode(bytes(31))},
    {"hash": GOOD_HASH, "size": 1},
    {"hash": GOOD_HASH, "key": b64u_encode(bytes(32)), "url": "https://t/"},
])
def test_object_references_need_hash_size_and_key(ref):
    """A reference without its three fields, or with a bad one, is refused; others are
    ignored (protocol 1.1: forward compatibility) and never followed."""
    with pytest.raises(FeedFormatError):
        ObjectRef.from_json(ref)
    good = {"hash": GOOD_HASH, "size": 1, "key": b64u_encode(bytes(32))}
    assert ObjectRef.from_json(good) == ObjectRef.from_json({**good, "url": "https://t/"})


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


def test_archive_pages_chain_and_verify():
    """Items beyond the head's share go into archive pages, each sealed, chained by its prev
    reference and opened in order: head and pages together give back every item, newest
    first."""
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
    """One new item on a full head moves at most one page of old items into the archive."""
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
    """Padding round-trips, lands on a padded size, and is at most a quarter more than the
    data and its 4-byte length (or 512 bytes, the smallest size)."""
    padded = pad(data)
    assert unpad(padded) == data
    assert len(padded) == padded_size(len(padded))
    assert len(padded) <= max(512, (len(data) + 4) * 5 // 4 + 1)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_exceptions(data):
    """Random bytes as a head fail with FeedAuthError or FeedFormatError, never another
    exception, never a head."""
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


@pytest.mark.parametrize("v", [True, 2, "1", None])
def test_threat_15_a_post_of_another_version_is_refused(v):
    """THREATS 15 for the post inside an object (§3.3): only the integer 1 is version 1
    (a float is not even canonical JSON)."""
    post = {"date": "2026-11-24T10:00:00Z", "markdown": "Hi", "type": "o2m-post", "v": v}
    if v is None:
        del post["v"]
    with pytest.raises(FeedFormatError, match="version 1"):
        fetch_plan.parse_post(canonical_json(post))
    as_float = canonical_json({**post, "v": 1}).replace(b'"v":1', b'"v":1.0')
    with pytest.raises(FeedFormatError):
        fetch_plan.parse_post(as_float)


# ---------------------------------------------------------------- THREATS 57: the head's window


@pytest.mark.parametrize("expires, ok", [
    ("2026-12-24T10:00:00Z", True),  # exactly HEAD_LIFETIME (30 days) after updated
    ("2026-12-24T10:00:01Z", False),
    ("2027-11-24T10:00:00Z", False),
    ("9999-12-31T23:59:59Z", False),
    ("2026-11-20T00:00:00Z", True),  # already expired when signed: stale, not refused
])
def test_threat_57_a_head_valid_for_longer_than_the_window_is_refused(expires, ok):
    """THREATS 57: `expires` at most HEAD_LIFETIME (30 days, §3.4) after `updated`; a
    head that claims longer would silently put off the freeze warning, so it is refused
    whole as malformed, through the fetcher as well."""
    assert feeds.HEAD_LIFETIME == dt.timedelta(days=30)
    data = _head_with(updated="2026-11-24T10:00:00Z", expires=expires)
    if ok:
        assert bob_opens(data).expires == expires
        return
    with pytest.raises(FeedFormatError, match="more than 30 days after it was signed"):
        bob_opens(data)
    with pytest.raises(fetch_plan.Refused) as e:
        fetch_plan.verify_head(data, bobs_keys_for_ada(), None, "2026-11-25T00:00:00Z")
    assert e.value.reason == fetch_plan.Reason.MALFORMED
    assert "more than 30 days" in e.value.detail


@pytest.mark.parametrize("now, ok", [
    ("2026-11-24T10:00:00Z", True),
    ("2026-11-23T10:00:00Z", True),  # a day behind the author: clocks drift
    ("2026-11-23T09:59:59Z", False),
    ("2026-10-01T00:00:00Z", False),
])
def test_threat_57_a_head_signed_in_the_future_is_refused(now, ok):
    """THREATS 57: a head whose `updated` lies more than MAX_CLOCK_SKEW (1 day) after the
    reader's clock is refused (with a far-future `updated`, a 30-day window would start
    when the host likes); the stored state is the fetcher's to keep."""
    assert feeds.MAX_CLOCK_SKEW == dt.timedelta(days=1)
    head = bob_opens(_head_with(updated="2026-11-24T10:00:00Z",
                                expires="2026-12-24T10:00:00Z"))
    if ok:
        assert accept_head(head, stored_seq=None, stored_signed=None, now=now).fresh
        return
    with pytest.raises(feeds.FutureHeadError, match="more than 1 day after"):
        accept_head(head, stored_seq=None, stored_signed=None, now=now)
    with pytest.raises(fetch_plan.Refused) as e:
        fetch_plan.verify_head(_head_with(), bobs_keys_for_ada(), None, now)
    assert e.value.reason == fetch_plan.Reason.MALFORMED and "day after" in e.value.detail


# ---------------------------------------------------------------- THREATS 55: dummy heads


def test_a_dummy_head_has_a_real_heads_size_and_magic_and_opens_for_no_one():
    """THREATS 55: a dummy head is the size asked for (a real head's), starts with the
    head magic, differs every time it is sealed, and Bob's key does not open it (it is
    refused as "not for us", as another friend's head would be)."""
    real = a_head()
    dummy = feeds.seal_dummy_head(len(real), key=bytes([5]) * 32, nonce=bytes([6]) * 24)
    again = feeds.seal_dummy_head(len(real), key=bytes([7]) * 32, nonce=bytes([8]) * 24)
    assert len(dummy) == len(again) == len(real) and dummy != again
    assert dummy[:len(HEAD_MAGIC)] == HEAD_MAGIC
    with pytest.raises(FeedAuthError, match="not for us"):
        bob_opens(dummy)
    big = _head_with(items=[_item(n) for n in range(300)])
    assert len(feeds.seal_dummy_head(len(big), key=bytes(32), nonce=bytes(24))) == len(big)
    for bad in (len(real) + 1, feeds.HEAD_OVERHEAD + 100, 0):
        with pytest.raises(ValueError):
            feeds.seal_dummy_head(bad, key=bytes(32), nonce=bytes(24))


def _sealed_for_bob(items: list[Item], size: int | None = None) -> bytes:
    return seal_head(signing_key=ada.sign, reader_sign_pk=bob.sign_pk,
                     secrets=ada.secrets_to(bob), seq=1, updated="2026-11-24T10:00:00Z",
                     expires="2026-12-24T00:00:00Z", items=items, prev=None, nonce=NONCE,
                     size=size)


def _read(head: feeds.Head) -> tuple:
    """What a reader takes from a head: all but the exact signed bytes."""
    return head.seq, head.updated, head.expires, head.items, head.prev


def test_threat_55_a_head_padded_to_a_bigger_size_reads_as_the_same_head():
    """THREATS 55: a head sealed to a bigger size (so every head of a site can have the
    biggest one's) is exactly that size, and opens for Bob to the very items, seq and
    dates of the head sealed at its own size: the `pad` keys that fill it are ignored
    like any key a reader does not know (§2.1). `head_size` foretells the unpadded size."""
    _, ref = seal_object(b"post", key=bytes(32), nonce=NONCE)
    items = [Item(b64u_encode(n.to_bytes(16, "big")), "2026-11-24T10:00:00Z", ref)
             for n in range(3)]
    plain = _sealed_for_bob(items)
    assert feeds.head_size(author_sign_pk=ada.sign_pk, reader_sign_pk=bob.sign_pk, seq=1,
                           updated="2026-11-24T10:00:00Z", expires="2026-12-24T00:00:00Z",
                           items=items, prev=None) == len(plain)
    for bigger in (padded_size(len(plain) - feeds.HEAD_OVERHEAD + 1),
                   padded_size(40_000), padded_size(300_000)):
        padded = _sealed_for_bob(items, size=bigger + feeds.HEAD_OVERHEAD)
        assert len(padded) == bigger + feeds.HEAD_OVERHEAD
        assert _read(bob_opens(padded)) == _read(bob_opens(plain))
    assert _sealed_for_bob(items, size=len(plain)) == plain


def test_threat_55_padding_spreads_over_items_each_within_the_item_cap():
    """An item can hold at most MAX_ITEM_BYTES: padding past that goes into the next
    items, and every item of the padded head still passes the reader's cap; a size that
    is not a sealed head's is refused."""
    _, ref = seal_object(b"post", key=bytes(32), nonce=NONCE)
    items = [Item(b64u_encode(n.to_bytes(16, "big")), "2026-11-24T10:00:00Z", ref)
             for n in range(4)]
    size = padded_size(3 * feeds.MAX_ITEM_BYTES) + feeds.HEAD_OVERHEAD
    padded = _sealed_for_bob(items, size=size)
    assert len(padded) == size and bob_opens(padded).items == bob_opens(
        _sealed_for_bob(items)).items
    for bad in (size + 1, feeds.HEAD_OVERHEAD + 100):
        with pytest.raises(ValueError):
            _sealed_for_bob(items, size=bad)


def _opened_body(data: bytes) -> dict:
    """The document of a head Ada sealed for Bob, as Bob decrypts it (§3.4)."""
    opened = SecretBox(bob.secrets_from(ada).key).decrypt(data[len(HEAD_MAGIC):])
    return json.loads(unpad(opened)[feeds.SIG_BYTES:])


def test_threat_55_a_head_with_no_items_is_padded_with_tombstones_of_no_post():
    """THREATS 55: a friend who sees no post has a head with no items, which `pad` keys
    alone cannot fill; it takes the size asked for all the same, with tombstones of ids
    no post has carrying the padding (§3.4), each within the item cap. Bob's reader takes
    them as tombstones of posts it never had (`fetch_plan.verify_head` accepts the head;
    every item is deleted). Their ids are the same in every build (from the pair's head
    key), the same for any size, and another pair's are others."""
    empty = _sealed_for_bob([])
    sizes = [padded_size(len(empty) - feeds.HEAD_OVERHEAD + 1), padded_size(40_000),
             padded_size(feeds.MAX_ITEM_BYTES + 1), padded_size(3 * feeds.MAX_ITEM_BYTES),
             padded_size(900_000)]  # the biggest bucket under the 1 MiB head cap
    key = ada.secrets_to(bob).key
    for bigger in sizes:
        padded = _sealed_for_bob([], size=bigger + feeds.HEAD_OVERHEAD)
        assert len(padded) == bigger + feeds.HEAD_OVERHEAD <= feeds.MAX_HEAD_BYTES
        head, verdict = fetch_plan.verify_head(padded, bobs_keys_for_ada(), None,
                                               "2026-11-25T00:00:00Z")
        assert verdict.fresh and head.items and all(i.deleted for i in head.items)
        assert [i.id for i in head.items] == [feeds.pad_item_id(key, n)
                                               for n in range(len(head.items))]
        assert all(i.date == "2026-11-24T10:00:00Z" for i in head.items)
        assert len(head.items) == -(-bigger // feeds.MAX_ITEM_BYTES)  # as few as fit
        for item in _opened_body(padded)["items"]:
            assert len(canonical_json(item)) <= feeds.MAX_ITEM_BYTES
            assert set(item) <= {"id", "date", "deleted", "pad"} and item["deleted"] is True
    assert _sealed_for_bob([], size=len(empty)) == empty  # its own size: nothing added
    assert feeds.pad_item_id(key, 0) != feeds.pad_item_id(key, 1)
    assert feeds.pad_item_id(key, 0) != feeds.pad_item_id(ada.secrets_to(eve).key, 0)


def test_threat_55_pad_tombstones_follow_items_that_cannot_hold_the_padding():
    """A head of one item padded far past what one item may hold (the biggest head of a
    site can pass 256 KiB): the item takes what it can, tombstones of no post after it
    take the rest, and the head reads as the one item."""
    _, ref = seal_object(b"post", key=bytes(32), nonce=NONCE)
    items = [Item(ITEM_ID, "2026-11-24T10:00:00Z", ref)]
    size = padded_size(3 * feeds.MAX_ITEM_BYTES) + feeds.HEAD_OVERHEAD
    padded = _sealed_for_bob(items, size=size)
    assert len(padded) == size
    opened = bob_opens(padded)
    assert opened.items[0] == items[0] and all(i.deleted for i in opened.items[1:])
    assert len(opened.items) == 3  # as few as fit: 3 x 256 KiB, less the head's own
    body = _opened_body(padded)["items"]
    assert len(canonical_json(body[0])) > feeds.MAX_ITEM_BYTES - 64  # filled first
