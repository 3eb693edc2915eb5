"""Which files of build/ changed since `o2m serve` cached them, as Linux's inotify
reports it, so that a file answered from the cache needs no ``stat`` per request.

That ``stat`` (of a path three or four folders deep, a different one each request)
was a fifth of the server's work for a page it had in memory (docs/BENCHMARKS.md). A
folder is watched from the first time a file in it is cached, with its parents up to
build/ (a parent renamed or removed takes the files below it along). The kernel queues
an event within the very call that changed a file, and the cache takes whatever is
queued before each lookup (`sync`: one ``poll`` of the descriptor, a fraction of the
``stat``), so a request read after a change is answered with the change taken.

What the events mean is decided by `interpret`, a pure function of the events and the
folders watched; `FolderWatch` is the few system calls around it. Where inotify would
not hear every change, nothing is watched and the cache keeps its ``stat``: not Linux;
a file system other hosts or the kernel's own clients write to (NFS, SMB, FUSE, 9p,
virtiofs: their changes make no event here); past this worker's share of the watches
(fs.inotify.max_user_watches, shared with `o2m watch` and the rest of the user's
programs). Files with a second name (hard links), reached through a symlink, or on
another file system mounted inside build/ are not watched either: a change through the
other name, the link's target or the mount makes no event in the folder watched.

Not watchdog's observer: it reads in a thread of its own and passes events on after a
delay (to pair a rename's two halves), while a page that changed would still be served
from memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import select
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Container, Mapping

# inotify(7)
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT, IN_Q_OVERFLOW, IN_IGNORED = \
    0x400, 0x800, 0x2000, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = 0x01000000, 0x02000000, 0x40000000

# what changes a file's bytes, name or stat, or a folder's (its mode can close it to
# the server), and what ends a folder's watch; a symlink is never followed
FOLDER_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
               | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
               | IN_ONLYDIR | IN_DONT_FOLLOW)
# a folder's own events that end what is known below it: its watch gone, the folder
# moved, removed or unmounted, or its mode changed (which can close it to the server)
_TREE_ENDED = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_ATTRIB
# the same, told by its parent
_CHILD_FOLDER_CHANGED = IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE | IN_ATTRIB
# a folder above build/ is watched for its own move or removal only (build/'s path
# changes with it); any such event ends everything known
ANCESTOR_MASK = IN_MOVE_SELF | IN_DELETE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, length of the name
READ_SIZE = 64 << 10
# file systems whose every change goes through this kernel, which reports it
LOCAL_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs",
                                "jfs", "reiserfs", "bcachefs", "nilfs2", "tmpfs",
                                "ramfs", "overlay"})
WATCH_SHARE = 4  # all workers together take at most 1/4 of the user's watches

Event = tuple[int, int, str]  # watch descriptor, mask, name ("" for the folder itself)


@dataclass
class Changes:
    """What a batch of events made stale: files (their bytes, name or stat); folder
    trees (the folder moved, removed, replaced or its mode changed, or its watch gone:
    nothing below it is known any more); or everything (events were lost)."""

    files: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    everything: bool = False


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


def interpret(events: list[Event], folders: Mapping[int, str],
              ancestors: Container[int] = ()) -> Changes:
    """What `events` say changed, given the folder each watch descriptor watches, and
    the watches of the folders above build/ (any event of theirs moves build/)."""
    changes = Changes()
    for wd, mask, name in events:
        if mask & IN_Q_OVERFLOW or wd in ancestors:
            changes.everything = True
            continue
        folder = folders.get(wd)
        if folder is None:  # a watch given up already
            continue
        if not name:  # the folder itself
            if mask & _TREE_ENDED:
                changes.trees.add(folder)
        elif not mask & IN_ISDIR:
            changes.files.add(folder + os.sep + name)
        elif mask & _CHILD_FOLDER_CHANGED:
            changes.trees.add(folder + os.sep + name)
    return changes


def relative_to(root: str, path: str) -> str | None:
    """`path` below `root` ("" for root itself), or None when it is not under it."""
    if path == root:
        return ""
    if path.startswith(root + os.sep):
        return path[len(root) + 1:]
    return None


def under_any(path: str, trees: set[str]) -> bool:
    """Is `path` one of `trees` or inside one (checked by its parents: a path's depth,
    not the number of trees)?"""
    while path not in trees:
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return True


_OCTAL = re.compile(r"\\([0-7]{3})")


def file_system_of(mountinfo: str, path: str) -> str | None:
    """The type of the file system `path` is on (a real path), from the text of
    /proc/self/mountinfo: that of the deepest mount point holding it."""
    best, kind = -1, None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if "-" not in fields or len(fields) < 5:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])  # \040: " "
        # (>=: of two mounts at one point, the later line is the one on top)
        if (point == "/" or relative_to(point, path) is not None) and len(point) >= best:
            best, kind = len(point), fields[fields.index("-") + 1]
    return kind


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


def _read(path: str) -> str:
    """A /proc file's text, its bytes that are not UTF-8 kept as `os.fsdecode` keeps
    them (a mount point may be named in any bytes)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except (OSError, ValueError):
        return ""


def _silent(_message: str) -> None:
    pass


