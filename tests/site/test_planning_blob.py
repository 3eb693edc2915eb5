"""The planning blob (`site/planning_blob.py`, table `planning`): the manifest's posts
and outputs read in one call, equal to their rows; the keys committed since it was
written read from their rows; and the rows read instead whenever the blob is absent,
stale, damaged or another version's."""

from __future__ import annotations

import marshal
import sqlite3
from pathlib import Path

from o2m_pub.site import manifest as manifest_mod
from o2m_pub.site import planning_blob
from o2m_pub.site.manifest import Manifest, OutputState, SourceState
from o2m_pub.site.model import RECORD_FIELDS, PostRecord


def _record(i: int, **changes: object) -> PostRecord:
    fields = dict(source=f"content/p{i}.md", title=f"Post {i}", date="2026-01-02T03:04:05+01:00",
                  updated=None, tags=("a",), summary="s", slug=f"p{i}", path=f"2026/p{i}/",
                  draft=False, audience=("public",), reply_to=None, word_count=3,
                  render_key=f"k{i}", utc="2026-01-02T02:04:05+00:00", media=("content/x.png",),
                  links=(), lines={"title": 2}, extra={}, thread=None)
    fields.update(changes)
    return PostRecord(**fields)  # type: ignore[arg-type]


def _commit(path: Path, sources: dict, outputs: dict) -> None:
    m = Manifest(path)
    try:
        m.commit(sources=sources, outputs=outputs, files={}, kv={})
    finally:
        m.close()


def _state(path: Path) -> tuple[dict, dict, dict, dict]:
    """(planning_state's sources, its outputs, the rows' sources, the rows' outputs),
    sources as source -> (mtime, size, sha, record)."""
    m = Manifest(path)
    try:
        sources, outputs = m.planning_state()
        rows_sources, rows_outputs = m.sources(), m.outputs()
    finally:
        m.close()

    def flat(states: dict[str, SourceState]) -> dict:
        return {s: (st.mtime_ns, st.size, st.sha, st.record) for s, st in states.items()}
    return flat(sources), outputs, flat(rows_sources), rows_outputs


def _sql(path: Path, *statements: str) -> list:
    db = sqlite3.connect(path)
    try:
        out = [db.execute(s).fetchall() for s in statements]
        db.commit()
        return out
    finally:
        db.close()


def _site(tmp_path: Path, n: int = 5) -> Path:
    path = tmp_path / ".o2m/build.db"
    _commit(path, {f"content/p{i}.md": SourceState(i, 10 + i, f"sha{i}", _record(i))
                   for i in range(n)},
            {f"2026/p{i}/index.html": OutputState(f"d{i}", f"s{i}", i) for i in range(n)})
    return path


def test_the_blob_is_the_rows_image_and_is_what_is_read(tmp_path):
    """After a first commit the blob holds every post and output, equal to the rows
    (records lazy as from the rows, their JSON the stored text); a row changed behind
    the manifest's back shows that the blob, not the rows, was read."""
    path = _site(tmp_path)
    sources, outputs, rows_sources, rows_outputs = _state(path)
    assert rows_sources == sources and rows_outputs == outputs and 5 == len(sources)
    m = Manifest(path)
    try:
        record = m.planning_state()[0]["content/p1.md"].record
        assert "title" not in record.__dict__  # lazy: its JSON not parsed yet
        assert _record(1).to_json() == record.to_json()
        assert _record(1) == record
    finally:
        m.close()
    _sql(path, "UPDATE outputs SET size=99 WHERE path='2026/p1/index.html'")
    assert OutputState("d1", "s1", 1) == _state(path)[1]["2026/p1/index.html"]


def test_keys_committed_since_the_blob_are_read_from_their_rows(tmp_path):
    """A commit that changes, adds and deletes posts and outputs lists their keys as
    pending (the blob stays as it was); reading gives the rows' state, in full."""
    path = _site(tmp_path)
    blob_before = _sql(path, "SELECT data FROM planning")[0]
    _commit(path, {"content/p1.md": SourceState(7, 8, "new", _record(1, title="Changed")),
                   "content/p2.md": None,
                   "content/p9.md": SourceState(9, 9, "sha9", _record(9))},
            {"2026/p1/index.html": OutputState("dx", "sx", 5), "2026/p2/index.html": None,
             "2026/p9/index.html": OutputState("d9", "s9", 9)})
    assert blob_before == _sql(path, "SELECT data FROM planning")[0]
    assert 6 == len(_sql(path, "SELECT * FROM planning_pending")[0])
    sources, outputs, rows_sources, rows_outputs = _state(path)
    assert rows_sources == sources and rows_outputs == outputs
    assert (7, 8, "new", _record(1, title="Changed")) == sources["content/p1.md"]
    assert "content/p2.md" not in sources and "content/p9.md" in sources
    assert OutputState("dx", "sx", 5) == outputs["2026/p1/index.html"]


