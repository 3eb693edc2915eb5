"""The scan of content/ done by a forked child while the build reads its state
(`scan_ahead.ScanAhead`): the same result as the scan done in place, the scan done in
place whenever the child has none to give, and no child left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from o2m_pub.site import scan_ahead
from o2m_pub.site.build import build_site
from o2m_pub.site.scan_ahead import ScanAhead
from o2m_pub.site.sources import scan_sources

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


@pytest.fixture
def scans_ahead(monkeypatch) -> list[int | None]:
    """The threshold lowered to any site's state; the pid of each child started."""
    started: list[int | None] = []

    class Watched(ScanAhead):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, **kwargs)
            started.append(self._pid)

    monkeypatch.setattr(scan_ahead, "MIN_STATE_BYTES", 0)
    monkeypatch.setattr(scan_ahead, "ScanAhead", Watched)
    return started


@pytest.mark.parametrize("how", ["build_site", "o2m build"])
def test_a_big_sites_one_off_build_scans_ahead_and_sees_edits(site, scans_ahead, how):
    """With the size threshold lowered to any site, a one-off build (`build_site`, and
    `o2m build`, which starts the child before its imports) scans through a child: an
    edit, a new post and a deleted one are all seen, as without."""
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


def test_a_small_sites_build_scans_in_place(site):
    """Below the threshold (a few posts' state), no child is forked."""
    site.post("one.md", title="One")
    build_site(site.root)
    assert not scan_ahead.start(site.root, site.root / ".o2m/build.db")
