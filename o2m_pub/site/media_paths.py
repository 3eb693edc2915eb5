"""Which files a post may publish as its media: a file inside content/, symlinks
resolved (THREATS.md 38), found with as few system calls as the check allows.

A post's media mostly sit beside it, in its bundle's folder: each folder's real path is
made once, from its parent's (one `lstat` a folder, where `os.path.realpath` walks every
folder from / with one each), and a regular file in such a folder needs one `lstat`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def unreadable(ref: str, error: OSError) -> str:
    """What a build says of a media file it may not read (a warning: the post is
    published without it, as without a missing file, and gets it at the first build
    that can read it)."""
    why = (error.strerror or str(error)).lower()
    return f"cannot read {ref} ({why}), not published: check who may read it, then build again"


class MediaPaths:
    """The checks of one build (its folders' real paths are remembered for the build).

    Args:
        root: the site's folder.
        content: its content/ folder.
    """

    def __init__(self, root: Path, content: Path) -> None:
        self.root = str(root)
        self.real_content = os.path.realpath(content) + os.sep
        self._real_folders: dict[str, str] = {}

    def problem(self, ref: str) -> str | None:
        """Why the file `ref` (a path from the site's folder) cannot be published, or
        None: it must be a file inside content/, symlinks resolved."""
        real = self.realpath(os.path.join(self.root, ref))
        if not real.startswith(self.real_content):
            return f"{ref} is outside content/, not published"
        if not os.path.isfile(real):
            return f"links to {ref}, which does not exist"
        return None

    def plain_stat(self, ref: str) -> os.stat_result | None:
        """The stat of `ref` when one `lstat` shows it publishable (a regular file, no
        symlink, in a folder inside content/: `problem`'s checks without its three
        system calls); None otherwise, and then `problem` says."""
        path = os.path.join(self.root, ref)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        inside = (self.real_folder(os.path.dirname(path)) + os.sep).startswith(self.real_content)
        return st if inside and stat.S_ISREG(st.st_mode) else None

    def realpath(self, path: str) -> str:
        """os.path.realpath, its folder's part remembered."""
        folder, name = os.path.split(path)
        if os.path.islink(path) or name in ("", ".", ".."):
            return os.path.realpath(path)
        return os.path.join(self.real_folder(folder), name)

    def real_folder(self, folder: str) -> str:
        """os.path.realpath of a folder, made from its parent's, remembered."""
        real = self._real_folders.get(folder)
        if real is None:
            parent, name = os.path.split(folder)
            if name in ("", ".", "..") or os.path.islink(folder):
                real = os.path.realpath(folder)
            else:
                real = os.path.join(self.real_folder(parent), name)
            self._real_folders[folder] = real
        return real
