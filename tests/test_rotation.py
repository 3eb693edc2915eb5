"""Key rotation statements (PROTOCOL.md §2.5, THREATS.md 17)."""

from __future__ import annotations

import datetime as dt

import pytest
from nacl.signing import SigningKey

from o2m_pub.canonical import b64u_encode, canonical_json
from o2m_pub.rotation import (MAX_CHAIN, RotationError, follow_chain, make_rotation,
                              parse_rotation)

WHEN = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
BOX = bytes(range(32))


def keys(n: int) -> list[SigningKey]:
    return [SigningKey(bytes([i + 1]) * 32) for i in range(n)]


def test_a_chain_signed_by_both_keys_is_followed():
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


def test_a_rotation_signed_by_only_the_old_key_is_rejected():
    """THREATS 17: a thief with the old key alone cannot move the identity to a key
    whose holder did not sign (and vice versa)."""
    old, new, other = keys(3)
    with pytest.raises(RotationError, match="new key"):
        parse_rotation(_signed_by(old, new, old, other))
    with pytest.raises(RotationError, match="old key"):
        parse_rotation(_signed_by(old, new, other, new))


def test_a_chain_over_the_limit_is_rejected():
    """THREATS 17: at most MAX_CHAIN links are followed."""
    k = keys(MAX_CHAIN + 2)
    chain = [make_rotation(a, b, new_box_pk=BOX, created=WHEN) for a, b in zip(k, k[1:])]
    with pytest.raises(RotationError, match="longer"):
        follow_chain(bytes(k[0].verify_key), chain)


def test_a_chain_that_does_not_start_at_the_trusted_key_is_rejected():
    k = keys(3)
    with pytest.raises(RotationError, match="does not start"):
        follow_chain(bytes(k[0].verify_key), [make_rotation(k[1], k[2], new_box_pk=BOX,
                                                            created=WHEN)])


def test_every_flipped_byte_is_rejected():
    k = keys(2)
    data = make_rotation(k[0], k[1], new_box_pk=BOX, created=WHEN)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 1
        with pytest.raises(RotationError):
            parse_rotation(bytes(bad))
