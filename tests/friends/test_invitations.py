"""The owner's invitations (o2m_pub/friends/invitations.py, PROTOCOL.md §2.7): what is
kept in .o2m/invites.json, and the owner's side of an acceptance with real files: a used,
expired, unknown or forged one is refused with nothing stored."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading

import nacl.secret
import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.friends import invitations as inv
from o2m_pub.friends.friend_store import FriendStore, OwnCardError, valid_name
from o2m_pub.protocol import invite
from o2m_pub.protocol.canonical import b64u_encode, canonical_json, parse_json
from o2m_pub.protocol.cards import make_card
from o2m_pub.protocol.feeds import pad

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
WEEK = dt.timedelta(days=7)


def card(n: int, name: str, url: str | None = None):  # noqa: ANN201
    return make_card(SigningKey(bytes([n]) * 32), name=name,
                     url=url or f"https://{name.lower().replace(' ', '')}.example/",
                     box_pk=bytes(PrivateKey(bytes([n + 100]) * 32).public_key),
                     tls_pin=None, created=NOW - dt.timedelta(days=1))


ADA, BOB, CAROL = card(1, "Ada"), card(2, "Bob Smith"), card(3, "Carol")


@pytest.fixture
def owner(tmp_path):
    """Ada's site folder: a book of invitations and a friend store."""
    root = tmp_path / "ada"
    root.mkdir()
    return inv.InvitationBook(root), FriendStore(root, own_sign_pk=ADA.sign_pk)


def make(book: inv.InvitationBook, n: int = 0, name: str | None = "bob", **kw) -> bytes:  # noqa: ANN003
    """An invitation in `book`; returns its secret."""
    secret = bytes([n]) * 32
    book.create(ADA, secret=secret, name=name, now=kw.get("now", NOW),
                expires=kw.get("expires", NOW + WEEK))
    return secret


def answer(secret: bytes, who=BOB) -> bytes:  # noqa: ANN001
    return invite.seal_acceptance(secret, who, nonce=os.urandom(24))


def state(root) -> dict[str, bytes]:  # noqa: ANN001
    """Every file under keys/ and .o2m/invites.json, to show nothing changed."""
    files = {}
    for folder in ("keys", ".o2m"):
        for p in sorted((root / folder).rglob("*")) if (root / folder).exists() else []:
            if p.is_file() and p.name != "invites.lock":
                files[str(p.relative_to(root))] = p.read_bytes()
    return files


def test_an_invitation_is_kept_in_a_private_file(owner):
    """invites.json is 0600 in a 0700 .o2m/, canonical JSON holding the id, the secret,
    the name, the times; nothing is published."""
    book, _ = owner
    secret = make(book)
    path = book.root / ".o2m/invites.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((book.root / ".o2m").stat().st_mode) == 0o700
    doc = parse_json(path.read_bytes().rstrip(b"\n"), max_bytes=1 << 20)
    assert doc == {"invites": [{"created": "2026-11-24T12:00:00Z",
                                "expires": "2026-12-01T12:00:00Z",
                                "id": b64u_encode(invite.invite_id(secret)), "name": "bob",
                                "secret": b64u_encode(secret)}], "v": 1}
    [record] = book.list()
    assert record.status(NOW) == "pending" and record.status(NOW + WEEK) == "expired"
    assert not (book.root / "build").exists()


def test_a_valid_acceptance_adds_the_friend_and_uses_the_invitation(owner):
    """The invitation's name is used; the invitation is marked used, with whom."""
    book, store = owner
    secret = make(book)
    accepted = book.accept(answer(secret), store, now=NOW + dt.timedelta(hours=1))
    assert accepted.friend.name == "bob" and not accepted.already
    assert store.get("bob").card == BOB
    [record] = book.list()
    assert (record.used, record.friend) == ("2026-11-24T13:00:00Z", "bob")
    assert record.status(NOW) == "used"


def test_a_replayed_acceptance_is_refused_and_changes_nothing(owner):
    """The same acceptance again (or another for the used invitation): one line, and
    the files stay byte for byte."""
    book, store = owner
    secret = make(book)
    first = answer(secret)
    book.accept(first, store, now=NOW)
    before = state(book.root)
    for again in (first, answer(secret), answer(secret, CAROL)):
        with pytest.raises(inv.UsedInvitationError) as raised:
            book.accept(again, store, now=NOW)
        assert "used already: it made bob a friend" in str(raised.value)
    assert state(book.root) == before
    assert [f.name for f in store.list()] == ["bob"]


