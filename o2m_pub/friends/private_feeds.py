"""Private feeds in the build (PROTOCOL.md §3): which objects, heads and archive pages
to write for each friend, given the posts, the friends, and what the last build
published. Planning is pure; randomness, time and the unlocked identity are passed in.

Each post version is sealed once into an object, whatever the number of readers, and
remembered by the version's digest, so a rebuild re-encrypts nothing.

Heads hide who reads what from the host (THREATS.md 55, PROTOCOL.md §3.4): when any
friend's view changes, or the heads near expiry, every head is rewritten (a new nonce and
sequence number; the same items where that friend's view did not change), and dummy heads
pad their number to a bucket (`head_bucket`). A dummy has a random name kept in the item
index, so it is rewritten with the real heads rather than replaced, and each one takes the
size of a real head it shadows, so their sizes change as real heads' do.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import mimetypes
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

from o2m_pub.errors import O2MError, PostError
from o2m_pub.protocol.attachments import (
    MAX_ATTACHMENTS,
    MAX_NAME_BYTES,
    attachment_media_type,
    is_attachment_name,
    referenced_name,
)
from o2m_pub.protocol.canonical import (
    b64u_encode,
    canonical_json,
    utc_text,
)
from o2m_pub.protocol.feeds import (
    HEAD_LIFETIME,
    FeedSecrets,
    Item,
    ObjectRef,
    PageRef,
    append_to_feed,
    head_size,
    pairwise_secrets,
    seal_dummy_head,
    seal_head,
    seal_object,
    seal_page,
)
from o2m_pub.protocol.post_limits import tags_problem, text_problem

RESIGN_BEFORE = dt.timedelta(days=7)
OBJECT_GRACE = dt.timedelta(days=7)  # how long a superseded object stays (§3.4)


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
    # id -> digest of the conversation fields its item carries (§4.4: reply links and
    # reactions on the owner's posts), which change the item but not its object
    extras: dict[str, str] = field(default_factory=dict)
    # THREATS.md 55: the dummy heads' paths ("f/" + 32 random hex digits), each with the
    # reader (b64u sign_pk) whose head size it takes
    dummies: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        doc: dict[str, Any] = {"ids": self.ids, "versions": self.versions}
        if self.extras:
            doc["extras"] = self.extras
        if self.dummies:
            doc["dummies"] = self.dummies
        return json.dumps(doc, sort_keys=True)

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


class PrivatePost(Protocol):
    """What planning and sealing read of a post. The site passes its records (the
    arrows run site -> friends, so this part names what it needs instead of importing
    the site's model)."""

    @property
    def source(self) -> str:
        """The site-relative path of the post's file: its item id is made from it, and
        its attachments are named relative to it."""

    @property
    def date(self) -> str:
        """ISO 8601 with offset."""

    @property
    def updated(self) -> str | None:
        """ISO 8601 with offset, or None."""

    @property
    def title(self) -> str | None: ...

    @property
    def tags(self) -> tuple[str, ...]: ...

    @property
    def summary(self) -> str | None: ...

    @property
    def reply_to(self) -> str | None: ...

    @property
    def sort_key(self) -> tuple[str, str]:
        """Oldest first, ties broken by the post's path."""


@dataclass
class Reader:
    """A friend as the feed builder needs them."""

    name: str
    sign_pk: bytes
    box_pk: bytes


@dataclass
class PostVersion:
    """One private-feed entry: a post, its version digest, and how to seal it."""

    record: PrivatePost
    digest: str
    seal: Callable[[], tuple[list[tuple[str, bytes]], ObjectRef]]  # -> (files, the post's ref)
    readers: frozenset[str] = frozenset()  # names of the friends who may read it
    id: str = ""  # the item id (item_id of the author and the source); made when empty
    # PROTOCOL.md §4: the signed statement of a reply or reaction, made from the item's
    # object reference (None for a reaction), id and date once the identity is unlocked
    statement: Callable[[ObjectRef | None, str, str], bytes] | None = None
    bare: bool = False  # a reaction: an item with a statement and no object (§4.3)
    extra: dict[str, Any] = field(default_factory=dict)  # `replies`, `reactions` (§4.4)
    extra_digest: str = ""  # changes whenever `extra` does


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
    heads_written: int = 0  # real heads signed (dummies are not counted)
    index: FeedIndex = field(default_factory=FeedIndex)  # the shared item index, as planned


def post_plaintext(record: PrivatePost, markdown: str,
                   attachments: list[dict[str, Any]]) -> bytes:
    """The object plaintext of a post (PROTOCOL.md §3.3).

    Raises:
        PostError: its title, summary or tags break §3.3's limits, which every reader
            would refuse (the site's parser reports them first, with the line).
    """
    problem = ((record.title and text_problem("title", record.title))
               or (record.summary and text_problem("summary", record.summary))
               or tags_problem(record.tags))
    if problem:
        raise PostError(record.source, 1, problem, hint="o2m refuses to publish to friends "
                        "a post their readers would refuse: mend the post")
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
    thread = getattr(record, "thread", None)
    if thread and record.reply_to:  # §4.2: a nested reply names its thread's root
        doc["thread"] = thread
    if attachments:
        doc["attachments"] = attachments
    return canonical_json(doc)


def attachment_names(references: Mapping[str, Sequence[str]]
                     ) -> tuple[dict[str, list[str]], list[str]]:
    """The names a post's files are attached under (PROTOCOL.md §3.3): each file under
    every name its references give it (`referenced_name`), so that whatever way the
    Markdown spells a file, a reader finds it by the reference alone.

    Args:
        references: each file the post attaches (its site-relative path) -> the
            references to it in the post's Markdown, as written, in order.

    Returns:
        File -> its names, in order, none twice (a file left without a name is not
        attached), and what was left out and why: a name §3.3 does not allow (a
        backslash or control character, over 255 bytes), or a name past the 64
        attachments a post may have.
    """
    names: dict[str, list[str]] = {}
    left_out: list[str] = []
    seen: set[str] = set()
    attached = 0  # names given so far
    for source, spellings in sorted(references.items()):
        for reference in spellings:
            name = referenced_name(reference)
            if name is None or name in seen:  # (one name always means one file)
                continue
            seen.add(name)
            if not is_attachment_name(name):
                left_out.append(f"{source} is not sent to friends as {reference!r}: an "
                                f"attachment's name ({name!r}) may have no backslash or "
                                f"control character and at most {MAX_NAME_BYTES} bytes")
            elif attached >= MAX_ATTACHMENTS:
                left_out.append(f"{source} is not sent to friends as {reference!r}: a post "
                                f"has at most {MAX_ATTACHMENTS} attachments")
            else:
                attached += 1
                names.setdefault(source, []).append(name)
    return names, left_out


def seal_post(record: PrivatePost, markdown: str, media: Mapping[str, bytes], *,
              random: Callable[[int], bytes],
              names: Mapping[str, Sequence[str]] | None = None
              ) -> tuple[list[tuple[str, bytes]], ObjectRef]:
    """Seal a post and its attachments, each with a fresh key (§3.3).

    Each file is sealed once, and listed under each of its `names` (see
    `attachment_names`), every entry with that one object's reference; a file with no
    names given is named by its path relative to the post."""
    files, attachments = [], []
    base = posixpath.dirname(record.source)
    for source, data in sorted(media.items()):
        blob, ref = seal_object(data, key=random(32), nonce=random(24))
        files.append((ref.path, blob))
        # §3.3: lower case, or application/octet-stream (MIME tables hold `audio/AMR`)
        media_type = attachment_media_type(mimetypes.guess_type(source)[0])
        for name in (names or {}).get(source) or [posixpath.relpath(source, base)]:
            attachments.append({"name": name, "media_type": media_type, **ref.to_json()})
    blob, ref = seal_object(post_plaintext(record, markdown, attachments),
                            key=random(32), nonce=random(24))
    files.append((ref.path, blob))
    return files, ref


class RollbackRefusedError(O2MError):
    """A feed already published has a higher sequence number than this build would give."""

    hint = ("the state folder (.o2m/) is older than build/ (restored from a backup?); o2m "
            "refuses to fork the feed: restore the newer .o2m/, or delete .o2m/build.db to "
            "continue every feed above what is published")


def plan_feeds(*, author_sign_pk: bytes, readers: Sequence[Reader],
               versions: Sequence[PostVersion], previous: Mapping[str, FeedState],
               index: FeedIndex, objects: Mapping[str, dict[str, Any]], now: dt.datetime,
               random: Callable[[int], bytes], unlock: Callable[[], Any],
               published_seq: Callable[[FeedSecrets, bytes], int | None],
               seq_floor: int = 0,
               write: Callable[[str, bytes], None] | None = None) -> FeedPlan:
    """Plan every reader's feed (PROTOCOL.md §3.4). The arguments are not changed.

    When no friend's view changes, no friend comes or goes and no head nears expiry,
    nothing is sealed and every head (dummies too) is kept. Otherwise every friend's head
    is sealed again, and the dummies with them (THREATS.md 55, `plan_dummies`).

    Args:
        versions: every private post version, with the names of the friends who may
            read it.
        previous: reader b64u sign_pk -> what the last build published for them.
        index: the shared item index of the last build (the new one is `plan.index`).
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

    Returns:
        The plan: heads to write, paths to keep, every reader's new state, the sealed
        objects and the new item index.

    Raises:
        RollbackRefusedError: see `published_seq`.
    """
    plan = FeedPlan(objects=dict(objects))
    if write is None:
        def write(path: str, data: bytes) -> None:
            plan.files.append((path, data))
    entries, plan.index = _assign_ids(author_sign_pk, versions, index)
    bits = _VersionBits.of(entries, plan.index, index.versions, index.extras)
    deltas = {b64u_encode(r.sign_pk): _reader_delta(r.name, previous.get(
        b64u_encode(r.sign_pk)), bits) for r in readers}
    if not _any_head_changes(readers, deltas, previous, index.dummies, now):
        for key in deltas:
            plan.keep += previous[key].paths
            plan.states[key] = previous[key]
        plan.keep += list(index.dummies)
        plan.index.dummies = dict(index.dummies)
        return plan
    # THREATS.md 55: one head changes, so every head is rewritten, dummies included
    items = _ItemSealer(plan.objects, write)
    identity = unlock() if readers else None
    heads: dict[str, tuple[str, _HeadToSeal]] = {}
    for reader in readers:
        key = b64u_encode(reader.sign_pk)
        state, delta = previous.get(key), deltas[key]
        new_items = [items.item(*bits.entry_at[i]) for i in
                     sorted(_bits(delta.new), key=bits.rank.__getitem__, reverse=True)]
        new_items[:0] = [_RawItem(Item(plan.index.ids[i], utc_text(now), None).to_json())
                         for i in sorted(_bits(delta.gone), reverse=True)]  # tombstones
        head_path, head, new_state, kept = _seal_reader_feed(
            identity, reader, author_sign_pk=author_sign_pk, state=state,
            new_items=new_items, wanted=delta.wanted, now=now, random=random, write=write,
            published_seq=published_seq, seq_floor=seq_floor)
        plan.keep += kept
        plan.max_seq = max(plan.max_seq, new_state.seq)
        heads[key] = head_path, head
        plan.heads_written += 1
        plan.changed.add(key)
        plan.states[key] = new_state
    # THREATS.md 55: every head the size of the biggest, one with no items too (pad
    # tombstones, §3.4), so the host can tell neither whose feed a post made grow nor
    # which friends see no post at all
    size = max((head.size for _, head in heads.values()), default=0)
    sizes: dict[str, int] = {}
    for key, (head_path, head) in heads.items():
        sealed = head.seal(size=size)
        plan.files.append((head_path, sealed))
        sizes[key] = len(sealed)
    plan.index.dummies = plan_dummies(index.dummies, sizes, random=random,
                                      taken={s.head_path for s in plan.states.values()})
    for path, shadow in plan.index.dummies.items():
        plan.files.append((path, seal_dummy_head(sizes[shadow], key=random(32),
                                                 nonce=random(24))))
    return plan


MIN_HEADS = 8


def head_bucket(readers: int) -> int:
    """How many heads a site with `readers` friends publishes (THREATS.md 55): the next
    power of two, at least MIN_HEADS; none without friends."""
    return 0 if readers == 0 else max(MIN_HEADS, 1 << (readers - 1).bit_length())


def plan_dummies(dummies: Mapping[str, str], sizes: Mapping[str, int], *,
                 random: Callable[[int], bytes], taken: set[str]) -> dict[str, str]:
    """The dummy heads to write with the real ones (THREATS.md 55): enough to bring the
    count of heads to `head_bucket`, the names published before kept (so a host sees them
    rewritten like the real heads, not replaced), each with the reader whose head size it
    takes; a dummy whose reader is gone takes another's, chosen at random.

    Args:
        dummies: path -> shadowed reader (b64u sign_pk), as published before.
        sizes: every reader's new head size, by b64u sign_pk.
        random: the source of names and choices.
        taken: the real heads' paths (a new name never takes one).
    """
    readers = sorted(sizes)
    wanted = head_bucket(len(readers)) - len(readers)
    kept = list(dummies)[:wanted]
    out: dict[str, str] = {}
    for path in kept:
        shadow = dummies[path]
        out[path] = shadow if shadow in sizes else _pick(readers, random)
    while len(out) < wanted:
        path = f"f/{random(16).hex()}"
        if path not in out and path not in taken:
            out[path] = _pick(readers, random)
    return out


def _pick(choices: Sequence[str], random: Callable[[int], bytes]) -> str:
    return choices[int.from_bytes(random(8), "big") % len(choices)]


def _any_head_changes(readers: Sequence[Reader], deltas: Mapping[str, "_Delta"],
                      previous: Mapping[str, FeedState], dummies: Mapping[str, str],
                      now: dt.datetime) -> bool:
    """Whether this build must rewrite the heads: a friend's view changed (a post for
    them, an edit, a tombstone), a friend came or went, a head nears expiry, or the
    dummies are not what `head_bucket` wants."""
    keys = set(deltas)
    if keys != set(previous) or len(dummies) != head_bucket(len(readers)) - len(readers):
        return True
    if any(shadow not in keys for shadow in dummies.values()):
        return True
    return any(d.new or d.gone or _expiring(previous[k], now) for k, d in deltas.items())


def _assign_ids(author_sign_pk: bytes, versions: Sequence[PostVersion],
                index: FeedIndex) -> tuple[list[tuple[PostVersion, str]], FeedIndex]:
    """Each version with its item id, and the index that lists them all: the ids of
    `index` in their places (a reader's bitmap depends on them), new ids after them,
    and each post's version as of now."""
    entries = [(v, v.id or item_id(author_sign_pk, v.record.source)) for v in versions]
    ids = list(index.ids)
    known = set(ids)
    for _, iid in entries:
        if iid not in known:
            known.add(iid)
            ids.append(iid)
    return entries, FeedIndex(ids=ids, versions={iid: v.digest for v, iid in entries},
                              extras={iid: v.extra_digest for v, iid in entries
                                      if v.extra_digest})


@dataclass(frozen=True)
class _VersionBits:
    """The versions as bits over the item index: which changed since the last build,
    which each audience reads, and the order their items go in."""

    changed: int  # versions whose digest is not the one published
    audiences: dict[frozenset[str], int]  # readers' names -> the versions they read
    entry_at: dict[int, tuple[PostVersion, str]]  # index position -> (version, item id)
    rank: dict[int, int]  # index position -> place of its post, oldest first

    @classmethod
    def of(cls, entries: list[tuple[PostVersion, str]], index: FeedIndex,
           published: Mapping[str, str],
           published_extras: Mapping[str, str] | None = None) -> "_VersionBits":
        position = {iid: i for i, iid in enumerate(index.ids)}
        changed, audiences, entry_at = 0, {}, {}
        extras = published_extras or {}
        for v, iid in entries:
            bit = 1 << position[iid]
            entry_at[position[iid]] = (v, iid)
            if published.get(iid) != v.digest or extras.get(iid, "") != v.extra_digest:
                changed |= bit
            audiences[v.readers] = audiences.get(v.readers, 0) | bit
        order = sorted(entries, key=lambda e: e[0].record.sort_key)
        rank = {position[iid]: n for n, (_, iid) in enumerate(order)}
        return cls(changed, audiences, entry_at, rank)


@dataclass(frozen=True)
class _Delta:
    """What one reader's feed must say now, as bits over the item index."""

    wanted: int  # every version the reader may read
    new: int  # versions the reader has not got, or has in an older version
    gone: int  # posts the reader had and may no longer read: tombstones


def _reader_delta(name: str, state: FeedState | None, bits: _VersionBits) -> _Delta:
    wanted = 0
    for names, audience in bits.audiences.items():
        if name in names:
            wanted |= audience
    have = int(state.have, 16) if state else 0
    return _Delta(wanted, (wanted & ~have) | (wanted & bits.changed), have & ~wanted)


def _expiring(state: FeedState, now: dt.datetime) -> bool:
    """Whether the head published for a reader expires within RESIGN_BEFORE."""
    return state.expires <= utc_text(now + RESIGN_BEFORE)


class _ItemSealer:
    """Each version's feed item, its object sealed and serialised once however many
    readers get it (§3.3): an object already sealed for that digest is reused."""

    def __init__(self, objects: dict[str, dict[str, Any]],
                 write: Callable[[str, bytes], None]) -> None:
        self.objects, self.write = objects, write
        self.items: dict[str, _RawItem] = {}

    def item(self, version: PostVersion, iid: str) -> _RawItem:
        if iid not in self.items:
            record = version.record
            date = utc_text(dt.datetime.fromisoformat(record.updated or record.date))
            if version.bare:  # a reaction (§4.3)
                assert version.statement is not None
                item = Item(iid, date, None, statement=b64u_encode(
                    version.statement(None, iid, date)))
                self.items[iid] = _RawItem(item.to_json())
                return self.items[iid]
            sealed = self.objects.get(version.digest)
            if sealed is None:
                files, obj = version.seal()
                for path, data in files:
                    self.write(path, data)
                sealed = self.objects[version.digest] = {
                    "ref": obj.to_json(), "paths": [path for path, _ in files]}
            ref = ObjectRef.from_json(sealed["ref"])
            statement = version.statement(ref, iid, date) if version.statement else None
            item = Item(iid, date, ref, record.reply_to,
                        replies=tuple(version.extra.get("replies", ())),
                        statement=b64u_encode(statement) if statement else None,
                        reactions=tuple(version.extra.get("reactions", ())))
            self.items[iid] = _RawItem(item.to_json())
        return self.items[iid]


@dataclass(frozen=True)
class _HeadToSeal:
    """A head ready to seal: its own size, and `seal(size=...)` to seal it padded to a
    bigger one (THREATS.md 55: every head the same size)."""

    size: int
    seal: Callable[..., bytes]


def _seal_reader_feed(identity: Any, reader: Reader, *, author_sign_pk: bytes,
                      state: FeedState | None, new_items: list[Any], wanted: int,
                      now: dt.datetime, random: Callable[[int], bytes],
                      write: Callable[[str, bytes], None],
                      published_seq: Callable[[FeedSecrets, bytes], int | None],
                      seq_floor: int) -> tuple[str, "_HeadToSeal", FeedState, list[str]]:
    """One reader's new head, the archive pages cut from it written at once (§3.4).

    Returns:
        The head's path and how to seal it, the reader's new state, and the archive
        pages published before that the feed still links to.
    """
    secrets = pairwise_secrets(bytes(identity.box_key), reader.box_pk, author_sign_pk,
                               reader.sign_pk)
    old_items = [_RawItem(i) for i in state.head_items] if state else []
    head_items, cut = append_to_feed(old_items, new_items)
    prev = PageRef.from_json(state.prev) if state and state.prev else None
    pages = list(state.pages) if state else []
    written = set()
    for page_items in cut:
        data, prev = seal_page(signing_key=identity.signing_key,
                               reader_sign_pk=reader.sign_pk, secrets=secrets,
                               items=page_items, prev=prev, nonce=random(24))
        write(prev.path, data)
        written.add(prev.path)
        pages.append(prev.path)
    seq = _next_seq(state, seq_floor, published_seq(secrets, reader.sign_pk),
                    secrets.head_path)
    now_text, expires = utc_text(now), utc_text(now + HEAD_LIFETIME)
    fields = dict(reader_sign_pk=reader.sign_pk, seq=seq, updated=now_text, expires=expires,
                  items=head_items, prev=prev)
    head = _HeadToSeal(head_size(author_sign_pk=author_sign_pk, **fields), functools.partial(
        seal_head, signing_key=identity.signing_key, secrets=secrets, nonce=random(24),
        **fields))
    new_state = FeedState(
        reader=b64u_encode(reader.sign_pk), head_path=secrets.head_path, seq=seq,
        expires=expires, head_items=[i.to_json() for i in head_items],
        prev=prev.to_json() if prev else None, pages=pages, have=f"{wanted:x}")
    return secrets.head_path, head, new_state, [p for p in pages if p not in written]


def _next_seq(state: FeedState | None, seq_floor: int, live: int | None,
              head_path: str) -> int:
    """The sequence number of a reader's next head: above the last one, above every
    number this site ever gave (`seq_floor`), and above the head published now (`live`).

    Raises:
        RollbackRefusedError: the published head is ahead of the state (a restore).
    """
    seq = max(state.seq if state else 0, seq_floor) + 1
    if live is not None and live >= seq:
        if state is not None:  # the state is older than what is published: a restore
            raise RollbackRefusedError(
                f"{head_path} already carries sequence {live}; this build would "
                f"publish {seq}")
        seq = live + 1  # state lost, head verifiably ours: continue above it
    return seq


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
