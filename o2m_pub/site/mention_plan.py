"""Webmention for the owner's public posts (PROTOCOL.md §1.6), the pure part: which
URL names one of the owner's posts, what each post mentions, which mentions are due,
and what an approved mention shows on a post's page. No files, no network, no clock.

Sending follows the W3C spec's rules for updates (Webmention §3.1.4-3.1.5): a post is
mentioned to each of its targets once per version; a changed post is mentioned again
to every target, including one it no longer links to (once); a deleted post (its page
gone) gets a final mention to every target that got one, so the receiver reads the 404
and takes it down.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Callable, Iterable, Mapping
from urllib.parse import urljoin, urlsplit

MAX_ATTEMPTS = 5  # a mention that keeps failing (unreachable, 5xx) is given up after this
DELETED = "deleted"  # the digest recorded after a post's final mention
KIND_WORDS = {"reply": "replied", "like": "liked", "repost": "reposted",
              "bookmark": "bookmarked", "mention": "mentioned"}


# ---------------------------------------------------------------- the owner's URLs


def _host_port(url: str) -> tuple[str, int | None] | None:
    """Host and explicit port (None for the scheme's default) of an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if port == {"http": 80, "https": 443}[parts.scheme.lower()]:
        port = None
    return parts.hostname.lower(), port


def post_of(url: str, site_url: str, public_paths: Iterable[str] | frozenset[str]) -> str | None:
    """The path of the owner's public post that `url` names ("2026/trip/"), or None.

    The site's own host and path, http or https; the post's folder with or without its
    trailing slash or ``index.html``; a fragment is ignored, a query is not a post."""
    if _host_port(url) is None or _host_port(url) != _host_port(site_url):
        return None
    parts = urlsplit(url)
    if parts.query:
        return None
    base = urlsplit(site_url).path or "/"
    path = parts.path
    if not path.startswith(base):
        return None
    rel = path[len(base):]
    if rel.endswith("/index.html"):
        rel = rel[:-len("index.html")]
    if rel and not rel.endswith("/"):
        rel += "/"
    return rel if rel and rel in public_paths else None


# ---------------------------------------------------------------- what a post mentions


@dataclass(frozen=True)
class PublicPost:
    """One published public post, as the sender sees it."""

    path: str  # "2026/trip/"
    digest: str  # changes with anything the post's page shows of it
    reply_to: str | None
    body: Callable[[], str]  # its rendered body (HTML), read only when needed


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href.strip())


def outbound_links(html: str, site_url: str) -> list[str]:
    """The absolute http(s) links of a rendered body that leave the site, in order."""
    parser = _Anchors()
    parser.feed(html)
    parser.close()
    own = _host_port(site_url)
    found = []
    for href in parser.hrefs:
        url = urljoin(site_url, href).split("#", 1)[0]
        if _host_port(url) not in (None, own) and url not in found:
            found.append(url)
    return found


def targets_of(post: PublicPost, site_url: str, *, with_links: bool) -> list[str]:
    """What a public post mentions: its ``reply_to:`` when it is an http(s) URL; with
    `with_links` (``[site] webmention_links``), every outbound link of its body too."""
    found = []
    if post.reply_to and _host_port(post.reply_to) is not None:
        found.append(post.reply_to)
    if with_links:
        found += [url for url in outbound_links(post.body(), site_url) if url not in found]
    own = _host_port(site_url)
    return [url for url in found if _host_port(url) != own]


# ---------------------------------------------------------------- what is due


@dataclass(frozen=True)
class SentRecord:
    """What was last done for one (post, target): the post version (`digest`, or
    `DELETED`), the outcome ("sent", "unlinked", "no endpoint", "refused", "failed",
    "gave up", "deleted") and how many tries failed in a row."""

    post: str
    target: str
    source: str
    digest: str
    outcome: str
    detail: str = ""
    endpoint: str = ""
    attempts: int = 0
    at: str = ""


@dataclass(frozen=True)
class Outgoing:
    """One mention due: the post's URL (`source`) to `target`, and why: "new" (a first
    version), "changed", "retry" (the last try failed), "unlinked" (the new version no
    longer links to it) or "deleted" (the post is gone)."""

    post: str
    source: str
    target: str
    digest: str
    why: str


