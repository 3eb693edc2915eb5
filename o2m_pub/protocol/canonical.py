"""Byte-exact encodings of the protocol (PROTOCOL.md §2.1): base64url without padding,
canonical JSON (RFC 8785's serialisation of what o2m documents use, but with keys sorted
by code point, not UTF-16 code unit) with a strict parser, and the time format.

Signatures are made and checked over the exact canonical bytes, so two
implementations that follow §2.1 agree on every signed byte.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Any

MAX_DEPTH = 32
MAX_SAFE_INT = 2**53 - 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # §2.1: RFC 3339 in UTC, whole seconds, "Z"
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)
_B64U_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_STRUCTURE_RE = re.compile(r'[\[\]{}"\\]')  # what can open or close nesting or a string
# A UTF-16 surrogate code point: in a parsed string it can only come from a `\uD800`-style
# escape without its pair (UTF-8 cannot encode one), and it has no UTF-8 form (§2.1).
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class EncodingError(ValueError):
    """Malformed encoded data (never a bug: the input came from outside)."""


# Characters a name must not hold (§2.4, THREATS.md 39): control characters (Cc, incl.
# DEL and C1), the bidi controls and zero-width characters of §2.4, plus U+061C ARABIC
# LETTER MARK (a bidi control like U+200E/F) and U+2028/U+2029, line breaks in a
# one-line name. The reader's display rule (`reader.sanitize.display_text`) uses the
# same set, so what a card may not hold is exactly what the reader neutralises.
REFUSED_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                             "\u2060-\u2069\ufeff]")


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str, *, length: int | None = None) -> bytes:
    """Decode base64url without padding; refuse anything non-canonical (§2.1)."""
    if not isinstance(text, str) or not _B64U_RE.match(text) or len(text) % 4 == 1:
        raise EncodingError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EncodingError("not base64url") from None
    if b64u_encode(data) != text:
        raise EncodingError("non-canonical base64url")
    if length is not None and len(data) != length:
        raise EncodingError(f"expected {length} bytes, got {len(data)}")
    return data


def utc_text(when: dt.datetime) -> str:
    """`when` in the protocol's time format (§2.1): UTC, whole seconds (any fraction is
    dropped), e.g. ``2026-11-24T10:30:00Z``. Text in this form sorts as time does.

    Raises:
        ValueError: `when` has no time zone (it would be read in the machine's own).
        OverflowError: `when` in UTC falls outside years 1-9999.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("a time must be aware (it has no time zone)")
    return when.astimezone(dt.timezone.utc).strftime(TIME_FORMAT)


def parse_utc_text(text: str) -> dt.datetime:
    """The time a §2.1 time text names, as an aware datetime in UTC.

    Raises:
        ValueError: `text` is not exactly of the form ``YYYY-MM-DDTHH:MM:SSZ`` with a
            real date and time (no leap second, no fraction, no other offset).
    """
    if not isinstance(text, str) or not TIME_RE.fullmatch(text):
        raise ValueError("not a time of the form 2026-11-24T10:30:00Z")
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.timezone.utc)


def is_sha256_hex(value: Any) -> bool:
    """A bare SHA-256 in lowercase hex (§3.3, THREATS.md 22): no path, no other origin."""
    return (isinstance(value, str) and len(value) == 64
            and not value.strip("0123456789abcdef"))


MAX_URL_CHARS = 2048


def is_https_url(value: Any) -> bool:
    """An https URL of reasonable length: what a feed may name as a link (§3.4). Card
    URLs have stricter rules of their own (§2.4, `cards`)."""
    return (isinstance(value, str) and value.startswith("https://")
            and len(value) <= MAX_URL_CHARS)


def _check_text(value: str) -> None:
    if _SURROGATE_RE.search(value):
        raise EncodingError("a string holds a lone surrogate (no Unicode text)")


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError("nested too deeply")
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not 0 <= value <= MAX_SAFE_INT:
            raise EncodingError("integer out of range")
        return
    if isinstance(value, list):
        for v in value:
            _check(v, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EncodingError("object keys must be strings")
            _check_text(k)
            _check(v, depth + 1)
        return
    raise EncodingError(f"{type(value).__name__} is not allowed (floats never are)")


def canonical_json(value: Any, *, check: bool = True) -> bytes:
    """The canonical bytes of a document (§2.1). `check=False` skips the type walk for a
    document already checked by the caller."""
    if check:
        _check(value, 0)
    # For strings, ints, bools, null, lists and dicts with str keys, sorted keys and
    # compact separators, json.dumps with ensure_ascii=False writes strings as RFC 8785
    # does: it escapes only '"', '\\' and control characters, the short forms where they
    # exist. Its key order is by code point (Python's str order), which is §2.1's rule;
    # RFC 8785 sorts by UTF-16 code unit, which differs for keys above U+FFFF.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise EncodingError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _refuse_float(text: str) -> Any:
    raise EncodingError("floats are not allowed")


def _refuse_constant(text: str) -> Any:
    raise EncodingError(f"{text} is not allowed")


def _nested_too_deeply(text: str) -> bool:
    """Whether arrays and objects nest deeper than MAX_DEPTH (§2.1). Brackets inside
    strings are text, not nesting: a name or a post may hold any number of them. Only
    the characters that can change the count are visited, so prose costs little.

    Up to the first syntax error this reads the text as the JSON parser will, so a
    document it passes cannot make that parser recurse deeper (THREATS.md 5)."""
    depth, in_string, escaped_until = 0, False, -1
    for match in _STRUCTURE_RE.finditer(text):
        at, ch = match.start(), match.group()
        if at < escaped_until:  # the character after a backslash in a string
            continue
        if in_string:
            if ch == "\\":
                escaped_until = at + 2
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_json(data: bytes, *, max_bytes: int) -> Any:
    """Parse untrusted JSON strictly (§2.1): size cap first, then no duplicate keys,
    no floats or NaN, integers in range, bounded nesting.

    Raises:
        EncodingError: for anything else than such a document.
    """
    if len(data) > max_bytes:
        raise EncodingError(f"over {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError("not UTF-8") from None
    if _nested_too_deeply(text):  # bound nesting before the recursive parser sees it
        raise EncodingError("nested too deeply")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_refuse_float,
                           parse_constant=_refuse_constant)
    except EncodingError:
        raise
    except (ValueError, RecursionError) as e:  # includes int-too-long (> 4300 digits)
        raise EncodingError(f"not valid JSON: {e}") from None
    _check(value, 0)
    return value
