"""Friends' feeds in a build (PROTOCOL.md §3): choosing each private post's readers,
sealing posts from content/, checking the heads already published, and what to record
of the feeds. The planning itself is pure, in friends/private_feeds.py; `_Build` in
build.py holds a `PrivateFeeds` and calls it in its order of work.

build.py imports this module only for a site with friends or published feeds, so a
public-only build never loads the crypto.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import quote

import nacl.utils

from o2m_pub.errors import O2MError, SiteError
from o2m_pub.friends.conversation_files import (
    OwnReaction,
    extra_digest,
    load_conversations,
    load_reactions,
)
from o2m_pub.friends.friend_store import resolve_audience
from o2m_pub.friends.private_feeds import (
    FeedIndex,
    FeedPlan,
    FeedState,
    PostVersion,
    attachment_names,
    item_id,
    plan_feeds,
    referenced_objects,
    retire_objects,
    seal_post,
)
from o2m_pub.protocol.feeds import (
    FeedAuthError,
    FeedFormatError,
    FeedSecrets,
    ObjectRef,
    open_head,
)
from o2m_pub.protocol.keyfile import Identity, PassphraseError
from o2m_pub.site.audience import Friends
from o2m_pub.site.content import split_front_matter
from o2m_pub.site.manifest import FileState
from o2m_pub.site.model import PostRecord
from o2m_pub.site.outputs import SEALED_PATHS, Outputs
from o2m_pub.site.plan import digest_of, sha256_hex

FEED_PATHS = SEALED_PATHS  # heads, archive pages, objects (§3.2)


@dataclass(frozen=True)
class _ReactionRecord:
    """What the feed planner reads of a reaction (friends.private_feeds.PrivatePost)."""

    date: str  # RFC 3339 UTC
    source: str  # a name no post file has: the planner never reads it
    updated: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    summary: str | None = None
    reply_to: str | None = None
    thread: str | None = None

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.date, self.source)


@lru_cache(maxsize=1 << 16)
def _item_id(author_sign_pk: bytes, source: str) -> str:
    """private_feeds.item_id, remembered: a watch session asks for every post on every
    build."""
    return item_id(author_sign_pk, source)


def nacl_random(n: int) -> bytes:
    return nacl.utils.random(n)


class PrivateFeeds:
    """The friends' feeds of one build: planned once (`plan`), then recorded
    (`state_changes`).

    Args:
        root: the site; private posts are sealed from their files in content/.
        friends: who reads, with their keys, and the owner's signing key.
        readable: every post some friend may read (public ones are in feed.json, §3.4).
        old_feeds: reader (b64u sign_pk) -> what the last build published for them.
        old_sealed: version digest -> the object sealed for it before.
        old_index_json: the item index the last build recorded, or None.
        seq_floor: the highest sequence number this site ever gave a head.
        outputs: this build's outputs: new objects and pages are written through it, and
            the feeds' files published before are kept in it.
        media_state: the state of a file a post refers to; None when it cannot be
            published (outside content/, THREATS.md 38, or missing).
        unlock: the identity for the site's signing key; asked only when a head or
            page must be signed.
        now: the time heads are signed at.
        fresh: the site's signing key is not the one the feeds were published with (a
            key rotation, §2.5): every friend's feed is made anew for the new keys, at
            new paths, its sequence numbers going on above `seq_floor`.
        site_url: the site's URL, for the statements of replies (§4.2).
    """

    def __init__(self, *, root: Path, friends: Friends, readable: list[PostRecord],
                 old_feeds: Mapping[str, FeedState], old_sealed: Mapping[str, dict[str, Any]],
                 old_index_json: str | None, seq_floor: int, outputs: Outputs,
                 media_state: Callable[[str], FileState | None],
                 unlock: Callable[[bytes], Identity], now: dt.datetime,
                 fresh: bool = False, site_url: str = "") -> None:
        self.root, self.friends, self.readable, self.fresh = root, friends, readable, fresh
        self.old_feeds, self.old_sealed = old_feeds, old_sealed
        self.old_index_json, self.seq_floor = old_index_json, seq_floor
        self.outputs, self.media_state, self.unlock, self.now = outputs, media_state, unlock, now
        self.error: O2MError | None = None
        self.site_url = site_url
        self.warnings: list[str] = []  # files left out of a post sealed (`_seal`)
        self._identity: Identity | None = None
        self._made: list[tuple[str, str]] = []  # (kind, thread root) of statements signed
        self.notices: list[tuple[str, str, str, int]] = []  # see BuildReport.notices

    def plan(self) -> FeedPlan | None:
        """Plan every friend's feed, writing new objects and archive pages at once
        (nothing refers to them until a head does), and keep what the feeds still use.
        The heads are in `plan.files`, written last by the build: every friend's and the
        dummies that pad their count, all of them whenever one changes (THREATS.md 55);
        the dummies' names are kept in the item index (`state_changes`).

        Returns:
            The plan; None when the key could not be unlocked (`error` says why): the
            public site still builds, and friends keep the feeds they had (their heads
            stay valid until they expire).

        Raises:
            RollbackRefusedError: a published head is ahead of the recorded state.
        """
        readers = self.friends.readers
        try:
            plan = plan_feeds(author_sign_pk=self.friends.own_sign_pk, readers=readers,
                              versions=self._versions() if readers else [],
                              previous={} if self.fresh else self.old_feeds,
                              index=FeedIndex.from_json(self.old_index_json),
                              objects=self.old_sealed, now=self.now, random=nacl_random,
                              unlock=self._unlock_identity, published_seq=self._published_seq,
                              seq_floor=self.seq_floor,
                              write=lambda path, data: self.outputs.put(
                                  path, sha256_hex(data), data))
        except PassphraseError as e:
            self.error = e
            self.fresh = False  # nothing new was planned: what was published stays
            for path in self.outputs.old:
                if path.startswith(FEED_PATHS):
                    self.outputs.keep(path)
            return None
        for kind, root in dict.fromkeys(self._made):
            op = root[len("o2m:"):].split("/", 1)[0]
            if op in plan.states:
                self.notices.append((kind, root, op, plan.states[op].seq))
        live = referenced_objects(plan.index, plan.objects)
        plan.objects = retire_objects(plan.objects, live, self.now)
        kept = {p for o in plan.objects.values() for p in o["paths"]}
        for path in [*plan.keep, *(p for p in kept if p not in self.outputs.new)]:
            self.outputs.adopt(path)
        return plan

    def state_changes(self, plan: FeedPlan) -> tuple[dict, dict, str | None]:
        """What to record of the feeds: changed reader states, sealed objects, and the
        shared item index (None when unchanged)."""
        feed_changes: dict[str, str | None] = {k: None for k in self.old_feeds
                                               if k not in plan.states}
        feed_changes.update({k: plan.states[k].to_json() for k in plan.changed})
        index_json = plan.index.to_json()
        sealed_changes: dict[str, str | None] = {k: None for k in self.old_sealed
                                                 if k not in plan.objects}
        sealed_changes.update({k: json.dumps(v) for k, v in plan.objects.items()
                               if self.old_sealed.get(k) != v})
        return (feed_changes, sealed_changes,
                index_json if index_json != self.old_index_json else None)

    def _versions(self) -> list[PostVersion]:
        """Every private post version, with the friends who may read it."""
        versions = []
        readers_of: dict[tuple[str, ...], frozenset[str]] = {}
        names = [r.name for r in self.friends.readers]
        conversations = load_conversations(self.root)
        for record in self.readable:
            if record.is_public:  # public posts are in feed.json for everyone (§3.4)
                continue
            if record.audience not in readers_of:  # check_audience vouched for each name
                readers_of[record.audience] = resolve_audience(
                    record.audience, names, self.friends.groups)[1]
            media = self._media(record) if record.media else {}
            digest = digest_of(record.digest, *(f"{s}:{st.sha}" for s, (st, _) in media.items()))
            iid = _item_id(self.friends.id_key or self.friends.own_sign_pk, record.source)
            extra = conversations.get(iid, {})
            versions.append(PostVersion(record, digest,
                                        lambda r=record, m=media: self._seal(r, m),
                                        readers=readers_of[record.audience], id=iid,
                                        statement=self._reply_statement(record),
                                        extra=extra, extra_digest=extra_digest(extra)))
        return versions + self._reactions(names)

    def _reply_statement(self, record: PostRecord
                         ) -> Callable[[ObjectRef | None, str, str], bytes] | None:
        """PROTOCOL.md §4.2: a reply to a post reference carries its signed statement."""
        if not record.reply_to or not record.reply_to.startswith("o2m:") or not self.site_url:
            return None
        from o2m_pub.protocol.conversation import PostRef, sign_reply
        to = PostRef.parse(record.reply_to)
        thread = PostRef.parse(record.thread) if record.thread else to

        def statement(ref: ObjectRef | None, iid: str, date: str) -> bytes:
            assert ref is not None
            self._made.append(("reply", thread.text))
            return sign_reply(signing_key=self._unlock_identity().signing_key, post_id=iid,
                              date=date, object_hash=ref.hash, object_size=ref.size, to=to,
                              thread=thread, url=self.site_url)
        return statement

    def _reactions(self, names: list[str]) -> list[PostVersion]:
        """PROTOCOL.md §4.3: the owner's reactions, each an item of its own (a statement,
        no object) in the feeds of its audience; an undone one is left out, so the feeds
        that had it get its tombstone."""
        from o2m_pub.protocol.conversation import PostRef, sign_reaction
        out = []
        known = set(names)
        for reaction in load_reactions(self.root).values():
            record = _ReactionRecord(reaction.date, f".o2m/reactions/{reaction.id}")

            def statement(_ref: ObjectRef | None, _iid: str, date: str,
                          r: OwnReaction = reaction) -> bytes:
                self._made.append(("reaction", r.to))
                return sign_reaction(signing_key=self._unlock_identity().signing_key,
                                     date=date, emoji=r.emoji, to=PostRef.parse(r.to))
            out.append(PostVersion(record, reaction.digest, lambda: ([], None),  # type: ignore
                                   readers=frozenset(reaction.audience) & known,
                                   id=reaction.id, statement=statement, bare=True))
        return out

    def _media(self, record: PostRecord) -> dict[str, tuple[FileState, Path]]:
        """The files a private post refers to that can be published."""
        found = {}
        for ref in record.media:
            state = self.media_state(ref)
            if state is not None:
                found[ref] = (state, self.root / ref)
        return found

    def _seal(self, record: PostRecord,
              media: dict[str, tuple[FileState, Path]]) -> tuple[list[tuple[str, bytes]],
                                                                 ObjectRef]:
        """Seal a post and its files, each file named as the post's Markdown refers to it
        (PROTOCOL.md §3.3), as the build learnt while rendering it (`media_refs`)."""
        text = (self.root / record.source).read_bytes().decode("utf-8-sig")
        _, body, _ = split_front_matter(text, record.source)
        references: dict[str, list[str]] = {}
        for target, written in record.media_refs:
            references.setdefault(target, []).append(written)
        base = posixpath.dirname(record.source)
        names, left_out = attachment_names(  # (a file not found again: its relative path)
            {s: references.get(s) or [quote(posixpath.relpath(s, base))] for s in media})
        self.warnings += [f"{record.source}: {why}" for why in left_out]
        return seal_post(record, body, {s: p.read_bytes() for s, (_, p) in media.items()
                                        if s in names}, names=names, random=nacl_random)

    def _unlock_identity(self) -> Identity:
        if self._identity is not None:
            return self._identity
        identity = self.unlock(self.friends.own_sign_pk)
        if identity.sign_pk != self.friends.own_sign_pk:
            raise SiteError("the unlocked key is not this site's identity",
                            hint="keys/identity.pub.json and identity.secret disagree")
        self._identity = identity
        return identity

    def _published_seq(self, secrets: FeedSecrets, reader_sign_pk: bytes) -> int | None:
        """The seq of the head now in build/ at that feed's path (our own, so we can
        open it); None when there is none, it cannot be read, or it is the very head
        the manifest recorded (then the state's seq is the published one)."""
        try:
            data = (self.outputs.out_dir / secrets.head_path).read_bytes()
            recorded = self.outputs.old.get(secrets.head_path)
            if recorded is not None and recorded.sha == sha256_hex(data):
                return None
            return open_head(data, secrets, author_sign_pk=self.friends.own_sign_pk,
                             reader_sign_pk=reader_sign_pk).seq
        except (OSError, FeedAuthError, FeedFormatError):
            return None
