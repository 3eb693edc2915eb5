"""The friend store (friends/friend_store.py): real files under a tmp site's keys/, real signed cards
from fixed seeds. One test per refusal of THREATS.md 6 and the friend-add rules, the
on-disk format and modes, groups, and the pure `resolve_audience`."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nacl.public
import nacl.signing
import pytest

from o2m_pub.errors import O2MError
from o2m_pub.friends.friend_store import (
    AddDecision,
    AmbiguousAudienceError,
    ConfigGroupError,
    DuplicateFriendNameError,
    Friend,
    FriendError,
    FriendStore,
    FriendStoreError,
    GroupError,
    InvalidFriendNameError,
    InvalidGroupNameError,
    KeyChangeError,
    OwnCardError,
    SameKeyOtherNameError,
    SameOriginOtherPinError,
    UnknownAudienceError,
    UnknownFriendError,
    UnknownGroupError,
    decide_add,
    known_audience_names,
    resolve_audience,
)
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.cards import Card, card_to_text, make_card
from o2m_pub.protocol.keyfile import fingerprint

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone.utc)
CREATED = datetime(2026, 11, 24, 10, 30, 0, tzinfo=timezone.utc)
POSIX = os.name == "posix"


def signing_key(seed: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([seed]) * 32)


def box_pk(seed: int) -> bytes:
    return bytes(nacl.public.PrivateKey(bytes([seed]) * 32).public_key)


def card(seed: int, name: str, url: str, *, box_seed: int | None = None,
         created: datetime = CREATED) -> Card:
    """A real signed card: sign key from `seed`, box key from `box_seed` (default 100+seed)."""
    return make_card(signing_key(seed), name=name, url=url,
                     box_pk=box_pk(100 + seed if box_seed is None else box_seed),
                     tls_pin=None, created=created)


ALICE = card(1, "Alice", "https://alice.example/")
BOB = card(2, "Bob", "https://bob.example/")
CAROL = card(3, "Carol", "https://carol.example/")
OWN = card(9, "Me", "https://me.example/")


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes (the folders are implied)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "o2m.toml").write_text("[site]\n", encoding="utf-8")
    return site


@pytest.fixture
def store(root: Path) -> FriendStore:
    return FriendStore(root, own_sign_pk=OWN.sign_pk)


# ---------------------------------------------------------------- friends


def test_add_list_get_rename_remove_round_trip(root: Path, store: FriendStore) -> None:
    """Friends survive a round trip through files, only under keys/, with private modes."""
    alice = store.add("alice", ALICE, now=NOW)
    bob = store.add("bob", BOB, now=NOW + timedelta(hours=1))
    assert alice == Friend(name="alice", card=ALICE, added="2026-12-01T09:00:00Z")
    assert bob.added == "2026-12-01T10:00:00Z"
    assert alice.fingerprint == fingerprint(ALICE.sign_pk, ALICE.box_pk)

    again = FriendStore(root)  # a new process reads the same files
    assert again.list() == [alice, bob]
    assert again.get("bob") == bob
    assert again.get("alice").card.raw == ALICE.raw

    renamed = store.rename("alice", "ally")
    assert renamed == Friend(name="ally", card=ALICE, added=alice.added)
    assert [f.name for f in store.list()] == ["ally", "bob"]
    with pytest.raises(UnknownFriendError):
        store.get("alice")

    assert store.remove("bob") == bob
    assert store.list() == [renamed]
    assert sorted(tree(root)) == ["keys/friends/ally.json", "o2m.toml"]
    assert not (root / "build").exists()
    if POSIX:
        assert mode(root / "keys") == 0o700
        assert mode(root / "keys/friends") == 0o700
        assert mode(root / "keys/friends/ally.json") == 0o600


def test_friend_file_is_canonical_json(root: Path, store: FriendStore) -> None:
    """The stored file is exactly the documented canonical JSON with the o2m1: text."""
    store.add("alice", ALICE, now=NOW)
    expected = canonical_json({"added": "2026-12-01T09:00:00Z", "card": card_to_text(ALICE),
                               "name": "alice", "previous_keys": [], "v": 1}) + b"\n"
    assert (root / "keys/friends/alice.json").read_bytes() == expected


def test_empty_store_lists_nothing_and_writes_nothing(root: Path, store: FriendStore) -> None:
    """Reading a site with no friends yet creates no folder."""
    assert store.list() == []
    assert store.groups() == {}
    assert store.find_by_keys(ALICE.sign_pk) is None
    assert not (root / "keys").exists()


def test_unknown_friend_hint_lists_close_names(store: FriendStore) -> None:
    """A typo or a capital letter gets a "did you mean" hint; a path is never opened."""
    store.add("alice", ALICE, now=NOW)
    with pytest.raises(UnknownFriendError) as e:
        store.get("alcie")
    assert "alice" in e.value.hint and "o2m friend list" in e.value.hint
    with pytest.raises(UnknownFriendError) as e:
        store.get("Alice")
    assert e.value.hint.startswith("did you mean alice")
    with pytest.raises(UnknownFriendError):
        store.get("../friends/alice")


def test_find_by_keys_matches_current_key_only(store: FriendStore) -> None:
    """find_by_keys finds a friend by their current key, never by a previous one."""
    store.add("alice", ALICE, now=NOW)
    store.add("bob", BOB, now=NOW)
    assert store.find_by_keys(BOB.sign_pk).name == "bob"
    new_alice = card(11, "Alice", "https://alice.example/")
    store.add("alice", new_alice, now=NOW, accept_key_change=True)
    assert store.find_by_keys(new_alice.sign_pk).name == "alice"
    assert store.find_by_keys(ALICE.sign_pk) is None


def test_duplicate_name_with_other_identity_refused(root: Path, store: FriendStore) -> None:
    """Another person's card under a name in use is refused, and nothing changes on disk."""
    store.add("alice", ALICE, now=NOW)
    before = tree(root / "keys")
    with pytest.raises(DuplicateFriendNameError) as e:
        store.add("alice", BOB, now=NOW)
    with pytest.raises(DuplicateFriendNameError):
        store.add("alice", BOB, now=NOW, accept_key_change=True)  # not a key change either
    assert "'alice'" in str(e.value) and "o2m friend remove alice" in e.value.hint
    assert tree(root / "keys") == before


