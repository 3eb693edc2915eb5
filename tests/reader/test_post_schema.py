"""The post document inside an object (PROTOCOL.md §3.3, o2m protocol 1.1): value types
and limits, unknown keys allowed and ignored, attachment names and media types. Through
`fetch_plan.parse_post`, the reader's one check of a decrypted post."""

from __future__ import annotations

import pytest

from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.feeds import FeedFormatError
from o2m_pub.reader import fetch_plan
from o2m_pub.reader.fetch_plan import parse_post

POST = {"v": 1, "type": "o2m-post", "markdown": "Hello.", "date": "2026-11-24T10:00:00Z"}


def attachment(**changes) -> dict:
    return {"name": "photo.jpg", "media_type": "image/jpeg", "hash": "ab" * 32,
            "key": b64u_encode(bytes(32)), "size": 560, **changes}


def parse(**changes) -> dict:
    return parse_post(canonical_json({**POST, **changes}))


def test_every_field_at_its_limit_is_accepted():
    """§3.3: title and summary up to 4096 characters, up to 64 tags of 1 to 128, up to
    64 attachments, an https `reply_to`, an `updated` time."""
    doc = parse(title="t" * 4096, summary="s" * 4096, tags=["x" * 128] * 64,
                reply_to="https://bob.example/2026/trip/", updated="2026-11-25T10:00:00Z",
                attachments=[attachment(name=f"p{i}.jpg") for i in range(64)])
    assert (len(doc["title"]), len(doc["tags"]), len(doc["attachments"])) == (4096, 64, 64)


def test_unknown_keys_are_accepted_and_ignored():
    """§3.3 (review item 20): keys a later version may add, in the post and in an
    attachment, do not make the post fail; what this reader knows reads as before."""
    doc = parse(location={"lat": 1, "lon": 2}, attachments=[attachment(alt="a sunset")])
    assert doc["markdown"] == "Hello." and doc["attachments"][0]["name"] == "photo.jpg"


@pytest.mark.parametrize("changes, reason", [
    ({"title": "t" * 4097}, "bad title"),
    ({"title": None}, "bad title"),
    ({"title": 5}, "bad title"),
    ({"summary": "s" * 4097}, "bad summary"),
    ({"summary": ["s"]}, "bad summary"),
    ({"tags": ["x"] * 65}, "bad tags"),
    ({"tags": [""]}, "bad tags"),
    ({"tags": ["x" * 129]}, "bad tags"),
    ({"tags": "travel"}, "bad tags"),
    ({"tags": None}, "bad tags"),
    ({"reply_to": "http://bob.example/"}, "bad reply_to"),
    ({"reply_to": "https://bob.example/" + "a" * 2048}, "bad reply_to"),
    ({"reply_to": None}, "bad reply_to"),
    ({"updated": "2026-11-25 10:00:00"}, "bad time"),
    ({"updated": None}, "bad time"),
    ({"date": "2026-11-24T10:00:00+00:00"}, "bad time"),
    ({"markdown": None}, "without markdown"),
    ({"attachments": [attachment()] * 65}, "bad attachments"),
], ids=repr)
def test_a_field_of_the_wrong_type_or_over_its_limit_fails_the_post(changes, reason):
    """§3.3: an optional key is absent or of its type (null is not absent) and within
    its limit; otherwise the post fails (that item alone, THREATS 19)."""
    with pytest.raises(FeedFormatError, match=reason):
        parse(**changes)


@pytest.mark.parametrize("name", [
    "photo.jpg", "trip/photo.jpg", "../media/photo.jpg", "../../a.png", "my photo.jpg",
    "été.png", "x" * 255, "é" * 127 + "x",
])
def test_attachment_names_are_relative_paths_in_normal_form(name):
    """§3.3 (review item 21): a name is the path relative to the post that its Markdown
    uses, so subfolders and leading `..` segments are fine; at most 255 bytes."""
    assert parse(attachments=[attachment(name=name)])["attachments"][0]["name"] == name


@pytest.mark.parametrize("name", [
    "", "/etc/passwd", "//host/share", "a\\b.png", "..\\..\\x", "a\x00b", "a\nb.png",
    "a\x7fb", "..", "../..", "a/..", "a/../b.png", "./a.png", "a/./b.png", "a//b.png",
    "a/", ".", "x" * 256, "é" * 128, 5, None,
], ids=repr)
def test_attachment_names_that_could_escape_or_confuse_fail_the_post(name):
    """§3.3 (review item 21, security item 5): no absolute path, backslash, NUL or other
    control character, no `.` or inner `..` segment, nothing over 255 bytes. The reader
    never uses a name as a file name anyway (it keeps attachments by hash)."""
    with pytest.raises(FeedFormatError, match="bad attachment name"):
        parse(attachments=[attachment(name=name)])


@pytest.mark.parametrize("media_type", [
    "image/png", "image/svg+xml", "text/html", "application/vnd.ms-excel", "audio/mpeg",
    "application/octet-stream",
])
def test_media_types_of_any_registered_form_are_accepted(media_type):
    """§3.3: any `type/subtype` in RFC 6838's form is accepted: the reader decides what
    to show inline (raster images only) and offers the rest as a download."""
    assert parse(attachments=[attachment(media_type=media_type)])["attachments"]


@pytest.mark.parametrize("media_type", [
    "image/PNG", "text/html; charset=utf-8", "image", "/png", "image/", "", "a/" + "b" * 126,
    "image/png\n", 7, None,
], ids=repr)
def test_malformed_media_types_fail_the_post(media_type):
    """§3.3: lower case `type/subtype`, no parameters, at most 127 characters."""
    with pytest.raises(FeedFormatError, match="bad attachment media_type"):
        parse(attachments=[attachment(media_type=media_type)])


def test_an_attachment_needs_its_reference():
    with pytest.raises(FeedFormatError):
        parse(attachments=[{k: v for k, v in attachment().items() if k != "size"}])
    assert fetch_plan.MAX_ATTACHMENTS == 64