def _due(post: PublicPost, target: str, record: SentRecord | None) -> str | None:
    if record is None or record.digest == DELETED:
        return "new"
    if record.digest != post.digest:
        return "changed"
    if record.outcome == "failed":
        return "retry"
    return None


def told_mark(digest: str, with_links: bool) -> str:
    """What `told` keeps for a post version whose mentions were all dealt with: its
    digest, marked when every link was mentioned (turning ``webmention_links`` on
    makes every post due again)."""
    return digest + (":links" if with_links else "")


def plan_mentions(posts: Iterable[PublicPost], sent: Mapping[tuple[str, str], SentRecord],
                  told: Mapping[str, str], site_url: str, *,
                  with_links: bool) -> list[Outgoing]:
    """Every mention due, post by post (oldest first as given).

    Args:
        posts: the published public posts.
        sent: (post path, target) -> what was last done for it.
        told: post path -> the `told_mark` of the version whose mentions were all dealt
            with (such a post is skipped without reading its body).
        with_links: mention every outbound link, not only ``reply_to``.
    """
    out: list[Outgoing] = []
    live = {}
    by_post: dict[str, list[SentRecord]] = {}
    for record in sent.values():
        by_post.setdefault(record.post, []).append(record)
    for post in posts:
        live[post.path] = post
        records = by_post.get(post.path, [])
        if told.get(post.path) == told_mark(post.digest, with_links) and not any(
                r.outcome == "failed" for r in records):
            continue
        source = site_url + post.path
        targets = targets_of(post, site_url, with_links=with_links)
        for target in targets:
            why = _due(post, target, sent.get((post.path, target)))
            if why is not None:
                out.append(Outgoing(post.path, source, target, post.digest, why))
        for record in records:
            if (record.target not in targets and record.outcome == "sent"
                    and record.digest not in (post.digest, DELETED)):
                out.append(Outgoing(post.path, source, record.target, post.digest,
                                    "unlinked"))
    for path, records in sorted(by_post.items()):
        if path in live:
            continue
        for record in records:
            if record.outcome in ("sent", "unlinked") or (
                    record.outcome == "failed" and record.digest == DELETED):
                out.append(Outgoing(path, record.source, record.target, DELETED, "deleted"))
    return out


def after_delivery(item: Outgoing, outcome: str, detail: str, endpoint: str,
                   previous: SentRecord | None, at: str) -> SentRecord:
    """The record of `item` once it was tried with `outcome` (a `Delivery`'s)."""
    attempts = (previous.attempts if previous and previous.outcome == "failed"
                and previous.digest == item.digest else 0)
    if outcome == "failed":
        attempts += 1
        if attempts >= MAX_ATTEMPTS:
            outcome = "gave up"
    else:
        attempts = 0
    if item.why == "unlinked" and outcome == "sent":
        outcome = "unlinked"
    if item.why == "deleted" and outcome != "failed":
        outcome = "deleted"
    return SentRecord(item.post, item.target, item.source, item.digest, outcome, detail,
                      endpoint, attempts, at)


# ---------------------------------------------------------------- on the post's page


@dataclass(frozen=True)
class MentionView:
    """An approved mention as a post's page shows it: a name and a link, a kind and a
    date; nothing of its content, no picture."""

    name: str  # the author's name, or the source's host when it gives none
    url: str  # the source: the replier's page
    kind: str  # reply, like, repost, bookmark, mention
    date: dt.datetime

    @property
    def verb(self) -> str:
        return KIND_WORDS.get(self.kind, "mentioned")


def mention_view(source: str, kind: str, author_name: str, published: str,
                 verified: str) -> MentionView:
    """The view of one approved mention; its date is the source's own when it gives a
    readable one, else when it was verified."""
    name = author_name or (urlsplit(source).hostname or source)
    date = None
    for text in (published, verified):
        try:
            date = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, AttributeError):
            continue
        if date.tzinfo is None:
            date = date.replace(tzinfo=dt.timezone.utc)
        break
    return MentionView(name, source, kind if kind in KIND_WORDS else "mention",
                       date or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))


def views_digest(views: Iterable[MentionView]) -> str:
    """Changes whenever what a post's page shows of its mentions changes."""
    h = hashlib.sha256()
    for v in views:
        h.update("\x1f".join((v.name, v.url, v.kind, v.date.isoformat())).encode() + b"\x1e")
    return h.hexdigest()[:32]
