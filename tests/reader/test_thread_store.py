"""The OP's side of a thread in the reader's store (`reader/thread_store.py`): the links
its next build puts in its items stay within the item's caps however big the thread
(PROTOCOL.md §3.4, §4.4), newest first; hidden replies are left out."""

from __future__ import annotations

import nacl.signing

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.conversation import PostRef, open_link, sign_reaction, sign_reply
from o2m_pub.reader import thread_store
from o2m_pub.reader.model import ThreadRow
from o2m_pub.reader.store import ReaderStore

OP = nacl.signing.SigningKey(bytes([1]) * 32)
POST = PostRef(b64u_encode(bytes(OP.verify_key)), b64u_encode(bytes(16)))


def _date(n: int) -> str:
    return f"2026-11-{1 + n // 1440:02d}T{n // 60 % 24:02d}:{n % 60:02d}:00Z"


def _rows(replies: int, reactions: int) -> list[ThreadRow]:
    rows = []
    for n in range(replies):
        key = nacl.signing.SigningKey(n.to_bytes(32, "big"))
        rid = b64u_encode(n.to_bytes(16, "big"))
        statement = sign_reply(signing_key=key, post_id=rid, date=_date(n),
                               object_hash="ab" * 32, object_size=640, to=POST, thread=POST,
                               url=f"https://f{n}.example/")
        rows.append(ThreadRow(b64u_encode(bytes(key.verify_key)), rid, "reply", POST.text,
                              _date(n), thread_ref=POST.text,
                              statement=b64u_encode(statement), key=b64u_encode(bytes(32))))
    for n in range(reactions):
        key = nacl.signing.SigningKey((10_000 + n).to_bytes(32, "big"))
        statement = sign_reaction(signing_key=key, date=_date(n), emoji="👍", to=POST)
        rows.append(ThreadRow(b64u_encode(bytes(key.verify_key)), f"r{n}", "reaction",
                              POST.text, _date(n), emoji="👍",
                              statement=b64u_encode(statement)))
    return rows


def test_an_enormous_thread_is_linked_within_the_items_caps(tmp_path):
    """Bad input (an enormous thread): 700 replies and 1,100 reactions to one post give
    an item that a reader accepts (at most 512 links, 1,024 reactions, 256 KiB), the
    newest first; the rest are left out, not the whole item."""
    with ReaderStore.open(tmp_path) as store:
        thread_store._insert(store.db, "friends", _rows(700, 1100))
        (entry,) = thread_store.links_for_build(store.db, POST.author, {}).values()
    item = {"id": POST.id, "date": _date(0), "object": {"hash": "cd" * 32,
            "key": b64u_encode(bytes(32)), "size": 640}, **entry}
    parsed = feeds.Item.from_json(item)  # within every cap of §3.4
    assert 0 < len(parsed.replies) <= 512 and len(parsed.reactions) <= 1024
    newest = max(r.date for r in _rows(700, 0))

    dates = sorted(open_link(link).statement.date for link in parsed.replies)
    assert dates[-1] == newest  # the newest reply is kept


def test_a_hidden_reply_is_not_linked(tmp_path):
    """`o2m thread hide`: the reply leaves the OP's links; unhide brings it back."""
    with ReaderStore.open(tmp_path) as store:
        rows = _rows(3, 0)
        thread_store._insert(store.db, "friends", rows)
        thread_store.set_hidden(store.db, rows[0].author, rows[0].id, True)
        (entry,) = thread_store.links_for_build(store.db, POST.author, {}).values()
        assert len(entry["replies"]) == 2
        thread_store.set_hidden(store.db, rows[0].author, rows[0].id, False)
        (entry,) = thread_store.links_for_build(store.db, POST.author, {}).values()
        assert len(entry["replies"]) == 3