class FolderWatch:
    """The folders under `root` watched by one inotify descriptor, read by a Twisted
    reactor (an IReadDescriptor) and before each cache lookup (`sync`); what changed
    is passed to `on_changes`. Once closed, or broken, it reports everything changed:
    nothing it vouched for is vouched for any more.

    Args:
        budget: how many folders it may watch (its share of the user's watches).
        report: told when a limit of the system's leaves files unwatched.
    """

    def __init__(self, fd: int, root: str, on_changes: Callable[[Changes], None], *,
                 budget: int, reactor: Any = None,
                 report: Callable[[str], None] = _silent) -> None:
        self.fd, self.root, self.on_changes = fd, root, on_changes
        self.budget, self.reactor, self.report = budget, reactor, report
        self._wd_of: dict[str, int] = {}
        self._folder_of: dict[int, str] = {}
        self._ancestor_wd: dict[str, int] = {}  # the folders above root
        self._told_budget = False
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        if reactor is not None:
            reactor.addReader(self)

    @classmethod
    def open(cls, root: str, on_changes: Callable[[Changes], None], *, workers: int = 1,
             reactor: Any = None,
             report: Callable[[str], None] = _silent) -> "FolderWatch | None":
        """A watch of `root` (a real path) with no folder yet, or None where inotify
        would not hear every change there (see the module's docstring)."""
        libc = _libc()
        if libc is None:
            return None
        kind = file_system_of(_read("/proc/self/mountinfo"), root)
        if kind not in LOCAL_FILE_SYSTEMS:
            return None
        limit = _read("/proc/sys/fs/inotify/max_user_watches").strip()
        budget = int(limit) // (WATCH_SHARE * max(1, workers)) if limit.isdigit() else 0
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            report("no inotify instance left (fs.inotify.max_user_instances): every "
                   "file is checked on each request")
            return None
        return cls(fd, root, on_changes, budget=budget, reactor=reactor, report=report)

    def watch(self, folder: str) -> bool:
        """Watch `folder` (a real path under `root`) and its parents up to `root`,
        unless they are already. False when one of them cannot be (missing, a symlink,
        another folder's alias, or no watch left): its files are then not covered."""
        if folder in self._wd_of:
            return True
        chain = []
        while folder not in self._wd_of:
            if relative_to(self.root, folder) is None:
                return False
            chain.append(folder)
            if folder == self.root:
                if not self._watch_ancestors():
                    return False
                break
            folder = os.path.dirname(folder)
        return all(self._add(path) for path in reversed(chain))

    def _watch_ancestors(self) -> bool:
        """Watch the folders above root for their own move or removal: either moves or
        removes build/, which makes no event of build/'s own."""
        folder = os.path.dirname(self.root)
        while folder not in self._ancestor_wd and folder != os.path.dirname(folder):
            wd = _libc().inotify_add_watch(self.fd, os.fsencode(folder), ANCESTOR_MASK)
            if wd < 0:
                return False
            self._ancestor_wd[folder] = wd
            folder = os.path.dirname(folder)
        return True

    def _add(self, folder: str) -> bool:
        if len(self._wd_of) >= self.budget:
            if self.budget and not self._told_budget:
                self._told_budget = True
                self.report("this worker's share of inotify watches is taken "
                            "(fs.inotify.max_user_watches): files in folders not watched "
                            "yet are checked on each request")
            return False
        wd = _libc().inotify_add_watch(self.fd, os.fsencode(folder), FOLDER_MASK)
        if wd < 0:
            if ctypes.get_errno() == errno.ENOSPC and not self._told_budget:
                self.budget = len(self._wd_of)  # no more tries: each would fail alike
                self._told_budget = True
                self.report("no inotify watch left (fs.inotify.max_user_watches): files "
                            "in folders not watched yet are checked on each request")
            return False
        if wd in self._folder_of:
            # The kernel's watch of this folder's inode, already ours under another
            # path: a folder moved there, whose move is still queued (the event will
            # forget the old path), or the same folder mounted twice. Not covered here.
            return False
        self._wd_of[folder], self._folder_of[wd] = wd, folder
        return True

    def sync(self) -> None:
        """Take the events queued so far, if any (one poll when there are none)."""
        if self.fd >= 0 and self._poll.poll(0):
            self.doRead()

    def _forget(self, trees: set[str] | None) -> None:
        """Stop watching the folders in or under `trees` (all of them, and those above
        root, for None): their paths are no longer theirs (moved), they are gone, or
        events were lost."""
        for path in [p for p in self._wd_of if trees is None or under_any(p, trees)]:
            wd = self._wd_of.pop(path)
            self._folder_of.pop(wd, None)
            _libc().inotify_rm_watch(self.fd, wd)  # EINVAL when the kernel dropped it
        if trees is None:
            for wd in self._ancestor_wd.values():
                _libc().inotify_rm_watch(self.fd, wd)
            self._ancestor_wd.clear()

    # -- Twisted's IReadDescriptor
    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:  # noqa: N802 - Twisted's name
        """Take every event queued so far."""
        while self.fd >= 0:
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # the descriptor is broken: watch nothing, trust nothing
                self.close()
                return
            changes = interpret(parse_events(data), self._folder_of,
                                set(self._ancestor_wd.values()))
            if changes.everything:
                # a lost event may have been a folder's end: no watch can be trusted
                self._forget(None)
            elif changes.trees:
                self._forget(changes.trees)
            if changes.everything or changes.trees or changes.files:
                self.on_changes(changes)

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
        with contextlib.suppress(OSError):  # (already broken, when doRead failed)
            os.close(self.fd)
        self.fd, self.budget = -1, 0  # no folder is watched again
        self._wd_of.clear()
        self._folder_of.clear()
        self._ancestor_wd.clear()
        self.on_changes(Changes(everything=True))
