"""Writes tests/vectors/connect.json: fixed keys -> the exact bytes of the documents of
protocol 1.1 that keep friends connected (PROTOCOL.md §1.4, §2.4, §2.5): a card with
`seq`, `next`, `feed_pk`, `avatar` and `bio`; a key rotation statement and the card
after it; a public feed signature. Run it only when a format changes on purpose;
tests/protocol/test_vectors.py checks the code against the file (and recomputes it with
independent code), and PROTOCOL.md quotes it.

    python tests/vectors/make_connect_vectors.py
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol.cards import Avatar, key_commitment, make_card
from o2m_pub.protocol.feed_signature import sign_feed
from o2m_pub.protocol.rotation import make_rotation, rotations_file

OUT = Path(__file__).with_name("connect.json")
UTC = dt.timezone.utc


def seed(start: int) -> bytes:
    return bytes(range(start, start + 32))


def compute() -> dict:
    ada_sign, ada_box = SigningKey(seed(0x00)), PrivateKey(seed(0x20))
    next_sign = SigningKey(seed(0x80))  # the key Ada's card commits to
    feed_key = SigningKey(seed(0xa0))  # her public-feed key
    after_sign = SigningKey(seed(0xc0))  # the key the new card commits to
    new_box = PrivateKey(seed(0xe0))  # the box key made at the rotation
    avatar = Avatar(path="media/8a9f3b1d5e7c2f40/avatar.png",
                    sha256=hashlib.sha256(b"avatar").hexdigest(), media_type="image/png")
    card = make_card(ada_sign, name="Ada", url="https://ada.example/",
                     box_pk=bytes(ada_box.public_key), tls_pin=hashlib.sha256(b"pin").digest(),
                     created=dt.datetime(2026, 11, 24, 10, 30, tzinfo=UTC), seq=7,
                     next_digest=key_commitment(bytes(next_sign.verify_key)),
                     feed_pk=bytes(feed_key.verify_key), avatar=avatar,
                     bio="Walks, bread and\nthe odd script.")
    statement = make_rotation(ada_sign, next_sign, new_box_pk=bytes(new_box.public_key),
                              new_next_sign_pk=bytes(after_sign.verify_key),
                              created=dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    rotated = make_card(next_sign, name="Ada", url="https://ada.example/",
                        box_pk=bytes(new_box.public_key), tls_pin=None,
                        created=dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC), seq=8,
                        next_digest=key_commitment(bytes(after_sign.verify_key)),
                        feed_pk=bytes(feed_key.verify_key))
    feed = (b'{"items":[],"title":"Ada\'s notes",'
            b'"version":"https://jsonfeed.org/version/1.1"}\n')
    signature = sign_feed(feed_key, author_sign_pk=bytes(ada_sign.verify_key), feed=feed,
                          seq=1, updated=dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    return {
        "inputs": {
            "ada_sign_seed": seed(0x00).hex(), "ada_box_secret": seed(0x20).hex(),
            "next_sign_seed": seed(0x80).hex(), "feed_sign_seed": seed(0xa0).hex(),
            "after_sign_seed": seed(0xc0).hex(), "new_box_secret": seed(0xe0).hex(),
            "tls_pin_of": "pin", "avatar_bytes": "avatar",
            "feed_json": feed.decode(),
        },
        "next_commitment": "sha256/" + _b64u(key_commitment(bytes(next_sign.verify_key))),
        "card": card.raw.decode(),
        "card_sha256": hashlib.sha256(card.raw).hexdigest(),
        "rotation": statement.decode(),
        "rotation_sha256": hashlib.sha256(statement).hexdigest(),
        "rotations_file": rotations_file([statement]).decode(),
        "card_after_rotation": rotated.raw.decode(),
        "card_after_rotation_sha256": hashlib.sha256(rotated.raw).hexdigest(),
        "feed_signature": signature.decode(),
        "feed_signature_sha256": hashlib.sha256(signature).hexdigest(),
    }


def _b64u(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


if __name__ == "__main__":
    OUT.write_text(json.dumps(compute(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")