def test_an_expired_invitation_takes_no_answer(owner):
    """From the stored expiry on (the owner's clock), refused; nothing stored."""
    book, store = owner
    secret = make(book, expires=NOW + dt.timedelta(hours=1))
    before = state(book.root)
    with pytest.raises(invite.ExpiredInvitationError):
        book.accept(answer(secret), store, now=NOW + dt.timedelta(hours=1))
    assert state(book.root) == before and store.list() == []


def test_an_unknown_or_revoked_invitation_takes_no_answer(owner):
    """An acceptance for an invitation never made here, or revoked: refused."""
    book, store = owner
    with pytest.raises(inv.UnknownInvitationError):
        book.accept(answer(bytes(32)), store, now=NOW)
    secret = make(book, 5)
    book.revoke(b64u_encode(invite.invite_id(secret))[:6])
    assert book.list() == []
    with pytest.raises(inv.UnknownInvitationError):
        book.accept(answer(secret), store, now=NOW)
    assert store.list() == []


def test_a_forged_acceptance_is_refused_and_changes_nothing(owner):
    """The invite_id is public (it travels in clear); an acceptance sealed with any
    other key does not open. The invitation stays pending."""
    book, store = owner
    secret = make(book)
    ident = invite.invite_id(secret)
    body = canonical_json({"card": parse_json(CAROL.raw, max_bytes=4096),
                           "invite_id": b64u_encode(ident), "type": "o2m-accept", "v": 1})
    forged = b"O2MACPT1" + ident + bytes(nacl.secret.SecretBox(os.urandom(32)).encrypt(pad(body)))
    before = state(book.root)
    with pytest.raises(invite.BadAcceptanceError):
        book.accept(forged, store, now=NOW)
    with pytest.raises(invite.MalformedInvitationError):
        book.accept(b"O2MACPT1" + ident, store, now=NOW)
    assert state(book.root) == before
    assert book.list()[0].status(NOW) == "pending"


def test_a_taken_name_falls_back_to_one_made_from_the_card(owner):
    """The invitation's name is another friend's now: the invitee gets a name made from
    their card's name instead; with no name at all, likewise."""
    book, store = owner
    store.add("bob", CAROL, now=NOW)
    accepted = book.accept(answer(make(book, 1)), store, now=NOW)
    assert accepted.friend.name == "bob-smith"
    other = card(4, "Bob Smith", url="https://other.example/")
    assert book.accept(answer(make(book, 2, name=None), other), store,
                       now=NOW).friend.name == "bob-smith-2"


def test_a_friend_already_known_keeps_their_name(owner):
    """An acceptance from someone already a friend (same keys) adds nobody, uses the
    invitation, and says so."""
    book, store = owner
    store.add("bobby", BOB, now=NOW)
    accepted = book.accept(answer(make(book)), store, now=NOW)
    assert accepted.already and accepted.friend.name == "bobby"
    assert [f.name for f in store.list()] == ["bobby"]
    assert book.list()[0].used is not None


def test_a_card_the_friend_rules_refuse_leaves_the_invitation_unused(owner):
    """The owner's own card (an invitation answered by oneself): refused as `o2m friend
    add` refuses it; the invitation stays pending and no friend is added."""
    book, store = owner
    secret = make(book)
    with pytest.raises(OwnCardError):
        book.accept(answer(secret, ADA), store, now=NOW)
    assert book.list()[0].used is None and store.list() == []


def test_concurrent_acceptances_make_one_friend(owner):
    """Eight threads deliver the same acceptance at once (workers of `o2m serve`, and
    `o2m friend accept` by hand): the lock lets exactly one through."""
    book, store = owner
    data = answer(make(book))
    results: list[str] = []

    def deliver() -> None:
        try:
            inv.InvitationBook(book.root).accept(data, FriendStore(book.root), now=NOW)
            results.append("ok")
        except inv.UsedInvitationError:
            results.append("used")
    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["used"] * 7


