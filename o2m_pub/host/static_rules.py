"""What `o2m serve` answers for a request path: pure rules, no sockets and no files.

The server (serve.py) asks three questions of every request: which file under
``build/`` may a raw URL path name (if any), which headers go with it, and whether
its bytes may be compressed. Answering them here, over strings, lets the tests try
every hostile path (THREATS 40-44) without a server, and keeps the hot path free of
decisions the server can make once per file.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import unquote_to_bytes

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # store, but ask again (ETag / Last-Modified) before each use
HSTS = "max-age=63072000"
# The default theme has no script and no inline style; posts may show remote images.
# connect-src 'self' opens nothing a page uses (it has no script) but lets tools that
# run inside the page, such as Lighthouse's robots.txt check, read the site's own files.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
            "media-src 'self' https:; font-src 'self'; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")
# serve --watch adds the live-reload script, served from the site's own origin.
LIVE_CSP = PAGE_CSP.replace("default-src 'none';", "default-src 'none'; script-src 'self';")
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

# Folders whose files are named by their content (PROTOCOL.md §1.1): never change.
_CONTENT_ADDRESSED = ("o/", "p/", "media/")
# Feeds' ciphertext: never compressed, so sizes stay padded (PROTOCOL.md §3.2).
_CIPHERTEXT = ("o/", "p/", "f/")
_COMPRESSIBLE_TYPES = ("text/", "application/json", "application/feed+json",
                       "application/atom+xml", "application/xml", "image/svg+xml")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff2": "font/woff2",
}
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SPECIAL_TYPES = {"feed.json": "application/feed+json", "atom.xml": "application/atom+xml",
                  "sitemap.xml": "application/xml"}


def resolve(raw_path: bytes) -> str | None:
    """The relative path under build/ that a raw request path names, or None (404).

    Refused: anything but an absolute path; NUL, control characters and backslashes;
    an encoded slash; bytes that are not strict UTF-8 (overlong forms included); any
    ``.`` or ``..`` segment; any segment starting with a dot, but ``.well-known``
    first. A trailing slash names the folder's ``index.html``. Symlinks are the
    server's to check (it knows the disk).
    """
    if not raw_path.startswith(b"/") or b"\\" in raw_path:
        return None
    if b"%" not in raw_path:  # one spelling: the same rules, checked on the whole path
        try:
            rel = raw_path[1:].decode("utf-8", "strict")
        except UnicodeDecodeError:
            return None
        if "//" in rel or rel.startswith("/") or _CONTROL.search(rel):
            return None
        if rel.startswith(".") or "/." in rel:
            segments = rel.split("/")
            if any(hidden_segment(s, first=i == 0) for i, s in enumerate(segments)):
                return None
        return rel + "index.html" if rel == "" or rel.endswith("/") else rel
    try:
        segments = [unquote_to_bytes(s).decode("utf-8", "strict")
                    for s in raw_path[1:].split(b"/")]
    except UnicodeDecodeError:
        return None
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "" and not last:
            return None  # "//": no empty segments
        if any(c in segment for c in "/\\") or any(ord(c) < 0x20 or ord(c) == 0x7f
                                                   for c in segment):
            return None
        if hidden_segment(segment, first=i == 0):
            return None
    rel = "/".join(segments)
    return rel + "index.html" if rel == "" or rel.endswith("/") else rel


def hidden_segment(segment: str, *, first: bool) -> bool:
    """Whether a path segment is a dotfile or dot-folder, which o2m never serves nor
    publishes (`.env`, `.git/`): any name starting with a dot but ``.well-known`` at
    the top, where the card lives (PROTOCOL.md §2.4). `resolve` refuses them; `o2m
    publish` leaves them out (security review finding 11)."""
    return segment.startswith(".") and not (first and segment == ".well-known")


def content_type(rel: str) -> str:
    """The Content-Type for a file under build/.

    Objects, pages and heads are ciphertext; a file without a known extension is
    never guessed as HTML (THREATS 44).
    """
    if rel.startswith(_CIPHERTEXT):
        return "application/octet-stream"
    name = posixpath.basename(rel)
    if name in _SPECIAL_TYPES and "/" not in rel:
        return _SPECIAL_TYPES[name]
    ext = posixpath.splitext(name)[1].lower()
    if ext in _TYPES:
        return _TYPES[ext]
    guessed = mimetypes.types_map.get(ext) if ext else None
    if guessed and not guessed.startswith("text/html") and guessed != "application/x-python-code":
        return guessed + ("; charset=utf-8" if guessed.startswith("text/") else "")
    return "application/octet-stream"


def cache_control(rel: str, versioned: bool) -> str:
    """Immutable for content-addressed files (and static assets asked for by version);
    revalidate everything else: heads, pages, feeds change in place."""
    if rel.startswith(_CONTENT_ADDRESSED) or (versioned and rel.startswith("static/")):
        return IMMUTABLE
    return REVALIDATE


def compressible(rel: str, ctype: str) -> bool:
    """Only public text: never ciphertext (sizes are padded on purpose, and compressing
    secrets beside attacker-chosen bytes leaks them, as in BREACH)."""
    return not rel.startswith(_CIPHERTEXT) and ctype.startswith(_COMPRESSIBLE_TYPES)


@dataclass(frozen=True)
class FileFacts:
    """What the server knows about a file from one stat."""

    size: int
    mtime_ns: int
    inode: int

    @property
    def etag(self) -> str:
        # Strong, and the same in every worker process: the bytes change only with
        # a rename (the builder's atomic writes), which changes the inode or mtime.
        return f'"{self.size:x}-{self.mtime_ns:x}-{self.inode:x}"'

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime_ns / 1e9, usegmt=True)


def response_headers(rel: str, facts: FileFacts, *, versioned: bool,
                     live_reload: bool = False) -> list[tuple[bytes, bytes]]:
    """Every header of a 200 answer but Content-Length, Content-Encoding and Date."""
    ctype = content_type(rel)
    if ctype.startswith("text/html"):
        csp = LIVE_CSP if live_reload else PAGE_CSP
    else:
        csp = DATA_CSP
    headers = [
        ("Content-Type", ctype),
        ("Cache-Control", cache_control(rel, versioned)),
        ("ETag", facts.etag),
        ("Last-Modified", facts.last_modified),
        ("Accept-Ranges", "bytes"),
        ("Strict-Transport-Security", HSTS),
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if compressible(rel, ctype):
        headers.append(("Vary", "Accept-Encoding"))
    return [(k.encode(), v.encode()) for k, v in headers]


def parse_range(header: bytes | None, size: int) -> tuple[int, int] | None | str:
    """One byte range as [start, end) from a Range header; None for the whole file
    (no header, or several ranges, which we may answer in full); "unsatisfiable"."""
    if not header or not header.startswith(b"bytes=") or b"," in header:
        return None
    spec = header[6:].strip()
    first, sep, last = spec.partition(b"-")
    if not sep:
        return None
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size)
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return "unsatisfiable"
    return (start, min(end, size))


def not_modified(facts: FileFacts, if_none_match: bytes | None,
                 if_modified_since: bytes | None, *, etag: bytes | None = None) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since. `etag` is the tag
    the answer carries when it is not the file's own (a live-reload page's)."""
    if if_none_match is not None:
        tags = {t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")}
        return b"*" in tags or (etag or facts.etag.encode()) in tags
    if if_modified_since is not None:
        from email.utils import parsedate_to_datetime
        try:
            since = parsedate_to_datetime(if_modified_since.decode("latin-1"))
        except (TypeError, ValueError, IndexError):
            return False
        return facts.mtime_ns // 1_000_000_000 <= since.timestamp()
    return False
