"""The reader's store (o2m_pub/reader/store.py): a real SQLite file in a site's .o2m/."""

from __future__ import annotations

import dataclasses

import datetime as dt
import hashlib
import os
import sqlite3

import pytest

from o2m_pub.errors import O2MError
from o2m_pub.reader.model import (
    AcceptedHead,
    FeedStateChange,
    FriendUpdate,
    PostRow,
    Validators,
    short_id_for,
)
from o2m_pub.reader.store import (
    AmbiguousPostError,
    ReaderStore,
    StaleUpdateError,
    StoreBusyError,
    StoreError,
    fetch_lock,
    store_for_friend_change,
)

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
STAMP = "2026-11-24T12:00:00Z"


def row(i: int, **kw) -> PostRow:
    fields = dict(id=f"post{i}", audience="private", date=f"2026-11-{i % 28 + 1:02d}T10:00:00Z",
                  title=f"Post {i}", markdown=f"Body {i}")
    fields.update(kw)
    return PostRow(**fields)


@pytest.fixture
def store(tmp_path):
    s = ReaderStore.open(tmp_path)
    yield s
    s.close()


def add(store, friend, rows, state: FeedStateChange | None = None):
    store.apply_update(FriendUpdate(friend, f"KEY-{friend}", state=state, upserts=rows), now=NOW)


def head_state(seq: int | None, signed: bytes | None = None) -> FeedStateChange:
    """A fetch's change that sets a head of `seq` (None: one that clears the stored head)."""
    if seq is None:
        return FeedStateChange(STAMP, forget_head=True)
    return FeedStateChange(STAMP, head=AcceptedHead(seq, b"head %d" % seq if signed is None
                                                    else signed))


def test_threat_47_the_store_is_private_and_in_the_state_folder(tmp_path):
    """.o2m/ 0700, reader.db 0600, WAL, synchronous FULL, never under build/."""
    s = ReaderStore.open(tmp_path)
    assert (tmp_path / ".o2m").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / ".o2m/reader.db").stat().st_mode & 0o777 == 0o600
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert not (tmp_path / "build").exists()
    s.close()


def test_timeline_is_newest_first_and_pages_by_cursor(store):
    """The timeline is newest first; pages by cursor give every post once, and the page
    after the last is empty."""
    add(store, "bob", [row(i) for i in range(10)])
    first = store.timeline(limit=4)
    assert [p.date for p in first] == sorted((p.date for p in first), reverse=True)
    second = store.timeline(limit=4, before=first[-1].cursor)
    third = store.timeline(limit=4, before=second[-1].cursor)
    ids = [p.id for p in first + second + third]
    assert len(ids) == len(set(ids)) == 10
    assert store.timeline(limit=4, before=third[-1].cursor) == []


def test_timeline_filters_by_friend_tag_and_since(store):
    """The timeline filters by friend, by tag (also with a friend, and paged by cursor) and
    by a date it starts at."""
    add(store, "bob", [row(1, tags=("cats",)), row(2), row(20, tags=("cats", "dogs"))])
    add(store, "carol", [row(3, tags=("cats",))])
    assert {p.id for p in store.timeline(friend="carol")} == {"post3"}
    assert {(p.friend, p.id) for p in store.timeline(tag="cats")} == {
        ("bob", "post1"), ("bob", "post20"), ("carol", "post3")}
    assert {p.id for p in store.timeline(tag="cats", friend="bob")} == {"post1", "post20"}
    assert {p.id for p in store.timeline(since="2026-11-05")} == {"post20"}
    assert [p.id for p in store.timeline(tag="cats", limit=1, before=store.timeline(
        tag="cats", limit=1)[0].cursor)] == ["post3"]


