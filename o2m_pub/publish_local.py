"""Publishing to a folder: a web server's root, a mounted share.

Each file is copied to a temporary name beside its target (`.~o2m-…`, a dotfile the
documented server configurations refuse to serve), synced to disk, given mode 0644 and
renamed over the target, so a reader sees the old file or the new one, never part of
one. Folders are made 0755. Before the record says a file is there, the folders it was
renamed in are synced too: the record never runs ahead of the disk.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

from .publish_plan import Batch, FileInfo
from .publish_target import Landed, Progress, PublishError, error_from_os
from .writer import TMP_PREFIX
from .writer import _before_write as _fault_point  # O2M_FAULT, for the fault tests

RECORD_EVERY = 256  # files copied between two updates of the record


class FolderTarget:
    """A local folder as the target."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = str(folder)
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
                _sync_dir(folder.parent)
            if interrupted:  # a publish killed midway may have left temporary files
                for dirpath, _, names in os.walk(folder):
                    for name in names:
                        if name.startswith(TMP_PREFIX):
                            os.unlink(os.path.join(dirpath, name))
        except OSError as e:
            raise error_from_os(e, self.key) from None

    def send(self, source: Path, batch: Batch, landed: Landed, progress: Progress) -> None:
        done: list[tuple[str, FileInfo]] = []
        dirs: set[Path] = set()
        try:
            for path, info in batch.files:
                self._copy(source / path, path, dirs)
                done.append((path, info))
                progress.advance(1, info.size)
                if len(done) >= RECORD_EVERY:
                    self._settle(dirs, done, landed)
        except OSError as e:
            self._settle_quietly(dirs, done, landed)
            raise error_from_os(e, self.key) from None
        except BaseException:  # interrupted: keep the record of what did land
            self._settle_quietly(dirs, done, landed)
            raise
        self._settle(dirs, done, landed)

    def _settle(self, dirs: set[Path], done: list[tuple[str, FileInfo]],
                landed: Landed) -> None:
        """Sync the folders renamed in, then record the files as on the target."""
        for d in sorted(dirs):
            _sync_dir(d)
        dirs.clear()
        if done:
            landed(list(done))
            done.clear()

    def _settle_quietly(self, dirs: set[Path], done: list[tuple[str, FileInfo]],
                        landed: Landed) -> None:
        try:
            self._settle(dirs, done, landed)
        except OSError:
            pass  # not recorded: sent again next time

    def _make_dirs(self, folder: Path, dirs: set[Path]) -> None:
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
            dirs.add(d.parent)
        self._made.add(folder)

    def _copy(self, src: Path, path: str, dirs: set[Path]) -> None:
        target = self.folder / path
        self._make_dirs(target.parent, dirs)
        tmp = target.with_name(f"{TMP_PREFIX}{target.name}.{os.getpid()}")
        try:
            _fault_point(str(target))
            fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd_in, "rb") as f_in, \
                    open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as f_out:
                shutil.copyfileobj(f_in, f_out, 1 << 20)
                f_out.flush()
                os.fchmod(f_out.fileno(), 0o644)
                os.fsync(f_out.fileno())
            _newer_than(tmp, target)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dirs.add(target.parent)

    def delete(self, paths: list[str], gone: Callable[[Iterable[str]], None]) -> None:
        dirs: set[Path] = set()
        try:
            for path in paths:
                target = self.folder / path
                target.unlink(missing_ok=True)
                folder = target.parent
                dirs.add(folder)
                while folder != self.folder:  # drop folders left empty
                    try:
                        folder.rmdir()
                    except OSError:
                        break
                    dirs.discard(folder)
                    folder = folder.parent
                    dirs.add(folder)
            for d in sorted(dirs):
                if d.is_dir():
                    _sync_dir(d)
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


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
