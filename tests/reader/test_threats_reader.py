"""The reader's side of THREATS.md "Feed verification" and "Object decryption" (cases 10,
11, 12, 14, 16, 19, 20 and 23), end to end: sites made and built by o2m, served over
TLS on 127.0.0.1 by a small raw server that records every request, and fetched by the
real fetcher (`run_fetch`) into Bob's real SQLite store. Each hostile head is made with
the author's real keys, as a host replaying old files, a buggy or hostile build, or a
friend holding a head key could serve it. The pure checks behind them are in
tests/protocol/test_feeds.py; case 18 end to end is test_fetch_hostile.py::test_threat_18_…"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_secretbox_easy
from nacl.secret import SecretBox
from support.people import PASS, Person, server_context  # noqa: F401
from support.raw_tls import RawTLSServer
from support.desk import start_desk, stop

from o2m_pub.friends.identity import load_identity
from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.reader import fetch_plan
from o2m_pub.reader.http_fetch import Limits
from o2m_pub.reader.store import ReaderStore

# Generous timeouts: a test that passes only because the client gave up in time would
# prove nothing here (case 20 tells "aborted at length+1" from "timed out").
LIMITS = Limits(connect_timeout=10, read_timeout=10, deadline=30, workers=4)
_TIME = "%Y-%m-%dT%H:%M:%SZ"


class Host(RawTLSServer):
    """A friend's host that serves their build/ and records each request line; one more
    behaviour than RawTLSServer's: "one-byte-more" sends the file and one byte past it,
    with no Content-Length, then keeps the connection open until the client closes it."""

    def _answer(self, conn: ssl.SSLSocket, path: str, behaviour: str | None) -> None:
        if behaviour != "one-byte-more":
            super()._answer(conn, path, behaviour)
            return
        body = self._file(path) or b""
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\n" + body + b"x")
        conn.settimeout(60)
        try:
            conn.recv(1)  # returns (or fails) when the client hangs up
        except (OSError, socket.timeout):
            pass


@pytest.fixture
def people(tmp_path, ca):  # noqa: F811 - the fixture imported above
    """Ada, Bob and Carol, all friends with each other. Ada has posted "Ada first" to
    her friends; Bob has fetched everyone once."""
    authority, bundle = ca
    context = server_context(authority)
    ada, bob, carol = (Person(tmp_path, n, context, server_cls=Host)
                       for n in ("ada", "bob", "carol"))
    for a, b in ((ada, bob), (bob, ada), (carol, bob), (bob, carol), (ada, carol), (carol, ada)):
        a.befriend(b)
    ada.post("a", "Ada first", "friends")
    ada.build()
    carol.build()
    first = bob.fetch(bundle, limits=LIMITS)
    assert first["ada"].new == 1 and first["carol"].ok, first
    yield ada, bob, carol, bundle
    for p in (ada, bob, carol):
        p.server.stop()


# ---------------------------------------------------------------- helpers


def secrets(author: Person, reader: Person) -> feeds.FeedSecrets:
    """§3.1, as the author computes them for the feed they write for `reader`."""
    me = load_identity(author.root, PASS)
    return feeds.pairwise_secrets(bytes(me.box_key), reader.card.box_pk, author.card.sign_pk,
                                  reader.card.sign_pk)


def head_file(author: Person, reader: Person):  # noqa: ANN201 - a Path
    return author.root / "build" / secrets(author, reader).head_path


def published_head(author: Person, reader: Person) -> feeds.Head:
    """The head `author` publishes for `reader`, opened as `reader` opens it."""
    return feeds.open_head(head_file(author, reader).read_bytes(), secrets(author, reader),
                           author_sign_pk=author.card.sign_pk,
                           reader_sign_pk=reader.card.sign_pk)


_SAME = object()


def publish_head(author: Person, reader: Person, *, seq: int, items: list[feeds.Item],
                 expires: str | None = None, prev: object = _SAME) -> None:
    """Sign, with the author's real key, a head of our choosing for `reader`, and serve
    it in place of the one their build wrote (with its archive pages, or `prev`)."""
    now = dt.datetime.now(dt.timezone.utc)
    data = feeds.seal_head(
        signing_key=load_identity(author.root, PASS).signing_key,
        reader_sign_pk=reader.card.sign_pk, secrets=secrets(author, reader), seq=seq,
        updated=now.strftime(_TIME),
        expires=expires or (now + dt.timedelta(days=30)).strftime(_TIME),
        items=items, prev=published_head(author, reader).prev if prev is _SAME else prev,
        nonce=os.urandom(24))
    head_file(author, reader).write_bytes(data)


def publish_pages(author: Person, reader: Person, pages: int,
                  per_page: int) -> feeds.PageRef:
    """Sign and serve a chain of `pages` archive pages for `reader`, each of `per_page`
    tombstones (ids no post has), each pointing to the one before; returns the newest,
    for a head's `prev`."""
    signing_key = load_identity(author.root, PASS).signing_key
    (author.root / "build/p").mkdir(exist_ok=True)
    prev, n = None, 10**6
    for _ in range(pages):
        items = [feeds.Item(b64u_encode(k.to_bytes(16, "big")), "2026-11-24T10:00:00Z", None)
                 for k in range(n, n + per_page)]
        n += per_page
        data, prev = feeds.seal_page(signing_key=signing_key, reader_sign_pk=reader.card.sign_pk,
                                     secrets=secrets(author, reader), items=items, prev=prev,
                                     nonce=os.urandom(24))
        (author.root / "build" / prev.path).write_bytes(data)
    return prev


