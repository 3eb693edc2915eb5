"""§4.5 on the reader's side (`reader/thread_fetch.py`): the links in an OP's item,
checked in order against Bob's site in memory (the fetch plan's Getter, as the HTTPS
getter behaves: 404 for what it lacks, Refused past the cap or when unreachable). The
bad input of issue 13: a link whose object does not match its hash, a link at a local
address when the OP's site is public, a forged statement, a reaction from outside the
thread; the replier's host down. Each fails that reply alone, with its reason."""

from __future__ import annotations

import datetime as dt

import nacl.public
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import statements

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.conversation import (
    REACTION_CONTEXT,
    REPLY_CONTEXT,
    ConversationError,
    PostRef,
    make_link,
    open_link,
    sign_reaction,
    sign_reply,
)
from o2m_pub.reader.fetch_plan import (
    ByteBudget,
    FriendKeys,
    Download,
    Refused,
    fetch_friend,
    parse_post,
)
from o2m_pub.reader.model import Reason
from o2m_pub.reader.thread_fetch import linked_rows, own_item_row

ADA = nacl.signing.SigningKey(bytes([1]) * 32)
BOB = nacl.signing.SigningKey(bytes([2]) * 32)
EVE = nacl.signing.SigningKey(bytes([3]) * 32)
ADA_KEY = b64u_encode(bytes(ADA.verify_key))
POST_ID = b64u_encode(bytes(16))
POST = PostRef(ADA_KEY, POST_ID)
DATE = "2026-11-25T09:00:00Z"


class BobsSite:
    """Bob's published objects; `down` makes every request fail as unreachable."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.down = False
        self.asked: list[tuple[str, bytes | None]] = []

    def get_site(self, url: str, pin: bytes | None):  # noqa: ANN201
        self.asked.append((url, pin))

        def get(path: str, *, cap: int, **_: object) -> Download:
            if self.down:
                raise Refused(Reason.UNREACHABLE, "connection refused")
            data = self.files.get(path)
            if data is None:
                return Download(404)
            if len(data) > cap:
                raise Refused(Reason.OVERSIZED, "over the cap")
            return Download(200, data)
        return get

    def reply(self, text: str, *, signer: nacl.signing.SigningKey = BOB,
              url: str = "https://bob.example/", to: PostRef = POST,
              tamper: bool = False, rid: int = 4) -> dict:
        doc = {"date": DATE, "markdown": text, "reply_to": to.text, "type": "o2m-post", "v": 1}
        data, ref = feeds.seal_object(canonical_json(doc), key=bytes([7]) * 32,
                                      nonce=bytes([8]) * 24)
        self.files[ref.path] = data[:-1] + bytes([data[-1] ^ 1]) if tamper else data
        statement = sign_reply(signing_key=signer, post_id=b64u_encode(bytes([rid]) * 16),
                               date=DATE, object_hash=ref.hash, object_size=ref.size,
                               to=to, thread=to, url=url)
        return make_link(statement, ref.key, "sha256/" + b64u_encode(bytes([6]) * 32))


def _item(replies: list[dict], reactions: list[str] = ()) -> feeds.Item:
    return feeds.Item.from_json({"id": POST_ID, "date": DATE, "deleted": True,
                                 "replies": replies, "reactions": list(reactions)})


def _rows(site: BobsSite, item: feeds.Item, *, op_url: str = "https://ada.example/",
          known: dict | None = None):
    return linked_rows(item, op_key=ADA_KEY, op_site_url=op_url, known=known or {},
                       get_site=site.get_site, budget=ByteBudget(1 << 20),
                       parse_post=parse_post)


def test_a_good_link_is_fetched_from_the_repliers_site_with_its_pin():
    """Steps 1-8 pass: the reply's text, from Bob's URL, with the pin the link gives."""
    site = BobsSite()
    (row,), problems = _rows(site, _item([site.reply("Yes.")]))
    assert (row.status, row.markdown, problems) == ("ok", "Yes.", [])
    assert site.asked == [("https://bob.example/", bytes([6]) * 32)]


def test_a_link_whose_object_does_not_match_its_hash_fails_alone():
    """Bad input: the bytes at `o/<hash>` are not the object the statement names: that
    reply fails with its reason, the good one beside it stands."""
    site = BobsSite()
    bad = site.reply("Forged text", tamper=True)
    good_site = BobsSite()
    good = good_site.reply("Fine.", url="https://bob2.example/", rid=5)
    site.files.update(good_site.files)
    rows, problems = _rows(site, _item([bad, good]))
    assert [(r.status, r.markdown) for r in rows] == [("failed", None), ("ok", "Fine.")]
    assert "does not match its reference" in rows[0].detail
    assert len(problems) == 1 and "could not be checked" in problems[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.7", "localhost", "[::1]"])
def test_a_link_at_a_local_address_is_refused_when_the_op_is_public(host):
    """Bad input (§2.4 address rule): a public OP's thread may not steer readers into
    their own network; nothing is requested. A local OP (a test, the demo) may link
    local replies."""
    site = BobsSite()
    link = site.reply("Hi", url=f"https://{host}:8443/")
    (row,), problems = _rows(site, _item([link]))
    assert row.status == "failed" and "local address" in row.detail
    assert site.asked == []
    (row,), _ = _rows(site, _item([link]), op_url="https://127.0.0.1:9000/")
    assert row.status == "ok"


def test_a_forged_reply_is_refused_before_anything_is_fetched():
    """Bad input: a statement whose signature is Eve's though it names Bob: refused at
    step 2, no row, nothing fetched."""
    site = BobsSite()
    link = site.reply("Hi")
    eve = site.reply("Hi", signer=EVE)
    from o2m_pub.protocol.canonical import b64u_decode
    forged = b64u_decode(eve["statement"])[:64] + b64u_decode(link["statement"])[64:]
    rows, problems = _rows(site, _item([{**link, "statement": b64u_encode(forged)}]))
    assert rows == [] and "signature does not match" in problems[0]
    assert site.asked == []


def test_a_reply_to_another_thread_is_refused():
    """Step 5: a link in this item must be in this post's thread."""
    site = BobsSite()
    link = site.reply("Hi", to=PostRef(ADA_KEY, b64u_encode(bytes([9]) * 16)))
    (row,), problems = _rows(site, _item([link]))
    assert row.status == "failed" and "not in this post's thread" in row.detail


