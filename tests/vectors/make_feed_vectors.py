"""Writes tests/vectors/feeds.json: fixed keys and nonces -> the exact bytes of each
feed construction (PROTOCOL.md §3). Run it only when the format changes on purpose;
tests/protocol/test_vectors.py checks the code against the file, and PROTOCOL.md quotes
it; tests/protocol/test_vectors_independent.py recomputes every value from the spec's
text with other code (hashlib, pyca/cryptography, libsodium's bindings).

    python tests/vectors/make_feed_vectors.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode

OUT = Path(__file__).with_name("feeds.json")


def compute() -> dict:
    ada_sign, ada_box = SigningKey(bytes(range(32))), PrivateKey(bytes(range(32, 64)))
    bob_sign, bob_box = SigningKey(bytes(range(64, 96))), PrivateKey(bytes(range(96, 128)))
    ada_pk, bob_pk = bytes(ada_sign.verify_key), bytes(bob_sign.verify_key)
    secrets = feeds.pairwise_secrets(bytes(ada_box), bytes(bob_box.public_key), ada_pk, bob_pk)
    post = b'{"date":"2026-11-24T10:00:00Z","markdown":"Hello, Bob.","type":"o2m-post","v":1}'
    obj, ref = feeds.seal_object(post, key=bytes([7]) * 32, nonce=bytes([9]) * 24)
    item = feeds.Item(b64u_encode(bytes(range(16))), "2026-11-24T10:00:00Z", ref)
    head = feeds.seal_head(signing_key=ada_sign, reader_sign_pk=bob_pk, secrets=secrets, seq=1,
                           updated="2026-11-24T10:00:00Z", expires="2026-12-24T10:00:00Z",
                           items=[item], prev=None, nonce=bytes([11]) * 24)
    opened = feeds.open_head(head, secrets, author_sign_pk=ada_pk, reader_sign_pk=bob_pk)
    signature, body = opened.signed[:64], opened.signed[64:]
    return {
        "inputs": {
            "ada_sign_seed": bytes(range(32)).hex(), "ada_box_secret": bytes(range(32, 64)).hex(),
            "bob_sign_seed": bytes(range(64, 96)).hex(), "bob_box_secret": bytes(range(96, 128)).hex(),
            "post_plaintext": post.decode(), "post_key": (bytes([7]) * 32).hex(),
            "post_nonce": (bytes([9]) * 24).hex(), "head_nonce": (bytes([11]) * 24).hex(),
            "item_id": b64u_encode(bytes(range(16))),
        },
        "feed_name": secrets.name,
        "head_key": secrets.key.hex(),
        "buckets": {str(n): feeds.padded_size(n) for n in (0, 512, 513, 1000, 5000, 70000)},
        "padded_lengths": {str(n): len(feeds.pad(bytes(n)))
                           for n in (0, 508, 509, 511, 512, 1000, 5000, 70000)},
        "object_sha256": ref.hash,
        "object_size": ref.size,
        "object_prefix_hex": obj[:48].hex(),
        "head_body": body.decode("utf-8"),
        "head_signature": signature.hex(),
        "head_sha256": hashlib.sha256(head).hexdigest(),
        "head_size": len(head),
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(compute(), indent=2) + "\n")
    print(f"wrote {OUT}")
