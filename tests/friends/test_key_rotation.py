"""The owner's cards and keys of protocol 1.1 on disk: the next key, the public-feed
key, the card's sequence high-water mark (PROTOCOL.md §2.4), and `o2m key rotate`
(§2.5): what it writes, what it refuses, and a crash in the middle of it.

Every key file is sealed with libsodium's fastest Argon2id limits (support.keys)."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from support.keys import FAST, PW

from o2m_pub.config import CARD_FILE, parse_config
from o2m_pub.friends.identity import (
    CARD_STATE_FILE,
    FEED_KEY_FILE,
    NEXT_KEY_FILE,
    PENDING_FILE,
    create_identity_files,
    create_owner,
    item_id_key,
    load_feed_key,
    load_identity,
    load_next_key,
    next_card_seq,
    own_card,
    read_card_state,
    replace_key_files,
    write_own_card,
)
from o2m_pub.friends.key_rotation import (
    ROTATIONS_FILE,
    RotationRefusedError,
    rotate_keys,
    stored_rotations,
)
from o2m_pub.protocol.cards import key_commitment, make_card
from o2m_pub.protocol.keyfile import PassphraseError, WrongPassphraseError
from o2m_pub.protocol.rotation import MAX_CHAIN, verify_rotation

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
CONFIG = parse_config(b'[site]\nname = "Ada\'s notes"\nauthor = "Ada"\n'
                      b'url = "https://ada.example/"\n')


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted((root / "keys").rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site with an identity, its next key, feed key and first card (as `o2m init`)."""
    root = tmp_path / "site"
    root.mkdir()
    create_owner(root, CONFIG, PW, now=NOW, **FAST)
    return root


def test_init_makes_the_next_key_the_feed_key_and_a_card_committing_to_them(site):
    """keys/next.secret (0600, sealed under the passphrase), keys/feed.key (0600), and a
    card with seq, next = SHA-256 of the next key, and feed_pk."""
    card, nxt, feed = own_card(site), load_next_key(site, PW), load_feed_key(site)
    assert card.next == key_commitment(nxt.sign_pk) and nxt.sign_pk != card.sign_pk
    assert card.feed_pk == bytes(feed.verify_key) and card.seq >= int(NOW.timestamp())
    for rel in (NEXT_KEY_FILE, FEED_KEY_FILE, CARD_STATE_FILE):
        assert 0o600 == stat.S_IMODE((site / rel).stat().st_mode), rel
    assert card.seq == read_card_state(site).seq
    assert card.sign_pk == item_id_key(site)


def test_every_new_card_has_a_higher_seq_and_keeps_its_commitment(site):
    """§2.4: renewing (a new URL, a new pin) gives a higher seq, even at the same second
    and after card.json is replaced by an older copy (the high-water mark is kept
    apart); `next` stays until a rotation, so no passphrase is needed."""
    identity = load_identity(site, PW)
    first = own_card(site)
    second = write_own_card(site, identity, CONFIG, now=NOW, tls_pin=b"\x01" * 32)
    assert second.seq > first.seq and second.next == first.next
    (site / CARD_FILE).write_bytes(first.raw)  # an old copy restored
    third = write_own_card(site, identity, CONFIG, now=NOW)
    assert third.seq > second.seq
    assert next_card_seq(site, third, NOW - dt.timedelta(days=365)) == third.seq + 1


def test_a_card_of_o2m_1_0_is_upgraded_with_one_passphrase(tmp_path):
    """A site made by o2m 1.0: keys/identity.secret and a card without seq, next or
    feed_pk. Renewing it makes keys/next.secret (sealed under the same passphrase, with
    the key file's limits) and keys/feed.key; without the passphrase it refuses and
    writes nothing."""
    root = tmp_path / "old"
    root.mkdir()
    identity = create_identity_files(root, PW, **FAST)
    legacy = make_card(identity.signing_key, name="Ada", url="https://ada.example/",
                       box_pk=identity.box_pk, tls_pin=None, created=NOW)
    (root / CARD_FILE).write_bytes(legacy.raw)
    before = _files(root)
    with pytest.raises(PassphraseError):
        write_own_card(root, identity, CONFIG, now=NOW)
    assert before == _files(root)
    card = write_own_card(root, identity, CONFIG, now=NOW, passphrase=PW)
    assert card.next == key_commitment(load_next_key(root, PW).sign_pk)
    assert card.feed_pk == bytes(load_feed_key(root).verify_key) and card.seq > 0
    assert identity.sign_pk == item_id_key(root)