def post_of(author: Person, item: feeds.Item) -> dict:
    """The post an item of the author's feed points to, decrypted."""
    data = (author.root / "build" / item.object.path).read_bytes()
    return fetch_plan.parse_post(feeds.open_object(data, item.object))


def item_titled(author: Person, reader: Person, title: str) -> feeds.Item:
    return next(i for i in published_head(author, reader).items
                if not i.deleted and post_of(author, i).get("title") == title)


_ATTEMPT = ("last_attempt", "last_reason", "last_error", "failing_since")


def stored(person: Person) -> dict[str, list]:
    """Everything the reader's store holds, every table, row by row, but the record of
    the last attempt (when it was and why it failed), which a refusal writes."""
    db = sqlite3.connect(person.root / ".o2m/reader.db")
    try:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for table in tables:
            cursor = db.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
            names = [d[0] for d in cursor.description]
            out[table] = [tuple(v for n, v in zip(names, row) if n not in _ATTEMPT)
                          for row in cursor.fetchall()]
        objects = person.root / ".o2m/objects"
        out["attachment files"] = sorted(str(p) for p in objects.rglob("*")) \
            if objects.exists() else []
        return out
    finally:
        db.close()


def friend_state(person: Person, friend: str) -> dict:
    db = sqlite3.connect(person.root / ".o2m/reader.db")
    try:
        cursor = db.execute("SELECT * FROM friend_state WHERE friend = ?", (friend,))
        return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    finally:
        db.close()


def notifications(person: Person, kind: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(person.root / ".o2m/reader.db")
    try:
        return db.execute("SELECT friend, detail FROM notifications WHERE kind = ?",
                          (kind,)).fetchall()
    finally:
        db.close()


def titles(person: Person, friend: str) -> set[str]:
    return {p.title for p in person.timeline(friend=friend)}


# ---------------------------------------------------------------- 10, 11, 12: rollback, equivocation, freeze


@pytest.mark.parametrize("how", ["replayed", "re-signed"])
def test_threat_10_a_lower_seq_is_reported_as_rollback_and_the_database_is_unchanged(
        people, tmp_path, how):
    """THREATS 10: after Bob accepted Ada's head with "Ada second", her host serves a
    lower seq: her older head replayed byte for byte, or a head re-signed by her key
    with the lower seq that tombstones the newer post (an undo). The fetch is refused as
    "rollback", and every table of Bob's store holds what it held, row for row (only
    the record of the last attempt says when and why it failed)."""
    ada, bob, carol, bundle = people
    older = head_file(ada, bob).read_bytes()
    ada.post("b", "Ada second", "friends")
    ada.build()
    assert bob.fetch(bundle, limits=LIMITS)["ada"].new == 1
    before = stored(bob)
    current = published_head(ada, bob)
    if how == "replayed":
        head_file(ada, bob).write_bytes(older)
    else:
        second = item_titled(ada, bob, "Ada second")
        publish_head(ada, bob, seq=current.seq - 1, items=[
            dataclasses.replace(second, object=None)] + [
            i for i in current.items if i.id != second.id])
    assert published_head(ada, bob).seq < current.seq
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.reason) == ("refused", "rollback"), got
    assert stored(bob) == before
    state = friend_state(bob, "ada")
    assert (state["seq"], state["last_reason"]) == (current.seq, "rollback")
    assert titles(bob, "ada") == {"Ada first", "Ada second"}


