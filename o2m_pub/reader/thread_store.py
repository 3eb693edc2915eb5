"""Conversations in the reader's store (PROTOCOL.md §4, store schema 3): the replies and
reactions friends' feeds carried, the replies the owner hid from their threads, and the
views made of them (a thread in order, reactions with who made them, notifications, the
links the owner's next build puts in its items).

Functions over a `sqlite3.Connection` of `store.ReaderStore`; `apply_thread_update` runs
inside the store's transaction for a friend's update, so a conversation's rows land with
the rest of that update or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from o2m_pub.protocol.conversation import (
    MAX_REACTIONS,
    ConversationError,
    MAX_REPLY_LINKS,
    PostRef,
    ThreadEntry,
    thread_order,
)
from o2m_pub.protocol.canonical import utc_text
from o2m_pub.protocol.feeds import MAX_ITEM_BYTES
from o2m_pub.reader.model import FriendUpdate, ThreadRow, short_id_for
from o2m_pub.reader.sanitize import clip, plain_excerpt

THREAD_SCHEMA = """
CREATE TABLE IF NOT EXISTS thread_items (
    via TEXT NOT NULL,                -- the friend whose feed carried it
    via_post TEXT NOT NULL DEFAULT '',-- '' in the author's own feed; else their post's id
    author TEXT NOT NULL,             -- b64u key of the replier or reactor
    id TEXT NOT NULL,                 -- their item id
    kind TEXT NOT NULL,               -- 'reply' or 'reaction'
    to_ref TEXT NOT NULL,             -- o2m:<author>/<id> answered or reacted to
    thread_ref TEXT,                  -- a reply's thread root
    date TEXT NOT NULL,
    emoji TEXT,
    statement TEXT NOT NULL DEFAULT '',
    key TEXT, url TEXT, object_hash TEXT,
    markdown TEXT, title TEXT,        -- of a linked reply (a direct one is in posts)
    status TEXT NOT NULL DEFAULT 'ok',-- ok, stale (host down: previous copy), failed
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (via, via_post, author, id)
);
CREATE INDEX IF NOT EXISTS thread_items_by_thread ON thread_items (thread_ref);
CREATE INDEX IF NOT EXISTS thread_items_by_to ON thread_items (to_ref);
CREATE INDEX IF NOT EXISTS thread_items_by_author ON thread_items (author, id);
CREATE TABLE IF NOT EXISTS thread_hidden (   -- replies the owner hid (o2m thread hide)
    author TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (author, id)
) WITHOUT ROWID;
"""

_COLUMNS = ("author", "id", "kind", "to_ref", "date", "thread_ref", "emoji", "statement",
            "key", "url", "object_hash", "markdown", "title", "status", "detail")


def _row(values: Iterable[Any], via_post: str) -> ThreadRow:
    return ThreadRow(*values, via_post=via_post or None)


def _insert(db: sqlite3.Connection, via: str, rows: Iterable[ThreadRow]) -> None:
    db.executemany(
        f"INSERT OR REPLACE INTO thread_items (via, via_post, {', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})",
        [(via, r.via_post or "", *(getattr(r, c) for c in _COLUMNS)) for r in rows])


def stored_threads(db: sqlite3.Connection, friend: str) -> dict[str, dict[tuple[str, str],
                                                                        ThreadRow]]:
    """What is stored of the links in one friend's items: post id -> (author, id) -> row
    (`fetch_plan.Threads`)."""
    out: dict[str, dict[tuple[str, str], ThreadRow]] = {}
    for values in db.execute(f"SELECT via_post, {', '.join(_COLUMNS)} FROM thread_items "
                             "WHERE via = ? AND via_post != ''", (friend,)):
        row = _row(values[1:], values[0])
        out.setdefault(values[0], {})[(row.author, row.id)] = row
    return out


def apply_thread_update(db: sqlite3.Connection, update: FriendUpdate, own_key: str | None,
                        stamp: str) -> list[tuple[str, str]]:
    """Store what one friend's update says of conversations (in the update's
    transaction); returns notifications for replies and reactions new to the owner:
    to their posts, or in threads they took part in."""
    seen = _known(db, update)
    for post_id in update.thread_deletes:
        db.execute("DELETE FROM thread_items WHERE via = ? AND via_post = '' AND author = ? "
                   "AND id = ?", (update.friend, update.sign_pk, post_id))
    _insert(db, update.friend, update.thread_rows)
    for post_id, rows in update.thread_links.items():
        db.execute("DELETE FROM thread_items WHERE via = ? AND via_post = ?",
                   (update.friend, post_id))
        _insert(db, update.friend, rows)
    if own_key is None:
        return []
    mine = _threads_of(db, own_key)
    notes = []
    for row in [*update.thread_rows, *(r for rows in update.thread_links.values()
                                        for r in rows)]:
        if (row.author, row.id, row.statement) in seen or row.status == "failed" \
                or row.author == own_key:
            continue
        seen.add((row.author, row.id, row.statement))
        to_me = row.to_ref.startswith(f"o2m:{own_key}/")
        if not to_me and row.thread_ref not in mine:
            continue
        who = update.friend if row.author == update.sign_pk else f"~{row.author[:8]}"
        what = (f"{who} reacted {row.emoji}" if row.kind == "reaction"
                else f"{who} replied")
        where = "to your post" if to_me else "in a thread you took part in"
        notes.append((row.kind, f"{what} {where} ({short_id_for(*_ref_parts(row.to_ref))})"))
    return notes[:20]


def _ref_parts(text: str) -> tuple[str, str]:
    ref = PostRef.parse(text)
    return ref.author, ref.id


def _known(db: sqlite3.Connection, update: FriendUpdate) -> set[tuple[str, str, str]]:
    return {tuple(r) for r in db.execute(  # type: ignore[misc]
        "SELECT author, id, statement FROM thread_items WHERE via = ?", (update.friend,))}


def _threads_of(db: sqlite3.Connection, own_key: str) -> set[str]:
    """The threads the owner took part in: those of their replies (as others' feeds
    carried them back) and the posts they reacted to."""
    return {r[0] for r in db.execute(
        "SELECT DISTINCT coalesce(thread_ref, to_ref) FROM thread_items WHERE author = ?",
        (own_key,))}


# -- views


@dataclass(frozen=True)
class ThreadReply:
    """One reply of a thread as `o2m show` and the readers show it."""

    short_id: str
    ref: str
    to_ref: str
    author: str  # b64u key
    name: str  # the friend's name, else a short fingerprint
    date: str
    depth: int
    markdown: str | None
    title: str | None
    status: str
    detail: str
    hidden: bool = False  # the owner hid it from their thread (o2m thread hide)


@dataclass(frozen=True)
class ReactionCount:
    emoji: str
    names: tuple[str, ...]


def friend_names(db: sqlite3.Connection) -> dict[str, str]:
    """b64u signing key -> local friend name."""
    return {k: n for n, k in db.execute("SELECT friend, sign_pk FROM friend_state")}


def display_name(key: str, names: Mapping[str, str], own_key: str | None = None) -> str:
    if key == own_key:
        return "you"
    return names.get(key) or f"~{key[:8]}"


def thread(db: sqlite3.Connection, root: str, own_key: str | None = None,
           own_replies: Iterable[Any] = ()) -> tuple[list[ThreadReply], list[tuple[str, str]]]:
    """The replies of the thread rooted at `root` (a reference's text), in display order
    (nested, each level by date), and those refused with their reason (§4.6). A reply
    carried by several feeds is shown once: a direct copy first, then the newest. A root
    that is not a post reference (a public post known by its URL) has no thread. This is
    the owner's view: a reply they hid is listed, marked `hidden` (they may want it back,
    and `o2m thread unhide` needs its id); their friends no longer see it through them.

    Args:
        own_replies: the owner's own replies in this thread as their content/ has them
            (`site.own_posts.OwnPostInfo`: `id`, `reply_to`, `date`, `body`, `title`),
            which no friend's feed brings back when the thread is the owner's (§4.2: a
            reply to one's own post); their copy stands over any other.
    """
    try:
        root_ref = PostRef.parse(root)
    except ConversationError:
        return [], []
    names = friend_names(db)
    hidden = hidden_replies(db)
    best = _best_copies(db, "t.thread_ref = ?", (root,))
    if own_key is not None:
        for post in own_replies:
            best[(own_key, post.id)] = (own_key, post.id, post.reply_to, utc_text(post.date),
                                        post.body.strip(), post.title, "ok", "", "")
    ref_of = {PostRef(a, i): v for (a, i), v in best.items()}
    order, refused = thread_order(root_ref,
                                  [(ref, PostRef.parse(v[2]), v[3]) for ref, v in ref_of.items()])
    out = [_reply(e, ref_of[e.ref], names, own_key, (e.ref.author, e.ref.id) in hidden)
           for e in order]
    return out, [(r.text, why) for r, why in refused]


def _better(new: tuple[Any, ...], old: tuple[Any, ...]) -> bool:
    """A direct copy (its author's own feed) over a linked one; an ok one over a stale
    or failed one; then the newer."""
    rank = {"ok": 2, "stale": 1, "failed": 0}
    return (new[8] == "", rank.get(new[6], 0), new[3]) > (old[8] == "", rank.get(old[6], 0),
                                                         old[3])


def _reply(e: ThreadEntry, v: tuple[Any, ...], names: Mapping[str, str],
           own_key: str | None, hidden: bool = False) -> ThreadReply:
    return ThreadReply(short_id_for(e.ref.author, e.ref.id), e.ref.text, v[2], e.ref.author,
                       display_name(e.ref.author, names, own_key), v[3], e.depth, v[4], v[5],
                       v[6], v[7], hidden)


def reactions(db: sqlite3.Connection, refs: Iterable[str],
              own_key: str | None = None) -> dict[str, list[ReactionCount]]:
    """Reference text -> its reactions, one per person (the newest), counted by emoji."""
    refs = list(refs)
    if not refs:
        return {}
    names = friend_names(db)
    newest: dict[tuple[str, str], tuple[str, str]] = {}  # (to, author) -> (date, emoji)
    for chunk in range(0, len(refs), 500):
        part = refs[chunk:chunk + 500]
        for to, author, date, emoji in db.execute(
                "SELECT to_ref, author, date, emoji FROM thread_items WHERE kind = 'reaction' "
                f"AND to_ref IN ({', '.join('?' * len(part))})", part):
            if (to, author) not in newest or newest[(to, author)][0] < date:
                newest[(to, author)] = (date, emoji)
    out: dict[str, dict[str, list[str]]] = {}
    for (to, author), (_, emoji) in sorted(newest.items()):
        out.setdefault(to, {}).setdefault(emoji, []).append(
            display_name(author, names, own_key))
    return {to: [ReactionCount(e, tuple(n)) for e, n in sorted(
        by.items(), key=lambda kv: (-len(kv[1]), kv[0]))] for to, by in out.items()}


def summaries(db: sqlite3.Connection, posts: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(friend name, post id) -> a short line of its conversation for a timeline:
    "💬 3  👍 2 🎉 1" (replies in its thread, then reactions by emoji); absent: none."""
    keys = {n: k for k, n in friend_names(db).items()}
    refs = {f"o2m:{keys.get(f, '')}/{i}": (f, i) for f, i in posts}
    return {f"{post[0]}\0{post[1]}": text
            for ref, text in summaries_by_ref(db, refs).items() for post in [refs[ref]]}


def summaries_by_ref(db: sqlite3.Connection, refs: Iterable[str]) -> dict[str, str]:
    """Reference text -> the line of `summaries` (the owner's posts are known by
    reference: they are not in the store)."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    counts = reactions(db, refs)
    replies: dict[str, int] = {}
    marks = ", ".join("?" * len(refs))
    for root, n in db.execute(
            f"SELECT thread_ref, count(DISTINCT author || '/' || id) FROM thread_items "
            f"WHERE kind = 'reply' AND status != 'failed' AND thread_ref IN ({marks}) "
            "GROUP BY thread_ref", list(refs)):
        replies[root] = n
    out = {}
    for ref in refs:
        parts = [f"💬 {replies[ref]}"] if replies.get(ref) else []
        parts += [f"{c.emoji} {len(c.names)}" for c in counts.get(ref, [])]
        if parts:
            out[ref] = "  ".join(parts)
    return out


@dataclass(frozen=True)
class PostLabel:
    """What the reader can say of a post named by reference, for the line "↳ reply to
    “Garden update” (ada)" and the head of a thread: its author's name and its title
    (or the start of its text), when a post of the timeline, a reply of a thread or one
    of the owner's own posts (`own_title`) has that reference."""

    ref: str
    short_id: str | None  # `o2m show` and the desk's /post/ID take it; None for a URL
    who: str  # "you", the friend's name, a short fingerprint; for a URL, its host
    title: str | None  # None: no post of that reference is known here
    mine: bool = False


_LABEL_CHARS = 60


def post_label(db: sqlite3.Connection, ref: str, own_key: str | None = None,
               own_title: Callable[[str], str | None] | None = None,
               names: dict[str, str] | None = None) -> PostLabel:
    """The label of the post `ref` names (see `PostLabel`; the text is not yet made
    safe to show: `display_text` it).

    Args:
        own_title: the title of one of the owner's posts by item id (None: not theirs),
            since the owner's posts are not in the reader's store.
        names: `friend_names(db)`, when the caller labels many posts (else read here).
    """
    try:
        parsed = PostRef.parse(ref)
    except ConversationError:
        from urllib.parse import urlsplit
        return PostLabel(ref, None, urlsplit(ref).hostname or "", None)
    names = friend_names(db) if names is None else names
    short = short_id_for(parsed.author, parsed.id)
    who = display_name(parsed.author, names, own_key)
    if parsed.author == own_key:
        title = own_title(parsed.id) if own_title is not None else None
        return PostLabel(ref, short, who, title, mine=True)
    found = None
    if parsed.author in names:
        found = db.execute("SELECT title, markdown, summary FROM posts WHERE friend = ? "
                           "AND id = ?", (names[parsed.author], parsed.id)).fetchone()
    if found is None:
        found = db.execute("SELECT title, markdown, NULL FROM thread_items WHERE author = ? "
                           "AND id = ? AND kind = 'reply' AND markdown IS NOT NULL "
                           "ORDER BY status = 'ok' DESC, date DESC LIMIT 1",
                           (parsed.author, parsed.id)).fetchone()
    if found is None:
        return PostLabel(ref, short, who, None)
    title, markdown, summary = found
    if title and title.strip():
        text = " ".join(title.split())
    else:
        text = plain_excerpt(markdown or summary or "", _LABEL_CHARS)
    return PostLabel(ref, short, who, clip(text, _LABEL_CHARS))


def _best_copies(db: sqlite3.Connection, where: str,
                 args: tuple[str, ...]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(author, id) -> the best copy (`_better`) of each reply that `where` (on
    thread_items `t`) selects: its author, id, to_ref, date, text, title, status,
    detail and via_post, its text and title from the post itself when it came as one."""
    best: dict[tuple[str, str], tuple[Any, ...]] = {}
    for values in db.execute(
            "SELECT t.author, t.id, t.to_ref, t.date, coalesce(t.markdown, p.markdown), "
            "coalesce(t.title, p.title), t.status, t.detail, t.via_post "
            "FROM thread_items t LEFT JOIN posts p ON t.via_post = '' AND p.friend = t.via "
            f"AND p.id = t.id WHERE t.kind = 'reply' AND {where}", args):
        key = (values[0], values[1])
        old = best.get(key)
        if old is None or _better(values, old):
            best[key] = values
    return best


def reply_row(db: sqlite3.Connection, short_id: str,
              own_key: str | None = None) -> tuple[ThreadReply, str] | None:
    """A reply of a thread by its short id (or a prefix of it), as its best copy shows
    it (see `thread`), with its thread's root: for `o2m show` on a reply its readers
    know only through a thread (its author no friend of theirs)."""
    found = find_reply(db, short_id)
    if found is None:
        return None
    ref, root = found
    parsed = PostRef.parse(ref)
    best = _best_copies(db, "t.author = ? AND t.id = ?", (parsed.author, parsed.id)).get(
        (parsed.author, parsed.id))
    if best is None:
        return None
    entry = ThreadEntry(parsed, PostRef.parse(best[2]), 0, best[3])
    return _reply(entry, best, friend_names(db), own_key), root or best[2]


def find_reply(db: sqlite3.Connection, short_id: str) -> tuple[str, str | None] | None:
    """A reply of a thread by the short id `o2m show` gives it: (its reference, its
    thread root), for `o2m reply` and `o2m react` on a reply from someone not a friend."""
    for author, rid, thread_ref in db.execute(
            "SELECT DISTINCT author, id, thread_ref FROM thread_items WHERE kind = 'reply'"):
        if short_id_for(author, rid).startswith(short_id):
            return PostRef(author, rid).text, thread_ref
    return None


# PROTOCOL.md §4.7: what `o2m serve` tells the owner when a friend's notice comes in
# (kind "conversation"); the fetch that brings what it announced clears it
NOTICE_TEXT = "they published a reply or reaction to your post: `o2m fetch` brings it"


def clear_notices(db: sqlite3.Connection, friends: Iterable[str]) -> int:
    """Forget the notifications of notices from friends just fetched: what the notice
    announced is in the store now, with its own notification ("bob replied to your
    post (ID)"). Returns how many went."""
    names = list(friends)
    if not names:
        return 0
    return db.execute(
        f"DELETE FROM notifications WHERE kind = 'conversation' AND detail = ? AND friend "
        f"IN ({', '.join('?' * len(names))})", [NOTICE_TEXT, *names]).rowcount


def participants(db: sqlite3.Connection, root: str) -> set[str]:
    """The keys of everyone who replied or reacted in the thread rooted at `root`."""
    return {r[0] for r in db.execute(
        "SELECT DISTINCT author FROM thread_items WHERE thread_ref = ? OR to_ref = ?",
        (root, root))}


def hidden_replies(db: sqlite3.Connection) -> set[tuple[str, str]]:
    return {(a, i) for a, i in db.execute("SELECT author, id FROM thread_hidden")}


def set_hidden(db: sqlite3.Connection, author: str, rid: str, hidden: bool) -> None:
    if hidden:
        db.execute("INSERT OR IGNORE INTO thread_hidden VALUES (?, ?)", (author, rid))
    else:
        db.execute("DELETE FROM thread_hidden WHERE author = ? AND id = ?", (author, rid))


_ITEM_BUDGET = MAX_ITEM_BYTES - 2048  # room for the item's own fields (id, date, object)


def links_for_build(db: sqlite3.Connection, own_key: str,
                    pins: Mapping[str, str]) -> dict[str, dict[str, list[Any]]]:
    """What the owner's next build puts in the item of each of its posts (§4.4): the
    links to the replies in its thread that friends' own feeds brought (not hidden), and
    the reactions to it, the newest first while they fit: at most MAX_REPLY_LINKS links,
    MAX_REACTIONS reactions and the item's byte cap in all (a link is about 800 bytes, a
    reaction 350: the byte cap binds first, near 300 links).

    Args:
        pins: a friend's b64u key -> their card's tls_pin, carried in their links.
    """
    hidden = hidden_replies(db)
    prefix = f"o2m:{own_key}/"
    found: dict[str, list[tuple[str, str, Any]]] = {}  # post id -> (date, kind, entry)
    for author, rid, thread_ref, key, statement, date in db.execute(
            "SELECT author, id, thread_ref, key, statement, date FROM thread_items "
            "WHERE kind = 'reply' AND via_post = '' AND status = 'ok' AND thread_ref >= ? "
            "AND thread_ref < ?", (prefix, prefix + "\x7f")):
        if (author, rid) in hidden or not key:
            continue
        link = {"key": key, "statement": statement}
        if pins.get(author):
            link["tls_pin"] = pins[author]
        found.setdefault(thread_ref[len(prefix):], []).append((date, "replies", link))
    for to_ref, statement, date in db.execute(
            "SELECT to_ref, statement, date FROM thread_items WHERE kind = 'reaction' "
            "AND via_post = '' AND to_ref >= ? AND to_ref < ?", (prefix, prefix + "\x7f")):
        found.setdefault(to_ref[len(prefix):], []).append((date, "reactions", statement))
    caps = {"replies": MAX_REPLY_LINKS, "reactions": MAX_REACTIONS}
    out: dict[str, dict[str, list[Any]]] = {}
    for post_id, entries in found.items():
        kept: dict[str, list[Any]] = {"replies": [], "reactions": []}
        used = 0
        for _, kind, entry in sorted(entries, key=lambda e: (e[0], json.dumps(e[2])),
                                     reverse=True):
            size = len(json.dumps(entry, separators=(",", ":"))) + 1
            if len(kept[kind]) < caps[kind] and used + size <= _ITEM_BUDGET:
                kept[kind].append(entry)
                used += size
        out[post_id] = {k: sorted(v, key=json.dumps) for k, v in kept.items() if v}
    return {pid: e for pid, e in out.items() if e}


def mentions_of_me(db: sqlite3.Connection, own_key: str, limit: int = 200
                   ) -> list[tuple[str, str, str, str | None, str]]:
    """Replies and reactions to the owner's posts, and replies in threads they took part
    in: (kind, author name, date, emoji, the post answered's reference), newest first."""
    names = friend_names(db)
    mine = _threads_of(db, own_key)
    out = []
    seen: set[tuple[str, str]] = set()
    for kind, author, rid, date, emoji, to_ref, thread_ref in db.execute(
            "SELECT kind, author, id, date, emoji, to_ref, thread_ref FROM thread_items "
            "WHERE status != 'failed' AND author != ? ORDER BY date DESC", (own_key,)):
        if (author, rid) in seen:
            continue
        if not to_ref.startswith(f"o2m:{own_key}/") and thread_ref not in mine:
            continue
        seen.add((author, rid))
        out.append((kind, display_name(author, names), date, emoji, to_ref))
        if len(out) >= limit:
            break
    return out
