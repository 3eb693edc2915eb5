"""A site with keys, two friends and a few of their posts stored, and its desk."""

from __future__ import annotations

import pytest
from support.desk import Client, make_app, make_site
from support.desk_world import (
    NOW,
    PNG,
    RIDGE_HASH,
    friend_card,
    store_posts,
)

from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.reader.model import PostRow
from o2m_pub.reader.store import ReaderStore


@pytest.fixture
def world(tmp_path):
    """Ada's site: friends bob ("Bob Builder") and carol, a group, stored posts."""
    root = make_site(tmp_path, "ada")
    store = FriendStore(root)
    bob, carol = friend_card(1, "bob", "Bob Builder"), friend_card(2, "carol")
    store.add("bob", bob, now=NOW)
    store.add("carol", carol, now=NOW)
    store.group_add("family", ["carol"])
    with ReaderStore.open(root) as reader:
        reader.attachments.save(RIDGE_HASH, PNG)
    store_posts(root, "bob", bob, [
        PostRow(id="b1", audience="private", date="2026-11-20T10:00:00Z", title="Ridge walk",
                markdown="We left at *dawn*.\n\n![the ridge at dawn](ridge.png)",
                tags=("walks",), attachments=({"name": "ridge.png", "media_type": "image/png",
                                               "hash": RIDGE_HASH, "size": len(PNG)},)),
        PostRow(id="b2", audience="private", date="2026-11-21T10:00:00Z", title=None,
                markdown="A short note about sourdough bread.")])
    store_posts(root, "carol", carol, [
        PostRow(id="c1", audience="public", date="2026-11-22T10:00:00Z", title="Jam",
                html="<p>Plum jam, <b>again</b>.</p>", summary="Plum jam again.",
                url="https://carol.example/2026/jam/")])
    return {"root": root, "bob": bob, "carol": carol}


@pytest.fixture
def app(world):
    desk = make_app(world["root"])
    yield desk
    desk.reader.close()
    desk.desk.close()


@pytest.fixture
def client(app):
    c = Client(app)
    assert c.sign_in().status == 303
    return c
