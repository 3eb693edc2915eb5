"""`o2m watch`: which events matter (pure, property-tested), the warm Builder session,
and a real watcher (watchdog threads, real files) rebuilding a real site. Tests poll
for the output with a generous deadline; none asserts how fast anything is."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run_o2m
from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.site.build import Builder, build_site
from o2m_pub.site.manifest import Manifest
from o2m_pub.site.snapshot import ManifestSnapshot
from o2m_pub.site.watch import (
    BuildResult,
    SiteWatcher,
    event_matters,
    is_editor_litter,
    path_matters,
)

DEADLINE = 60.0  # seconds: generous, for a slow CI machine; never a speed check


def wait_for(predicate, what: str, deadline: float = DEADLINE):  # noqa: ANN001, ANN201
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- the pure filter ------------------------------------------------------------------

LITTER = [
    ".a.md.swp", ".a.md.swx", ".a.md.swo", "a.md~", "4913", "5036", "5159",  # vim
    ".#a.md", "#a.md#",  # emacs lock and autosave
    "a.md___jb_tmp___", "a.md___jb_old___",  # JetBrains safe write
    ".~tmp", "a.md.~tmp", "a.md.tmp", "x.tmp", ".goutputstream-X1Y2Z3",  # generic, gedit
    ".DS_Store", ".hidden.md", "~$report.md", "a.md.kate-swp", "photo.jpg.part",
    "sedpNpAst", "sed0Ab9Zx",  # sed -i
]
REAL = ["a.md", "index.md", "photo.jpg", "4914", "1234", "post-4913.md", "tmp.md",
        "swp.md", "a.b.md", "ünïcode.md", "sedan.md", "sediment", "sedpNpAs"]


@pytest.mark.parametrize("name", LITTER)
def test_editor_litter_never_triggers(name):
    """Swap, backup, lock and temporary files of vim, emacs, JetBrains, gedit, macOS, sed."""
    assert is_editor_litter(name)
    for folder in ("content", "content/2026", "content/2026/bundle", "site_templates"):
        assert not path_matters(f"{folder}/{name}")
        for kind in ("created", "modified", "deleted", "closed"):
            assert not event_matters(kind, False, f"{folder}/{name}")


@pytest.mark.parametrize("name", REAL)
def test_real_files_in_content_trigger(name):
    """Real file names, even ones that look like litter in part (4914, tmp.md, swp.md), are
    sources: a change to them triggers a build."""
    assert not is_editor_litter(name)
    assert path_matters(f"content/2026/{name}")
    assert event_matters("modified", False, f"content/2026/{name}")


@pytest.mark.parametrize("rel, matters", [
    ("o2m.toml", True), ("o2m.toml~", False), (".o2m.toml.swp", False),
    ("site_templates/post.html", True), ("site_templates/static/style.css", True),
    ("keys/friends/alice.json", True), ("keys/friends", True),
    ("keys/friends/.~o2m-1234.alice.json", False), ("keys/friends/notes.txt", False),
    ("keys/groups.json", True), ("keys/card.json", True), ("keys/identity.pub.json", True),
    ("keys/identity.secret", False), ("keys/tls/cert.pem", False), ("keys/tls", False),
    ("keys", False), ("build/index.html", False), (".o2m/build.db", False),
    (".o2m/build.db-wal", False), ("README.md", False), ("content", True),
    ("content/.git/index", False), ("", False),
    (".o2m/conversations.json", True), (".o2m/reactions.json", True),
    (".o2m/reader.db-wal", False), (".o2m/inbox/bob.notice", False),
])
def test_which_site_paths_matter(rel, matters):
    """Sources matter; the build's own output and state, the TLS keys and the secret
    key never do (a build must not trigger itself). The links of the owner's threads and
    their reactions (PROTOCOL.md §4), which a fetch or `o2m react` changes, do: the next
    build under `o2m watch` puts them in the feeds."""
    assert path_matters(rel) is matters


def test_atomic_saves_trigger_through_their_rename():
    """JetBrains renames its temporary file onto the post; vim moves the post to its
    backup first. Either rename matters; a rename between two litter names does not."""
    assert event_matters("moved", False, "content/a.md___jb_tmp___", "content/a.md")
    assert event_matters("moved", False, "content/a.md", "content/a.md~")
    assert event_matters("moved", False, "content/a.md", "content/b.md")
    assert not event_matters("moved", False, "content/.a.swp", "content/a.md~")
    assert event_matters("moved", False, None, "content/a.md")  # moved in from elsewhere
    assert not event_matters("moved", False, "content/a.md~", None)


def test_reading_and_folder_mtimes_never_trigger():
    """The build opens every post it renders, and a folder's mtime changes whenever a
    swap file comes and goes: neither may start a build."""
    for kind in ("opened", "closed_no_write"):
        assert not event_matters(kind, False, "content/a.md")
    assert not event_matters("modified", True, "content/2026")
    assert not event_matters("attrib", True, "content/2026")
    assert event_matters("created", True, "content/2027")
    assert event_matters("deleted", True, "content/2025")
    assert event_matters("attrib", False, "content/a.md")  # chmod: readable again


name_chars = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
names = st.text(name_chars, min_size=1, max_size=30)


@given(names, st.sampled_from(["content", "content/2026", "site_templates", "keys/friends"]))
def test_litter_forms_of_any_name_never_matter(name, folder):
    """Whatever the file name, its swap, backup, lock and temporary forms never matter, in
    content/, site_templates/ or keys/friends/."""
    for litter in (f".{name}.swp", f"{name}~", f"#{name}#", f".#{name}",
                   f"{name}___jb_tmp___", f"{name}___jb_old___", f"{name}.tmp",
                   f".goutputstream-{name}"):
        assert not path_matters(f"{folder}/{litter}")


@given(st.lists(names, min_size=1, max_size=4),
       st.sampled_from(["build", ".o2m", "keys/tls", "node_modules", ".git"]))
def test_nothing_outside_the_sources_matters(parts, top):
    """Nothing under build/, .o2m/, keys/tls/, node_modules/ or .git/ matters, whatever its
    name."""
    assert not path_matters("/".join([top, *parts]))


@given(st.from_regex(r"[a-z0-9][a-z0-9-]{0,40}", fullmatch=True))
def test_every_plain_post_name_matters(stem):
    """Every plain post name in content/ matters."""
    assert path_matters(f"content/2026/{stem}.md")


# --- the warm build session -------------------------------------------------------------

def _fresh_snapshot(root: Path):  # noqa: ANN202
    manifest = Manifest(root / ".o2m/build.db")
    try:
        snap = ManifestSnapshot(manifest)
        return snap.sources, snap.outputs, snap.files
    finally:
        manifest.close()


def test_a_warm_session_always_agrees_with_the_manifest_on_disk(site):
    """Edits, deletions, an `o2m build` by another process in between, and .o2m/
    deleted by hand: after each build the session's tables equal a fresh read, and
    build/ equals what a build from scratch makes."""
    for i in range(5):
        site.post(f"2026/p{i}.md", title=f"P{i}", date=f"2026-01-0{i + 1}", tags="[a, b]")
    with Builder(site.root) as session:
        def check() -> None:
            snap = session._snapshot
            assert (snap.sources, snap.outputs, snap.files) == _fresh_snapshot(site.root)

        session.build()
        check()
        site.post("2026/p1.md", title="P1 edited", date="2026-01-02")
        session.build()
        check()
        (site.root / "content/2026/p2.md").unlink()
        site.post("2026/new.md", title="New", date="2026-02-01", tags="[c]")
        session.build()
        check()
        site.post("2026/p3.md", title="P3 by another build", date="2026-01-04")
        assert run_o2m("build", cwd=site.root).returncode == 0  # another process commits
        site.post("2026/p4.md", title="P4 after", date="2026-01-05")
        report = session.build()
        assert report.changed == 1
        check()
        shutil.rmtree(site.root / ".o2m")  # the hint for a damaged state says to do this
        report = session.build()
        assert report.changed == 5
        check()
    fresh = site.root.parent / "fresh"
    shutil.copytree(site.root, fresh, ignore=shutil.ignore_patterns("build", ".o2m"))
    build_site(fresh)
    assert site.outputs() == {p.relative_to(fresh / "build").as_posix(): p.read_bytes()
                              for p in sorted((fresh / "build").rglob("*")) if p.is_file()}


def test_a_warm_session_keeps_the_feed_state_as_stored(tmp_path):
    """With friends: the feed states and sealed objects a session keeps in memory equal
    what it committed, edit after edit, and the key is unlocked once."""
    from support.friend import Friend

    from o2m_pub.friends.identity import load_identity
    from o2m_pub.protocol.cards import card_to_text

    root = tmp_path / "ada"
    assert run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path).returncode == 0
    r = run_o2m("friend", "add", "bob", card_to_text(Friend(1, "bob").card), "--yes", cwd=root)
    assert r.returncode == 0, r.stderr
    unlocks = []

    def unlock():  # noqa: ANN202
        unlocks.append(1)
        return load_identity(root, b"test passphrase")

    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    with Builder(root, unlock=unlock) as session:
        for i in range(4):
            (root / "content/2026/secret.md").write_text(
                f"---\ntitle: Secret {i}\ndate: 2026-11-20\naudience: friends\n---\n{i}\n")
            (root / f"content/2026/more{i}.md").write_text(
                f"---\ntitle: More {i}\ndate: 2026-11-2{i}\naudience: bob\n---\nx\n")
            assert session.build().heads == 1
            manifest = Manifest(root / ".o2m/build.db")
            try:
                fresh = ManifestSnapshot(manifest)
                assert session._snapshot.feeds() == fresh.feeds()
                assert session._snapshot.sealed() == fresh.sealed()
            finally:
                manifest.close()
    assert unlocks == [1]


def test_a_session_reports_the_outputs_that_changed(site):
    """What a live reload needs: the paths written anew or removed, not those kept."""
    site.post("2026/a.md", title="A", date="2026-01-01")
    site.post("2026/b.md", title="B", date="2026-01-02")
    with Builder(site.root) as session:
        session.build()
        site.post("2026/a.md", title="A", date="2026-01-01", body="Changed.")
        changed = session.build().changed_paths
        assert "2026/a/index.html" in changed and "2026/b/index.html" not in changed
        (site.root / "content/2026/b.md").unlink()
        assert "2026/b/index.html" in session.build().changed_paths
        assert session.build().changed_paths == []


def test_a_template_edit_is_seen_by_a_warm_session(site):
    """A warm Builder session picks up an edited template on its next build."""
    site.post("2026/a.md", title="A", date="2026-01-01")
    with Builder(site.root) as session:
        session.build()
        site.write("site_templates/post.html",
                   '{% extends "base.html" %}{% block content %}EDITED {{ post.title }}'
                   '{% endblock %}')
        session.build()
        assert "EDITED A" in site.read("2026/a/index.html")


# --- a real watcher ---------------------------------------------------------------------

class Recorder:
    """The on_build callback: keeps every result (the builder thread appends)."""

    def __init__(self) -> None:
        self.results: list[BuildResult] = []
        self.gate: threading.Event | None = None
        self.hold_build: int | None = None

    def __call__(self, result: BuildResult) -> None:
        self.results.append(result)
        if self.hold_build == result.number and self.gate is not None:
            self.gate.wait(DEADLINE)

    def count(self) -> int:
        return len(self.results)


@pytest.fixture
def watching(site):
    """Start a SiteWatcher on `site`; yields a function to start it with options."""
    started: list[SiteWatcher] = []

    def start(debounce: float = 0.1, **options) -> Recorder:  # noqa: ANN003
        rec = Recorder()
        watcher = SiteWatcher(site.root, rec, debounce=debounce, **options)
        watcher.start()
        started.append(watcher)
        wait_for(lambda: rec.count() >= 1, "the first build")
        rec.watcher = watcher  # type: ignore[attr-defined]
        return rec

    yield start
    for watcher in started:
        watcher.stop()


def page(site, slug: str, year: str = "2026") -> Path:
    return site.build_dir / year / slug / "index.html"


def text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def test_a_new_post_appears_and_a_deleted_one_goes(site, watching):
    """A real watcher: a new post's page and the home page appear, a deleted post's page
    goes, and the build names the file that caused it."""
    rec = watching()
    assert rec.results[0].ok and rec.results[0].sources == ()
    site.post("2026/hello.md", title="Hello watcher", date="2026-01-05")
    wait_for(lambda: "Hello watcher" in text_of(page(site, "hello")), "the new page")
    assert "Hello watcher" in wait_for(lambda: "Hello watcher" in site.read("index.html")
                                       and site.read("index.html"), "the home page")
    (site.root / "content/2026/hello.md").unlink()
    wait_for(lambda: not page(site, "hello").exists(), "the deleted post's page to go")
    assert any("content/2026/hello.md" in r.sources for r in rec.results[1:])


def test_content_deleted_and_made_again_is_still_watched(site, watching):
    """A branch switch replaces content/ as a whole: the new folder is watched too."""
    site.post("2026/a.md", title="A", date="2026-01-05")
    watching()
    shutil.rmtree(site.root / "content")
    wait_for(lambda: not page(site, "a").exists(), "the posts to go")
    site.post("2026/b.md", title="B", date="2026-01-06")
    wait_for(lambda: page(site, "b").exists(), "a post in the new content/")
    site.post("2026/c.md", title="C", date="2026-01-07")
    wait_for(lambda: page(site, "c").exists(), "a later post in the new content/")


def test_a_renamed_post_moves(site, watching):
    """A post renamed on disk moves: its page at the new name appears and the old one goes."""
    site.post("2026/old-name.md", title="Moving", date="2026-01-05")
    watching()
    assert page(site, "old-name").exists()
    os.rename(site.root / "content/2026/old-name.md", site.root / "content/2026/new-name.md")
    wait_for(lambda: page(site, "new-name").exists() and not page(site, "old-name").exists(),
             "the page at the new name")


def test_a_burst_of_saves_gives_one_build(site, watching):
    """Twenty saves of three files in a quick loop: one build, with all of them. (The
    debounce is long here so a slow CI machine cannot split the burst.) No sleeping to
    see that no second build follows: the watcher goes idle after it, and a sentinel
    saved then is built next, alone, which it would not be if any of the burst were
    left over."""
    (site.root / "content/2026").mkdir()
    rec = watching(debounce=1.5)
    for i in range(20):
        site.post(f"2026/burst{i % 3}.md", title=f"Burst {i}", date="2026-01-05")
    wait_for(lambda: rec.count() >= 2, "the build after the burst")
    wait_for(rec.watcher.idle, "the watcher to wait for changes again")
    assert rec.count() == 2
    site.post("2026/sentinel.md", title="Sentinel", date="2026-01-06")
    wait_for(lambda: rec.count() >= 3, "the sentinel's build")
    assert [r.sources for r in rec.results[1:]] == [
        tuple(f"content/2026/burst{i}.md" for i in range(3)), ("content/2026/sentinel.md",)]
    assert "Burst 18" in site.read("2026/burst0/index.html")
    assert "Burst 19" in site.read("2026/burst1/index.html")


def test_changes_during_a_build_give_exactly_one_more(site, watching):
    """Saves that arrive while a build (and its callback) runs are built once after it."""
    (site.root / "content/2026").mkdir()
    rec = watching()
    rec.gate, rec.hold_build = threading.Event(), 2
    site.post("2026/first.md", title="First", date="2026-01-05")
    wait_for(lambda: rec.count() >= 2, "the second build")  # now held in its callback
    during = tuple(f"content/2026/during{i}.md" for i in range(4))
    for i in range(4):
        site.post(f"2026/during{i}.md", title=f"During {i}", date="2026-01-06")
    wait_for(lambda: set(rec.watcher.pending_changes()) >= set(during),
             "the watcher to see the saves while the build is held")
    rec.gate.set()
    wait_for(lambda: rec.count() >= 3, "the build after it")
    wait_for(rec.watcher.idle, "the watcher to wait for changes again")
    assert rec.count() == 3
    site.post("2026/sentinel.md", title="Sentinel", date="2026-01-07")  # built alone next,
    wait_for(lambda: rec.count() >= 4, "the sentinel's build")  # if nothing was left over
    assert [r.sources for r in rec.results[2:]] == [during, ("content/2026/sentinel.md",)]
    assert all(page(site, f"during{i}").exists() for i in range(4))


def test_swap_and_temporary_files_neither_trigger_nor_break_a_build(site, watching):
    """Editors' litter, full of broken front matter, triggers nothing: the next build
    is the one of a sentinel saved after it (no sleeping to see that nothing happened:
    a build the litter caused would come first, or name it among its sources), and that
    build, with the litter still there, has no problem."""
    site.post("2026/a.md", title="A", date="2026-01-05")
    rec = watching()
    wait_for(rec.watcher.idle, "the watcher to wait for changes")
    folder = site.root / "content/2026"
    for name in LITTER:
        (folder / name).write_text("---\ntitle: [broken\n---\nnot a post\n")
    site.post("2026/sentinel.md", title="Sentinel", date="2026-01-06")
    wait_for(lambda: rec.count() >= 2, "the sentinel's build")
    assert rec.results[1].sources == ("content/2026/sentinel.md",)
    assert rec.results[1].ok, rec.results[1].report
    for name in LITTER:
        (folder / name).unlink()


def test_vim_style_save_rebuilds(site, watching):
    """vim: writes and deletes 4913, makes .a.md.swp, renames a.md to a.md~, writes a
    new a.md, deletes the backup."""
    site.post("2026/a.md", title="Before vim", date="2026-01-05")
    watching()
    folder = site.root / "content/2026"
    (folder / ".a.md.swp").write_bytes(b"\0" * 4096)
    (folder / "4913").write_bytes(b"")
    (folder / "4913").unlink()
    os.rename(folder / "a.md", folder / "a.md~")
    site.post("2026/a.md", title="After vim", date="2026-01-05")
    (folder / "a.md~").unlink()
    (folder / ".a.md.swp").unlink()
    wait_for(lambda: "After vim" in text_of(page(site, "a")), "the page saved by vim")


def test_jetbrains_style_save_rebuilds(site, watching):
    """JetBrains safe write: a.md___jb_tmp___ written, a.md renamed to a.md___jb_old___,
    the temporary renamed onto a.md, the old one deleted."""
    site.post("2026/a.md", title="Before IDE", date="2026-01-05")
    watching()
    folder = site.root / "content/2026"
    (folder / "a.md___jb_tmp___").write_text(
        "---\ntitle: After IDE\ndate: 2026-01-05\n---\nSaved.\n")
    os.rename(folder / "a.md", folder / "a.md___jb_old___")
    os.rename(folder / "a.md___jb_tmp___", folder / "a.md")
    (folder / "a.md___jb_old___").unlink()
    wait_for(lambda: "After IDE" in text_of(page(site, "a")), "the page saved by the IDE")


def test_a_broken_post_is_reported_then_fixed(site, watching):
    """A post broken while watched is reported with its file and line, the last good page
    stays, and the fix rebuilds it."""
    site.post("2026/a.md", title="Good", date="2026-01-05")
    rec = watching()
    site.post("2026/a.md", title="Good", date="2026-13-05")
    result = wait_for(lambda: rec.count() >= 2 and rec.results[-1], "the broken build")
    assert result.error is None and not result.ok
    [problem] = result.report.problems
    assert (problem.path, problem.line) == ("content/2026/a.md", 3)
    assert "Good" in site.read("2026/a/index.html")  # the last good version stays
    site.post("2026/a.md", title="Fixed", date="2026-01-05")
    wait_for(lambda: "Fixed" in text_of(page(site, "a")), "the fixed page")
    assert wait_for(lambda: rec.count() >= 3 and rec.results[-1], "its result").ok


def test_a_broken_config_is_reported_and_the_watch_goes_on(site, watching):
    """A broken o2m.toml fails that build with its location, and watching goes on: once
    fixed, a new post builds."""
    rec = watching()
    config = (site.root / "o2m.toml").read_text()
    (site.root / "o2m.toml").write_text("[site\n")
    result = wait_for(lambda: rec.count() >= 2 and rec.results[-1], "the failed build")
    assert result.report is None and result.error.where == "o2m.toml:1"
    (site.root / "o2m.toml").write_text(config)
    site.post("2026/after.md", title="After", date="2026-01-05")
    wait_for(lambda: page(site, "after").exists(), "a build once the config is fixed")


def test_a_friend_added_in_keys_triggers_a_private_rebuild(tmp_path):
    """`o2m friend add` in another process while watching: the friend's feed appears,
    and the key is unlocked once for the whole session."""
    from support.friend import Friend

    from o2m_pub.friends.identity import load_identity, own_card
    from o2m_pub.protocol.cards import card_to_text

    root = tmp_path / "ada"
    assert run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path).returncode == 0
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    (root / "content/2026/circle.md").write_text(
        "---\ntitle: For friends\ndate: 2026-11-20\naudience: friends\n---\nHi.\n")
    unlocks: list[int] = []

    def unlock():  # noqa: ANN202
        unlocks.append(1)
        return load_identity(root, b"test passphrase")

    rec = Recorder()
    watcher = SiteWatcher(root, rec, unlock=unlock, debounce=0.1)
    watcher.start()
    try:
        wait_for(lambda: rec.count() >= 1, "the first build")
        bob, carol = Friend(1, "bob"), Friend(2, "carol")
        ada = own_card(root)
        assert bob.read_feed(root / "build", ada) == {}
        for f, name in ((bob, "bob"), (carol, "carol")):
            r = run_o2m("friend", "add", name, card_to_text(f.card), "--yes", cwd=root)
            assert r.returncode == 0, r.stderr
            wait_for(lambda f=f: f.read_feed(root / "build", ada), f"{name}'s feed")
        assert {p["title"] for p in bob.read_feed(root / "build", ada).values()} == {
            "For friends"}
        assert unlocks == [1]
    finally:
        watcher.stop()


# --- `o2m watch` as a user runs it -------------------------------------------------------

def test_o2m_watch_prints_one_line_per_build_and_exits_0_on_sigterm(site):
    """`o2m watch` prints one line per build on stdout (what was built, or how many
    problems), each problem once on stderr, and exits 0 on SIGTERM."""
    site.post("2026/a.md", title="A", date="2026-01-05")
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "watch", "--debounce", "100"],
                            cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stdout.readline()
        assert "built 1 post" in first and "watching" in first
        site.post("2026/b.md", title="B", date="2026-13-05")
        line = proc.stdout.readline()
        assert "content/2026/b.md:" in line and "1 problem" in line
        site.post("2026/b.md", title="B", date="2026-01-06")
        line = proc.stdout.readline()
        assert "content/2026/b.md: wrote" in line and " s" in line
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out == ""
    assert err.splitlines() == [
        "o2m: error: content/2026/b.md:3: `date` '2026-13-05' is not a date: month must be in "
        "1..12",
        "  hint: write it as 2026-11-24, 2026-11-24 09:30 or 2026-11-24T09:30:00+01:00 "
        "(year-month-day, 24-hour time, an optional UTC offset)"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_o2m_watch_stops_cleanly_with_exit_0(site, sig):
    """Ctrl-C or SIGTERM stops `o2m watch` with exit 0 and nothing more printed."""
    site.post("2026/a.md", title="A", date="2026-01-05")
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "watch"], cwd=site.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "watching" in proc.stdout.readline()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (0, "", "")


def test_o2m_watch_outside_a_site_fails_with_one_line(tmp_path):
    """`o2m watch` outside a site is one error line, exit 1."""
    result = run_o2m("watch", cwd=tmp_path)
    assert result.returncode == 1 and "not an o2m site" in result.stderr
    assert "Traceback" not in result.stderr


def test_o2m_watch_with_friends_and_a_wrong_passphrase_fails_at_start(tmp_path):
    """The key is unlocked before the first build when there are friends: a wrong
    passphrase is one line and exit 1, not a watch that cannot sign feeds."""
    from support.friend import Friend

    from o2m_pub.protocol.cards import card_to_text

    root = tmp_path / "ada"
    assert run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path).returncode == 0
    r = run_o2m("friend", "add", "bob", card_to_text(Friend(1, "bob").card), "--yes", cwd=root)
    assert r.returncode == 0, r.stderr
    result = run_o2m("watch", cwd=root, env={"O2M_PASSPHRASE": "wrong"}, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("o2m: error:") and "passphrase" in result.stderr
    assert not (root / "build").exists()


def test_a_warm_session_survives_deleting_the_state_folder_with_nothing_to_render(site):
    """`.o2m/` deleted between two builds that render nothing new: the session makes
    its template cache again rather than failing every later build."""
    import shutil

    site.post("2026/p.md", title="P", date="2026-01-01")
    with Builder(site.root) as session:
        session.build()
        session.build()  # nothing renders: the environment is reused
        shutil.rmtree(site.root / ".o2m")
        report = session.build()
        assert not report.problems
        site.post("2026/q.md", title="Q", date="2026-01-02")
        assert not session.build().problems
    assert (site.root / "build/2026/q/index.html").is_file()