def test_too_many_pending_keys_write_the_blob_again(tmp_path, monkeypatch):
    """Once the pending keys would pass the limit, the commit writes the blob anew from
    the rows and clears them."""
    monkeypatch.setattr(manifest_mod, "PENDING_LIMIT", 3)
    path = _site(tmp_path)
    _commit(path, {"content/p1.md": SourceState(7, 8, "new", _record(1))}, {})
    assert [("sources", "content/p1.md")] == _sql(path, "SELECT * FROM planning_pending")[0]
    _commit(path, {"content/p3.md": None}, {"a.html": OutputState("d", "s", 1),
                                            "b.html": OutputState("d", "s", 2)})
    assert [] == _sql(path, "SELECT * FROM planning_pending")[0]
    data, stamp = _sql(path, "SELECT data FROM planning",
                       "SELECT value FROM kv WHERE key='planning_blob'")
    columns, out_columns = planning_blob.decode(data[0][0], stamp[0][0], len(RECORD_FIELDS))
    assert {"content/p0.md", "content/p1.md", "content/p2.md", "content/p4.md"} == set(columns[0])
    assert (7, "new") == (columns[1][columns[0].index("content/p1.md")],
                          columns[3][columns[0].index("content/p1.md")])
    assert 7 == len(out_columns[0])
    sources, outputs, rows_sources, rows_outputs = _state(path)
    assert rows_sources == sources and rows_outputs == outputs


def _read_is_from_rows(path: Path, sha: str = "behind") -> bool:
    """Whether planning_state reads the rows: a row changed behind the manifest's back
    (which the blob does not know) shows through only then."""
    _sql(path, f"UPDATE sources SET sha='{sha}' WHERE source='content/p1.md'")
    sources, _, rows_sources, _ = _state(path)
    assert rows_sources["content/p1.md"][2] == sha
    return sources == rows_sources


def test_an_absent_blob_reads_the_rows_and_the_next_commit_writes_it(tmp_path):
    """No blob (a manifest of schema 6, or one deleted): the rows are read; the next
    commit, however small, writes the blob."""
    path = _site(tmp_path)
    _sql(path, "DELETE FROM planning")
    assert _read_is_from_rows(path)
    _commit(path, {}, {"x.html": OutputState("d", "s", 1)})
    assert 1 == len(_sql(path, "SELECT * FROM planning")[0])
    assert not _read_is_from_rows(path, "behind again")  # the blob again


def test_a_stale_blob_reads_the_rows(tmp_path):
    """A blob whose stamp is not the one the manifest recorded beside it (rows written
    without it) is passed over."""
    path = _site(tmp_path)
    _sql(path, "UPDATE kv SET value='other' WHERE key='planning_blob'")
    assert _read_is_from_rows(path)


def test_a_blob_that_disagrees_with_the_number_of_rows_reads_the_rows(tmp_path):
    """A row added or removed behind the manifest's back (no pending key): the counts
    differ, the rows are read."""
    path = _site(tmp_path)
    _sql(path, "DELETE FROM outputs WHERE path='2026/p0/index.html'")
    assert _read_is_from_rows(path)


def test_a_damaged_blob_reads_the_rows(tmp_path):
    """Bytes cut short, garbage, or a marshal of something else: the rows are read."""
    path = _site(tmp_path)
    data = _sql(path, "SELECT data FROM planning")[0][0][0]
    for bad in (data[:len(data) // 2], b"\x00garbage", marshal.dumps((1, 2, 3)),
                marshal.dumps(((planning_blob.MAGIC, planning_blob.FORMAT, "s", 19, 5, 5),
                               ((),) * 12, ((),) * 4))):
        db = sqlite3.connect(path)
        db.execute("UPDATE planning SET data=?", (bad,))
        db.commit()
        db.close()
        assert _read_is_from_rows(path)


def test_another_versions_blob_reads_the_rows(tmp_path):
    """A blob of another format, or of records of another shape, is passed over."""
    path = _site(tmp_path)
    data, stamp = (v[0][0] for v in _sql(path, "SELECT data FROM planning",
                                         "SELECT value FROM kv WHERE key='planning_blob'"))
    header, columns, out_columns = marshal.loads(data)
    for other in ((header[0], header[1] + 1, *header[2:]),
                  (*header[:3], header[3] + 1, *header[4:]), ("other", *header[1:])):
        db = sqlite3.connect(path)
        db.execute("UPDATE planning SET data=?", (marshal.dumps((other, columns, out_columns)),))
        db.commit()
        db.close()
        assert _read_is_from_rows(path)
    assert stamp == header[2]


def test_a_plan_that_cannot_be_read_gets_no_blob(tmp_path):
    """Rows whose plans cannot be read (from another version) make no blob: the rows
    are read (and as another version's: the build starts over)."""
    path = _site(tmp_path)
    _sql(path, "UPDATE sources SET plan='' WHERE source='content/p2.md'")
    db = sqlite3.connect(path)
    db.execute("BEGIN IMMEDIATE")
    manifest_mod.write_planning_blob(db)
    db.execute("COMMIT")
    db.close()
    assert [] == _sql(path, "SELECT * FROM planning")[0]
    m = Manifest(path)
    try:
        assert ({}, m.outputs()) == m.planning_state()
    finally:
        m.close()


def test_a_blob_left_from_before_a_downgrade_is_dropped(tmp_path):
    """An o2m of schema 6 opened this manifest (dropping its posts, not knowing the
    blob) and built again: opened by this o2m, the old blob is gone and the rows are
    read, then the blob is written anew."""
    path = _site(tmp_path)
    _sql(path, "UPDATE sources SET sha='rebuilt'", "PRAGMA user_version=6")
    assert _read_is_from_rows(path)
    assert [] == _sql(path, "SELECT * FROM planning")[0]
