"""The posts of the reader's store as rows: writing a friend's post versions, the bytes
each costs against its friend's quota (THREATS.md 52), and the merging of public posts
that an author's move left under two ids (PROTOCOL.md §1.4). Functions over an open
SQLite connection inside the store's transaction; `store.ReaderStore` calls them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any, Iterable

from o2m_pub.reader.model import FriendUpdate, PostRow, SpooledText, short_id_for
from o2m_pub.reader.spool import TextSpool


def delete_post(db: sqlite3.Connection, friend: str, post_id: str) -> None:
    row = db.execute("SELECT short_id FROM posts WHERE friend = ? AND id = ?",
                     (friend, post_id)).fetchone()
    if row is None:
        return
    db.execute("DELETE FROM post_tags WHERE short_id = ?", (row[0],))
    db.execute("DELETE FROM posts WHERE friend = ? AND id = ?", (friend, post_id))


def used_bytes(db: sqlite3.Connection, friend: str) -> int:
    """The bytes a friend's posts take (from the posts_size index alone)."""
    return db.execute("SELECT coalesce(sum(size), 0) FROM posts WHERE friend = ?",
                      (friend,)).fetchone()[0]


def used_after(db: sqlite3.Connection, update: FriendUpdate) -> int:
    """The bytes the friend's posts would take once `update` is stored: what they take
    now, less the versions it deletes or replaces, plus the new ones."""
    gone = set(update.deletes) | {r.id for r in update.upserts}
    freed = 0
    for chunk in _chunks(sorted(gone)):
        marks = ",".join("?" * len(chunk))
        freed += db.execute(f"SELECT coalesce(sum(size), 0) FROM posts WHERE friend = ? AND "
                            f"id IN ({marks})", [update.friend, *chunk]).fetchone()[0]
    added = sum(_row_size(r) for r in {r.id: r for r in update.upserts}.values())
    return used_bytes(db, update.friend) - freed + added


def _row_size(r: PostRow) -> int:
    """The bytes a new post version costs: its text as received, its attachments and
    its list of files (its rendering is added when it is made)."""
    return (_text_facts(r.markdown)[0] + _text_facts(r.html)[0]
            + attachments_size(r.attachments) + len(_media_json(r)))


def _media_json(r: PostRow) -> str:
    """A public post's listed files (PROTOCOL.md §1.4 `_o2m.media`) as the store keeps
    them: checked when the feed was parsed (`public_media.parse_media`)."""
    return json.dumps([f.to_json() for f in r.media]) if r.media else "[]"  # ASCII: len is bytes


def attachments_size(attachments: Iterable[dict[str, Any]]) -> int:
    """The bytes of a post's attachments, each object once (one file may be listed under
    several names, PROTOCOL.md §3.3)."""
    sizes = {a.get("hash") or i: a["size"] for i, a in enumerate(attachments)
             if isinstance(a.get("size"), int) and not isinstance(a.get("size"), bool)}
    return sum(sizes.values())


