"""A friend made of fixed keys who reads an author's build/ with their own keys."""

from __future__ import annotations

import datetime as dt
import json

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol import feeds
from o2m_pub.protocol.cards import make_card

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


class Friend:
    def __init__(self, n: int, name: str) -> None:
        self.sign = SigningKey(bytes([n]) * 32)
        self.box = PrivateKey(bytes([n + 50]) * 32)
        self.card = make_card(self.sign, name=name.title(), url=f"https://{name}.example/",
                              box_pk=bytes(self.box.public_key), tls_pin=None,
                              created=NOW - dt.timedelta(days=1))

    def read_feed(self, build, author_card) -> dict[str, dict]:
        """Everything this friend can read in `build`: item id -> post (None = deleted)."""
        secrets = feeds.pairwise_secrets(bytes(self.box), author_card.box_pk,
                                         author_card.sign_pk, bytes(self.sign.verify_key))
        path = build / secrets.head_path
        if not path.exists():
            return {}
        head = feeds.open_head(path.read_bytes(), secrets, author_sign_pk=author_card.sign_pk,
                               reader_sign_pk=bytes(self.sign.verify_key))
        items, prev = list(head.items), head.prev
        while prev is not None:
            page_items, prev_next = feeds.open_page(
                (build / prev.path).read_bytes(), prev, secrets,
                author_sign_pk=author_card.sign_pk, reader_sign_pk=bytes(self.sign.verify_key))
            items += page_items
            prev = prev_next
        posts: dict[str, dict] = {}
        for item in items:  # newest first: the first version of an id wins
            if item.id in posts:
                continue
            if item.deleted:
                posts[item.id] = None
                continue
            data = (build / item.object.path).read_bytes()
            posts[item.id] = json.loads(feeds.open_object(data, item.object))
        return posts


def titles(posts: dict[str, dict]) -> set[str]:
    return {p.get("title") or p["markdown"] for p in posts.values() if p}