def test_threat_11_the_same_seq_with_other_bytes_warns_of_equivocation_and_keeps_the_stored_head(
        people):
    """THREATS 11: Ada's key signs a second, different head with the seq Bob already
    accepted (here one that adds a post). Bob's fetch is refused as "equivocation", a
    notification warns him, the stored head (its signed bytes, seq and digest) and the
    posts stay; the head he stored, served again, is simply "unchanged"."""
    ada, bob, carol, bundle = people
    original = head_file(ada, bob).read_bytes()
    accepted = published_head(ada, bob)
    assert friend_state(bob, "ada")["head_signed"] == accepted.signed
    ada.post("b", "Ada second", "friends")
    ada.build()
    publish_head(ada, bob, seq=accepted.seq, items=list(published_head(ada, bob).items))
    assert published_head(ada, bob).signed != accepted.signed
    before = stored(bob)
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.reason) == ("refused", "equivocation"), got
    warnings = notifications(bob, "equivocation")
    assert len(warnings) == 1 and warnings[0][0] == "ada"
    assert str(accepted.seq) in warnings[0][1]
    after = stored(bob)
    assert after["posts"] == before["posts"] and after["friend_state"] == before["friend_state"]
    state = friend_state(bob, "ada")
    assert (state["head_signed"], state["seq"]) == (accepted.signed, accepted.seq)
    assert titles(bob, "ada") == {"Ada first"}
    head_file(ada, bob).write_bytes(original)
    again = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (again.status, again.reason) == ("unchanged", None), again


def test_threat_12_an_expired_head_is_flagged_stale_and_the_cached_posts_are_kept(people):
    """THREATS 12 (freeze): Ada's host keeps serving the head Bob accepted, past its
    expiry. Bob's fetch is not "new" and not silently fresh: it is flagged "stale since"
    the expiry (outcome, stored state, one notification, the friends' overview) and his
    posts stay. A newer head that is already expired is accepted (its posts stored) but
    flagged just the same."""
    ada, bob, carol, bundle = people
    head = published_head(ada, bob)
    expires = dt.datetime.strptime(head.expires, _TIME).replace(tzinfo=dt.timezone.utc)
    later = expires + dt.timedelta(days=1)
    before = stored(bob)
    got = bob.fetch(bundle, "ada", now=later, limits=LIMITS)["ada"]
    assert (got.status, got.stale_since, got.new) == ("unchanged", head.expires, 0), got
    assert titles(bob, "ada") == {"Ada first"}
    assert stored(bob)["posts"] == before["posts"]
    assert friend_state(bob, "ada")["stale_since"] == head.expires
    assert [f for f, d in notifications(bob, "stale") if head.expires in d] == ["ada"]
    from o2m_pub.reader.store import ReaderStore
    with ReaderStore.open(bob.root) as store:
        (summary,) = [s for s in store.friends_summary() if s.friend == "ada"]
    assert summary.stale_since == head.expires and summary.posts == 1

    ada.post("b", "Ada second", "friends")
    ada.build()
    # expired, but signed now and valid for less than 30 days (THREATS 57)
    long_ago = (expires - dt.timedelta(hours=1)).strftime(_TIME)
    publish_head(ada, bob, seq=published_head(ada, bob).seq,
                 items=list(published_head(ada, bob).items), expires=long_ago)
    got = bob.fetch(bundle, "ada", now=later, limits=LIMITS)["ada"]
    assert (got.status, got.new, got.stale_since) == ("new", 1, long_ago), got
    assert titles(bob, "ada") == {"Ada first", "Ada second"}
    assert friend_state(bob, "ada")["stale_since"] == long_ago


# ---------------------------------------------------------------- 14: another recipient


def test_threat_14_a_validly_signed_head_for_another_recipient_is_rejected(people):
    """THREATS 14: Ada's real head for Carol (signed by Ada, carrying a post for Carol
    alone), decrypted with Carol's key and re-encrypted with the key of Ada's feed for
    Bob (what Bob and Carol together, or a leak of both keys, could make), is served at
    Bob's path. It decrypts and its signature is Ada's, but it names Carol: refused,
    nothing of it stored."""
    ada, bob, carol, bundle = people
    ada.post("c", "Just Carol", "carol")
    ada.build()
    for_carol = published_head(ada, carol)
    assert feeds.b64u_encode(carol.card.sign_pk) in for_carol.signed.decode("utf-8", "replace")
    forwarded = feeds.HEAD_MAGIC + bytes(SecretBox(secrets(ada, bob).key).encrypt(
        feeds.pad(for_carol.signed), os.urandom(24)))
    head_file(ada, bob).write_bytes(forwarded)
    before = stored(bob)
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.reason) == ("refused", "bad signature"), got
    assert "addressed to someone else" in got.detail
    assert stored(bob) == before
    assert titles(bob, "ada") == {"Ada first"}


# ---------------------------------------------------------------- 16: endless items


