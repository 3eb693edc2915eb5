"""JSON Feed 1.1, Atom 1.0 and sitemap.xml of the public site: pure functions from the
newest posts (with absolute-link HTML) to bytes.

`fit_feeds` keeps feed.json within what a reader takes (PROTOCOL.md §1.4: 4 MiB, 1,000
items, 1 MiB of `content_html` each), which a reader otherwise refuses whole: a post too
long for a feed gives its summary and a link to its page, and the oldest posts are left
out until the feed fits. Both feeds carry the entries it keeps. Each JSON item lists
the site's files its HTML refers to (`_o2m.media`, §1.4; `public_feeds.listed_media`
makes the list); Atom has no place for them and carries none.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from html import escape as _escape
from typing import Any, Iterable, NamedTuple

from o2m_pub.config import SiteConfig
from o2m_pub.protocol.post_limits import (
    MAX_CONTENT_HTML,
    MAX_PUBLIC_FEED_BYTES,
    MAX_PUBLIC_ITEMS,
)
from o2m_pub.protocol.public_media import ListedFile
from o2m_pub.site.model import PostRecord

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_HEADERLINK = re.compile(r'<a class="headerlink"[^>]*>[^<]*</a>')
_FRAGMENT_HREF = re.compile(r'(<a\b[^>]*?\bhref=")(#[^"]*")')
_ALIGN_CLASS = re.compile(r'<(t[dh]) class="align-(left|right|center)">')
_TABLE_WRAP = re.compile(r'<div [^>]*class="table-wrap"[^>]*>')


class FeedEntry(NamedTuple):
    record: PostRecord
    url: str
    html: str  # links already absolute
    id: str | None = None  # the post's stable id (PROTOCOL.md §1.4), None without keys
    media: tuple[ListedFile, ...] = ()  # the site's files `html` refers to (§1.4)


def _rfc3339(value: str) -> str:
    return dt.datetime.fromisoformat(value).isoformat(timespec="seconds")


def _x(text: str) -> str:
    """Text for XML content or attributes (html.escape's entities are XML's too)."""
    return _escape(_XML_INVALID.sub("", text), quote=True)


def quoteattr(text: str) -> str:
    return f'"{_x(text)}"'


def feed_html(html: str, url: str) -> str:
    """A post's page HTML made fit for feed readers, which resolve links against the
    feed and drop the site's CSS: the headings' "¶" permalinks go, a link to a part of
    the page (``#fn:1``) names the post's `url`, a column's alignment is an attribute
    again (a reader has no ``align-right`` class), and no element takes the focus."""
    html = _HEADERLINK.sub("", html)
    html = _FRAGMENT_HREF.sub(lambda m: m.group(1) + _escape(url, quote=True) + m.group(2),
                              html)
    html = _ALIGN_CLASS.sub(r'<\1 align="\2">', html)
    html = _TABLE_WRAP.sub("<div>", html)
    return html.replace('<pre tabindex="0">', "<pre>")


def _json_item(e: FeedEntry) -> dict[str, Any]:
    r = e.record
    item = {"id": e.url, "url": e.url}
    if r.title:
        item["title"] = r.title
    item["content_html"] = feed_html(e.html, e.url)
    if r.summary:
        item["summary"] = r.summary
    item["date_published"] = _rfc3339(r.date)
    if r.updated:
        item["date_modified"] = _rfc3339(r.updated)
    if r.tags:
        item["tags"] = list(r.tags)
    extension = {}
    if e.id:  # stable across moves and key rotations: readers key the post by it
        extension["id"] = e.id
    if r.reply_to:
        extension["reply_to"] = r.reply_to
    if e.media:  # signed with the feed: a reader shows only these photos (THREATS.md 54)
        extension["media"] = [f.to_json() for f in e.media]
    if extension:
        item["_o2m"] = extension
    return item


def _dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode()


def _json_document(config: SiteConfig, items: list[dict[str, Any]]) -> dict[str, Any]:
    """https://www.jsonfeed.org/version/1.1/ with full content."""
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": config.name,
        "home_page_url": config.url,
        "feed_url": config.url + "feed.json",
        "language": config.language,
        "authors": [{"name": config.author, "url": config.url}],
        "icon": config.url + "static/favicon.svg",  # the theme's (static/ is versioned
        "favicon": config.url + "static/favicon.svg",  # for pages; this URL stays)
    }
    if config.description:
        doc["description"] = config.description
    doc["items"] = items
    return doc


class FittedFeeds(NamedTuple):
    """What `fit_feeds` made: feed.json's bytes, the entries it and atom.xml carry, and
    the build's warnings about what it changed to fit."""

    json: bytes
    entries: list[FeedEntry]
    warnings: list[str]


def _link_only(e: FeedEntry) -> FeedEntry:
    """An entry whose HTML is its summary and a link to its page, for a post too long
    for a feed reader (it refers to none of the site's files: no `media` either)."""
    summary = f"<p>{_escape(e.record.summary)}</p>\n" if e.record.summary else ""
    link = f'<p><a href="{_escape(e.url, quote=True)}">Read it on the site</a></p>'
    return e._replace(html=summary + link, media=())