def test_same_key_under_another_name_refused(root: Path, store: FriendStore) -> None:
    """A friend's keys under a second name are refused, naming the existing friend."""
    store.add("alice", ALICE, now=NOW)
    before = tree(root / "keys")
    with pytest.raises(SameKeyOtherNameError) as e:
        store.add("ally", ALICE, now=NOW)
    assert "already your friend as 'alice'" in str(e.value)
    assert "o2m friend rename alice ally" in e.value.hint
    # One of the two keys is enough: a card reusing Alice's box key is refused too.
    with pytest.raises(SameKeyOtherNameError):
        store.add("mallory", card(7, "Mallory", "https://m.example/", box_seed=101), now=NOW)
    assert tree(root / "keys") == before


def test_old_keys_of_a_friend_refused_under_another_name(root: Path,
                                                         store: FriendStore) -> None:
    """A friend's previous (maybe stolen) keys cannot come back as a new friend."""
    store.add("alice", ALICE, now=NOW)
    store.add("alice", card(11, "Alice", "https://alice.example/"), now=NOW,
              accept_key_change=True)
    before = tree(root / "keys")
    with pytest.raises(SameKeyOtherNameError) as e:
        store.add("eve", ALICE, now=NOW)
    assert "old keys of your friend 'alice'" in str(e.value)
    assert tree(root / "keys") == before


