"""The home timeline, its filters and search, and one post, as page models over the
reader's store. Pure but for the store's queries; times (`now`, the zone) passed in.

Everything a friend wrote reaches a page through `reader.sanitize`: names and titles
neutralised (`display_text`, then autoescaped); bodies as the fetch rendered and cleaned
them (nh3), once, in a child with hard limits (reader/render.py). No parser runs on a
friend's text while a page waits (THREATS.md 49): a post not rendered yet, or too
complex to render, is shown as its escaped text (a linear step) with a note.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from o2m_pub.desk.images import Refusal, own_images, show_own_images
from o2m_pub.desk.people import Directory, PersonView
from o2m_pub.protocol.canonical import TIME_FORMAT
from o2m_pub.reader import search as fts
from o2m_pub.reader.sanitize import display_text
from o2m_pub.reader.timeline import attachments, excerpt_of, headline, inline_urls, post_text

if TYPE_CHECKING:
    from pathlib import Path

    from o2m_pub.protocol.public_media import ListedFile
    from o2m_pub.reader.model import StoredPost
    from o2m_pub.reader.store import ReaderStore
    from o2m_pub.reader.timeline import AttachmentInfo

PAGE_SIZE = 20
MAX_PHOTOS = 4  # shown inline on the timeline; the post page shows them all
# Shown inline: raster images a browser decodes as images, never as a document.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
SHOWN_TEXT_CHARS = 256 * 1024  # of a post shown as its text
_IMG_TAG = re.compile(r"<img\b[^<>]*>")  # each try ends at the next "<": linear
_ATTRIBUTE = re.compile(r'\b(alt|src)="([^"]*)"')
# why a listed photo of a friend's site is not shown (`ImageCache.why_not`), or None
WhyNot = Optional[Callable[["ListedFile"], Optional[Refusal]]]


# ---------------------------------------------------------------- time in words


def parse_utc(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return None


def relative_time(stored: str | None, now: dt.datetime, tz: dt.tzinfo) -> str:
    """A stored UTC time as people read one in a timeline: "just now", "5 min ago",
    "3 h ago", "yesterday", "4 days ago", then the date ("12 Nov", "12 Nov 2025")."""
    when = parse_utc(stored or "")
    if when is None:
        return display_text(stored or "")
    seconds = (now - when).total_seconds()
    if seconds < -300:
        return local_date(when, now, tz)  # from the future (a friend's clock): the date
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = (now.astimezone(tz).date() - when.astimezone(tz).date()).days
    if days <= 1:
        return "yesterday"
    if days < 7:
        return f"{days} days ago"
    return local_date(when, now, tz)


def local_date(when: dt.datetime, now: dt.datetime, tz: dt.tzinfo) -> str:
    local = when.astimezone(tz)
    text = f"{local.day} {local.strftime('%b')}"
    return text if local.year == now.astimezone(tz).year else f"{text} {local.year}"


def local_time(stored: str, tz: dt.tzinfo) -> str:
    """The full local time, for a tooltip and the post page."""
    when = parse_utc(stored)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when else display_text(stored)


# ---------------------------------------------------------------- entries


@dataclass(frozen=True)
class ShownPhoto:
    url: str
    alt: str


@dataclass(frozen=True)
class Entry:
    """One post on the timeline, ready for the page (text neutralised, not escaped)."""

    short_id: str
    person: PersonView
    iso_date: str
    when: str  # "5 min ago"
    when_full: str  # "2026-11-24 10:30", local
    headline: str
    excerpt: str  # "" for a note: its headline is its text
    is_note: bool
    tags: tuple[str, ...]
    unread: bool
    public: bool
    photos: tuple[ShownPhoto, ...]
    more_photos: int
    cursor: str
    reply_to: "ReplyContext | None"


@dataclass(frozen=True)
class ReplyContext:
    """What a reply answers (PROTOCOL.md §4.2), as its page and the timeline say it:
    "↳ In reply to “Garden update” by you", linked to that post's page when the desk
    has one (a friend's post, one of the owner's, a reply of a thread)."""

    title: str | None  # neutralised; None: the post is not known here
    who: str
    url: str | None
    ref: str  # neutralised


def own_posts(root: "Path"):  # noqa: ANN201 - site.own_posts.OwnPosts | None
    """The owner's own posts, found by the ids their friends see."""
    from o2m_pub.reader.model import short_id_for
    from o2m_pub.site.own_posts import OwnPosts
    return OwnPosts.of_site(root, short_id_for)


def reply_context(ref: str, store: "ReaderStore", own, link) -> ReplyContext:  # noqa: ANN001
    """The `ReplyContext` of a reply to `ref`; `own`: the owner's `OwnPosts` (or None)."""
    from o2m_pub.reader.thread_store import post_label
    label = post_label(store.db, ref, own.key if own is not None else None,
                       own.title_of if own is not None else None)
    url = link(f"post/{label.short_id}") if label.short_id and label.title is not None \
        else None
    return ReplyContext(display_text(label.title) if label.title is not None else None,
                        display_text(label.who), url, display_text(ref))


