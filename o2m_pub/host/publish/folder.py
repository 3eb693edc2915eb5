"""Publishing to a folder: a web server's root, a mounted share.

Each file is copied to a temporary file beside its target (`_files.create_temporary`:
a random `.~o2m-…` name, a dotfile the documented server configurations refuse to
serve, never through a symlink), given mode 0644, synced to disk and only then renamed
over the target, so a reader sees the old file or the new one, never part of one.
Folders are made 0755. The renames are synced before the record says the files are
there: the record never runs ahead of the disk.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from o2m_pub import _faults
from o2m_pub._files import TMP_PREFIX, create_temporary, fsync_dir, sync_filesystem
from o2m_pub.host.publish.plan import Batch, FileInfo
from o2m_pub.host.publish.target import Landed, Progress, PublishError, error_from_os

CHUNK_FILES = 512  # files staged between two syncs (and updates of the record)
CHUNK_BYTES = 64 << 20  # or this many bytes: the space temporary copies may take


class FolderTarget:
    """A local folder as the target."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = str(folder)
        self.lists_cheaply = True  # checked against the record on every publish
        self._made: set[Path] = set()

    def __str__(self) -> str:
        return str(self.folder)

    def prepare(self, *, interrupted: bool) -> None:
        folder = self.folder
        try:
            if folder.exists() and not folder.is_dir():
                raise PublishError(f"{folder}: not a folder",
                                   hint="name a folder (or an rclone remote, name:path)")
            if not folder.exists():
                if not folder.parent.is_dir():
                    raise PublishError(f"{folder}: no such folder, nor its parent",
                                       hint="is the share mounted? check the path, or make "
                                       "the folder first")
                folder.mkdir(mode=0o755)
                os.chmod(folder, 0o755)
                fsync_dir(folder.parent)
            if interrupted:  # a publish killed midway may have left temporary files
                for dirpath, _, names in os.walk(folder):
                    for name in names:
                        if name.startswith(TMP_PREFIX):
                            os.unlink(os.path.join(dirpath, name))
        except OSError as e:
            raise error_from_os(e, self.key) from None

    def send(self, source: Path, batch: Batch, landed: Landed, progress: Progress) -> None:
        """Copy in chunks: write a chunk's files to temporary names, make their bytes
        durable with one sync of the file system, rename them all into place, sync
        again, and only then record them. One sync per chunk instead of one fsync per
        file: a thousand small pages cost milliseconds, not seconds, and no file is ever
        renamed into place before its bytes are on disk."""
        chunk: list[_Staged] = []
        size = 0
        try:
            for path, info in batch.files:
                chunk.append(self._stage(source / path, path, info))
                progress.advance(1, info.size)
                size += info.size
                if len(chunk) >= CHUNK_FILES or size >= CHUNK_BYTES:
                    self._commit(chunk, landed)
                    chunk, size = [], 0
            self._commit(chunk, landed)
        except OSError as e:
            _discard(chunk)
            raise error_from_os(e, self.key) from None
        except BaseException:  # interrupted: what was recorded stays recorded
            _discard(chunk)
            raise

    def _stage(self, src: Path, path: str, info: FileInfo) -> "_Staged":
        """Copy one file beside its target under a temporary (dot) name, mode 0644."""
        target = self.folder / path
        self._make_dirs(target.parent)
        _faults.before_write(str(target))
        with open(os.open(src, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f_in:
            tmp, fd_out = create_temporary(target, 0o644)
            try:
                with open(fd_out, "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out, 1 << 20)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return _Staged(path, info, tmp, target)

    def _commit(self, chunk: list["_Staged"], landed: Landed) -> None:
        if not chunk:
            return
        # (one folder of the target may be another file system: a mount, a symlink)
        devices = {os.stat(s.tmp.parent).st_dev: s.tmp.parent for s in chunk}
        for folder in devices.values():  # the bytes first...
            sync_filesystem(folder)
        for staged in chunk:
            _newer_than(staged.tmp, staged.target)
            os.replace(staged.tmp, staged.target)
        for folder in devices.values():  # ...then the names
            sync_filesystem(folder)
        landed([(s.path, s.info) for s in chunk])

    def _make_dirs(self, folder: Path) -> None:
        if folder in self._made:
            return
        missing = []
        probe = folder
        while probe != self.folder and not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for d in reversed(missing):
            d.mkdir(mode=0o755)
            os.chmod(d, 0o755)
        self._made.add(folder)

    def delete(self, paths: list[str], gone: Callable[[Iterable[str]], None]) -> None:
        try:
            for path in paths:
                target = self.folder / path
                target.unlink(missing_ok=True)
                folder = target.parent
                while folder != self.folder:  # drop folders left empty
                    try:
                        folder.rmdir()
                    except OSError:
                        break
                    folder = folder.parent
            sync_filesystem(self.folder)
        except OSError as e:
            raise error_from_os(e, self.key) from None
        gone(paths)

    def listing(self) -> dict[str, int]:
        if not self.folder.is_dir():
            return {}
        found = {}
        try:
            for dirpath, _, names in os.walk(self.folder):
                rel = Path(dirpath).relative_to(self.folder).as_posix()
                for name in names:
                    if name.startswith(TMP_PREFIX):
                        continue
                    full = os.path.join(dirpath, name)
                    found[name if rel == "." else f"{rel}/{name}"] = os.lstat(full).st_size
        except OSError as e:
            raise error_from_os(e, self.key) from None
        return found


@dataclass(frozen=True)
class _Staged:
    path: str
    info: FileInfo
    tmp: Path
    target: Path


def _discard(chunk: list[_Staged]) -> None:
    for staged in chunk:
        try:
            staged.tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _newer_than(tmp: Path, target: Path) -> None:
    """Give a replacing file a later whole-second mtime than the file it replaces.

    nginx and others derive `ETag` and `Last-Modified` from the mtime in seconds and the
    size; a padded head rewritten within the same second keeps its size, so without this
    a cache revalidating it would be told "304 Not Modified" and keep the old head."""
    try:
        old = int(os.stat(target).st_mtime)
    except FileNotFoundError:
        return
    if int(time.time()) <= old:
        os.utime(tmp, (old + 1, old + 1))