def fit_feeds(config: SiteConfig, entries: list[FeedEntry]) -> FittedFeeds:
    """feed.json within what every reader takes (PROTOCOL.md §1.4), a reader refusing the
    whole feed otherwise: at most 1,000 items; a post whose `content_html` would pass
    1,048,576 characters gives its summary and a link to its page instead of its text
    (a reader still learns of it); and then, while the feed passes 4 MiB, its oldest
    posts are left out (they stay on the site). The newest post always stays, given as
    a link when it alone would not fit.

    Args:
        entries: the newest public posts, newest first.

    Returns:
        feed.json, the entries kept (for atom.xml too) and one warning per change.
    """
    entries = entries[:MAX_PUBLIC_ITEMS]
    items = [_json_item(e) for e in entries]
    too_long: dict[int, str] = {}  # entry -> why it goes as a link
    for i, item in enumerate(items):
        size = len(item["content_html"])
        if size > MAX_CONTENT_HTML:
            entries[i] = _link_only(entries[i])
            items[i] = _json_item(entries[i])
            too_long[i] = f"its HTML has {size:,} characters, more than the " \
                          f"{MAX_CONTENT_HTML:,} a feed reader takes"
    data = _dump(_json_document(config, items))
    kept = len(items)
    if len(data) > MAX_PUBLIC_FEED_BYTES:
        # Each item's bytes in the document (at the same depth, so the same indentation),
        # plus one: the sum over a prefix bounds that prefix's part of the feed.
        empty = len(_dump({"items": []}))
        sizes = [len(_dump({"items": [item]})) - empty + 1 for item in items]
        room, kept = MAX_PUBLIC_FEED_BYTES - len(_dump(_json_document(config, []))), 0
        if sizes[0] > room:  # the newest post alone passes the cap: it goes as a link
            entries[0] = _link_only(entries[0])
            items[0] = _json_item(entries[0])
            sizes[0] = len(_dump({"items": [items[0]]})) - empty + 1
            too_long[0] = f"it alone passes the {MAX_PUBLIC_FEED_BYTES:,} bytes of feed.json"
        while kept < len(items) and sizes[kept] <= room:
            room -= sizes[kept]
            kept += 1
        data = _dump(_json_document(config, items[:kept]))
        while len(data) > MAX_PUBLIC_FEED_BYTES and kept > 1:  # (the bound makes it rare)
            kept -= 1
            data = _dump(_json_document(config, items[:kept]))
    warnings = [f"{entries[i].record.source}: {why} (PROTOCOL.md §1.4): feed.json and "
                "atom.xml give its summary and a link to its page instead of its text"
                for i, why in sorted(too_long.items()) if i < kept]
    if kept < len(items):
        left_out = [e.record.source for e in entries[kept:]]
        named = ", ".join(left_out[:3]) + (f" and {len(left_out) - 3:,} more"
                                           if len(left_out) > 3 else "")
        warnings.append(
            f"feed.json: its {len(items):,} newest public posts would pass the "
            f"{MAX_PUBLIC_FEED_BYTES:,} bytes a feed reader takes (PROTOCOL.md §1.4): it and "
            f"atom.xml leave out the {len(left_out):,} oldest ({named}), which stay on "
            "the site; a lower `feed_items` in o2m.toml leaves them out without this warning")
    return FittedFeeds(data, entries[:kept], warnings)


def atom(config: SiteConfig, entries: list[FeedEntry]) -> bytes:
    """RFC 4287 Atom, full content as escaped HTML."""
    updated = max((_rfc3339(e.record.updated or e.record.date) for e in entries),
                  default="1970-01-01T00:00:00+00:00")
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang={quoteattr(config.language)}>',
        f"<title>{_x(config.name)}</title>",
    ]
    if config.description:
        out.append(f"<subtitle>{_x(config.description)}</subtitle>")
    out += [
        f"<id>{_x(config.url)}</id>",
        f'<link rel="alternate" type="text/html" href={quoteattr(config.url)}/>',
        f'<link rel="self" type="application/atom+xml" href={quoteattr(config.url + "atom.xml")}/>',
        f"<updated>{updated}</updated>",
        f"<author><name>{_x(config.author)}</name><uri>{_x(config.url)}</uri></author>",
        '<generator uri="https://github.com/o2m">o2m</generator>',
    ]
    for e in entries:
        r = e.record
        out += [
            "<entry>",
            f'<title type="text">{_x(r.display_title)}</title>',
            f'<link rel="alternate" type="text/html" href={quoteattr(e.url)}/>',
            f"<id>{_x(e.url)}</id>",
            f"<published>{_rfc3339(r.date)}</published>",
            f"<updated>{_rfc3339(r.updated or r.date)}</updated>",
        ]
        out += [f"<category term={quoteattr(_XML_INVALID.sub('', t))}/>" for t in r.tags]
        if r.summary and r.title:
            out.append(f'<summary type="text">{_x(r.summary)}</summary>')
        out += [f'<content type="html">{_x(feed_html(e.html, e.url))}</content>', "</entry>"]
    out.append("</feed>\n")
    return "\n".join(out).encode()


def robots_txt(config: SiteConfig) -> bytes:
    """robots.txt: crawlers may read the public site, are told where its sitemap is,
    and need not fetch the ciphertext of friends' feeds (it means nothing to them)."""
    base = config.base_path
    return "".join([
        "User-agent: *\n",
        *(f"Disallow: {base}{folder}/\n" for folder in ("o", "p", "f")),
        f"\nSitemap: {config.url}sitemap.xml\n",
    ]).encode()


def sitemap(urls: Iterable[tuple[str, str | None]]) -> bytes:
    """https://www.sitemaps.org/protocol.html: (absolute URL, last modified) pairs."""
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for url, lastmod in urls:
        mod = f"<lastmod>{_rfc3339(lastmod)}</lastmod>" if lastmod else ""
        out.append(f"<url><loc>{_x(url)}</loc>{mod}</url>")
    out.append("</urlset>\n")
    return "\n".join(out).encode()
