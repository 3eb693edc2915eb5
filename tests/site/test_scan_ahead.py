"""The scan of content/ and the pages' sizes taken by a forked child while the build
reads its state (`scan_ahead.ScanAhead`): the same results as the scan and the check
done in place, each done in place whenever the child has none to give, and no child
left behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from o2m_pub.cli import main
from o2m_pub.site import scan_ahead
from o2m_pub.site.build import build_site
from o2m_pub.site.manifest import Manifest, OutputState
from o2m_pub.site.outputs import Outputs
from o2m_pub.site.scan import recorded_pages, scan_sources, sizes_now
from o2m_pub.site.scan_ahead import ScanAhead

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")


def _tree(root: Path) -> None:
    """Posts in folders, litter, and a symlink leaving content/ (a warning)."""
    content = root / "content"
    for rel in ("2026/a.md", "2026/trip/index.md", "notes/b.md", "2026/.hidden.md",
                "2026/a.md~"):
        path = content / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\ntitle: {rel}\n---\n" + "x" * len(rel))
    (root / "outside.md").write_text("---\ntitle: out\n---\n")
    os.symlink(root / "outside.md", content / "notes/out.md")


def _plain(found: dict) -> dict[str, tuple[int, int]]:
    return {rel: (st.st_mtime_ns, st.st_size) for rel, st in found.items()}


def _child_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_childs_scan_is_the_scan_done_in_place(tmp_path):
    """Every post with its mtime and size, and the same warnings, in the same order."""
    _tree(tmp_path)
    expected, expected_warnings = scan_sources(tmp_path)

    with ScanAhead(tmp_path, scan_sources) as ahead:
        found, warnings = ahead.result()

    assert list(expected) == list(found)
    assert _plain(expected) == _plain(found)
    assert expected_warnings == warnings
    assert ["content/notes/out.md: symlink to a file outside content/, skipped"] == warnings


def _fails_in_the_child(parent: int):  # noqa: ANN202
    def scan(root: Path):  # noqa: ANN202
        if os.getpid() != parent:
            raise OSError("the child's scan failed")
        return scan_sources(root)
    return scan


def _killed_in_the_child(parent: int):  # noqa: ANN202
    def scan(root: Path):  # noqa: ANN202
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return scan_sources(root)
    return scan


@pytest.mark.parametrize("scan", [_fails_in_the_child, _killed_in_the_child])
def test_a_child_with_no_answer_means_the_scan_is_done_in_place(tmp_path, scan):
    """A child whose scan raised, or that was killed, gives no result: the parent scans
    itself, and gets the same posts."""
    _tree(tmp_path)

    ahead = ScanAhead(tmp_path, scan(os.getpid()))
    found, warnings = ahead.result()

    assert _plain(scan_sources(tmp_path)[0]) == _plain(found)
    assert 1 == len(warnings)


def test_a_scan_the_child_took_before_an_edit_is_what_the_build_compares(tmp_path):
    """The child's stat is taken when it runs (before any post is read, as the build's
    own): a later edit changes nothing in it."""
    _tree(tmp_path)
    post = tmp_path / "content/2026/a.md"
    with ScanAhead(tmp_path, scan_sources) as ahead:
        found, _ = ahead.result()
        post.write_text("---\ntitle: a\n---\nlonger than it was before\n")
    assert found["content/2026/a.md"].st_size != post.stat().st_size


def test_closing_without_asking_for_the_result_reaps_the_child(tmp_path):
    """A build that fails before the comparison still lets its child go."""
    _tree(tmp_path)
    ahead = ScanAhead(tmp_path, scan_sources)
    pid = ahead._pid  # noqa: SLF001 - the child this test watches
    assert pid is not None

    ahead.close()

    assert _child_gone(pid)
    assert _plain(scan_sources(tmp_path)[0]) == _plain(ahead.result()[0])  # then: in place


class _Watched(list):
    """The pid of each child started (the list), and what `page_sizes` gave the builds."""

    sizes: list


@pytest.fixture
def scans_ahead(monkeypatch) -> _Watched:
    """The threshold lowered to any site's state; the pid of each child started, and
    each answer of the pages' sizes."""
    started = _Watched()
    started.sizes = []

    class Watched(ScanAhead):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, **kwargs)
            started.append(self._pid)

        def page_sizes(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            sizes = super().page_sizes(*args, **kwargs)
            started.sizes.append(sizes)
            return sizes

    monkeypatch.setattr(scan_ahead, "MIN_STATE_BYTES", 0)
    monkeypatch.setattr(scan_ahead, "ScanAhead", Watched)
    return started


@pytest.mark.parametrize("how", ["build_site", "o2m build"])
def test_a_big_sites_one_off_build_scans_ahead_and_sees_edits(site, scans_ahead, how):
    """With the size threshold lowered to any site, a one-off build (`build_site`, and
    `o2m build`, which starts the child before its imports) scans and checks the pages
    through a child: an edit, a new post and a deleted one are all seen, and a page
    deleted or damaged by hand is made again, as without."""
    def build() -> None:
        if how == "o2m build":
            site.o2m("build")
        else:
            assert [] == build_site(site.root).problems

    site.post("one.md", title="One", body="First words.")
    site.post("two.md", title="Two", body="Second post.")
    build()  # no state yet: scanned in place
    assert [] == scans_ahead
    assert (site.build_dir / "2026/two/index.html").exists()

    site.post("one.md", title="One", body="Edited words, and more of them.")
    site.post("three.md", title="Three", body="A new post.")
    (site.root / "content/two.md").unlink()
    build()

    assert 1 == len(scans_ahead) and scans_ahead[0] is not None
    assert _child_gone(scans_ahead[0])
    assert "Edited words" in site.read("2026/one/index.html")
    assert "A new post." in site.read("2026/three/index.html")
    assert not (site.build_dir / "2026/two/index.html").exists()

    site.post("four.md", title="Four", body="Fourth.")
    site.post("five.md", title="Five", body="Fifth.")
    build()
    whole = site.outputs()
    (site.build_dir / "2026/four/index.html").unlink()
    (site.build_dir / "2026/five/index.html").write_text("damaged by hand")
    (site.build_dir / "index.html").write_text("")
    build()

    assert whole == site.outputs()
    assert 3 == len(scans_ahead) and all(_child_gone(pid) for pid in scans_ahead)
    taken = scans_ahead.sizes[-1]
    assert taken is not None and -1 == taken["2026/four/index.html"]
    assert len("damaged by hand") == taken["2026/five/index.html"]
    assert "feed.json" not in taken  # pages and media only


def test_a_small_sites_build_scans_in_place(site):
    """Below the threshold (a few posts' state), no child is forked."""
    site.post("one.md", title="One")
    build_site(site.root)
    assert not scan_ahead.start(site.root, site.root / ".o2m/build.db")


def _built(site) -> tuple[Path, Path]:  # noqa: ANN001
    """A small site built: its manifest and build/."""
    for n in range(5):
        site.post(f"p{n}.md", title=f"Post {n}", body=f"Body {n}.")
    assert [] == build_site(site.root).problems
    return site.root / ".o2m/build.db", site.build_dir


def test_the_childs_page_sizes_are_the_pages_as_they_are(site):
    """After its scan, the child gives the size of every HTML page (and media file)
    the manifest lists, as `sizes_now` takes it in place: -1 for a page deleted, the
    new size of one damaged; no other output (feeds, assets)."""
    db, out = _built(site)
    (out / "2026/p1/index.html").unlink()
    (out / "2026/p2/index.html").write_text("short")
    recorded = recorded_pages(db)

    ahead = ScanAhead(site.root, scan_sources, pages=lambda: sizes_now(out, recorded),
                      pages_of=(db, out))
    with ahead:
        ahead.result()
        ahead.check_state()
        sizes = ahead.page_sizes(db, out)

    assert sizes_now(out, recorded) == sizes
    assert -1 == sizes["2026/p1/index.html"] and 5 == sizes["2026/p2/index.html"]
    assert "index.html" in sizes and "feed.json" not in sizes
    assert {"feed.json", "atom.xml"} & set(Manifest(db).outputs())


def test_recorded_pages_lists_the_html_and_media_outputs_read_only(site):
    """`recorded_pages`: the HTML and media outputs of the manifest's rows, read without
    writing (no manifest there: an sqlite3 error, which the child turns into no answer)."""
    db, _ = _built(site)
    site.write("content/photo.png", b"\x89PNG not really")
    site.post("pic.md", title="Pic", body="![a photo](photo.png)")
    assert [] == build_site(site.root).problems
    before = db.stat().st_mtime_ns
    outputs = Manifest(db).outputs()
    expected = sorted(p for p in outputs if p.endswith(".html") or p.startswith("media/"))
    assert any(p.startswith("media/") for p in expected)
    assert "feed.json" in outputs and "feed.json" not in expected

    assert expected == sorted(recorded_pages(db))
    assert before == db.stat().st_mtime_ns
    with pytest.raises(sqlite3.Error):
        recorded_pages(site.root / ".o2m/none.db")


def test_page_sizes_of_another_manifest_or_folder_are_not_given(site, monkeypatch):
    """The sizes are given only for the manifest and folder the child read (a preview
    build of drafts, say, stats its own pages in place)."""
    db, out = _built(site)
    monkeypatch.setattr(scan_ahead, "MIN_STATE_BYTES", 0)
    for other in ((db, site.root / ".o2m/preview"), (site.root / ".o2m/preview.db", out)):
        ahead = scan_ahead.start(site.root, db, out)
        assert ahead is not None
        with ahead:
            ahead.result()
            assert ahead.page_sizes(*other) is None
    with scan_ahead.start(site.root, db, out) as ahead:  # (the same, to show they come)
        ahead.result()
        ahead.check_state()
        assert "index.html" in ahead.page_sizes(db, out)


def _pages_fail(parent: int, how: str):  # noqa: ANN202
    def pages() -> dict[str, int]:
        if os.getpid() != parent:
            if how == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError("the child's check of the pages failed")
        return {}
    return pages


@pytest.mark.parametrize("how", ["raises", "killed"])
def test_a_child_that_fails_on_the_pages_gives_its_scan_and_no_sizes(tmp_path, how):
    """A child whose check of the pages raised, or that was killed then, has given its
    scan already: the parent takes it, gets no sizes (so stats the pages itself), and
    the child is reaped."""
    _tree(tmp_path)
    ahead = ScanAhead(tmp_path, scan_sources, pages=_pages_fail(os.getpid(), how),
                      pages_of=(tmp_path / "db", tmp_path / "build"))
    pid = ahead._pid  # noqa: SLF001 - the child this test watches

    found, _ = ahead.result()
    assert _plain(scan_sources(tmp_path)[0]) == _plain(found)
    assert ahead.page_sizes(tmp_path / "db", tmp_path / "build") is None
    ahead.close()
    assert _child_gone(pid)


@pytest.mark.parametrize("scan", [_fails_in_the_child, _killed_in_the_child])
def test_a_child_that_fails_on_the_scan_gives_no_sizes(tmp_path, scan):
    """A child with no scan to give has no sizes either: both are done in place."""
    _tree(tmp_path)
    ahead = ScanAhead(tmp_path, scan(os.getpid()), pages=lambda: {"index.html": 1},
                      pages_of=(tmp_path / "db", tmp_path / "build"))

    assert _plain(scan_sources(tmp_path)[0]) == _plain(ahead.result()[0])
    assert ahead.page_sizes(tmp_path / "db", tmp_path / "build") is None
    ahead.close()


def test_an_answer_cut_short_is_no_answer():
    """An answer whose length is not the one it announced (a child that died while
    writing it) reads as none; a whole one reads as written."""
    read_end, write_end = os.pipe()
    os.write(write_end, (100).to_bytes(8, "big") + b"cut")
    os.close(write_end)
    assert b"" == scan_ahead.read_frame(read_end)
    os.close(read_end)

    read_end, write_end = os.pipe()
    os.write(write_end, scan_ahead._frame(b"whole") + b"\0\0")  # noqa: SLF001
    os.close(write_end)
    assert b"whole" == scan_ahead.read_frame(read_end)
    assert b"" == scan_ahead.read_frame(read_end)  # a length cut short
    os.close(read_end)


def test_a_closed_scan_ahead_gives_no_sizes(tmp_path):
    """Closed (`o2m build` closes it when it asked for the passphrase, which may have
    taken any time): the scan is done in place, and the pages are stat-ed in place."""
    _tree(tmp_path)
    ahead = ScanAhead(tmp_path, scan_sources, pages=lambda: {"index.html": 1},
                      pages_of=(tmp_path / "db", tmp_path / "build"))
    ahead.close()
    assert _plain(scan_sources(tmp_path)[0]) == _plain(ahead.result()[0])
    assert ahead.page_sizes(tmp_path / "db", tmp_path / "build") is None


def _outputs(out: Path, recorded: dict[str, int]) -> Outputs:
    old = {path: OutputState("d", "s", size) for path, size in recorded.items()}
    return Outputs(out, old, before_first_write=lambda: None)


def test_damaged_takes_the_sizes_ahead_and_stats_the_rest(tmp_path):
    """With sizes taken ahead, `damaged` compares them with the recorded sizes; a page
    they do not name is stat-ed in place; a page not recorded is damaged either way."""
    out = tmp_path / "build"
    out.mkdir()
    (out / "a.html").write_text("aaa")
    (out / "b.html").write_text("bbbb")
    outputs = _outputs(out, {"a.html": 3, "b.html": 3, "gone.html": 2, "moved.html": 9})
    outputs.sizes_ahead = {"a.html": 3, "gone.html": -1, "moved.html": 9}

    assert {"b.html", "gone.html", "new.html"} == outputs.damaged(
        ["a.html", "b.html", "gone.html", "moved.html", "new.html"])


def test_the_sizes_ahead_are_dropped_at_the_first_write(tmp_path):
    """Sizes taken before the build wrote anything are used until its first write, then
    every size is taken in place (a page it wrote has another size now)."""
    out = tmp_path / "build"
    out.mkdir()
    (out / "a.html").write_text("aaa")
    outputs = _outputs(out, {"a.html": 3})
    outputs.sizes_ahead = {"a.html": 5}
    assert outputs.needs("a.html", "d")  # the size taken ahead differs: made again

    outputs.put("b.html", "d", b"bb")

    assert outputs.sizes_ahead is None
    assert not outputs.needs("a.html", "d")  # its stat now


def test_a_build_that_renewed_the_card_checks_the_pages_in_place(tmp_path, scans_ahead):
    """`o2m build` that unlocked the key to sign a new card (a prompt may take any time)
    lets the child go: the pages are checked in place, and one deleted meanwhile is
    made again."""
    root = tmp_path / "ada"
    cli = CliRunner()
    assert 0 == cli.invoke(main, ["init", str(root), "--name", "Ada's notes", "--url",
                                  "https://ada.example/", "--author", "Ada"]).exit_code
    assert 0 == cli.invoke(main, ["-C", str(root), "build"]).exit_code
    page = root / "build/2026/hello-world/index.html"  # the sample post init writes
    (root / "o2m.toml").write_text((root / "o2m.toml").read_text().replace(
        'author = "Ada"', 'author = "Ada L."'))
    page.unlink()
    started, answers = len(scans_ahead), len(scans_ahead.sizes)

    result = cli.invoke(main, ["-C", str(root), "build"], catch_exceptions=False)

    assert 0 == result.exit_code, result.output
    assert "signed a new card" in result.stderr
    assert started + 1 == len(scans_ahead) and _child_gone(scans_ahead[-1])
    assert [None] == scans_ahead.sizes[answers:]
    assert "Ada L." in page.read_text()


def test_the_childs_work_imports_little(site):
    """What the child runs (the scan, the pages' listing and sizes) imports none of the
    build's heavy modules: each would be CPU the one-post edit pays for in the child."""
    db, out = _built(site)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "before = set(sys.modules)\n"
        "from o2m_pub.site import scan_ahead\n"
        "scan_ahead._scan_sources(Path(sys.argv[1]))\n"
        "scan_ahead._page_sizes(Path(sys.argv[2]), Path(sys.argv[3]))\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n")
    result = subprocess.run([sys.executable, "-c", script, str(site.root), str(db), str(out)],
                            capture_output=True, text=True, check=True)
    loaded = set(result.stdout.split())

    assert {"o2m_pub.site.scan", "sqlite3"} <= loaded
    heavy = {"jinja2", "markdown", "yaml", "o2m_pub.site.sources", "o2m_pub.site.manifest",
             "o2m_pub.site.model", "o2m_pub.site.outputs", "o2m_pub.site.plan", "hashlib"}
    assert set() == heavy & loaded