@pytest.mark.parametrize("new_card", [
    card(11, "Alice", "https://alice.example/"),  # same URL, new keys
    card(11, "Alice", "https://alice.other.example/"),  # same name, new keys and URL
], ids=["same-url", "same-name"])
def test_threat_6_reimporting_with_new_keys_warns_and_never_overwrites_silently(
        root: Path, store: FriendStore, new_card: Card) -> None:
    """THREATS.md 6: new keys for a friend are refused with both fingerprints shown, by
    the store and by `o2m friend add` (one warning line and its hint, exit 1, every file
    unchanged); only accept_key_change replaces the card, keeping the old keys in
    previous_keys."""
    from click.testing import CliRunner

    from o2m_pub.cli import main

    alice = store.add("alice", ALICE, now=NOW)
    before = tree(root / "keys")
    old_fp, new_fp = alice.fingerprint, fingerprint(new_card.sign_pk, new_card.box_pk)
    with pytest.raises(KeyChangeError) as e:
        store.add("alice", new_card, now=NOW)
    assert old_fp in str(e.value) and new_fp in str(e.value)
    assert (e.value.old_fingerprint, e.value.new_fingerprint) == (old_fp, new_fp)
    assert "--accept-key-change" in e.value.hint
    assert tree(root / "keys") == before
    (root / "o2m.toml").write_text('[site]\nname = "Me"\nurl = "https://me.example/"\n',
                                   encoding="utf-8")
    result = CliRunner().invoke(main, ["-C", str(root), "friend", "add", "alice",
                                       card_to_text(new_card), "--yes"])
    assert result.exit_code == 1, result.output
    first, hint = result.output.splitlines()[:2]
    assert first.startswith("o2m: error: ") and "has new keys" in first
    assert old_fp in first and new_fp in first and "--accept-key-change" in hint
    assert tree(root / "keys") == before

    changed = store.add("alice", new_card, now=NOW + timedelta(days=1), accept_key_change=True)
    assert changed == Friend(name="alice", card=new_card, added=alice.added,
                             previous_keys=((ALICE.sign_pk, ALICE.box_pk),))
    assert store.get("alice") == changed
    stored = json.loads((root / "keys/friends/alice.json").read_bytes())
    assert stored["previous_keys"] == [[b64u_encode(ALICE.sign_pk), b64u_encode(ALICE.box_pk)]]


def test_new_keys_for_a_friends_site_refused_under_another_name(
        root: Path, store: FriendStore) -> None:
    """New keys for a friend's URL cannot slip in under a fresh name (THREATS.md 6):
    it is a key change, acceptable only under the friend's own name."""
    store.add("alice", ALICE, now=NOW)
    before = tree(root / "keys")
    takeover = card(11, "Not Alice", "https://alice.example/")
    for accept in (False, True):
        with pytest.raises(KeyChangeError) as e:
            store.add("alice2", takeover, now=NOW, accept_key_change=accept)
        assert "site of your friend 'alice'" in str(e.value)
        assert store.get("alice").fingerprint in str(e.value)
    assert tree(root / "keys") == before
    assert store.add("alice", takeover, now=NOW, accept_key_change=True).card == takeover


def test_box_key_change_alone_is_a_key_change(store: FriendStore) -> None:
    """A new X25519 key with the same signing key is still a key change to confirm."""
    store.add("alice", ALICE, now=NOW)
    with pytest.raises(KeyChangeError):
        store.add("alice", card(1, "Alice", "https://alice.example/", box_seed=55), now=NOW)


def test_readding_same_identity_with_newer_card_updates(root: Path,
                                                        store: FriendStore) -> None:
    """The same keys with a newer card (a new URL) update the card; the same or an older
    card is a no-op that leaves the file untouched."""
    store.add("alice", ALICE, now=NOW)
    moved = card(1, "Alice", "https://alice.new.example/",
                 created=CREATED + timedelta(days=3))
    updated = store.add("alice", moved, now=NOW + timedelta(days=5))
    assert updated == Friend(name="alice", card=moved, added="2026-12-01T09:00:00Z")
    assert store.get("alice").card.url == "https://alice.new.example/"

    path = root / "keys/friends/alice.json"
    before = (path.read_bytes(), path.stat().st_ino)
    assert store.add("alice", moved, now=NOW) == updated
    assert store.add("alice", ALICE, now=NOW) == updated  # older: never rolled back
    assert (path.read_bytes(), path.stat().st_ino) == before


