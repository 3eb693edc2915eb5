"""Private feeds in the build (PROTOCOL.md §3): which objects, heads and archive pages
to write for each friend, given the posts, the friends, and what the last build
published. Planning is pure; randomness, time and the unlocked identity are passed in.

Each post version is sealed once into an object, whatever the number of readers, and
remembered by the version's digest, so a rebuild re-encrypts nothing. A friend's head
is rewritten only when that friend's view changed or the head nears expiry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mimetypes
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.feeds import (
    FeedSecrets,
    Item,
    ObjectRef,
    PageRef,
    append_to_feed,
    pairwise_secrets,
    seal_head,
    seal_object,
    seal_page,
)
from o2m_pub.site.model import PostRecord

HEAD_LIFETIME = dt.timedelta(days=30)
RESIGN_BEFORE = dt.timedelta(days=7)
OBJECT_GRACE = dt.timedelta(days=7)  # how long a superseded object stays (§3.4)


def utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def item_id(author_sign_pk: bytes, source: str) -> str:
    """A post's item id: stable across its edits, different for every post and author."""
    return b64u_encode(hashlib.sha256(b"o2m-item-id\0" + author_sign_pk + source.encode())
                       .digest()[:16])


@dataclass
class FeedState:
    """What the last build published for one reader (kept in the state folder)."""

    reader: str  # b64u sign_pk
    head_path: str
    seq: int
    expires: str
    head_items: list[dict[str, Any]]  # Item.to_json(), newest first
    prev: dict[str, Any] | None  # newest archive page
    pages: list[str]  # paths of this feed's archive pages
    have: str  # hex bitmap over FeedIndex.ids: the posts this reader has

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeedState":
        return cls(**json.loads(text))

    @property
    def paths(self) -> list[str]:
        return [self.head_path, *self.pages]


@dataclass
class FeedIndex:
    """Shared by all readers: every item id ever used, in a fixed order (so a reader's
    posts are a compact bitmap), and the version of each post that was published.
    With 100 friends and 5,000 posts this is what keeps the state small and the
    planning cost O(posts + friends x audiences), not O(posts x friends)."""

    ids: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # id -> version digest

    def to_json(self) -> str:
        return json.dumps({"ids": self.ids, "versions": self.versions}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "FeedIndex":
        return cls(**json.loads(text)) if text else cls()


class _RawItem:
    """An item of a head we wrote ourselves: carried over as it is, not re-parsed."""

    __slots__ = ("id", "_json")

    def __init__(self, value: dict[str, Any]) -> None:
        self.id, self._json = value["id"], value

    def to_json(self) -> dict[str, Any]:
        return self._json


def _bits(value: int) -> list[int]:
    """Positions of the set bits of `value`."""
    out = []
    while value:
        low = value & -value
        out.append(low.bit_length() - 1)
        value ^= low
    return out


@dataclass
class Reader:
    """A friend as the feed builder needs them."""

    name: str
    sign_pk: bytes
    box_pk: bytes


@dataclass
class PostVersion:
    """One private-feed entry: a post, its version digest, and how to seal it."""

    record: PostRecord
    digest: str
    seal: Callable[[], tuple[list[tuple[str, bytes]], ObjectRef]]  # -> (files, the post's ref)
    readers: frozenset[str] = frozenset()  # names of the friends who may read it
    id: str = ""  # the item id (item_id of the author and the source)


@dataclass
class FeedPlan:
    """The files to write and the state to keep, for every reader."""

    files: list[tuple[str, bytes]] = field(default_factory=list)  # heads (and see `write`)
    keep: list[str] = field(default_factory=list)  # paths published before and still wanted
    states: dict[str, FeedState] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)  # readers whose state is new
    max_seq: int = 0  # the highest sequence number given to a head in this plan
    # version digest -> {"ref": the post's ObjectRef json, "paths": its object files}
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    heads_written: int = 0


def post_plaintext(record: PostRecord, markdown: str,
                   attachments: list[dict[str, Any]]) -> bytes:
    """The object plaintext of a post (PROTOCOL.md §3.3)."""
    doc: dict[str, Any] = {"v": 1, "type": "o2m-post", "markdown": markdown,
                           "date": utc_text(dt.datetime.fromisoformat(record.date))}
    if record.title:
        doc["title"] = record.title
    if record.updated:
        doc["updated"] = utc_text(dt.datetime.fromisoformat(record.updated))
    if record.tags:
        doc["tags"] = list(record.tags)
    if record.summary:
        doc["summary"] = record.summary
    if record.reply_to:
        doc["reply_to"] = record.reply_to
    if attachments:
        doc["attachments"] = attachments
    return canonical_json(doc)


