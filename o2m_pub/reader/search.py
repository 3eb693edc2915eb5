"""Full-text search over everything fetched: an SQLite FTS5 index of the reader's posts.

The index is a table of its own, ``post_search`` (title, text, tags; rowid = the post's
rowid), kept in sync by triggers on ``posts``, so every writer (the fetcher, a removal,
any later code) keeps it right without knowing of it. `prepare` makes it, once, in a
store of before that has none: its own migration step, independent of the schema
version in the header, so that it adds to any version of the store.

The text indexed is the friend's own: the Markdown of a private post, the summary and
the HTML of a public one (its markup words, such as ``href``, are indexed too), each
up to its first `INDEXED_CHARS` characters: a friend's 50 MiB post would otherwise
cost the fetch that stores it tens of megabytes of index in memory and a second copy
on disk outside their quota (THREATS.md 52), and no one searches a post's hundredth
page.

`fts_query` turns what a person types into an FTS5 expression that cannot be a syntax
error: words must all appear, "quoted words" are a phrase, ``word*`` a prefix, ``OR``
between two terms means either, ``-word`` leaves posts with that word out.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from o2m_pub.reader.model import StoredPost
    from o2m_pub.reader.store import ReaderStore

#: The query syntax in one line, for the search box.
SYNTAX_HELP = ('All words must appear · "an exact phrase" · bread* for bread, breads… · '
               "cake OR pie for either · -word leaves it out")
MAX_QUERY_CHARS = 500
MAX_TERMS = 32

INDEXED_CHARS = 64 * 1024  # of each of a post's texts
_TEXT = (f"substr(coalesce({{r}}.markdown, ''), 1, {INDEXED_CHARS}) || ' ' || "
         f"substr(coalesce({{r}}.summary, ''), 1, {INDEXED_CHARS}) || ' ' || "
         f"substr(coalesce({{r}}.html, ''), 1, {INDEXED_CHARS})")
_VALUES = f"{{r}}.rowid, coalesce({{r}}.title, ''), {_TEXT}, {{r}}.tags"

_CREATE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS post_search USING fts5("
    "title, text, tags, tokenize = 'unicode61 remove_diacritics 2')",
    # INSERT OR REPLACE deletes the old version without firing delete triggers: its
    # index entry goes before the new version comes.
    "CREATE TRIGGER IF NOT EXISTS post_search_replace BEFORE INSERT ON posts BEGIN "
    "DELETE FROM post_search WHERE rowid IN "
    "(SELECT rowid FROM posts WHERE friend = new.friend AND id = new.id); END",
    "CREATE TRIGGER IF NOT EXISTS post_search_insert AFTER INSERT ON posts BEGIN "
    "DELETE FROM post_search WHERE rowid = new.rowid; "
    f"INSERT INTO post_search (rowid, title, text, tags) VALUES ({_VALUES.format(r='new')}); END",
    "CREATE TRIGGER IF NOT EXISTS post_search_delete AFTER DELETE ON posts BEGIN "
    "DELETE FROM post_search WHERE rowid = old.rowid; END",
    "CREATE TRIGGER IF NOT EXISTS post_search_update AFTER UPDATE OF title, markdown, html, "
    "summary, tags ON posts BEGIN DELETE FROM post_search WHERE rowid = old.rowid; "
    f"INSERT INTO post_search (rowid, title, text, tags) VALUES ({_VALUES.format(r='new')}); END",
]


def _has_index(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('post_search', "
                      "'post_search_replace', 'post_search_insert', 'post_search_delete', "
                      "'post_search_update')").fetchone()[0] == 5


def prepare(db: sqlite3.Connection) -> None:
    """Make the search index and its triggers if the store has none yet, and index the
    posts already stored (once: seconds for 100,000 posts), in one transaction."""
    if _has_index(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _has_index(db):
            db.execute("DROP TABLE IF EXISTS post_search")
            for statement in _CREATE:
                db.execute(statement)
            db.execute("INSERT INTO post_search (rowid, title, text, tags) "
                       f"SELECT {_VALUES.format(r='p')} FROM posts p")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------- queries

_TOKEN = re.compile(r'-?"[^"]*"?\*?|\S+')


def fts_query(text: str) -> str | None:
    """What a person typed as an FTS5 expression (see the module docstring); None when
    it holds nothing to search for. Every term is quoted, so no input is an FTS5
    syntax error or reaches a column filter."""
    text = text[:MAX_QUERY_CHARS]
    positive: list[str] = []
    negative: list[str] = []
    pending_or = False
    for raw in _TOKEN.findall(text)[:MAX_TERMS]:
        if raw == "OR":
            pending_or = bool(positive)
            continue
        exclude = raw.startswith("-") and len(raw) > 1
        term = _term(raw[1:] if exclude else raw)
        if term is None:
            continue
        if exclude:
            negative.append(term)
        elif pending_or:
            positive[-1] = f"{positive[-1]} OR {term}"
        else:
            positive.append(term)
        pending_or = False
    if not positive:
        return None
    expression = " AND ".join(f"({p})" for p in positive)
    if negative:
        expression = f"({expression}) NOT ({' OR '.join(negative)})"
    return expression


def _term(raw: str) -> str | None:
    """One word, prefix or phrase as a quoted FTS5 string."""
    prefix = raw.endswith("*")
    words = raw.rstrip("*").strip('"')
    words = " ".join(re.findall(r"\w+", words))
    if not words:
        return None
    quoted = '"' + words.replace('"', '""') + '"'
    return quoted + ("*" if prefix and " " not in words else "")


def search(store: "ReaderStore", query: str, *, limit: int = 20, before: str | None = None,
           friends: Sequence[str] | None = None) -> list["StoredPost"]:
    """Posts matching `query`, newest first, at most `limit`.

    Args:
        store: an open reader store (its index made by `prepare`).
        query: as typed (see `fts_query`).
        limit: page size.
        before: the cursor of the last post of the previous page.
        friends: only posts of these friends (None: of all).
    """
    expression = fts_query(query)
    if expression is None or friends == []:
        return []
    where, args = ["post_search MATCH ?"], [expression]
    if before:
        date, _, short = before.partition("|")
        where.append("(p.date < ? OR (p.date = ? AND p.short_id < ?))")
        args += [date, date, short]
    if friends is not None:
        where.append(f"p.friend IN ({','.join('?' * len(friends))})")
        args += list(friends)
    rows = store.db.execute(
        "SELECT p.short_id FROM post_search JOIN posts p ON p.rowid = post_search.rowid "
        f"WHERE {' AND '.join(where)} ORDER BY p.date DESC, p.short_id DESC LIMIT ?",
        [*args, limit]).fetchall()
    found = [store.post(short) for (short,) in rows]
    return [p for p in found if p is not None]