def pinned(seed: int, name: str, url: str, pin: bytes | None) -> Card:
    return make_card(signing_key(seed), name=name, url=url, box_pk=box_pk(100 + seed),
                     tls_pin=pin, created=CREATED)


def test_two_friends_on_one_origin_with_different_pins_refused(root: Path,
                                                               store: FriendStore) -> None:
    """One host serves one TLS key: a card for a site on a friend's origin (scheme, host,
    port) that pins another key contradicts that friend's card (or is Mallory claiming
    a path on Alice's host, to pin it for her): refused, naming the friend, nothing
    written. The same pin there, a card with no pin, or another port, is fine."""
    store.add("alice", pinned(1, "Alice", "https://host.example/alice/", b"\1" * 32), now=NOW)
    before = tree(root / "keys")
    with pytest.raises(SameOriginOtherPinError) as e:
        store.add("mallory", pinned(4, "Mallory", "https://host.example/m/", b"\2" * 32),
                  now=NOW)
    assert "'alice'" in str(e.value) and "alice" in e.value.hint and "\n" not in str(e.value)
    assert tree(root / "keys") == before
    store.add("bob", pinned(2, "Bob", "https://host.example/bob/", b"\1" * 32), now=NOW)
    store.add("carol", pinned(3, "Carol", "https://host.example/carol/", None), now=NOW)
    store.add("dave", pinned(5, "Dave", "https://host.example:8443/d/", b"\2" * 32), now=NOW)
    assert [f.name for f in store.list()] == ["alice", "bob", "carol", "dave"]


def test_own_card_refused(root: Path, store: FriendStore) -> None:
    """The owner's own card cannot be a friend."""
    with pytest.raises(OwnCardError) as e:
        store.add("me", OWN, now=NOW)
    assert "o2m card" in e.value.hint
    assert not (root / "keys").exists()


@pytest.mark.parametrize("name", ["Alice", "../x", "public", "friends", "a b", "", "a" * 70,
                                  "alice\n", "-alice", "alice.json", "ålice", "x/y"])
def test_invalid_friend_names_refused(root: Path, store: FriendStore, name: str) -> None:
    """Names that are not [a-z0-9][a-z0-9_-]{0,63}, or reserved audiences, are refused
    before anything is written."""
    with pytest.raises(InvalidFriendNameError):
        store.add(name, ALICE, now=NOW)
    assert not (root / "keys").exists()


def test_longest_valid_name_accepted(store: FriendStore) -> None:
    """64 characters is the limit, and it is allowed."""
    assert store.add("a" * 64, ALICE, now=NOW).name == "a" * 64


def test_naive_now_is_a_caller_bug(store: FriendStore) -> None:
    """`now` must be aware: a naive datetime would store a wrong time."""
    with pytest.raises(ValueError, match="aware"):
        store.add("alice", ALICE, now=datetime(2026, 12, 1))


# ---------------------------------------------------------------- decide_add, the pure rule

STAMP = "2026-12-01T09:00:00Z"  # NOW as stored
EARLIER = "2026-11-25T08:00:00Z"
ALICE_2 = card(11, "Alice", "https://alice.example/")  # Alice's site, new keys
ALICE_MOVED = card(1, "Alice", "https://alice.new.example/", created=CREATED + timedelta(days=3))
STORED_ALICE = Friend(name="alice", card=ALICE, added=EARLIER)
ROTATED_ALICE = Friend(name="alice", card=ALICE_2, added=EARLIER,
                       previous_keys=((ALICE.sign_pk, ALICE.box_pk),))
MOVED_ALICE = Friend(name="alice", card=ALICE_MOVED, added=EARLIER)
PINNED_ALICE = Friend(name="alice", added=EARLIER,
                      card=pinned(1, "Alice", "https://host.example/alice/", b"\1" * 32))


