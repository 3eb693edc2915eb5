"""The build state's posts: read back equal to what was committed, each record's JSON
parsed only when a field planning does not use is asked for, and a manifest of schema 5
brought to schema 6 without rendering anything again; and the check that the pages
the last build wrote are intact."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

from o2m_pub.site import manifest as manifest_mod
from o2m_pub.site.manifest import Manifest, OutputState, SourceState
from o2m_pub.site.model import RECORD_FIELDS, PostRecord

# Schema 5's sources table: schema 6 without its `plan` column
_SCHEMA_5 = manifest_mod._SCHEMA.replace(",\n    plan TEXT NOT NULL DEFAULT ''", "")


def _record(i: int, **changes: object) -> PostRecord:
    fields = dict(source=f"content/p{i}.md", title=f"Post {i}", date="2026-01-02T03:04:05+01:00",
                  updated=None, tags=("a", "b"), summary="a summary", slug=f"p{i}",
                  path=f"2026/p{i}/", draft=False, audience=("public", "friends"),
                  reply_to=None, word_count=12, render_key=f"k{i}",
                  utc="2026-01-02T02:04:05+00:00", media=("content/x.png",),
                  links=("content/p0.md",), lines={"title": 2}, extra={"mood": "ok"},
                  thread=None)
    fields.update(changes)
    return PostRecord(**fields)  # type: ignore[arg-type]


def _commit(path: Path, records: list[PostRecord]) -> None:
    m = Manifest(path)
    try:
        m.commit(sources={r.source: SourceState(1, 2, "sha", r) for r in records},
                 outputs={"index.html": OutputState("dg", "sha", 3)}, files={}, kv={})
    finally:
        m.close()


def _read_sources(path: Path) -> dict[str, SourceState]:
    m = Manifest(path)
    try:
        return m.sources()
    finally:
        m.close()


def test_records_read_back_equal_and_parse_their_json_only_when_asked(tmp_path):
    """Every field comes back as committed (tuples as tuples) and `to_json` gives the
    stored text; before a field outside planning's few is read, the record's JSON is
    not parsed (the point: a one-post edit reads 10,000 records and uses 3)."""
    path = tmp_path / ".o2m/build.db"
    records = [_record(1), _record(2, draft=True, audience=("bob",), media=(), title=None)]
    _commit(path, records)
    back = _read_sources(path)
    first = back["content/p1.md"].record
    assert "title" not in first.__dict__ and "summary" not in first.__dict__
    assert (first.utc, first.path, first.draft, first.audience, first.media) == (
        "2026-01-02T02:04:05+00:00", "2026/p1/", False, ("public", "friends"),
        ("content/x.png",))
    assert (records[0].digest, records[0].list_digest) == (first.digest, first.list_digest)
    assert "title" not in first.__dict__  # the digests were stored, not recomputed
    for r in records:
        got = back[r.source].record
        assert r == got and got == r
        assert r.to_json() == got.to_json()
        assert (r.tags, r.links, r.lines, r.extra) == (got.tags, got.links, got.lines, got.extra)
        assert isinstance(got.tags, tuple) and isinstance(got.links, tuple)


def test_a_lazy_record_survives_pickling_and_replace(tmp_path):
    """Page rendering sends records to worker processes (pickle) and the build changes
    a record's audience with `dataclasses.replace`: both work on a record not yet
    parsed and give the same fields."""
    import dataclasses
    path = tmp_path / ".o2m/build.db"
    _commit(path, [_record(1)])
    lazy = _read_sources(path)["content/p1.md"].record
    copy = pickle.loads(pickle.dumps(lazy))
    assert _record(1) == copy
    narrowed = dataclasses.replace(lazy, audience=("public",))
    assert _record(1, audience=("public",)) == narrowed
    assert _record(1, audience=("public",)).digest == narrowed.digest


def test_a_plan_of_another_shape_reads_as_another_versions_manifest(tmp_path):
    """A plan whose record has another number of fields (a PostRecord of another o2m)
    makes the build start over, as an unreadable record always did, instead of a record
    with fields in the wrong places."""
    path = tmp_path / ".o2m/build.db"
    _commit(path, [_record(1)])
    db = sqlite3.connect(path)
    n = len(RECORD_FIELDS)
    db.execute(f"UPDATE sources SET plan=replace(plan, ',{n}]', ',{n - 1}]')")
    db.commit()
    db.close()
    assert {} == _read_sources(path)


def _schema_5_db(path: Path, record_json: str, plan_source: str = "content/p1.md") -> None:
    """A build.db as the o2m before schema 6 left it, with one post."""
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA_5 + """
        INSERT INTO kv VALUES ('seq_floor', '7'), ('index_pages', '{"fp": "x"}');
        INSERT INTO outputs VALUES ('index.html', 'dg', 'sha', 3);
        PRAGMA user_version=5;""")
    try:
        r = PostRecord.from_json(record_json)
        digests = (r.digest, r.list_digest)
    except ValueError:  # not a record
        digests = ("d", "ld")
    db.execute("INSERT INTO sources VALUES (?, 1, 2, 'sha', ?, ?, ?)",
               (plan_source, *digests, record_json))
    db.commit()
    db.close()


def test_a_schema_5_manifest_gains_the_plan_and_keeps_everything(tmp_path):
    """A manifest written by the o2m before: opened, it is at today's schema (7) with
    each post's plan made from its record, and its posts, outputs and memos are kept
    (the next build renders nothing again)."""
    path = tmp_path / ".o2m/build.db"
    _schema_5_db(path, _record(1).to_json())
    m = Manifest(path)
    try:
        assert {"content/p1.md": _record(1)} == {s: st.record for s, st in m.sources().items()}
        assert {"index.html": OutputState("dg", "sha", 3)} == m.outputs()
        assert ("7", '{"fp": "x"}') == (m.get("seq_floor"), m.get("index_pages"))
    finally:
        m.close()
    db = sqlite3.connect(path)
    assert manifest_mod.SCHEMA_VERSION == db.execute("PRAGMA user_version").fetchone()[0] == 7
    assert [(manifest_mod._plan_json(_record(1)),)] == db.execute(
        "SELECT plan FROM sources").fetchall()
    db.close()


def test_a_schema_5_manifest_with_an_unreadable_record_starts_over(tmp_path):
    """A schema-5 record that is not a record of this o2m gets no plan: the posts read
    as another version's (the build renders them all), the rest of the state stays."""
    path = tmp_path / ".o2m/build.db"
    _schema_5_db(path, '["too", "short"]')
    m = Manifest(path)
    try:
        assert {} == m.sources()
        assert "7" == m.get("seq_floor")
    finally:
        m.close()


