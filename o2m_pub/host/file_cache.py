"""The file cache of `o2m serve`: per file, what others compute per request.

An entry holds a file's response headers (and their wire form), its bytes when small,
and, once a client has asked for it, their gzip when the file is public text (read
from the ``.gz`` the builder may leave beside it, else compressed here once). An entry
is dropped when its file changes, as the server's `file_watch` reports (its entries are
served without a look at the disk); an entry `file_watch` cannot vouch for is checked
by one ``stat`` per request (size, mtime and inode: the builder replaces files by
rename). Which path may be served, and with which headers, is decided by the pure
rules in static_rules.py; this module is the files around them (docs/adr/0004).

A miss is cheap (about 30 µs for a page): the headers every file of a kind shares are
made once per kind, and a path is checked for symlinks only below build/ itself.
The cache's size is derived from the site's and the machine's (`cache_budget`), so
that a whole site's working set fits where memory allows and stays bounded where
it does not.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from twisted.web import http

from o2m_pub.host import _twisted_compat as compat
from o2m_pub.host import static_rules as rules
from o2m_pub.host.file_watch import Changes, FolderWatch, relative_to, under_any

SMALL_FILE = 1 << 20  # files up to this size are kept in memory
LIVE_TAG = b'<script src="/_o2m/live.js" defer></script>'  # serve's LIVE_SCRIPT_PATH
MIN_CACHE = 64 << 20  # per worker, whatever the site
MEMORY_SHARE = 4  # all workers' caches together take at most 1/4 of the available memory


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
    return _wire(compat.raw_headers(headers))


def _wire(raw: dict[bytes, list[bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, values in raw.items()
                    for value in values)


_CANONICAL: dict[bytes, bytes] = {}


def _canonical(name: bytes) -> bytes:
    """A header name as Twisted stores it (``etag`` -> ``ETag``), asked once per name."""
    known = _CANONICAL.get(name)
    if known is None:
        probe = http.Headers()
        probe.setRawHeaders(name, [b""])
        known = _CANONICAL[name] = next(iter(compat.raw_headers(probe)))
    return known


def _headers(raw: dict[bytes, list[bytes]]) -> ResponseHeaders:
    headers = compat.headers_over(raw, ResponseHeaders)
    headers.wire = _wire(raw)
    return headers


@dataclass
class CachedFile:
    """A servable file as of one stat: its headers and, when small, its bytes; its
    gzip variant once asked for (`FileCache.gzip_variant`)."""

    fs_path: str
    facts: rules.FileFacts
    headers: ResponseHeaders
    body: bytes | None
    compressible: bool = False  # public text, small, worth trying to gzip
    gzipped: bytes | None = None
    gz_headers: ResponseHeaders | None = None
    gzip_tried: bool = False
    key: tuple[str, bool] = ("", False)  # in FileCache._entries
    # no stat a hit: its folder was watched before it was read, and a change to it can
    # come through no other path (no symlink on its path, one name, build/'s device)
    watched: bool = False


def cache_budget(build_dir: Path, workers: int, available: int | None = None) -> int:
    """Bytes of cache per worker: enough for every small file of the site and a gzip
    variant of each (one and a half times their size, plus the entries' overhead),
    at least `MIN_CACHE`, and all workers together at most 1/`MEMORY_SHARE` of the
    memory available now (`available`, read from the system when None)."""
    need = 0
    for folder, dirs, files in os.walk(build_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            try:
                size = os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
            if size <= SMALL_FILE:
                need += size + size // 2 + FileCache.ENTRY_COST
    if available is None:
        available = _available_memory()
    return max(MIN_CACHE, min(need, available // (MEMORY_SHARE * max(1, workers))))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * MIN_CACHE * MEMORY_SHARE


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
        # what tells `changed` of the changes, when the server has one
        self.folder_watch: FolderWatch | None = None
        try:
            self._root_device: int | None = os.stat(self.root).st_dev
        except OSError:
            self._root_device = None
        self._entries: OrderedDict[tuple[str, bool], CachedFile] = OrderedDict()
        self._bytes = 0
        self._shapes: dict[tuple, dict[bytes, list[bytes]]] = {}

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
        if self.folder_watch is not None:
            self.folder_watch.sync()  # a change made before this request is taken
        entry = self._entries.get(key)
        if entry is not None:
            if entry.watched:
                self._entries.move_to_end(key)
                return entry
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
        # watched before the file is read: a change after this reaches `changed`
        watched = self.folder_watch is not None and \
            self.folder_watch.watch(os.path.dirname(fs_path))
        st, plain = self._contained_stat(fs_path, rel)
        if st is None:
            return None  # missing, or a symlink out of build/ (THREATS 42)
        if stat.S_ISDIR(st.st_mode):
            # /dir -> /dir/ only where a page is there to show; never a listing (THREATS 40)
            if os.path.isfile(os.path.join(fs_path, "index.html")):
                return "/" + quote(rel, safe="/") + "/"
            return None
        entry = self._make_entry(fs_path, rel, st, versioned)
        # a change through a symlink's target, a file's other name (a hard link) or a
        # file system mounted inside build/ makes no event in the folder watched
        entry.watched = (watched and plain and st.st_nlink == 1
                         and st.st_dev == self._root_device)
        self._entries[key] = entry
        self._charge(self._cost(entry))
        return entry

    def changed(self, changes: Changes) -> None:
        """Drop what changed (`file_watch.interpret`): each file's entries, and those
        of the file a changed ``.gz`` is the gzip of; every entry in a folder tree, in
        one pass however many trees; or all of them."""
        if changes.everything or self.root in changes.trees:
            self._entries.clear()
            self._bytes = 0
            return
        for path in changes.files:
            rel = relative_to(self.root, path)
            for name in (rel, rel[:-3]) if rel and rel.endswith(".gz") else (rel,):
                for key in ((name, False), (name, True)):
                    if key in self._entries:
                        self._drop(key)
        if changes.trees:
            for key, entry in list(self._entries.items()):
                if under_any(entry.fs_path, changes.trees):
                    self._drop(key)

    def gzip_variant(self, entry: CachedFile) -> tuple[bytes, ResponseHeaders] | None:
        """The gzip form of a compressible entry and its headers, made on first use:
        the builder's ``.gz`` beside the file when it is at least as new as the file,
        else compressed here (level 6); None when gzip would not make it smaller."""
        if not entry.gzip_tried:
            entry.gzip_tried = True
            packed = _read_precompressed(entry.fs_path, entry.facts)
            if packed is None:
                packed = _gzip(entry.body or b"")
            if len(packed) < len(entry.body or b""):
                raw = dict(compat.raw_headers(entry.headers))
                raw.pop(_canonical(b"accept-ranges"), None)
                raw.pop(_canonical(b"content-length"), None)
                raw[_canonical(b"content-encoding")] = [b"gzip"]
                raw[_canonical(b"content-length")] = [b"%d" % len(packed)]
                entry.gzipped, entry.gz_headers = packed, _headers(raw)
                if self._entries.get(entry.key) is entry:  # else never charged, never dropped
                    self._charge(len(packed))
        if entry.gzipped is None or entry.gz_headers is None:
            return None
        return entry.gzipped, entry.gz_headers

    def _charge(self, cost: int) -> None:
        self._bytes += cost
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _cost(self, entry: CachedFile) -> int:
        return self.ENTRY_COST + len(entry.body or b"") + len(entry.gzipped or b"")

    def _drop(self, key: tuple[str, bool]) -> None:
        self._bytes -= self._cost(self._entries.pop(key))

    def _contained_stat(self, fs_path: str,
                        rel: str) -> tuple[os.stat_result | None, bool]:
        """The file's stat if it is inside build/ (THREATS 42), else None; and whether
        its path has no symlink in it. Each part of the path below build/ is looked at
        without following it, and only a path with a symlink in it is resolved whole
        (build/ itself was resolved once)."""
        path = self.root
        st = None
        for part in rel.split("/"):
            path = path + os.sep + part
            try:
                st = os.lstat(path)
            except OSError:
                return None, True
            if stat.S_ISLNK(st.st_mode):
                if relative_to(self.root, os.path.realpath(fs_path)) is None:
                    return None, False
                try:
                    return os.stat(fs_path), False
                except OSError:
                    return None, False
        return st, True

    def _shape(self, rel: str, ctype: str, facts: rules.FileFacts, versioned: bool,
               inject: bool) -> dict[bytes, list[bytes]]:
        """The headers every file of one kind shares, in order, with the file's own
        (ETag, Last-Modified, Content-Length) filled in by `_make_entry`."""
        kind = (ctype, rules.cache_control(rel, versioned), rules.compressible(rel, ctype),
                inject)
        shape = self._shapes.get(kind)
        if shape is None:
            shape = {_canonical(name): [value] for name, value in rules.response_headers(
                rel, facts, versioned=versioned, live_reload=inject)}
            shape[_canonical(b"server")] = [b"o2m"]
            shape[_canonical(b"content-length")] = [b""]
            self._shapes[kind] = shape
        return shape

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
        raw = dict(self._shape(rel, ctype, facts, versioned, inject))
        etag = facts.etag.encode()
        if inject:  # a different body under the same stat: a different tag
            etag = etag[:-1] + b'-live"'
        raw[_canonical(b"etag")] = [etag]
        raw[_canonical(b"last-modified")] = [http.datetimeToString(st.st_mtime_ns // 10**9)]
        if body is not None:
            raw[_canonical(b"content-length")] = [b"%d" % len(body)]
        else:
            del raw[_canonical(b"content-length")]
        compressible = (body is not None and len(body) >= 256
                        and rules.compressible(rel, ctype))
        return CachedFile(fs_path, facts, _headers(raw), body, compressible,
                          key=(rel, versioned))


def _read_precompressed(fs_path: str, facts: rules.FileFacts) -> bytes | None:
    """The builder's gzip of the file, when there is one no older than the file."""
    try:
        st = os.stat(fs_path + ".gz")
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < facts.mtime_ns or \
                st.st_size > SMALL_FILE:
            return None
        with open(fs_path + ".gz", "rb") as f:
            return f.read()
    except OSError:
        return None


def _gzip(body: bytes) -> bytes:
    """gzip's format, no name and no time, level 6, in one zlib call."""
    return zlib.compress(body, 6, wbits=31)


def _inject_live_script(page: bytes) -> bytes:
    at = page.rfind(b"</body>")
    return page + LIVE_TAG if at < 0 else page[:at] + LIVE_TAG + page[at:]
