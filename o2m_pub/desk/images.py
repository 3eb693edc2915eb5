"""Photos of friends' public posts, shown inline from the friend's own host.

A public post comes as HTML from the friend's feed.json, its photos as links to their
site. Their own host is no third party (its address and TLS pin are in their signed
card), so the desk shows those photos; any other remote image stays a link to click
(THREATS.md 34). The browser never talks to the friend's host: the desk fetches the
photo itself, with the fetcher of `o2m fetch` (the card's pin, or CAs; https only, no
redirect off their origin, a size cap and a deadline), in a worker thread, keeps it in
``.o2m/desk-images/`` (0600, by the SHA-256 of its URL), and serves it only if its
bytes are a PNG, JPEG, GIF or WebP image.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from o2m_pub._files import write_file
from o2m_pub.protocol.cards import site_origin

if TYPE_CHECKING:
    from o2m_pub.protocol.cards import Card

CACHE_DIR = "desk-images"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
FETCH_SECONDS = 20.0
MAX_IMAGES = 50


@dataclass(frozen=True)
class RemoteImage:
    url: str
    alt: str


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[RemoteImage] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and len(self.found) < MAX_IMAGES:
            values = {k: (v or "") for k, v in attrs}
            if values.get("src"):
                self.found.append(RemoteImage(values["src"].strip(), values.get("alt", "")))


def own_images(html: str | None, site_url: str | None) -> list[RemoteImage]:
    """The images of a friend's HTML that live on their own site (same https origin as
    their card's URL), in order."""
    if not html or not site_url:
        return []
    parser = _Images()
    try:
        parser.feed(html[:2 * 1024 * 1024])
        parser.close()
    except Exception:  # noqa: BLE001 - a parser error: no images, the text still shows
        return []
    try:
        origin = site_origin(site_url)
    except ValueError:
        return []
    mine = []
    for image in parser.found:
        try:
            if image.url.lower().startswith("https://") and site_origin(image.url) == origin:
                mine.append(image)
        except ValueError:
            continue
    return mine


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
    """Fetched photos by the SHA-256 of their URL, in the state folder."""

    def __init__(self, state_dir: Path, ca_bundle: str | None = None) -> None:
        self.folder = state_dir / CACHE_DIR
        self.ca_bundle = ca_bundle

    def _path(self, url: str) -> Path:
        return self.folder / hashlib.sha256(url.encode()).hexdigest()

    def cached(self, url: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(url).read_bytes()
        except OSError:
            return None
        kind = image_type(data)
        return (data, kind) if kind else None

    def fetch(self, url: str, card: "Card") -> tuple[bytes, str] | None:
        """Download a photo of `card`'s site and keep it (in a worker thread). None
        when it cannot be had or is no raster image."""
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
        write_file(self._path(url), response.body, 0o600)
        return response.body, kind
