"""Attachment names (PROTOCOL.md §3.3, o2m_pub/protocol/attachments.py): which name a
reference in a post's Markdown means, and what a name may be. The writer names files and
the reader finds them by these two functions alone."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.protocol.attachments import (
    MEDIA_TYPE_RE,
    attachment_media_type,
    is_attachment_name,
    is_media_type,
    referenced_name,
)


@pytest.mark.parametrize(("reference", "name"), [
    # the spec's examples (§3.3)
    ("sunset.png", "sunset.png"),
    ("./sunset.png", "sunset.png"),
    ("sunset%2Epng", "sunset.png"),
    ("sunset.png?v=2", "sunset.png"),
    ("sunset.png#top", "sunset.png"),
    ("trip/sunset.png", "trip/sunset.png"),
    ("../media/sunset.png", "../media/sunset.png"),
    # leading ".." stay: the reader does not know the post's folder
    ("../notes/x.png", "../notes/x.png"),
    ("../../2026/bread/x.png", "../../2026/bread/x.png"),
    ("a/../../b/x.png", "../b/x.png"),
    (".//x.png", "x.png"),
    ("sub/", "sub"),
    # decoded once, then never again: the name is text, not a URL
    ("my%20photo.png", "my photo.png"),
    ("my photo.png", "my photo.png"),
    ("a%2520b.png", "a%20b.png"),
    ("100%25.png", "100%.png"),
    ("100%.png", "100%.png"),
    ("what%3F.png", "what?.png"),
    ("%231.png", "#1.png"),
    ("note%3A1.png", "note:1.png"),
    ("caf%C3%A9.png", "café.png"),
    ("%2E%2E/x.png", "../x.png"),
])
def test_a_reference_names_its_path_decoded_and_normalised(reference, name):
    """The path alone (no query, no fragment), percent-decoded, then normalised as a POSIX
    path, leading `..` kept."""
    assert name == referenced_name(reference)


def test_the_examples_written_in_the_spec_hold():
    """Every "`reference` names `name`" example of PROTOCOL.md §3.3, read from the spec
    itself, is what `referenced_name` gives."""
    spec = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text(encoding="utf-8")
    section = spec[spec.index("### 3.3 Objects"):spec.index("### 3.4 ")]
    sentence = " ".join(section[section.index("  So `"):
                                section.index("A reference with a scheme")].split())
    examples = [(reference, m.group(2))
                for m in re.finditer(r"((?:`[^`]+`(?:, | and )?)+) names? `([^`]+)`", sentence)
                for reference in re.findall(r"`([^`]+)`", m.group(1))]
    assert len(examples) >= 7
    assert [name for _, name in examples] == [referenced_name(r) for r, _ in examples]


@pytest.mark.parametrize("reference", [
    "https://example.org/x.png", "http://x/y.png", "data:image/png;base64,AAAA",
    "javascript:alert(1)", "mailto:a@b.example", "note:1.png", "//host/x.png",
    "/x.png", "%2Fetc/passwd", "", "#top", "?v=2",
])
def test_a_reference_with_a_scheme_a_host_or_an_absolute_path_names_nothing(reference):
    """Remote, absolute or empty references name no attachment (`note:1.png` unencoded
    is a URL of the scheme "note")."""
    assert referenced_name(reference) is None


def test_the_name_rules_of_the_spec():
    """1 to 255 bytes of UTF-8, normal form, ".." only leading and never last, not
    absolute, no backslash or control character."""
    for ok in ("x.png", "../x.png", "../../a/b c.png", "100%.png", "what?.png", "#1.png",
               "é" * 127 + ".", "\U0001f469\u200d\U0001f373.png"):
        assert is_attachment_name(ok), ok
    for bad in ("", "/x.png", "./x.png", "a//b.png", "a/./b.png", "a/../b.png", "..",
                "../..", "a/..", ".", "a\\b.png", "a\x00.png", "a\nb.png", "a\x85.png",
                "é" * 128, None, 3, b"x.png", "x.png/"):
        assert not is_attachment_name(bad), bad


_SEGMENTS = st.sampled_from(["..", ".", "", "notes", "bread", "a b", "100%", "what?", "#1",
                             "note:1", "café", "x.png", "%20", "\u200d"])


@given(st.lists(_SEGMENTS, min_size=1, max_size=6), st.booleans())
def test_a_name_is_in_normal_form_and_a_reference_to_it_names_it_again(segments, encode):
    """Whatever a relative reference is, the name it gives is in normal form (or there is
    none), and that name, percent-encoded, names itself: a writer that spells a name as a
    reference and a reader that reads it back agree."""
    from urllib.parse import quote

    reference = "/".join(segments)
    name = referenced_name(quote(reference) if encode else reference)
    if name is None:
        return
    assert posixpath.normpath(name) == name and not name.startswith("/")
    assert name == referenced_name(quote(name))


@pytest.mark.parametrize(("value", "ok"), [
    ("image/png", True), ("application/vnd.ms-excel", True), ("image/svg+xml", True),
    ("application/octet-stream", True), ("a/" + "b" * 125, True),
    ("a/" + "b" * 126, False), ("image/PNG", False), ("Image/png", False),
    ("text/plain; charset=utf-8", False), ("image", False), ("/png", False),
    ("image/", False), ("", False), ("image/png\n", False), ("image/p\u00f1g", False),
    ("-x/y", False), (None, False), (7, False),
], ids=repr)
def test_a_media_type_is_lower_case_type_and_subtype_of_at_most_127_characters(value, ok):
    """PROTOCOL.md §3.3: RFC 6838's restricted names in lower case, no parameters, at
    most 127 characters: the one rule the reader checks and the writer keeps."""
    assert ok == is_media_type(value)


@pytest.mark.parametrize(("guess", "media_type"), [
    # what /etc/mime.types gives for .docm, .xlsm and .amr (audit t6)
    ("application/vnd.ms-word.document.macroEnabled.12",
     "application/vnd.ms-word.document.macroenabled.12"),
    ("application/vnd.ms-excel.sheet.macroEnabled.12",
     "application/vnd.ms-excel.sheet.macroenabled.12"),
    ("audio/AMR", "audio/amr"),
    ("image/png", "image/png"),
    (None, "application/octet-stream"),
    ("", "application/octet-stream"),
    ("text/plain; charset=utf-8", "application/octet-stream"),
    ("application/" + "x" * 200, "application/octet-stream"),
    ("image/p\u00f1g", "application/octet-stream"),
], ids=repr)
def test_a_guessed_media_type_is_lower_cased_or_else_octet_stream(guess, media_type):
    """The writer's media type: the guess lower-cased (media types are case-insensitive,
    and MIME tables hold mixed case), application/octet-stream when there is none or it
    still breaks §3.3; before, a `.docm` file made every friend's reader refuse its post."""
    assert media_type == attachment_media_type(guess)


@given(st.one_of(st.none(), st.text(max_size=200)))
def test_any_guess_gives_a_media_type_every_reader_takes(guess):
    """Whatever a MIME table says, the writer publishes a media type §3.3 allows."""
    assert is_media_type(attachment_media_type(guess))


def test_the_media_type_rule_is_the_one_the_spec_writes():
    """PROTOCOL.md §3.3 writes the rule as a regular expression: the code's is it."""
    spec = (Path(__file__).parents[2] / "docs/PROTOCOL.md").read_text(encoding="utf-8")
    section = spec[spec.index("### 3.3 Objects"):spec.index("### 3.4 ")]
    written = re.search(r"- `media_type` .*?\(`\^(.+?)\$`\)", section, re.S)
    assert written is not None and written.group(1) == MEDIA_TYPE_RE.pattern
