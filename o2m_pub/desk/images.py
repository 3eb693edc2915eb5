"""Photos of friends' public posts, shown inline from the friend's own host.

A public post comes as HTML from the friend's feed.json; the fetch sanitises it once
(reader/render.py), and every remote image becomes a link in the stored rendering.
Their own host is no third party (its address and TLS pin are in their signed card),
but a host or a CDN could swap a photo for another (THREATS.md 54): so the desk shows
inline only a photo that the post's item lists in its signed feed (`_o2m.media`,
PROTOCOL.md §1.4: URL, SHA-256, size), and only with those bytes. Any other remote image
stays a link to click (THREATS.md 34), and so does a listed one whose bytes are not
the listed ones: the page then says why, in the link's title and beside it. The
browser never talks to the friend's host: the desk fetches the photo itself, with the
fetcher of `o2m fetch` (the card's pin, or CAs; https only, no redirect off their
origin, a deadline), at most the listed size, in a worker thread; it checks size and
SHA-256, then that the bytes are a PNG, JPEG, GIF or WebP image, before it keeps the
photo in ``.o2m/desk-images/`` (0600, named by the SHA-256 of its URL and its listed
hash and size: a post edited to list another photo under the same URL fetches it
again) or serves it. Bytes that do not match are neither kept nor shown; the refusal
is remembered for the desk's run (a bounded memory), so the post's page shows the
link and its reason.

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
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

from o2m_pub._files import write_file
from o2m_pub.protocol.cards import site_origin
from o2m_pub.protocol.post_limits import MAX_PUBLIC_MEDIA
from o2m_pub.protocol.public_media import ListedFile
from o2m_pub.reader.sanitize import LINK_REL, REMOTE_IMAGE_CLASS

if TYPE_CHECKING:
    from o2m_pub.protocol.cards import Card

CACHE_DIR = "desk-images"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
FETCH_SECONDS = 20.0
MAX_IMAGES = MAX_PUBLIC_MEDIA  # photos shown inline a post: as many as its item may list
MAX_CACHE_BYTES = 64 * 1024 * 1024  # every friend's photos together (THREATS.md 52)
MAX_CACHE_FILES = 2048  # so that tiny photos cannot fill it with files either
MAX_REFUSALS = 1024  # photos remembered as not shown, for the desk's run


@dataclass(frozen=True)
class RemoteImage:
    url: str
    alt: str
    listed: ListedFile  # the file the post's signed feed names at that URL (§1.4)


@dataclass(frozen=True)
class Refusal:
    """Why a listed photo is not shown, in plain words: `short` beside its link,
    `detail` in the link's title and the answer of its URL on the desk."""

    short: str
    detail: str


NOT_THE_PHOTO = Refusal(
    "not shown: it is not the photo they published",
    "Not shown: the file their site serves at this address is not the photo their signed "
    "feed lists for this post (their host, or something on the way, changed it). The link "
    "opens what their site serves now.")
NOT_A_PICTURE = Refusal(
    "not shown: not a picture",
    "Not shown: the file their feed lists here is not a PNG, JPEG, GIF or WebP picture.")
TOO_BIG = Refusal(
    "not shown: too big",
    f"Not shown: their feed lists this photo at more than {MAX_IMAGE_BYTES >> 20} MiB, "
    "more than the desk shows inline. The link opens it from their site.")


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


def _own_links(rendered: str, site_url: str | None, media: tuple[ListedFile, ...]
               ) -> list[tuple[re.Match[str], RemoteImage]]:
    """The links sanitising made of remote images that name a file the post's feed
    lists (same URL, its fragment aside) on the friend's own site (the https origin of
    their card's URL), in order, at most `MAX_IMAGES`: one linear scan."""
    if not rendered or not site_url or not media:
        return []
    try:
        origin = site_origin(site_url)
    except ValueError:
        return []
    by_url = {f.url: f for f in media}
    found = []
    for m in _REMOTE_LINK.finditer(rendered):
        url = html.unescape(m.group(1)).strip()
        listed = by_url.get(url.split("#", 1)[0])
        if listed is None or not url.lower().startswith("https://"):
            continue  # not listed: a link, as any remote image (THREATS.md 34)
        try:
            if site_origin(url) != origin:
                continue
        except ValueError:
            continue
        found.append((m, RemoteImage(url, _alt(m.group(2), url), listed)))
        if len(found) >= MAX_IMAGES:
            break
    return found


def own_images(rendered: str | None, site_url: str | None,
               media: tuple[ListedFile, ...]) -> list[RemoteImage]:
    """The photos of a friend's post that the desk may show: on their own site (same
    https origin as their card's URL) and listed by the post's signed feed item with
    their hash (`media`, PROTOCOL.md §1.4), in order, read from the post's stored
    rendering (render.py, made by the fetch): one linear scan for the links sanitising
    made of remote images, never an HTML parser on the friend's HTML while a page
    waits (THREATS.md 49: html.parser took 83 s on 700 KB of `<script`)."""
    return [image for _, image in _own_links(rendered or "", site_url, media)]


