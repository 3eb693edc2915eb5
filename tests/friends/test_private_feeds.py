"""Private feed planning (friends/private_feeds.py, PROTOCOL.md §3.3-3.4), driven
directly: real keys, real sealing, a `random` that records what it is asked for, and
the readers' side opening what was planned. No files: the plan's bytes are read as is."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import dataclass

import nacl.utils
import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.friends.private_feeds import (
    FeedIndex,
    FeedPlan,
    PostVersion,
    Reader,
    attachment_names,
    head_bucket,
    plan_dummies,
    plan_feeds,
    seal_post,
)
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.feeds import (
    HEAD_MAGIC,
    FeedAuthError,
    open_head,
    open_object,
    pairwise_secrets,
)
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
    asks for a 32-byte key (and a nonce). The planner draws from its own source (heads,
    pages and dummy heads), so `keys` counts the objects sealed."""

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


def plan(versions: list[PostVersion], *, readers: list[Reader] | None = None,
         previous: dict | None = None, index: FeedIndex | None = None,
         objects: dict | None = None, now: dt.datetime = NOW,
         random: RecordingRandom | None = None) -> FeedPlan:
    """Ada's plan for `readers` (Bob and Eve by default); `random` is the planner's own
    source (heads, pages, dummies), apart from the one the versions seal with."""
    return plan_feeds(author_sign_pk=ADA.sign_pk, readers=readers or [BOB.reader, EVE.reader],
                      versions=versions, previous=previous or {}, index=index or FeedIndex(),
                      objects=objects or {}, now=now, random=random or RecordingRandom(),
                      unlock=lambda: ADA, published_seq=lambda secrets, reader: None)


def test_each_post_version_is_sealed_once_however_many_readers():
    """Two readers of two posts: exactly one object sealed per version (one 32-byte
    key asked for each), and both heads point at that same object, which opens."""
    random, sealed = RecordingRandom(), []
    both = frozenset({"bob", "eve"})
    versions = [version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A", both,
                        random, sealed),
                version(Post("content/b.md", "2026-11-21T10:00:00+00:00"), "B", both,
                        random, sealed)]
    result = plan(versions)
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
    first = plan([a])
    b = version(Post("content/b.md", "2026-11-21T10:00:00+00:00"), "B", both, random, sealed)
    second = plan([a, b], previous=first.states, index=first.index,
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
    first = plan(versions)
    # the second build: one post edited, one now for Eve alone, one removed
    later = [version(Post("content/a.md", "2026-11-20T10:00:00+00:00",
                          updated="2026-11-22T10:00:00+00:00"), "A2",
                     frozenset({"eve"}), random, sealed)]
    inputs = (first.states, first.index, first.objects)
    kept = copy.deepcopy(inputs)
    fields = [(v.record, v.digest, v.readers, v.id, v.seal) for v in versions + later]
    second = plan(later, previous=first.states, index=first.index,
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


# ---------------------------------------------------------------- THREATS 55: every head, padded


def _heads(result: FeedPlan) -> dict[str, bytes]:
    return {path: data for path, data in result.files if path.startswith("f/")}


def test_head_bucket_is_the_next_power_of_two_at_least_8():
    """THREATS 55: the count of `f/` files a host sees says only this much of the number
    of friends; no friends, no heads."""
    assert [head_bucket(n) for n in (0, 1, 2, 7, 8, 9, 16, 17, 100, 10_000)] == \
        [0, 8, 8, 8, 8, 16, 16, 32, 128, 16_384]


def test_threat_55_a_post_for_one_friend_rewrites_every_head_and_pads_their_count():
    """THREATS 55: with ten friends, a post for Bob alone rewrites all sixteen heads (ten
    real, six dummies): every `f/` file of the last build is written again with other
    bytes, under the same names, and nothing else appears in `f/`. The others' heads
    carry the same items under a higher sequence number, so nothing but Bob's view
    changed; Bob's has the post."""
    others = [Person(n, f"friend{n}") for n in range(10, 19)]
    readers = [BOB.reader] + [p.reader for p in others]
    random, sealed = RecordingRandom(), []
    everyone = frozenset(r.name for r in readers)
    old = version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A", everyone, random,
                  sealed)
    first = plan([old], readers=readers)
    assert len(_heads(first)) == 16 and first.heads_written == 10
    new = version(Post("content/b.md", "2026-11-21T10:00:00+00:00"), "For Bob",
                  frozenset({"bob"}), random, sealed)
    second = plan([old, new], readers=readers, previous=first.states, index=first.index,
                  objects=first.objects, now=NOW + dt.timedelta(hours=1))
    before, after = _heads(first), _heads(second)
    assert set(after) == set(before)
    assert all(after[path] != before[path] for path in before)
    assert second.heads_written == 10 and len(second.index.dummies) == 6
    files = dict(first.files) | dict(second.files)
    assert sorted(BOB.open(files).values()) == ["A", "For Bob"]
    for person in others:
        assert list(person.open(files).values()) == ["A"]
        key = b64u_encode(person.reader.sign_pk)
        assert second.states[key].seq > first.states[key].seq
        assert second.states[key].head_items == first.states[key].head_items


def test_dummy_heads_look_like_real_ones_and_open_for_no_reader():
    """THREATS 55: a dummy's name is 32 hex digits like a real head's, its size is that of
    the real head it shadows (so sizes move as real heads' do), it starts with the head
    magic, and no reader's key opens it; its name is kept in the item index."""
    random, sealed = RecordingRandom(), []
    both = frozenset({"bob", "eve"})
    result = plan([version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A" * 3000,
                           both, random, sealed)])
    heads = _heads(result)
    real = {s.head_path for s in result.states.values()}
    sizes = {b64u_encode(r.reader.sign_pk): len(heads[s.head_path])
             for r in (BOB, EVE) for s in [result.states[b64u_encode(r.reader.sign_pk)]]}
    assert set(result.index.dummies) == set(heads) - real and len(heads) == 8
    for path, shadow in result.index.dummies.items():
        assert re.fullmatch(r"f/[0-9a-f]{32}", path)
        assert len(heads[path]) == sizes[shadow]
        assert heads[path].startswith(HEAD_MAGIC)
        for person in (BOB, EVE):
            secrets = pairwise_secrets(bytes(person.box), ADA.box_pk, ADA.sign_pk,
                                       person.reader.sign_pk)
            with pytest.raises(FeedAuthError):
                open_head(heads[path], secrets, author_sign_pk=ADA.sign_pk,
                          reader_sign_pk=person.reader.sign_pk)
    assert FeedIndex.from_json(result.index.to_json()).dummies == result.index.dummies