def test_the_repliers_host_down_keeps_the_previous_copy_as_stale():
    """§4.5: unreachable keeps what was stored, marked stale; a reply never stored is
    reported as not fetched."""
    site = BobsSite()
    link = site.reply("First.")
    (row,), _ = _rows(site, _item([link]))
    site.down = True
    old = row.__class__(**{**row.__dict__, "statement": "an older version"})
    (stale,), problems = _rows(site, _item([link]), known={(row.author, row.id): old})
    assert (stale.status, stale.markdown) == ("stale", "First.")
    (failed,), problems = _rows(site, _item([link]))
    assert failed.status == "failed" and "could not be fetched" in problems[0]


def test_a_link_seen_before_is_not_fetched_again():
    """A statement stored before with the same bytes: no download."""
    site = BobsSite()
    link = site.reply("Once.")
    (row,), _ = _rows(site, _item([link]))
    site.asked.clear()
    (again,), _ = _rows(site, _item([link]), known={(row.author, row.id): row})
    assert again == row and site.asked == []


def test_a_reaction_outside_the_thread_is_refused():
    """A reaction in the OP's item must be to the post or to a reply linked there."""
    site = BobsSite()
    elsewhere = PostRef(ADA_KEY, b64u_encode(bytes([9]) * 16))
    good = b64u_encode(sign_reaction(signing_key=BOB, date=DATE, emoji="👍", to=POST))
    bad = b64u_encode(sign_reaction(signing_key=EVE, date=DATE, emoji="👎", to=elsewhere))
    rows, problems = _rows(site, _item([], [good, bad]))
    assert [(r.kind, r.emoji) for r in rows] == [("reaction", "👍")]
    assert "outside this thread" in problems[0]


def test_a_huge_reply_read_through_a_thread_is_refused_unfetched():
    """Bad input: a statement naming a 2 MiB object (a thread's reply is at most 1 MiB):
    refused with its reason before anything is downloaded."""
    site = BobsSite()
    statement = sign_reply(signing_key=BOB, post_id=b64u_encode(bytes([4]) * 16), date=DATE,
                           object_hash="ab" * 32, object_size=2 << 20, to=POST, thread=POST,
                           url="https://bob.example/")
    (row,), problems = _rows(site, _item([make_link(statement, bytes(32))]))
    assert row.status == "failed" and "at most 1,048,576" in row.detail
    assert site.asked == []


