"""The scan of content/ done ahead, by a forked child, while the build reads its state.

A build must `stat` every post to find what changed since the last one (on a
10,000-post site, about 35 ms of system calls), and read the last build's state
(about 50 ms). Neither needs the other until they are compared, so a one-off build of
a big site forks a child that scans while the parent reads the state, on the second
core, and hands over its result through a pipe: a one-post edit in a fresh process
ends that much sooner. Only the time on the clock is saved, not CPU; a small site
scans faster than a fork costs, and scans here. `o2m build` starts it first thing,
before its imports and the card check, so that it overlaps them too.

The child's result is the scan's own (`sources.scan_sources`), taken before any post
is read, as the build always takes it. Anything going wrong with the child (no fork
on this system, the child died, its answer is cut short or damaged) means the scan is
done again here: the build sees the same either way.
"""

from __future__ import annotations

import marshal
import os
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple

# the last build's state from which a scan ahead pays: about 1,000 posts' (at 10,000 it
# saves 35 ms; a fork costs 1-3 ms)
MIN_STATE_BYTES = 8 << 20
_PIPE_BYTES = 1 << 20  # the child's answer fits: it writes it and is gone


class FileStat(NamedTuple):
    """What a build reads of a post's stat (the names of `os.stat_result`'s fields)."""

    st_mtime_ns: int
    st_size: int


Stats = dict[str, "FileStat | os.stat_result"]
Scan = Callable[[Path], "tuple[Stats, list[str]]"]


def start(root: Path, state_file: Path) -> ScanAhead | None:
    """A scan ahead of the site at `root` when its last build's state (`state_file`)
    is big enough for it to pay, else None."""
    try:
        big = os.stat(state_file).st_size >= MIN_STATE_BYTES
    except OSError:
        return None
    return ScanAhead(root) if big else None


def _scan_sources(root: Path) -> tuple[Stats, list[str]]:
    from o2m_pub.site.sources import scan_sources  # (the build imports it anyway)
    return scan_sources(root)


class ScanAhead:
    """`scan(root)`, started now in a forked child; `result()` waits for it.

    Use it as a context manager, or call `close`: a build that fails before asking for
    the result must still reap the child.
    """

    def __init__(self, root: Path, scan: Scan = _scan_sources) -> None:
        self.root, self._scan = root, scan
        self._pid: int | None = None
        self._fd: int | None = None
        if not hasattr(os, "fork"):
            return
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:
            _child(root, scan, read_end, write_end)  # never returns
        os.close(write_end)
        try:
            import fcntl
            fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except (ImportError, AttributeError, OSError):  # not Linux, or over the limit
            pass
        self._pid, self._fd = pid, read_end

    def __enter__(self) -> "ScanAhead":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def result(self) -> tuple[Stats, list[str]]:
        """The child's scan, or, when it has none to give, a scan done here now. (The
        answer is taken as soon as it is whole, without waiting for the child's exit,
        which takes a few ms to let go of its memory: `close` reaps it later.)"""
        if self._fd is None:
            return self._scan(self.root)
        try:
            data = _read_all(self._fd)
        except OSError:
            data = b""
        self._close_pipe()
        self._reap(wait=False)
        try:
            return _decode(data)
        except (EOFError, ValueError, TypeError):
            return self._scan(self.root)

    def close(self) -> None:
        """Let the child go (it stops at its next write if unread) and reap it."""
        self._close_pipe()
        self._reap(wait=True)

    def _close_pipe(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _reap(self, wait: bool) -> None:
        if self._pid is None:
            return
        try:
            pid, _ = os.waitpid(self._pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            pid = self._pid
        if pid:
            self._pid = None


def _child(root: Path, scan: Scan, read_end: int, write_end: int) -> None:
    """The forked child: scan, write the answer, and leave at once (no cleanup of the
    parent's state it shares, no atexit handlers, no buffered output flushed twice)."""
    code = 1
    try:
        os.close(read_end)
        found, warnings = scan(root)
        view = memoryview(_encode(found, warnings))
        while view:
            view = view[os.write(write_end, view):]
        os.close(write_end)  # the parent's end of file now, not after the exit's cleanup
        code = 0
    except BaseException:  # noqa: BLE001 - whatever it was, the parent scans again
        pass
    finally:
        os._exit(code)


def _encode(found: Stats, warnings: list[str]) -> bytes:
    """The answer, its length first: a child that dies midway leaves it short."""
    data = marshal.dumps((tuple(found), tuple(s.st_mtime_ns for s in found.values()),
                          tuple(s.st_size for s in found.values()), tuple(warnings)))
    return len(data).to_bytes(8, "big") + data


def _decode(data: bytes) -> tuple[Stats, list[str]]:
    if len(data) < 8 or int.from_bytes(data[:8], "big") != len(data) - 8:
        raise ValueError("cut short")
    names, mtimes, sizes, warnings = marshal.loads(memoryview(data)[8:])
    if not len(names) == len(mtimes) == len(sizes):
        raise ValueError("columns of different lengths")
    stat = partial(tuple.__new__, FileStat)
    return dict(zip(names, map(stat, zip(mtimes, sizes)))), list(warnings)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
