"""Key rotation statements (PROTOCOL.md §2.5): how an author moves to new keys without
their friends having to trust a new card blindly.

A statement names the old signing key and the new keys and is signed by BOTH the old
and the new signing key: the old signature says the owner of the old key wants the
move, the new one proves possession of the new key (so nobody can point an identity at
a key they do not hold). A reader follows a chain of statements from the key it
trusts, at most MAX_CHAIN long, and resets its rollback high-water mark only at the end
of a verified chain (THREATS.md "fast-forward", case 17). Pure functions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
    utc_text,
)

SIG_CONTEXT = b"o2m-rotation-v1\n"
MAX_STATEMENT_BYTES = 2048
MAX_CHAIN = 8
_FIELDS = {"v", "type", "old_sign_pk", "new_sign_pk", "new_box_pk", "created", "sig_old",
           "sig_new"}


class RotationError(O2MError, ValueError):
    """A key rotation statement does not verify; the friend's old keys stay trusted."""

    hint = "ask your friend for their new card and compare its fingerprint with them"


@dataclass(frozen=True)
class Rotation:
    old_sign_pk: bytes
    new_sign_pk: bytes
    new_box_pk: bytes
    created: str
    raw: bytes


def _body(old_sign_pk: bytes, new_sign_pk: bytes, new_box_pk: bytes, created: str) -> dict[str, Any]:
    return {"v": 1, "type": "o2m-rotation", "old_sign_pk": b64u_encode(old_sign_pk),
            "new_sign_pk": b64u_encode(new_sign_pk), "new_box_pk": b64u_encode(new_box_pk),
            "created": created}


def make_rotation(old_key: nacl.signing.SigningKey, new_key: nacl.signing.SigningKey, *,
                  new_box_pk: bytes, created: dt.datetime) -> bytes:
    """A statement moving from `old_key` to `new_key`, signed by both (§2.6)."""
    body = _body(bytes(old_key.verify_key), bytes(new_key.verify_key), new_box_pk,
                 utc_text(created))
    message = SIG_CONTEXT + canonical_json(body)
    return canonical_json({**body,
                           "sig_old": b64u_encode(old_key.sign(message).signature),
                           "sig_new": b64u_encode(new_key.sign(message).signature)})


def parse_rotation(data: bytes) -> Rotation:
    """Check one statement: strict canonical JSON, both signatures.

    Raises:
        RotationError: for anything else than a statement signed by both keys.
    """
    try:
        doc = parse_json(data, max_bytes=MAX_STATEMENT_BYTES)
    except EncodingError as e:
        raise RotationError(f"malformed key rotation statement: {e}") from None
    if not isinstance(doc, dict) or set(doc) != _FIELDS or canonical_json(doc) != data:
        raise RotationError("malformed key rotation statement")
    if type(doc["v"]) is not int or doc["v"] != 1 or doc["type"] != "o2m-rotation":
        raise RotationError("unsupported key rotation statement")
    try:
        old = b64u_decode(doc["old_sign_pk"], length=32)
        new = b64u_decode(doc["new_sign_pk"], length=32)
        box = b64u_decode(doc["new_box_pk"], length=32)
        sig_old = b64u_decode(doc["sig_old"], length=64)
        sig_new = b64u_decode(doc["sig_new"], length=64)
    except (EncodingError, TypeError):
        raise RotationError("malformed key in a rotation statement") from None
    if old == new:
        raise RotationError("a rotation statement must change the key")
    message = SIG_CONTEXT + canonical_json({k: doc[k] for k in _FIELDS - {"sig_old", "sig_new"}})
    for key, sig, which in ((old, sig_old, "old"), (new, sig_new, "new")):
        try:
            nacl.signing.VerifyKey(key).verify(message, sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            raise RotationError(f"key rotation statement not signed by the {which} key") from None
    return Rotation(old, new, box, doc["created"], data)


def follow_chain(trusted_sign_pk: bytes, statements: list[bytes]) -> Rotation | None:
    """Follow rotations from the key we trust; returns the last one (None for an empty
    chain).

    Raises:
        RotationError: a statement fails, a link does not start at the key reached so
            far, or the chain is longer than MAX_CHAIN.
    """
    if len(statements) > MAX_CHAIN:
        raise RotationError(f"key rotation chain longer than {MAX_CHAIN}")
    current, last = trusted_sign_pk, None
    for data in statements:
        rotation = parse_rotation(data)
        if rotation.old_sign_pk != current:
            raise RotationError("key rotation chain does not start at the key you trust")
        current, last = rotation.new_sign_pk, rotation
    return last
