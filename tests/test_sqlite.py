"""The one SQLite helper (_sqlite.py) and the three stores opened with it: the build
state (site/manifest.py), the reader's store (reader/store.py) and the publish record
(host/publish/record.py). Real SQLite files; a second real connection holds the lock."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from o2m_pub._sqlite import DBErrors, connect_read_only, open_db
from o2m_pub.errors import O2MError, SiteError
from o2m_pub.host.publish.plan import FileInfo
from o2m_pub.host.publish.record import PublishRecord
from o2m_pub.host.publish.target import PublishError
from o2m_pub.reader import store as reader_store
from o2m_pub.reader.store import ReaderStore, StoreBusyError, StoreError
from o2m_pub.site import manifest as build_state
from o2m_pub.site.manifest import Manifest


class _ToyError(O2MError):
    """The toy store cannot be used."""


_TOY = DBErrors(".o2m/toy.db", "the toy store", _ToyError, damaged_hint="delete .o2m/toy.db")
_TOY_SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT);"


def _old_db(path: Path, script: str) -> None:
    """A database as the code before _sqlite.open_db left it (user_version 0)."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode=WAL;" + script)
    db.close()


def _user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


# -- databases written by the code before keep working -----------------------------------

def test_a_build_state_of_before_opens_with_its_data(tmp_path):
    """A build.db whose version 5 is in kv('schema'): opened as it is (nothing
    rebuilt), the version moves to the header, kv keeps the rest."""
    path = tmp_path / ".o2m/build.db"
    _old_db(path, build_state._SCHEMA + """
        INSERT INTO kv VALUES ('schema', '5'), ('seq_floor', '7'), ('in_progress', '0');
        INSERT INTO outputs VALUES ('index.html', 'sig', 'sha', 42);
        INSERT INTO feeds VALUES ('bob', '{"seq": 7}');""")
    m = Manifest(path)
    try:
        assert {"index.html": build_state.OutputState("sig", "sha", 42)} == m.outputs()
        assert ("7", "0", None) == (m.get("seq_floor"), m.get("in_progress"), m.get("schema"))
        assert {"bob": '{"seq": 7}'} == m.feed_states()
    finally:
        m.close()
    assert build_state.SCHEMA_VERSION == _user_version(path)


def test_a_build_state_of_an_older_schema_starts_afresh_but_keeps_the_feeds(tmp_path):
    """kv('schema') = 4: the cache tables are emptied, the friends' feed state and the
    sequence floor survive (a feed's sequence number must never go back)."""
    path = tmp_path / ".o2m/build.db"
    _old_db(path, build_state._SCHEMA + """
        INSERT INTO kv VALUES ('schema', '4'), ('seq_floor', '7'), ('index_pages', '{}');
        INSERT INTO outputs VALUES ('index.html', 'sig', 'sha', 42);
        INSERT INTO feeds VALUES ('bob', '{"seq": 7}');""")
    m = Manifest(path)
    try:
        assert {} == m.outputs()
        assert ("7", None) == (m.get("seq_floor"), m.get("index_pages"))
        assert {"bob": '{"seq": 7}'} == m.feed_states()
    finally:
        m.close()
    assert build_state.SCHEMA_VERSION == _user_version(path)


