"""`o2m publish`: the plan's order (pure), a folder target and an rclone target (a real
`rclone serve sftp` on 127.0.0.1), and every fault that can be made here: an unreachable
target, a permission error, a full disk, an interrupted transfer. In each, one line,
a non-zero exit, and the host keeps serving the previous consistent site."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import run_o2m
from hypothesis import given, settings
from hypothesis import strategies as st
from support.friend import titles
from support.hosts import (
    NOW,
    free_port,
    make_site,
    need_program,
    o2m,
    tree,
    update_site,  # noqa: F401
    wait_for_port,
    write_post,
)
from support.system import o2m_unprivileged, try_mount_tmpfs

from o2m_pub.friends.private_feeds import head_bucket
from o2m_pub.host.publish.plan import (
    DEFAULT_GRACE,
    PHASES,
    FileInfo,
    Sent,
    compare_listing,
    parse_duration,
    plan_publish,
    utc_text,
)
from o2m_pub.host.publish.publish import is_remote, publish_site
from o2m_pub.host.publish.target import PublishError

HEADS = head_bucket(1)  # one friend's head and seven dummies (THREATS.md 55)

# -- helpers shared with test_hosting.py ----------------------------------------------


def assert_error_line(stderr: str, *needles: str) -> None:
    """One `o2m: error: publish: ...` line (plus its hint), no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("o2m: error: publish: "), stderr
    assert len([line for line in lines if line.startswith("o2m: error:")]) == 1, stderr
    for needle in needles:
        assert needle in stderr, stderr


# -- the plan (pure) --------------------------------------------------------------------

def _info(tag: str, size: int = 10) -> FileInfo:
    return FileInfo(tag * 64 if len(tag) == 1 else tag, size)


LAYOUT = {
    "o/" + "a" * 64: _info("a"), "p/" + "b" * 64: _info("b"), "media/abc/x.jpg": _info("c"),
    "static/style.css": _info("d"), "index.html": _info("e"), "2026/post/index.html": _info("f"),
    "tags/index.html": _info("1"), "feed.json": _info("2"), "atom.xml": _info("3"),
    "sitemap.xml": _info("4"), ".well-known/o2m-card.json": _info("5"),
    "f/" + "0" * 32: _info("6"),
}


def test_plan_orders_objects_then_pages_then_heads():
    """PROTOCOL.md §1.5 on the host: objects and media, pages (new paths first, feeds
    and card last), friends' heads last of all."""
    plan = plan_publish(LAYOUT, {}, now=NOW, grace=DEFAULT_GRACE)
    order = [(b.phase, b.paths) for b in plan.batches]
    assert [phase for phase, _ in order] == ["objects", "objects", "pages", "pages", "heads"]
    assert order[0][1] == ["media/abc/x.jpg", "o/" + "a" * 64, "p/" + "b" * 64]
    assert order[1][1] == ["static/style.css"]
    assert order[2][1] == ["2026/post/index.html", "index.html", "tags/index.html"]
    assert order[3][1] == [".well-known/o2m-card.json", "atom.xml", "feed.json", "sitemap.xml"]
    assert order[4][1] == ["f/" + "0" * 32]
    assert plan.deletions == [] and plan.unchanged == 0
    assert not plan.batches[0].recheck and all(b.recheck for b in plan.batches[1:])


def test_plan_sends_only_what_changed_and_rewritten_post_pages_before_index_pages():
    """The plan (pure) sends only the files whose bytes changed, in phases: new pages, then
    changed pages (posts before the index pages that link to them), then friends' heads
    last; an unchanged build plans nothing."""
    record = {p: Sent(i.sha, i.size) for p, i in LAYOUT.items()}
    local = dict(LAYOUT)
    local["index.html"] = _info("9")
    local["2026/post/index.html"] = _info("8")
    local["2026/new/index.html"] = _info("7")
    local["f/" + "0" * 32] = _info("6", 11)
    plan = plan_publish(local, record, now=NOW, grace=DEFAULT_GRACE)
    assert [(b.label, b.paths) for b in plan.batches] == [
        ("new pages", ["2026/new/index.html"]),
        ("changed pages", ["2026/post/index.html", "index.html"]),
        ("friends' feed heads", ["f/" + "0" * 32])]
    assert plan.unchanged == len(LAYOUT) - 3
    assert plan_publish(LAYOUT, record, now=NOW, grace=DEFAULT_GRACE).empty