def test_post_by_short_id_and_prefix(store):
    """A post is found by its short id or a unique prefix of it (any case); an unknown id or
    a prefix under 4 characters finds none."""
    add(store, "bob", [row(1)])
    p = store.timeline()[0]
    assert p.short_id == short_id_for("KEY-bob", "post1")
    assert store.post(p.short_id) == p
    assert store.post(p.short_id[:5].upper()) == p
    assert store.post("zzzzzzzz") is None
    assert store.post("ab") is None  # too short to mean anything


def _two_ids_sharing_a_prefix(friend_key: str) -> tuple[str, str, str]:
    """Two post ids of one friend whose short ids start with the same 4 characters (a
    birthday search, about 1,300 ids), and the longest prefix they share."""
    seen: dict[str, str] = {}
    for i in range(100_000):
        short = short_id_for(friend_key, f"post{i}")
        if short[:4] in seen:
            other = short_id_for(friend_key, seen[short[:4]])
            common = next(short[:n] for n in range(len(short), 3, -1) if other[:n] == short[:n])
            return seen[short[:4]], f"post{i}", common
        seen[short[:4]] = f"post{i}"
    raise AssertionError("no shared prefix")  # pragma: no cover


def test_an_ambiguous_prefix_is_an_error(store):
    """A prefix two stored posts share is refused, naming both; one more character of
    either id finds that post."""
    first, second, common = _two_ids_sharing_a_prefix("KEY-bob")
    add(store, "bob", [row(1, id=first), row(2, id=second)])
    shorts = sorted(short_id_for("KEY-bob", pid) for pid in (first, second))
    for prefix in (common[:4], common):
        with pytest.raises(AmbiguousPostError) as refused:
            store.post(prefix)
        assert all(s in str(refused.value) for s in shorts)
    for pid in (first, second):
        full = short_id_for("KEY-bob", pid)
        assert store.post(full[:len(common) + 1]).id == pid


def test_edits_replace_and_tombstones_delete(store):
    """An edit replaces the post under the same short id and makes it unread again; a
    tombstone removes the post and its tags."""
    add(store, "bob", [row(1), row(2, tags=("x",))])
    short = store.post(short_id_for("KEY-bob", "post1")).short_id
    store.mark_read([short])
    store.apply_update(FriendUpdate("bob", "KEY-bob", upserts=[row(1, title="Edited")],
                                    deletes=["post2"]), now=NOW)
    posts = store.timeline()
    assert [(p.id, p.title, p.short_id) for p in posts] == [("post1", "Edited", short)]
    assert not posts[0].read  # the text changed: unread again
    assert store.timeline(tag="x") == []


def test_read_marks_and_unread_count(store):
    """Read marks change the unread counts (overall and per friend); the same text fetched
    again keeps its mark."""
    add(store, "bob", [row(i) for i in range(3)])
    assert store.unread_count() == 3
    shorts = [p.short_id for p in store.timeline()]
    assert store.mark_read(shorts[:2]) == 2
    assert store.unread_count() == 1 and store.unread_count("bob") == 1
    add(store, "bob", [row(0)])  # the same text again keeps the mark
    assert store.unread_count() == 1


def test_friend_state_round_trips(store):
    """What a fetch's change sets is what `friend_state` reads back, column by column."""
    head = AcceptedHead(7, b"\x00signed", updated="2026-11-24T10:00:00Z",
                        expires="2026-12-24T10:00:00Z", pages=("cd" * 32,))
    add(store, "bob", [row(1)], FeedStateChange(
        STAMP, head=head, head_validators=Validators('"e1"', "Tue, 24 Nov 2026 10:00:00 GMT"),
        public_validators=Validators('"p1"'), first_seen="x"))
    s = store.friend_state("bob")
    assert (s.seq, s.head_signed, s.pages, s.etag) == (7, b"\x00signed", ("cd" * 32,), '"e1"')
    assert (s.head_digest, s.updated, s.expires) == (
        hashlib.sha256(b"\x00signed").hexdigest(), head.updated, head.expires)
    assert (s.last_modified, s.pub_etag, s.pub_last_modified, s.first_seen) == (
        "Tue, 24 Nov 2026 10:00:00 GMT", '"p1"', None, "x")
    assert (s.last_attempt, s.last_success, s.failing_since, s.stale_since) == (
        STAMP, STAMP, None, None)
    assert store.friend_state("nobody") is None
    summary = store.friends_summary()
    assert [(f.friend, f.posts, f.unread, f.seq) for f in summary] == [("bob", 1, 1, 7)]


