"""Friends of fixed keys and their stored posts, for the desk's tests."""

from __future__ import annotations

import datetime as dt

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.cards import make_card
from o2m_pub.reader.model import FriendUpdate
from o2m_pub.reader.render import render_pending
from o2m_pub.reader.store import ReaderStore

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b3a8e50000000049454e44ae426082")


RIDGE_HASH = "ab" * 32


def friend_card(n: int, name: str, display: str | None = None):  # noqa: ANN201 - a Card
    sign = SigningKey(bytes([n]) * 32)
    box = PrivateKey(bytes([n + 50]) * 32)
    return make_card(sign, name=display or name.title(), url=f"https://{name}.example/",
                     box_pk=bytes(box.public_key), tls_pin=None,
                     created=NOW - dt.timedelta(days=1))


def store_posts(root, friend: str, card, rows, *, render: bool = True,  # noqa: ANN001
                **kw) -> None:  # noqa: ANN003
    """Store `friend`'s posts as `o2m fetch` does: the update, then each new post
    rendered once in the worker (reader/render.py), unless `render` is False."""
    with ReaderStore.open(root) as store:
        store.apply_update(FriendUpdate(friend, b64u_encode(card.sign_pk), upserts=list(rows),
                                        **kw))
        if render:
            render_pending(store, [friend])