def _write_million_item_head(author: Person, reader: Person, first: feeds.Item,
                             seq: int) -> None:
    """Serve a head of 10^6 items (the first a real post, then tombstones with distinct
    ids): canonical JSON signed with the author's key and sealed for the reader as §3.4
    says, 77 MB of JSON that o2m's builder would never write. (One buffer for the signed
    message, one for the padded plaintext, libsodium's secretbox_easy, and a file
    written in parts keep the test's memory low.)"""
    now = dt.datetime.now(dt.timezone.utc)
    doc = {"author": b64u_encode(author.card.sign_pk),
           "expires": (now + dt.timedelta(days=30)).strftime(_TIME), "items": [], "prev": None,
           "recipient": b64u_encode(reader.card.sign_pk), "seq": seq, "type": "o2m-head",
           "updated": now.strftime(_TIME), "v": 1}
    before, after = canonical_json(doc).split(b'"items":[]')
    tombstone = b',{"date":"2026-11-24T10:00:00Z","deleted":true,"id":"%s"}'
    message = bytearray(feeds.FEED_SIG_CONTEXT + before + b'"items":[')
    message += canonical_json(first.to_json())
    for n in range(1, 10**6):
        message += tombstone % b64u_encode(n.to_bytes(16, "big")).encode()
    message += b"]" + after
    seed = bytes(load_identity(author.root, PASS).signing_key)
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(message)  # = PyNaCl's
    signed_length = len(signature) + len(message) - len(feeds.FEED_SIG_CONTEXT)
    padded = bytearray(feeds.padded_size(4 + signed_length))
    padded[:4 + len(signature)] = signed_length.to_bytes(4, "big") + signature
    padded[4 + len(signature):4 + signed_length] = \
        memoryview(message)[len(feeds.FEED_SIG_CONTEXT):]
    del message
    nonce = os.urandom(24)
    sealed = crypto_secretbox_easy(bytes(padded), nonce, secrets(author, reader).key)
    del padded
    with open(head_file(author, reader), "wb") as f:
        f.write(feeds.HEAD_MAGIC + nonce)
        f.write(sealed)


@pytest.mark.parametrize("variant", ["a-million-items", "4097-items", "an-item-over-the-object-cap",
                                     "an-item-of-900-KB"])
def test_threat_16_a_head_with_a_million_items_or_an_oversized_item_is_rejected_before_anything_is_fetched(
        people, variant):
    """THREATS 16: Ada's key signs a head with 10^6 items (77 MB: refused by the head's
    1 MiB cap on its Content-Length, unread), with 4097 items (within the cap: refused
    by the item cap), or with one item pointing at an object over the 64 MiB object cap
    or one item of 900 KB. Each lists real objects of Ada's; the fetch is refused, and
    Ada's host saw no request but the head's: not one object or page was fetched, and
    Bob's store is unchanged."""
    ada, bob, carol, bundle = people
    ada.post("b", "Ada second", "friends")
    ada.build()
    head = published_head(ada, bob)
    new = item_titled(ada, bob, "Ada second")
    seq = head.seq + 1
    if variant == "a-million-items":
        _write_million_item_head(ada, bob, new, seq)
    else:
        if variant == "4097-items":
            extra = [feeds.Item(b64u_encode(n.to_bytes(16, "big")), new.date, None)
                     for n in range(1, feeds.MAX_ITEMS + 1 - len(head.items) + 1)]
            items = list(head.items) + extra
            assert len(items) == feeds.MAX_ITEMS + 1
        elif variant == "an-item-over-the-object-cap":
            ref = dataclasses.replace(new.object, size=feeds.MAX_OBJECT_BYTES + 1)
            items = [dataclasses.replace(new, object=ref)] + [
                i for i in head.items if i.id != new.id]
        else:
            items = [dataclasses.replace(new, reply_to="https://bob.example/" + "a" * 900_000)] \
                + [i for i in head.items if i.id != new.id]
        publish_head(ada, bob, seq=seq, items=items)
    before = stored(bob)
    ada.server.requests.clear()
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert got.status == "refused" and got.reason in ("oversized", "malformed"), got
    assert got.reason == ("oversized" if variant == "a-million-items" else "malformed")
    paths = [line.split(" ")[1] for line in ada.server.requests]
    # her public card (read first, §3.5), the head, and nothing the head names
    assert ["/.well-known/o2m-card.json", "/" + secrets(ada, bob).head_path] == paths
    assert stored(bob) == before


def test_threat_16_items_are_capped_across_the_head_and_all_its_pages(people):
    """THREATS 16 across pages: each page may hold 4096 items, and a head may chain 4096
    pages (16.7 million items). Ada's key signs a head with one new post whose chain of
    25 pages holds 102,400 tombstones: past 100,000 items for one friend in one run, the
    fetch is refused as oversized, with no object fetched, and Bob's store is unchanged."""
    ada, bob, carol, bundle = people
    ada.post("b", "Ada second", "friends")
    ada.build()
    head = published_head(ada, bob)
    assert head.prev is None
    newest = publish_pages(ada, bob, 25, feeds.MAX_ITEMS)
    assert 24 * feeds.MAX_ITEMS + len(head.items) <= fetch_plan.MAX_ITEMS_PER_FETCH \
        < 25 * feeds.MAX_ITEMS
    publish_head(ada, bob, seq=head.seq + 1, items=list(head.items), prev=newest)
    before = stored(bob)
    ada.server.requests.clear()
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.reason) == ("refused", "oversized"), got
    assert "100,000 items" in got.detail
    paths = [line.split(" ")[1] for line in ada.server.requests]
    assert len([p for p in paths if p.startswith("/p/")]) == 25
    assert not [p for p in paths if p.startswith("/o/")], paths
    assert stored(bob) == before


