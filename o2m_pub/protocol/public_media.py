"""A public post's files (PROTOCOL.md §1.4, `_o2m.media`): each file of the site that the
item's `content_html` embeds or links, named by its URL, SHA-256 and size, inside the
signed feed.json. A host or CDN that swaps a photo of a public post is then caught: the
reader shows a photo inline only when its bytes are the ones listed (THREATS.md 54).

One rule for both sides, as `post_limits` is: the writer lists at most
`MAX_PUBLIC_MEDIA` files, and the reader ignores a list longer than that, or an entry
that breaks the rule (the item is still read; those images stay links, as any remote
image), as it ignores a bad `_o2m.id`.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from o2m_pub.protocol.canonical import MAX_SAFE_INT, MAX_URL_CHARS, is_sha256_hex
from o2m_pub.protocol.post_limits import MAX_PUBLIC_MEDIA



class ListedFile(NamedTuple):
    """One entry of `_o2m.media`: a file of the author's site, as their signed feed
    names it."""

    url: str  # absolute, under the site's URL, no fragment
    sha256: str  # lowercase hex of the file's bytes
    size: int  # its bytes

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "sha256": self.sha256, "size": self.size}


def listed_entry(value: Any, site_url: str) -> ListedFile | None:
    """One entry as §1.4 allows it, or None: an object with a `url` under `site_url`
    (at most 2,048 characters, no fragment), a lowercase 64-hex `sha256` and a `size`
    in [0, 2^53). Other keys are allowed and ignored (§2.1)."""
    if not isinstance(value, dict):
        return None
    url, sha256, size = value.get("url"), value.get("sha256"), value.get("size")
    if not (isinstance(url, str) and url.startswith(site_url) and len(url) > len(site_url)
            and len(url) <= MAX_URL_CHARS and "#" not in url):
        return None
    if not is_sha256_hex(sha256):
        return None
    if type(size) is not int or not 0 <= size <= MAX_SAFE_INT:  # (bool is no integer here)
        return None
    return ListedFile(url, sha256, size)


def parse_media(value: Any, site_url: str) -> tuple[ListedFile, ...]:
    """An item's `_o2m.media` (§1.4) as a reader keeps it: () when it is absent, not an
    array, or longer than `MAX_PUBLIC_MEDIA` (ignored whole); a bad entry is left out
    alone; of two entries for one URL the first stands.

    Args:
        value: the item's `_o2m.media`, untrusted (None when absent).
        site_url: the author's site URL (their card's): a listed URL is under it.
    """
    if not isinstance(value, list) or len(value) > MAX_PUBLIC_MEDIA:
        return ()
    found: dict[str, ListedFile] = {}
    for item in value:
        entry = listed_entry(item, site_url)
        if entry is not None:
            found.setdefault(entry.url, entry)
    return tuple(found.values())


def media_from_json(value: Iterable[dict[str, Any]]) -> tuple[ListedFile, ...]:
    """Entries as the reader's store keeps them (checked when they were parsed)."""
    return tuple(ListedFile(v["url"], v["sha256"], v["size"]) for v in value)