def test_a_reply_past_the_byte_budget_fails_alone_and_is_not_charged():
    """§4.5 step 7, "within the fetch's byte budget": a reply whose object would pass
    what is left of the friend's budget is not fetched and not charged (so their own
    posts keep the room); it fails alone as not fetched, keeping a copy stored before
    as stale; a smaller one after it that fits is still read."""
    site = BobsSite()
    first, second = site.reply("First."), site.reply("Second, longer. " * 100, rid=5)
    small = site.reply("Third.", rid=6)
    sizes = [open_link(link).statement.object_size for link in (first, second, small)]
    assert sizes[2] < sizes[1]
    budget = ByteBudget(sizes[0] + sizes[1] - 1)  # after the first: room for the third
    rows, problems = linked_rows(_item([first, second, small]), op_key=ADA_KEY,
                                 op_site_url="https://ada.example/", known={},
                                 get_site=site.get_site, budget=budget, parse_post=parse_post)
    assert [(r.status, r.markdown) for r in rows] == [
        ("ok", "First."), ("failed", None), ("ok", "Third.")]
    assert "would pass this fetch's byte budget" in problems[0]
    assert budget.spent == sizes[0] + sizes[2] <= budget.total
    before = rows[1].__class__(**{**rows[0].__dict__, "id": rows[1].id, "statement": "older",
                                  "markdown": "Second, as it was."})
    (_, stale, _), _ = linked_rows(_item([first, second, small]), op_key=ADA_KEY,
                                   op_site_url="https://ada.example/",
                                   known={(before.author, before.id): before},
                                   get_site=site.get_site, budget=ByteBudget(budget.total),
                                   parse_post=parse_post)
    assert (stale.status, stale.markdown) == ("stale", "Second, as it was.")


# ------------------------------------- the OP's feed is never refused for a link (§4.5)

ADA_BOX = nacl.public.PrivateKey(bytes([4]) * 32)
READER = nacl.signing.SigningKey(bytes([5]) * 32)
READER_BOX = nacl.public.PrivateKey(bytes([6]) * 32)
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def _ops_fetch(link: dict, **limits: int):  # noqa: ANN202
    """Ada's head for the reader, with one post whose item links `link`, fetched whole
    by fetch_friend (its replier's site: Bob's, empty); the outcome and Ada's post."""
    secrets = feeds.pairwise_secrets(bytes(ADA_BOX), bytes(READER_BOX.public_key),
                                     bytes(ADA.verify_key), bytes(READER.verify_key))
    post = canonical_json({"date": DATE, "markdown": "Hello.", "type": "o2m-post", "v": 1})
    data, ref = feeds.seal_object(post, key=bytes([7]) * 32, nonce=bytes([9]) * 24)
    files = {ref.path: data}
    item = feeds.Item(POST_ID, DATE, ref, replies=(link,))
    files[secrets.head_path] = feeds.seal_head(
        signing_key=ADA, reader_sign_pk=bytes(READER.verify_key), secrets=secrets, seq=1,
        updated="2026-11-30T10:00:00Z", expires="2026-12-30T10:00:00Z", items=[item],
        prev=None, nonce=bytes(24))

    def get(path: str, *, cap: int, **_: object) -> Download:
        return Download(200, files[path]) if path in files else Download(404)

    class NoAttachments:
        def has(self, digest: str) -> bool:
            return False

        def save(self, digest: str, data: bytes) -> bool:
            return True

    keys = FriendKeys("ada", bytes(ADA.verify_key), bytes(ADA_BOX.public_key),
                      bytes(READER.verify_key), secrets, "https://ada.example/")
    return fetch_friend(keys, None, {}, get, NoAttachments(), NOW, public=False,
                        get_site=BobsSite().get_site, threads={}, **limits), ref


