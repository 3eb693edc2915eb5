"""Atomic, contained writes (writer.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.site.writer import AtomicWriter, OutsideOutputError, safe_relative


@given(st.text(max_size=40))
def test_no_accepted_path_escapes_the_output_folder(path):
    """Whatever the path, an accepted one stays inside (compare Pelican's prefix bug)."""
    try:
        rel = safe_relative(path)
    except OutsideOutputError:
        return
    root = "/srv/out"
    full = os.path.normpath(os.path.join(root, rel))
    assert full.startswith(root + "/")


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a\x00b", "a\\..\\b", "",
                                  "a//b", "./a"])
def test_bad_paths_are_refused(tmp_path, path):
    with pytest.raises(OutsideOutputError):
        AtomicWriter(tmp_path / "out").write(path, b"x")


def test_write_through_a_symlinked_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path, out / "link")
    with pytest.raises(OutsideOutputError):
        AtomicWriter(out).write("link/evil.html", b"x")
    assert not (tmp_path / "evil.html").exists()


def test_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    w = AtomicWriter(tmp_path)
    w.write("a/b.html", b"one")
    inode = (tmp_path / "a/b.html").stat().st_ino
    w.write("a/b.html", b"two")
    assert (tmp_path / "a/b.html").read_bytes() == b"two"
    assert (tmp_path / "a/b.html").stat().st_ino != inode  # renamed over, not rewritten
    assert os.listdir(tmp_path / "a") == ["b.html"]


def test_delete_removes_empty_folders(tmp_path):
    w = AtomicWriter(tmp_path)
    w.write("x/y/z.html", b"1")
    w.delete("x/y/z.html")
    assert not (tmp_path / "x").exists() and tmp_path.exists()
