"""The limits a reader holds a post to (PROTOCOL.md §1.4 and §3.3,
o2m_pub/protocol/post_limits.py): one place the reader checks and the writer keeps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from o2m_pub.protocol import post_limits
from o2m_pub.protocol.attachments import MAX_ATTACHMENTS
from o2m_pub.protocol.post_limits import tags_problem, text_problem
from o2m_pub.protocol.public_media import ListedFile, parse_media


@pytest.mark.parametrize("key", ["title", "summary"])
def test_a_title_or_summary_may_have_4096_code_points_and_no_more(key):
    """Code points, not bytes: 4,096 emoji pass, one more character does not, and the
    line says how many there are and how many a reader takes."""
    assert text_problem(key, "\U0001f600" * 4096) is None
    assert (f"`{key}` has 4,097 characters; a reader takes at most 4,096"
            == text_problem(key, "x" * 4097))


def test_tags_are_at_most_64_of_1_to_128_code_points():
    """§3.3: 64 tags of 128 code points pass; a 65th tag, a tag of 129 or an empty one
    does not, and the line names the count or the tag."""
    assert tags_problem(["\u00e9" * 128] * 64) is None
    assert tags_problem([]) is None
    assert "`tags` has 65 tags; a reader takes at most 64" == tags_problem(
        [f"t{i}" for i in range(65)])
    assert ("the tag 'xxxxxxxxxxxxxxxxxxxx…' has 129 characters; a reader takes 1 to 128"
            == tags_problem(["ok", "x" * 129]))
    assert "the tag '' has 0 characters; a reader takes 1 to 128" == tags_problem([""])


SPEC = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text(encoding="utf-8")


def test_the_post_limits_are_the_ones_the_spec_writes():
    """The numbers in the code are §3.3's, for a post's fields."""
    objects = SPEC[SPEC.index("### 3.3 Objects"):SPEC.index("### 3.4 ")]
    assert "| `title` | optional string of at most 4096 code points" in objects
    assert "| `summary` | optional string of at most 4096 code points |" in objects
    assert "| `tags` | optional array of at most 64 strings of 1 to 128 code points |" in objects
    assert (post_limits.MAX_TITLE, post_limits.MAX_SUMMARY, post_limits.MAX_TAGS,
            post_limits.MAX_TAG) == (4096, 4096, 64, 128)


def test_the_feed_caps_are_the_ones_the_spec_writes():
    """The numbers in the code are §1.4's, for feed.json."""
    feeds = SPEC[SPEC.index("### 1.4 Feeds"):SPEC.index("### 1.5 ")]
    caps = " ".join(feeds[feeds.index("**Limits.**"):].split())
    assert ("a `feed.json` of at most 4 MiB (4,194,304 bytes) holding at most 1,000 items, "
            "each with a `content_html` of at most 1,048,576 code points and a `title` and "
            "a `summary` of at most 4,096 code points each") in caps
    assert (post_limits.MAX_PUBLIC_FEED_BYTES, post_limits.MAX_PUBLIC_ITEMS,
            post_limits.MAX_CONTENT_HTML) == (4_194_304, 1000, 1_048_576)


def test_the_media_list_is_the_one_the_spec_writes():
    """§1.4's `_o2m.media`: the cap in the code is the spec's (and §3.3's on
    attachments), the spec's example entry is one a reader keeps, named as §1.1 names a
    published file (`media/H/NAME`, H the first 16 hex digits of its SHA-256), and the
    rules for bad lists are the ones the reader applies (tests/reader/test_public_media)."""
    feeds = SPEC[SPEC.index("### 1.4 Feeds"):SPEC.index("### 1.5 ")]
    text = " ".join(feeds[feeds.index("**The post's files.**"):].split())
    assert "an array of at most 64 entries (as §3.3's attachments)" in text
    assert post_limits.MAX_PUBLIC_MEDIA == MAX_ATTACHMENTS == 64
    for rule in ("A `media` that is not an array, or that holds more than 64 entries, is "
                 "ignored whole", "is ignored alone", "of two entries with one `url`, the "
                 "first stands", "MUST NOT show an image of a public post inline unless its "
                 "URL, its fragment aside, is the `url` of an entry of that item"):
        assert rule in text, rule
    example = re.search(r"```json\n(\"media\": .*?)\n```", feeds, re.S)
    assert example is not None
    media = json.loads("{" + example[1] + "}")["media"]
    [entry] = parse_media(media, "https://ada.example/")
    assert entry == ListedFile(**media[0])
    assert entry.url.split("/")[-2] == entry.sha256[:16]
    limits = " ".join(feeds[feeds.index("**Limits.**"):].split())
    assert "`_o2m.media` (above) counts toward the 4 MiB" in limits
