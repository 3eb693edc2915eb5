"""The file cache of `o2m serve`: per file, what others compute per request.

An entry holds a file's response headers (and their wire form), its bytes when small,
and their gzip when the file is public text; one ``stat`` per request checks that the
entry still describes the file (the builder replaces files by rename, so size, mtime
and inode change). Which path may be served, and with which headers, is decided by
the pure rules in static_rules.py; this module is the files around them
(docs/adr/0004).
"""

from __future__ import annotations

import gzip
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from twisted.web import http

from o2m_pub.host import static_rules as rules

SMALL_FILE = 1 << 20  # files up to this size are kept in memory
LIVE_TAG = b'<script src="/_o2m/live.js" defer></script>'  # serve's LIVE_SCRIPT_PATH


class ResponseHeaders(http.Headers):
    """Response headers that remember their wire form until something changes them."""

    wire: bytes | None = None

    def setRawHeaders(self, name: bytes | str, values: object) -> None:  # noqa: N802
        self.wire = None
        super().setRawHeaders(name, values)

    def addRawHeader(self, name: bytes | str, value: object) -> None:  # noqa: N802
        self.wire = None
        super().addRawHeader(name, value)

    def removeHeader(self, name: bytes | str) -> None:  # noqa: N802
        self.wire = None
        super().removeHeader(name)


def wire_form(headers: http.Headers) -> bytes:
    """Header lines as Twisted's writeHeaders would send them (without the Date)."""
    return b"".join(name + b": " + value + b"\r\n"
                    for name, values in headers.getAllRawHeaders() for value in values)


@dataclass
class CachedFile:
    """A servable file as of one stat: its headers and, when small, its bytes."""

    fs_path: str
    facts: rules.FileFacts
    headers: ResponseHeaders
    body: bytes | None
    gzipped: bytes | None
    gz_headers: ResponseHeaders | None


class FileCache:
    """Entries by the file they name, least recently used dropped past `max_bytes`.

    Keyed by the resolved path, not the raw one, so the many %-spellings of one file
    share one entry; every entry costs a fixed overhead besides its bytes, so a
    flood of distinct paths (or of large, streamed files) cannot grow it unbounded.
    """

    ENTRY_COST = 2048  # bytes charged per entry for its headers and bookkeeping

    def __init__(self, build_dir: Path, *, live_reload: bool, max_bytes: int) -> None:
        self.root = os.path.realpath(build_dir)
        self.live_reload = live_reload
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, bool], CachedFile] = OrderedDict()
        self._bytes = 0

    def lookup(self, raw_path: bytes, versioned: bool) -> CachedFile | str | None:
        """The entry for a request path; a str is a redirect target; None is a 404."""
        if not raw_path.startswith(b"/"):
            return None  # origin-form only, on the fast path too (review finding 8)
        if b"%" in raw_path or b"\\" in raw_path:
            rel = rules.resolve(raw_path)  # the slow, careful way, for every odd spelling
            if rel is None:
                return None
        else:
            # Without %-escapes a path spells its file one way only: the cache may be
            # asked directly; a miss below still goes through rules.resolve.
            try:
                rel = raw_path[1:].decode("utf-8")
            except UnicodeDecodeError:
                return None
            if rel == "" or rel.endswith("/"):
                rel += "index.html"
        key = (rel, versioned)
        entry = self._entries.get(key)
        if entry is not None:
            try:
                st = os.stat(entry.fs_path)
            except OSError:
                st = None
            if st is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == (
                    entry.facts.size, entry.facts.mtime_ns, entry.facts.inode):
                self._entries.move_to_end(key)
                return entry
            self._drop(key)
        if rules.resolve(raw_path) != rel:
            return None
        fs_path = os.path.join(self.root, rel)
        if not self._contained(fs_path):
            return None  # a symlink out of build/ (THREATS 42)
        try:
            st = os.stat(fs_path)
        except OSError:
            return None
        if os.path.isdir(fs_path):
            # /dir -> /dir/ only where a page is there to show; never a listing (THREATS 40)
            if os.path.isfile(os.path.join(fs_path, "index.html")):
                return "/" + quote(rel, safe="/") + "/"
            return None
        entry = self._make_entry(fs_path, rel, st, versioned)
        self._entries[key] = entry
        self._bytes += self._cost(entry)
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        return entry

    def _cost(self, entry: CachedFile) -> int:
        return self.ENTRY_COST + len(entry.body or b"") + len(entry.gzipped or b"")

    def _drop(self, key: tuple[str, bool]) -> None:
        self._bytes -= self._cost(self._entries.pop(key))

    def _contained(self, fs_path: str) -> bool:
        real = os.path.realpath(fs_path)
        return real == self.root or real.startswith(self.root + os.sep)

    def _make_entry(self, fs_path: str, rel: str, st: os.stat_result,
                    versioned: bool) -> CachedFile:
        facts = rules.FileFacts(st.st_size, st.st_mtime_ns, st.st_ino)
        ctype = rules.content_type(rel)
        inject = self.live_reload and ctype.startswith("text/html")
        body = None
        if st.st_size <= SMALL_FILE:
            with open(fs_path, "rb") as f:
                body = f.read()
            if inject:
                body = _inject_live_script(body)
        headers = ResponseHeaders()
        for name, value in rules.response_headers(rel, facts, versioned=versioned,
                                                  live_reload=inject):
            headers.setRawHeaders(name, [value])
        headers.setRawHeaders(b"server", [b"o2m"])
        if inject:  # a different body under the same stat: a different tag
            headers.setRawHeaders(b"etag", [facts.etag[:-1].encode() + b'-live"'])
        gzipped = gz_headers = None
        if body is not None and len(body) >= 256 and rules.compressible(rel, ctype):
            packed = gzip.compress(body, compresslevel=6, mtime=0)
            if len(packed) < len(body):
                gzipped, gz_headers = packed, headers.copy()
                gz_headers.setRawHeaders(b"content-encoding", [b"gzip"])
                gz_headers.setRawHeaders(b"content-length", [b"%d" % len(packed)])
                gz_headers.removeHeader(b"accept-ranges")
        if body is not None:
            headers.setRawHeaders(b"content-length", [b"%d" % len(body)])
        headers.wire = wire_form(headers)
        if gz_headers is not None:
            gz_headers.wire = wire_form(gz_headers)
        return CachedFile(fs_path, facts, headers, body, gzipped, gz_headers)


def _inject_live_script(page: bytes) -> bytes:
    at = page.rfind(b"</body>")
    return page + LIVE_TAG if at < 0 else page[:at] + LIVE_TAG + page[at:]