def rendered_alts(post: "StoredPost") -> dict[int, str]:
    """The alt text of each attachment the post's stored rendering shows, by its index:
    one linear scan of nh3's output (its `<img>` of our `/file/ID/N` URLs). Never the
    Markdown: a pattern run on a friend's text costs its length times the pattern's
    reach (0.6 s for each post of 520 KB of `![`, on every timeline page; THREATS.md 49)."""
    if not post.rendered or post.too_complex:
        return {}
    prefix = f"/file/{post.short_id}/"
    found: dict[int, str] = {}
    for tag in _IMG_TAG.findall(post.rendered):
        attributes = dict(_ATTRIBUTE.findall(tag))
        src = attributes.get("src", "")
        if src.startswith(prefix) and src[len(prefix):].isdigit():
            found.setdefault(int(src[len(prefix):]), html.unescape(attributes.get("alt", "")))
    return found


def remote_photos(post: "StoredPost", directory: Directory, link,  # noqa: ANN001
                  refused: WhyNot = None) -> list[ShownPhoto]:
    """The photos of a public post that live on the friend's own site and that its
    signed feed lists (PROTOCOL.md §1.4), as the desk shows them (desk/images.py
    fetches them from there); not those `refused` gives a reason for."""
    friend = directory.friend(post.friend)
    if post.markdown is not None or friend is None or post.too_complex:
        return []
    return [ShownPhoto(link(f"img/{post.short_id}/{i}"), display_text(image.alt))
            for i, image in enumerate(own_images(post.rendered, friend.card.url, post.media))
            if refused is None or refused(image.listed) is None]


def photos_of(post: "StoredPost", store: "ReaderStore", link) -> list[ShownPhoto]:  # noqa: ANN001
    """The post's raster images that are in the local attachment store, with the alt
    text its body gives them (else their name)."""
    alts = rendered_alts(post)
    photos = []
    for f in attachments(post, store):
        if f.path is not None and f.media_type in INLINE_TYPES:
            name = f.name.rsplit("/", 1)[-1]
            photos.append(ShownPhoto(link(f"file/{post.short_id}/{f.index}"),
                                display_text(alts.get(f.index) or name)))
    return photos


def entry(post: "StoredPost", directory: Directory, store: "ReaderStore", now: dt.datetime,
          tz: dt.tzinfo, link, own=None,  # noqa: ANN001 - link: path -> URL
          refused: WhyNot = None) -> Entry:
    """One post as the timeline shows it; `own`: the owner's `OwnPosts`, to say which of
    their posts a reply answers (made here when None and the post is a reply);
    `refused`: why a listed photo of a friend's site is not shown."""
    has_title = bool(post.title and post.title.strip())
    answers = None
    if post.reply_to:
        answers = reply_context(post.reply_to, store,
                                own if own is not None else own_posts(directory.root), link)
    photos = photos_of(post, store, link) or remote_photos(post, directory, link, refused)
    return Entry(
        short_id=post.short_id, person=directory.person(post.friend), iso_date=post.date,
        when=relative_time(post.date, now, tz), when_full=local_time(post.date, tz),
        headline=headline(post) if has_title else excerpt_of(post, 500) or "(no text)",
        excerpt=excerpt_of(post, 280) if has_title else "", is_note=not has_title,
        tags=tuple(display_text(t) for t in post.tags), unread=not post.read,
        public=post.audience == "public", photos=tuple(photos[:MAX_PHOTOS]),
        more_photos=max(0, len(photos) - MAX_PHOTOS), cursor=post.cursor,
        reply_to=answers)


@dataclass(frozen=True)
class TimelinePage:
    entries: list[Entry]
    older: str | None  # the cursor of the next page, if any


def friends_posts(store: "ReaderStore", friends: Sequence[str], *, limit: int,
                  before: str | None) -> list["StoredPost"]:
    """The newest posts of several friends (a group), newest first."""
    if not friends:
        return []
    where, args = [f"friend IN ({','.join('?' * len(friends))})"], list(friends)
    if before:
        date, _, short = before.partition("|")
        where.append("(date < ? OR (date = ? AND short_id < ?))")
        args += [date, date, short]
    rows = store.db.execute(f"SELECT short_id FROM posts WHERE {' AND '.join(where)} "
                            "ORDER BY date DESC, short_id DESC LIMIT ?",
                            [*args, limit]).fetchall()
    return [p for p in (store.post(s) for (s,) in rows) if p is not None]


