"""Private feed planning (friends/private_feeds.py, PROTOCOL.md §3.3-3.4), driven
directly: real keys, real sealing, a `random` that records what it is asked for, and
the readers' side opening what was planned. No files: the plan's bytes are read as is."""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass

import nacl.utils
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.friends.private_feeds import (
    FeedIndex,
    FeedPlan,
    PostVersion,
    Reader,
    plan_feeds,
    seal_post,
)
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.feeds import open_head, open_object, pairwise_secrets
from o2m_pub.protocol.keyfile import Identity

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
ADA = Identity(SigningKey(bytes([1]) * 32), PrivateKey(bytes([101]) * 32))


class Person:
    """A reader with fixed keys, who can open what Ada planned for them."""

    def __init__(self, n: int, name: str) -> None:
        self.sign = SigningKey(bytes([n]) * 32)
        self.box = PrivateKey(bytes([n + 100]) * 32)
        self.reader = Reader(name, bytes(self.sign.verify_key), bytes(self.box.public_key))

    def open(self, files: dict[str, bytes]) -> dict[str, str]:
        """Item id -> Markdown of every post in this reader's head (None: a tombstone)."""
        secrets = pairwise_secrets(bytes(self.box), ADA.box_pk, ADA.sign_pk,
                                   self.reader.sign_pk)
        head = open_head(files[secrets.head_path], secrets, author_sign_pk=ADA.sign_pk,
                         reader_sign_pk=self.reader.sign_pk)
        return {item.id: item.object and json.loads(
            open_object(files[item.object.path], item.object))["markdown"]
            for item in head.items}

    def refs(self, files: dict[str, bytes]) -> dict[str, object]:
        """Item id -> the object reference this reader's head carries."""
        secrets = pairwise_secrets(bytes(self.box), ADA.box_pk, ADA.sign_pk,
                                   self.reader.sign_pk)
        head = open_head(files[secrets.head_path], secrets, author_sign_pk=ADA.sign_pk,
                         reader_sign_pk=self.reader.sign_pk)
        return {item.id: item.object for item in head.items}


BOB, EVE = Person(2, "bob"), Person(3, "eve")


@dataclass(frozen=True)
class Post:
    """A post as planning reads it (a stand-in for the site's PostRecord)."""

    source: str
    date: str
    title: str | None = None
    updated: str | None = None
    tags: tuple[str, ...] = ()
    summary: str | None = None
    reply_to: str | None = None

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.date, self.source)


class RecordingRandom:
    """Real random bytes, with the size of every request recorded: sealing an object
    asks for a 32-byte key (and a nonce); pages and heads only ask for nonces."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, n: int) -> bytes:
        self.sizes.append(n)
        return nacl.utils.random(n)

    @property
    def keys(self) -> int:
        return self.sizes.count(32)


def version(post: Post, markdown: str, readers: frozenset[str], random: RecordingRandom,
            sealed: list[str]) -> PostVersion:
    """A version whose `seal` seals the post for real and notes its source in `sealed`."""
    def seal():  # noqa: ANN202
        sealed.append(post.source)
        return seal_post(post, markdown, {}, random=random)
    return PostVersion(post, f"digest of {markdown}", seal, readers=readers)


def plan(versions: list[PostVersion], random: RecordingRandom, *,
         previous: dict | None = None, index: FeedIndex | None = None,
         objects: dict | None = None, now: dt.datetime = NOW) -> FeedPlan:
    return plan_feeds(author_sign_pk=ADA.sign_pk, readers=[BOB.reader, EVE.reader],
                      versions=versions, previous=previous or {}, index=index or FeedIndex(),
                      objects=objects or {}, now=now, random=random, unlock=lambda: ADA,
                      published_seq=lambda secrets, reader: None)


def test_each_post_version_is_sealed_once_however_many_readers():
    """Two readers of two posts: exactly one object sealed per version (one 32-byte
    key asked for each), and both heads point at that same object, which opens."""
    random, sealed = RecordingRandom(), []
    both = frozenset({"bob", "eve"})
    versions = [version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A", both,
                        random, sealed),
                version(Post("content/b.md", "2026-11-21T10:00:00+00:00"), "B", both,
                        random, sealed)]
    result = plan(versions, random)
    files = dict(result.files)
    assert sorted(sealed) == ["content/a.md", "content/b.md"]
    assert random.keys == 2
    assert len(result.objects) == 2
    assert result.heads_written == 2
    assert BOB.refs(files) == EVE.refs(files)
    assert sorted(BOB.open(files).values()) == ["A", "B"]


def test_a_version_sealed_by_an_earlier_build_is_not_sealed_again():
    """Adding a post seals that post alone: the other version's object is reused from
    `objects`, and no key is asked for it."""
    random, sealed = RecordingRandom(), []
    both = frozenset({"bob", "eve"})
    a = version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A", both, random, sealed)
    first = plan([a], random)
    b = version(Post("content/b.md", "2026-11-21T10:00:00+00:00"), "B", both, random, sealed)
    second = plan([a, b], random, previous=first.states, index=first.index,
                  objects=first.objects)
    assert sealed == ["content/a.md", "content/b.md"]  # a in the first plan, b in the second
    assert random.keys == 2
    assert sorted(EVE.open(dict(first.files) | dict(second.files)).values()) == ["A", "B"]


def test_plan_feeds_leaves_its_inputs_unchanged():
    """The versions (their ids too), the index, the previous states and the sealed
    objects are the same after planning: the new index and states are in the plan."""
    random, sealed = RecordingRandom(), []
    versions = [version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A",
                        frozenset({"bob", "eve"}), random, sealed),
                version(Post("content/b.md", "2026-11-21T10:00:00+00:00"), "B",
                        frozenset({"bob"}), random, sealed)]
    first = plan(versions, random)
    # the second build: one post edited, one now for Eve alone, one removed
    later = [version(Post("content/a.md", "2026-11-20T10:00:00+00:00",
                          updated="2026-11-22T10:00:00+00:00"), "A2",
                     frozenset({"eve"}), random, sealed)]
    inputs = (first.states, first.index, first.objects)
    kept = copy.deepcopy(inputs)
    fields = [(v.record, v.digest, v.readers, v.id, v.seal) for v in versions + later]
    second = plan(later, random, previous=first.states, index=first.index,
                  objects=first.objects, now=NOW + dt.timedelta(days=1))
    assert inputs == kept
    assert fields == [(v.record, v.digest, v.readers, v.id, v.seal) for v in versions + later]
    assert all(v.id == "" for v in versions + later)
    assert second.index is not first.index
    assert second.index.ids == first.index.ids  # no new post: the same positions
    assert second.index.versions == {first.index.ids[0]: "digest of A2"}
    assert set(second.changed) == {b64u_encode(BOB.reader.sign_pk),
                                   b64u_encode(EVE.reader.sign_pk)}
    files = dict(first.files) | dict(second.files)
    assert sorted((v or "") for v in BOB.open(files).values()) == ["", ""]  # tombstones
    assert sorted(EVE.open(files).values()) == ["A2"]
