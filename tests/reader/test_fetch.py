"""`o2m fetch` end to end: three sites made and built by o2m, befriended, each served
by a real TLS server on 127.0.0.1; friends fetch, verify, decrypt and store each other's
feeds. No mocks: real keys, real files, real sockets, real SQLite (one test of the
commit step alone uses stand-in keys, and says so)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import pytest
from click.testing import CliRunner
from support.people import PASS, Person, PortOnly, TLSFolderServer, o2m, server_context  # noqa: F401

from o2m_pub.cli import main
from o2m_pub.reader.store import ReaderStore


@pytest.fixture
def trio(tmp_path, ca):
    """Ada, Bob and Carol: Ada is friends with both; Bob is in Ada's group "tribe"."""
    authority, bundle = ca
    context = server_context(authority)
    ada, bob, carol = (Person(tmp_path, n, context) for n in ("ada", "bob", "carol"))
    ada.befriend(bob)
    ada.befriend(carol)
    bob.befriend(ada)
    carol.befriend(ada)
    o2m("-C", str(ada.root), "group", "add", "tribe", "bob")
    yield ada, bob, carol, bundle
    for p in (ada, bob, carol):
        p.server.stop()


def test_each_friend_gets_exactly_their_posts(trio):
    """Friends-only, group and one-person audiences, and public posts from feed.json."""
    ada, bob, carol, bundle = trio
    ada.post("open", "Open to all", "public")
    ada.post("circle", "For friends", "friends", tags="[cats]")
    ada.post("fam", "Tribe only", "tribe")
    ada.post("c", "Just Carol", "carol")
    ada.build()
    got = bob.fetch(bundle)
    assert got["ada"].status == "new" and got["ada"].new == 3, got
    assert bob.titles() == {"Open to all", "For friends", "Tribe only"}
    assert carol.fetch(bundle)["ada"].new == 3
    assert carol.titles() == {"Open to all", "For friends", "Just Carol"}
    post = next(p for p in bob.timeline() if p.title == "For friends")
    assert (post.friend, post.audience, post.tags, post.markdown.strip()) == (
        "ada", "private", ("cats",), "Body.")
    public = next(p for p in bob.timeline() if p.title == "Open to all")
    assert public.audience == "public" and public.url.startswith(ada.server.url)
    assert public.markdown is None and "Body." in public.html
    assert {p.title for p in bob.timeline(tag="cats")} == {"For friends"}


def test_a_second_fetch_with_nothing_new_is_unchanged(trio):
    """A second fetch with nothing new reports the friend unchanged and stores nothing more."""
    ada, bob, carol, bundle = trio
    ada.post("circle", "For friends", "friends")
    ada.build()
    bob.fetch(bundle)
    again = bob.fetch(bundle)["ada"]
    assert (again.status, again.new) == ("unchanged", 0)
    assert bob.titles() == {"For friends"}


def test_edits_replace_and_deletions_remove(trio):
    """An edit replaces the post (keeping its short id); a deleted post and one narrowed
    away from Bob are removed from his timeline."""
    ada, bob, carol, bundle = trio
    ada.post("a", "First version", "friends")
    ada.post("b", "Doomed", "friends")
    ada.post("c", "Bob's for now", "[bob, carol]")
    ada.build()
    bob.fetch(bundle)
    short = next(p.short_id for p in bob.timeline() if p.title == "First version")
    ada.post("a", "Second version", "friends")
    (ada.root / "content/2026/b.md").unlink()
    ada.post("c", "Bob's for now", "carol")  # narrowed: a tombstone in Bob's feed
    ada.build()
    got = bob.fetch(bundle)["ada"]
    assert (got.updated, got.deleted) == (1, 2)
    assert bob.titles() == {"Second version"}
    assert bob.timeline()[0].short_id == short  # an edit keeps its id