def test_failures_keep_what_was_stored(store):
    """A failed fetch records its reason and since when, and a notification, and keeps the
    head and posts stored before."""
    add(store, "bob", [row(1)], head_state(3))
    store.record_failure("bob", "KEY-bob", "timeout", "no answer in 30 s", now=NOW,
                         notifications=[("unreachable", "since 2026-11-23")])
    s = store.friend_state("bob")
    assert (s.seq, s.last_reason, s.failing_since) == (3, "timeout", "2026-11-24T12:00:00Z")
    assert len(store.timeline()) == 1
    assert [n.kind for n in store.notifications(unseen_only=True)] == ["unreachable"]


def test_an_update_that_fails_midway_changes_nothing(store):
    """One transaction per friend update: an error after the posts (here a sequence
    number SQLite cannot hold, met when the state is written) leaves nothing."""
    add(store, "bob", [row(1)], head_state(1))
    with pytest.raises(OverflowError):
        store.apply_update(FriendUpdate("bob", "KEY-bob", state=head_state(2**70),
                                        upserts=[row(2)], deletes=["post1"]))
    assert [p.id for p in store.timeline()] == ["post1"]
    assert store.friend_state("bob").seq == 1


def test_notifications_are_recorded_once_until_seen(store):
    """A notification is recorded once while unseen (the same one again is not); once seen,
    it may come again."""
    assert store.add_notification("stale", "bob", "stale since 2026-11-20", now=NOW)
    assert store.add_notification("stale", "bob", "stale since 2026-11-20", now=NOW) is None
    assert store.add_notification("new_friend_feed", "carol", now=NOW)
    assert [n.kind for n in store.notifications()] == ["new_friend_feed", "stale"]
    assert store.mark_notifications_seen() == 2
    assert store.notifications(unseen_only=True) == []
    assert store.add_notification("stale", "bob", "stale since 2026-11-20", now=NOW)


def test_attachments_are_cached_by_hash(store, tmp_path):
    """Beside the store, under .o2m/objects/<2 hex>/<hash>, 0600; a name that is no
    SHA-256 in hex is never a path (nor saved)."""
    h = "ab" * 32
    assert store.attachments.path(h) is None
    path = store.attachments.save(h, b"\x89PNG...")
    assert store.attachments.path(h) == path and path.read_bytes() == b"\x89PNG..."
    assert path == tmp_path / ".o2m" / "objects" / "ab" / h
    assert path.stat().st_mode & 0o077 == 0
    assert store.attachments.path("../etc/passwd") is None
    with pytest.raises(ValueError):
        store.attachments.save("../" + h[3:], b"x")
    assert not (tmp_path / h[3:]).exists()  # where objects/../../ would have put it