def show_own_images(rendered: str, site_url: str | None, media: tuple[ListedFile, ...],
                    local: Callable[[int], str],
                    refused: Callable[[ListedFile], Refusal | None] | None = None) -> str:
    """The stored rendering with each link to a listed photo of the friend's own site
    made that photo, served by the desk at `local(i)` (i: its place in `own_images`);
    a photo `refused` gives a reason for stays a link, with the reason beside it and
    in its title. Other links stay as they are."""
    out, at = [], 0
    for i, (m, image) in enumerate(_own_links(rendered, site_url, media)):
        why = refused(image.listed) if refused is not None else None
        if why is None:
            shown = f'<img src="{html.escape(local(i))}" alt="{html.escape(image.alt)}">'
        else:  # nh3 wrote the href and the text: quoted, and no '<' in them
            shown = (f'<a class="{REMOTE_IMAGE_CLASS}" href="{m.group(1)}" '
                     f'title="{html.escape(why.detail)}" rel="{LINK_REL}">{m.group(2)}</a> '
                     f'<small class="photo-refused">({html.escape(why.short)})</small>')
        out += [rendered[at:m.start()], shown]
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
    """Fetched photos by the SHA-256 of their URL and listed hash and size, in the state
    folder, within `max_bytes` and `max_files`: the least recently used go first. And
    the listed photos refused during this desk's run, with why (at most
    `MAX_REFUSALS`, the oldest forgotten first)."""

    def __init__(self, state_dir: Path, ca_bundle: str | None = None, *,
                 max_bytes: int = MAX_CACHE_BYTES, max_files: int = MAX_CACHE_FILES) -> None:
        self.folder = state_dir / CACHE_DIR
        self.ca_bundle = ca_bundle
        self.max_bytes, self.max_files = max_bytes, max_files
        self._refused: OrderedDict[ListedFile, Refusal] = OrderedDict()
        self._lock = threading.Lock()  # the desk's worker threads refuse photos too

    def _path(self, listed: ListedFile) -> Path:
        key = f"{listed.url}\n{listed.sha256}\n{listed.size}"
        return self.folder / hashlib.sha256(key.encode()).hexdigest()

    def why_not(self, listed: ListedFile) -> Refusal | None:
        """Why the photo is not shown (too big to fetch, or refused this run), or None."""
        if listed.size > MAX_IMAGE_BYTES:
            return TOO_BIG
        with self._lock:
            return self._refused.get(listed)

    def _refuse(self, listed: ListedFile, why: Refusal) -> None:
        with self._lock:
            self._refused[listed] = why
            self._refused.move_to_end(listed)
            while len(self._refused) > MAX_REFUSALS:
                self._refused.popitem(last=False)

    def cached(self, listed: ListedFile) -> tuple[bytes, str] | None:
        """The kept photo, if it is there and still the listed bytes (a damaged file is
        fetched again)."""
        path = self._path(listed)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        kind = image_type(data)
        if kind is None or not _is_listed(data, listed):
            return None
        _mark_used(path)
        return data, kind

    def fetch(self, listed: ListedFile, card: "Card") -> tuple[bytes, str] | None:
        """Download a listed photo of `card`'s site (in a worker thread): at most its
        listed size, then its size and SHA-256 checked (THREATS.md 54), then its type;
        kept only then, evicting the least recently used photos past the cache's
        bounds. None when it cannot be had now, or is refused (`why_not` says why:
        those bytes are neither kept nor shown)."""
        from o2m_pub.reader.fetch_plan import Refused
        from o2m_pub.reader.http_fetch import HTTPFetcher, Limits
        from o2m_pub.reader.model import Reason

        if self.why_not(listed) is not None:
            return None
        pins = [card.tls_pin] if card.tls_pin else []
        limits = Limits(connect_timeout=10, read_timeout=10, deadline=FETCH_SECONDS, workers=1)
        fetcher = HTTPFetcher(limits, ca_bundle=self.ca_bundle, hosts=1, pins=pins)
        try:
            get = fetcher.getter(card.url, time.monotonic() + FETCH_SECONDS, card.tls_pin)
            response = get(listed.url, cap=listed.size)  # not a byte past the listed size
        except Refused as e:
            if e.reason == Reason.OVERSIZED:  # more bytes than listed: not that photo
                self._refuse(listed, NOT_THE_PHOTO)
            return None
        finally:
            fetcher.close()
        if response.status != 200:
            return None
        if not _is_listed(response.body, listed):
            self._refuse(listed, NOT_THE_PHOTO)
            return None
        kind = image_type(response.body)
        if kind is None:
            self._refuse(listed, NOT_A_PICTURE)
            return None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(listed)
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


def _is_listed(data: bytes, listed: ListedFile) -> bool:
    """Whether `data` are the bytes the feed lists: their size and SHA-256."""
    return len(data) == listed.size and hashlib.sha256(data).hexdigest() == listed.sha256


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