def test_threat_16_archive_pages_are_charged_to_the_friends_byte_budget(people):
    """Archive pages count against a friend's byte budget for the run, with the objects
    (a chain of 4 MiB pages would otherwise be free): with a budget one byte short of
    Ada's two new pages, the fetch is refused as oversized at the second page, before
    any object is fetched; with room for the pages and her new post's object, it lands."""
    ada, bob, carol, bundle = people
    ada.post("b", "Ada second", "friends")
    ada.build()
    head = published_head(ada, bob)
    newest = publish_pages(ada, bob, 2, 10)
    publish_head(ada, bob, seq=head.seq + 1, items=list(head.items), prev=newest)
    pages = sum(p.stat().st_size for p in (ada.root / "build/p").iterdir())
    before = stored(bob)
    ada.server.requests.clear()
    got = bob.fetch(bundle, "ada", limits=dataclasses.replace(LIMITS, friend_bytes=pages - 1))["ada"]
    assert (got.status, got.reason) == ("refused", "oversized"), got
    paths = [line.split(" ")[1] for line in ada.server.requests]
    assert len([p for p in paths if p.startswith("/p/")]) == 1
    assert not [p for p in paths if p.startswith("/o/")], paths
    assert stored(bob) == before
    size = item_titled(ada, bob, "Ada second").object.size
    got = bob.fetch(bundle, "ada", limits=dataclasses.replace(LIMITS, friend_bytes=pages + size))
    assert (got["ada"].status, got["ada"].new) == ("new", 1), got["ada"]


# ---------------------------------------------------------------- 19, 20: one bad object


def test_threat_19_an_object_that_does_not_open_with_its_key_fails_only_that_item(people):
    """THREATS 19: Ada's head lists two new posts, one with a key that does not open its
    object (hash and size right: it is her object, the key is wrong). That item alone
    fails (counted as skipped); the other post is stored and the head is accepted."""
    ada, bob, carol, bundle = people
    ada.post("b", "Ada second", "friends")
    ada.post("c", "Ada third", "friends")
    ada.build()
    head = published_head(ada, bob)
    broken = item_titled(ada, bob, "Ada second")
    wrong = dataclasses.replace(broken.object, key=os.urandom(32))
    publish_head(ada, bob, seq=head.seq + 1, items=[
        dataclasses.replace(i, object=wrong) if i.id == broken.id else i for i in head.items])
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.new, got.skipped) == ("new", 1, 1), got
    assert titles(bob, "ada") == {"Ada first", "Ada third"}
    assert friend_state(bob, "ada")["seq"] == head.seq + 1


def test_threat_20_streaming_past_the_signed_length_aborts_at_length_plus_1(people):
    """THREATS 20: Ada's host sends a new object and one byte more, with no
    Content-Length, then holds the connection open. The fetcher stops as soon as it has
    the signed size + 1 bytes: the refusal is "oversized" at exactly the object's size
    (were it waiting for the host to finish, it would be a timeout), and nothing of
    that update is stored."""
    ada, bob, carol, bundle = people
    ada.post("b", "Ada second", "friends")
    ada.build()
    size = item_titled(ada, bob, "Ada second").object.size
    before = stored(bob)
    ada.server.behaviours = {"o/": "one-byte-more"}
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.reason) == ("refused", "oversized"), got
    assert f"over the cap of {size:,} bytes" in got.detail
    assert stored(bob) == before
    assert titles(bob, "ada") == {"Ada first"}


# ---------------------------------------------------------------- 23: one object, two friends


