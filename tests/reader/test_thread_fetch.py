"""§4.5 on the reader's side (`reader/thread_fetch.py`): the links in an OP's item,
checked in order against Bob's site in memory (the fetch plan's Getter, as the HTTPS
getter behaves: 404 for what it lacks, Refused past the cap or when unreachable). The
bad input of issue 13: a link whose object does not match its hash, a link at a local
address when the OP's site is public, a forged statement, a reaction from outside the
thread; the replier's host down. Each fails that reply alone, with its reason."""

from __future__ import annotations

import nacl.signing
import pytest

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.conversation import PostRef, make_link, sign_reaction, sign_reply
from o2m_pub.reader.fetch_plan import ByteBudget, Refused, Download, parse_post
from o2m_pub.reader.model import Reason
from o2m_pub.reader.thread_fetch import linked_rows

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