# case: (stored friends, group names, name, card, accept_key_change,
#        expected AddDecision or the error it raises)
ADD_CASES = {
    "new friend": (
        [], [], "alice", ALICE, False, AddDecision(Friend("alice", ALICE, STAMP), True)),
    "a second friend": (
        [STORED_ALICE], [], "bob", BOB, False, AddDecision(Friend("bob", BOB, STAMP), True)),
    "same card again": (
        [STORED_ALICE], [], "alice", ALICE, False, AddDecision(STORED_ALICE, False)),
    "newer card, same keys": (
        [STORED_ALICE], [], "alice", ALICE_MOVED, False, AddDecision(MOVED_ALICE, True)),
    "older card than stored": (
        [MOVED_ALICE], [], "alice", ALICE, False, AddDecision(MOVED_ALICE, False)),
    "same card under another name": (
        [STORED_ALICE], [], "ally", ALICE, False, SameKeyOtherNameError),
    "a friend's box key under another name": (
        [STORED_ALICE], [], "mallory", card(7, "M", "https://m.example/", box_seed=101), False,
        SameKeyOtherNameError),
    "a friend's old keys under another name": (
        [ROTATED_ALICE], [], "eve", ALICE, True, SameKeyOtherNameError),
    "key change refused": (
        [STORED_ALICE], [], "alice", ALICE_2, False, KeyChangeError),
    "key change accepted": (
        [STORED_ALICE], [], "alice", ALICE_2, True, AddDecision(ROTATED_ALICE, True)),
    "key change back to the old keys": (
        [ROTATED_ALICE], [], "alice", ALICE, True, AddDecision(
            Friend("alice", ALICE, EARLIER, ((ALICE_2.sign_pk, ALICE_2.box_pk),)), True)),
    "new keys for a friend's site under another name": (
        [STORED_ALICE], [], "alice2", card(11, "Not Alice", "https://alice.example/"), True,
        KeyChangeError),
    "another pin on a friend's host": (
        [PINNED_ALICE], [], "mallory", pinned(4, "M", "https://host.example/m/", b"\2" * 32),
        False, SameOriginOtherPinError),
    "the same pin on a friend's host": (
        [PINNED_ALICE], [], "bob", pinned(2, "Bob", "https://host.example/bob/", b"\1" * 32),
        False, AddDecision(Friend("bob", pinned(2, "Bob", "https://host.example/bob/",
                                                b"\1" * 32), STAMP), True)),
    "a name taken by someone else": (
        [STORED_ALICE], [], "alice", BOB, True, DuplicateFriendNameError),
    "own card": (
        [], [], "me", OWN, False, OwnCardError),
    "a group's name": (
        [], ["family"], "family", ALICE, False, InvalidFriendNameError),
    "a group's name, for a friend we have": (
        [STORED_ALICE], ["alice"], "alice", ALICE_MOVED, False, AddDecision(MOVED_ALICE, True)),
    "an invalid name": (
        [], [], "Alice", ALICE, False, InvalidFriendNameError),
}


@pytest.mark.parametrize("case", ADD_CASES, ids=list(ADD_CASES))
def test_decide_add(case: str) -> None:
    """One row per rule of adding a card (THREATS.md 6): the friend to store and
    whether it is a change, or the refusal, from the friends, groups and card alone."""
    friends, groups, name, new_card, accept, expected = ADD_CASES[case]
    decide = lambda: decide_add(friends, groups, OWN.sign_pk, name, new_card,  # noqa: E731
                                accept_key_change=accept, now=NOW)
    if isinstance(expected, AddDecision):
        assert expected == decide()
    else:
        with pytest.raises(expected):
            decide()


def _flip_sig(raw: bytes) -> bytes:
    doc = json.loads(raw)
    sig = bytearray(doc["sig"].encode())
    sig[5] = ord("A") if sig[5] != ord("A") else ord("B")
    doc["sig"] = sig.decode()
    return canonical_json(doc)


def _corrupt(kind: str, data: bytes) -> bytes:
    doc = json.loads(data)
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "bad-signature":
        doc["card"] = "o2m1:" + b64u_encode(_flip_sig(ALICE.raw))
    elif kind == "name-mismatch":
        doc["name"] = "bob"
    elif kind == "newer-version":
        doc["v"] = 2
    elif kind == "boolean-version":
        doc["v"] = True
    elif kind == "unknown-field":
        doc["extra"] = 1
    elif kind == "bad-previous-key":
        doc["previous_keys"] = [["AAAA", "BBBB"]]
    elif kind == "bad-added":
        doc["added"] = "yesterday"
    elif kind == "not-an-object":
        return b"[]"
    return canonical_json(doc)