def sha256_of_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text_facts(text: str | SpooledText | None) -> tuple[int, str | None]:
    """(bytes, SHA-256) of a new row's text, spooled or not."""
    if isinstance(text, SpooledText):
        return text.size, text.digest
    if text is None:
        return 0, None
    data = text.encode("utf-8")
    return len(data), hashlib.sha256(data).hexdigest()


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def upsert_posts(db: sqlite3.Connection, friend: str, sign_pk: str, rows: list[PostRow],
                  stamp: str, spool: TextSpool) -> None:
    """Insert or replace post versions, in a few statements per batch (each statement
    lets go of the GIL, which the fetch threads then hold for a while: fewer is faster).
    An edit keeps the short id, and the read mark only if the text did not change (a
    public post's links to its own site do not count: a move changes them all; a
    private post's Markdown is compared by digest, so no stored text is held in memory).
    A spooled text is written after its row, one at a time."""
    rows = list({r.id: r for r in rows}.values())  # one version per id
    if not rows:
        return
    old: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks([r.id for r in rows]):
        marks = ",".join("?" * len(chunk))
        for r in db.execute(f"SELECT id, short_id, read, o2m_sha256(markdown), html, "
                            f"title, url FROM posts "
                            f"WHERE friend = ? AND id IN ({marks})", [friend, *chunk]):
            old[r[0]] = r[1:]
    _merge_moved_copies(db, friend, rows, old)
    shorts = {r.id: old[r.id][0] if r.id in old else short_id_for(sign_pk, r.id) for r in rows}
    _free_short_ids(db, sign_pk, shorts, set(old))
    db.executemany("DELETE FROM post_tags WHERE short_id = ?", [(v[0],) for v in old.values()])
    values, tags, spooled = [], [], []
    for r in rows:
        before = old.get(r.id)
        markdown_bytes, markdown_digest = _text_facts(r.markdown)
        html_bytes, _ = _text_facts(r.html)
        read = before[1] if before and _same_text(before, r, markdown_digest) else 0
        short = shorts[r.id]
        markdown = r.markdown
        if isinstance(markdown, SpooledText):
            spooled.append((markdown, r.id))
            markdown = ""  # its text follows, below
        media = _media_json(r)
        values.append((friend, r.id, short, r.audience, r.title, markdown, r.html, r.summary,
                       r.date, r.updated, json.dumps(list(r.tags)), r.reply_to, r.url,
                       json.dumps(list(r.attachments)), r.object_hash, read, stamp,
                       markdown_bytes + html_bytes + attachments_size(r.attachments)
                       + len(media), media))
        tags += [(t, r.date, short) for t in set(r.tags)]
    db.executemany(
        "INSERT OR REPLACE INTO posts (friend, id, short_id, audience, title, markdown, html, "
        "summary, date, updated, tags, reply_to, url, attachments, object_hash, read, fetched, "
        "size, media) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    del values
    for text, post_id in spooled:  # one text in memory at a time
        db.execute("UPDATE posts SET markdown = ? WHERE friend = ? AND id = ?",
                   (spool.read(text), friend, post_id))
    db.executemany("INSERT OR IGNORE INTO post_tags VALUES (?, ?, ?)", tags)


def _site_base(url: str | None, site_path: str | None) -> str | None:
    """The site URL a public post's permalink was under: the URL without its path
    after the site's URL (None when unknown)."""
    if not url or not site_path or not url.endswith("/" + site_path):
        return None
    return url[:-len(site_path)]


def _same_text(before: tuple[Any, ...], row: PostRow, markdown_digest: str | None) -> bool:
    """Whether a stored version (short_id, read, SHA-256 of its Markdown, html, title,
    url) says what `row` says, links to the author's own site aside (a move rewrites
    them all)."""
    _, _, stored_digest, html, title, url = before
    if (stored_digest, title) != (markdown_digest, row.title):
        return False
    old_base, new_base = _site_base(url, row.site_path), _site_base(row.url, row.site_path)
    if html is not None and row.html is not None and old_base and new_base:
        return html.replace(old_base, new_base) == row.html
    return html == row.html


def _merge_moved_copies(db: sqlite3.Connection, friend: str, rows: list[PostRow],
                        old: dict[str, tuple[Any, ...]]) -> None:
    """Public posts keep their identity when their author moves house (PROTOCOL.md
    §1.4): the copies of a post that earlier moves left under other ids (a permalink
    on the old site; same friend, same path after the site's URL, same date) are the
    same post. They are deleted, and the row takes the oldest copy's short id and, if
    its text is the same, its read mark (`old` gets the copy as the row's "before")."""
    for row in rows:
        if row.audience != "public" or not row.site_path:
            continue
        copies = [c for c in db.execute(
            "SELECT id, short_id, read, o2m_sha256(markdown), html, title, url FROM posts "
            "WHERE friend = ? AND audience = 'public' AND date = ? AND id != ? "
            "ORDER BY fetched, rowid", (friend, row.date, row.id))
            if _site_base(c[6], row.site_path) is not None]
        if not copies:
            continue
        if row.id not in old:
            old[row.id] = copies[0][1:]
        for copy in copies:
            delete_post(db, friend, copy[0])


def _free_short_ids(db: sqlite3.Connection, sign_pk: str, shorts: dict[str, str],
                    kept: set[str]) -> None:
    """Make the short ids of new posts unique (in the store and in the batch): a longer
    one in the rare case the short one is taken. `kept` are ids whose short id stays."""
    for length in (16, 52, None):
        new = [i for i in shorts if i not in kept]
        taken: set[str] = set()
        for chunk in _chunks([shorts[i] for i in new]):
            marks = ",".join("?" * len(chunk))
            taken |= {r[0] for r in db.execute(
                f"SELECT short_id FROM posts WHERE short_id IN ({marks})", chunk)}
        seen: set[str] = {shorts[i] for i in kept}
        clash = []
        for i in new:
            if shorts[i] in taken or shorts[i] in seen:
                clash.append(i)
            seen.add(shorts[i])
        if not clash:
            return
        if length is None:
            raise RuntimeError("cannot give the post a unique id")  # 256 bits collided
        for i in clash:
            shorts[i] = short_id_for(sign_pk, i, length)
