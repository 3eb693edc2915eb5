"""Photos of friends' public posts, shown inline from the friend's own host.

A public post comes as HTML from the friend's feed.json; the fetch sanitises it once
(reader/render.py), and every remote image becomes a link in the stored rendering.
Their own host is no third party (its address and TLS pin are in their signed card),
so the desk shows the photos from there; any other remote image stays a link to click
(THREATS.md 34). The browser never talks to the friend's host: the desk fetches the
photo itself, with the fetcher of `o2m fetch` (the card's pin, or CAs; https only, no
redirect off their origin, a size cap and a deadline), in a worker thread, keeps it in
``.o2m/desk-images/`` (0600, by the SHA-256 of its URL), and serves it only if its
bytes are a PNG, JPEG, GIF or WebP image.

That folder is a cache with a bound of its own (THREATS.md 52): at most
`MAX_CACHE_BYTES` and `MAX_CACHE_FILES` for all friends together, the least recently
shown photos evicted first (each file's mtime is the last time it was shown or kept),
so no friend grows it without end, whatever URLs (`?v=1`, `?v=2`, ...) their posts
give one photo. It is not counted in a friend's quota of the reader's store: evicting
a photo costs one download when it is next shown, where a quota refuses the friend's
next update; a photo cached because the owner looked at it must never cost a post.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

from o2m_pub._files import write_file
from o2m_pub.protocol.cards import site_origin
from o2m_pub.reader.sanitize import REMOTE_IMAGE_CLASS

if TYPE_CHECKING:
    from o2m_pub.protocol.cards import Card

CACHE_DIR = "desk-images"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
FETCH_SECONDS = 20.0
MAX_IMAGES = 50
MAX_CACHE_BYTES = 64 * 1024 * 1024  # every friend's photos together (THREATS.md 52)
MAX_CACHE_FILES = 2048  # so that tiny photos cannot fill it with files either


@dataclass(frozen=True)
class RemoteImage:
    url: str
    alt: str


# A remote image as reader.sanitize leaves it in a stored rendering: a link of its
# class (`_RemoteImages._link`), with "[image: ALT (HOST)]" or "[image from HOST]" as
# its text. nh3 wrote it: attributes quoted ('"' escaped within), no '<' in the text.
# Each try stops at the next '<', so a scan is linear whatever the text holds.
_REMOTE_LINK = re.compile(
    rf'<a class="{REMOTE_IMAGE_CLASS}" href="([^"<>]*)"[^<>]*>([^<]*)</a>')


def _alt(label: str, url: str) -> str:
    text = html.unescape(label)
    host = urlsplit(url).hostname or "?"
    if text.startswith("[image: ") and text.endswith(f" ({host})]"):
        return text[len("[image: "):-len(f" ({host})]")]
    return ""


def _own_links(rendered: str, origin: str) -> list[tuple[re.Match[str], RemoteImage]]:
    found = []
    for m in _REMOTE_LINK.finditer(rendered):
        url = html.unescape(m.group(1)).strip()
        try:
            if url.lower().startswith("https://") and site_origin(url) == origin:
                found.append((m, RemoteImage(url, _alt(m.group(2), url))))
        except ValueError:
            continue
        if len(found) >= MAX_IMAGES:
            break
    return found


def own_images(rendered: str | None, site_url: str | None) -> list[RemoteImage]:
    """The images of a friend's post that live on their own site (same https origin as
    their card's URL), in order, read from the post's stored rendering (render.py,
    made by the fetch): one linear scan for the links sanitising made of remote
    images, never an HTML parser on the friend's HTML while a page waits (THREATS.md
    49: html.parser took 83 s on 700 KB of `<script`)."""
    if not rendered or not site_url:
        return []
    try:
        origin = site_origin(site_url)
    except ValueError:
        return []
    return [image for _, image in _own_links(rendered, origin)]


def show_own_images(rendered: str, site_url: str | None, local: Callable[[int], str]) -> str:
    """The stored rendering with each link to a photo of the friend's own site made
    that photo, served by the desk at `local(i)` (i: its place in `own_images`)."""
    if not site_url:
        return rendered
    try:
        origin = site_origin(site_url)
    except ValueError:
        return rendered
    out, at = [], 0
    for i, (m, image) in enumerate(_own_links(rendered, origin)):
        out += [rendered[at:m.start()],
                f'<img src="{html.escape(local(i))}" alt="{html.escape(image.alt)}">']
        at = m.end()
    return "".join(out) + rendered[at:]


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def image_type(data: bytes) -> str | None:
    """The raster type of these bytes, by their first bytes; None for anything else
    (an SVG, HTML, a script)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class ImageCache:
    """Fetched photos by the SHA-256 of their URL, in the state folder, within
    `max_bytes` and `max_files`: the least recently used go first."""

    def __init__(self, state_dir: Path, ca_bundle: str | None = None, *,
                 max_bytes: int = MAX_CACHE_BYTES, max_files: int = MAX_CACHE_FILES) -> None:
        self.folder = state_dir / CACHE_DIR
        self.ca_bundle = ca_bundle
        self.max_bytes, self.max_files = max_bytes, max_files

    def _path(self, url: str) -> Path:
        return self.folder / hashlib.sha256(url.encode()).hexdigest()

    def cached(self, url: str) -> tuple[bytes, str] | None:
        path = self._path(url)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        kind = image_type(data)
        if kind is None:
            return None
        _mark_used(path)
        return data, kind

    def fetch(self, url: str, card: "Card") -> tuple[bytes, str] | None:
        """Download a photo of `card`'s site and keep it (in a worker thread), evicting
        the least recently used photos past the cache's bounds. None when it cannot be
        had or is no raster image."""
        from o2m_pub.reader.fetch_plan import Refused
        from o2m_pub.reader.http_fetch import HTTPFetcher, Limits

        pins = [card.tls_pin] if card.tls_pin else []
        limits = Limits(connect_timeout=10, read_timeout=10, deadline=FETCH_SECONDS, workers=1)
        fetcher = HTTPFetcher(limits, ca_bundle=self.ca_bundle, hosts=1, pins=pins)
        try:
            get = fetcher.getter(card.url, time.monotonic() + FETCH_SECONDS, card.tls_pin)
            response = get(url, cap=MAX_IMAGE_BYTES)
        except Refused:
            return None
        finally:
            fetcher.close()
        kind = image_type(response.body) if response.status == 200 else None
        if kind is None:
            return None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(url)
        write_file(path, response.body, 0o600)
        _mark_used(path)
        self._evict(keep=path.name)
        return response.body, kind

    def _evict(self, keep: str) -> None:
        """Remove the least recently used photos (but `keep`, just kept) until the cache
        is within its bounds. Two desk threads may evict at once: a file gone already
        is passed over."""
        photos, total = [], 0
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not _is_cache_name(entry.name):
                    continue  # a temporary file of write_file: another thread's, being kept
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += info.st_size
                if entry.name != keep:
                    photos.append((info.st_mtime_ns, entry.name, info.st_size))
        count = len(photos) + 1
        for _, name, size in sorted(photos):
            if total <= self.max_bytes and count <= self.max_files:
                break
            (self.folder / name).unlink(missing_ok=True)
            total, count = total - size, count - 1


def _is_cache_name(name: str) -> bool:
    return len(name) == 64 and not name.strip("0123456789abcdef")


def _mark_used(path: Path) -> None:
    """Its mtime set to now, to the nanosecond (a file's own mtime may be as coarse as
    the kernel's tick): the eviction's order."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except OSError:
        pass  # evicted meanwhile by another thread: it is still shown this once
