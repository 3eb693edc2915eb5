"""The file-system primitives every part shares: durable writes and the site lock.

`write_file` is the one way o2m replaces a file. Every writer (the key file, friends'
cards, the certificate, the build, the reader's attachment cache) goes through it, and
a folder being published to stages its copies with the same `create_temporary`, so a
crash, a kill or a full disk leaves the old file or the new one, never a torn one, and
never a file reached through a planted symlink (THREATS.md 46, 48).

Durability comes in two grains: `write_file` fsyncs the file and its folder (one file
that matters: a key, a card); the build and a folder publish write thousands of files
with `sync=False` and make a whole phase durable at once with `sync_filesystem`.
"""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from o2m_pub.errors import O2MError, SiteError

TMP_PREFIX = ".~o2m-"  # a dotfile: never served, never published, ignored by the watch
LOCK_NAME = "build.lock"


def temporary_name(target: Path) -> Path:
    """A fresh name beside `target` for its next version: random, so two writers (or a
    stale file left by a crash) never collide, and under `TMP_PREFIX` so every part of
    o2m knows it for litter."""
    return target.with_name(f"{TMP_PREFIX}{secrets.token_hex(8)}.{target.name}")


def create_temporary(target: Path, mode: int) -> tuple[Path, int]:
    """Create the next version of `target` beside it, under a fresh `temporary_name`.

    O_EXCL|O_NOFOLLOW: never an existing file, never through a planted symlink; the
    mode is exactly `mode` whatever the umask.

    Returns:
        The temporary path and a file descriptor open for writing; the caller closes it,
        and renames or removes the file.
    """
    tmp = temporary_name(target)
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return tmp, fd


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot fsync a folder
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_file(target: Path, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Replace `target` with `data`, all or nothing.

    The new file is created with O_EXCL|O_NOFOLLOW beside the target (so never through a
    planted symlink), given exactly `mode` whatever the umask, written, fsynced and
    renamed over the target; then the folder is fsynced. With `sync=False` both fsyncs
    are left to the caller (the build syncs once per phase instead of once per file).
    On any failure, ENOSPC included, the temporary file is removed and the old file is
    intact.
    """
    tmp, fd = create_temporary(target, mode)
    try:
        try:
            _write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        fsync_dir(target.parent)


@functools.cache
def _syncfs():  # noqa: ANN202 - the C function, or None where there is none
    import ctypes  # only when a build or a publish syncs: not in every command's start-up
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def sync_filesystem(folder: Path) -> None:
    """Make everything written so far to the file system that holds `folder` durable:
    the bytes of every file and every rename. Linux syncfs(2) flushes that one file
    system (not every disk of the machine, as sync(2) does) and, unlike sync(2),
    reports a write-back failure such as a full disk (Linux 5.8 and later); elsewhere
    it falls back to sync(2).

    Raises:
        OSError: the file system could not write back what it was given.
    """
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if syncfs(fd) != 0:
            import ctypes
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(folder))
    finally:
        os.close(fd)


@contextmanager
def site_lock(state_dir: Path, *, wait: bool = False,
              error: type[O2MError] = SiteError) -> Iterator[None]:
    """One writer or reader of a whole `build/` at a time per site: a build (a watcher
    and a manual build may race) or a publish (which must not send half of a rebuilt
    `build/`). With `wait`, queue behind the other instead of failing; `error` is the
    class raised when busy (a publish reports a `PublishError`). The state folder holds
    the keys of private posts (PROTOCOL.md §3.3): it is private, 0700."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    with open(state_dir / LOCK_NAME, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise error("an o2m build or publish is running in this site",
                        hint="wait for it to finish, or stop the other o2m process") from None
        yield