def test_rotate_moves_to_the_committed_key_and_readers_would_follow(site):
    """`o2m key rotate`: the identity is now the old next key, with a fresh box key; a
    new next key is sealed; the statement, signed by both, passes the chain rule from
    the old card to the new one (§2.5); the seq goes on; the first key stays the one
    post ids are made from."""
    old_card, old_next = own_card(site), load_next_key(site, PW)
    done = rotate_keys(site, CONFIG, PW, now=NOW + dt.timedelta(hours=1))
    new_identity, new_card = load_identity(site, PW), own_card(site)
    assert new_identity.sign_pk == old_next.sign_pk == new_card.sign_pk
    assert new_identity.box_pk not in (old_card.box_pk, old_next.box_pk)
    assert new_card.next == key_commitment(load_next_key(site, PW).sign_pk)
    assert new_card.seq > old_card.seq and new_card.feed_pk != old_card.feed_pk
    assert [r.raw for r in verify_rotation(old_card, stored_rotations(site), new_card)] == \
        [done.statement]
    assert old_card.sign_pk == item_id_key(site)
    assert not (site / PENDING_FILE).exists()
    assert not [p for p in (site / "keys").iterdir() if p.name.startswith(".staged-")]


def test_rotations_chain_and_keep_the_newest_eight(site):
    """Ten rotations in a row: each verifies from the card before it; keys/rotations.json
    keeps the newest MAX_CHAIN, oldest first."""
    for i in range(10):
        before = own_card(site)
        rotate_keys(site, CONFIG, PW, now=NOW + dt.timedelta(hours=i + 1), reason="routine")
        assert verify_rotation(before, stored_rotations(site), own_card(site))
    assert MAX_CHAIN == len(stored_rotations(site))


def test_rotate_refuses_a_next_key_that_is_not_the_committed_one(site):
    """keys/next.secret replaced by another key (a restore from the wrong backup):
    refused before anything is written; readers would refuse it too."""
    from o2m_pub.friends.identity import create_next_key
    create_next_key(site, PW, **FAST)
    before = _files(site)
    with pytest.raises(RotationRefusedError, match="not the key your card commits to"):
        rotate_keys(site, CONFIG, PW, now=NOW)
    assert before == _files(site)


def test_rotate_refuses_a_card_that_commits_to_no_key(tmp_path):
    """A card of o2m 1.0 commits to no next key: friends could not follow; renew first."""
    root = tmp_path / "old"
    root.mkdir()
    identity = create_identity_files(root, PW, **FAST)
    (root / CARD_FILE).write_bytes(make_card(
        identity.signing_key, name="Ada", url="https://ada.example/", box_pk=identity.box_pk,
        tls_pin=None, created=NOW).raw)
    with pytest.raises(RotationRefusedError, match="commits to no next key"):
        rotate_keys(root, CONFIG, PW, now=NOW)


def test_rotate_with_a_wrong_passphrase_changes_nothing(site):
    before = _files(site)
    with pytest.raises(WrongPassphraseError):
        rotate_keys(site, CONFIG, b"wrong", now=NOW)
    assert before == _files(site)


def test_a_rotation_cut_short_after_its_marker_is_finished_when_keys_are_next_read(
        site, monkeypatch):
    """THREATS 48 for a several-file change of keys/: once every new file is staged and
    the marker written, a crash before the renames (here they never run) leaves the
    old files in place; the next read of the identity or the card finishes the
    renames, so the key file, the next key and the card agree."""
    import json

    from o2m_pub.friends import identity as identity_module
    old_card = own_card(site)
    monkeypatch.setattr(identity_module, "finish_pending", lambda root: None)
    rotate_keys(site, CONFIG, PW, now=NOW)
    monkeypatch.undo()
    assert json.loads((site / PENDING_FILE).read_text())
    assert old_card.raw == (site / CARD_FILE).read_bytes()  # not renamed yet
    new_card = own_card(site)  # finishes the renames first
    assert new_card.sign_pk != old_card.sign_pk
    assert new_card.sign_pk == load_identity(site, PW).sign_pk
    assert new_card.next == key_commitment(load_next_key(site, PW).sign_pk)
    assert not (site / PENDING_FILE).exists()


def test_replace_key_files_refuses_paths_outside_keys(site):
    with pytest.raises(ValueError):
        replace_key_files(site, {"build/evil": (b"x", 0o644)})
    with pytest.raises(ValueError):
        replace_key_files(site, {"keys/../o2m.toml": (b"x", 0o644)})
    assert not (site / PENDING_FILE).exists()


def test_the_rotations_file_is_what_the_build_publishes(site):
    """keys/rotations.json is the published form (§2.5): b64u of each statement."""
    rotate_keys(site, CONFIG, PW, now=NOW)
    from o2m_pub.protocol.rotation import parse_rotations_file
    assert 1 == len(parse_rotations_file((site / ROTATIONS_FILE).read_bytes()))
