"""Key rotation statements (PROTOCOL.md §2.5, THREATS.md 17)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from nacl.signing import SigningKey

from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.rotation import (
    MAX_CHAIN,
    RotationError,
    follow_chain,
    make_rotation,
    parse_rotation,
)

WHEN = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
BOX = bytes(range(32))


def keys(n: int) -> list[SigningKey]:
    return [SigningKey(bytes([i + 1]) * 32) for i in range(n)]


def test_a_chain_signed_by_both_keys_is_followed():
    """A chain of rotation statements, each signed by the old and the new key, leads from
    the trusted key to the last one; an empty chain leads nowhere."""
    k = keys(3)
    chain = [make_rotation(k[0], k[1], new_box_pk=BOX, created=WHEN),
             make_rotation(k[1], k[2], new_box_pk=BOX, created=WHEN)]
    assert follow_chain(bytes(k[0].verify_key), chain).new_sign_pk == bytes(k[2].verify_key)
    assert follow_chain(bytes(k[0].verify_key), []) is None


def _signed_by(old: SigningKey, new: SigningKey, signer_old: SigningKey,
               signer_new: SigningKey) -> bytes:
    body = {"v": 1, "type": "o2m-rotation", "old_sign_pk": b64u_encode(bytes(old.verify_key)),
            "new_sign_pk": b64u_encode(bytes(new.verify_key)), "new_box_pk": b64u_encode(BOX),
            "created": "2026-11-24T00:00:00Z"}
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
    "no-new-sig": (_without(BOTH, "sig_new"), "malformed"),
    "no-old-sig": (_without(BOTH, "sig_old"), "malformed"),
}


@pytest.mark.parametrize("name", ONE_KEY_ONLY)
def test_threat_17_a_rotation_signed_by_only_one_key_is_rejected(name):
    """THREATS 17: a thief with the old key alone cannot move the identity to a key
    whose holder did not sign, nor can the holder of a new key claim an identity
    without its old key: a statement missing either signature, or with one made by the
    wrong key, is refused, alone and as a link of a chain."""
    data, message = ONE_KEY_ONLY[name]
    with pytest.raises(RotationError, match=message):
        parse_rotation(data)
    with pytest.raises(RotationError):
        follow_chain(bytes(OLD.verify_key), [data])
    assert parse_rotation(BOTH).new_sign_pk == bytes(NEW.verify_key)


@pytest.mark.parametrize("links", [MAX_CHAIN + 1, 100])
def test_threat_17_a_chain_over_the_limit_is_rejected(links):
    """THREATS 17: at most MAX_CHAIN links are followed; one more, every link signed by
    both its keys, is refused before any statement is read, and MAX_CHAIN is fine."""
    k = keys(links + 1)
    chain = [make_rotation(a, b, new_box_pk=BOX, created=WHEN) for a, b in zip(k, k[1:])]
    with pytest.raises(RotationError, match="longer"):
        follow_chain(bytes(k[0].verify_key), chain)
    with pytest.raises(RotationError, match="longer"):
        follow_chain(bytes(k[0].verify_key), chain[:MAX_CHAIN] + [b"not even JSON"])
    last = follow_chain(bytes(k[0].verify_key), chain[:MAX_CHAIN])
    assert last.new_sign_pk == bytes(k[MAX_CHAIN].verify_key)


@pytest.mark.parametrize("v", [True, 2, "1"])
def test_a_statement_of_another_version_is_unsupported(v):
    """`true` is not version 1, though Python takes it for 1."""
    doc = json.loads(BOTH)
    doc["v"] = v
    with pytest.raises(RotationError, match="unsupported"):
        parse_rotation(canonical_json(doc))


def test_a_chain_that_does_not_start_at_the_trusted_key_is_rejected():
    """A chain that starts at another key than the trusted one is refused."""
    k = keys(3)
    with pytest.raises(RotationError, match="does not start"):
        follow_chain(bytes(k[0].verify_key), [make_rotation(k[1], k[2], new_box_pk=BOX,
                                                            created=WHEN)])


def test_every_flipped_byte_is_rejected():
    """Flipping the low bit of any byte of a rotation statement makes it refused."""
    k = keys(2)
    data = make_rotation(k[0], k[1], new_box_pk=BOX, created=WHEN)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 1
        with pytest.raises(RotationError):
            parse_rotation(bytes(bad))