def test_plan_deletes_pages_at_once_and_objects_after_the_grace_period():
    """A page gone from build/ leaves the host at the next publish (a post made private
    must not stay public); objects stay for the grace period (PROTOCOL.md §3.4)."""
    record = {p: Sent(i.sha, i.size) for p, i in LAYOUT.items()}
    local = {p: i for p, i in LAYOUT.items() if p not in ("2026/post/index.html",
                                                          "o/" + "a" * 64, "static/style.css")}
    plan = plan_publish(local, record, now=NOW, grace=dt.timedelta(days=7))
    assert plan.deletions == ["2026/post/index.html"]
    assert sorted(plan.newly_gone) == ["2026/post/index.html", "o/" + "a" * 64,
                                       "static/style.css"]
    assert [p for p, _ in plan.waiting] == ["o/" + "a" * 64, "static/style.css"]
    assert plan.waiting[0][1] == utc_text(NOW + dt.timedelta(days=7))
    since = utc_text(NOW)
    later = {p: Sent(s.sha, s.size, since if p not in local else None) for p, s in record.items()}
    early = plan_publish(local, later, now=NOW + dt.timedelta(days=6), grace=DEFAULT_GRACE)
    assert early.deletions == ["2026/post/index.html"] and early.newly_gone == []
    due = plan_publish(local, later, now=NOW + dt.timedelta(days=7), grace=DEFAULT_GRACE)
    assert due.deletions == ["2026/post/index.html", "o/" + "a" * 64, "static/style.css"]
    assert plan_publish(local, later, now=NOW, grace=dt.timedelta(0)).deletions == due.deletions
    back = plan_publish(LAYOUT, later, now=NOW, grace=DEFAULT_GRACE)
    assert back.deletions == [] and sorted(back.returned) == sorted(
        ["2026/post/index.html", "o/" + "a" * 64, "static/style.css"])


def test_default_grace_is_the_builders():
    """publish keeps deleted files as long as the builder keeps superseded objects, so a
    reader holding an old head still finds what it names."""
    from o2m_pub.friends.private_feeds import OBJECT_GRACE
    assert DEFAULT_GRACE == OBJECT_GRACE


@pytest.mark.parametrize("text,expected", [
    ("7d", dt.timedelta(days=7)), ("12h", dt.timedelta(hours=12)), ("0", dt.timedelta(0)),
    ("30m", dt.timedelta(minutes=30)), ("2w", dt.timedelta(days=14)), ("3", dt.timedelta(days=3)),
    ("90s", dt.timedelta(seconds=90))])
def test_parse_duration(text, expected):
    """--grace takes a number with s, m, h, d or w (a bare number is days)."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "-1d", "7 days", "1.5d", "d", "7y"])
def test_parse_duration_refuses_other_text(text):
    """Anything else (empty, negative, words, fractions, unknown units) is refused."""
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("spec,remote", [
    ("host:www", True), ("my-s3:bucket/site", True), (":sftp,host=x:www", True),
    ("/var/www/site", False), ("./out", False), ("../www", False), ("~/www", False),
    ("www", False), ("site/out:2", False), ("a b:path", True)])
def test_is_remote(spec, remote):
    """A target with a colon before any slash is an rclone remote (NAME:path or
    :backend,...); a path is a folder, a colon later in it included."""
    assert is_remote(spec) is remote


def test_compare_listing_finds_missing_changed_and_unknown_files():
    """--check compares the target's listing with the record: files gone or of another size
    are missing (to send again), files the record does not know are reported."""
    record = {"a": Sent("x", 1), "b": Sent("y", 2), "c": Sent("z", 3)}
    result = compare_listing(record, {"a": 1, "b": 5, "extra": 9})
    assert result.missing == ["b", "c"] and result.unknown == ["extra"]


_paths = st.sampled_from(sorted(LAYOUT) + ["2026/x/index.html", "o/" + "c" * 64, "f/" + "1" * 32])


@settings(max_examples=200, deadline=None)
@given(local=st.dictionaries(_paths, st.sampled_from("ab"), max_size=15),
       sent=st.dictionaries(_paths, st.sampled_from("ab"), max_size=15))
def test_every_changed_file_is_sent_once_and_heads_come_after_everything(local, sent):
    """For any local build and record, every changed file is sent exactly once, the phases
    never go backwards (heads after what they name), and every file gone from the build is
    deleted or waits out its grace."""
    local_info = {p: FileInfo(v * 64, 1) for p, v in local.items()}
    record = {p: Sent(v * 64, 1) for p, v in sent.items()}
    plan = plan_publish(local_info, record, now=NOW, grace=DEFAULT_GRACE)
    sent_paths = [p for b in plan.batches for p in b.paths]
    assert sorted(sent_paths) == sorted(p for p, v in local.items() if sent.get(p) != v)
    phases = [PHASES.index(b.phase) for b in plan.batches]
    assert phases == sorted(phases)
    assert set(plan.deletions) | {p for p, _ in plan.waiting} == set(sent) - set(local)


# -- a folder target --------------------------------------------------------------------

class Snapshots:
    """A progress listener that copies the target's state as each batch starts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: list[tuple[str, str, dict[str, bytes]]] = []

    def batch(self, batch) -> None:  # noqa: ANN001
        self.seen.append((batch.phase, batch.label, tree(self.folder)))

    def advance(self, files: int, size: int) -> None:
        pass