def test_a_preview_of_drafts_takes_the_sizes_of_its_own_pages(site, scans_ahead):
    """`o2m build --drafts` builds into .o2m/preview/ from its own manifest: the child
    stats those pages (a preview page deleted by hand is made again)."""
    site.post("one.md", title="One", body="Draft words.", draft="true")
    site.o2m("build", "--drafts")
    site.o2m("build", "--drafts")
    page = site.root / ".o2m/preview/2026/one/index.html"
    assert page.exists()
    page.unlink()

    site.o2m("build", "--drafts")

    taken = scans_ahead.sizes[-1]
    assert taken is not None and -1 == taken["2026/one/index.html"]
    assert "Draft words." in page.read_text()


def test_no_sizes_when_another_build_wrote_the_manifest_since_the_child_started(site,
                                                                                monkeypatch):
    """Another build (`o2m watch`'s) may run, or be killed midway, between the child's
    stats and this build's lock: it writes the manifest first (its mark of a build in
    progress), so a manifest changed since the child started means its sizes are not
    taken (the pages are stat-ed in place). A manifest only read meanwhile keeps them."""
    db, out = _built(site)
    monkeypatch.setattr(scan_ahead, "MIN_STATE_BYTES", 0)
    with scan_ahead.start(site.root, db, out) as ahead:
        ahead.result()
        reader = Manifest(db)  # read, as the build reads it
        reader.outputs()
        ahead.check_state()
        reader.set("in_progress", "1")  # this build's own writes come after the check
        reader.close()
        assert "index.html" in ahead.page_sizes(db, out)

    with scan_ahead.start(site.root, db, out) as ahead:
        ahead.result()
        writer = Manifest(db)  # another build marks itself in progress
        writer.set("in_progress", "1")
        writer.close()
        ahead.check_state()
        assert ahead.page_sizes(db, out) is None

    with scan_ahead.start(site.root, db, out) as ahead:  # never checked: none either
        ahead.result()
        assert ahead.page_sizes(db, out) is None