def test_threat_55_a_friend_who_sees_no_post_reads_their_padded_head(trio):
    """THREATS 55: Carol sees none of Ada's posts, so her head has no items; it is padded
    to Bob's head's size with tombstones of no post (§3.4), and her `o2m fetch` reads it as
    it should: accepted, nothing new, nothing deleted, nothing stored, and the feed is
    hers (a notice that it appeared). Bob reads his posts as ever."""
    ada, bob, carol, bundle = trio
    for k in range(3):
        ada.post(f"b{k}", f"For Bob {k}", "bob", body="Words. " * 60)
    ada.build()
    heads = list((ada.root / "build" / "f").iterdir())
    assert len({p.stat().st_size for p in heads}) == 1 and heads[0].stat().st_size > 560
    got = carol.fetch(bundle)["ada"]
    assert got.ok and (got.status, got.new, got.deleted, got.skipped) == ("unchanged", 0, 0, 0)
    assert got.update is not None and got.update.state.head is not None
    assert "new_friend_feed" in [kind for kind, _ in got.update.notifications]
    assert carol.titles() == set()
    assert bob.fetch(bundle)["ada"].new == 3
    assert bob.titles() == {f"For Bob {k}" for k in range(3)}


def test_friends_who_have_not_added_you_back_have_no_feed_yet(trio):
    """A friend who has not added Bob back has no feed for him: 'no feed', not an error."""
    ada, bob, carol, bundle = trio
    bob.befriend(carol)  # Carol never added Bob
    carol.post("x", "Carol's news", "friends")
    carol.build()
    got = bob.fetch(bundle, "carol")["carol"]
    assert got.status == "no feed" and got.ok


def test_the_first_feed_of_a_friend_is_a_notification(trio):
    """The first feed fetched from a friend is a notification."""
    ada, bob, carol, bundle = trio
    ada.post("circle", "For friends", "friends")
    ada.build()
    bob.fetch(bundle)
    with ReaderStore.open(bob.root) as store:
        kinds = [(n.kind, n.friend) for n in store.notifications()]
    assert ("new_friend_feed", "ada") in kinds


def test_archive_pages_and_attachments(trio):
    """Over 128 posts cut archive pages; a later fetch reads only the new ones; an
    attachment is cached by hash, decrypted."""
    ada, bob, carol, bundle = trio
    for i in range(140):
        ada.post(f"p{i:03d}", f"Post {i}", "bob", date=f"2026-0{i % 9 + 1}-{i % 28 + 1:02d}")
    (ada.root / "content/2026/pic.png").write_bytes(b"\x89PNG fake image bytes")
    ada.post("pic", "With a picture", "bob", body="![a picture](pic.png)")
    ada.build()
    assert list((ada.root / "build/p").iterdir())
    got = bob.fetch(bundle)["ada"]
    assert got.new == 141
    with ReaderStore.open(bob.root) as store:
        state = store.friend_state("ada")
        assert state.pages
        pic = next(p for p in store.timeline(limit=500) if p.title == "With a picture")
        (attachment,) = pic.attachments
        assert attachment["name"] == "pic.png"
        cached = store.attachments.path(attachment["hash"])
        assert cached.read_bytes() == b"\x89PNG fake image bytes"
    for i in range(140, 200):
        ada.post(f"p{i:03d}", f"Post {i}", "bob")
    ada.build()
    got = bob.fetch(bundle)["ada"]
    assert got.new == 60 and len(bob.timeline()) == 201


def test_stale_head_is_kept_and_flagged(trio):
    """THREATS 12: a head past its expiry is accepted, its posts kept, and flagged."""
    ada, bob, carol, bundle = trio
    ada.post("circle", "For friends", "friends")
    ada.build(now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40))
    got = bob.fetch(bundle)["ada"]
    assert got.stale_since is not None and got.new == 1
    assert bob.titles() == {"For friends"}
    with ReaderStore.open(bob.root) as store:
        assert "stale" in [n.kind for n in store.notifications()]
        assert store.friend_state("ada").stale_since == got.stale_since


