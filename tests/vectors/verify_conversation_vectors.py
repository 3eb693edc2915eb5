"""Checks tests/vectors/conversation.json with code of its own: nothing of o2m, only the
standard library (hashlib's SHA-256 and BLAKE2b, json, base64) and PyNaCl's low-level
libsodium bindings, following the text of PROTOCOL.md §4 (and §2.1, §3.1, §3.2 it
cites). A second implementation of the spec would compute the same bytes.

    python tests/vectors/verify_conversation_vectors.py      # prints "ok", or fails
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nacl.bindings as sodium

VECTORS = Path(__file__).with_name("conversation.json")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value: object) -> bytes:
    """§2.1 for what these documents hold (objects, strings, small integers)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def pad(plaintext: bytes) -> bytes:
    """§3.2 for plaintexts under 508 bytes: a 4-byte length, then zeros up to 512."""
    assert len(plaintext) <= 508
    body = len(plaintext).to_bytes(4, "big") + plaintext
    return body + bytes(512 - len(body))


def keypair(seed_hex: str) -> tuple[bytes, bytes]:
    """Ed25519 (public, secret) from a 32-byte seed."""
    return sodium.crypto_sign_seed_keypair(bytes.fromhex(seed_hex))


def sign(secret: bytes, message: bytes) -> bytes:
    return sodium.crypto_sign(message, secret)[:64]


def verify(v: dict) -> None:
    i = v["inputs"]
    ada_pk, _ = keypair(i["ada_sign_seed"])
    bob_pk, bob_sk = keypair(i["bob_sign_seed"])
    ada_box_pk = sodium.crypto_scalarmult_base(bytes.fromhex(i["ada_box_secret"]))
    # §4.1: the reference
    ref = {"author": b64u(ada_pk), "id": i["ada_post_id"]}
    assert v["post_ref"] == f"o2m:{b64u(ada_pk)}/{i['ada_post_id']}"
    # §4.2: the reply statement, signed over "o2m-reply-v1\n" || body
    reply = {"author": b64u(bob_pk), "date": i["date"], "id": i["bob_reply_id"],
             "object": {"hash": i["object_hash"], "size": i["object_size"]},
             "thread": ref, "to": ref, "type": "o2m-reply", "url": i["bob_url"], "v": 1}
    body = canonical(reply)
    assert v["reply_body"].encode() == body
    assert v["reply_signature"] == sign(bob_sk, b"o2m-reply-v1\n" + body).hex()
    # §4.3: the reaction's id and statement
    rid = b64u(hashlib.sha256(b"o2m-reaction-id\0" + bob_pk + canonical(ref)).digest()[:16])
    assert v["reaction_id"] == rid
    reaction = {"author": b64u(bob_pk), "date": i["date"], "emoji": i["emoji"], "id": rid,
                "to": ref, "type": "o2m-reaction", "v": 1}
    body = canonical(reaction)
    assert v["reaction_body"].encode() == body
    assert v["reaction_signature"] == sign(bob_sk, b"o2m-reaction-v1\n" + body).hex()
    # §4.4: the link
    statement = bytes.fromhex(v["reply_signature"]) + v["reply_body"].encode()
    link = {"key": b64u(bytes.fromhex(i["object_key"])), "statement": b64u(statement),
            "tls_pin": i["tls_pin"]}
    assert v["link"].encode() == canonical(link)
    # §4.7: the notice, Bob (sender) to Ada, keyed by the §3.1 pair secret
    shared = sodium.crypto_scalarmult(bytes.fromhex(i["bob_box_secret"]), ada_box_pk)
    key = hashlib.blake2b(bob_pk + ada_pk, digest_size=32, key=shared,
                          person=b"o2m1 notice key\x00").digest()
    assert v["notice_key"] == key.hex()
    doc = {"kind": "reply", "post": ref, "seq": i["notice_seq"], "type": "o2m-notice",
           "v": 1}
    nonce = bytes.fromhex(i["notice_nonce"])
    box = nonce + sodium.crypto_secretbox(pad(canonical(doc)), nonce, key)
    notice = b"O2MNOTE1" + bob_pk + sign(bob_sk, b"o2m-notice-v1\n" + box) + box
    assert v["notice_hex"] == notice.hex()
    assert v["notice_sha256"] == hashlib.sha256(notice).hexdigest()
    assert v["notice_size"] == len(notice)


if __name__ == "__main__":
    verify(json.loads(VECTORS.read_text()))
    print("ok")