def test_attachments_saved_at_once_by_two_fetches_are_whole(store):
    """Two friends' fetches (threads) save the same attachment at the same moment, over
    and over: each write has a temp file of its own, so none fails and the cached file
    is always whole (a temp name shared by the threads of one process made one
    thread's rename take the other's half-written file, or fail)."""
    import threading
    data = os.urandom(1 << 20)
    errors: list[BaseException] = []
    for round_ in range(20):
        h = f"{round_:064x}"
        start = threading.Barrier(4)

        def save() -> None:
            start.wait()
            try:
                store.attachments.save(h, data)
            except BaseException as e:  # noqa: BLE001 - collected for the assert
                errors.append(e)
        threads = [threading.Thread(target=save) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.attachments.path(h).read_bytes() == data
    assert errors == []
    assert not [p for p in store.attachments.folder.rglob(".~o2m-*")]  # no temp file left


def test_other_bytes_under_a_cached_hash_are_not_cached(store):
    """The cipher does not commit to its key: an object could open to other bytes under
    another key. The bytes cached first stay, and the second save says it was not kept
    (so that attachment is left out of that post)."""
    h = "cd" * 32
    assert store.attachments.save(h, b"first") is not None
    assert store.attachments.save(h, b"first") == store.attachments.path(h)
    assert store.attachments.save(h, b"other") is None
    assert store.attachments.path(h).read_bytes() == b"first"


def test_a_store_made_before_attachment_credits_gets_the_table(tmp_path):
    """A reader.db of schema 1 from before attachment credits opens, and gains the
    table (empty: attachments are downloaded again once, for their friend). Such a
    store kept its version in a `meta` table, not in the header."""
    ReaderStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / ".o2m/reader.db")
    db.executescript("DROP TABLE attachment_credits; PRAGMA user_version = 0;"
                     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT INTO meta VALUES ('schema', '1');")
    db.close()
    with ReaderStore.open(tmp_path) as store:
        assert store.credited_attachments("bob") == frozenset()
        add(store, "bob", [row(1, attachments=({"name": "a.png", "media_type": "image/png",
                                                 "hash": "ef" * 32, "size": 9},))])
        assert store.credited_attachments("bob") == {"ef" * 32}
        store.forget_friend("bob")
        assert store.credited_attachments("bob") == frozenset()


def test_a_newer_schema_is_refused(tmp_path):
    """A store a newer o2m wrote (its schema version, in the header since
    _sqlite.open_db, is higher) is refused in one line, not misread."""
    ReaderStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / ".o2m/reader.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer o2m"):
        ReaderStore.open(tmp_path)


def test_a_damaged_store_is_one_clear_error(tmp_path):
    """A damaged reader store is a StoreError saying so, not an SQLite traceback."""
    (tmp_path / ".o2m").mkdir()
    (tmp_path / ".o2m/reader.db").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="damaged"):
        ReaderStore.open(tmp_path)


def test_first_page_of_100000_posts_reads_only_the_index(store):
    """The timeline's own queries (as the store builds them: all posts, one friend's, one
    tag's, and each of those past a cursor) walk an index in order, with no sort of the
    whole table: the speed itself is measured in bench/, not here."""
    stamp = "2026-11-24T12:00:00Z"
    store.db.execute("BEGIN")
    store.db.executemany(
        "INSERT INTO posts (friend, id, short_id, audience, date, fetched) VALUES (?,?,?,?,?,?)",
        ((f"f{i % 100}", f"id{i}", f"s{i:08d}", "private",
          f"20{10 + i % 16}-0{i % 9 + 1}-1{i % 10}T00:00:00Z", stamp) for i in range(100_000)))
    store.db.execute("INSERT INTO post_tags (tag, date, short_id) "
                     "SELECT 't' || (rowid % 7), date, short_id FROM posts")
    store.db.execute("COMMIT")
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)  # the SQL as run, values bound
    page = store.timeline(limit=50)
    cursor = page[-1].cursor
    pages = {"all": page}
    for name, kw in [("before", dict(before=cursor)), ("tag", dict(tag="t3")),
                     ("tag before", dict(tag="t3", before=cursor)),
                     ("friend", dict(friend="f1")),
                     ("friend before", dict(friend="f1", before=cursor))]:
        pages[name] = store.timeline(limit=50, **kw)
    store.db.set_trace_callback(None)
    assert len(page) == 50 and page[0].date == "2025-09-19T00:00:00Z"
    assert all(len(p) == 50 for p in pages.values())
    assert all(p.cursor < cursor for name in ("before", "tag before", "friend before")
               for p in pages[name])
    assert {p.friend for name in ("friend", "friend before") for p in pages[name]} == {"f1"}
    assert len(statements) == len(pages), statements  # one query a page
    for sql in statements:
        plan = [r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)
        assert all("USING INDEX" in step or "USING PRIMARY KEY" in step for step in plan), \
            (sql, plan)
        if " WHERE " in sql:  # a filter or a cursor seeks into the index, never walks it
            assert all(step.startswith("SEARCH ") for step in plan), (sql, plan)


