"""Friends who stay connected (issue 12), end to end: real sites made by `o2m init`,
served by real `o2m serve` processes (or stdlib TLS servers with a trustme CA) on
127.0.0.1, fetched by the real fetcher. A site moves from one port to another and from
its self-signed pin to a CA's certificate; a site rotates its keys; a host injects a
public post. Friends follow by themselves, with no paste, no duplicate posts, and their
history kept (PROTOCOL.md §1.4, §2.4, §2.5, §3.5)."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.o2m_server import o2m_serve
from support.people import PASS, Person, o2m, server_context

from o2m_pub.cli import main
from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.friends.identity import load_identity
from o2m_pub.protocol.keyfile import fingerprint
from o2m_pub.reader.store import ReaderStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortOnly:
    """No server yet: a free port of 127.0.0.1 for the site's URL, for `o2m serve`."""

    def __init__(self, folder: Path, context: object) -> None:
        self.port = free_port()
        self.url = f"https://localhost:{self.port}/"

    def stop(self) -> None:
        pass


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """The real `o2m` command in-process; its output (it must succeed)."""
    result = CliRunner(env=env).invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def notifications(person: Person) -> list[tuple[str, str]]:
    with ReaderStore.open(person.root) as store:
        return [(n.kind, n.detail) for n in store.notifications()]


def count_by_title(person: Person, friend: str = "ada") -> dict[str, int]:
    """How many stored posts of `friend` have each title."""
    counts: dict[str, int] = {}
    for post in person.timeline(friend=friend):
        counts[post.title] = counts.get(post.title, 0) + 1
    return counts


@pytest.fixture
def served(tmp_path, ca):
    """Ada's site served by `o2m serve` (self-signed, pinned in her card) at a port of
    her own; Bob and Carol (stdlib servers with the test CA) befriended with her."""
    authority, bundle = ca
    context = server_context(authority)
    ada = Person(tmp_path, "ada", context, server_cls=PortOnly)
    bob, carol = Person(tmp_path, "bob", context), Person(tmp_path, "carol", context)
    ada.post("hello", "Hello, world", "public")
    ada.post("hike", "First hike", "friends")
    ada.build()
    yield ada, bob, carol, bundle, authority
    bob.server.stop()
    carol.server.stop()


def befriend_all(ada: Person, *others: Person) -> None:
    for other in others:
        ada.befriend(other)
        other.befriend(ada)


def test_threat_56_a_site_that_moves_to_another_port_is_followed_without_a_paste(served):
    """Ada serves on one port, then `o2m move`s to another: she publishes once more
    where she was (here the old `o2m serve` serves the same build/), and Bob's next
    fetch takes her new card from the old address, reads her feed at the new one, and
    keeps one copy of each post (public posts keep their `_o2m.id`)."""
    ada, bob, carol, bundle, _ = served
    old_port = ada.server.port
    with o2m_serve(ada.root, "--port", str(old_port)) as old:
        assert old.pin is not None and ada.card.tls_pin is not None
        befriend_all(ada, bob)
        ada.build()
        first = bob.fetch(bundle)["ada"]
        assert first.ok and first.new == 2, first
        new_port = free_port()
        moved = cli(ada.root, "move", f"https://localhost:{new_port}/")
        assert "publish it once more to the old host" in moved
        assert ada.card.url == f"https://localhost:{new_port}/"
        with o2m_serve(ada.root, "--port", str(new_port)):
            got = bob.fetch(bundle)["ada"]
            assert got.ok, got
            assert got.card.adopted is not None and got.card.error is None
            assert {"Hello, world": 1, "First hike": 1} == count_by_title(bob)
            stored = FriendStore(bob.root).get("ada").card
            assert stored.url == f"https://localhost:{new_port}/" and stored.seq > 0
            assert ("moved", f"https://localhost:{new_port}/") in notifications(bob)
            old.stop()  # the old address is gone: Bob reads the new one alone
            ada.post("later", "After the move", "public")
            ada.build()
            again = bob.fetch(bundle)["ada"]
            assert again.ok and again.new == 1, again
    assert {"Hello, world": 1, "First hike": 1, "After the move": 1} == count_by_title(bob)
    post = next(p for p in bob.timeline() if p.title == "Hello, world")
    assert post.url.startswith(f"https://localhost:{new_port}/")


