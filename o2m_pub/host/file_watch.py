"""Which files of build/ changed since `o2m serve` cached them, as Linux's inotify
reports it, so that a file answered from the cache needs no ``stat`` per request.

That ``stat`` (of a path three or four folders deep) was a fifth of the server's work
for a page it had in memory (docs/BENCHMARKS.md). A folder is watched from the first
time a file in it is cached, with its parents up to build/ (a parent renamed or
removed takes the files below it along). The kernel queues an event within the very
call that changed a file, and the server reads the events in its event loop, as it
reads its clients: a change is seen from the loop's next turn, so a request sent after
a page was rebuilt gets the new page.

What the events mean is decided by `interpret`, a pure function of the events and the
folders watched; `FolderWatch` is the few system calls around it. Where there is no
inotify (not Linux) or too few watches are left (fs.inotify.max_user_watches), the
folders not watched keep their ``stat`` per request (`file_cache`).

Not watchdog's observer: it reads in a thread of its own and passes events on after a
delay (to pair a rename's two halves), while a page that changed would still be served
from memory.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
import sys
from typing import Any, Callable, Mapping

# inotify(7)
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT, IN_Q_OVERFLOW, IN_IGNORED = \
    0x400, 0x800, 0x2000, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC

# what changes a file's bytes, name or stat (IN_CLOSE_WRITE: a write through mmap
# reports nothing else), and what ends a folder's watch; never through a symlink
FOLDER_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
               | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
               | IN_ONLYDIR | IN_DONT_FOLLOW)
_GONE = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT
_FOLDER_REPLACED = IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, length of the name
READ_SIZE = 64 << 10

Event = tuple[int, int, str]  # watch descriptor, mask, name ("" for the folder itself)
Change = tuple[str, str]  # ("file", path), ("tree", folder: it and all below), ("all", "")


def parse_events(data: bytes) -> list[Event]:
    """The events in what one read of an inotify descriptor returned (whole events
    only: the kernel never splits one)."""
    events, at = [], 0
    while at + _HEADER.size <= len(data):
        wd, mask, _cookie, length = _HEADER.unpack_from(data, at)
        name = data[at + _HEADER.size:at + _HEADER.size + length].rstrip(b"\0")
        events.append((wd, mask, os.fsdecode(name)))
        at += _HEADER.size + length
    return events


def interpret(events: list[Event], folders: Mapping[int, str]) -> list[Change]:
    """What `events` say changed, given the folder each watch descriptor watches: a
    file (its bytes, name or stat); a folder tree (the folder moved, removed or
    replaced, or its watch gone, so nothing below it is known any more); or anything
    at all (the queue overflowed: events were lost)."""
    changes: list[Change] = []
    for wd, mask, name in events:
        if mask & IN_Q_OVERFLOW:
            changes.append(("all", ""))
            continue
        folder = folders.get(wd)
        if folder is None:  # a watch given up already
            continue
        if mask & _GONE:
            changes.append(("tree", folder))
        elif not name:  # the folder's own stat: no file's answer depends on it
            continue
        elif not mask & IN_ISDIR:
            changes.append(("file", folder + os.sep + name))
        elif mask & _FOLDER_REPLACED:
            changes.append(("tree", folder + os.sep + name))
    return changes


@functools.cache
def _libc() -> Any:
    """libc's inotify calls, or None where there are none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for name, args in (("inotify_init1", [ctypes.c_int]),
                           ("inotify_add_watch", [ctypes.c_int, ctypes.c_char_p,
                                                  ctypes.c_uint32]),
                           ("inotify_rm_watch", [ctypes.c_int, ctypes.c_int])):
            function = getattr(libc, name)
            function.argtypes, function.restype = args, ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


class FolderWatch:
    """The folders watched by one inotify descriptor, read by a Twisted reactor (an
    IReadDescriptor; without one, whoever calls `doRead`); each change is passed to
    `on_change(kind, path)`. Once closed, or broken, it says ("all", ""): nothing it
    vouched for is vouched for any more.

    Args:
        report: told once when the system's watch limit is reached.
    """

    def __init__(self, fd: int, on_change: Callable[[str, str], None], *, reactor: Any = None,
                 report: Callable[[str], None] = lambda _message: None) -> None:
        self.fd = fd
        self.on_change = on_change
        self.reactor = reactor
        self.report = report
        self.full = False  # the watch limit was reached: no new folder is watched
        self._wd_of: dict[str, int] = {}
        self._folder_of: dict[int, str] = {}
        if reactor is not None:
            reactor.addReader(self)

    @classmethod
    def open(cls, on_change: Callable[[str, str], None], *, reactor: Any = None,
             report: Callable[[str], None] = lambda _message: None) -> "FolderWatch | None":
        """A watch with no folder yet, read by `reactor`; None where inotify is missing
        or refused (then every file is checked on each request)."""
        libc = _libc()
        if libc is None:
            return None
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        return None if fd < 0 else cls(fd, on_change, reactor=reactor, report=report)

    def watch(self, folder: str, root: str) -> bool:
        """Watch `folder` and its parents up to `root` (both real paths, `folder` under
        or at `root`), unless they are already. False when one of them cannot be
        (missing, a symlink, or no watch left): its files are then not covered."""
        if folder in self._wd_of:
            return True
        chain = []
        while folder not in self._wd_of:
            chain.append(folder)
            if folder == root:
                break
            parent = os.path.dirname(folder)
            if parent == folder or not (parent == root or parent.startswith(root + os.sep)):
                return False
            folder = parent
        return all(self._add(path) for path in reversed(chain))

    def _add(self, folder: str) -> bool:
        if self.full:
            return False
        wd = _libc().inotify_add_watch(self.fd, os.fsencode(folder), FOLDER_MASK)
        if wd < 0:
            if ctypes.get_errno() == errno.ENOSPC:
                self.full = True
                self.report("no inotify watch left (fs.inotify.max_user_watches): files "
                            "in folders not watched yet are checked on each request")
            return False
        stale = self._folder_of.get(wd)
        if stale is not None and stale != folder:  # the folder moved there unseen yet
            self._forget_under(stale)
            self.on_change("tree", stale)
        self._wd_of[folder], self._folder_of[wd] = wd, folder
        return True

    def _forget_under(self, folder: str) -> None:
        """Stop watching `folder` and the folders below it: their paths are no longer
        theirs (moved), or they are gone."""
        below = folder + os.sep
        for path in [p for p in self._wd_of if p == folder or p.startswith(below)]:
            wd = self._wd_of.pop(path)
            self._folder_of.pop(wd, None)
            _libc().inotify_rm_watch(self.fd, wd)  # EINVAL when the kernel dropped it

    # -- Twisted's IReadDescriptor
    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:  # noqa: N802 - Twisted's name
        """Take every event queued so far."""
        while True:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # the descriptor is broken: watch nothing, trust nothing
                self.close()
                return
            for kind, path in interpret(parse_events(data), self._folder_of):
                if kind == "tree":
                    self._forget_under(path)
                self.on_change(kind, path)

    def connectionLost(self, reason: object) -> None:  # noqa: N802 - Twisted's name
        self.close()

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "FolderWatch"

    def close(self) -> None:
        """Stop watching: from now on, files are checked on each request again."""
        if self.fd < 0:
            return
        if self.reactor is not None:
            self.reactor.removeReader(self)
        os.close(self.fd)
        self.fd = -1
        self.full = True  # no folder is watched again
        self._wd_of.clear()
        self._folder_of.clear()
        self.on_change("all", "")