def test_a_short_id_already_taken_gets_a_longer_one(store):
    """Two posts never share a short id, even when the 10-character ids collide."""
    taken = short_id_for("KEY-bob", "post1")
    store.db.execute("INSERT INTO posts (friend, id, short_id, audience, date, fetched) "
                     "VALUES ('carol', 'x', ?, 'private', '2026-01-01T00:00:00Z', 'now')",
                     (taken,))
    add(store, "bob", [row(1), row(2)])
    shorts = {p.id: p.short_id for p in store.timeline(friend="bob")}
    assert shorts["post1"] == short_id_for("KEY-bob", "post1", 16)
    assert shorts["post2"] == short_id_for("KEY-bob", "post2")


# ---------------------------------------------------------------- two fetches at once


def test_threat_10_an_older_update_committed_after_a_newer_one_is_refused(tmp_path):
    """THREATS 10 with two overlapping fetches (cron and `--every`), each with its own
    connection: both read seq 5; one commits seq 7, then the other tries to commit seq
    6. The check inside the write transaction refuses it, as rollback, and the store
    keeps seq 7 and its posts; so do the same seq with other bytes (equivocation), the
    same head again, and an update that would clear the head. A new key's feed starts
    afresh only after a verified key rotation, which the fetcher says by clearing the
    head it stores over (§2.5); a key accepted by hand keeps the mark (THREATS 17)."""
    first, second = ReaderStore.open(tmp_path), ReaderStore.open(tmp_path)
    try:
        add(first, "bob", [row(5)], head_state(5))
        assert second.friend_state("bob").seq == 5  # what both fetches compared with
        add(first, "bob", [row(7)], head_state(7))
        stale = [(head_state(6), "rollback"), (head_state(7, b"other bytes"), "equivocation"),
                 (head_state(7), "rollback"), (head_state(None), "rollback")]
        for state, reason in stale:
            with pytest.raises(StaleUpdateError) as e:
                add(second, "bob", [row(6)], state)
            assert e.value.reason == reason, (state, e.value)
        assert (second.friend_state("bob").seq, second.friend_state("bob").head_signed) == (
            7, b"head 7")
        assert {p.id for p in second.timeline()} == {"post5", "post7"}
        with pytest.raises(StaleUpdateError):
            second.apply_update(FriendUpdate("bob", "NEW-KEY-bob", state=head_state(1),
                                             upserts=[row(8)]), now=NOW)
        assert 7 == second.friend_state("bob").seq
        rotated = dataclasses.replace(head_state(1), forget_head=True)
        second.apply_update(FriendUpdate("bob", "NEW-KEY-bob", state=rotated,
                                         upserts=[row(8)]), now=NOW)
        assert 1 == second.friend_state("bob").seq
    finally:
        first.close()
        second.close()


def test_a_busy_store_is_one_clear_error(tmp_path):
    """Another connection holds the write lock past the busy timeout: a StoreBusyError
    (an O2MError, one line and a hint), never sqlite3's OperationalError; nothing of
    the update is stored."""
    holder, store = ReaderStore.open(tmp_path), ReaderStore.open(tmp_path)
    try:
        store.db.execute("PRAGMA busy_timeout=50")
        holder.db.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreBusyError) as e:
            add(store, "bob", [row(1)], head_state(1))
        assert isinstance(e.value, O2MError) and "busy" in str(e.value) and e.value.hint
        assert "delete" not in e.value.hint  # busy is not damaged: keep the store
        holder.db.execute("ROLLBACK")
        assert store.timeline() == [] and store.friend_state("bob") is None
    finally:
        holder.close()
        store.close()


