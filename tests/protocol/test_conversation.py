"""PROTOCOL.md §4 (conversations), the pure core: references, statements, links, notices
and the thread tree; the vectors against the code, an independent verifier and the spec;
and the bad input of issue 13 that the core refuses (forged statements, replies outside
the thread, loops, depth and size caps, notices from someone else)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey
from support import statements

from o2m_pub.protocol import conversation as c
from o2m_pub.protocol.canonical import b64u_encode

VECTORS = Path(__file__).parents[1] / "vectors"
sys.path.insert(0, str(VECTORS))

from make_conversation_vectors import compute  # noqa: E402
from verify_conversation_vectors import verify  # noqa: E402

ADA, BOB, EVE = (SigningKey(bytes([n]) * 32) for n in (1, 2, 3))
POST = c.PostRef(b64u_encode(bytes(ADA.verify_key)), b64u_encode(bytes(16)))
DATE = "2026-11-25T09:00:00Z"


def _reply(signer: SigningKey = BOB, *, to: c.PostRef = POST, thread: c.PostRef = POST,
           rid: bytes = bytes([1]) * 16, url: str = "https://bob.example/") -> bytes:
    return c.sign_reply(signing_key=signer, post_id=b64u_encode(rid), date=DATE,
                        object_hash="ab" * 32, object_size=640, to=to, thread=thread, url=url)


def test_conversation_vectors_match_the_code():
    """The generator, run on today's code, writes exactly the stored vectors."""
    assert compute() == json.loads((VECTORS / "conversation.json").read_text())


