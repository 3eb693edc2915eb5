"""Full-text search over the reader's store (reader/search.py): the FTS5 index follows
every write through its triggers, and a typed query is never an FTS5 syntax error."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2m_pub.reader import search
from o2m_pub.reader.model import FriendUpdate, PostRow
from o2m_pub.reader.store import ReaderStore


@pytest.fixture
def store(tmp_path):
    with ReaderStore.open(tmp_path) as s:
        yield s


def add(store, friend, *rows, deletes=()):
    store.apply_update(FriendUpdate(friend, "KEY-" + friend, upserts=list(rows),
                                    deletes=list(deletes)))


def row(i, title=None, markdown=None, date=None, **kw):
    return PostRow(id=f"p{i}", audience="private", date=date or f"2026-11-{i:02d}T10:00:00Z",
                   title=title, markdown=markdown, **kw)


def titles(found):
    return [p.title for p in found]


def test_search_finds_words_newest_first_and_follows_edits_and_deletes(store):
    """A word in the text or the title finds its posts newest first; an edited post is
    found by its new words only; a deleted or forgotten post is not found at all."""
    add(store, "ada", row(1, "Sourdough", "Starter and flour."),
        row(2, "Walk", "Bread on the ridge."), row(3, "Cake", "No bread here? Yes, bread."))
    add(store, "bob", row(4, "Café visit", "Croissant."))
    assert ["Cake", "Walk"] == titles(search.search(store, "bread"))
    assert ["Café visit"] == titles(search.search(store, "cafe"))  # diacritics folded
    add(store, "ada", row(2, "Walk", "Only hills now."))
    assert ["Cake"] == titles(search.search(store, "bread"))
    assert ["Walk"] == titles(search.search(store, "hills"))
    add(store, "ada", deletes=["p3"])
    assert [] == titles(search.search(store, "bread"))
    store.forget_friend("bob")
    assert [] == titles(search.search(store, "croissant"))
    count = store.db.execute("SELECT count(*) FROM post_search").fetchone()[0]
    assert count == store.db.execute("SELECT count(*) FROM posts").fetchone()[0] == 2


def test_the_query_syntax_phrases_prefixes_or_and_exclusion(store):
    """"phrase", prefix*, OR and -word behave as the one-line help says."""
    add(store, "ada", row(1, "One", "red apple pie"), row(2, "Two", "apple red pie"),
        row(3, "Three", "green pear"), row(4, "Four", "apples and pears"))
    assert ["Two", "One"] == titles(search.search(store, "red apple"))
    assert ["One"] == titles(search.search(store, '"red apple"'))
    assert ["Four", "Two", "One"] == titles(search.search(store, "apple*"))
    assert ["Three", "Two", "One"] == titles(search.search(store, "pie OR green"))
    assert ["Two"] == titles(search.search(store, 'apple -"red apple"'))
    assert ["Four"] == titles(search.search(store, "pear* -green"))


def test_paging_and_the_friend_filter(store):
    """`before` continues after the last post of a page; `friends` keeps only theirs."""
    add(store, "ada", *[row(i, f"A{i}", "jam") for i in range(1, 6)])
    add(store, "bob", row(9, "B9", "jam"))
    first = search.search(store, "jam", limit=3)
    assert ["B9", "A5", "A4"] == titles(first)
    assert ["A3", "A2", "A1"] == titles(search.search(store, "jam", before=first[-1].cursor))
    assert ["B9"] == titles(search.search(store, "jam", friends=["bob"]))
    assert [] == search.search(store, "jam", friends=[])


def test_a_store_of_before_gains_the_index_with_its_posts(tmp_path):
    """A store made before search existed (no index, no triggers) is indexed when it is
    first opened, and then stays in sync."""
    with ReaderStore.open(tmp_path) as store:
        add(store, "ada", row(1, "Old", "marmalade"))
    db = sqlite3.connect(tmp_path / ".o2m/reader.db")
    for name in ("post_search_replace", "post_search_insert", "post_search_delete",
                 "post_search_update"):
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DROP TABLE post_search")
    db.commit()
    db.close()
    with ReaderStore.open(tmp_path) as store:
        assert ["Old"] == titles(search.search(store, "marmalade"))
        add(store, "ada", row(2, "New", "marmalade again"))
        assert ["New", "Old"] == titles(search.search(store, "marmalade"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_no_typed_query_is_an_fts_syntax_error(text):
    """Whatever is typed (quotes, stars, parentheses, NEAR, column names) is either
    nothing to search for or a valid FTS5 expression."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, text, tags)")
    db.execute("INSERT INTO t VALUES ('a', 'b', 'c')")
    expression = search.fts_query(text)
    if expression is not None:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()