def test_publish_to_a_folder_copies_build_with_web_modes(tmp_path):
    """The first publish copies build/ exactly, with modes 0755 and 0644 whatever the umask,
    and Bob reads his feed from the copy; the next one has nothing to do."""
    root, bob, ada = make_site(tmp_path)
    www = tmp_path / "www"
    result = o2m(root, "publish", str(www))
    assert f"published to {www}" in result.output
    assert "objects" in result.output and f"heads {HEADS}" in result.output
    assert tree(www) == tree(root / "build")
    for p in www.rglob("*"):
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p
    assert titles(bob.read_feed(www, ada)) == {"Only for friends"}
    again = o2m(root, "publish", str(www))
    assert "is up to date" in again.output


def test_dotfiles_in_build_are_not_published_and_are_named_in_a_warning(tmp_path):
    """Security review finding 11: `o2m publish` applies `o2m serve`'s rule for dotfiles:
    `.env`, `.hidden/x` and `f/.x` put in build/ by something else are never copied to
    the target, and a warning names them; `.well-known/` (the card) is published."""
    root, _, _ = make_site(tmp_path)
    build = root / "build"
    (build / ".env").write_text("SECRET=1\n")
    (build / ".hidden").mkdir()
    (build / ".hidden" / "x").write_text("x\n")
    (build / "f" / ".x").write_text("x\n")
    www = tmp_path / "www"
    result = o2m(root, "publish", str(www))
    published = tree(www)
    assert ".well-known/o2m-card.json" in published
    assert not [p for p in published if any(s.startswith(".") and s != ".well-known"
                                            for s in p.split("/"))], sorted(published)
    assert {p: d for p, d in tree(build).items()
            if p not in (".env", ".hidden/x", "f/.x")} == published
    warning = [line for line in result.output.splitlines() if line.startswith("o2m: warning")]
    assert len(warning) == 1 and all(name in warning[0] for name in (".env", ".hidden/", "f/.x"))


def test_mix_and_match_a_half_finished_publish_always_serves_a_whole_site(tmp_path):
    """At the start of each phase the host holds a whole site: when pages start, every
    new object is there; when heads start, every page is; the old head is still served."""
    root, bob, ada = make_site(tmp_path)
    www = tmp_path / "www"
    publish_site(root, str(www))
    old_head = {p: d for p, d in tree(www).items() if p.startswith("f/")}
    update_site(root)
    new = tree(root / "build")
    listener = Snapshots(www)
    report = publish_site(root, str(www), progress=listener)
    phases = [phase for phase, _, _ in listener.seen]
    assert phases == sorted(phases, key=PHASES.index) and phases[-1] == "heads"
    first_page = next(snap for phase, _, snap in listener.seen if phase == "pages")
    for path, data in new.items():
        if path.split("/")[0] in ("o", "p", "media", "static"):
            assert first_page.get(path) == data, path
    heads_start = next(snap for phase, _, snap in listener.seen if phase == "heads")
    for path, data in new.items():
        if not path.startswith("f/"):
            assert heads_start.get(path) == data, path
        else:
            assert heads_start[path] == old_head[path]  # the previous head, until the end
    assert tree(www) == new
    assert report.sent["heads"][0] == HEADS and report.plan.unchanged > 0
    assert titles(bob.read_feed(www, ada)) == {"Only for friends", "Second secret"}


def test_dry_run_shows_phases_and_sends_nothing(tmp_path):
    """--dry-run (and -n) lists each phase with its files and bytes, creates nothing and
    records nothing, so it says the same twice."""
    root, _, _ = make_site(tmp_path)
    www = tmp_path / "www"
    result = o2m(root, "publish", "--dry-run", str(www))
    assert not www.exists()
    lines = result.output.splitlines()
    assert lines[0] == f"would publish to {www}:"
    assert any(line.split()[0] == "objects" and "file" in line and " B" in line for line in lines)
    assert any(line.split()[0] == "heads" and f"{HEADS} files" in line for line in lines)
    assert o2m(root, "publish", "-n", str(www)).output == result.output  # nothing recorded