@pytest.mark.parametrize("kind", ["truncated", "bad-signature", "name-mismatch",
                                  "newer-version", "boolean-version", "unknown-field", "bad-previous-key",
                                  "bad-added", "not-an-object"])
def test_corrupted_friend_file_is_one_error_naming_it(root: Path, store: FriendStore,
                                                      kind: str) -> None:
    """A damaged friend file is one FriendStoreError naming the file, from list, get and
    add alike; never a traceback, never silently skipped."""
    store.add("alice", ALICE, now=NOW)
    path = root / "keys/friends/alice.json"
    path.write_bytes(_corrupt(kind, path.read_bytes()))
    for action in (store.list, lambda: store.get("alice"),
                   lambda: store.add("bob", BOB, now=NOW)):
        with pytest.raises(FriendStoreError) as e:
            action()
        assert e.value.path == "keys/friends/alice.json"
        assert e.value.where == "keys/friends/alice.json"
        assert "\n" not in str(e.value)
    assert not (root / "keys/friends/bob.json").exists()


def test_friend_file_with_invalid_file_name_is_reported(root: Path,
                                                        store: FriendStore) -> None:
    """A .json file whose name is not a valid friend name is reported, not ignored."""
    store.add("alice", ALICE, now=NOW)
    (root / "keys/friends/Alice.json").write_bytes(b"{}")
    with pytest.raises(FriendStoreError) as e:
        store.list()
    assert e.value.path == "keys/friends/Alice.json"


def test_stray_temporary_files_are_ignored(root: Path, store: FriendStore) -> None:
    """A temporary file left by a crash mid-write is not taken for a friend."""
    store.add("alice", ALICE, now=NOW)
    (root / "keys/friends/.~o2m-0123456789abcdef.bob.json").write_bytes(b"{")
    (root / "keys/friends/notes.txt").write_bytes(b"hello")
    assert [f.name for f in store.list()] == ["alice"]


def test_oversized_friend_file_refused(root: Path, store: FriendStore) -> None:
    """A huge file is refused by size before it is parsed."""
    store.add("alice", ALICE, now=NOW)
    (root / "keys/friends/alice.json").write_bytes(b" " * (1 << 20))
    with pytest.raises(FriendStoreError, match="over"):
        store.get("alice")


def test_rename_refuses_taken_and_invalid_names(root: Path, store: FriendStore) -> None:
    """Renaming onto another friend, a group or a bad name changes nothing."""
    store.add("alice", ALICE, now=NOW)
    store.add("bob", BOB, now=NOW)
    store.group_add("family", ["bob"])
    before = tree(root / "keys")
    with pytest.raises(DuplicateFriendNameError):
        store.rename("alice", "bob")
    with pytest.raises(InvalidFriendNameError):
        store.rename("alice", "family")
    with pytest.raises(InvalidFriendNameError):
        store.rename("alice", "Public")
    with pytest.raises(UnknownFriendError):
        store.rename("carol", "caro")
    assert tree(root / "keys") == before
    assert store.rename("alice", "alice").name == "alice"


def test_errors_are_friend_errors_with_one_line_and_hint() -> None:
    """Every error is a FriendError (O2MError and ValueError) with user text."""
    errors = [UnknownFriendError("x"), DuplicateFriendNameError("x"),
              SameKeyOtherNameError("x", "y"), KeyChangeError("x", "1", "2"), OwnCardError(),
              SameOriginOtherPinError("x", "https://a.example/x/", "https://a.example/y/"),
              FriendStoreError("bad", path="keys/groups.json"), UnknownGroupError("g"),
              ConfigGroupError(), InvalidGroupNameError(), InvalidFriendNameError(),
              UnknownAudienceError("x"), AmbiguousAudienceError("x")]
    for error in errors:
        assert isinstance(error, FriendError)
        assert isinstance(error, O2MError) and isinstance(error, ValueError)
        assert str(error) and "\n" not in str(error)
        assert error.hint