def test_threat_23_an_object_shared_by_two_friends_is_credited_to_each_by_their_own_head(people):
    """THREATS 23: Ada posts to Bob and Carol; Carol copies Ada's object to her own site
    and lists it, under the very same item id, in her signed head for Bob. Bob, who
    fetches Carol first, stores that copy as Carol's (her head vouches for it); Ada's
    feed then gives him Ada's post as Ada's, fetched for her and not taken for the one
    already stored. When Carol drops it, only Carol's copy goes."""
    ada, bob, carol, bundle = people
    ada.post("s", "Shared news", "[bob, carol]")
    ada.build()
    shared = item_titled(ada, carol, "Shared news")
    assert shared == item_titled(ada, bob, "Shared news")  # one object, one item id
    (carol.root / "build/o").mkdir(exist_ok=True)
    shutil.copy(ada.root / "build" / shared.object.path, carol.root / "build" / shared.object.path)
    carols = published_head(carol, bob)
    publish_head(carol, bob, seq=carols.seq + 1, items=[shared, *carols.items])

    def credited() -> list[tuple[str, str, str]]:
        db = sqlite3.connect(bob.root / ".o2m/reader.db")
        try:
            return db.execute("SELECT friend, id, short_id FROM posts WHERE object_hash = ? "
                              "ORDER BY friend", (shared.object.hash,)).fetchall()
        finally:
            db.close()

    assert bob.fetch(bundle, "carol", limits=LIMITS)["carol"].new == 1
    assert [(f, i) for f, i, _ in credited()] == [("carol", shared.id)]
    assert bob.fetch(bundle, "ada", limits=LIMITS)["ada"].new == 1
    rows = credited()
    assert [(f, i) for f, i, _ in rows] == [("ada", shared.id), ("carol", shared.id)]
    assert rows[0][2] != rows[1][2]  # two posts, each with its own short id
    assert "Shared news" in titles(bob, "ada") and "Shared news" in titles(bob, "carol")

    publish_head(carol, bob, seq=carols.seq + 2, items=[
        dataclasses.replace(shared, object=None), *carols.items])
    assert bob.fetch(bundle, "carol", limits=LIMITS)["carol"].deleted == 1
    assert [(f, i) for f, i, _ in credited()] == [("ada", shared.id)]
    assert titles(bob, "ada") == {"Ada first", "Shared news"}


@pytest.mark.parametrize("key", ["a wrong key", "the right key"])
def test_threat_23_an_attachment_is_credited_to_a_friend_only_after_their_own_download(
        people, key):
    """THREATS 23 for attachments: Ada posts a picture to Bob and Carol; Bob's fetch of
    Ada caches it (by its object's hash). Carol then lists that very hash in a post of
    her own for Bob, with a wrong key (or with the right one, which Ada's post gave
    her), and serves a copy of the object. Bob's fetch of Carol downloads the copy from
    Carol's host and checks it with Carol's key, as if nothing were cached: with a
    wrong key her post has no attachment; with the right one it has, credited to her
    by her own download. Ada's post keeps its picture."""
    ada, bob, carol, bundle = people
    (ada.root / "content/2026").mkdir(parents=True, exist_ok=True)
    (ada.root / "content/2026/pic.png").write_bytes(b"\x89PNG " + os.urandom(2000))
    ada.post("p", "With a picture", "[bob, carol]", body="![a picture](pic.png)")
    ada.build()
    assert bob.fetch(bundle, "ada", limits=LIMITS)["ada"].new == 1
    (attachment,) = post_of(ada, item_titled(ada, carol, "With a picture"))["attachments"]
    shared = attachment["hash"]
    (carol.root / "build/o").mkdir(exist_ok=True)
    shutil.copy(ada.root / "build/o" / shared, carol.root / "build/o" / shared)
    listed = dict(attachment, key=attachment["key"] if key == "the right key"
                  else b64u_encode(os.urandom(32)))
    doc = {"v": 1, "type": "o2m-post", "date": "2026-11-24T10:00:00Z", "title": "Carol's copy",
           "markdown": "![a picture](pic.png)", "attachments": [listed]}
    data, ref = feeds.seal_object(canonical_json(doc), key=os.urandom(32), nonce=os.urandom(24))
    (carol.root / "build" / ref.path).write_bytes(data)
    carols = published_head(carol, bob)
    publish_head(carol, bob, seq=carols.seq + 1, items=[
        feeds.Item(b64u_encode(os.urandom(16)), "2026-11-24T10:00:00Z", ref), *carols.items])
    carol.server.requests.clear()
    got = bob.fetch(bundle, "carol", limits=LIMITS)["carol"]
    assert (got.status, got.new) == ("new", 1), got
    paths = [line.split(" ")[1] for line in carol.server.requests]
    assert f"/o/{shared}" in paths  # her own download, though the bytes were cached
    (copy,) = [p for p in bob.timeline(friend="carol") if p.title == "Carol's copy"]
    assert [a["hash"] for a in copy.attachments] == ([shared] if key == "the right key" else [])
    (original,) = [p for p in bob.timeline(friend="ada") if p.title == "With a picture"]
    assert [a["hash"] for a in original.attachments] == [shared]
    db = sqlite3.connect(bob.root / ".o2m/reader.db")
    try:
        credits = db.execute("SELECT friend FROM attachment_credits WHERE hash = ? "
                             "ORDER BY friend", (shared,)).fetchall()
    finally:
        db.close()
    assert credits == ([("ada",), ("carol",)] if key == "the right key" else [("ada",)])


# ---------------------------------------------------------------- 49: posts that take a parser minutes