def test_one_fetch_at_a_time_per_site(tmp_path):
    """The fetch lock: a second fetch of the same site is refused in one line while the
    first runs, or, waiting (`--every`), goes on as soon as the first is done."""
    import threading
    got: list[bool] = []
    queued, released = threading.Event(), threading.Event()
    with fetch_lock(tmp_path):
        with pytest.raises(StoreBusyError, match="another o2m fetch is running"):
            with fetch_lock(tmp_path):
                pass

        def waiter() -> None:
            with fetch_lock(tmp_path, wait=True, on_wait=queued.set):
                got.append(released.is_set())  # True: it ran only after the first ended
        thread = threading.Thread(target=waiter)
        thread.start()
        assert queued.wait(10)  # it found the lock taken and queued (no sleep, no timing)
        released.set()
    thread.join(10)
    assert got == [True]
    assert (tmp_path / ".o2m/fetch.lock").stat().st_mode & 0o077 == 0


def _photo(digest: str) -> dict:
    return {"name": "a.png", "media_type": "image/png", "hash": digest, "size": 9}


def test_forgetting_a_friend_drops_all_that_was_kept_of_them(store):
    """After `o2m friend remove`: their posts, feed state, notifications and credits
    go, and their cached attachments unless another friend is credited with them; the
    other friends' keep all of theirs."""
    mine, shared = "ab" * 32, "cd" * 32
    for digest in (mine, shared):
        store.attachments.save(digest, b"\x89PNG...")
    add(store, "bob", [row(1, attachments=(_photo(mine), _photo(shared)))], head_state(5))
    add(store, "carol", [row(2, attachments=(_photo(shared),))], head_state(2))
    store.add_notification("stale", "bob", "stale since 2026-11-20", now=NOW)
    store.add_notification("stale", "carol", "stale since 2026-11-20", now=NOW)

    store.forget_friend("bob")

    assert store.friend_state("bob") is None and store.timeline(friend="bob") == []
    assert [n.friend for n in store.notifications()] == ["carol"]
    assert store.attachments.path(mine) is None and store.attachments.path(shared)
    assert store.friend_state("carol").seq == 2 and len(store.timeline(friend="carol")) == 1


def test_renaming_a_friend_moves_what_was_kept_and_forgets_what_the_name_held(store):
    """After `o2m friend rename bob robert`: his posts (read marks too), feed state,
    credits and notifications are under the new name; what a former friend left under
    that name is forgotten first, so nothing of theirs is shown as his."""
    add(store, "bob", [row(1, attachments=(_photo("ab" * 32),)), row(2)], head_state(5))
    store.mark_read([p.short_id for p in store.timeline(friend="bob") if p.id == "post1"])
    store.add_notification("stale", "bob", "stale since 2026-11-20", now=NOW)
    add(store, "robert", [row(3)], head_state(9))  # a removed friend's leftovers

    store.rename_friend("bob", "robert")

    assert store.friend_state("bob") is None and store.timeline(friend="bob") == []
    assert {(p.id, bool(p.read)) for p in store.timeline(friend="robert")} == {
        ("post1", True), ("post2", False)}
    assert store.friend_state("robert").seq == 5
    assert store.credited_attachments("robert") == {"ab" * 32}
    assert [n.friend for n in store.notifications()] == ["robert"]


def test_a_friend_is_changed_only_when_no_fetch_runs(tmp_path):
    """The store for removing or renaming a friend: none before the first fetch (and
    none made), refused while a fetch holds its lock (the desk says so), given after."""
    with store_for_friend_change(tmp_path) as none:
        assert none is None
    assert not (tmp_path / ".o2m/reader.db").exists()
    ReaderStore.open(tmp_path).close()
    with fetch_lock(tmp_path):
        with pytest.raises(StoreBusyError):
            with store_for_friend_change(tmp_path):
                pass
    with store_for_friend_change(tmp_path) as store:
        assert isinstance(store, ReaderStore)
