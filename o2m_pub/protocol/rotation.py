"""Key rotation (PROTOCOL.md §2.5): how an author moves to new keys without their
friends having to trust a new card blindly.

Pre-rotation, as KERI does it: every card commits to the digest of the author's next
signing key (`next`, §2.4), and a rotation may only move to that committed key. A
statement names the old signing key, the new keys and the new key's own commitment to
the key after it (`new_next`), and is signed by BOTH the old and the new signing key:
the old signature says the owner of the old key wants the move, the new one proves
possession of the new key. A thief of the current key alone cannot rotate (the next
key lives in its own sealed file), and the holder of the next key alone cannot either.

A reader follows a chain of statements from the card it trusts, at most MAX_CHAIN
long, each link's new key matching the previous commitment, to a final card signed by
the last new key; only then does it adopt the new keys and reset its rollback
high-water mark (THREATS.md "fast-forward", case 17). Pure functions.

    RotationError (O2MError, ValueError)   a statement or a chain that does not verify
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
    parse_utc_text,
    utc_text,
)
from o2m_pub.protocol.cards import (
    DIGEST_PREFIX,
    Card,
    commitment_text,
    key_commitment,
    url_move_allowed,
)

SIG_CONTEXT = b"o2m-rotation-v1\n"
TYPE = "o2m-rotation"
MAX_STATEMENT_BYTES = 2048
MAX_CHAIN = 8
# A rotations file holds at most MAX_CHAIN statements as b64u text: 8 x 2732 characters
# and the quotes and commas, within this cap.
MAX_FILE_BYTES = 32 * 1024
ROTATIONS_PATH = ".well-known/o2m-rotations.json"
REASONS = ("routine", "compromised")
_SIGNATURES = ("sig_new", "sig_old")
_REQUIRED = frozenset({"created", "new_box_pk", "new_next", "new_sign_pk", "old_sign_pk",
                       "reason", "type", "v", *_SIGNATURES})


class RotationError(O2MError, ValueError):
    """A key rotation statement does not verify; the friend's old keys stay trusted."""

    hint = "ask your friend for their new card and compare its fingerprint with them"


@dataclass(frozen=True)
class Rotation:
    """One verified statement: signed by both `old_sign_pk` and `new_sign_pk`."""

    old_sign_pk: bytes
    new_sign_pk: bytes
    new_box_pk: bytes
    new_next: bytes  # SHA-256 of the key after the new one
    reason: str  # "routine" or "compromised"
    created: str
    raw: bytes


def make_rotation(old_key: nacl.signing.SigningKey, new_key: nacl.signing.SigningKey, *,
                  new_box_pk: bytes, new_next_sign_pk: bytes, created: dt.datetime,
                  reason: str = "routine") -> bytes:
    """A statement moving from `old_key` to `new_key`, signed by both (§2.5).

    Args:
        new_box_pk: the X25519 key that goes with the new signing key.
        new_next_sign_pk: the public half of the key after `new_key`; the statement
            commits to its SHA-256.
        created: when (an aware datetime).
        reason: "routine", or "compromised" when the old key was stolen.

    Raises:
        ValueError: an unknown reason, or the same key twice (the caller's bug).
    """
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {REASONS}")
    if bytes(old_key.verify_key) == bytes(new_key.verify_key):
        raise ValueError("a rotation must change the signing key")
    body = {"created": utc_text(created), "new_box_pk": b64u_encode(bytes(new_box_pk)),
            "new_next": commitment_text(key_commitment(new_next_sign_pk)),
            "new_sign_pk": b64u_encode(bytes(new_key.verify_key)),
            "old_sign_pk": b64u_encode(bytes(old_key.verify_key)), "reason": reason,
            "type": TYPE, "v": 1}
    message = SIG_CONTEXT + canonical_json(body)
    return canonical_json({**body,
                           "sig_old": b64u_encode(old_key.sign(message).signature),
                           "sig_new": b64u_encode(new_key.sign(message).signature)})


def _key(doc: dict[str, Any], name: str, length: int) -> bytes:
    try:
        return b64u_decode(doc[name], length=length)
    except (EncodingError, TypeError):
        raise RotationError(f"malformed {name} in a key rotation statement") from None


def _digest(doc: dict[str, Any]) -> bytes:
    text = doc["new_next"]
    if not isinstance(text, str) or not text.startswith(DIGEST_PREFIX):
        raise RotationError("malformed new_next in a key rotation statement")
    try:
        return b64u_decode(text[len(DIGEST_PREFIX):], length=32)
    except EncodingError:
        raise RotationError("malformed new_next in a key rotation statement") from None