def _desk_session(url: str):  # noqa: ANN202 - requests.Session
    """A session signed in to the desk at `url` with the person's passphrase."""
    import re

    import requests
    session = requests.Session()
    page = session.get(url + "signin", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = session.post(url + "signin", data={"csrf": token, "passphrase": PASS, "next": "/"},
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text
    return session


def _page(session, url: str, path: str) -> tuple[int, str]:  # noqa: ANN001
    """GET a page of the desk, giving it 30 s: far less than any hostile post below took
    to render before it was rendered at fetch time."""
    response = session.get(url + path.lstrip("/"), timeout=30)
    return response.status_code, response.text


def _body(page: str) -> str:
    """The post's body of a desk page."""
    return page.split('id="body">', 1)[1].split("</article>", 1)[0]


def _sign_public_feed(person: Person) -> None:
    """Sign `person`'s feed.json as it is now with their public-feed key (§1.4), as
    their build would: the posts in it are theirs, whatever they hold."""
    import datetime as dt

    from o2m_pub.friends.identity import load_feed_key
    from o2m_pub.protocol.feed_signature import sign_feed

    build = person.root / "build"
    (build / "feed.json.sig").write_bytes(sign_feed(
        load_feed_key(person.root), author_sign_pk=person.card.sign_pk,
        feed=(build / "feed.json").read_bytes(), seq=2**40,
        updated=dt.datetime.now(dt.timezone.utc)))


def test_threat_49_a_post_that_takes_a_parser_minutes_blocks_no_page(people):
    """THREATS 49 (security review finding 1) end to end. Ada's key signs a head listing
    a post of 20,000 `[` (Python-Markdown needs minutes; the review's reader took 49.6 s
    for 16,000 and answered no other page meanwhile); her public feed.json carries a
    post of 100,000 nested `<div>` (nh3: 90 s) and one of 100,000 `<script` with no
    summary (the timeline's excerpt of it took minutes). Bob's fetch renders each post
    once, within the CPU limit, and stores the first two as text. His desk then
    answers every page within its client's 30 s: the timeline, Ada's page, each hostile
    post as its escaped text with a note, and her real post rendered."""
    ada, bob, carol, bundle = people
    doc = {"v": 1, "type": "o2m-post", "date": "2026-11-24T10:00:00Z", "title": "Brackets",
           "markdown": "[" * 20_000}
    data, ref = feeds.seal_object(canonical_json(doc), key=os.urandom(32), nonce=os.urandom(24))
    (ada.root / "build" / ref.path).write_bytes(data)
    head = published_head(ada, bob)
    publish_head(ada, bob, seq=head.seq + 1, items=[
        feeds.Item(b64u_encode(os.urandom(16)), "2026-11-24T10:00:00Z", ref), *head.items])
    feed_file = ada.root / "build/feed.json"
    public = json.loads(feed_file.read_text())
    public["items"] += [{"id": f"{ada.server.url}2026/{slug}/", "url": f"{ada.server.url}2026/"
                         f"{slug}/", "title": title, "content_html": html,
                         "date_published": "2026-11-23T10:00:00Z"}
                        for slug, title, html in (("divs", "Divs", "<div>" * 100_000),
                                                  ("scripts", "Scripts", "<script" * 100_000))]
    feed_file.write_text(json.dumps(public))
    _sign_public_feed(ada)  # her own key signs them: a hostile author, not a hostile host
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.new, got.as_text) == ("new", 3, 2), got
    ids = {p.title: p.short_id for p in bob.timeline(friend="ada")}
    proc, url = start_desk(bob.root)
    try:
        session = _desk_session(url)
        for path in ("/", "/?friend=ada"):
            status, page = _page(session, url, path)
            assert status == 200 and "Brackets" in page and "Scripts" in page
        status, page = _page(session, url, f"/post/{ids['Brackets']}")
        assert status == 200 and "too complex to render" in page
        assert "<pre>" + "[" * 20_000 + "</pre>" in page
        status, page = _page(session, url, f"/post/{ids['Divs']}")
        assert status == 200 and "too complex to render" in page and "&lt;div" not in page
        status, page = _page(session, url, f"/post/{ids['Scripts']}")
        assert status == 200 and "too complex" not in page and "<script" not in _body(page)
        status, page = _page(session, url, f"/post/{ids['Ada first']}")
        assert status == 200 and "<p>Body.</p>" in page and "too complex" not in page
    finally:
        assert stop(proc) == 0


# ---------------------------------------------------------------- 52: a friend's share of the store


def _quota(person: Person, quota: int) -> None:
    """Set `[reader] quota_per_friend` in the person's o2m.toml (bytes)."""
    config = person.root / "o2m.toml"
    text = config.read_text().split("\n[reader]")[0]
    config.write_text(text + f"\n[reader]\nquota_per_friend = {quota}\n")


def _but_notifications(tables: dict[str, list]) -> dict[str, list]:
    """What `stored` gives, but the notifications (a refusal adds one)."""
    return {k: v for k, v in tables.items() if k != "notifications"}


def _used(person: Person, friend: str) -> int:
    with ReaderStore.open(person.root) as store:
        return store.used(friend)


def test_threat_52_a_friend_cannot_grow_the_store_past_their_quota(people):
    """THREATS 52 (security review finding 5): a quota per friend, counted on what the
    store keeps of them (texts, renderings, attachments) across runs. Ada posts two
    pictures of 600 KB: with a quota 700 KB above what she takes, both in one run are
    refused; with room for two, they land. Her third picture, the next run, would take
    her past it: refused whole, with one line naming the setting and a notification;
    nothing of it is stored, not even its picture's file (Bob's store is as it was).
    Once she deletes a post, the third fits, and lands."""
    ada, bob, carol, bundle = people
    (ada.root / "content/2026").mkdir(parents=True, exist_ok=True)
    for n in (1, 2, 3):
        (ada.root / f"content/2026/pic{n}.png").write_bytes(b"\x89PNG " + os.urandom(600_000))
    ada.post("p1", "One", "friends", body="![one](pic1.png)")
    ada.post("p2", "Two", "friends", body="![two](pic2.png)")
    ada.build()
    _quota(bob, _used(bob, "ada") + 700_000)
    before = _but_notifications(stored(bob))
    got = bob.fetch(bundle, "ada", limits=LIMITS)
    assert (got["ada"].status, got["ada"].reason) == ("refused", "over quota"), got["ada"]
    assert _but_notifications(stored(bob)) == before
    _quota(bob, _used(bob, "ada") + 1_400_000)
    assert bob.fetch(bundle, "ada", limits=LIMITS)["ada"].new == 2
    quota = _used(bob, "ada") + 400_000
    _quota(bob, quota)
    ada.post("p3", "Three", "friends", body="![three](pic3.png)")
    ada.build()
    before = _but_notifications(stored(bob))
    got = bob.fetch(bundle, "ada", limits=LIMITS)
    assert (got["ada"].status, got["ada"].reason) == ("refused", "over quota"), got["ada"]
    assert f"over the quota of {quota:,} for one friend" in got["ada"].detail
    assert "[reader] quota_per_friend" in got["ada"].detail
    assert _but_notifications(stored(bob)) == before  # not a row, not a file
    assert [d for _, d in notifications(bob, "over_quota")][-1] == got["ada"].detail
    (ada.root / "content/2026/p1.md").unlink()
    ada.build()
    got = bob.fetch(bundle, "ada", limits=LIMITS)["ada"]
    assert (got.status, got.new, got.deleted) == ("new", 1, 1), got
    assert titles(bob, "ada") == {"Ada first", "Two", "Three"}
    assert _used(bob, "ada") <= quota


def test_threat_52_a_fetch_holds_one_post_at_a_time_in_memory(people, tmp_path):
    """THREATS 52, memory (security review finding 5: 4 posts of 50 MiB took `o2m fetch`
    to 428 MB, as every post of an update waited in memory for its transaction). Ada's
    key signs a head of 16 posts of 5 MiB of Markdown each (80 MiB); `o2m fetch` stores
    them all, and its peak memory grows by less than half of that over a fetch of small
    posts: it holds one object at a time, the texts wait in the spool on disk."""
    ada, bob, carol, bundle = people
    me = load_identity(ada.root, PASS)
    word = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    text = (word * (5 * 1024 * 1024 // len(word) + 1))[:5 * 1024 * 1024]
    items = []
    for n in range(16):
        doc = {"v": 1, "type": "o2m-post", "date": f"2026-11-{n + 1:02d}T10:00:00Z",
               "title": f"Long {n}", "markdown": text}
        data, ref = feeds.seal_object(canonical_json(doc), key=os.urandom(32),
                                      nonce=os.urandom(24))
        (ada.root / "build" / ref.path).write_bytes(data)
        items.append(feeds.Item(b64u_encode(os.urandom(16)), doc["date"], ref))
    del me, data
    wrapper = ("import resource, subprocess, sys; "
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

    def fetch_peak_kb() -> int:
        done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "o2m_pub",
                               "-C", str(bob.root), "fetch", "ada"], capture_output=True,
                              text=True, env={**os.environ, "O2M_CA_BUNDLE": bundle},
                              timeout=600)
        code, peak = done.stdout.split()
        assert code == "0", done
        return int(peak)

    ada.post("s", "Small", "friends")
    ada.build()
    small = fetch_peak_kb()
    head = published_head(ada, bob)
    publish_head(ada, bob, seq=head.seq + 1, items=items + list(head.items))
    big = fetch_peak_kb()
    assert len([t for t in titles(bob, "ada") if t.startswith("Long")]) == 16
    assert (big - small) * 1024 < 40 * 1024 * 1024, (small, big)  # < half of 80 MiB