def test_a_replayed_older_head_is_rollback_and_keeps_the_store(trio, tmp_path):
    """THREATS 10: the host serves an older head than one already accepted."""
    ada, bob, carol, bundle = trio
    ada.post("a", "One", "friends")
    ada.build()
    shutil.copytree(ada.root / "build/f", tmp_path / "old-heads")
    ada.post("b", "Two", "friends")
    ada.build()
    bob.fetch(bundle)
    shutil.rmtree(ada.root / "build/f")
    shutil.copytree(tmp_path / "old-heads", ada.root / "build/f")
    for head in (ada.root / "build/f").iterdir():
        os.utime(head)  # a new mtime: no 304
    got = bob.fetch(bundle)["ada"]
    assert (got.status, got.reason) == ("refused", "rollback")
    assert bob.titles() == {"One", "Two"}


def test_a_tampered_head_is_refused_and_keeps_the_store(trio):
    """A head with one flipped byte is refused as a bad signature, and Bob keeps what he
    had."""
    ada, bob, carol, bundle = trio
    ada.post("a", "One", "friends")
    ada.build()
    bob.fetch(bundle)
    ada.post("b", "Two", "friends")
    ada.build()
    for head in (ada.root / "build/f").iterdir():
        data = bytearray(head.read_bytes())
        data[100] ^= 1
        head.write_bytes(bytes(data))
    got = bob.fetch(bundle)["ada"]
    assert (got.status, got.reason) == ("refused", "bad signature")
    assert bob.titles() == {"One"}


def test_a_wrong_object_hash_is_refused(trio):
    """THREATS 18: an object whose bytes do not match its hash refuses the friend."""
    ada, bob, carol, bundle = trio
    ada.post("a", "One", "friends")
    ada.build()
    for obj in (ada.root / "build/o").iterdir():
        data = bytearray(obj.read_bytes())
        data[-1] ^= 1
        obj.write_bytes(bytes(data))
    got = bob.fetch(bundle)["ada"]
    assert (got.status, got.reason) == ("refused", "bad object")
    assert bob.timeline() == []
    with ReaderStore.open(bob.root) as store:
        assert store.friend_state("ada").seq is None  # nothing of that head was kept


def test_a_key_change_is_refused_until_accepted(trio, tmp_path):
    """Ada's site now publishes a card with new keys: Bob's fetch refuses with "key
    changed" and a notification, until Bob accepts the new card."""
    ada, bob, carol, bundle = trio
    ada.post("a", "One", "friends")
    ada.build()
    bob.fetch(bundle)
    from nacl.pwhash import argon2id

    from o2m_pub.config import load
    from o2m_pub.friends.identity import create_owner
    shutil.rmtree(ada.root / "keys")  # a whole new identity, on the same site
    create_owner(ada.root, load(ada.root), PASS, now=dt.datetime.now(dt.timezone.utc),
                 opslimit=argon2id.OPSLIMIT_INTERACTIVE, memlimit=argon2id.MEMLIMIT_INTERACTIVE)
    ada.befriend(bob)
    ada.befriend(carol)
    ada.build()
    got = bob.fetch(bundle)["ada"]
    assert (got.status, got.reason) == ("refused", "key changed")
    with ReaderStore.open(bob.root) as store:
        assert "key_changed" in [n.kind for n in store.notifications()]
    assert bob.titles() == {"One"}
    from o2m_pub.protocol.cards import card_to_text
    o2m("-C", str(bob.root), "friend", "add", "ada", card_to_text(ada.card), "--yes",
        "--accept-key-change")
    got = bob.fetch(bundle)["ada"]
    assert got.ok and bob.titles() == {"One"}