def seal_post(record: PostRecord, markdown: str, media: Mapping[str, bytes], *,
              random: Callable[[int], bytes]) -> tuple[list[tuple[str, bytes]], ObjectRef]:
    """Seal a post and its attachments, each with a fresh key (§3.3). Attachments are
    named by their path relative to the post, as its Markdown refers to them."""
    files, attachments = [], []
    base = posixpath.dirname(record.source)
    for source, data in sorted(media.items()):
        blob, ref = seal_object(data, key=random(32), nonce=random(24))
        files.append((ref.path, blob))
        attachments.append({"name": posixpath.relpath(source, base),
                            "media_type": mimetypes.guess_type(source)[0]
                            or "application/octet-stream", **ref.to_json()})
    blob, ref = seal_object(post_plaintext(record, markdown, attachments),
                            key=random(32), nonce=random(24))
    files.append((ref.path, blob))
    return files, ref


class RollbackRefusedError(O2MError):
    """A feed already published has a higher sequence number than this build would give."""

    hint = ("the state folder (.o2m/) is older than build/ (restored from a backup?); o2m "
            "refuses to fork the feed: restore the newer .o2m/, or delete .o2m/build.db to "
            "continue every feed above what is published")


def plan_feeds(*, author_sign_pk: bytes, readers: list[Reader], versions: list[PostVersion],
               previous: Mapping[str, FeedState], index: FeedIndex,
               objects: Mapping[str, dict[str, Any]], now: dt.datetime,
               random: Callable[[int], bytes], unlock: Callable[[], Any],
               published_seq: Callable[[FeedSecrets, bytes], int | None],
               seq_floor: int = 0,
               write: Callable[[str, bytes], None] | None = None) -> FeedPlan:
    """Plan every reader's feed (PROTOCOL.md §3.4).

    Args:
        versions: every private post version, with the names of the friends who may
            read it.
        previous: reader b64u sign_pk -> what the last build published for them.
        index: the shared item index of the last build (updated in place).
        objects: version digest -> the object reference sealed for it before.
        unlock: returns the Identity (signing and box keys); called only when a head or
            page must be sealed, so a build that changes no feed never asks.
        published_seq: the sequence number of the head now published at a feed's path
            (or None), so a site restored from an old backup never publishes a lower one.
        seq_floor: the highest sequence number this site ever gave a head. Every new head
            gets more, so a friend removed and added again, or one whose keys changed,
            never sees a number go back (their old state is gone, the floor is not).
        write: called with each new object and archive page as soon as it is sealed
            (nothing refers to them until a head does, so they may be written at once,
            and a big first build need not hold them all); by default they join
            `plan.files`, as the heads always do.

    Raises:
        RollbackRefusedError: see `published_seq`.
    """
    plan = FeedPlan(objects=dict(objects))
    if write is None:
        def write(path: str, data: bytes) -> None:
            plan.files.append((path, data))
    now_text = utc_text(now)
    position = {iid: i for i, iid in enumerate(index.ids)}
    by_id: dict[str, PostVersion] = {}
    changed_bits = 0
    audience_bits: dict[frozenset[str], int] = {}
    for v in versions:
        v.id = v.id or item_id(author_sign_pk, v.record.source)
        if v.id not in position:
            position[v.id] = len(index.ids)
            index.ids.append(v.id)
        bit = 1 << position[v.id]
        by_id[v.id] = v
        if index.versions.get(v.id) != v.digest:
            changed_bits |= bit
        audience_bits[v.readers] = audience_bits.get(v.readers, 0) | bit
    # every reader's items of one version are one object: sealed and serialised once
    order = sorted(versions, key=lambda v: v.record.sort_key)
    rank = {position[v.id]: n for n, v in enumerate(order)}
    items: dict[str, _RawItem] = {}

    def item_of(version: PostVersion) -> _RawItem:
        if version.id not in items:
            sealed = plan.objects.get(version.digest)
            if sealed is None:
                files, obj = version.seal()
                for path, data in files:
                    write(path, data)
                sealed = plan.objects[version.digest] = {
                    "ref": obj.to_json(), "paths": [path for path, _ in files]}
            record = version.record
            item = Item(version.id, utc_text(dt.datetime.fromisoformat(
                record.updated or record.date)), ObjectRef.from_json(sealed["ref"]),
                record.reply_to)
            items[version.id] = _RawItem(item.to_json())
        return items[version.id]

    identity = None
    written: set[str] = set()
    for reader in readers:
        key = b64u_encode(reader.sign_pk)
        state = previous.get(key)
        wanted = 0
        for names, bits in audience_bits.items():
            if reader.name in names:
                wanted |= bits
        have = int(state.have, 16) if state else 0
        new_bits = (wanted & ~have) | (wanted & changed_bits)
        gone_bits = have & ~wanted
        expiring = state is not None and state.expires <= utc_text(now + RESIGN_BEFORE)
        if state is not None and not new_bits and not gone_bits and not expiring:
            plan.keep += state.paths
            plan.states[key] = state
            continue
        new_items: list[Any] = [item_of(by_id[index.ids[i]]) for i in
                                sorted(_bits(new_bits), key=rank.__getitem__, reverse=True)]
        new_items[:0] = [_RawItem(Item(index.ids[i], now_text, None).to_json())  # tombstones
                         for i in sorted(_bits(gone_bits), reverse=True)]
        if identity is None:
            identity = unlock()
        secrets = pairwise_secrets(bytes(identity.box_key), reader.box_pk, author_sign_pk,
                                   reader.sign_pk)
        old_items = [_RawItem(i) for i in state.head_items] if state else []
        head_items, cut = append_to_feed(old_items, new_items)
        prev = PageRef.from_json(state.prev) if state and state.prev else None
        pages = list(state.pages) if state else []
        for page_items in cut:
            data, prev = seal_page(signing_key=identity.signing_key,
                                   reader_sign_pk=reader.sign_pk, secrets=secrets,
                                   items=page_items, prev=prev, nonce=random(24))
            write(prev.path, data)
            written.add(prev.path)
            pages.append(prev.path)
        plan.keep += [p for p in pages if p not in written]
        seq = max(state.seq if state else 0, seq_floor) + 1
        live = published_seq(secrets, reader.sign_pk)
        if live is not None and live >= seq:
            if state is not None:  # the state is older than what is published: a restore
                raise RollbackRefusedError(
                    f"{secrets.head_path} already carries sequence {live}; this build would "
                    f"publish {seq}")
            seq = live + 1  # state lost, head verifiably ours: continue above it
        plan.max_seq = max(plan.max_seq, seq)
        expires = utc_text(now + HEAD_LIFETIME)
        head = seal_head(signing_key=identity.signing_key, reader_sign_pk=reader.sign_pk,
                         secrets=secrets, seq=seq, updated=now_text, expires=expires,
                         items=head_items, prev=prev, nonce=random(24))
        plan.files.append((secrets.head_path, head))
        plan.heads_written += 1
        plan.changed.add(key)
        plan.states[key] = FeedState(
            reader=key, head_path=secrets.head_path, seq=seq, expires=expires,
            head_items=[i.to_json() for i in head_items],
            prev=prev.to_json() if prev else None, pages=pages, have=f"{wanted:x}")
    index.versions = {v.id: v.digest for v in versions}
    return plan


def referenced_objects(index: FeedIndex, objects: Mapping[str, dict[str, Any]]) -> set[str]:
    """Object files (posts and attachments) of the versions now published. An older
    version listed in an archive page is superseded by a newer item (readers take the
    newest version of an id first) and never fetched, so its objects can go."""
    return {path for digest in index.versions.values() if digest in objects
            for path in objects[digest]["paths"]}


def retire_objects(objects: Mapping[str, dict[str, Any]], live: set[str],
                   now: dt.datetime) -> dict[str, dict[str, Any]]:
    """The sealed objects to keep: those a feed points at, and superseded ones for
    OBJECT_GRACE after they were first found unused, so a reader in the middle of a
    fetch (or a cache holding an older head) never meets a missing object (§3.4)."""
    now_text, kept = utc_text(now), {}
    for digest, sealed in objects.items():
        if any(p in live for p in sealed["paths"]):
            kept[digest] = {k: v for k, v in sealed.items() if k != "retired"}
            continue
        retired = sealed.get("retired", now_text)
        if retired > utc_text(now - OBJECT_GRACE):
            kept[digest] = {**sealed, "retired": retired}
    return kept