def test_deleted_post_leaves_the_host_and_objects_wait_out_the_grace(tmp_path):
    """A deleted post's pages leave the host at once; a file that friends' readers may still
    need (here a static file) waits the grace period, counted from when it was first seen
    gone, then goes."""
    root, _, _ = make_site(tmp_path)
    www = tmp_path / "www"
    (root / "site_templates/static").mkdir(parents=True, exist_ok=True)
    (root / "site_templates/static/extra.css").write_text("p{}")
    o2m(root, "build")
    publish_site(root, str(www), now=NOW)
    assert (www / "2026/second/index.html").exists() and (www / "static/extra.css").exists()
    (root / "content/2026/second.md").unlink()
    (root / "site_templates/static/extra.css").unlink()
    o2m(root, "build")
    report = publish_site(root, str(www), now=NOW + dt.timedelta(days=1))
    assert not (www / "2026/second/index.html").exists()
    assert (www / "static/extra.css").exists()
    assert [p for p, _ in report.plan.waiting] == ["static/extra.css"]
    publish_site(root, str(www), now=NOW + dt.timedelta(days=7, hours=23))
    assert (www / "static/extra.css").exists()  # 7 days from when it was first seen gone
    publish_site(root, str(www), now=NOW + dt.timedelta(days=8, hours=1))
    assert not (www / "static/extra.css").exists()
    assert tree(www) == tree(root / "build")


def test_grace_zero_deletes_at_once(tmp_path):
    """--grace 0 deletes a file gone from build/ on the same publish."""
    root, _, _ = make_site(tmp_path)
    www = tmp_path / "www"
    (root / "site_templates/static").mkdir(parents=True, exist_ok=True)
    (root / "site_templates/static/extra.css").write_text("p{}")
    o2m(root, "build")
    o2m(root, "publish", str(www))
    (root / "site_templates/static/extra.css").unlink()
    o2m(root, "build")
    result = o2m(root, "publish", "--grace", "0", str(www))
    assert "deleted 1" in result.output and not (www / "static/extra.css").exists()


def test_a_folder_is_checked_against_the_record_every_time(tmp_path):
    """A web root emptied, or a file lost or changed there by hand, is noticed by the
    next publish (listing a folder costs milliseconds); other files are left alone."""
    root, _, _ = make_site(tmp_path)
    www = tmp_path / "www"
    o2m(root, "publish", str(www))
    (www / "index.html").unlink()
    (www / "feed.json").write_text("truncated")
    (www / "humans.txt").write_text("mine")  # (robots.txt is o2m's: a build output)
    result = o2m(root, "publish", "--check", str(www))
    assert "2 files missing or changed there (sent again)" in result.output
    assert "1 not put there by o2m (left alone)" in result.output
    assert (www / "humans.txt").read_text() == "mine"
    (www / "humans.txt").unlink()
    assert tree(www) == tree(root / "build")
    shutil.rmtree(www)
    assert "pages" in o2m(root, "publish", str(www)).output
    assert tree(www) == tree(root / "build")


def test_target_from_config_is_relative_to_the_site(tmp_path):
    """[publish] target in o2m.toml is read relative to the site folder, whatever the
    working folder."""
    root, _, _ = make_site(tmp_path)
    with open(root / "o2m.toml", "a") as f:
        f.write('\n[publish]\ntarget = "../public"\n')
    result = o2m(root, "publish")
    assert f"published to {tmp_path / 'public'}" in result.output
    assert tree(tmp_path / "public") == tree(root / "build")


def test_no_target_is_one_line(tmp_path):
    """No target given and none configured: one error line with a hint, exit 1."""
    root, _, _ = make_site(tmp_path)
    r = run_o2m("publish", cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "no [publish] target", "hint:")


def test_no_target_is_said_before_building(tmp_path):
    """Newcomer trial: `o2m publish` with no target ran the whole build, then failed.
    The target is checked first: nothing is built, nothing said but the error."""
    root, _, _ = make_site(tmp_path)
    (root / "content/2026/new.md").write_text("---\ntitle: New\ndate: 2026-03-01\n"
                                              "audience: public\n---\nx\n")
    r = run_o2m("publish", cwd=root)
    assert r.returncode == 1 and "" == r.stdout
    assert_error_line(r.stderr, "no [publish] target", "hint:")
    assert not (root / "build/2026/new").exists()


