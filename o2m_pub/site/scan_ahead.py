"""The scan of content/ and the check of the pages done ahead, by a forked child,
while the build reads its state.

A build must `stat` every post to find what changed since the last one (on a
10,000-post site, about 35 ms of system calls), `stat` every page the last build
recorded to find those deleted or damaged by hand (13,536 pages, about 33 ms), and
read the last build's state (about 50 ms). None needs another until they are
compared, so a one-off build of a big site forks a child that does the `stat`s while
the parent reads the state, on the second core, and hands over its results through a
pipe: a one-post edit in a fresh process ends that much sooner. Only the time on the
clock is saved, not CPU; a small site scans faster than a fork costs, and scans here.
`o2m build` starts it first thing, before its imports and the card check, so that it
overlaps them too.

The child's results are the scan's own (`scan.scan_sources`), taken before any post
is read, as the build always takes it; then the size of each HTML page and media
file the manifest lists (`scan.sizes_now`, on a read-only connection of the child's own), which the
build compares with the sizes in its own reading of the manifest: a page the child did
not stat (recorded since, or its `stat` failed) is stat-ed in place. Anything going
wrong with the child (no fork on this system, the child died, an answer cut short or
damaged) means that part is done again here: the build sees the same either way.
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
_PIPE_BYTES = 1 << 20  # the scan's answer fits: the child goes on to the pages at once


class FileStat(NamedTuple):
    """What a build reads of a post's stat (the names of `os.stat_result`'s fields)."""

    st_mtime_ns: int
    st_size: int


Stats = dict[str, "FileStat | os.stat_result"]
Scan = Callable[[Path], "tuple[Stats, list[str]]"]
Sizes = Callable[[], "dict[str, int]"]  # page -> its size now (-1: not there)


def start(root: Path, state_file: Path, out_dir: Path | None = None) -> ScanAhead | None:
    """A scan ahead of the site at `root` when its last build's state (`state_file`)
    is big enough for it to pay, else None; with `out_dir`, the sizes of the pages the
    state lists there too."""
    try:
        big = os.stat(state_file).st_size >= MIN_STATE_BYTES
    except OSError:
        return None
    if not big:
        return None
    return ScanAhead(root, pages_of=(state_file, out_dir) if out_dir is not None else None)


def state_stamp(state_file: Path) -> tuple:
    """What changes when a build writes its state (`state_file`, an SQLite database in
    WAL mode): the database's mtime and size, and its log's unless the log is empty or
    absent (a reader may make an empty one; a writer leaves it non-empty until the
    last connection checkpoints it into the database, which changes the database)."""
    try:
        main = os.stat(state_file)
    except OSError:
        return ()
    try:
        log = os.stat(f"{state_file}-wal")
        logged = (log.st_mtime_ns, log.st_size) if log.st_size else None
    except OSError:
        logged = None
    return main.st_mtime_ns, main.st_size, logged


def _scan_sources(root: Path) -> tuple[Stats, list[str]]:
    from o2m_pub.site.scan import scan_sources  # (light: the child's only import)
    return scan_sources(root)


def _page_sizes(state_file: Path, out_dir: Path) -> dict[str, int]:
    from o2m_pub.site.scan import recorded_pages, sizes_now
    return sizes_now(out_dir, recorded_pages(state_file))


class ScanAhead:
    """`scan(root)`, then `pages()`, started now in a forked child; `result()` and
    `page_sizes()` wait for each.

    Use it as a context manager, or call `close`: a build that fails before asking for
    the results must still reap the child. After `close`, `result()` scans in place
    and `page_sizes()` has none.
    """

    def __init__(self, root: Path, scan: Scan = _scan_sources, *,
                 pages_of: tuple[Path, Path] | None = None, pages: Sizes | None = None) -> None:
        self.root, self._scan = root, scan
        self._pid: int | None = None
        self._fd: int | None = None
        self._scanned = False  # the scan's answer was taken (the pages' comes next)
        self.pages_of = pages_of  # (the manifest, build/) whose pages the child stats
        if pages is None and pages_of is not None:  # (the tests give theirs)
            pages = partial(_page_sizes, *pages_of)
        self._pages = pages is not None
        # the manifest before the child's stats: another build (`o2m watch`'s, done or
        # killed before this one takes the site's lock) changes it, and the pages
        self._stamp = state_stamp(pages_of[0]) if pages_of is not None else ()
        self._state_unchanged = False  # seen by `check_state`, under the site's lock
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
            _child(root, scan, pages, read_end, write_end)  # never returns
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
        if self._fd is None or self._scanned:
            return self._scan(self.root)
        self._scanned = True
        data = read_frame(self._fd)
        if not self._pages:
            self._done()
        try:
            return _decode(data)
        except (EOFError, ValueError, TypeError):
            self._done()  # (a child that got the scan wrong says nothing more)
            return self._scan(self.root)

    def page_sizes(self, state_file: Path, out_dir: Path) -> dict[str, int] | None:
        """The sizes of the pages the child found (page -> size, -1: not there), taken
        after its scan; None when it has none to give (the build stats them itself), or
        none of the pages of this manifest in this folder, or when `check_state` did not
        find the manifest as it was when the child started. Ask once, after `result()`."""
        if self._fd is None or not self._scanned or self.pages_of != (state_file, out_dir):
            return None
        data = read_frame(self._fd)
        self._done()
        if not self._state_unchanged:
            return None
        try:
            paths, sizes = marshal.loads(data)
            if type(paths) is not tuple or type(sizes) is not tuple \
                    or len(paths) != len(sizes):
                return None
            return dict(zip(paths, sizes))
        except (EOFError, ValueError, TypeError):
            return None

    def check_state(self) -> None:
        """Look whether another build wrote the manifest since the child was started
        (`o2m watch`'s, done or killed before this one took the site's lock: the pages
        may have changed after the child's stats). Called under the lock, once the
        manifest is read and before this build writes it; without this, or if it was
        written, `page_sizes` gives none."""
        if self.pages_of is not None:
            self._state_unchanged = state_stamp(self.pages_of[0]) == self._stamp

    def close(self) -> None:
        """Let the child go (it stops at its next write if unread) and reap it."""
        self._close_pipe()
        self._reap(wait=True)

    def _done(self) -> None:
        self._close_pipe()
        self._reap(wait=False)

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


def _child(root: Path, scan: Scan, pages: Sizes | None, read_end: int,
           write_end: int) -> None:
    """The forked child: scan, write the answer, then the pages' sizes, and leave at
    once (no cleanup of the parent's state it shares, no atexit handlers, no buffered
    output flushed twice)."""
    code = 1
    try:
        os.close(read_end)
        found, warnings = scan(root)
        _write(write_end, _encode(found, warnings))
        if pages is not None:
            sizes = pages()
            _write(write_end, _frame(marshal.dumps((tuple(sizes), tuple(sizes.values())))))
        os.close(write_end)  # the parent's end of file now, not after the exit's cleanup
        code = 0
    except BaseException:  # noqa: BLE001 - whatever it was, the parent does it again
        pass
    finally:
        os._exit(code)


def _write(fd: int, data: bytes) -> None:
    # _files._write_all's loop, not an import of it: _files imports `secrets` and with it
    # hashlib, CPU the child would pay (tests/site/test_scan_ahead.py keeps it light)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _frame(data: bytes) -> bytes:
    """An answer, its length first: a child that dies midway leaves it short."""
    return len(data).to_bytes(8, "big") + data


def _encode(found: Stats, warnings: list[str]) -> bytes:
    return _frame(marshal.dumps((tuple(found), tuple(s.st_mtime_ns for s in found.values()),
                                 tuple(s.st_size for s in found.values()), tuple(warnings))))


def _decode(data: bytes) -> tuple[Stats, list[str]]:
    names, mtimes, sizes, warnings = marshal.loads(data)
    if not len(names) == len(mtimes) == len(sizes):
        raise ValueError("columns of different lengths")
    stat = partial(tuple.__new__, FileStat)
    return dict(zip(names, map(stat, zip(mtimes, sizes)))), list(warnings)


def read_frame(fd: int) -> bytes:
    """The next answer on `fd`, without its length; b"" when it is not whole."""
    try:
        head = _read_exactly(fd, 8)
        if len(head) < 8:
            return b""
        data = _read_exactly(fd, int.from_bytes(head, "big"))
    except OSError:
        return b""
    return data if len(data) == int.from_bytes(head, "big") else b""


def _read_exactly(fd: int, n: int) -> bytes:
    """`n` bytes from `fd`, or fewer at its end."""
    chunks, left = [], n
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