# ---------------------------------------------------------------- groups


def test_groups_add_remove_delete(root: Path, store: FriendStore) -> None:
    """Groups are made, grown, shrunk and deleted in keys/groups.json (mode 0600)."""
    for name, c in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        store.add(name, c, now=NOW)
    assert store.group_add("family", ["bob", "alice", "bob"]) == ("alice", "bob")
    assert store.group_add("family", ["carol"]) == ("alice", "bob", "carol")
    assert store.group_add("work", ["carol"]) == ("carol",)
    path = root / "keys/groups.json"
    assert path.read_bytes() == canonical_json(
        {"groups": {"family": ["alice", "bob", "carol"], "work": ["carol"]}, "v": 1}) + b"\n"
    if POSIX:
        assert mode(path) == 0o600

    assert store.group_remove("family", ["alice", "bob"]) == ("carol",)
    assert store.group_remove("family", ["carol"]) == ()  # the last one: the group goes
    assert store.groups() == {"work": ("carol",)}
    store.group_delete("work")
    assert store.groups() == {}
    assert json.loads(path.read_bytes()) == {"groups": {}, "v": 1}
    with pytest.raises(UnknownGroupError):
        store.group_delete("work")
    with pytest.raises(UnknownGroupError):
        store.group_remove("work", ["carol"])


def test_group_remove_of_a_non_member_refused(root: Path, store: FriendStore) -> None:
    """Taking out someone who is not in the group is an error, and nothing changes."""
    store.add("alice", ALICE, now=NOW)
    store.add("bob", BOB, now=NOW)
    store.group_add("family", ["alice"])
    before = tree(root / "keys")
    with pytest.raises(GroupError, match="'bob' is not in group 'family'"):
        store.group_remove("family", ["alice", "bob"])
    assert tree(root / "keys") == before


def test_config_groups_merged_and_not_deletable(root: Path) -> None:
    """o2m.toml's groups are merged with groups.json's (members united) and read-only."""
    store = FriendStore(root, config_groups={"family": ("alice", "zoe"), "club": ("bob",)})
    store.add("alice", ALICE, now=NOW)
    store.add("bob", BOB, now=NOW)
    assert store.groups() == {"club": ("bob",), "family": ("alice", "zoe")}
    assert store.group_add("family", ["bob"]) == ("alice", "bob", "zoe")
    assert store.groups() == {"club": ("bob",), "family": ("alice", "bob", "zoe")}
    with pytest.raises(ConfigGroupError) as e:
        store.group_delete("club")
    assert "o2m.toml" in str(e.value) and "o2m.toml" in e.value.hint
    with pytest.raises(ConfigGroupError):
        store.group_remove("family", ["alice"])
    # Deleting a group that is in both removes only groups.json's part.
    store.group_delete("family")
    assert store.groups() == {"club": ("bob",), "family": ("alice", "zoe")}


def test_group_named_like_a_friend_refused(root: Path, store: FriendStore) -> None:
    """A group and a friend may not share a name: the audience would be ambiguous."""
    store.add("alice", ALICE, now=NOW)
    store.add("bob", BOB, now=NOW)
    with pytest.raises(InvalidGroupNameError, match="name of a friend"):
        store.group_add("alice", ["bob"])
    store.group_add("family", ["bob"])
    with pytest.raises(InvalidFriendNameError, match="name of a group"):
        store.add("family", CAROL, now=NOW)
    config_store = FriendStore(root, config_groups={"club": ("bob",)})
    with pytest.raises(InvalidFriendNameError, match="name of a group"):
        config_store.add("club", CAROL, now=NOW)