def test_bad_grace_is_one_line(tmp_path):
    """A --grace that is not a duration: one error line naming it, exit 2 (a bad option
    value is a usage error, as click's own checks give)."""
    root, _, _ = make_site(tmp_path)
    r = run_o2m("publish", "--grace", "soon", str(tmp_path / "www"), cwd=root)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["o2m: error: --grace: 'soon' is not a duration",
                                     "  hint: e.g. --grace 7d, 12h, 30m or 0"]


def test_unreachable_folder_is_one_line(tmp_path):
    """An unmounted share: neither the folder nor its parent exists."""
    root, _, _ = make_site(tmp_path)
    r = run_o2m("publish", str(tmp_path / "mnt/share/www"), cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "no such folder", "mounted")
    assert not (tmp_path / "mnt").exists()


def test_target_inside_build_is_refused(tmp_path):
    """A target inside build/ (which would copy build/ into itself) is refused in one line."""
    root, _, _ = make_site(tmp_path)
    r = run_o2m("publish", "build/copy", cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "overlaps build/")


def test_unfinished_build_is_not_published(tmp_path):
    """A build that did not finish (the state says in progress) is not published as it is
    (--no-build): one line pointing to `o2m build`, nothing sent. Without --no-build,
    publish builds first, which finishes the build, and then publishes."""
    root, _, _ = make_site(tmp_path)
    db = sqlite3.connect(root / ".o2m/build.db")
    db.execute("UPDATE kv SET value='1' WHERE key='in_progress'")
    db.commit()
    db.close()
    r = run_o2m("publish", "--no-build", str(tmp_path / "www"), cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "did not finish", "o2m build")
    assert not (tmp_path / "www").exists()
    r = run_o2m("publish", str(tmp_path / "www"), cwd=root)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "www/index.html").is_file()


def test_no_build_is_one_line(tmp_path):
    """With --no-build (publish build/ as it is) and no build/: one line."""
    root, _, _ = make_site(tmp_path)
    shutil.rmtree(root / "build")
    r = run_o2m("publish", "--no-build", str(tmp_path / "www"), cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "build/ does not exist")


def test_publish_waits_for_no_build(tmp_path):
    """A build holds the site's lock: a publish then would mix two builds' files."""
    import fcntl
    root, _, _ = make_site(tmp_path)
    with open(root / ".o2m/build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = run_o2m("publish", "--no-build", str(tmp_path / "www"), cwd=root)
        building = run_o2m("publish", str(tmp_path / "www"), cwd=root)  # its build waits too
    assert r.returncode == 1
    assert_error_line(r.stderr, "build or publish is running")
    assert building.returncode == 1 and "build or publish is running" in building.stderr
    assert not (tmp_path / "www").exists()


def test_build_while_a_publish_holds_the_lock_names_build_or_publish(tmp_path):
    """Build and publish share one lock (_files.site_lock): a build refused while a
    publish runs must not claim another build is running."""
    from o2m_pub._files import site_lock
    root, _, _ = make_site(tmp_path)
    with site_lock(root / ".o2m", error=PublishError):  # as publish_site holds it
        r = run_o2m("build", cwd=root)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("o2m: error:")]
    assert len(errors) == 1 and "an o2m build or publish is running" in errors[0], r.stderr


def test_sqlite_error_in_the_publish_record_is_one_line_and_resumes(tmp_path):
    """A SQLite failure while recording (here a real trigger that fails, standing in
    for a full disk or an I/O error) is one `o2m: error:` line, not a traceback."""
    from o2m_pub.host.publish.record import _SCHEMA
    root, _, _ = make_site(tmp_path)
    db = sqlite3.connect(root / ".o2m/publish.db")
    db.executescript(_SCHEMA + "CREATE TRIGGER fail BEFORE INSERT ON sent BEGIN "
                     "SELECT RAISE(ABORT, 'database or disk is full'); END;")
    db.close()
    r = run_o2m("publish", str(tmp_path / "www"), cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "publish.db", "database or disk is full", "hint:")
    db = sqlite3.connect(root / ".o2m/publish.db")
    db.execute("DROP TRIGGER fail")
    db.commit()
    db.close()
    r = run_o2m("publish", str(tmp_path / "www"), cwd=root)
    assert r.returncode == 0, r.stderr
    assert tree(tmp_path / "www") == tree(root / "build")