def test_no_change_rewrites_no_head_and_keeps_the_dummies():
    """A build that changes no friend's view writes no head, real or dummy: the dummies'
    paths are kept with the real heads', and the item index still lists them."""
    random, sealed = RecordingRandom(), []
    a = version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A",
                frozenset({"bob", "eve"}), random, sealed)
    first = plan([a])
    again = plan([a], previous=first.states, index=first.index, objects=first.objects)
    assert again.files == [] and again.heads_written == 0
    assert set(_heads(first)) <= set(again.keep)
    assert again.index.dummies == first.index.dummies


def test_dummies_follow_the_bucket_as_friends_come_and_go():
    """Nine friends need sixteen heads, two need eight: the dummies grow and shrink to
    fit, the names published before are kept as far as they go (rewritten, not
    replaced), and a dummy whose shadowed friend left takes another's size."""
    random, sealed = RecordingRandom(), []
    many = [BOB.reader, EVE.reader] + [Person(n, f"f{n}").reader for n in range(20, 27)]
    a = version(Post("content/a.md", "2026-11-20T10:00:00+00:00"), "A",
                frozenset(r.name for r in many), random, sealed)
    few = plan([a])
    assert len(few.index.dummies) == 6
    grown = plan([a], readers=many, previous=few.states, index=few.index, objects=few.objects)
    assert len(_heads(grown)) == 16 and set(few.index.dummies) < set(grown.index.dummies)
    shrunk = plan([a], previous=grown.states, index=grown.index, objects=grown.objects)
    assert len(_heads(shrunk)) == 8 and set(shrunk.index.dummies) < set(grown.index.dummies)
    keys = {b64u_encode(BOB.reader.sign_pk), b64u_encode(EVE.reader.sign_pk)}
    assert set(shrunk.index.dummies.values()) <= keys


def test_plan_dummies_keeps_names_and_never_takes_a_real_heads():
    """The pure step, with scripted randomness: the name published before comes first
    (its shadow gone, it takes a reader's), then new names, skipping one that is a real
    head's path."""
    sizes = {"bob": 640, "eve": 1024}
    names = iter(bytes([n]) * 16 for n in range(10))  # the first is all zeros: taken

    def random(n: int) -> bytes:
        return next(names) if n == 16 else bytes(n)

    out = plan_dummies({"f/" + "a" * 32: "gone"}, sizes, random=random,
                       taken={"f/" + "0" * 32})
    assert list(out) == ["f/" + "a" * 32] + ["f/" + f"{n:02x}" * 16 for n in range(1, 6)]
    assert set(out.values()) == {"bob"}  # bytes(8) picks the first reader, sorted


# ---------------------------------------------------------------- attachment names (§3.3)


def test_each_file_is_named_by_every_reference_its_post_makes_to_it():
    """A file gets the name each of its references means (decoded, normalised, leading
    `..` kept as written: `../notes/x.png` from notes/ is not shortened to `x.png`, which
    a reader could not match); spellings of one name count once; files in path order."""
    names, left_out = attachment_names({
        "content/2026/notes/x.png": ["x.png", "./x.png", "x.png?v=2", "../notes/x.png"],
        "content/2026/bread/starter.png": ["../bread/starter.png"],
        "content/2026/notes/my photo.png": ["my%20photo.png", "my photo.png"],
    })
    assert {"content/2026/bread/starter.png": ["../bread/starter.png"],
            "content/2026/notes/my photo.png": ["my photo.png"],
            "content/2026/notes/x.png": ["x.png", "../notes/x.png"]} == names
    assert list(names) == sorted(names) and left_out == []


