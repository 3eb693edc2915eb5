"""Who may read a post, as a build sees it: the friends and groups read from keys/
(no key unlocked), and the check that every audience name of a post means someone.

Nothing here loads the crypto for a site without friends: `load_friends` imports the
friend store only when keys/friends/ exists.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from o2m_pub.config import CONFIG_NAME, SiteConfig, known_audience_names
from o2m_pub.errors import ConfigError, Problem
from o2m_pub.site.model import PostRecord

if TYPE_CHECKING:
    from o2m_pub.friends.private_feeds import Reader


@dataclass
class Friends:
    """The friends and groups a build needs."""

    own_sign_pk: bytes = b""  # empty without friends: a feed needs it, nothing else does
    readers: list[Reader] = field(default_factory=list)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    id_key: bytes = b""  # what post ids are made from: the site's first key (§3.4)

    @property
    def audience_names(self) -> frozenset[str]:
        return known_audience_names([r.name for r in self.readers], self.groups)


def load_friends(root: Path, config: SiteConfig) -> Friends:
    """Friends from keys/friends/ (none before the first `o2m friend add`)."""
    if not (root / "keys" / "friends").is_dir():
        return Friends(groups=dict(config.groups))
    from o2m_pub.friends.friend_store import (
        FriendStore,  # the crypto: with friends only
    )
    from o2m_pub.friends.identity import item_id_key, own_sign_pk
    from o2m_pub.friends.private_feeds import Reader
    store = FriendStore(root, config_groups=config.groups)
    readers = [Reader(f.name, f.card.sign_pk, f.card.box_pk) for f in store.list()]
    own = own_sign_pk(root) if readers else b""  # (a feed needs our key; no friend, none)
    return Friends(own, readers, store.groups(), (item_id_key(root) or own) if readers else b"")


def _unknown_name(names: tuple[str, ...], known: frozenset[str] | set[str]
                  ) -> tuple[str, str] | None:
    """The first of `names` that means no one, and a guess at the one meant."""
    for name in names:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            return name, f" (did you mean {near[0]!r}?)" if near else ""
    return None


_AUDIENCE_HINT = ("use public, friends, a group (`o2m group list`) or a friend's name "
                  "(`o2m friend list`)")


def check_default_audience(config: SiteConfig, known: frozenset[str] | set[str]) -> None:
    """o2m.toml's default_audience must mean someone, as a post's `audience:` must; the
    friends and groups of keys/ count, which o2m.toml's own check cannot see.

    Raises:
        ConfigError: at default_audience's line, once (not at every post without an
            `audience:`).
    """
    unknown = _unknown_name(config.default_audience, known)
    if unknown is not None:
        raise ConfigError(f"site.default_audience names {unknown[0]!r}, which is no "
                          f"group or friend{unknown[1]}", path=CONFIG_NAME,
                          line=config.lines.get("default_audience"), hint=_AUDIENCE_HINT)


def check_audience(record: PostRecord, known: frozenset[str] | set[str]) -> Problem | None:
    """Every audience name must be public, friends, a group or a friend; a name close
    to one of them is told which (`audience: familly`: did you mean 'family'?)."""
    unknown = _unknown_name(record.audience, known)
    if unknown is None:
        return None
    return Problem(record.source, record.lines.get("audience", 1),
                   f"unknown audience {unknown[0]!r}{unknown[1]}", hint=_AUDIENCE_HINT)
