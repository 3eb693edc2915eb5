"""Reading the timeline: what `o2m timeline`, `o2m show`, `o2m notifications` and the
desk show of the reader's store, as plain values and text.

Pure functions over `model.StoredPost` and friends (time zones passed in), plus a few
small queries over a `ReaderStore` that the store's own API does not offer (paging by
page number, "mark all read"). Nothing here prints; cli/reading.py and web.py present
what it returns. Everything a friend wrote goes through `sanitize.display_text` (names,
titles, tags) or `sanitize.body_text` (their text) first: THREATS.md 39.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import TIME_FORMAT, utc_text
from o2m_pub.reader.sanitize import body_text, clip, display_text, plain_excerpt

if TYPE_CHECKING:
    from typing import Callable

    from o2m_pub.reader.model import Notification, StoredPost
    from o2m_pub.reader.thread_store import PostLabel
    from o2m_pub.reader.store import ReaderStore

MIN_ID_PREFIX = 4  # ReaderStore.post: a unique prefix of at least this many characters
PAST_THE_END = "0000-00-00T00:00:00Z|a"  # a cursor older than any post: an empty page
# Shown inline: raster images a browser decodes as images, never as a document
# (image/svg+xml can carry script, so it is a download like everything else).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
EXCERPT_HTML_CHARS = 64 * 1024  # of a public post's HTML, enough for any excerpt
_RELATIVE = re.compile(r"(\d{1,5})\s*([hdw])")
_CURSOR = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|[a-z2-7]{4,52}")


class ReadingError(O2MError):
    """The timeline cannot show this."""


class NoSuchPostError(ReadingError):
    """No stored post has this id."""

    hint = "the ids are the second column of `o2m timeline`"


class NoSuchFriendError(ReadingError):
    """No stored post or feed comes from this friend."""

    hint = "`o2m friend list` names your friends; `o2m fetch` gathers their posts"


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a timeline, ready to show (all text neutralised, not yet escaped)."""

    short_id: str
    friend: str
    date: str  # local time, "2026-11-24 10:30"
    iso_date: str  # RFC 3339 UTC, for <time datetime>
    headline: str  # the title, or the start of the text
    excerpt: str  # the start of the text ("" for a note: its headline is the text)
    tags: tuple[str, ...]
    unread: bool
    audience: str
    cursor: str


@dataclass(frozen=True)
class AttachmentInfo:
    """An attachment of a post, as `o2m show` lists it and the reader serves it."""

    index: int
    name: str  # made safe to show (`display_text`)
    media_type: str
    size: int
    path: Path | None  # in the store's cache, or None while it is not fetched
    key: str = ""  # the name as the post gives it, which its references match (§3.3)


# ---------------------------------------------------------------- time


