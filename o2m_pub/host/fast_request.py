"""A small, strict parser for the plain request `o2m serve` answers on its fast path.

Most requests a static site gets are alike: a GET or HEAD of a path, HTTP/1.1 or 1.0,
a few headers, no body. `parse_head` reads one such request head from the bytes a
connection received and says, for anything else or anything it is unsure of, to hand
the bytes to Twisted's own parser, which answers exactly as it always has (a 400 for
a malformed head, its body rules for a body; docs/adr/0004). So the parser never
has to be lenient: it accepts a subset of what Twisted accepts, and reads it the way
Twisted does (the same request line, the same header values, the first of repeated
headers, Accept-Encoding's values joined).

Pure: bytes in, a `RequestHead` (or a verdict) out; no sockets, no clock.
"""

from __future__ import annotations

import re
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping, NamedTuple

MAX_HEAD = 8192  # bytes of a head, its final CRLF CRLF included; Twisted allows 16 KiB
MAX_HEADERS = 100  # header lines; Twisted allows 500

METHODS = (b"GET", b"HEAD")
VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")

# origin-form (RFC 9112 §3.2.1) in visible ASCII: no space, no control, no byte >= 0x7f
_TARGET = re.compile(rb"/[\x21-\x7e]*")
# Header lines, each `token ":" value CRLF`, the value (RFC 9110 §5.5) in visible ASCII,
# spaces and tabs: obs-text (bytes >= 0x80), every control character (bare CR and LF
# included), an obs-fold (a line that starts with a space) and a line without a colon
# are left to Twisted. One match checks every line at once.
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\x20-\x7e\t]*\r\n)*")
# ...and one line of such a block: its name and its value without the spaces and
# tabs around it (as Twisted strips them)
_FIELD = re.compile(rb"([^:]+):[ \t]*([^\r]*?)[ \t]*\r\n")

# Headers that announce a body or ask for an interim answer: Twisted's
_BODY_HEADERS = (b"transfer-encoding", b"expect")


class _HandOverMark:
    """The verdict on bytes that are not a plain request head: give them to Twisted."""

    def __repr__(self) -> str:
        return "HAND_OVER"


HAND_OVER = _HandOverMark()


class RequestHead(NamedTuple):
    """One plain request head, as Twisted would read it."""

    method: bytes  # b"GET" or b"HEAD"
    target: bytes  # the request-target, raw (path and query)
    version: bytes  # b"HTTP/1.1" or b"HTTP/1.0"
    headers: Mapping[bytes, bytes]  # lowercase name -> value (the first, but
    # Accept-Encoding's joined); read-only, shared by the requests with the same lines
    end: int  # where the head ends in the buffer (the next request starts there)


def parse_head(buffer: bytes, start: int = 0) -> RequestHead | _HandOverMark | None:
    """The plain request head at `buffer[start:]`, if that is one.

    Args:
        buffer: bytes a connection received.
        start: where the next request begins in it.

    Returns:
        A `RequestHead`; None when the head is not yet whole (wait for more bytes);
        `HAND_OVER` for anything else: another method or version, a target that is
        not a plain path, a malformed or folded header line, a byte outside visible
        ASCII, a body (Content-Length other than 0, Transfer-Encoding), Expect, a head
        over `MAX_HEAD` bytes or `MAX_HEADERS` lines.
    """
    end = buffer.find(b"\r\n\r\n", start, start + MAX_HEAD)
    if end < 0:
        return HAND_OVER if len(buffer) - start >= MAX_HEAD else None
    line_end = buffer.find(b"\r\n", start, end + 2)
    parts = buffer[start:line_end].split(b" ")
    if len(parts) != 3:
        return HAND_OVER
    method, target, version = parts
    if method not in METHODS or version not in VERSIONS or not _TARGET.fullmatch(target):
        return HAND_OVER
    headers = _header_fields(buffer[line_end + 2:end + 2])
    if headers is HAND_OVER:
        return HAND_OVER
    return RequestHead(method, target, version, headers, end + 4)  # type: ignore[arg-type]


@lru_cache(maxsize=256)
def _header_fields(fields: bytes) -> Mapping[bytes, bytes] | _HandOverMark:
    """The header lines of a head read, or `HAND_OVER`. Remembered: a client sends the
    same lines with each request (only the request line changes), and reading them is
    a third of parsing a head; a read-only view, since every request with those lines
    shares it."""
    if not _FIELDS.fullmatch(fields) or fields.count(b"\n") > MAX_HEADERS:
        return HAND_OVER
    headers: dict[bytes, bytes] = {}
    for name, value in _FIELD.findall(fields):  # RFC 9110 §5.6.2: names are tokens
        name = name.lower()
        if name in _BODY_HEADERS or (name == b"content-length" and value != b"0"):
            return HAND_OVER
        known = headers.get(name)
        if known is None:
            headers[name] = value
        elif name == b"accept-encoding":  # Twisted's reader joins them
            headers[name] = known + b"," + value
        elif name == b"content-length":  # twice: Twisted refuses it
            return HAND_OVER
    return MappingProxyType(headers)
