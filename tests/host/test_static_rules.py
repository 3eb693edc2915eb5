"""The server's pure rules: which path a request names, which headers go with it."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2m_pub.host import static_rules as rules


# Raw path segments as an attacker writes them, plain and percent-encoded. Each path
# has at most one of them among plain names, so whether it resolves depends on that one
# segment: random bytes alone (st.binary) practically never spell "/../".
_HOSTILE = st.one_of(
    st.sampled_from([b"..", b".", b"", b"\\", b"\x00", b"%00", b"%2e%2e", b"%2E.", b".%2e",
                     b"%2e", b"%2f", b"%2F", b"%5c", b"%5C", b"%C0%AE%C0%AE", b".git",
                     b".well-known", b"..%2f", b"a%0d%0ab", b"%7f", b"%ff", b"a\\b"]),
    st.binary(max_size=4))
_PLAIN = st.sampled_from([b"a", b"b", b"index.html", b"caf%C3%A9", b"o", b"2026"])
_RAW_PATHS = st.builds(lambda before, odd, after: b"/" + b"/".join([*before, odd, *after]),
                       st.lists(_PLAIN, max_size=2), _HOSTILE, st.lists(_PLAIN, max_size=2))


@settings(max_examples=500)
@given(st.one_of(_RAW_PATHS, st.binary(max_size=80).map(lambda b: b"/" + b)))
def test_resolve_never_leaves_the_root(raw):
    """Whatever the request path, a resolved one has no ".", ".." or empty segment once
    decoded, no backslash, NUL or other control character, and no dot file but
    ``.well-known`` at the top (THREATS 40-42)."""
    rel = rules.resolve(raw)
    if rel is None:
        return
    parts = rel.split("/")
    assert not rel.startswith("/") and "\\" not in rel
    assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in rel)
    assert ".." not in parts and "." not in parts and "" not in parts
    assert all(not p.startswith(".") for p in parts[1:])
    assert not parts[0].startswith(".") or parts[0] == ".well-known"
    assert os.path.normpath(os.path.join("/srv/build", rel)).startswith("/srv/build/")


@pytest.mark.parametrize("raw", [b"/..", b"/%2e%2e/x", b"/a/%2E./b", b"/.%2e", b"/a/%2e/b",
                                 b"/a/.", b"/a/%2e"])
def test_an_encoded_dot_segment_is_refused(raw):
    """Dot segments are refused after decoding, however they are spelt."""
    assert rules.resolve(raw) is None


@pytest.mark.parametrize("raw, rel", [
    (b"/", "index.html"),
    (b"/tags/", "tags/index.html"),
    (b"/2026/caf%C3%A9/", "2026/café/index.html"),
    (b"/.well-known/o2m-card.json", ".well-known/o2m-card.json"),
    (b"/o/ab12", "o/ab12"),
])
def test_resolve_accepts_the_sites_paths(raw, rel):
    """The paths a built site has resolve to their files: a folder to its index.html,
    %-encoded UTF-8 decoded, the card under .well-known/."""
    assert rules.resolve(raw) == rel


@pytest.mark.parametrize("raw", [
    b"", b"index.html", b"/..", b"/a/../b", b"/%2e%2e/x", b"/a%2fb", b"/a%5cb", b"/a\\b",
    b"/%00", b"/a%0d%0aSet-Cookie:x", b"/%C0%AE%C0%AE/", b"/%ff", b"//x", b"/.git/config",
    b"/static/.env", b"/.well-known/.x",
])
def test_resolve_refuses_hostile_paths(raw):
    """Hostile and odd request paths resolve to nothing (a 404): relative paths, '..' plain
    or encoded, encoded slashes and backslashes, NUL and CRLF, overlong UTF-8, invalid
    UTF-8, '//', dotfiles."""
    assert rules.resolve(raw) is None


@pytest.mark.parametrize("rel, ctype", [
    ("index.html", "text/html; charset=utf-8"),
    ("o/" + "a" * 64, "application/octet-stream"),
    ("f/xyz.html", "application/octet-stream"),  # ciphertext whatever its name
    ("README", "application/octet-stream"),
    ("index.rpy", "application/octet-stream"),
    ("media/abc/photo.JPG", "image/jpeg"),
    ("feed.json", "application/feed+json"),
    ("tags/feed.json", "application/json"),
])
def test_content_types(rel, ctype):
    """Ciphertext is always application/octet-stream whatever its name; a file of unknown
    type is never guessed as HTML, nor is a Twisted script; feeds get their own types."""
    assert rules.content_type(rel) == ctype


def test_cache_and_compression_by_kind():
    """Content-addressed files and versioned assets are immutable, everything else
    revalidates; only public text is compressible, never ciphertext."""
    assert rules.cache_control("o/ab", False) == rules.IMMUTABLE
    assert rules.cache_control("media/ab/x.png", False) == rules.IMMUTABLE
    assert rules.cache_control("static/style.css", True) == rules.IMMUTABLE
    assert rules.cache_control("static/style.css", False) == rules.REVALIDATE
    assert rules.cache_control("f/ab", False) == rules.REVALIDATE
    assert rules.cache_control("index.html", False) == rules.REVALIDATE
    assert not rules.compressible("f/ab", "application/octet-stream")
    assert not rules.compressible("o/ab", "text/html; charset=utf-8")
    assert rules.compressible("index.html", "text/html; charset=utf-8")


@pytest.mark.parametrize("header, size, expected", [
    (None, 100, None), (b"bytes=0-9", 100, (0, 10)), (b"bytes=90-", 100, (90, 100)),
    (b"bytes=-5", 100, (95, 100)), (b"bytes=0-999", 100, (0, 100)),
    (b"bytes=100-", 100, "unsatisfiable"), (b"bytes=-0", 100, "unsatisfiable"),
    (b"bytes=0-1,5-6", 100, None), (b"items=0-1", 100, None), (b"bytes=x-y", 100, None),
])
def test_parse_range(header, size, expected):
    """One byte range (start-end, start-, -suffix) is honoured and clipped to the file; past
    the end is unsatisfiable; several ranges or another unit get the whole file."""
    assert rules.parse_range(header, size) == expected


def test_not_modified_prefers_etag():
    """If-None-Match (strong or weak) decides when present, even against a matching
    If-Modified-Since; otherwise If-Modified-Since, and an unreadable date never means 'not
    modified'."""
    facts = rules.FileFacts(10, 1_700_000_000_000_000_000, 5)
    assert rules.not_modified(facts, facts.etag.encode(), None)
    assert rules.not_modified(facts, b'W/' + facts.etag.encode(), None)
    assert not rules.not_modified(facts, b'"other"', facts.last_modified.encode())
    assert rules.not_modified(facts, None, facts.last_modified.encode())
    assert not rules.not_modified(facts, None, b"Mon, 01 Jan 2001 00:00:00 GMT")
    assert not rules.not_modified(facts, None, b"garbage")


def _escaped(raw: bytes) -> bytes:
    """Every byte but the slashes percent-encoded: the same path, which `resolve` must
    take the careful way (its fast path is for paths without a '%')."""
    return b"/".join(b"".join(b"%%%02X" % c for c in part) for part in raw.split(b"/"))


@settings(max_examples=500)
@given(st.one_of(_RAW_PATHS, st.binary(max_size=60).map(lambda b: b"/" + b),
                 st.lists(st.sampled_from([b"a", b".", b"..", b"", b".git", b".well-known",
                                           b"\x7f", b"\x1f", b"\xc3\xa9", b"\xc0\xae"]),
                          max_size=4).map(lambda parts: b"/" + b"/".join(parts))))
def test_resolve_fast_path_agrees_with_the_careful_one(raw):
    """A path without '%' is checked on the whole string (the server's hot path); it
    resolves exactly as the same path spelt with every byte escaped does."""
    if b"%" in raw or b"\\" in raw:
        return
    assert rules.resolve(raw) == rules.resolve(_escaped(raw))