def parse_rotation(data: bytes) -> Rotation:
    """Check one statement: the cap, strict canonical JSON, every field, both
    signatures. Unknown keys are allowed (and signed over), as in cards.

    Raises:
        RotationError: for anything else than a statement signed by both keys.
    """
    try:
        doc = parse_json(data, max_bytes=MAX_STATEMENT_BYTES)
    except EncodingError as e:
        raise RotationError(f"malformed key rotation statement: {e}") from None
    if not isinstance(doc, dict) or canonical_json(doc) != data:
        raise RotationError("malformed key rotation statement (not canonical JSON)")
    if doc.get("type") != TYPE or type(doc.get("v")) is not int or doc["v"] != 1:
        raise RotationError("unsupported key rotation statement (type or version)")
    missing = sorted(_REQUIRED - set(doc))
    if missing:
        raise RotationError(f"malformed key rotation statement: no {', '.join(missing)}")
    old, new = _key(doc, "old_sign_pk", 32), _key(doc, "new_sign_pk", 32)
    box = _key(doc, "new_box_pk", 32)
    next_digest = _digest(doc)
    sig_old, sig_new = _key(doc, "sig_old", 64), _key(doc, "sig_new", 64)
    if doc["reason"] not in REASONS:
        raise RotationError("unknown reason in a key rotation statement")
    try:
        parse_utc_text(doc["created"])  # §2.1: a real date and time, not just its shape
    except ValueError:
        raise RotationError("malformed created time in a key rotation statement") from None
    if old == new:
        raise RotationError("a rotation statement must change the key")
    message = SIG_CONTEXT + canonical_json({k: v for k, v in doc.items()
                                            if k not in _SIGNATURES})
    for key, sig, which in ((old, sig_old, "old"), (new, sig_new, "new")):
        try:
            nacl.signing.VerifyKey(key).verify(message, sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            raise RotationError(f"key rotation statement not signed by the {which} key") from None
    return Rotation(old, new, box, next_digest, doc["reason"], doc["created"], data)


def follow_chain(trusted_sign_pk: bytes, statements: list[bytes]) -> Rotation | None:
    """Follow signed links from the key we trust; returns the last one (None for an
    empty chain). Checks signatures and links only, not the commitments: what a
    reader that already adopted a rotation uses to tell that its stored state was
    left by one (`verify_rotation` checks a chain before it is adopted).

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


def verify_rotation(stored: Card, statements: list[bytes], new_card: Card) -> list[Rotation]:
    """The chain rule of §2.5: may a reader who holds `stored` adopt `new_card`, whose
    signing key is another, on the strength of `statements` (the author's published
    list, oldest first)?

    The chain starts at the statement whose `old_sign_pk` is the stored key; its
    first `new_sign_pk` hashes to the stored card's `next`, each later one to the
    previous statement's `new_next`; at most MAX_CHAIN links; `new_card` is signed by
    the last new key, carries its box key, and commits to the last `new_next`; the
    URL rule of §2.4 holds between the two cards.

    Returns:
        The links followed, oldest first (to keep with the friend).

    Raises:
        RotationError: anything else, naming the first rule broken.
    """
    if len(statements) > MAX_CHAIN:
        raise RotationError(f"key rotation chain longer than {MAX_CHAIN}")
    parsed = [parse_rotation(s) for s in statements]
    start = next((i for i, r in enumerate(parsed) if r.old_sign_pk == stored.sign_pk), None)
    if start is None:
        raise RotationError("no key rotation from the key you trust was published")
    if stored.next is None:
        raise RotationError("the card you hold commits to no next key, so it cannot rotate")
    chain, commitment, current = parsed[start:], stored.next, stored.sign_pk
    for link in chain:
        if link.old_sign_pk != current:
            raise RotationError("key rotation chain is broken (a link starts at another key)")
        if key_commitment(link.new_sign_pk) != commitment:
            raise RotationError("key rotation to a key that was not committed to")
        current, commitment = link.new_sign_pk, link.new_next
    last = chain[-1]
    if new_card.sign_pk != last.new_sign_pk:
        raise RotationError("their card is not signed by the key the rotation names")
    if new_card.box_pk != last.new_box_pk:
        raise RotationError("their card's box key is not the one the rotation names")
    if new_card.next != last.new_next:
        raise RotationError("their card's next-key commitment is not the rotation's")
    if not url_move_allowed(stored.url, new_card.url):
        raise RotationError(f"their card moves from a public address to the local "
                            f"{new_card.url}")
    return chain


def parse_rotations_file(data: bytes) -> list[bytes]:
    """The published list (§2.5): a JSON array of at most MAX_CHAIN b64u strings, each
    the exact bytes of one statement, oldest first. The statements are not checked
    here (`verify_rotation` does).

    Raises:
        RotationError: over the cap, not such an array, or more than MAX_CHAIN.
    """
    try:
        doc = parse_json(data, max_bytes=MAX_FILE_BYTES)
    except EncodingError as e:
        raise RotationError(f"malformed key rotations file: {e}") from None
    if not isinstance(doc, list) or not all(isinstance(s, str) for s in doc):
        raise RotationError("malformed key rotations file (not a list of statements)")
    if len(doc) > MAX_CHAIN:
        raise RotationError(f"key rotations file holds more than {MAX_CHAIN} statements")
    try:
        return [b64u_decode(s) for s in doc]
    except EncodingError as e:
        raise RotationError(f"malformed key rotations file: {e}") from None


def rotations_file(statements: list[bytes]) -> bytes:
    """The published list for `statements`, oldest first: the newest MAX_CHAIN kept."""
    return canonical_json([b64u_encode(s) for s in statements[-MAX_CHAIN:]])