def test_o2m_fetch_command_prints_one_line_per_friend(trio):
    """`o2m fetch` prints one line per friend (new posts, no feed yet); with a friend
    unreachable it says so and exits 1."""
    ada, bob, carol, bundle = trio
    ada.post("a", "One", "friends")
    ada.build()
    bob.befriend(carol)  # no feed yet: fine
    env = {"O2M_CA_BUNDLE": bundle}
    result = CliRunner(env=env).invoke(main, ["-C", str(bob.root), "fetch"],
                                       catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("ada") and "1 new" in lines[0]
    assert lines[1].startswith("carol") and "no feed" in lines[1]
    carol.server.stop()
    result = CliRunner(env=env).invoke(main, ["-C", str(bob.root), "fetch"],
                                       catch_exceptions=False)
    assert result.exit_code == 1
    assert "unreachable" in result.output and "unchanged" in result.output


def test_o2m_fetch_of_an_unknown_friend_is_a_usage_error(trio):
    """`o2m fetch NAME` of no friend of that name is a usage error (exit 2) naming it."""
    ada, bob, carol, bundle = trio
    result = CliRunner().invoke(main, ["-C", str(bob.root), "fetch", "nobody"])
    assert result.exit_code == 2 and "nobody" in result.output



def test_fetch_from_a_real_o2m_serve_with_its_pinned_self_signed_certificate(tmp_path, ca):
    """Ada serves her site with `o2m serve` (Twisted, a self-signed certificate whose pin
    it puts in her card); Bob adds that card and fetches with no CA at all."""
    from support.o2m_server import o2m_serve
    authority, bundle = ca
    context = server_context(authority)
    ada = Person(tmp_path, "ada", context, server_cls=PortOnly)
    bob = Person(tmp_path, "bob", context)
    try:
        ada.post("open", "Open to all", "public")
        ada.post("circle", "For friends", "friends")
        ada.build()
        with o2m_serve(ada.root, "--port", str(ada.server.port)) as server:
            assert server.pin and ada.card.tls_pin is not None
            ada.befriend(bob)
            bob.befriend(ada)
            ada.build()
            got = bob.fetch(None)["ada"]  # type: ignore[arg-type] - no CA bundle
            assert got.ok and got.new == 2, got
            assert bob.titles() == {"Open to all", "For friends"}
            again = bob.fetch(None)["ada"]  # type: ignore[arg-type]
            assert again.status == "unchanged", again
    finally:
        bob.server.stop()


def test_a_second_o2m_fetch_of_the_same_site_is_refused_in_one_line(trio):
    """THREATS 10: two overlapping fetches of one site could commit in any order; the
    second `o2m fetch` (here, while a fetch holds the site's lock) says so in one line
    and exits 1, with nothing stored; once the first is done it runs."""
    from o2m_pub.reader.store import fetch_lock
    ada, bob, carol, bundle = trio
    ada.post("a", "One", "friends")
    ada.build()
    runner = CliRunner(env={"O2M_CA_BUNDLE": bundle})
    with fetch_lock(bob.root):
        result = runner.invoke(main, ["-C", str(bob.root), "fetch"])
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") <= 2 and "o2m: error:" in result.output
        assert "another o2m fetch is running" in result.output
        assert "Traceback" not in result.output
    assert bob.timeline() == []
    result = runner.invoke(main, ["-C", str(bob.root), "fetch"])
    assert result.exit_code == 0 and bob.titles() == {"One"}, result.output


def test_an_unreadable_ca_bundle_is_one_clear_error(trio, tmp_path):
    """$O2M_CA_BUNDLE naming a missing or non-PEM file: one line and a hint, not a
    refusal of every friend as an internal error."""
    ada, bob, carol, bundle = trio
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    for path in (tmp_path / "missing.pem", tmp_path / "junk.pem"):
        result = CliRunner(env={"O2M_CA_BUNDLE": str(path)}).invoke(
            main, ["-C", str(bob.root), "fetch"])
        assert result.exit_code == 1, result.output
        assert "o2m: error:" in result.output and "CA bundle" in result.output
        assert "internal error" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("bad", ["an item without a date", "a date past year 9999 in UTC",
                                 "not JSON"])
def test_a_bad_public_feed_is_reported_and_the_private_update_still_lands(trio, bad):
    """Their feed.json is not signed, so it must not hold up what their signed feed for
    us brings: a feed.json with an item without date_published, with a date that is
    past year 9999 once in UTC (which raised an OverflowError, "internal error"), or no
    JSON at all is reported on the friend's line (exit 1), and their private post is
    stored all the same. Once their feed.json is mended, its posts come in."""
    ada, bob, carol, bundle = trio
    ada.post("circle", "For friends", "friends")
    ada.post("open", "Open to all", "public")
    ada.build()
    feed = ada.root / "build/feed.json"
    good = feed.read_bytes()
    item = {"id": ada.server.url + "x/", "url": ada.server.url + "x/",
            "content_html": "<p>x</p>", "title": "Hostile"}
    if bad == "a date past year 9999 in UTC":
        item["date_published"] = "9999-12-31T23:59:59-01:00"
    feed.write_text("{not json" if bad == "not JSON" else json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "Ada", "items": [item]}))
    result = CliRunner(env={"O2M_CA_BUNDLE": bundle}).invoke(
        main, ["-C", str(bob.root), "fetch", "ada"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith("ada") and "1 new" in line and "public feed.json refused" in line
    assert "internal error" not in line
    assert {(p.title, p.audience) for p in bob.timeline()} == {("For friends", "private")}
    feed.write_bytes(good)
    got = bob.fetch(bundle)["ada"]
    assert got.ok and got.public_error is None and got.new == 1, got
    assert ("Open to all", "public") in {(p.title, p.audience) for p in bob.timeline()}


@pytest.mark.parametrize("seq,signed,reason", [(6, b"head 6", "rollback"),
                                               (7, b"other 7", "equivocation")])
def test_threat_10_an_update_overtaken_at_commit_is_refused_and_recorded(tmp_path, seq,
                                                                        signed, reason):
    """A fetch whose head was newer than the state it read, but not than the head another
    fetch committed meanwhile (seq 7): at commit it becomes a refusal, as rollback (or
    equivocation, with its warning), recorded for that friend; the store keeps seq 7.

    Unlike the rest of this module, this calls the private `http_fetch._record` with
    stand-in keys (b"\\1" * 32, ...), a stand-in FeedSecrets and "signed" bytes that are
    no signature: `_record` only commits an outcome already verified, and the race it
    loses is made here directly rather than with two real fetches timed to overlap
    (tests/reader/test_store.py has that race with two real connections)."""
    from o2m_pub.protocol import feeds
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.reader.fetch_plan import FriendKeys, Outcome
    from o2m_pub.reader.http_fetch import _record
    from o2m_pub.reader.model import (
        AcceptedHead,
        FeedStateChange,
        FriendUpdate,
        PostRow,
    )
    keys = FriendKeys("ada", b"\1" * 32, b"\2" * 32, b"\3" * 32,
                      feeds.FeedSecrets("name", b"\4" * 32), "https://ada.example/")
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc)
    post = PostRow(id="p", audience="private", date="2026-11-30T10:00:00Z", markdown="x")
    with ReaderStore.open(tmp_path) as store:
        store.apply_update(FriendUpdate("ada", b64u_encode(keys.sign_pk),
                                        state=FeedStateChange("2026-11-30T12:00:00Z",
                                                              head=AcceptedHead(7, b"head 7"))),
                           now=now)
        outcome = Outcome("ada", "new", new=1, update=FriendUpdate(
            "ada", b64u_encode(keys.sign_pk),
            state=FeedStateChange("2026-11-30T12:00:00Z", head=AcceptedHead(seq, signed)),
            upserts=[post]))
        _record(store, keys, outcome, now)
        assert (outcome.status, outcome.reason, outcome.new) == ("refused", reason, 0)
        state = store.friend_state("ada")
        assert (state.seq, state.head_signed, state.last_reason) == (7, b"head 7", reason)
        assert store.timeline() == []
        kinds = [n.kind for n in store.notifications()]
        assert kinds == (["equivocation"] if reason == "equivocation" else [])
