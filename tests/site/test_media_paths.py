"""The media checks (`site/media_paths.py`, THREATS.md 38): the one-`lstat` path says
yes only for a regular file in a folder inside content/, and agrees with the full check
and with `os.path.realpath` on folders reached through symlinks, `..` and missing ones."""

from __future__ import annotations

import os
from pathlib import Path

from o2m_pub.site.media_paths import MediaPaths


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    content = root / "content"
    (content / "2026/trip").mkdir(parents=True)
    (content / "2026/trip/photo.jpg").write_bytes(b"jpg")
    (content / "shared").mkdir()
    (content / "shared/logo.png").write_bytes(b"png")
    (root / "secret.txt").write_text("secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/x.png").write_bytes(b"x")
    os.symlink(content / "shared", content / "2026/linked")  # a folder inside
    os.symlink(tmp_path / "outside", content / "2026/away")  # a folder outside
    os.symlink(content / "shared/logo.png", content / "2026/trip/logo.png")  # file inside
    os.symlink(root / "secret.txt", content / "2026/trip/secret.txt")  # file outside
    return root


def test_a_plain_file_inside_content_takes_one_lstat_and_others_go_to_the_full_check(tmp_path):
    """plain_stat gives the lstat of a regular file in a folder inside content/ (also
    through a symlinked folder that stays inside), and None for a symlinked file, a
    folder, a missing file, a file outside content/ by `..` or through a symlinked
    folder; problem() then says why, or nothing for a symlink that stays inside."""
    root = _tree(tmp_path)
    media = MediaPaths(root, root / "content")
    for ok in ("content/2026/trip/photo.jpg", "content/2026/linked/logo.png"):
        st = media.plain_stat(ok)
        assert st is not None and os.lstat(root / ok).st_ino == st.st_ino
        assert media.problem(ok) is None
    assert media.plain_stat("content/2026/trip/logo.png") is None
    assert media.problem("content/2026/trip/logo.png") is None
    for outside in ("content/2026/away/x.png", "content/../secret.txt",
                    "content/2026/trip/secret.txt"):
        assert media.plain_stat(outside) is None
        assert f"{outside} is outside content/, not published" == media.problem(outside)
    for missing in ("content/2026/trip/gone.jpg", "content/2026/trip", "content/none/x.png"):
        assert media.plain_stat(missing) is None
        assert f"links to {missing}, which does not exist" == media.problem(missing)


def test_real_folders_are_the_systems_real_paths(tmp_path):
    """A folder's real path made from its parent's equals os.path.realpath, for plain
    folders, symlinked ones, `..`, a missing folder, and the same asked twice."""
    root = _tree(tmp_path)
    media = MediaPaths(root, root / "content")
    for rel in ("content/2026/trip", "content/2026/linked", "content/2026/away",
                "content/2026/trip/..", "content/missing/deeper", "content/2026/trip", ""):
        folder = os.path.join(str(root), rel) if rel else str(root)
        assert os.path.realpath(folder) == media.real_folder(folder)