def test_threat_56_a_site_that_moves_from_its_pin_to_a_ca_certificate_is_followed(
        served, tmp_path):
    """Ada's card pins her self-signed key; she then names a CA's certificate in
    [serve] cert/key and builds: her card loses its pin (o2m build renews it). Bob's
    pinned check of her new server fails; his fetcher reads her card over an unverified
    connection, adopts it by its signature (a higher seq, her key), and checks her
    server by the CA from then on, with no paste and no duplicate."""
    ada, bob, carol, bundle, authority = served
    port = ada.server.port
    with o2m_serve(ada.root, "--port", str(port)):
        befriend_all(ada, bob)
        ada.build()
        assert bob.fetch(bundle)["ada"].new == 2
    cert = authority.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(ada.root / "ca-key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(ada.root / "ca-cert.pem"))
    with open(ada.root / "o2m.toml", "a") as f:
        f.write('\n[serve]\ncert = "ca-cert.pem"\nkey = "ca-key.pem"\n')
    before = ada.card.seq
    built = cli(ada.root, "build")
    assert ada.card.tls_pin is None and ada.card.seq > before, built
    with o2m_serve(ada.root, "--port", str(port)) as server:
        assert server.pin is None
        got = bob.fetch(bundle)["ada"]
        assert got.ok, got
        assert got.card.adopted is not None and got.card.adopted.tls_pin is None
        assert FriendStore(bob.root).get("ada").card.tls_pin is None
        kinds = [k for k, _ in notifications(bob)]
        assert "certificate_changed" in kinds
        ada.post("ca", "Checked by a CA", "friends")
        ada.build()
        assert bob.fetch(bundle)["ada"].new == 1
    assert {"Hello, world": 1, "First hike": 1, "Checked by a CA": 1} == count_by_title(bob)


@pytest.fixture
def trio(tmp_path, ca):
    """Ada, Bob and Carol on stdlib TLS servers with the test CA, all befriended."""
    authority, bundle = ca
    context = server_context(authority)
    ada, bob, carol = (Person(tmp_path, n, context) for n in ("ada", "bob", "carol"))
    befriend_all(ada, bob, carol)
    bob.befriend(carol)
    carol.befriend(bob)
    yield ada, bob, carol, bundle
    for p in (ada, bob, carol):
        p.server.stop()


def test_a_key_rotation_is_followed_by_two_friends(trio):
    """Ada runs `o2m key rotate`: a statement signed by her old and her pre-committed
    next key, a new card, and every feed made anew for the new keys. Bob and Carol
    each follow on their next fetch: her new keys are stored (the old ones among her
    previous keys), her posts are kept once each, new posts arrive, and `o2m
    notifications` says she moved to a new key. Bob's own feed for Ada follows once
    Bob has her new card and builds."""
    ada, bob, carol, bundle = trio
    ada.post("open", "Open", "public")
    ada.post("circle", "For friends", "friends")
    for p in (ada, bob, carol):
        p.build()
    bob.post("b", "From Bob", "friends")
    bob.build()
    for p in (bob, carol):
        assert p.fetch(bundle)["ada"].new == 2
    assert ada.fetch(bundle)["bob"].new == 1
    old = ada.card
    rotated = cli(ada.root, "key", "rotate")
    assert "rotated to a new key" in rotated
    new = ada.card
    assert new.sign_pk != old.sign_pk and new.sign_pk is not None
    assert load_identity(ada.root, PASS).sign_pk == new.sign_pk
    assert json.loads((ada.root / "build/.well-known/o2m-rotations.json").read_text())
    ada.post("after", "After the rotation", "friends")
    ada.build()
    for friend in (bob, carol):
        got = friend.fetch(bundle)["ada"]
        assert got.ok and got.new == 1, got
        assert got.card.rekeyed
        stored = FriendStore(friend.root).get("ada")
        assert stored.card.sign_pk == new.sign_pk
        assert (old.sign_pk, old.box_pk) in stored.previous_keys
        assert len(stored.rotations) == 1
        assert {"Open": 1, "For friends": 1, "After the rotation": 1} == count_by_title(friend)
        assert [d for k, d in notifications(friend) if k == "key_rotated"]
        assert friend.fetch(bundle)["ada"].status == "unchanged"
    assert ada.fetch(bundle)["bob"].status == "no feed"  # not for her new keys yet
    bob.build()  # Bob has her new card now: his feed for her is made for her new keys
    got = ada.fetch(bundle)["bob"]
    assert got.ok, got
    assert {"From Bob": 1} == count_by_title(ada, "bob")
    expected = fingerprint(new.sign_pk, new.box_pk)
    assert expected in cli(bob.root, "friend", "show", "ada")
    assert "moved to a new key" in cli(bob.root, "notifications")


def test_threat_54_an_injected_public_post_is_refused_and_the_private_feed_is_not(trio):
    """THREATS 54: Ada's host adds a post to her feed.json (a valid JSON Feed). Bob's
    fetch refuses her public feed with one line, stores nothing of it, and still takes
    the new post of her signed feed for him; a feed.json.sig removed, or an older one
    served again, is refused the same way."""
    ada, bob, carol, bundle = trio
    ada.post("open", "Open", "public")
    ada.build()
    assert bob.fetch(bundle, "ada")["ada"].new == 1
    feed_path = ada.root / "build/feed.json"
    genuine_feed, genuine_sig = feed_path.read_bytes(), (ada.root / "build/feed.json.sig"
                                                        ).read_bytes()
    ada.post("circle", "Friends only", "friends")
    ada.post("open2", "Second open", "public")
    ada.build()
    feed = json.loads(feed_path.read_text())
    feed["items"].insert(0, {**feed["items"][0], "id": ada.server.url + "2026/fake/",
                             "url": ada.server.url + "2026/fake/", "title": "Injected",
                             "_o2m": {"id": "AAAAAAAAAAAAAAAAAAAAAA"}})
    feed_path.write_text(json.dumps(feed))
    got = bob.fetch(bundle, "ada")["ada"]
    assert got.public_error and "signature does not match" in got.public_error, got
    assert "Injected" not in bob.titles() and "Second open" not in bob.titles()
    assert "Friends only" in bob.titles()  # the signed private feed is not held up
    result = CliRunner(env={"O2M_CA_BUNDLE": bundle}).invoke(
        main, ["-C", str(bob.root), "fetch", "ada"])
    assert 1 == result.exit_code and "signature does not match" in result.output
    (ada.root / "build/feed.json.sig").unlink()
    assert "missing" in bob.fetch(bundle, "ada")["ada"].public_error
    ada.build()  # the genuine pair again
    assert bob.fetch(bundle, "ada")["ada"].public_error is None
    assert "Second open" in bob.titles()
    feed_path.write_bytes(genuine_feed)  # an older, genuinely signed pair, replayed
    (ada.root / "build/feed.json.sig").write_bytes(genuine_sig)
    replayed = bob.fetch(bundle, "ada")["ada"]
    assert replayed.public_error and "older" in replayed.public_error, replayed
    assert {"Open": 1, "Friends only": 1, "Second open": 1} == count_by_title(bob)


def test_a_friend_of_o2m_1_0_is_read_as_before_and_marked_unsigned(trio):
    """A card without feed_pk (a site of o2m 1.0): its feed.json is read as before, and
    the outcome says it was unsigned."""
    ada, bob, carol, bundle = trio
    from o2m_pub.protocol.cards import make_card
    identity = load_identity(ada.root, PASS)
    old_style = make_card(identity.signing_key, name="Ada", url=ada.server.url,
                          box_pk=identity.box_pk, tls_pin=None,
                          created=dt.datetime.now(dt.timezone.utc))
    (ada.root / "keys/card.json").write_bytes(old_style.raw)
    (ada.root / "keys/feed.key").unlink()
    ada.post("open", "Open", "public")
    ada.build()
    assert not (ada.root / "build/feed.json.sig").exists()
    o2m("-C", str(bob.root), "friend", "remove", "ada")
    o2m("-C", str(bob.root), "friend", "add", "ada", ada.root.joinpath("keys/card.json")
        .as_posix(), "--yes")
    got = bob.fetch(bundle, "ada")["ada"]
    assert got.ok and got.public_unsigned and got.public_error is None, got
    assert "Open" in bob.titles()


def _feed_seq(person: Person, friend: str) -> int | None:
    with ReaderStore.open(person.root) as store:
        state = store.friend_state(friend)
        return state.seq if state else None


def test_a_removed_friends_posts_leave_and_their_name_can_go_to_someone_else(trio):
    """`o2m friend remove ada`: her posts leave Bob's timeline and what the reader kept
    of her feed goes with them. Carol's card, added next under the name `ada`, is
    fetched from her own first head (not refused as older than Ada's last), and none
    of Ada's posts is shown as hers."""
    ada, bob, carol, bundle = trio
    for n in range(3):
        ada.post(f"p{n}", f"Ada {n}", "friends")
        ada.build()
    assert bob.fetch(bundle, "ada")["ada"].new == 3
    carol.post("c", "By Carol", "friends")
    carol.build()
    assert bob.fetch(bundle, "carol")["carol"].new == 1
    assert _feed_seq(bob, "ada") > _feed_seq(bob, "carol")  # (her first head: lower)

    o2m("-C", str(bob.root), "friend", "remove", "ada")
    assert set() == bob.titles(friend="ada") and _feed_seq(bob, "ada") is None
    o2m("-C", str(bob.root), "friend", "remove", "carol")
    bob.befriend(carol, as_name="ada")
    got = bob.fetch(bundle, "ada")["ada"]

    assert got.ok and got.new == 1, got
    assert {"By Carol"} == bob.titles()


def test_a_renamed_friend_keeps_their_posts_and_read_marks(trio):
    """`o2m friend rename ada lovelace`: her posts, read or not, are hers under the new
    name, and the next fetch goes on from her last head: no post twice, none new."""
    ada, bob, carol, bundle = trio
    ada.post("one", "One", "friends")
    ada.post("two", "Two", "friends")
    ada.build()
    assert bob.fetch(bundle, "ada")["ada"].new == 2
    with ReaderStore.open(bob.root) as store:
        store.mark_read([p.short_id for p in store.timeline(friend="ada") if p.title == "One"])

    o2m("-C", str(bob.root), "friend", "rename", "ada", "lovelace")

    assert set() == bob.titles(friend="ada")
    assert {("One", True), ("Two", False)} == {(p.title, bool(p.read))
                                               for p in bob.timeline(friend="lovelace")}
    got = bob.fetch(bundle, "lovelace")["lovelace"]
    assert got.ok and got.new == 0, got
    assert {"One": 1, "Two": 1} == count_by_title(bob, "lovelace")


def test_a_fetch_that_waited_for_a_removal_does_not_bring_the_friend_back(trio, monkeypatch):
    """`o2m fetch --every` queues behind `o2m friend remove ada` (which holds the fetch
    lock while it changes both stores): once it runs, it reads the friends as they are
    then, so Ada's posts and feed state do not come back under her name."""
    import threading

    from o2m_pub.reader import fetch_run
    from o2m_pub.reader.http_fetch import Limits
    from o2m_pub.reader.store import store_for_friend_change
    ada, bob, carol, bundle = trio
    ada.post("p", "Ada's post", "friends")
    ada.build()
    assert bob.fetch(bundle, "ada")["ada"].ok
    queued, real_lock, outcomes = threading.Event(), fetch_run.fetch_lock, []

    def lock_after_saying_so(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        queued.set()  # (the fetch is about to wait for the lock the removal holds)
        return real_lock(*args, **kwargs)

    monkeypatch.setattr(fetch_run, "fetch_lock", lock_after_saying_so)
    fetch = threading.Thread(target=lambda: outcomes.extend(fetch_run.run_fetch(
        bob.root, unlock=lambda: load_identity(bob.root, PASS),
        now=dt.datetime.now(dt.timezone.utc), limits=Limits(deadline=20),
        ca_bundle=bundle, wait_for_lock=True)))
    with store_for_friend_change(bob.root, wait=True) as reader:  # as the CLI removes her
        fetch.start()
        assert queued.wait(30)
        reader.forget_friend("ada")
        FriendStore(bob.root).remove("ada")
    fetch.join(60)

    assert ["carol"] == [o.friend for o in outcomes]
    assert [] == bob.timeline(friend="ada") and _feed_seq(bob, "ada") is None