def test_a_publish_record_from_before_keeps_working(tmp_path):
    """Records made before targets.last was dropped still have the column: unused."""
    root, _, _ = make_site(tmp_path)
    www = tmp_path / "www"
    db = sqlite3.connect(root / ".o2m/publish.db")
    db.executescript("CREATE TABLE targets (target TEXT PRIMARY KEY, "
                     "in_progress INTEGER NOT NULL DEFAULT 0, last TEXT);")
    db.close()
    for _ in range(2):
        r = run_o2m("publish", str(www), cwd=root)
        assert r.returncode == 0, r.stderr
    assert tree(www) == tree(root / "build")
    assert "up to date" in r.stdout


def test_permission_error_is_one_line_and_keeps_the_site(tmp_path):
    """A target folder the publisher may not write (run without root's file capabilities) is
    one line saying the host still serves its old site, and nothing there changed."""
    root, bob, ada = make_site(tmp_path)
    www = tmp_path / "www"
    o2m(root, "publish", str(www))
    before = tree(www)
    update_site(root)
    os.chmod(www / "o", 0o555)
    try:
        r = o2m_unprivileged("publish", str(www), cwd=root)
    finally:
        os.chmod(www / "o", 0o755)
    assert r.returncode == 1
    assert_error_line(r.stderr, "permission denied", "the host still serves the site it had")
    assert tree(www) == before
    assert titles(bob.read_feed(www, ada)) == {"Only for friends"}


def test_threat_48_full_disk_injected_keeps_the_previous_site(tmp_path):
    """ENOSPC at the second file of an update (O2M_FAULT, _faults.py): one line, exit 1,
    the old heads still served with every object they name; the next publish resumes."""
    root, bob, ada = make_site(tmp_path)
    www = tmp_path / "www"
    o2m(root, "publish", str(www))
    update_site(root)
    r = run_o2m("publish", str(www), cwd=root, env={"O2M_FAULT": "enospc:2"})
    assert r.returncode == 1
    assert_error_line(r.stderr, "no space left on the target", "resume")
    assert not [p for p in www.rglob(".~o2m-*")]
    assert titles(bob.read_feed(www, ada)) == {"Only for friends"}
    done = run_o2m("publish", str(www), cwd=root)
    assert done.returncode == 0, done.stderr
    assert tree(www) == tree(root / "build")
    assert titles(bob.read_feed(www, ada)) == {"Only for friends", "Second secret"}


def test_threat_48_full_disk_real_tmpfs(tmp_path):
    """A real full file system (a small tmpfs; needs root and mount rights)."""
    root, bob, ada = make_site(tmp_path)
    www = tmp_path / "www"
    if not try_mount_tmpfs(www, "400k"):
        pytest.skip("cannot mount a small tmpfs here (needs root with mount rights)")
    try:
        o2m(root, "publish", str(www))
        before = tree(www)
        (root / "content/2026/big.bin").write_bytes(os.urandom(600_000))
        write_post(root, "big", "Big file", body="[data](big.bin)", date="2026-11-06")
        o2m(root, "build")
        r = run_o2m("publish", str(www), cwd=root)
        assert r.returncode == 1
        assert_error_line(r.stderr, "no space left on the target")
        assert tree(www) == before  # the media file never landed, nothing else moved
        assert titles(bob.read_feed(www, ada)) == {"Only for friends"}
    finally:
        subprocess.run(["umount", str(www)], check=False)


def test_interrupted_publish_resumes_where_it_stopped(tmp_path):
    """SIGKILL before the third file of an update: the host still serves the old heads
    (with all their objects); the next run cleans up and sends only what is missing."""
    root, bob, ada = make_site(tmp_path)
    www = tmp_path / "www"
    o2m(root, "publish", str(www))
    update_site(root)
    r = run_o2m("publish", str(www), cwd=root, env={"O2M_FAULT": "kill:3"})
    assert r.returncode == -9
    landed = {p: (www / p).stat().st_ino for p in tree(www)}
    assert titles(bob.read_feed(www, ada)) == {"Only for friends"}
    (www / "o/.~o2m-leftover.1").write_text("half")  # as a kill mid-copy leaves
    done = run_o2m("publish", str(www), cwd=root)
    assert done.returncode == 0, done.stderr
    assert tree(www) == tree(root / "build")
    new_objects = [p for p in tree(www) if p.startswith("o/") and p in landed]
    assert all((www / p).stat().st_ino == landed[p] for p in new_objects)  # not sent again
    assert titles(bob.read_feed(www, ada)) == {"Only for friends", "Second secret"}


