"""Push notices (PROTOCOL.md §4.7) at `o2m serve`'s inbox: B's `o2m build` tells A's
server at once; the handler stores nothing from a stranger or a forged sender, and a
flood from a friend's key fills nothing (one queued notice per friend, the queue capped);
A's next fetch clears the queue."""

from __future__ import annotations

import time
from pathlib import Path

import nacl.utils
import pytest
from click.testing import CliRunner
from support.o2m_server import o2m_serve
from support.people import PASS, Person, PortOnly, server_context

from o2m_pub.cli import main
from o2m_pub.cli.hosting import notice_kind
from o2m_pub.friends.identity import load_identity
from o2m_pub.friends.notice_queue import MAX_QUEUED, queue_notice, queued
from o2m_pub.protocol.conversation import (
    NOTICE_MAGIC,
    ConversationError,
    PostRef,
    seal_notice,
)
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.reader.store import ReaderStore



def cli(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


_IDENTITIES: dict[Path, object] = {}


def _notice(sender: Person, to: Person, *, post_id: bytes = bytes(16)) -> bytes:
    if sender.root not in _IDENTITIES:
        _IDENTITIES[sender.root] = load_identity(sender.root, PASS)
    me, them = _IDENTITIES[sender.root], to.card
    return seal_notice(signing_key=me.signing_key, own_box_sk=bytes(me.box_key),
                       recipient_box_pk=them.box_pk, recipient_sign_pk=them.sign_pk,
                       kind="reply", post=PostRef(b64u_encode(them.sign_pk),
                                                  b64u_encode(post_id)),
                       seq=1, nonce=nacl.utils.random(24))


@pytest.fixture()
def pair(tmp_path, ca, monkeypatch):
    monkeypatch.setenv("O2M_PASSPHRASE", PASS.decode())
    monkeypatch.setenv("O2M_KDF", "interactive")
    authority, bundle = ca
    context = server_context(authority)
    ada = Person(tmp_path, "ada", context)
    bob = Person(tmp_path, "bob", context)
    eve = Person(tmp_path, "eve", context)
    ada.befriend(bob)
    bob.befriend(ada)
    yield ada, bob, eve, bundle
    for p in (ada, bob, eve):
        p.server.stop()


def test_a_notice_from_a_friend_is_queued_and_told(pair):
    """A verified notice from a known friend: queued, and a notification for the owner."""
    ada, bob, eve, _ = pair
    handle = notice_kind(ada.root, lambda line: None)[NOTICE_MAGIC].handle
    handle(_notice(bob, ada))
    assert queued(ada.root) == ["bob"]
    with ReaderStore.open(ada.root) as store:
        assert [n.kind for n in store.notifications()] == ["conversation"]


def test_a_notice_from_a_stranger_or_a_forged_one_stores_nothing(pair):
    """Bad input: a stranger's notice, and Eve's signature over a notice naming Bob as
    sender, are dropped before anything is stored."""
    ada, bob, eve, _ = pair
    handle = notice_kind(ada.root, lambda line: None)[NOTICE_MAGIC].handle
    handle(_notice(eve, ada))
    genuine, evil = _notice(bob, ada), _notice(eve, ada)
    forged = genuine[:8] + genuine[8:40] + evil[40:104] + genuine[104:]
    with pytest.raises(ConversationError, match="signature"):
        handle(forged)
    assert queued(ada.root) == []
    with ReaderStore.open(ada.root) as store:
        assert store.notifications() == []


def test_a_notice_flood_fills_nothing(pair):
    """Bad input: a friend's key sending 100 notices keeps one in the queue and tells
    the owner once; the queue as a whole holds at most MAX_QUEUED friends' notices."""
    ada, bob, eve, _ = pair
    handle = notice_kind(ada.root, lambda line: None)[NOTICE_MAGIC].handle
    for n in range(100):
        handle(_notice(bob, ada, post_id=n.to_bytes(16, "big")))
    assert queued(ada.root) == ["bob"]
    with ReaderStore.open(ada.root) as store:
        assert len(store.notifications()) == 1
    for n in range(MAX_QUEUED + 5):
        queue_notice(ada.root, f"friend{n}", b"x" * 600)
    assert len(queued(ada.root)) == MAX_QUEUED


def test_a_notice_being_written_is_not_queued_yet(tmp_path):
    """While a notice is written (its temporary file, `.~o2m-….bob.notice`, beside the
    queue), the queue shows none from that friend, and does not count it against its
    cap (seen when a push's answer reached the sender before the write ended)."""
    from o2m_pub._files import TMP_PREFIX
    from o2m_pub.config import STATE_DIR

    folder = tmp_path / STATE_DIR / "inbox"
    folder.mkdir(parents=True)
    (folder / f"{TMP_PREFIX}0123456789abcdef.bob.notice").write_bytes(b"half")
    assert queued(tmp_path) == []
    assert queue_notice(tmp_path, "eve", b"x")
    assert queued(tmp_path) == ["eve"]


def test_a_reply_pushes_a_notice_to_the_ops_server(tmp_path, ca, monkeypatch):
    """Push, end to end: A runs `o2m serve`; B's `o2m build` publishes a reply and POSTs a
    notice to A's inbox, which queues it at once; A's next fetch brings the reply and
    clears the queue. Pull works the same without the notice."""
    monkeypatch.setenv("O2M_PASSPHRASE", PASS.decode())
    monkeypatch.setenv("O2M_KDF", "interactive")
    authority, bundle = ca
    context = server_context(authority)
    ada = Person(tmp_path, "ada", context, server_cls=PortOnly)
    bob = Person(tmp_path, "bob", context)
    ada.post("hello", "Hello", "friends")
    ada.build()
    try:
        with o2m_serve(ada.root, "--port", str(ada.server.port)) as server:
            ada.befriend(bob)
            bob.befriend(ada)
            ada.build()
            assert bob.fetch(bundle)["ada"].ok
            (post,) = bob.timeline()
            cli(bob.root, "reply", post.short_id, "--text", "Pushed.")
            cli(bob.root, "build")
            for _ in range(100):  # the server queues it just after its 202
                if queued(ada.root):
                    break
                time.sleep(0.05)
            assert queued(ada.root) == ["bob"]
            assert ada.fetch(bundle)["bob"].ok
            assert queued(ada.root) == []
            server.stop()
    finally:
        bob.server.stop()


def test_the_fetch_that_brings_what_a_notice_announced_clears_its_notification(pair):
    """A notice's "they published a reply or reaction…: `o2m fetch` brings it" is gone
    once a fetch of its sender succeeded (that fetch's own "bob replied to your post
    (ID)" says what came); a notice of a friend not fetched yet stays."""
    ada, bob, eve, bundle = pair
    ada.befriend(eve)
    eve.befriend(ada)
    ada.post("hello", "Hello", "friends")
    ada.build()
    assert bob.fetch(bundle)["ada"].ok
    (post,) = bob.timeline()
    cli(bob.root, "reply", post.short_id, "--text", "Told at once.")
    bob.build()
    handle = notice_kind(ada.root, lambda line: None)[NOTICE_MAGIC].handle
    handle(_notice(bob, ada))
    handle(_notice(eve, ada))
    told = cli(ada.root, "notifications", "--all")
    assert told.count("they published a reply or reaction to your post") == 2
    assert ada.fetch(bundle, "bob")["bob"].ok
    told = cli(ada.root, "notifications", "--all")
    assert f"bob replied to your post ({post.short_id})" in told
    assert "bob: they published" not in told
    assert "eve: they published a reply or reaction to your post" in told
