"""The owner's identity and own card on disk (the shell around keys.py and cards.py).

`keys/card.json` is the owner's signed card: public, copied by the build to
`build/.well-known/o2m-card.json` (PROTOCOL.md §2.4) and shared with friends.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from o2m_pub.protocol.cards import Card, make_card, parse_card
from o2m_pub.config import CARD_FILE, SiteConfig
from o2m_pub.friends.identity import Identity, _write_atomic, create_identity_files



def write_own_card(root: Path, identity: Identity, config: SiteConfig, *, now: dt.datetime,
                   tls_pin: bytes | None = None) -> Card:
    """Sign a card for the site's name, URL and keys, and keep it in keys/card.json."""
    card = make_card(identity.signing_key, name=config.author, url=config.url,
                     box_pk=identity.box_pk, tls_pin=tls_pin, created=now)
    _write_atomic(root / CARD_FILE, card.raw, 0o644)
    return card


def create_owner(root: Path, config: SiteConfig, passphrase: bytes, *,
                 now: dt.datetime, **kdf: int) -> tuple[Identity, Card]:
    """A new identity, sealed under `passphrase`, and its first card (`o2m init`)."""
    identity = create_identity_files(root, passphrase, **kdf)
    return identity, write_own_card(root, identity, config, now=now)


def own_card(root: Path) -> Card | None:
    """The owner's card, or None before there is one."""
    try:
        data = (root / CARD_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return parse_card(data)


def own_sign_pk(root: Path) -> bytes:
    """The site's signing key, from its public half (no passphrase needed).

    Raises:
        KeyFileError: the public half is missing or damaged.
    """
    from o2m_pub.protocol.canonical import EncodingError, b64u_decode, parse_json
    from o2m_pub.friends.identity import PUBLIC_FILE, KeyFileError
    try:
        doc = parse_json((root / PUBLIC_FILE).read_bytes().rstrip(b"\n"), max_bytes=4096)
        return b64u_decode(doc["sign_pk"], length=32)
    except FileNotFoundError:
        raise KeyFileError("this site has friends but no identity", path=PUBLIC_FILE,
                           hint="restore keys/ from a backup (`o2m key import FILE`)") from None
    except (OSError, EncodingError, KeyError, TypeError):
        raise KeyFileError("the public half of your identity is damaged", path=PUBLIC_FILE,
                           hint="`o2m key export` and `o2m key import --replace` rewrite it") from None