def test_a_name_no_reader_accepts_is_left_out_and_said_so():
    """A backslash or control character, or over 255 bytes: §3.3 refuses the name, and a
    reader would refuse the whole post, so the file is left out (with why) and the post
    still goes; past 64 names in all, the rest are left out too."""
    long = "x" * 252 + ".png"
    names, left_out = attachment_names({
        "content/a\\b.png": ["a%5Cb.png"], "content/c\tb.png": ["c%09b.png"],
        f"content/{long}": [long], "content/ok.png": ["ok.png"]})
    assert {"content/ok.png": ["ok.png"]} == names
    assert 3 == len(left_out)
    assert left_out[0] == ("content/a\\b.png is not sent to friends as 'a%5Cb.png': an "
                           "attachment's name ('a\\\\b.png') may have no backslash or "
                           "control character and at most 255 bytes")
    many = {f"content/{i:03d}.png": [f"{i:03d}.png"] for i in range(70)}
    names, left_out = attachment_names(many)
    assert [f"content/{i:03d}.png" for i in range(64)] == list(names)
    assert 6 == len(left_out)
    assert left_out[0] == ("content/064.png is not sent to friends as '064.png': a post "
                           "has at most 64 attachments")


def test_a_file_with_two_names_is_sealed_once_and_listed_under_both():
    """One object, one key: both attachment entries carry the same reference, and the
    post opens to a document the reader's own check accepts."""
    from o2m_pub.reader.fetch_plan import parse_post

    random = RecordingRandom()
    post = Post("content/2026/notes/today.md", "2026-11-20T10:00:00+00:00")
    files, ref = seal_post(post, "![a](x.png) ![b](../notes/x.png)",
                           {"content/2026/notes/x.png": b"\x89PNG"}, random=random,
                           names={"content/2026/notes/x.png": ["x.png", "../notes/x.png"]})
    assert 2 == random.keys and 2 == len(files)  # the file's object and the post's
    doc = parse_post(open_object(dict(files)[ref.path], ref))
    first, second = doc["attachments"]
    assert ("x.png", "../notes/x.png") == (first["name"], second["name"])
    assert {k: first[k] for k in ("hash", "key", "size", "media_type")} == \
        {k: second[k] for k in ("hash", "key", "size", "media_type")}


def test_a_file_whose_type_is_guessed_in_mixed_case_is_sent_in_lower_case():
    """PROTOCOL.md §3.3: media types in lower case. MIME tables hold mixed case
    (/etc/mime.types: `.docm` is application/vnd.ms-word.document.macroEnabled.12,
    `.amr` audio/AMR); sent as guessed, every friend's reader refused the whole post.
    A guess that stays out of the rule (parameters) goes as application/octet-stream."""
    import mimetypes

    from o2m_pub.reader.fetch_plan import parse_post

    mimetypes.add_type("application/X-O2M-Test.macroEnabled", ".o2mtest")
    mimetypes.add_type("text/x-o2m; charset=utf-8", ".o2mparam")
    post = Post("content/2026/doc.md", "2026-11-20T10:00:00+00:00")
    files, ref = seal_post(post, "[doc](doc.o2mtest) [p](p.o2mparam)",
                           {"content/2026/doc.o2mtest": b"PK", "content/2026/p.o2mparam": b"x"},
                           random=RecordingRandom())
    doc = parse_post(open_object(dict(files)[ref.path], ref))
    assert {"doc.o2mtest": "application/x-o2m-test.macroenabled",
            "p.o2mparam": "application/octet-stream"} == {
        a["name"]: a["media_type"] for a in doc["attachments"]}


@pytest.mark.parametrize(("changes", "words"), [
    ({"tags": tuple(f"t{i}" for i in range(65))}, "`tags` has 65 tags"),
    ({"tags": ("x" * 129,)}, "has 129 characters"),
    ({"title": "x" * 4097}, "`title` has 4,097 characters"),
    ({"summary": "y" * 4097}, "`summary` has 4,097 characters"),
])
def test_a_post_no_reader_would_take_is_never_sealed(changes, words):
    """§3.3's limits, which every reader enforces (audit t5): the writer refuses to make
    the plaintext of a post beyond them, as bad input naming the post, rather than
    publish what each friend would refuse (the site's parser reports it first, with its
    line: tests/site/test_reader_limits.py)."""
    from o2m_pub.errors import PostError
    from o2m_pub.friends.private_feeds import post_plaintext

    post = Post("content/2026/a.md", "2026-11-20T10:00:00+00:00", **changes)
    with pytest.raises(PostError, match=words) as caught:
        post_plaintext(post, "Body.", [])
    assert "content/2026/a.md" == caught.value.problem.path
