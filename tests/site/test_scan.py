"""The scan of content/ (`scan.scan_sources`): every post with its stat, in the order
of the folders' listings, plain files stat-ed together and symlinked ones one by one;
litter and files gone between the listing and the stat left out."""

from __future__ import annotations

import os
from pathlib import Path

from o2m_pub.site import scan
from o2m_pub.site.scan import scan_sources


def _post(path: Path, text: str = "---\ntitle: t\n---\nbody\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_post_is_found_with_its_own_stat_and_litter_is_not(tmp_path):
    """Plain posts, a post in a bundle, a symlink to a post inside content/ are found,
    each with the stat of the file it names; dotfiles, editors' files and a folder
    named like a post are not posts."""
    content = tmp_path / "content"
    for rel in ("2026/a.md", "2026/b.md", "2026/trip/index.md", "notes/c.md"):
        _post(content / rel, f"---\ntitle: {rel}\n---\n" + "x" * len(rel))
    for litter in ("2026/.a.md", "2026/#b.md#", "2026/b.md~", "2026/~$c.md", "2026/4913"):
        _post(content / litter)
    (content / "2026/folder.md").mkdir()
    _post(content / "2026/folder.md/inner.md")
    os.symlink(content / "notes/c.md", content / "2026/link.md")

    found, warnings = scan_sources(tmp_path)

    expected = {"content/2026/a.md", "content/2026/b.md", "content/2026/trip/index.md",
                "content/notes/c.md", "content/2026/link.md", "content/2026/folder.md/inner.md"}
    assert expected == set(found)
    assert [] == warnings
    for rel, st in found.items():
        assert os.stat(tmp_path / rel).st_size == st.st_size
        assert os.stat(tmp_path / rel).st_ino == st.st_ino


def test_posts_come_in_each_folders_listing_order_symlinks_in_place(tmp_path):
    """The order of a folder's posts is its listing's, a symlinked post in its place
    among the plain ones (the build renders and reports in this order)."""
    content = tmp_path / "content"
    for i in range(6):
        _post(content / f"2026/p{i}.md")
    _post(content / "other/target.md")
    os.symlink(content / "other/target.md", content / "2026/p6.md")

    found, _ = scan_sources(tmp_path)

    listing = [f"content/2026/{e.name}" for e in os.scandir(content / "2026")]
    assert listing == [p for p in found if p.startswith("content/2026/")]


def test_a_post_gone_between_the_listing_and_its_stat_is_left_out(tmp_path):
    """A file deleted after the folder was listed (an editor's rename) is no post; the
    others of its folder keep their stats, in order."""
    folder = tmp_path / "content" / "2026"
    for name in ("a.md", "b.md", "c.md"):
        _post(folder / name)
    (folder / "b.md").unlink()

    got = list(scan._stat_posts(str(folder), "content/2026", ["a.md", "b.md", "c.md"]))

    assert ["content/2026/a.md", "content/2026/c.md"] == [rel for rel, _ in got]
    assert os.stat(folder / "c.md").st_ino == got[1][1].st_ino
