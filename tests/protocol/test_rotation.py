"""Key rotation statements and the chain rule (PROTOCOL.md §2.5, THREATS.md 17)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from nacl.signing import SigningKey

from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.cards import key_commitment, make_card
from o2m_pub.protocol.rotation import (
    MAX_CHAIN,
    RotationError,
    follow_chain,
    make_rotation,
    parse_rotation,
    parse_rotations_file,
    rotations_file,
    verify_rotation,
)

WHEN = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
BOX = bytes(range(32))  # a valid X25519 public key (it is not low-order)


def keys(n: int) -> list[SigningKey]:
    return [SigningKey(bytes([i + 1]) * 32) for i in range(n)]


def pk(key: SigningKey) -> bytes:
    return bytes(key.verify_key)


def rotation(old: SigningKey, new: SigningKey, after: SigningKey, **kw) -> bytes:  # noqa: ANN003
    return make_rotation(old, new, new_box_pk=BOX, new_next_sign_pk=pk(after), created=WHEN,
                         **kw)


def card(key: SigningKey, next_key: SigningKey | None, *, seq: int = 5,
         url: str = "https://ada.example/", box: bytes = BOX):  # noqa: ANN201
    return make_card(key, name="Ada", url=url, box_pk=box, tls_pin=None, created=WHEN,
                     seq=seq, next_digest=key_commitment(pk(next_key)) if next_key else None)


def test_a_chain_signed_by_both_keys_is_followed():
    """Two links, each signed by its old and new key: follow_chain reaches the last key;
    an empty chain is no rotation."""
    k = keys(4)
    chain = [rotation(k[0], k[1], k[2]), rotation(k[1], k[2], k[3])]
    assert pk(k[2]) == follow_chain(pk(k[0]), chain).new_sign_pk
    assert follow_chain(pk(k[0]), []) is None


def test_a_statement_reads_back_what_was_signed():
    """Every field comes back: the keys, the commitment to the key after, the reason."""
    k = keys(3)
    parsed = parse_rotation(rotation(k[0], k[1], k[2], reason="compromised"))
    assert (pk(k[0]), pk(k[1]), BOX, key_commitment(pk(k[2])), "compromised",
            "2026-11-24T00:00:00Z") == (parsed.old_sign_pk, parsed.new_sign_pk,
                                        parsed.new_box_pk, parsed.new_next, parsed.reason,
                                        parsed.created)


def _signed_by(old: SigningKey, new: SigningKey, signer_old: SigningKey,
               signer_new: SigningKey) -> bytes:
    body = {"created": "2026-11-24T00:00:00Z", "new_box_pk": b64u_encode(BOX),
            "new_next": "sha256/" + b64u_encode(key_commitment(pk(OTHER))),
            "new_sign_pk": b64u_encode(pk(new)), "old_sign_pk": b64u_encode(pk(old)),
            "reason": "routine", "type": "o2m-rotation", "v": 1}
    msg = b"o2m-rotation-v1\n" + canonical_json(body)
    return canonical_json({**body, "sig_old": b64u_encode(signer_old.sign(msg).signature),
                           "sig_new": b64u_encode(signer_new.sign(msg).signature)})


def _without(data: bytes, field: str) -> bytes:
    doc = json.loads(data)
    del doc[field]
    return canonical_json(doc)


def _sig_copied(data: bytes, source: str, target: str) -> bytes:
    doc = json.loads(data)
    doc[target] = doc[source]
    return canonical_json(doc)


OLD, NEW, OTHER = keys(3)
BOTH = _signed_by(OLD, NEW, OLD, NEW)
ONE_KEY_ONLY = {
    "new-sig-by-a-third-key": (_signed_by(OLD, NEW, OLD, OTHER), "new key"),
    "old-sig-by-a-third-key": (_signed_by(OLD, NEW, OTHER, NEW), "old key"),
    "both-sigs-by-the-old-key": (_signed_by(OLD, NEW, OLD, OLD), "new key"),
    "both-sigs-by-the-new-key": (_signed_by(OLD, NEW, NEW, NEW), "old key"),
    "old-sig-copied-as-new": (_sig_copied(BOTH, "sig_old", "sig_new"), "new key"),
    "new-sig-copied-as-old": (_sig_copied(BOTH, "sig_new", "sig_old"), "old key"),
    "no-new-sig": (_without(BOTH, "sig_new"), "no sig_new"),
    "no-old-sig": (_without(BOTH, "sig_old"), "no sig_old"),
}


@pytest.mark.parametrize("name", ONE_KEY_ONLY)
def test_threat_17_a_rotation_signed_by_only_one_key_is_rejected(name):
    """THREATS 17: a thief with the old key alone cannot move the identity to a key
    whose holder did not sign, nor can the holder of a new key claim an identity
    without its old key: a statement missing either signature, or with one made by the
    wrong key, is refused, alone, as a link of a chain, and by the chain rule."""
    data, message = ONE_KEY_ONLY[name]
    with pytest.raises(RotationError, match=message):
        parse_rotation(data)
    with pytest.raises(RotationError):
        follow_chain(pk(OLD), [data])
    with pytest.raises(RotationError):
        verify_rotation(card(OLD, NEW), [data], card(NEW, OTHER))
    assert pk(NEW) == parse_rotation(BOTH).new_sign_pk


@pytest.mark.parametrize("links", [MAX_CHAIN + 1, 100])
def test_threat_17_a_chain_over_the_limit_is_rejected(links):
    """THREATS 17: at most MAX_CHAIN links are followed; one more, every link signed by
    both its keys and each to the committed key, is refused before any statement is
    read, by follow_chain and by the chain rule; MAX_CHAIN is fine."""
    k = keys(links + 2)
    chain = [rotation(a, b, c) for a, b, c in zip(k, k[1:], k[2:])]
    with pytest.raises(RotationError, match="longer"):
        follow_chain(pk(k[0]), chain)
    with pytest.raises(RotationError, match="longer"):
        follow_chain(pk(k[0]), chain[:MAX_CHAIN] + [b"not even JSON"])
    with pytest.raises(RotationError, match="longer"):
        verify_rotation(card(k[0], k[1]), chain, card(k[links], k[links + 1]))
    last = follow_chain(pk(k[0]), chain[:MAX_CHAIN])
    assert pk(k[MAX_CHAIN]) == last.new_sign_pk
    followed = verify_rotation(card(k[0], k[1]), chain[:MAX_CHAIN],
                               card(k[MAX_CHAIN], k[MAX_CHAIN + 1]))
    assert MAX_CHAIN == len(followed)


def test_threat_17_a_rotation_to_an_uncommitted_key_is_rejected():
    """THREATS 17 (pre-rotation): a statement signed by the current key and by some
    other key the thief holds is well signed, but the stored card committed to
    another key: refused. So is a second link to a key the first did not commit to."""
    k = keys(5)
    thief = SigningKey(b"\x99" * 32)
    stolen = rotation(k[0], thief, k[2])
    with pytest.raises(RotationError, match="not committed"):
        verify_rotation(card(k[0], k[1]), [stolen], card(thief, k[2]))
    second = rotation(k[1], thief, k[3])
    with pytest.raises(RotationError, match="not committed"):
        verify_rotation(card(k[0], k[1]), [rotation(k[0], k[1], k[2]), second],
                        card(thief, k[3]))


@pytest.mark.parametrize("case", ["card-by-another-key", "card-box-not-the-statement's",
                                  "card-next-not-the-statement's", "stored-card-without-next",
                                  "no-statement-from-the-trusted-key", "public-to-local"])
def test_the_chain_rule_refuses_a_final_card_that_does_not_match(case):
    """§2.5: the final card is signed by the last new key, carries its box key and its
    next commitment; the stored card must have committed to a next key; the chain must
    start at the trusted key; and the URL rule of §2.4 holds across the rotation."""
    k = keys(4)
    good = rotation(k[0], k[1], k[2])
    stored, statements, final = card(k[0], k[1]), [good], card(k[1], k[2])
    if case == "card-by-another-key":
        final = card(k[3], k[2])
    elif case == "card-box-not-the-statement's":
        final = card(k[1], k[2], box=bytes(range(1, 33)))
    elif case == "card-next-not-the-statement's":
        final = card(k[1], k[3])
    elif case == "stored-card-without-next":
        stored = card(k[0], None)
    elif case == "no-statement-from-the-trusted-key":
        statements = [rotation(k[2], k[3], k[1])]
    elif case == "public-to-local":
        final = card(k[1], k[2], url="https://127.0.0.1:8443/")
    with pytest.raises(RotationError):
        verify_rotation(stored, statements, final)
    assert [good] == [r.raw for r in verify_rotation(card(k[0], k[1]), [good],
                                                     card(k[1], k[2]))]


def test_the_chain_starts_at_the_statement_from_the_trusted_key():
    """A reader that followed the first rotation already (it holds the second key's
    card) starts the published list at its own key: the older statements are skipped."""
    k = keys(4)
    published = [rotation(k[0], k[1], k[2]), rotation(k[1], k[2], k[3])]
    followed = verify_rotation(card(k[1], k[2]), published, card(k[2], k[3]))
    assert [published[1]] == [r.raw for r in followed]


@pytest.mark.parametrize("v", [True, 2, "1"])
def test_a_statement_of_another_version_is_unsupported(v):
    """`true` is not version 1, though Python takes it for 1."""
    doc = json.loads(BOTH)
    doc["v"] = v
    with pytest.raises(RotationError, match="unsupported"):
        parse_rotation(canonical_json(doc))


def test_unknown_fields_are_kept_and_signed_over():
    """As in cards: a statement may carry fields this o2m does not know, signed by both
    keys; changing one breaks both signatures."""
    body = json.loads(_without(_without(BOTH, "sig_old"), "sig_new"))
    body["note"] = "new laptop"
    msg = b"o2m-rotation-v1\n" + canonical_json(body)
    data = canonical_json({**body, "sig_old": b64u_encode(OLD.sign(msg).signature),
                           "sig_new": b64u_encode(NEW.sign(msg).signature)})
    assert pk(NEW) == parse_rotation(data).new_sign_pk
    changed = json.loads(data)
    changed["note"] = "stolen laptop"
    with pytest.raises(RotationError, match="signed"):
        parse_rotation(canonical_json(changed))


def test_a_chain_that_does_not_start_at_the_trusted_key_is_rejected():
    """follow_chain begins at the key the reader trusts, nowhere else."""
    k = keys(4)
    with pytest.raises(RotationError, match="does not start"):
        follow_chain(pk(k[0]), [rotation(k[1], k[2], k[3])])


def test_every_flipped_byte_is_rejected():
    """Any changed byte of a statement breaks the JSON, a field or a signature."""
    k = keys(3)
    data = rotation(k[0], k[1], k[2])
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 1
        with pytest.raises(RotationError):
            parse_rotation(bytes(bad))


def test_the_published_list_keeps_the_newest_eight_as_exact_bytes():
    """.well-known/o2m-rotations.json: b64u of each statement's exact bytes, oldest
    first, the newest MAX_CHAIN kept; a list of more is refused when read."""
    k = keys(12)
    chain = [rotation(a, b, c) for a, b, c in zip(k, k[1:], k[2:])]
    assert chain[-MAX_CHAIN:] == parse_rotations_file(rotations_file(chain))
    too_many = canonical_json([b64u_encode(s) for s in chain[:MAX_CHAIN + 1]])
    with pytest.raises(RotationError, match="more than"):
        parse_rotations_file(too_many)
    with pytest.raises(RotationError):
        parse_rotations_file(b'{"not": "a list"}')


def _created_at(created: str) -> bytes:
    body = json.loads(_without(_without(BOTH, "sig_old"), "sig_new"))
    body["created"] = created
    msg = b"o2m-rotation-v1\n" + canonical_json(body)
    return canonical_json({**body, "sig_old": b64u_encode(OLD.sign(msg).signature),
                           "sig_new": b64u_encode(NEW.sign(msg).signature)})


@pytest.mark.parametrize("created", ["2026-02-31T10:00:00Z", "2026-11-24T25:61:61Z",
                                     "2026-13-01T00:00:00Z", "2026-11-24T23:59:60Z"])
def test_a_rotation_created_at_a_time_that_does_not_exist_is_refused(created):
    """§2.1: `created` is an RFC 3339 time, a real one: 31 February, hour 25 or a leap
    second have its shape but name no time; signed by both keys, still refused."""
    assert parse_rotation(_created_at("2026-02-28T23:59:59Z")).created == "2026-02-28T23:59:59Z"
    with pytest.raises(RotationError, match="created time"):
        parse_rotation(_created_at(created))
