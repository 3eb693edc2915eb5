"""`o2m key rotate`: move the site to its pre-committed next key (PROTOCOL.md §2.5).

The current card commits to the digest of the next signing key, kept sealed in
`keys/next.secret`. A rotation unlocks both, checks that the next key is the one
committed to (refused otherwise: the command never publishes what readers refuse),
makes a fresh box key and a fresh key after the next one, signs the statement with the
old and the new key, and re-makes the card (a higher `seq`, the new keys, the new
commitment, a fresh public-feed key). Every file of keys/ it changes is replaced as one
(`identity.replace_key_files`): a crash leaves the old keys or the new ones.

The statements are kept in `keys/rotations.json` (the newest MAX_CHAIN, oldest first),
which the build publishes at `build/.well-known/o2m-rotations.json`; the build then
re-derives every friend's feed for the new keys and deletes the old heads.

    RotationRefusedError (O2MError)   the site's keys cannot rotate (now)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import nacl.public
import nacl.signing

from o2m_pub.config import CARD_FILE, SiteConfig
from o2m_pub.errors import O2MError
from o2m_pub.friends.identity import (
    CARD_STATE_FILE,
    FEED_KEY_FILE,
    KEY_FILE,
    NEXT_KEY_FILE,
    PUBLIC_FILE,
    CardState,
    Identity,
    identity_kdf,
    seal_key,
    card_state_json,
    feed_key_json,
    item_id_key,
    load_identity,
    load_next_key,
    new_identity,
    next_card_seq,
    own_card,
    read_card_state,
    replace_key_files,
)
from o2m_pub.protocol.cards import Card, key_commitment, make_card
from o2m_pub.protocol.keyfile import public_json
from o2m_pub.protocol.rotation import (
    MAX_CHAIN,
    RotationError,
    make_rotation,
    parse_rotations_file,
    rotations_file,
    verify_rotation,
)

ROTATIONS_FILE = "keys/rotations.json"


class RotationRefusedError(O2MError):
    """Your keys cannot rotate."""

    hint = "nothing was changed"


@dataclass(frozen=True)
class RotationDone:
    """What `rotate_keys` did."""

    old: Card
    new: Card
    statement: bytes
    reason: str


def stored_rotations(root: Path) -> list[bytes]:
    """The statements kept in keys/rotations.json, oldest first ([] when none).

    Raises:
        RotationRefusedError: the file is damaged.
    """
    try:
        data = (root / ROTATIONS_FILE).read_bytes()
    except FileNotFoundError:
        return []
    try:
        return parse_rotations_file(data)
    except RotationError as e:
        raise RotationRefusedError(f"{ROTATIONS_FILE} is damaged: {e}",
                                   hint="restore keys/ from your backup") from None


def rotate_keys(root: Path, config: SiteConfig, passphrase: bytes, *, now: dt.datetime,
                reason: str = "routine", tls_pin: bytes | None = None,
                next_passphrase: bytes | None = None) -> RotationDone:
    """Move to the next key (§2.5), in keys/; `o2m build` then publishes it.

    Args:
        passphrase: unlocks keys/identity.secret, and seals the new key files.
        reason: "routine", or "compromised" when the current key was stolen.
        tls_pin: the pin the new card carries (None: none).
        next_passphrase: unlocks keys/next.secret when it was sealed under another
            passphrase (default: `passphrase`).

    Returns:
        The old and new cards and the statement.

    Raises:
        RotationRefusedError: no card, a card that commits to no next key, or a
            next key that is not the one committed to; nothing was changed.
        WrongPassphraseError, KeyFileError: a key file cannot be opened.
    """
    identity = load_identity(root, passphrase)
    current = own_card(root)
    if current is None or current.sign_pk != identity.sign_pk:
        raise RotationRefusedError("keys/card.json is not the card of your key",
                                   hint="run `o2m card --renew` first")
    if current.next is None:
        raise RotationRefusedError(
            "your card commits to no next key yet, so friends could not follow a rotation",
            hint="run `o2m card --renew`, publish the new card, let friends fetch it, "
                 "then rotate")
    nxt = load_next_key(root, next_passphrase or passphrase)
    if key_commitment(nxt.sign_pk) != current.next:
        raise RotationRefusedError(
            f"{NEXT_KEY_FILE} is not the key your card commits to; friends would refuse "
            "this rotation", hint="restore keys/next.secret from the backup made with "
                                  "your current card")
    new = Identity(nxt.signing_key, nacl.public.PrivateKey.generate())
    after = new_identity()  # the key the new card commits to
    feed_key = nacl.signing.SigningKey.generate()
    statement = make_rotation(identity.signing_key, new.signing_key, new_box_pk=new.box_pk,
                              new_next_sign_pk=after.sign_pk, created=now, reason=reason)
    card = make_card(new.signing_key, name=config.author, url=config.url, box_pk=new.box_pk,
                     tls_pin=tls_pin, created=now, seq=next_card_seq(root, current, now),
                     next_digest=key_commitment(after.sign_pk),
                     feed_pk=bytes(feed_key.verify_key), avatar=current.avatar,
                     bio=current.bio)
    # keep only statements of this identity's chain: a rotation started by an earlier,
    # interrupted run from the same key is replaced
    kept = [s for s in stored_rotations(root) if not _from_key(s, identity.sign_pk)]
    chain = (kept + [statement])[-MAX_CHAIN:]
    try:  # what readers will check, checked before anything is written (§2.5)
        verify_rotation(current, [statement], card)
    except RotationError as e:
        raise RotationRefusedError(f"the rotation would not verify: {e}") from None
    kdf = identity_kdf(root)
    origin = read_card_state(root).origin_sign_pk or item_id_key(root) or identity.sign_pk
    replace_key_files(root, {
        KEY_FILE: (seal_key(new, passphrase, **kdf), 0o600),
        PUBLIC_FILE: (public_json(new) + b"\n", 0o644),
        NEXT_KEY_FILE: (seal_key(after, passphrase, **kdf), 0o600),
        FEED_KEY_FILE: (feed_key_json(feed_key), 0o600),
        ROTATIONS_FILE: (rotations_file(chain), 0o644),
        CARD_STATE_FILE: (card_state_json(CardState(card.seq, origin)), 0o600),
        CARD_FILE: (card.raw, 0o644),
    })
    return RotationDone(current, card, statement, reason)


def _from_key(statement: bytes, sign_pk: bytes) -> bool:
    from o2m_pub.protocol.rotation import parse_rotation
    try:
        return parse_rotation(statement).old_sign_pk == sign_pk
    except RotationError:
        return True  # a damaged statement is dropped too
