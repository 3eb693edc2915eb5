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

from o2m_pub.config import SiteConfig, known_audience_names
from o2m_pub.errors import Problem
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


def check_audience(record: PostRecord, known: frozenset[str] | set[str]) -> Problem | None:
    """Every audience name must be public, friends, a group or a friend; a name close
    to one of them is told which (`audience: familly`: did you mean 'family'?)."""
    for name in record.audience:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            guess = f" (did you mean {near[0]!r}?)" if near else ""
            return Problem(record.source, record.lines.get("audience", 1),
                           f"unknown audience {name!r}{guess}",
                           hint="use public, friends, a group (`o2m group list`) or a "
                           "friend's name (`o2m friend list`)")
    return None