def test_the_intact_check_finds_pages_missing_resized_or_never_recorded(tmp_path):
    """Outputs.damaged (the check behind a one-post edit's plan): a page deleted, one
    whose size changed, one the last build did not record are damaged; an intact one
    is not; without build/ every page is."""
    from o2m_pub.site.outputs import Outputs
    out = tmp_path / "build"
    for name, text in (("a/index.html", "aaaa"), ("b/index.html", "bbbb"), ("c/index.html", "cc")):
        (out / name).parent.mkdir(parents=True)
        (out / name).write_text(text)
    old = {f"{n}/index.html": OutputState("dg", "sha", 4) for n in "abcd"}
    (out / "b/index.html").unlink()
    outputs = Outputs(out, old, before_first_write=lambda: None)
    paths = [f"{n}/index.html" for n in "abcde"]
    assert {"b/index.html", "c/index.html", "d/index.html", "e/index.html"} == \
        outputs.damaged(paths)
    assert set(paths) == Outputs(tmp_path / "none", old,
                                 before_first_write=lambda: None).damaged(paths)


def test_a_records_digest_leaves_out_how_its_files_are_written():
    """`media_refs` (how the Markdown writes each file, for naming a friends-only post's
    attachments) shows on no page: a record's digest is the one a record without it had
    (the o2m before it), so the first build after the upgrade seals no friends-only post
    again, and friends download nothing twice. The JSON keeps it; reading it back gives
    the same record and digest."""
    import hashlib
    import json
    refs = (("content/x.png", "x.png"), ("content/x.png", "./x.png"))
    record = _record(1, media_refs=refs)
    before = json.dumps([record.__dict__[f] for f in RECORD_FIELDS if f != "media_refs"],
                        ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(before.encode()).hexdigest()[:32] == record.digest
    assert _record(1).digest == record.digest
    again = PostRecord.from_json(record.to_json())
    assert refs == again.media_refs and record.digest == again.digest and record == again