# -- an rclone target: a real `rclone serve sftp` on 127.0.0.1 ---------------------------

class SFTPServer:
    """`rclone serve sftp` of a folder, with a throwaway user, password and host key."""

    def __init__(self, tmp_path: Path, *, read_only: bool = False, folder: Path | None = None):
        self.rclone = need_program("rclone", "rclone")
        self.dir = tmp_path / "sftp"
        self.dir.mkdir(exist_ok=True)
        self.folder = folder or self.dir / "served"
        self.folder.mkdir(exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "serve.log"
        self.read_only = read_only
        self.key = self.dir / "host_key"
        if not self.key.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import (
                Ed25519PrivateKey,
            )
            self.key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption()))
            self.key.chmod(0o600)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.rclone, "serve", "sftp", str(self.folder), "--addr",
                f"127.0.0.1:{self.port}", "--user", "ada", "--pass", "throwaway-pass",
                "--key", str(self.key), "-v", "--config", str(self.dir / "empty.conf")]
        if self.read_only:
            args.append("--read-only")
        (self.dir / "empty.conf").write_text("")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        wait_for_port(self.port, self.proc, self.log)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def arrivals(self) -> list[str]:
        """Paths in the order the server logged them as written."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if ": Copied" in line and "INFO" in line:
                path = line.split("INFO  : ", 1)[1].rsplit(": Copied", 1)[0]
                found.append(path.split("/", 1)[1])  # drop the remote folder
        return found

    def client_env(self, monkeypatch, name: str = "DEST") -> None:
        """A remote named `name` through rclone's environment variables, as a user would."""
        obscured = subprocess.run([self.rclone, "obscure", "throwaway-pass"], capture_output=True,
                                  text=True, check=True).stdout.strip()
        (self.dir / "client.conf").write_text("")
        monkeypatch.setenv("RCLONE_CONFIG", str(self.dir / "client.conf"))
        for key, value in (("TYPE", "sftp"), ("HOST", "127.0.0.1"), ("PORT", str(self.port)),
                           ("USER", "ada"), ("PASS", obscured), ("SHELL_TYPE", "none")):
            monkeypatch.setenv(f"RCLONE_CONFIG_{name}_{key}", value)
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        # a refused connection fails at once, not after rclone's ten paced retries
        monkeypatch.setenv("RCLONE_LOW_LEVEL_RETRIES", "1")
        monkeypatch.setenv("RCLONE_RETRIES", "1")


@pytest.fixture
def sftp(tmp_path, monkeypatch):
    server = SFTPServer(tmp_path)
    server.start()
    server.client_env(monkeypatch)
    yield server
    server.stop()


def test_rclone_publish_arrives_in_order_and_updates(tmp_path, sftp):
    """Through a real `rclone serve sftp`: files arrive phase by phase (objects, pages,
    heads last); an update sends only what changed, heads last; a deleted post goes; --check
    finds a file deleted on the host behind o2m's back and sends it again."""
    root, bob, ada = make_site(tmp_path)
    result = o2m(root, "publish", "dest:www")
    assert "published to dest:www" in result.output
    served = sftp.folder / "www"
    assert tree(served) == tree(root / "build")
    arrived = sftp.arrivals()
    kinds = [("objects" if p.split("/")[0] in ("o", "p", "media", "static")
              else "heads" if p.startswith("f/") else "pages") for p in arrived]
    assert kinds == sorted(kinds, key=PHASES.index), arrived
    assert sorted(arrived) == sorted(tree(root / "build"))
    assert titles(bob.read_feed(served, ada)) == {"Only for friends"}

    sftp.log.write_bytes(b"")
    update_site(root)
    changed = {p for p, d in tree(root / "build").items() if tree(served).get(p) != d}
    o2m(root, "publish", "dest:www")
    assert tree(served) == tree(root / "build")
    arrived = sftp.arrivals()
    assert set(arrived) == changed  # only what changed was sent
    kinds = [("objects" if p.split("/")[0] in ("o", "p", "media", "static")
              else "heads" if p.startswith("f/") else "pages") for p in arrived]
    assert kinds == sorted(kinds, key=PHASES.index) and kinds[-1] == "heads"
    assert titles(bob.read_feed(served, ada)) == {"Only for friends", "Second secret"}

    (root / "content/2026/second.md").unlink()
    o2m(root, "build")
    o2m(root, "publish", "dest:www")
    assert not (served / "2026/second/index.html").exists()
    subprocess.run([sftp.rclone, "deletefile", "dest:www/index.html"], check=True)
    result = o2m(root, "publish", "--check", "dest:www")
    assert "1 file missing or changed there (sent again)" in result.output
    assert tree(served) == tree(root / "build")


