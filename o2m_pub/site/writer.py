"""Atomic, contained writes into an output folder.

Every file is written by `_files.write_file` (a temporary file of a random name in its
own folder, renamed over the target), so a reader of `build/` sees the old file or the
new one, never half of one, and two writers never share a temporary file. Files are
not synced one by one: phases are separated by one sync of the output's file system
(`barrier`), so a page is durable only after everything it links to is (objects and
media, then pages, then indexes and feeds) at the cost of one flush per phase. A phase
that wrote or deleted only a few files (a one-post edit: one page) syncs those files
and their folders instead: a sync of the whole file system also waits for whatever
else the machine is writing (10 to 120 ms for one page where another build ran).
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from o2m_pub import _faults
from o2m_pub._files import TMP_PREFIX, fsync_dir, sync_filesystem, write_file

OUTPUT_MODE = 0o644  # served to anyone: readable by the web server, whatever the umask
# about the most files a phase may change for its barrier to sync them one by one: up
# to twice this many files and folders (a page and its folder: 32 pages), each an
# fsync; past this, one sync of the whole file system is cheaper
SYNC_EACH_MAX = 32


class OutsideOutputError(ValueError):
    """An output path would land outside the output folder."""


def safe_relative(path: str) -> str:
    """Check a site-relative output path: no "..", no absolute path, no NUL, no backslash."""
    if "\x00" in path or "\\" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise OutsideOutputError(f"refusing to write outside the output folder: {path!r}")
    return path


class AtomicWriter:
    """Writes files under `root` by temp file and rename; counts what it did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        made = not root.is_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = Path(os.path.realpath(root))
        self._made_dirs: set[str] = set()
        self.written = 0
        self.deleted = 0
        self._dirty = False
        # what this phase changed, to sync one by one at the barrier; None: too much,
        # or other processes wrote too (the whole file system is synced)
        self._files: list[Path] | None = None if made else []  # (root's parents: all)
        self._folders: set[Path] = set()
        self.last_sync: tuple[list[Path], list[Path]] | None = None  # (the tests read it)

    def _contained(self, folder: Path, path: str) -> None:
        """Refuse a path whose existing part leads out of the output folder (a symlink
        planted in build/): checked before anything is made or removed through it."""
        probe = folder
        while not probe.exists() and probe != self.root:
            probe = probe.parent
        if not Path(os.path.realpath(probe)).is_relative_to(self._real_root):
            raise OutsideOutputError(f"refusing to write through a symlink: {path!r}")

    def _target(self, path: str) -> Path:
        target = self.root / safe_relative(path)
        self._folder(posixpath.dirname(path), path)
        return target

    def _folder(self, folder: str, path: str) -> None:
        """Make `folder` (relative to the root) and its parents, refusing to go through
        a symlink that leads out. A folder found or made here is checked by one
        ``lstat``: one that is not a symlink, inside a checked parent, is inside the
        root; only a symlink is resolved whole (a page per folder made that check,
        twice per page, a sixth of writing the pages)."""
        if folder in self._made_dirs or folder == "":
            return
        self._folder(posixpath.dirname(folder), path)
        where = self.root / folder
        try:
            os.mkdir(where)
            self._changed(None, where.parent)  # its new entry: synced at the barrier
        except FileExistsError:
            pass
        mode = os.lstat(where).st_mode
        if stat.S_ISLNK(mode):
            self._contained(where, path)
            where.mkdir(parents=True, exist_ok=True)  # a symlink to a file: refused here
            self._files = None  # what it made through the link is not listed: sync all
        elif not stat.S_ISDIR(mode):
            raise FileExistsError(f"a file stands where a folder goes: {folder!r}")
        self._made_dirs.add(folder)

    def write(self, path: str, data: bytes) -> None:
        """Replace `path` with `data`, all or nothing; durable at the next `barrier`."""
        target = self._target(path)
        _faults.before_write(str(target))
        write_file(target, data, OUTPUT_MODE, sync=False)
        self.written += 1
        self._dirty = True
        self._changed(target)

    def delete(self, path: str) -> None:
        target = self.root / safe_relative(path)
        self._contained(target.parent, path)
        try:
            target.unlink()
        except FileNotFoundError:
            return
        self.deleted += 1
        self._dirty = True
        self._changed(None, target.parent)
        folder = target.parent
        while folder != self.root:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break
            folder = folder.parent
            self._changed(None, folder)

    def _changed(self, file: Path | None, folder: Path | None = None) -> None:
        """Note a file written (or a folder that lost an entry) for the barrier."""
        if self._files is None:
            return
        if file is not None:
            self._files.append(file)
        self._folders.add(folder or file.parent)  # type: ignore[union-attr]
        if len(self._files) + len(self._folders) > 2 * SYNC_EACH_MAX:
            self._files = None

    def mark_dirty(self) -> None:
        """Other processes wrote through this writer's folder: flush at the next barrier."""
        self._dirty = True
        self._files = None  # what they wrote is not listed here

    def barrier(self) -> None:
        """Make everything written so far durable before the next phase starts: each
        file written and each folder changed, when the phase changed a few (up to twice
        `SYNC_EACH_MAX` files and folders), else one sync of the output's file system,
        which also covers what worker processes wrote (see `_files.sync_filesystem`).

        Raises:
            OSError: the file system failed to write some of it back (a full disk).
        """
        if not self._dirty:
            return
        if self._files is None:
            sync_filesystem(self.root)
            self.last_sync = None
        else:
            for path in self._files:  # the bytes first, then the names that lead to them
                _fsync_file(path)
            folders = sorted(self._folders, key=lambda f: len(f.parts), reverse=True)
            for folder in folders:
                try:
                    fsync_dir(folder)
                except FileNotFoundError:  # removed since (its parent is listed too)
                    pass
            self.last_sync = (self._files, folders)
        self._dirty = False
        self._files, self._folders = [], set()

    def remove_stale_temporaries(self) -> int:
        """After a build that was killed: remove temporary files it left behind."""
        count = 0
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    os.unlink(os.path.join(dirpath, name))
                    count += 1
        return count


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # deleted since (its folder is synced)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