def _old_reader_schema(version: str) -> str:
    """reader.db as the first o2m with a reader wrote it: the version in `meta`, no
    attachment_credits table yet, nor the friend_state columns of schema 2."""
    return (reader_store._SCHEMA.replace(reader_store._CREDITS_TABLE, "")
            .replace(reader_store._COLUMNS_OF_2, "")
            + "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            + f"INSERT INTO meta VALUES ('schema', '{version}');")


def test_a_reader_store_of_before_opens_with_its_data(tmp_path):
    """A reader.db whose version is in `meta`: its friends and posts are there, it
    gains the credits table and the columns of schema 2 (protocol 1.1: a friend's
    card and signed public feed), and the version, now 2, moves to the header."""
    path = tmp_path / ".o2m/reader.db"
    _old_db(path, _old_reader_schema("1") + """
        INSERT INTO friend_state (friend, sign_pk, seq) VALUES ('bob', 'KEY', 3);
        INSERT INTO posts (friend, id, short_id, audience, title, date, fetched)
            VALUES ('bob', 'p1', 'abcdefghij', 'private', 'Hello', '2026-01-01T00:00:00Z',
                    '2026-01-02T00:00:00Z');""")
    with ReaderStore.open(tmp_path) as store:
        assert 3 == store.friend_state("bob").seq
        assert ["Hello"] == [p.title for p in store.timeline()]
        assert frozenset() == store.credited_attachments("bob")
        assert (None, None) == (store.friend_state("bob").card_etag,
                                store.friend_state("bob").pub_seq)
    assert reader_store.SCHEMA_VERSION == _user_version(path)  # brought up to date


def test_a_reader_store_of_a_newer_o2m_is_refused_and_left_as_it_was(tmp_path):
    """meta says schema 99: refused in one line; the file is not touched (the newer
    o2m can still read its own version there)."""
    path = tmp_path / ".o2m/reader.db"
    _old_db(path, _old_reader_schema("99"))
    with pytest.raises(StoreError, match="newer o2m"):
        ReaderStore.open(tmp_path)
    db = sqlite3.connect(path)
    assert [("schema", "99")] == db.execute("SELECT * FROM meta").fetchall()
    db.close()
    assert 0 == _user_version(path)


def test_a_publish_record_of_before_opens_with_its_data(tmp_path):
    """publish.db had no version at all, and targets.last: its rows are read."""
    path = tmp_path / ".o2m/publish.db"
    _old_db(path, """
        CREATE TABLE targets (target TEXT PRIMARY KEY,
                              in_progress INTEGER NOT NULL DEFAULT 0, last TEXT);
        CREATE TABLE sent (target TEXT NOT NULL, path TEXT NOT NULL, sha TEXT NOT NULL,
                           size INTEGER NOT NULL, gone_since TEXT, PRIMARY KEY (target, path));
        INSERT INTO targets VALUES ('/www', 1, '2026-01-01T00:00:00Z');
        INSERT INTO sent VALUES ('/www', 'index.html', 'ab', 12, NULL);""")
    record = PublishRecord(tmp_path / ".o2m", "/www")
    try:
        assert record.interrupted()
        assert {"index.html": (12, "ab")} == {p: (s.size, s.sha) for p, s in record.load().items()}
        record.sent([("a.html", FileInfo("cd", 3))])
        assert {"index.html", "a.html"} == set(record.load())
    finally:
        record.close()
    assert 1 == _user_version(path)


# -- one error per failure, one line with a hint -------------------------------------------

def _held(path: Path) -> sqlite3.Connection:
    """Another process's connection holding the write lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _one_line(e: O2MError) -> None:
    assert "\n" not in str(e) and e.hint and "\n" not in e.hint


def test_a_locked_new_database_is_the_one_line_busy_error(tmp_path):
    """Creating the schema waits for the lock, then says busy: one line, a hint that
    is not "delete it" (busy is not damaged), and no sqlite3 exception."""
    path = tmp_path / ".o2m/toy.db"
    path.parent.mkdir()
    holder = _held(path)
    try:
        with pytest.raises(_ToyError) as e:
            open_db(path, _TOY_SCHEMA, 1, _TOY, busy_timeout_ms=50)
    finally:
        holder.close()
    assert ".o2m/toy.db: the toy store is busy: another o2m is using it" == str(e.value)
    _one_line(e.value)
    assert "delete" not in e.value.hint


def test_each_store_says_busy_when_another_holds_its_lock(tmp_path):
    """The build state, the publish record and the reader's store, written while
    another connection holds the write lock: each raises its own error class, saying
    busy in one line."""
    state = tmp_path / ".o2m"
    manifest = Manifest(state / "build.db")
    record = PublishRecord(state, "/www")
    reader = ReaderStore.open(tmp_path)
    holders = [_held(state / n) for n in ("build.db", "publish.db", "reader.db")]
    try:
        for db in (manifest.db, record.db, reader.db):
            db.execute("PRAGMA busy_timeout=50")
        with pytest.raises(SiteError) as built:
            manifest.set("in_progress", "1")
        with pytest.raises(PublishError) as published:
            record.finish()
        with pytest.raises(StoreBusyError) as read:
            reader.mark_notifications_seen()
    finally:
        for holder in holders:
            holder.close()
        manifest.close()
        record.close()
        reader.close()
    for e in (built.value, published.value, read.value):
        assert "is busy: another o2m is using it" in str(e)
        _one_line(e)


@pytest.mark.parametrize("name", ["build.db", "reader.db", "publish.db"])
def test_a_file_that_is_not_a_database_is_the_damaged_error(tmp_path, name):
    """Garbage where a store should be: its own error class, "is damaged", and a hint
    that says to delete that file."""
    state = tmp_path / ".o2m"
    state.mkdir()
    (state / name).write_bytes(b"this is not sqlite" * 100)
    openers = {"build.db": lambda: Manifest(state / name),
               "reader.db": lambda: ReaderStore.open(tmp_path),
               "publish.db": lambda: PublishRecord(state, "/www")}
    with pytest.raises(O2MError) as e:
        openers[name]()
    assert f".o2m/{name}: " in str(e.value) and " is damaged (" in str(e.value)
    assert f"delete .o2m/{name}" in e.value.hint
    _one_line(e.value)


def test_a_build_state_with_damaged_pages_is_the_damaged_error(tmp_path):
    """A real database whose pages after the first were overwritten (the header and
    the table list intact): found damaged when opened, not halfway through a build."""
    path = tmp_path / ".o2m/build.db"
    m = Manifest(path)
    m.commit(sources={}, outputs={f"p{i}.html": build_state.OutputState("s", "h", i)
                                  for i in range(2000)}, files={}, kv={})
    m.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))
    with pytest.raises(SiteError, match="the build state is damaged"):
        Manifest(path)


def test_a_failure_that_is_neither_busy_nor_damage_is_could_not_be_read_or_written(tmp_path):
    """A write refused (here by a trigger, standing in for a full disk) is not called
    damaged: the hint must not send the user to delete a sound database."""
    db = open_db(tmp_path / ".o2m/toy.db", _TOY_SCHEMA, 1, _TOY)
    db.execute("CREATE TRIGGER full BEFORE INSERT ON t BEGIN "
               "SELECT RAISE(ABORT, 'database or disk is full'); END")
    with pytest.raises(_ToyError) as e:
        with _TOY:
            db.execute("INSERT INTO t VALUES ('k', 'v')")
    db.close()
    assert (".o2m/toy.db: the toy store could not be read or written "
            "(database or disk is full)") == str(e.value)
    assert "delete" not in e.value.hint


# -- private files ----------------------------------------------------------------------

def test_every_store_is_0600_in_a_0700_folder(tmp_path):
    """Under a permissive umask, and for a database an older o2m left 0644: the state
    folder is 0700, each database and its WAL file 0600 (they hold post keys and
    friends' feed secrets)."""
    state = tmp_path / ".o2m"
    state.mkdir(mode=0o755)
    (state / "reader.db").touch(mode=0o644)
    old = os.umask(0o022)
    try:
        manifest = Manifest(state / "build.db")
        manifest.set("k", "v")
        record = PublishRecord(state, "/www")
        record.finish()
        reader = ReaderStore.open(tmp_path)
        reader.add_notification("stale", "bob")
        modes = {p.name: p.stat().st_mode & 0o777 for p in state.iterdir()}
        manifest.close()
        record.close()
        reader.close()
    finally:
        os.umask(old)
    assert 0o700 == state.stat().st_mode & 0o777
    databases = {n: m for n, m in modes.items() if ".db" in n}
    assert {"build.db", "build.db-wal", "publish.db", "publish.db-wal", "reader.db",
            "reader.db-wal"} <= set(databases)
    assert {0o600} == set(databases.values()), databases


def test_two_opens_of_one_new_database_make_one_schema(tmp_path):
    """The first open creates and stamps the schema; the second finds it done and
    changes nothing (the version is read from the header, no table)."""
    path = tmp_path / ".o2m/toy.db"
    first = open_db(path, _TOY_SCHEMA, 3, _TOY)
    first.execute("INSERT INTO t VALUES ('k', 'v')")
    second = open_db(path, _TOY_SCHEMA, 3, _TOY)
    try:
        assert [("k", "v")] == second.execute("SELECT * FROM t").fetchall()
        assert 3 == second.execute("PRAGMA user_version").fetchone()[0]
        assert ["t"] == [r[0] for r in second.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        first.close()
        second.close()


def _open_at_the_barrier(path: Path, barrier, answers) -> None:  # noqa: ANN001
    barrier.wait()
    try:
        open_db(path, _TOY_SCHEMA, 1, _TOY).close()
        answers.put("opened")
    except O2MError as e:
        answers.put(str(e))


def test_a_new_store_opened_by_several_processes_at_once_opens_in_each(tmp_path):
    """Three o2m opening one new store at the same moment (the server's first
    Webmention and `o2m mention list`, say): SQLite refuses the switch to WAL at once
    while another holds the file, without its busy wait; each open still succeeds.
    (Before the retry, about one round in five had a "busy" error.)"""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(30):
        path = tmp_path / f"r{round_}/.o2m/toy.db"
        path.parent.mkdir(parents=True)
        barrier, answers = fork.Barrier(3), fork.Queue()
        openers = [fork.Process(target=_open_at_the_barrier, args=(path, barrier, answers))
                   for _ in range(3)]
        for p in openers:
            p.start()
        for p in openers:
            p.join(30)
        failures += [a for a in (answers.get(timeout=5) for _ in openers) if a != "opened"]
    assert [] == failures


def test_a_read_only_connection_opens_the_file_whatever_its_path_holds(tmp_path):
    """`connect_read_only` escapes the path: a folder named `a?b#c%41` opens that file
    (in a bare `file:` URI, `?` would start the options and `%41` read as `A`), and
    the connection cannot write."""
    folder = tmp_path / "a?b#c%41"
    folder.mkdir()
    (tmp_path / "a?b#cA").mkdir()  # the folder a misread URI would name
    with sqlite3.connect(folder / "x.db") as db:
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES ('here')")
    db = connect_read_only(folder / "x.db")
    try:
        assert [("here",)] == db.execute("SELECT v FROM t").fetchall()
        with pytest.raises(sqlite3.OperationalError):
            db.execute("INSERT INTO t VALUES ('no')")
    finally:
        db.close()
