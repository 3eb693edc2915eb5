"""Hostile conversation statements (PROTOCOL.md §4.2, §4.3) for property tests: a valid
reply or reaction body with any of its fields replaced by arbitrary JSON, or by values
close to valid ones (an object without `size`, a reference with a third key, a URL
urlsplit cannot read), or removed, then signed by the key the body names, so that the
parser gets past the signature to the fields."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from nacl.signing import SigningKey

from o2m_pub.protocol.canonical import b64u_encode, canonical_json

MAX_INT = 2**53 - 1
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(0, MAX_INT) | _TEXT,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_TEXT, kids, max_size=3),
    max_leaves=8)
_HASH = st.sampled_from(["ab" * 32, "AB" * 32, "ab" * 31, "../" + "a" * 61, ""])
_SIZE = st.sampled_from([1, 600, 64 << 20, (64 << 20) + 1, 0, MAX_INT])
_B64U = st.sampled_from([b64u_encode(bytes(n)) for n in (16, 32, 15, 64)]
                        + ["AAAAAAAAAAAAAAAAAAAAAB", "A" * 43, "", "====", "o2m:x/y"])
_REF = st.dictionaries(st.sampled_from(["author", "id", "x"]), _B64U | JSON, max_size=3)
_FIELDS: dict[str, Any] = {
    "object": st.sampled_from([{"hash": "ab" * 32, "x": 1}, {"size": 640, "key": "k"},
                               {"hash": "ab" * 32, "size": 640, "key": [1]}, {"x": 1}])
    | st.dictionaries(st.sampled_from(["hash", "size", "key", "x"]), _HASH | _SIZE | JSON,
                      max_size=4),
    "to": _REF, "thread": _REF, "id": _B64U,
    "url": st.sampled_from(["https://[/", "https://bob.example/", "https://[::1/",
                            "https://bob.example:99999/", "https://bob.example:x/",
                            "https:///", "https://u@bob.example/", "https://bob.example",
                            "https://bob.example/?q=1", "http://bob.example/",
                            "https://bob example/", "https://\u00e9.example/"]),
    "date": st.sampled_from(["2026-11-25T09:00:00Z", "2026-02-31T09:00:00Z",
                             "2026-11-25T09:00:00+01:00", "2026-11-25"]),
    "emoji": st.sampled_from(["👍", "🇫", "🇫🇷🇫", "\u3298", "1\u20e3", "#", "\u200d"]),
    "v": st.sampled_from([1, 0, 2, True, "1"]),
    "type": st.sampled_from(["o2m-reply", "o2m-reaction", "o2m-post"]),
}
# The fields read after `v`, `type` and `date` (a statement that fails those fails
# early) first, as hypothesis draws the first ones most, and three times as often.
_DEEP = ["object", "url", "to", "thread", "id", "emoji"]
FIELDS = [*_DEEP, "date", "type", "v"]
_CHANGED = _DEEP * 2 + FIELDS + ["extra"]


def base_doc(author: str, kind: str) -> dict[str, Any]:
    """A well-formed reply or reaction body by `author`, before any change."""
    ref = {"author": b64u_encode(bytes(range(32))), "id": b64u_encode(bytes(16))}
    doc = {"author": author, "date": "2026-11-25T09:00:00Z", "id": b64u_encode(bytes([1]) * 16),
           "to": ref, "type": f"o2m-{kind}", "v": 1}
    if kind == "reply":
        return {**doc, "object": {"hash": "ab" * 32, "size": 640}, "thread": ref,
                "url": "https://bob.example/"}
    return {**doc, "emoji": "👍"}


@st.composite
def hostile_doc(draw: st.DrawFn, author: str, kind: str) -> dict[str, Any]:
    """`base_doc` with some fields replaced (by near misses or any JSON), some removed,
    and perhaps a key no version defines."""
    doc = base_doc(author, kind)
    for name in draw(st.sets(st.sampled_from(_CHANGED), min_size=1, max_size=3)):
        doc[name] = draw(_FIELDS[name] | JSON if name in _FIELDS else JSON)
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=1)):
        doc.pop(name, None)
    return doc


def sign(doc: dict[str, Any], context: bytes, key: SigningKey) -> bytes:
    """A statement as §4.2 frames it: the signature over context and body, then the body."""
    body = canonical_json(doc)
    return key.sign(context + body).signature + body
