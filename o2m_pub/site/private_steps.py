"""The build's steps for friends' feeds (PROTOCOL.md §3): reading friends from keys/,
choosing each private post's readers, sealing posts from content/, checking the heads
already published, and recording what was published. `_Build` in build.py runs these
steps in its order of work; the planning itself is pure, in private.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from o2m_pub.config import SiteConfig, known_audience_names
from o2m_pub.errors import SiteError
from o2m_pub.site.manifest import FileState, OutputState
from o2m_pub.site.model import PostRecord
from o2m_pub.site.plan import sha256_hex as _sha
from o2m_pub.site.plan import sig_of

if TYPE_CHECKING:
    from o2m_pub.friends.private_feeds import FeedPlan, PostVersion
    from o2m_pub.protocol.feeds import FeedSecrets
    from o2m_pub.protocol.keyfile import Identity


class _NoFeeds:
    """The feed plan of a site without friends."""

    files: list[tuple[str, bytes]] = []
    states: dict = {}
    objects: dict = {}
    changed: set = set()
    max_seq = 0


_NO_FEEDS = _NoFeeds()


@lru_cache(maxsize=1 << 16)
def _item_id(author_sign_pk: bytes, source: str) -> str:
    """private.item_id, remembered: a watch session asks for every post on every build."""
    from o2m_pub.friends.private_feeds import item_id
    return item_id(author_sign_pk, source)


def nacl_random(n: int) -> bytes:
    import nacl.utils
    return nacl.utils.random(n)


@dataclass
class _Friends:
    """The friends and groups a build needs, read from keys/ without unlocking anything."""

    own_sign_pk: bytes = b""
    readers: list = field(default_factory=list)  # private.Reader
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def audience_names(self) -> frozenset[str]:
        return known_audience_names([r.name for r in self.readers], self.groups)

    def readers_of(self, audience: tuple[str, ...]) -> frozenset[str]:
        """Who may read a post (check_audience has vouched for every name)."""
        from o2m_pub.friends.friend_store import resolve_audience
        _, names = resolve_audience(audience, [r.name for r in self.readers], self.groups)
        return names


def _load_friends(root: Path, config: SiteConfig) -> _Friends:
    """Friends from keys/friends/ (none before the first `o2m friend add`)."""
    if not (root / "keys" / "friends").is_dir():
        return _Friends(groups=dict(config.groups))
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import own_sign_pk
    from o2m_pub.friends.private_feeds import Reader
    store = FriendStore(root, config_groups=config.groups)
    readers = [Reader(f.name, f.card.sign_pk, f.card.box_pk) for f in store.list()]
    own = own_sign_pk(root) if readers else b""  # (a feed needs our key; no friend, none)
    return _Friends(own, readers, store.groups())


class PrivateFeedSteps:
    """Mixed into build._Build: the steps that concern friends' feeds. They use the
    build's state (friends, readable posts, outputs, manifest) and its writer."""

    def plan_private_feeds(self) -> "FeedPlan":
        old_feeds = {} if self.drafts else self.snapshot.feeds()
        if self.drafts or (not self.friends.readers and not old_feeds):
            self.old_feeds, self.old_sealed = {}, {}
            return _NO_FEEDS  # nothing private: not even the crypto is imported
        from o2m_pub.friends.private_feeds import (
            FeedIndex,
            plan_feeds,
            referenced_objects,
            retire_objects,
        )
        from o2m_pub.protocol.keyfile import PassphraseError
        self.old_feeds = old_feeds  # parsed once per Builder session (build._Snapshot)
        self.old_sealed = self.snapshot.sealed()
        self.old_index_json = self.manifest.get("feed_index")
        self.feed_index = FeedIndex.from_json(self.old_index_json)
        try:
            plan = plan_feeds(author_sign_pk=self.friends.own_sign_pk,
                              readers=self.friends.readers,
                              versions=self.private_versions() if self.friends.readers else [],
                              previous=self.old_feeds, index=self.feed_index,
                              objects=self.old_sealed, now=self.now, random=nacl_random,
                              unlock=self.unlock_identity, published_seq=self.published_seq,
                              seq_floor=int(self.manifest.get("seq_floor") or 0),
                              write=lambda path, data: self.put(path, _sha(data), data))
        except PassphraseError as e:
            # The public site still builds; friends keep the feeds they had (their
            # heads stay valid until they expire), and the build reports the error.
            self.report.feed_error = e
            for path in self.old_outputs:
                if path.startswith(("f/", "p/", "o/")):
                    self.keep(path)
            return _NO_FEEDS
        self.feed_index = plan.index
        live = referenced_objects(self.feed_index, plan.objects)
        plan.objects = retire_objects(plan.objects, live, self.now)
        kept = {p for o in plan.objects.values() for p in o["paths"]}
        for path in [*plan.keep, *(p for p in kept if p not in self.new_outputs)]:
            self.adopt(path)
        self.report.heads = plan.heads_written
        return plan

    def private_versions(self) -> list["PostVersion"]:
        """Every private post version, with the friends who may read it."""
        from o2m_pub.friends.private_feeds import PostVersion
        versions = []
        readers_of: dict[tuple[str, ...], frozenset[str]] = {}
        for record in self.readable:
            if record.is_public:  # public posts are in feed.json for everyone (§3.4)
                continue
            if record.audience not in readers_of:
                readers_of[record.audience] = self.friends.readers_of(record.audience)
            media = self.private_media(record) if record.media else {}
            digest = sig_of(record.digest, *(f"{s}:{st.sha}" for s, (st, _) in media.items()))
            versions.append(PostVersion(record, digest,
                                        lambda r=record, m=media: self.seal(r, m),
                                        readers=readers_of[record.audience],
                                        id=_item_id(self.friends.own_sign_pk, record.source)))
        return versions

    def private_media(self, record: PostRecord) -> dict[str, tuple[FileState, Path]]:
        """The files a private post refers to (inside content/ only, THREATS.md 38)."""
        return {ref: (self.files.state(ref, self.root / ref), self.root / ref)
                for ref in record.media if self.media_problem(ref) is None}

    def seal(self, record: PostRecord, media: dict[str, tuple[FileState, Path]]):  # noqa: ANN201
        from o2m_pub.friends.private_feeds import seal_post
        from o2m_pub.site.content import split_front_matter
        text = (self.root / record.source).read_bytes().decode("utf-8-sig")
        _, body, _ = split_front_matter(text, record.source)
        return seal_post(record, body, {s: p.read_bytes() for s, (_, p) in media.items()},
                         random=nacl_random)

    def unlock_identity(self) -> "Identity":
        identity = self.unlock(self.friends.own_sign_pk)
        if identity.sign_pk != self.friends.own_sign_pk:
            raise SiteError("the unlocked key is not this site's identity",
                            hint="keys/identity.pub.json and identity.secret disagree")
        return identity

    def published_seq(self, secrets: "FeedSecrets", reader_sign_pk: bytes) -> int | None:
        """The seq of the head now in build/ at that feed's path (our own, so we can
        open it); None when there is none, it cannot be read, or it is the very head
        the manifest recorded (then the state's seq is the published one)."""
        from o2m_pub.protocol.feeds import FeedAuthError, FeedFormatError, open_head
        try:
            data = (self.out_dir / secrets.head_path).read_bytes()
            recorded = self.old_outputs.get(secrets.head_path)
            if recorded is not None and recorded.sha == _sha(data):
                return None
            return open_head(data, secrets, author_sign_pk=self.friends.own_sign_pk,
                             reader_sign_pk=reader_sign_pk).seq
        except (OSError, FeedAuthError, FeedFormatError):
            return None

    def adopt(self, path: str) -> None:
        """Keep an output the feeds still need (recording it if the manifest lost it)."""
        if path in self.old_outputs:
            self.keep(path)
        elif (self.out_dir / path).is_file():
            data = (self.out_dir / path).read_bytes()
            self.new_outputs[path] = OutputState(_sha(data), _sha(data), len(data))

    def private_state_changes(self, feeds: "FeedPlan") -> tuple[dict, dict, str | None]:
        """What to record of the feeds: changed reader states, sealed objects, and the
        shared item index (None when unchanged)."""
        if self.drafts or feeds is _NO_FEEDS:
            return {}, {}, None
        feed_changes: dict[str, str | None] = {k: None for k in self.old_feeds
                                               if k not in feeds.states}
        feed_changes.update({k: feeds.states[k].to_json() for k in feeds.changed})
        index_json = self.feed_index.to_json()
        sealed_changes: dict[str, str | None] = {k: None for k in self.old_sealed
                                                 if k not in feeds.objects}
        sealed_changes.update({k: json.dumps(v) for k, v in feeds.objects.items()
                               if self.old_sealed.get(k) != v})
        return (feed_changes, sealed_changes,
                index_json if index_json != self.old_index_json else None)