def test_an_independent_verifier_computes_the_same_bytes():
    """Code that imports nothing of o2m builds the statements, the link and the notice
    byte for byte, from the spec's words."""
    verify(json.loads((VECTORS / "conversation.json").read_text()))
    result = subprocess.run([sys.executable, "-I",
                             str(VECTORS / "verify_conversation_vectors.py")],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_protocol_md_quotes_the_same_vectors():
    """§4.8 quotes the file's values, so the spec and the code cannot drift."""
    spec = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
    v = json.loads((VECTORS / "conversation.json").read_text())
    for key in ("post_ref", "reply_body", "reply_signature", "reaction_id", "reaction_body",
                "reaction_signature", "link", "notice_key", "notice_sha256"):
        assert v[key] in spec, key


def test_a_reference_round_trips_and_bad_ones_are_refused():
    """§4.1: `o2m:<author>/<id>`, keys and ids of their exact lengths only."""
    assert c.PostRef.parse(POST.text) == POST
    for bad in ("o2m:abc/def", "https://x.example/", POST.text + "/x", POST.text[4:], None):
        with pytest.raises(c.ConversationError):
            c.PostRef.parse(bad)


def test_a_forged_reply_signed_by_someone_else_is_refused():
    """Bad input: a statement that names Bob as its author but is signed by Eve (or
    altered after signing) does not verify; nothing of it is read."""
    signed = _reply()
    eve = _reply(EVE)
    forged = eve[:64] + signed[64:]
    with pytest.raises(c.ConversationError, match="signature does not match"):
        c.open_reply(forged)
    altered = signed.replace(b"bob.example", b"eve.example")
    with pytest.raises(c.ConversationError, match="signature does not match"):
        c.open_reply(altered)
    assert c.open_reply(signed).author == b64u_encode(bytes(BOB.verify_key))


def test_a_link_to_a_reply_of_another_thread_is_refused():
    """§4.5 step 5: an OP's link must name a reply in that post's thread; a reply to
    itself (a loop of one) is refused too."""
    other = c.PostRef(POST.author, b64u_encode(bytes([9]) * 16))
    with pytest.raises(c.ConversationError, match="not in this post's thread"):
        c.check_linked(c.open_reply(_reply(to=other, thread=other)), POST)
    me = c.PostRef(b64u_encode(bytes(BOB.verify_key)), b64u_encode(bytes([1]) * 16))
    with pytest.raises(c.ConversationError, match="itself"):
        c.check_linked(c.open_reply(_reply(to=me)), POST)


def test_a_link_at_a_non_https_address_is_refused():
    """§4.2: the statement's `url` is https; a signed one at http:// never verifies."""
    with pytest.raises(c.ConversationError, match="https"):
        _reply(url="http://bob.example/")


def _signed(doc: dict, context: bytes = c.REPLY_CONTEXT, key: SigningKey = BOB) -> bytes:
    return statements.sign(doc, context, key)


BOB_KEY = b64u_encode(bytes(BOB.verify_key))


@pytest.mark.parametrize("obj, ok", [
    ({"hash": "ab" * 32, "size": 640}, True),
    ({"hash": "ab" * 32, "size": 640, "later": [1]}, True),  # §2.1, as in a reference
    ({"hash": "ab" * 32, "x": 1}, False),
    ({"size": 640, "x": 1}, False),
    ({"hash": "ab" * 32}, False),
    ({"hash": "AB" * 32, "size": 640}, False),
    ({"hash": "ab" * 32, "size": 0}, False),
    ({"hash": "ab" * 32, "size": (64 << 20) + 1}, False),
    ({"hash": "ab" * 32, "size": True}, False),
    (["ab" * 32, 640], False),
], ids=["exact", "unknown-key", "no-size", "no-hash", "hash-only", "upper-case-hash",
        "size-0", "over-64-MiB", "size-true", "a-list"])
def test_a_reply_object_is_a_hash_and_a_size_or_the_reply_fails_alone(obj, ok):
    """§4.2 and §4.5 step 3: `object` needs `hash` (64 lowercase hex) and `size` (1 to
    64 MiB), as a reference (§3.3); a statement without one fails with the module's
    own error, which fails that reply alone, never a KeyError that refuses the OP's
    whole feed."""
    signed = _signed({**statements.base_doc(BOB_KEY, "reply"), "object": obj})
    if ok:
        assert (c.open_reply(signed).object_hash, c.open_reply(signed).object_size) == (
            "ab" * 32, 640)
        return
    with pytest.raises(c.ConversationError, match="object"):
        c.open_reply(signed)
    with pytest.raises(c.ConversationError, match="object"):
        c.open_link({"key": b64u_encode(bytes(32)), "statement": b64u_encode(signed)})


@pytest.mark.parametrize("url, ok", [
    ("https://bob.example/", True), ("https://bob.example/blog/", True),
    ("https://127.0.0.1:8443/", True), ("https://[::1]:8443/", True),
    ("https://[/", False), ("https://[::1/", False), ("https://bob.example:99999/", False),
    ("https://bob.example:x/", False), ("https:///", False), ("https://u@bob.example/", False),
    ("https://bob.example/?q=1", False), ("https://bob.example", False),
    ("https://bob example/", False), ("http://bob.example/", False), (["https://b/"], False),
])
def test_a_reply_url_is_a_site_url_as_a_card_has_one(url, ok):
    """§4.2: `url` is the replier's card URL, so a card's rule holds (§2.4); one that
    urlsplit cannot split (an unclosed "[") or whose port is no port would raise from
    the reader's address check or its connection, and refuse the OP's whole feed."""
    signed = _signed({**statements.base_doc(BOB_KEY, "reply"), "url": url})
    if ok:
        assert c.open_reply(signed).url == url
        return
    with pytest.raises(c.ConversationError, match="url"):
        c.open_reply(signed)


def test_a_link_pin_is_sha256_and_canonical_b64u_of_32_bytes():
    """§4.5 step 4 and §2.1: `tls_pin` is `sha256/` and b64u of 32 bytes, canonical; a
    last character with spare bits set (which the reader's decoder refuses when it
    uses the pin) fails the link at once."""
    good = c.make_link(_reply(), bytes(32), "sha256/" + b64u_encode(bytes(32)))
    assert c.open_link(good).tls_pin == "sha256/" + "A" * 43
    for pin in ("sha256/" + "A" * 42 + "B", "sha256/" + "A" * 44, "A" * 43,
                "sha1/" + "A" * 43, "sha256/" + b64u_encode(bytes(31)), 7):
        with pytest.raises(c.ConversationError, match="tls_pin"):
            c.open_link({**good, "tls_pin": pin})


@given(st.data())
@settings(max_examples=400, deadline=None)
def test_a_statement_of_any_json_fails_with_the_modules_own_error_only(data):
    """§4.5, "a link that fails any step fails that reply alone": whatever JSON a
    statement's author signs (fields missing, of another type, near misses such as an
    object without `size`), reading it as a reply, a reaction or a link raises nothing
    but ConversationError, which the reader turns into that reply's failure."""
    kind = data.draw(st.sampled_from(["reply", "reaction"]))
    doc = data.draw(statements.hostile_doc(BOB_KEY, kind))
    context = data.draw(st.sampled_from([c.REPLY_CONTEXT, c.REACTION_CONTEXT]))
    signed = _signed(doc, context)
    link = {"key": data.draw(st.sampled_from([b64u_encode(bytes(32)), "x", 3])),
            "statement": b64u_encode(signed)}
    if data.draw(st.booleans()):
        link["tls_pin"] = data.draw(st.sampled_from(["sha256/" + "A" * 43,
                                                     "sha256/" + "A" * 42 + "B"])
                                    | statements.JSON)
    for read, value in ((c.open_reply, signed), (c.open_reaction, signed),
                        (c.open_link, link), (c.open_reaction_text, link["statement"])):
        try:
            read(value)
        except c.ConversationError:
            pass


def test_a_link_is_checked_before_use():
    """§4.4: a link needs its key and statement; a bad pin, key or statement fails it."""
    good = c.make_link(_reply(), bytes(32), None)
    assert c.open_link(good).statement.to == POST
    for bad in ({**good, "key": "short"}, {**good, "tls_pin": "md5/x"}, {"key": good["key"]},
                {**good, "statement": b64u_encode(b"x" * 5000)}):
        with pytest.raises(c.ConversationError):
            c.open_link(bad)


@pytest.mark.parametrize("emoji", ["👍", "🎉", "❤️", "👍🏽", "🇫🇷", "1️⃣", "👩‍💻",
                                   "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"])
def test_one_emoji_is_a_reaction(emoji):
    """§4.3: one emoji, with modifiers, joiners, flags, keycaps and tags."""
    assert c.open_reaction(c.sign_reaction(signing_key=BOB, date=DATE, emoji=emoji,
                                           to=POST)).emoji == emoji


@pytest.mark.parametrize("text", ["", "ok", "👍👍", "a", "👍 ", "\u200d👍", "👍\u200d",
                                  "🇫🇷🇫", "👍" * 17])
def test_anything_but_one_emoji_is_refused(text):
    """§4.3: text, two emoji, a dangling joiner, a flag and a half: refused."""
    with pytest.raises(c.ConversationError):
        c.check_emoji(text)


@pytest.mark.parametrize("emoji", ["\U0001F1EB", "\U0001F1E6\ufe0f", "\u3297", "\u3299",
                                   "\u25aa", "\u00a9\ufe0f"])
def test_every_base_of_the_grammar_is_one_emoji_a_lone_regional_indicator_too(emoji):
    """§4.3's grammar: a base is any code point of its blocks (U+1F000-U+1FAFF holds
    the regional indicators) or of its single code points, U+3297 and U+3299 among
    them; a reader that refused one would drop a reaction another reader shows."""
    assert c.check_emoji(emoji) == emoji


@pytest.mark.parametrize("text", ["\u3298", "\U0001F1EB\U0001F1F7\ufe0f",
                                  "\U0001F1EB\U0001F1F7\U0001F1EB"])
def test_what_the_grammar_does_not_list_is_no_emoji(text):
    """§4.3: U+3298, between the two ideographs the grammar lists, is not one of them;
    a flag is exactly two regional indicators, with nothing after them."""
    with pytest.raises(c.ConversationError):
        c.check_emoji(text)


def test_a_reaction_is_one_item_per_person_and_post():
    """§4.3: the reaction's id is fixed by (author, post), so changing it replaces it;
    a statement with another id is refused."""
    a = c.open_reaction(c.sign_reaction(signing_key=BOB, date=DATE, emoji="👍", to=POST))
    b = c.open_reaction(c.sign_reaction(signing_key=BOB, date=DATE, emoji="🎉", to=POST))
    assert a.id == b.id
    doc = json.loads(a.signed[64:])
    doc["id"] = b64u_encode(bytes(16))
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(c.ConversationError, match="its id"):
        c.open_reaction(BOB.sign(c.REACTION_CONTEXT + body).signature + body)


def _ref(n: int) -> c.PostRef:
    return c.PostRef(POST.author, b64u_encode(n.to_bytes(16, "big")))


def test_the_thread_tree_nests_and_orders_by_date():
    """§4.6: depth first, each level by date."""
    root = POST
    replies = [(_ref(1), root, "2026-11-25T10:00:00Z"), (_ref(2), root, "2026-11-25T09:00:00Z"),
               (_ref(3), _ref(1), "2026-11-25T11:00:00Z")]
    order, refused = c.thread_order(root, replies)
    assert [(e.ref, e.depth) for e in order] == [(_ref(2), 1), (_ref(1), 1), (_ref(3), 2)]
    assert refused == []


def test_a_reply_loop_is_refused():
    """Bad input: replies that answer each other in a cycle never reach the root; they
    are refused with their reason, and the rest of the thread stands."""
    replies = [(_ref(1), _ref(2), DATE), (_ref(2), _ref(1), DATE), (_ref(3), POST, DATE)]
    order, refused = c.thread_order(POST, replies)
    assert [e.ref for e in order] == [_ref(3)]
    assert {r for r, _ in refused} == {_ref(1), _ref(2)}
    assert all("loop" in why for _, why in refused)


def test_an_enormous_thread_is_capped():
    """Bad input: depth past 16 and replies past 2048 are refused with their reason."""
    chain = [(_ref(n + 1), _ref(n) if n else POST, DATE) for n in range(20)]
    order, refused = c.thread_order(POST, chain)
    assert max(e.depth for e in order) == c.MAX_DEPTH
    assert any("deeper than 16" in why for _, why in refused)
    wide = [(_ref(n + 1), POST, DATE) for n in range(c.MAX_THREAD + 10)]
    order, refused = c.thread_order(POST, wide)
    assert len(order) == c.MAX_THREAD
    assert sum("more than 2048" in why for _, why in refused) == 10


def test_a_notice_opens_for_its_recipient_and_a_forged_one_does_not():
    """§4.7: the sender's signature is checked first; a notice signed by another key,
    or about someone else's post, is refused."""
    bob_box, ada_box = PrivateKey(bytes([4]) * 32), PrivateKey(bytes([5]) * 32)
    ada_pk, bob_pk = bytes(ADA.verify_key), bytes(BOB.verify_key)
    notice = c.seal_notice(signing_key=BOB, own_box_sk=bytes(bob_box),
                           recipient_box_pk=bytes(ada_box.public_key), recipient_sign_pk=ada_pk,
                           kind="reaction", post=POST, seq=3, nonce=bytes(24))
    opened = c.open_notice(notice, sender_sign_pk=bob_pk, sender_box_pk=bytes(bob_box.public_key),
                           own_box_sk=bytes(ada_box), own_sign_pk=ada_pk)
    assert (opened.kind, opened.post, opened.seq) == ("reaction", POST, 3)
    with pytest.raises(c.ConversationError, match="another sender"):
        c.verify_notice(notice, bytes(EVE.verify_key))
    forged = notice[:8] + bob_pk + EVE.sign(c.NOTICE_CONTEXT + notice[104:]).signature + \
        notice[104:]
    with pytest.raises(c.ConversationError, match="signature"):
        c.verify_notice(forged, bob_pk)
    with pytest.raises(c.ConversationError, match="not a notice"):
        c.notice_sender(b"O2MNOTE1" + bytes(9000))