def parse_since(text: str, tz: dt.tzinfo, now: dt.datetime) -> str:
    """`--since` as the store's UTC text: a date or time (in `tz` unless it names its
    own offset) or an age such as "3d", "12h", "2w".

    Raises:
        ReadingError: neither.
    """
    value = text.strip()
    m = _RELATIVE.fullmatch(value)
    if m:
        unit = {"h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return utc_text(now - dt.timedelta(**{unit: int(m.group(1))}))
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReadingError(f"--since {text!r}: not a date, a time or an age",
                           hint="e.g. --since 2026-11-01, --since '2026-11-01 18:00', "
                                "--since 3d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return utc_text(when)


def local_time(stored: str, tz: dt.tzinfo) -> str:
    """A stored UTC time shown in the reader's zone, to the minute."""
    try:
        when = dt.datetime.strptime(stored, TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return display_text(stored)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- posts as text


def post_text(post: "StoredPost", limit: int | None = None) -> str:
    """A post's text: its Markdown source, or a public post's HTML made text; control
    characters and bidi overrides neutralised (safe to write to a terminal). With
    `limit`, at most about that many characters, read from the start only."""
    if post.markdown is not None:
        return body_text(post.markdown[:limit])
    if post.html:
        return body_text(html_to_text(post.html[:limit])[:limit])
    return body_text(post.summary or "")


_TAG_NAME = re.compile(r"(/?)([A-Za-z][A-Za-z0-9]*)")
_BREAK_AFTER = frozenset({"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
                          "pre", "tr", "dd", "dt", "figure"})
_HIDDEN = {name: re.compile(rf"</{name}\b", re.I) for name in ("script", "style", "template")}


def html_to_text(html: str) -> str:
    """Untrusted HTML as plain text, paragraphs kept (nothing of it is ever rendered).

    One pass, each character looked at a bounded number of times: regular expressions
    that search on from every `<` took quadratic time on a friend's 700 KB of
    `<script` or `<!--` (minutes for one timeline page; THREATS.md 49). A tag or
    comment left open hides the rest, as in a browser."""
    out: list[str] = []
    i, n = 0, len(html)
    while i < n:
        lt = html.find("<", i)
        if lt < 0:
            out.append(html[i:])
            break
        out.append(html[i:lt])
        if html.startswith("<!--", lt):
            end = html.find("-->", lt + 4)
            i = n if end < 0 else end + 3
            continue
        gt = html.find(">", lt + 1)
        if gt < 0:
            break
        m = _TAG_NAME.match(html, lt + 1, gt)
        i = gt + 1
        if m is None:
            continue
        closing, name = m.group(1) == "/", m.group(2).lower()
        if name == "br" or (closing and name in _BREAK_AFTER):
            out.append("\n")
        elif not closing and name in _HIDDEN:
            end = _HIDDEN[name].search(html, i)
            if end is None:
                break
            after = html.find(">", end.end())
            i = n if after < 0 else after + 1
    text = html_lib.unescape("".join(out))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def headline(post: "StoredPost", limit: int = 100) -> str:
    """The title, else the start of the text."""
    if post.title and post.title.strip():
        return display_text(" ".join(post.title.split()))
    return excerpt_of(post, limit) or "(no text)"


def excerpt_of(post: "StoredPost", limit: int = 200) -> str:
    if post.markdown is not None:
        return plain_excerpt(post.markdown, limit)
    source = post.summary or (html_to_text(post.html[:EXCERPT_HTML_CHARS]) if post.html
                              else "")
    return clip(body_text(" ".join(source.split())), limit)


def entry(post: "StoredPost", tz: dt.tzinfo) -> TimelineEntry:
    """A stored post as one timeline line."""
    has_title = bool(post.title and post.title.strip())
    return TimelineEntry(
        short_id=post.short_id, friend=display_text(post.friend),
        date=local_time(post.date, tz), iso_date=post.date, headline=headline(post),
        excerpt=excerpt_of(post) if has_title else "",
        tags=tuple(display_text(t) for t in post.tags), unread=not post.read,
        audience=post.audience, cursor=post.cursor)


def attachments(post: "StoredPost", store: "ReaderStore") -> list[AttachmentInfo]:
    """The post's attachments with where the store caches each (None: not fetched)."""
    found = []
    for i, a in enumerate(post.attachments):
        digest = str(a.get("hash", ""))
        size = a.get("size")
        found.append(AttachmentInfo(
            index=i, name=display_text(str(a.get("name", "?"))),
            media_type=display_text(str(a.get("media_type") or "application/octet-stream")),
            size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
            path=store.attachments.path(digest), key=str(a.get("name", ""))))
    return found


def inline_urls(post: "StoredPost", files: list[AttachmentInfo]) -> dict[str, str]:
    """The post's attachments a page may show inline (fetched raster images), by their
    name in the post as it is (its references name it so, PROTOCOL.md §3.3; the name
    made safe to show could differ), to the reader's URL for each."""
    return {f.key: f"/file/{post.short_id}/{f.index}" for f in files
            if f.path is not None and f.media_type in INLINE_TYPES}


def human_size(n: int) -> str:
    """A byte count as `o2m show` and the reader list it (an attachment is at most MiBs)."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


# ---------------------------------------------------------------- conversations


def reply_context(label: "PostLabel", with_id: bool = False) -> str:
    """The one line that says what a reply answers (PROTOCOL.md §4.2): "↳ reply to
    “Garden update” (ada)", or with the post unknown here, its reference; `with_id`
    adds the short id that `o2m show` takes ("(ada, apbexfu3xo)")."""
    who = display_text(label.who)
    if with_id and label.short_id:
        who = f"{who}, {label.short_id}" if who else label.short_id
    if label.title is None:
        return f"↳ reply to {display_text(label.ref)}" + (f" ({who})" if who else "")
    return f"↳ reply to “{display_text(label.title) or '(no text)'}” ({who})"


def reply_contexts(store: "ReaderStore", posts: "list[StoredPost]", own_key: str | None,
                   own_title: "Callable[[str], str | None] | None" = None) -> dict[str, str]:
    """Short id -> `reply_context` line, for the replies among `posts` (a timeline page),
    so that a reply is not read as a post of its own."""
    from o2m_pub.reader.thread_store import friend_names, post_label
    names = friend_names(store.db)
    return {p.short_id: reply_context(post_label(store.db, p.reply_to, own_key, own_title,
                                                 names))
            for p in posts if p.reply_to}


# ---------------------------------------------------------------- notifications


# In plain words, for `o2m notifications` and the desk: who, what happened, and what
# it means for the person (newcomer review: "a fetch of mum failed", not "unreachable").
_NOTIFICATION_TEXT = {
    "new_friend_feed": "{friend} added you back: you can read what they share with you now",
    "unreachable": "a fetch of {friend} failed{detail} (the next o2m fetch tries again; "
                   "their posts stay)",
    "stale": "{friend}'s posts may be out of date{detail}",
    "key_changed": ("{friend}'s key changed: their posts are not read until you check their "
                    "new card with them and accept it (o2m friend add {friend} CARD "
                    "--accept-key-change){detail}"),
    "equivocation": ("{friend}'s site showed two different versions of their posts: the "
                     "one you had is kept{detail}"),
    "reply": "{raw} (in {friend}'s feed)",  # PROTOCOL.md §4: "bob replied to your post …"
    "reaction": "{raw} (in {friend}'s feed)",
    "conversation": "{friend}: {raw}",
    "invitation_accepted": "{friend} accepted your invitation{detail}",
    "moved": "{friend}'s card moved to a new address: {raw}",
    "certificate_changed": "{friend}'s site has a new certificate: {raw}",
    "card_changed": "{friend} changed their {raw}",
    "key_rotated": "{friend} {raw}: o2m follows them there, and their posts stay",
    "card_refused": "{friend}'s site showed a card o2m could not accept{detail}",
    "over_quota": ("{friend}'s new posts were not taken: they would use more room than you "
                   "give one friend{detail}"),
}


def notification_text(n: "Notification") -> str:
    """One notification as one line of text (neutralised)."""
    friend = display_text(n.friend or "someone")
    detail = display_text(" ".join(n.detail.split())) if n.detail else ""
    template = _NOTIFICATION_TEXT.get(n.kind)
    if template is None:
        return f"{display_text(n.kind)}: {friend}" + (f": {detail}" if detail else "")
    return template.format(friend=friend, detail=f": {detail}" if detail else "", raw=detail)


# ---------------------------------------------------------------- queries


def check_cursor(cursor: str) -> str:
    """A `before` cursor from a URL: "DATE|SHORTID" as the store makes them.

    Raises:
        ReadingError: anything else.
    """
    if not _CURSOR.fullmatch(cursor):
        raise ReadingError("not a timeline position")
    return cursor


def page_cursor(store: "ReaderStore", page: int, limit: int, **filters: str | None) -> str | None:
    """The cursor that starts page `page` (1-based) of `limit` posts: walks the pages
    before it by keyset, so each step costs one page."""
    cursor = None
    for _ in range(page - 1):
        posts = store.timeline(limit=limit, before=cursor, **filters)
        if len(posts) < limit:
            return PAST_THE_END
        cursor = posts[-1].cursor
    return cursor


def friends_unread(store: "ReaderStore") -> list[tuple[str, int]]:
    """Every friend with a feed state, and how many of their posts are unread. Walks
    the unread posts only (the store's partial index), not all posts as
    `ReaderStore.friends_summary` does (seconds at 100,000 posts)."""
    unread = dict(store.db.execute("SELECT friend, count(*) FROM posts WHERE read = 0 "
                                   "GROUP BY friend"))
    names = [r[0] for r in store.db.execute("SELECT friend FROM friend_state ORDER BY friend")]
    return [(name, unread.get(name, 0)) for name in names]


def known_friends(store: "ReaderStore") -> set[str]:
    """Friends with a feed state or a stored post."""
    names = {r[0] for r in store.db.execute("SELECT friend FROM friend_state")}
    names.update(r[0] for r in store.db.execute("SELECT DISTINCT friend FROM posts"))
    return names


def check_friend(store: "ReaderStore", friend: str) -> str:
    """Raises NoSuchFriendError for a name the store has nothing of."""
    if friend not in known_friends(store):
        raise NoSuchFriendError(f"no posts or feed of {display_text(friend)!r} in the store")
    return friend


def find_post(store: "ReaderStore", short_id: str) -> "StoredPost":
    """The post with this id (or unique prefix of at least 4 characters).

    Raises:
        NoSuchPostError: none.
        store.AmbiguousPostError: several.
    """
    if len(short_id.strip()) < MIN_ID_PREFIX:  # the store looks up no shorter prefix
        raise NoSuchPostError(f"{display_text(short_id)!r} is too short for a post id: give "
                              f"at least {MIN_ID_PREFIX} characters of it")
    post = store.post(short_id)
    if post is None:
        raise NoSuchPostError(f"no post with id {display_text(short_id)!r}")
    return post


def mark_all_read(store: "ReaderStore", friend: str | None = None) -> int:
    """Mark every unread post (of one friend, or of all) read; returns how many.
    One statement, so it is one transaction."""
    if friend is None:
        return store.db.execute("UPDATE posts SET read = 1 WHERE read = 0").rowcount
    return store.db.execute("UPDATE posts SET read = 1 WHERE read = 0 AND friend = ?",
                            (friend,)).rowcount