def test_revoke_needs_one_unused_invitation(owner):
    """--revoke takes an id prefix: none or several match -> one line; a used one is
    refused (remove the friend instead)."""
    book, store = owner
    make(book, 1)
    make(book, 2)
    with pytest.raises(inv.UnknownInvitationError, match="no invitation"):
        book.revoke("zzzz")
    twins = [inv.PendingInvitation(id=p + "A" * 20, secret=bytes(32), name=None,
                                   created="2026-11-24T12:00:00Z", expires="2026-12-01T12:00:00Z")
             for p in ("ab", "ac")]
    with pytest.raises(inv.UnknownInvitationError, match="2 invitations"):
        inv.find_record(twins, "a")
    assert inv.find_record(twins, "ab") is twins[0]
    secret = make(book, 3, name="carol")
    book.accept(answer(secret, CAROL), store, now=NOW)
    with pytest.raises(inv.UsedInvitationError, match="made carol a friend") as raised:
        book.revoke(b64u_encode(invite.invite_id(secret)))
    assert "o2m friend remove carol" in raised.value.hint


def test_expiry_range_and_the_pending_cap(owner, monkeypatch):
    """An invitation expires after now and within a year; past MAX_PENDING pending ones,
    a new one is refused until some are revoked (or used, or expire)."""
    book, _ = owner
    for expires in (NOW, NOW + dt.timedelta(days=366)):
        with pytest.raises(invite.InvitationError, match="between now and a year"):
            make(book, expires=expires)
    monkeypatch.setattr(inv, "MAX_PENDING", 2)
    make(book, 1)
    make(book, 2)
    with pytest.raises(invite.InvitationError, match="2 invitations are pending"):
        make(book, 3)
    assert make(book, 3, now=NOW + WEEK, expires=NOW + 2 * WEEK)  # the others expired


def test_old_records_are_pruned(owner):
    """Records expired more than 30 days ago go at the next write; newer ones stay (a
    replay of a used invitation is then still known as one)."""
    book, _ = owner
    make(book, 1)
    make(book, 2, now=NOW + dt.timedelta(days=38), expires=NOW + dt.timedelta(days=40))
    assert [r.id for r in book.list()] == [b64u_encode(invite.invite_id(bytes([2]) * 32))]
    kept = inv.prune(book.list(), NOW + dt.timedelta(days=69))
    assert len(kept) == 1 and inv.prune(kept, NOW + dt.timedelta(days=70)) == []


@pytest.mark.parametrize("data, message", [
    (b"{", "not a valid invitations file"),
    (b'{"invites":[],"v":2}', "expected"),
    (b'{"invites":[],"v":true}', "expected"),
    (b'{"invites":[{"id":"x"}],"v":1}', "a record has other fields"),
    (b'{"invites":[{"created":"2026-11-24T12:00:00Z","expires":"2026-12-01T12:00:00Z",'
     b'"id":"AAAAAAAAAAAAAAAAAAAAAA","secret":"AAAA"}],"v":1}', "expected 32 bytes"),
    (b'{"invites":[{"created":"2026-11-24T12:00:00Z","expires":"soon",'
     b'"id":"AAAAAAAAAAAAAAAAAAAAAA","secret":"' + b64u_encode(bytes(32)).encode()
     + b'"}],"v":1}', "not a time"),
])
def test_a_damaged_file_is_one_clear_error(owner, data, message):
    """invites.json damaged: InvitationStoreError naming the file, for every command
    that reads it."""
    book, store = owner
    (book.root / ".o2m").mkdir()
    (book.root / ".o2m/invites.json").write_bytes(data)
    with pytest.raises(inv.InvitationStoreError) as raised:
        book.list()
    assert message in str(raised.value) and raised.value.where == ".o2m/invites.json"


@pytest.mark.parametrize("display, taken, expected", [
    ("Bob Smith", (), "bob-smith"),
    ("Zoë O'Brien", (), "zoe-o-brien"),
    ("  --Ada--  ", (), "ada"),
    ("李小龍", (), "friend"),
    ("Bob", ("bob",), "bob-2"),
    ("Bob", ("bob", "bob-2"), "bob-3"),
    ("Friends", (), "friends-2"),
    ("Public", (), "public-2"),
    ("x" * 64, (), "x" * 56),
])
def test_friend_name_for(display, taken, expected):
    """A friend name from a display name: Latin letters folded to ASCII, runs of other
    characters as one "-", never a reserved audience or a taken name."""
    got = inv.friend_name_for(display, taken)
    assert expected == got
    assert valid_name(got)

