"""Checks tests/vectors/invitations.json with code of its own: nothing of o2m, only the
standard library (hashlib's BLAKE2b, json, base64) and PyNaCl's low-level libsodium
bindings, following the text of PROTOCOL.md §2.7 (and §2.1, §2.4, §3.2 it cites). A
second implementation of the spec would compute the same bytes.

    python tests/vectors/verify_invite_vectors.py      # prints "ok", or fails
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nacl.bindings as sodium

VECTORS = Path(__file__).with_name("invitations.json")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value: object) -> bytes:
    """§2.1 for what these documents hold (objects, strings, small integers)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def bucket(n: int) -> int:
    """§3.2: 512, else the first of 2^k, 5·2^(k-2), 3·2^(k-1), 7·2^(k-2), 2^(k+1) >= n."""
    if n <= 512:
        return 512
    k = 0
    while 2 ** (k + 1) < n:
        k += 1
    return min(size for size in (2 ** k, 5 * 2 ** (k - 2), 3 * 2 ** (k - 1), 7 * 2 ** (k - 2),
                                 2 ** (k + 1)) if size >= n)


def pad(plaintext: bytes) -> bytes:
    body = len(plaintext).to_bytes(4, "big") + plaintext
    return body + bytes(bucket(len(body)) - len(body))


def verify_card(text: str) -> dict:
    """§2.4's signature over the card without "sig"; returns the card as an object."""
    card = json.loads(text)
    assert canonical(card) == text.encode()
    unsigned = canonical({k: v for k, v in card.items() if k != "sig"})
    sodium.crypto_sign_open(unb64u(card["sig"]) + b"o2m-card-v1\n" + unsigned,
                            unb64u(card["sign_pk"]))
    return card


def verify(v: dict) -> None:
    inputs = v["inputs"]
    secret = bytes.fromhex(inputs["secret"])
    # §2.7 derivations: keyed BLAKE2b of the empty message, 16-byte personalisations
    ident = hashlib.blake2b(b"", digest_size=16, key=secret,
                            person=b"o2m1 invite id\0\0").digest()
    key = hashlib.blake2b(b"", digest_size=32, key=secret, person=b"o2m1 invite box\0").digest()
    assert ident.hex() == v["invite_id"] and b64u(ident) == v["invite_id_b64u"]
    assert key.hex() == v["box_key"]

    # the cards: signed by the seeds given, valid
    ada_seed, bob_seed = (bytes.fromhex(inputs[k]) for k in ("ada_sign_seed", "bob_sign_seed"))
    ada = verify_card(inputs["ada_card"])
    bob = verify_card(inputs["bob_card"])
    assert unb64u(ada["sign_pk"]) == sodium.crypto_sign_seed_keypair(ada_seed)[0]
    assert unb64u(bob["sign_pk"]) == sodium.crypto_sign_seed_keypair(bob_seed)[0]
    assert unb64u(bob["box_pk"]) == sodium.crypto_scalarmult_base(
        bytes.fromhex(inputs["bob_box_secret"]))

    # the invitation: canonical {"card","expires","name","secret","type","v"}, as text
    invitation = canonical({"card": ada, "expires": inputs["expires"], "name": inputs["name"],
                            "secret": b64u(secret), "type": "o2m-invite", "v": 1})
    assert len(invitation) == v["invitation_size"]
    assert hashlib.sha256(invitation).hexdigest() == v["invitation_sha256"]
    assert "o2m1i:" + b64u(invitation) == v["invitation_text"]

    # the acceptance: magic || invite_id || nonce || secretbox(pad(doc), nonce, box_key)
    nonce = bytes.fromhex(inputs["acceptance_nonce"])
    doc = canonical({"card": bob, "invite_id": b64u(ident), "type": "o2m-accept", "v": 1})
    acceptance = b"O2MACPT1" + ident + nonce + sodium.crypto_secretbox(pad(doc), nonce, key)
    assert acceptance.hex() == v["acceptance_hex"]
    assert len(acceptance) == v["acceptance_size"] <= 8192
    assert hashlib.sha256(acceptance).hexdigest() == v["acceptance_sha256"]
    # ... and it opens back to the document
    opened = sodium.crypto_secretbox_open(acceptance[48:], acceptance[24:48], key)
    n = int.from_bytes(opened[:4], "big")
    assert opened[4:4 + n] == doc and not any(opened[4 + n:])


if __name__ == "__main__":
    verify(json.loads(VECTORS.read_text()))
    print("ok")