def test_rclone_interrupted_transfer_keeps_the_site_and_resumes(tmp_path, sftp):
    """The server goes away as the pages start: one error, old heads still there with
    their objects; back up, the next publish sends only pages and heads."""
    root, bob, ada = make_site(tmp_path)
    publish_site(root, "dest:www")
    update_site(root)
    served = sftp.folder / "www"

    class KillAtPages:
        def batch(self, batch) -> None:  # noqa: ANN001
            if batch.phase == "pages":
                sftp.stop()

        def advance(self, files: int, size: int) -> None:
            pass

    with pytest.raises(PublishError) as caught:
        publish_site(root, "dest:www", progress=KillAtPages())
    assert "cannot reach the remote" in str(caught.value)
    assert titles(bob.read_feed(served, ada)) == {"Only for friends"}
    sftp.start()
    report = publish_site(root, "dest:www")
    assert report.sent["objects"] == (0, 0) and report.sent["heads"][0] == HEADS
    assert tree(served) == tree(root / "build")


def test_rclone_unreachable_is_one_line(tmp_path, sftp):
    """An rclone remote that does not answer: one line saying it cannot be reached and why."""
    root, _, _ = make_site(tmp_path)
    sftp.stop()
    r = run_o2m("publish", "dest:www", cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "dest:www: cannot reach the remote", "connection refused")


def test_rclone_unknown_remote_is_one_line(tmp_path, sftp):
    """A remote name rclone does not know: one line naming RCLONE_CONFIG."""
    root, _, _ = make_site(tmp_path)
    r = run_o2m("publish", "nosuch:www", cwd=root)
    assert r.returncode == 1
    assert_error_line(r.stderr, "no such rclone remote", "RCLONE_CONFIG")


def test_rclone_permission_error_is_one_line(tmp_path, monkeypatch):
    """A read-only remote: one line saying permission denied, and nothing lands there."""
    server = SFTPServer(tmp_path, read_only=True)
    server.start()
    try:
        server.client_env(monkeypatch)
        root, _, _ = make_site(tmp_path)
        r = run_o2m("publish", "dest:", cwd=root)
    finally:
        server.stop()
    assert r.returncode == 1
    assert_error_line(r.stderr, "permission denied")
    assert list(server.folder.iterdir()) == []


def test_rclone_full_disk_is_one_line(tmp_path, monkeypatch):
    """A remote whose disk fills up (a real small tmpfs; needs mount rights, else skips):
    one line, and no page was sent (pages go only after the objects they need)."""
    folder = tmp_path / "small"
    if not try_mount_tmpfs(folder, "300k"):
        pytest.skip("cannot mount a small tmpfs here (needs root with mount rights)")
    try:
        server = SFTPServer(tmp_path, folder=folder)
        server.start()
        server.client_env(monkeypatch)
        root, _, _ = make_site(tmp_path)
        (root / "content/2026/big.bin").write_bytes(os.urandom(600_000))
        write_post(root, "big", "Big file", body="[data](big.bin)", date="2026-11-06")
        o2m(root, "build")
        r = run_o2m("publish", "dest:www", cwd=root)
        server.stop()
        assert r.returncode == 1
        assert_error_line(r.stderr, "the target is full", "no space left")
        assert not (folder / "www/index.html").exists()  # pages never went
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_rclone_missing_is_one_line(tmp_path):
    """No rclone on PATH for a remote target: one line with the command to install it."""
    root, _, _ = make_site(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    r = run_o2m("publish", "host:www", cwd=root, env={"PATH": str(empty)})
    assert r.returncode == 1
    assert_error_line(r.stderr, "rclone is not installed", "apt install rclone")


def test_an_rclone_error_naming_a_port_like_a_status_is_read_for_what_it_says():
    """rclone's "dial tcp 127.0.0.1:55507: connection refused" is an unreachable remote,
    not a full one: an HTTP status (507) counts only as a number of its own."""
    from o2m_pub.host.publish.rclone import classify_rclone_message
    refused = ('Failed to create file system for "dest:www": NewFs: couldn\'t connect SSH: '
               "dial tcp 127.0.0.1:55507: connect: connection refused")
    assert classify_rclone_message(refused)[0].startswith("cannot reach the remote")
    full = "Failed to copy: HTTP error 507 (507 Insufficient Storage)"
    assert classify_rclone_message(full)[0].startswith("the target is full")