def timeline(store: "ReaderStore", directory: Directory, now: dt.datetime, tz: dt.tzinfo,
             link, *, before: str | None = None, friend: str | None = None,  # noqa: ANN001
             group: str | None = None, query: str | None = None,
             refused: WhyNot = None) -> TimelinePage:
    """One page of the timeline, newest first, filtered by a friend, a group (its
    members), or a search."""
    members = None
    if group is not None:
        members = list(directory.groups().get(group, ()))
    if friend is not None:
        members = [friend] if members is None or friend in members else []
    if query:
        posts = fts.search(store, query, limit=PAGE_SIZE + 1, before=before, friends=members)
    elif members is not None and len(members) != 1:
        posts = friends_posts(store, members, limit=PAGE_SIZE + 1, before=before)
    else:
        posts = store.timeline(limit=PAGE_SIZE + 1, before=before,
                               friend=members[0] if members else None)
    own = own_posts(directory.root) if any(p.reply_to for p in posts[:PAGE_SIZE]) else None
    entries = [entry(p, directory, store, now, tz, link, own, refused)
               for p in posts[:PAGE_SIZE]]
    return TimelinePage(entries, entries[-1].cursor if len(posts) > PAGE_SIZE else None)


def unread_count(store: "ReaderStore") -> int:
    return store.unread_count()


# ---------------------------------------------------------------- one post


@dataclass(frozen=True)
class PostDetail:
    entry: Entry
    body: str  # safe HTML: the stored rendering (nh3's output), or escaped text
    note: str | None  # why the body is its text: not rendered yet, or too complex
    gallery: tuple[ShownPhoto, ...]  # images the body does not show itself
    files: tuple[tuple[str, str, str], ...]  # (name, url, size) of other attachments
    url: str | None  # the public permalink, for a public post


@dataclass(frozen=True)
class Body:
    html: str  # safe to insert unescaped
    shown: frozenset[str]  # attachment names it shows inline
    note: str | None


def body_html(post: "StoredPost", relink: dict[str, str], site_url: str | None,
              link, refused: WhyNot = None) -> Body:  # noqa: ANN001 - link: path -> URL
    """A friend's post body as the fetch stored it rendered (THREATS.md 49), with the
    URLs it was rendered with (`relink`: the reader's `/file/ID/N` to the desk's) and
    the photos of the friend's own site its signed feed lists shown from the desk
    (those `refused` gives a reason for stay links, saying why); else its escaped
    text."""
    from markupsafe import escape

    if post.rendered is None or post.too_complex:
        text = post_text(post, SHOWN_TEXT_CHARS)
        if len(text) >= SHOWN_TEXT_CHARS:
            text += "\n[…]"
        note = ("This post was too complex to render: here is its text." if post.too_complex
                else "This post is not rendered yet (the next o2m fetch does it): here is "
                     "its text.")
        return Body(f"<pre>{escape(text)}</pre>", frozenset(), note)
    html = post.rendered
    for stored, desk in relink.items():  # exact attribute values nh3 wrote
        if stored != desk:
            html = html.replace(f'="{stored}"', f'="{escape(desk)}"')
    if post.markdown is None:
        html = show_own_images(html, site_url, post.media,
                               lambda i: link(f"img/{post.short_id}/{i}"), refused)
    return Body(html, frozenset(post.rendered_images), None)


def post_view(post: "StoredPost", directory: Directory, store: "ReaderStore",
              now: dt.datetime, tz: dt.tzinfo, link,  # noqa: ANN001
              refused: WhyNot = None, own=None) -> PostDetail:  # noqa: ANN001
    """One post's page; `own`: the owner's `OwnPosts` when the caller has them (else
    made here if the post is a reply, as `entry` does)."""
    from o2m_pub.reader.timeline import human_size

    files = attachments(post, store)
    stored_urls = inline_urls(post, files)  # what render.py rendered the body with
    urls = {name: link(url.lstrip("/")) for name, url in stored_urls.items()}
    friend = directory.friend(post.friend)
    body = body_html(post, {stored_urls[n]: urls[n] for n in urls},
                     friend.card.url if friend else None, link, refused)
    alts = rendered_alts(post)
    inline = {f.path for f in files if f.key in body.shown}
    below: dict[Path | None, AttachmentInfo] = {}
    for f in files:  # once each: a file may go by two names (PROTOCOL.md §3.3)
        if f.key in urls and f.path not in inline:
            below.setdefault(f.path, f)
    gallery = tuple(ShownPhoto(urls[f.key], display_text(alts.get(f.index) or f.name))
                    for f in below.values())
    others = tuple((f.name, link(f"file/{post.short_id}/{f.index}"), human_size(f.size))
                   for f in files if f.key not in urls)
    url = post.url if post.url and post.url.startswith("https://") else None
    return PostDetail(entry(post, directory, store, now, tz, link, own, refused=refused),
                      body.html, body.note, gallery, others, display_text(url) if url else None)
