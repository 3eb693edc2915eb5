"""Writes tests/vectors/invitations.json: fixed keys, secret and nonce -> the exact bytes
of an invitation and its acceptance (PROTOCOL.md §2.7). Run it only when the format
changes on purpose; tests/protocol/test_invite_vectors.py checks the code against the
file, and `verify_invite_vectors.py` checks the file with code of its own.

    python tests/vectors/make_invite_vectors.py
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import nacl.bindings
from nacl.signing import SigningKey

from o2m_pub.protocol import invite
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.cards import parse_card

OUT = Path(__file__).with_name("invitations.json")

ADA_SEED, ADA_BOX = bytes(range(32)), bytes(range(32, 64))
BOB_SEED, BOB_BOX = bytes(range(64, 96)), bytes(range(96, 128))
SECRET = bytes(range(128, 160))
NONCE = bytes([13]) * 24
EXPIRES = "2026-12-01T10:30:00Z"


def card_bytes(seed: bytes, box_secret: bytes, *, name: str, url: str, created: str,
               tls_pin: bytes | None) -> bytes:
    """A §2.4 card signed by hand (not by `make_card`), so these vectors stand on the
    card format alone. Ada's is the card of §2.6."""
    doc = {"box_pk": b64u_encode(nacl.bindings.crypto_scalarmult_base(box_secret)),
           "created": created, "name": name,
           "sign_pk": b64u_encode(bytes(SigningKey(seed).verify_key)), "type": "o2m-card",
           "url": url, "v": 1}
    if tls_pin is not None:
        doc["tls_pin"] = "sha256/" + b64u_encode(tls_pin)
    doc["sig"] = b64u_encode(SigningKey(seed).sign(b"o2m-card-v1\n" + canonical_json(doc))
                             .signature)
    return canonical_json(doc)


def compute() -> dict:
    ada = parse_card(card_bytes(ADA_SEED, ADA_BOX, name="Ada", url="https://ada.example/",
                                created="2026-11-24T10:30:00Z",
                                tls_pin=hashlib.sha256(b"pin").digest()))
    bob = parse_card(card_bytes(BOB_SEED, BOB_BOX, name="Bob", url="https://bob.example/",
                                created="2026-11-24T11:00:00Z", tls_pin=None))
    invitation = invite.make_invitation(
        ada, secret=SECRET, name="bob",
        expires=dt.datetime.fromisoformat(EXPIRES.replace("Z", "+00:00")))
    acceptance = invite.seal_acceptance(SECRET, bob, nonce=NONCE)
    return {
        "inputs": {
            "ada_sign_seed": ADA_SEED.hex(), "ada_box_secret": ADA_BOX.hex(),
            "bob_sign_seed": BOB_SEED.hex(), "bob_box_secret": BOB_BOX.hex(),
            "ada_card": ada.raw.decode(), "bob_card": bob.raw.decode(),
            "secret": SECRET.hex(), "expires": EXPIRES, "name": "bob",
            "acceptance_nonce": NONCE.hex(),
        },
        "invite_id": invite.invite_id(SECRET).hex(),
        "invite_id_b64u": b64u_encode(invite.invite_id(SECRET)),
        "box_key": invite.box_key(SECRET).hex(),
        "invitation_size": len(invitation.raw),
        "invitation_sha256": hashlib.sha256(invitation.raw).hexdigest(),
        "invitation_text": invite.invitation_to_text(invitation),
        "acceptance_size": len(acceptance),
        "acceptance_sha256": hashlib.sha256(acceptance).hexdigest(),
        "acceptance_hex": acceptance.hex(),
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(compute(), indent=2) + "\n")
    print(f"wrote {OUT}")