@pytest.mark.parametrize("group", ["public", "friends", "Family", "a b", "", "../g"])
def test_invalid_group_names_refused(root: Path, store: FriendStore, group: str) -> None:
    """Group names follow the friend-name rule and cannot be public or friends."""
    store.add("alice", ALICE, now=NOW)
    with pytest.raises(InvalidGroupNameError):
        store.group_add(group, ["alice"])
    assert not (root / "keys/groups.json").exists()


def test_unknown_group_member_refused(root: Path, store: FriendStore) -> None:
    """Only friends can be put in a group; nothing is written otherwise."""
    store.add("alice", ALICE, now=NOW)
    with pytest.raises(UnknownFriendError) as e:
        store.group_add("family", ["alice", "alcie2"])
    assert "alice" in e.value.hint
    with pytest.raises(GroupError):
        store.group_add("family", [])
    assert not (root / "keys/groups.json").exists()


def test_rename_and_remove_update_groups(root: Path, store: FriendStore) -> None:
    """Renaming a friend renames them in groups.json; removing takes them out, and a
    group left empty is deleted."""
    store.add("alice", ALICE, now=NOW)
    store.add("bob", BOB, now=NOW)
    store.group_add("family", ["alice", "bob"])
    store.group_add("solo", ["alice"])
    store.rename("alice", "ally")
    assert store.groups() == {"family": ("ally", "bob"), "solo": ("ally",)}
    store.remove("ally")
    assert store.groups() == {"family": ("bob",)}
    assert json.loads((root / "keys/groups.json").read_bytes()) == {
        "groups": {"family": ["bob"]}, "v": 1}


def test_corrupted_groups_file_is_one_error_naming_it(root: Path,
                                                      store: FriendStore) -> None:
    """A damaged groups.json is one FriendStoreError naming it."""
    store.add("alice", ALICE, now=NOW)
    for data in (b'{"groups":{"family":["alice"]},"v":1', b'{"groups":[],"v":1}',
                 b'{"groups":{"Bad Name":["alice"]},"v":1}', b'{"groups":{},"v":7}'):
        (root / "keys/groups.json").write_bytes(data)
        with pytest.raises(FriendStoreError) as e:
            store.groups()
        assert e.value.path == "keys/groups.json"


# ---------------------------------------------------------------- audiences


FRIENDS = frozenset({"alice", "bob", "carol"})
GROUPS = {"family": ("alice", "bob", "gone"), "work": ("carol",)}


@pytest.mark.parametrize(("names", "expected"), [
    (["public"], (True, FRIENDS)),
    (["friends"], (False, FRIENDS)),
    (["family"], (False, frozenset({"alice", "bob"}))),  # "gone" is no friend now
    (["carol"], (False, frozenset({"carol"}))),
    (["work", "alice"], (False, frozenset({"alice", "carol"}))),
    (["public", "family"], (True, FRIENDS)),
    ([], (False, frozenset())),
])
def test_resolve_audience(names: list[str], expected: tuple[bool, frozenset[str]]) -> None:
    """public is everyone (and public), friends is every friend, a group its members who
    are still friends, a name that friend."""
    assert resolve_audience(names, FRIENDS, GROUPS) == expected


def test_resolve_audience_unknown_name() -> None:
    """A name that is nothing raises UnknownAudienceError carrying the name."""
    with pytest.raises(UnknownAudienceError) as e:
        resolve_audience(["family", "gone"], FRIENDS, GROUPS)
    assert e.value.name == "gone"


def test_resolve_audience_name_both_friend_and_group_refused() -> None:
    """A name that is both a friend and a group is refused rather than guessed."""
    with pytest.raises(AmbiguousAudienceError):
        resolve_audience(["bob"], FRIENDS, {"bob": ("alice", "carol")})


def test_resolve_audience_refuses_a_bare_string() -> None:
    """A single string is a caller bug (it would be read letter by letter)."""
    with pytest.raises(TypeError):
        resolve_audience("public", FRIENDS, GROUPS)  # type: ignore[arg-type]


def test_known_audience_names() -> None:
    """The known names are public, friends, every group and every friend."""
    assert known_audience_names(FRIENDS, GROUPS) == frozenset(
        {"public", "friends", "family", "work", "alice", "bob", "carol"})
