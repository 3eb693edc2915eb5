"""Canonical JSON as PROTOCOL.md §2.1 words it (o2m protocol 1.1): what counts as a
nesting level, lone surrogates, and the key order (by code point, not RFC 8785's UTF-16
code units). The card tests cover the rest of the parser through cards."""

from __future__ import annotations

import pytest

from o2m_pub.protocol.canonical import (
    MAX_DEPTH,
    EncodingError,
    canonical_json,
    parse_json,
)


@pytest.mark.parametrize("open_, close", [(b"[", b"]"), (b'{"a":', b"}")],
                         ids=["arrays", "objects"])
def test_32_nested_containers_are_accepted_and_33_refused(open_, close):
    """§2.1 (review item 9): each array or object is one level, the outermost one
    included, and scalars count for nothing: 32 nested containers pass, 33 do not."""
    assert MAX_DEPTH == 32
    assert parse_json(open_ * 32 + b"1" + close * 32, max_bytes=1 << 10) is not None
    with pytest.raises(EncodingError, match="nested too deeply"):
        parse_json(open_ * 33 + b"1" + close * 33, max_bytes=1 << 10)
    with pytest.raises(EncodingError, match="nested too deeply"):  # an empty one counts
        parse_json(b"[" * 33 + b"]" * 33, max_bytes=1 << 10)


@pytest.mark.parametrize("text", [b'"\\ud800"', b'"\\udfff"', b'"a\\udc00b"',
                                  b'"\\ude00\\ud83d"', b'{"\\ud800":1}', b'["\\ud83d"]'],
                         ids=["high", "low", "low-inside", "pair-reversed", "in-a-key",
                              "in-an-array"])
def test_lone_surrogates_are_refused(text):
    """§2.1 (review item 10): a `\\uXXXX` escape of a surrogate without its pair names no
    character and has no UTF-8 form, so the parser refuses it (it used to let it
    through, to fail later or never)."""
    with pytest.raises(EncodingError, match="lone surrogate"):
        parse_json(text, max_bytes=1 << 10)


def test_a_surrogate_pair_is_one_character_and_writes_as_utf8():
    """An escaped pair is the character it encodes; canonical JSON writes it as UTF-8."""
    value = parse_json(b'"\\ud83d\\ude00"', max_bytes=1 << 10)
    assert value == "\U0001F600"
    assert canonical_json(value) == '"\U0001F600"'.encode()


def test_a_lone_surrogate_cannot_be_written_either():
    """The writer refuses what the reader refuses, with the encoding error (not a
    UnicodeEncodeError from deep inside)."""
    with pytest.raises(EncodingError, match="lone surrogate"):
        canonical_json({"name": "\ud800"})


def test_keys_are_sorted_by_code_point_not_utf16_units():
    """§2.1 (review item 8): U+FB01 sorts before U+1F600 by code point; RFC 8785 (UTF-16
    code units: 0xFB01 > 0xD83D) would put it after. The bytes below are written out by
    hand, not by the code under test."""
    doc = {"\U0001F600": 1, "\uFB01": 2}
    expected = b'{"\xef\xac\x81":2,"\xf0\x9f\x98\x80":1}'
    assert canonical_json(doc) == expected
    assert parse_json(expected, max_bytes=1 << 10) == doc
