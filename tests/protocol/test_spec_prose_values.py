"""Values PROTOCOL.md states in its prose beside the vectors, which the quote tests (each
file's values found somewhere in the text) do not reach: §1.4's 80-byte `feed.json`,
§4.8's 454-byte reply body and 656-byte notice. Each is read from the spec's own sentence
and checked against the vector files and the code that opens them, so a number in the
text cannot drift from the bytes it describes."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.protocol import conversation as c
from o2m_pub.protocol.feed_signature import check_feed, open_feed_signature

SPEC = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text()
VECTORS = Path(__file__).parents[1] / "vectors"


def _section(start: str, end: str) -> str:
    """The spec's text from the heading `start` to the next heading `end`."""
    first = SPEC.index(start)
    return SPEC[first:SPEC.index(end, first)]


def _bytes_stated(pattern: str, section: str) -> re.Match[str]:
    found = re.search(pattern, section)
    assert found is not None, pattern
    return found


def test_section_1_4_states_the_size_and_bytes_of_the_signed_feed_json():
    """§1.4: "her `feed.json` is the 80 bytes `{…}` and a newline": the text plus a newline
    is that many bytes, is the vector's feed, and is the feed the quoted signature signs
    (its `size` and `sha256`), as the code checks it."""
    stated = _bytes_stated(r"her `feed\.json` is the (\d+) bytes\s+`([^`]+)`\s+and\s+a"
                           r"\s+newline", _section("### 1.4 Feeds", "### 1.5 "))
    size, feed = int(stated[1]), (stated[2] + "\n").encode()
    assert len(feed) == size == 80
    connect = json.loads((VECTORS / "connect.json").read_text())
    assert feed == connect["inputs"]["feed_json"].encode()
    author = bytes(SigningKey(bytes(range(32))).verify_key)
    feed_pk = bytes(SigningKey(bytes(range(0xa0, 0xc0))).verify_key)
    signature = open_feed_signature(connect["feed_signature"].encode(), feed_pk=feed_pk,
                                    author_sign_pk=author)
    assert (signature.size, signature.sha256) == (size, hashlib.sha256(feed).hexdigest())
    check_feed(signature, feed)


def test_section_4_8_states_the_size_of_the_reply_body_it_quotes():
    """§4.8: "the body (454 bytes)": the body quoted after it is that many bytes of UTF-8,
    is the vector's, and with the table's signature is a statement the code opens."""
    section = _section("### 4.8 Test vectors", "## 5. ")
    stated = _bytes_stated(r"Bob's reply statement: the body \((\d+) bytes\), then its "
                           r"signature:\s+```\n([^\n]+)\n```", section)
    size, body = int(stated[1]), stated[2].encode()
    assert len(body) == size == 454
    vectors = json.loads((VECTORS / "conversation.json").read_text())
    assert body == vectors["reply_body"].encode()
    signature = _bytes_stated(r"\| reply signature \| `([0-9a-f]{128})` \|", section)[1]
    reply = c.open_reply(bytes.fromhex(signature) + body)
    assert (reply.author, reply.object_size) == (
        "JUO5L_EJVRFHatyDadtt3JM2ZaEZeN2hQE7hBmypVZ0", 640)


def test_section_4_8_states_the_size_and_digest_of_the_notice():
    """§4.8's table: "notice SHA-256 (656 bytes)": the vector's notice is that many bytes,
    of that SHA-256, and opens for Ada as Bob's reply notice of seq 7 (the text's
    inputs)."""
    section = _section("### 4.8 Test vectors", "## 5. ")
    stated = _bytes_stated(r"\| notice SHA-256 \((\d+) bytes\) \| `([0-9a-f]{64})` \|",
                           section)
    vectors = json.loads((VECTORS / "conversation.json").read_text())
    notice = bytes.fromhex(vectors["notice_hex"])
    assert (len(notice), hashlib.sha256(notice).hexdigest()) == (int(stated[1]), stated[2])
    assert len(notice) == vectors["notice_size"] == 656
    ada, bob = SigningKey(bytes(range(32))), SigningKey(bytes(range(64, 96)))
    ada_box, bob_box = PrivateKey(bytes(range(32, 64))), PrivateKey(bytes(range(96, 128)))
    opened = c.open_notice(notice, sender_sign_pk=bytes(bob.verify_key),
                           sender_box_pk=bytes(bob_box.public_key), own_box_sk=bytes(ada_box),
                           own_sign_pk=bytes(ada.verify_key))
    assert (opened.kind, opened.seq, opened.post.text) == ("reply", 7, vectors["post_ref"])
