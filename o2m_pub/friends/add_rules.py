"""Adding a card to the friends (THREATS.md 6, PROTOCOL.md §2.4): the pure rule
`decide_add`, which `FriendStore.add` asks before it writes anything."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from o2m_pub.friends.friend_store import (
    DuplicateFriendNameError,
    Friend,
    InvalidFriendNameError,
    KeyChangeError,
    OwnCardError,
    SameKeyOtherNameError,
    SameOriginOtherPinError,
    _check_friend_name,
    _origin,
    _stamp,
)
from o2m_pub.protocol.cards import Card, key_changed, parse_card, same_identity
from o2m_pub.protocol.keyfile import fingerprint

@dataclass(frozen=True)
class AddDecision:
    """What adding a card comes to, when it is not refused."""

    friend: Friend  # the friend as they are to be stored
    changed: bool  # False: the same card, or an older one; nothing is to be written


def decide_add(friends: Sequence[Friend], groups: Collection[str],
               own_sign_pk: bytes | None, name: str, card: Card, *,
               accept_key_change: bool, now: datetime) -> AddDecision:
    """Whether and how `card` joins the friends as `name` (THREATS.md 6, PROTOCOL.md
    §2.4); `FriendStore.add` reads the store, asks this, and writes what it says.

    Args:
        friends: every stored friend.
        groups: the names of every group; consulted only when `name` is new.
        own_sign_pk: the owner's Ed25519 key, or None when unknown.
        name: the local name, used in ``audience:``.
        card: a verified card (its `raw` bytes are verified again, and that is stored).
        accept_key_change: the owner has checked the new fingerprint with the friend.
        now: when it is added (an aware datetime): a new friend's `added`.

    Returns:
        The friend to store, and whether that changes anything.

    Raises:
        The refusals listed under `FriendStore.add` (not FriendStoreError); ValueError
        for a naive `now`.
    """
    _check_friend_name(name)
    stamp = _stamp(now)
    card = parse_card(card.raw)  # what we store is exactly what was verified
    if own_sign_pk is not None and card.sign_pk == own_sign_pk:
        raise OwnCardError("this is your own card")
    for other in friends:
        if other.name != name:
            _refuse_conflict(other, name, card)
    existing = next((f for f in friends if f.name == name), None)
    if existing is None:
        if name in groups:
            raise InvalidFriendNameError(
                f"{name!r} is the name of a group; an audience name must mean one thing",
                hint="choose another name for this friend")
        return AddDecision(Friend(name=name, card=card, added=stamp), changed=True)
    return _card_for(existing, card, accept_key_change=accept_key_change)


def _refuse_conflict(other: Friend, name: str, card: Card) -> None:
    """Refuse `card` as `name` if it clashes with the friend `other`, stored under
    another name: their keys (now or before), their site, or their host's TLS key."""
    if other.card.sign_pk == card.sign_pk or other.card.box_pk == card.box_pk:
        raise SameKeyOtherNameError(other.name, name)
    old_signs = {s for s, _ in other.previous_keys}
    old_boxes = {b for _, b in other.previous_keys}
    if card.sign_pk in old_signs or card.box_pk in old_boxes:
        raise SameKeyOtherNameError(other.name, name, previous=True)
    if other.card.url == card.url:
        # THREATS.md 6: new keys for a friend's site are a key change even under
        # a new name; it can only be accepted under the friend's own name.
        raise KeyChangeError(other.name, other.fingerprint,
                             fingerprint(card.sign_pk, card.box_pk), site=card.url)
    if (card.tls_pin is not None and other.card.tls_pin is not None
            and card.tls_pin != other.card.tls_pin
            and _origin(card.url) == _origin(other.card.url)):
        # A pin says which key the host serves; two pins for one host contradict
        # each other (e.g. Mallory claiming a path on Alice's host to pin it).
        raise SameOriginOtherPinError(other.name, other.card.url, card.url)


def _card_for(existing: Friend, card: Card, *, accept_key_change: bool) -> AddDecision:
    """A card for a friend we have under that name: a newer card of the same keys, a
    key change (only when accepted), or someone else's card."""
    name = existing.name
    if same_identity(existing.card, card):
        old = existing.card
        if card.seq < old.seq or (card.seq == old.seq and card.created_at <= old.created_at):
            return AddDecision(existing, changed=False)  # the same card, or an older one
        return AddDecision(Friend(name=name, card=card, added=existing.added,
                                  previous_keys=existing.previous_keys,
                                  rotations=existing.rotations), changed=True)
    if not key_changed(existing.card, card):
        raise DuplicateFriendNameError(name)
    if not accept_key_change:
        raise KeyChangeError(name, existing.fingerprint, fingerprint(card.sign_pk, card.box_pk))
    old = (existing.card.sign_pk, existing.card.box_pk)
    kept = tuple(k for k in existing.previous_keys
                 if k != old and k != (card.sign_pk, card.box_pk))
    return AddDecision(Friend(name=name, card=card, added=existing.added,
                              previous_keys=(*kept, old)), changed=True)
