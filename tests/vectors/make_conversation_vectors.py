"""Writes tests/vectors/conversation.json: fixed keys and nonces -> the exact bytes of a
reply statement, a reaction statement, a reply link and a notice (PROTOCOL.md §4.8). Run
it only when the format changes on purpose; tests/protocol/test_conversation.py checks
the code against the file and PROTOCOL.md quotes it;
tests/vectors/verify_conversation_vectors.py recomputes it from the spec's text with
other code (hashlib, pyca/cryptography, libsodium's bindings).

    python tests/vectors/make_conversation_vectors.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nacl.bindings import crypto_scalarmult
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol import conversation as c
from o2m_pub.protocol.canonical import b64u_encode

OUT = Path(__file__).with_name("conversation.json")
ADA_POST_ID = b64u_encode(bytes(range(16)))  # Ada's post, as in §3.6
BOB_REPLY_ID = b64u_encode(bytes(range(16, 32)))
DATE = "2026-11-25T09:00:00Z"
BOB_URL = "https://bob.example/"
OBJECT_HASH = "ab" * 32
OBJECT_SIZE = 640
OBJECT_KEY = bytes([5]) * 32
PIN = "sha256/" + b64u_encode(bytes([6]) * 32)
NOTICE_NONCE = bytes([13]) * 24


def compute() -> dict:
    ada_sign, ada_box = SigningKey(bytes(range(32))), PrivateKey(bytes(range(32, 64)))
    bob_sign, bob_box = SigningKey(bytes(range(64, 96))), PrivateKey(bytes(range(96, 128)))
    ada_pk, bob_pk = bytes(ada_sign.verify_key), bytes(bob_sign.verify_key)
    post = c.PostRef(b64u_encode(ada_pk), ADA_POST_ID)
    reply = c.sign_reply(signing_key=bob_sign, post_id=BOB_REPLY_ID, date=DATE,
                         object_hash=OBJECT_HASH, object_size=OBJECT_SIZE, to=post,
                         thread=post, url=BOB_URL)
    reaction = c.sign_reaction(signing_key=bob_sign, date=DATE, emoji="👍", to=post)
    link = c.make_link(reply, OBJECT_KEY, PIN)
    notice = c.seal_notice(signing_key=bob_sign, own_box_sk=bytes(bob_box),
                           recipient_box_pk=bytes(ada_box.public_key), recipient_sign_pk=ada_pk,
                           kind="reply", post=post, seq=7, nonce=NOTICE_NONCE)
    return {
        "inputs": {"ada_sign_seed": bytes(range(32)).hex(),
                   "ada_box_secret": bytes(range(32, 64)).hex(),
                   "bob_sign_seed": bytes(range(64, 96)).hex(),
                   "bob_box_secret": bytes(range(96, 128)).hex(),
                   "ada_post_id": ADA_POST_ID, "bob_reply_id": BOB_REPLY_ID, "date": DATE,
                   "bob_url": BOB_URL, "object_hash": OBJECT_HASH, "object_size": OBJECT_SIZE,
                   "object_key": OBJECT_KEY.hex(), "tls_pin": PIN,
                   "notice_nonce": NOTICE_NONCE.hex(), "notice_seq": 7, "emoji": "👍"},
        "post_ref": post.text,
        "reply_body": reply[64:].decode(),
        "reply_signature": reply[:64].hex(),
        "reaction_id": c.reaction_id(bob_pk, post),
        "reaction_body": reaction[64:].decode(),
        "reaction_signature": reaction[:64].hex(),
        "link": json.dumps(link, sort_keys=True, separators=(",", ":")),
        "notice_key": c.notice_key(
            crypto_scalarmult(bytes(bob_box), bytes(ada_box.public_key)), bob_pk, ada_pk).hex(),
        "notice_hex": notice.hex(),
        "notice_sha256": hashlib.sha256(notice).hexdigest(),
        "notice_size": len(notice),
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(compute(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")