def test_a_link_whose_statement_object_has_no_size_fails_alone_in_the_ops_update():
    """Bad input (§4.5): a statement self-signed by its author whose `object` has a
    `hash` and some other key but no `size`: Ada's update is accepted with her post,
    the link is reported as not checked (it raised KeyError, and the whole update was
    refused as an internal error)."""
    doc = {**statements.base_doc(b64u_encode(bytes(EVE.verify_key)), "reply"),
           "object": {"hash": "ab" * 32, "x": 1}, "thread": POST.to_json(),
           "to": POST.to_json()}
    link = {"key": b64u_encode(bytes(32)),
            "statement": b64u_encode(statements.sign(doc, REPLY_CONTEXT, EVE))}
    out, _ = _ops_fetch(link)
    assert (out.status, out.new) == ("new", 1)
    assert ("conversation", "a reply could not be checked: reply statement: its object "
            "needs `hash` and `size`") in out.update.notifications


def test_a_linked_reply_past_the_byte_budget_leaves_the_ops_update_whole():
    """§4.5 step 7 and "the OP's feed is never refused for it": a budget that holds
    Ada's own post but not it and the 1,000-byte reply she links together; her post is
    read first and stored, the reply fails alone, unfetched (it was charged first and
    the budget then refused her whole update)."""
    statement = sign_reply(signing_key=EVE, post_id=b64u_encode(bytes([4]) * 16), date=DATE,
                           object_hash="ab" * 32, object_size=1000, to=POST, thread=POST,
                           url="https://eve.example/")
    out, ref = _ops_fetch(make_link(statement, bytes(32)), max_bytes=ref_size() + 999)
    assert (out.status, out.new, out.reason) == ("new", 1, None)
    assert [r.status for r in out.update.thread_links[POST_ID]] == ["failed"]
    assert any("byte budget" in text for _, text in out.update.notifications)


def ref_size() -> int:
    post = canonical_json({"date": DATE, "markdown": "Hello.", "type": "o2m-post", "v": 1})
    return feeds.seal_object(post, key=bytes(32), nonce=bytes(24))[1].size


def test_a_reply_in_its_authors_feed_must_name_its_items_object_size_too():
    """§4.5: in its author's own feed, a reply's `object` is the item's object, hash
    and size: a statement of another size is another version, and is refused."""
    statement = sign_reply(signing_key=BOB, post_id=b64u_encode(bytes([4]) * 16), date=DATE,
                           object_hash="ab" * 32, object_size=640, to=POST, thread=POST,
                           url="https://bob.example/")
    bob = b64u_encode(bytes(BOB.verify_key))

    def item(size: int) -> feeds.Item:
        return feeds.Item(b64u_encode(bytes([4]) * 16), DATE,
                          feeds.ObjectRef("ab" * 32, size, bytes(32)), reply_to=POST.text,
                          statement=b64u_encode(statement))
    assert own_item_row(item(640), bob).object_hash == "ab" * 32
    with pytest.raises(ConversationError, match="another item or version"):
        own_item_row(item(99_999), bob)


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_a_link_or_item_of_any_signed_json_never_raises_past_its_reply(data):
    """§4.5, "the OP's feed is never refused for it": whatever JSON a replier signs,
    the OP's item linking it gives rows and problems (never an exception, which would
    refuse the OP's whole update), and their own item fails with ConversationError
    alone."""
    kind = data.draw(st.sampled_from(["reply", "reaction"]))
    doc = data.draw(statements.hostile_doc(b64u_encode(bytes(BOB.verify_key)), kind))
    signed = statements.sign(doc, REPLY_CONTEXT if kind == "reply" else REACTION_CONTEXT,
                             BOB)
    link = {"key": b64u_encode(bytes(32)), "statement": b64u_encode(signed)}
    if data.draw(st.booleans()):
        link["tls_pin"] = data.draw(st.sampled_from(["sha256/" + "A" * 43,
                                                     "sha256/" + "A" * 42 + "B"]))
    _rows(BobsSite(), _item([link], [link["statement"]]))
    own = feeds.Item(b64u_encode(bytes([1]) * 16), DATE,
                     feeds.ObjectRef("ab" * 32, 640, bytes(32)) if kind == "reply" else None,
                     statement=link["statement"])
    try:
        own_item_row(own, b64u_encode(bytes(BOB.verify_key)))
    except ConversationError:
        pass
