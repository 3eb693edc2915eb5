"""This build's files against the last build's record of them.

Every output has a change digest (what its bytes depend on, `plan.digest_of`): a file
whose digest is the one recorded and that is still there at the recorded size is kept,
not made again. Writes go through one `AtomicWriter`, opened on the first write.

The sizes of the pages as they were before the build wrote anything may come from
elsewhere (`sizes_ahead`: `scan_ahead`'s child takes them by `scan.sizes_now` while
the build reads its state); a page they do not name is stat-ed here, as is every file
once the first write is made.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Mapping

from o2m_pub.site.manifest import OutputState
from o2m_pub.site.plan import sha256_hex
from o2m_pub.site.writer import AtomicWriter

# friends' heads, archive pages and objects (PROTOCOL.md §3.2): ciphertext, which the
# feeds' own planning keeps or deletes (and reads: a published head's seq, §3.4)
SEALED_PATHS = ("f/", "p/", "o/")


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


class Outputs:
    """The outputs of one build: `old` as the last build recorded them, `new` as this
    one leaves them (every path not in `new` at the end is deleted).

    Args:
        out_dir: build/ (or the drafts' preview folder).
        old: path -> the state the last build recorded.
        before_first_write: called once, before anything is written (the build marks
            itself in progress, so the next one cleans up if it is killed).

    Attributes:
        sizes_ahead: path -> its size (-1: not there) taken before this build wrote
            anything, by `scan.sizes_now` in another process; used instead of a `stat`
            until the first write, then dropped. None: every size is stat-ed here.
    """

    def __init__(self, out_dir: Path, old: Mapping[str, OutputState], *,
                 before_first_write: Callable[[], None]) -> None:
        self.out_dir, self.out_str = out_dir, str(out_dir)
        self.old = old
        self.new: dict[str, OutputState] = {}
        self.writer: AtomicWriter | None = None
        self.sizes_ahead: dict[str, int] | None = None
        self._before_first_write = before_first_write

    def ensure_writer(self) -> AtomicWriter:
        if self.writer is None:
            self.sizes_ahead = None  # from now on, a size taken before may be stale
            self._before_first_write()
            self.writer = AtomicWriter(self.out_dir)
        return self.writer

    def barrier(self) -> None:
        """Make what was written durable before the next phase (nothing if nothing was)."""
        if self.writer:
            self.writer.barrier()

    def needs(self, path: str, digest: str) -> bool:
        """Whether to make `path`: its digest changed, or the file is not intact."""
        old = self.old.get(path)
        return old is None or old.digest != digest or self._size_now(path) != old.size

    def _size_now(self, path: str) -> int:
        if self.sizes_ahead is not None:
            size = self.sizes_ahead.get(path)
            if size is not None:
                return size
        return _size(os.path.join(self.out_str, path))

    def damaged(self, paths: list[str]) -> set[str]:
        """Those of `paths` that the last build did not write, or that are no longer
        there at the size it wrote (a tight loop: it runs over every page)."""
        old, ahead = self.old, self.sizes_ahead
        if ahead is None:
            return self._damaged_here(paths)
        bad, rest = set(), []
        for path in paths:
            state = old.get(path)
            size = ahead.get(path)
            if state is None or (size is not None and size != state.size):
                bad.add(path)
            elif size is None:  # not stat-ed ahead: here
                rest.append(path)
        return bad | self._damaged_here(rest) if rest else bad

    def _damaged_here(self, paths: list[str]) -> set[str]:
        """`damaged`, each page stat-ed now."""
        old, stat = self.old, os.stat
        bad = set()
        # relative to an open build/ (where the OS can): the kernel walks 2-3 names a
        # page, not the whole path from / (about 12% of the check's time)
        try:
            folder = os.open(self.out_str, os.O_RDONLY | os.O_DIRECTORY) \
                if os.stat in os.supports_dir_fd else None
        except OSError:  # no build/ yet: every page is missing
            return set(paths)
        out = "" if folder is not None else self.out_str + "/"
        try:
            for path in paths:
                state = old.get(path)
                try:
                    if state is None or stat(out + path, dir_fd=folder).st_size != state.size:
                        bad.add(path)
                except (FileNotFoundError, NotADirectoryError):
                    bad.add(path)
        finally:
            if folder is not None:
                os.close(folder)
        return bad

    def keep(self, path: str) -> None:
        """Keep a recorded output as it is (unless this build already wrote it)."""
        if path not in self.new:
            self.new[path] = self.old[path]

    def keep_if_recorded(self, path: str) -> None:
        if path in self.old:
            self.keep(path)

    def keep_all_recorded(self, paths: list[str]) -> None:
        """`keep_if_recorded` for each of `paths` (a tight loop: every post's page)."""
        old, new = self.old, self.new
        for path in paths:
            if path not in new and path in old:
                new[path] = old[path]

    def adopt(self, path: str) -> None:
        """Keep an output that is still needed, recording it if the manifest lost it."""
        if path in self.old:
            self.keep(path)
        elif (self.out_dir / path).is_file():
            data = (self.out_dir / path).read_bytes()
            self.new[path] = OutputState(sha256_hex(data), sha256_hex(data), len(data))

    def emit(self, path: str, digest: str, make: Callable[[], bytes]) -> None:
        """Write `path` unless the last build wrote the same digest and it is intact."""
        if self.needs(path, digest):
            self.put(path, digest, make())
        else:
            self.keep(path)

    def put(self, path: str, digest: str, data: bytes) -> None:
        self.new[path], _ = self.write_if_changed(path, digest, data)

    def write_if_changed(self, path: str, digest: str,
                         data: bytes) -> tuple[OutputState, bool]:
        """Write unless the file already holds exactly these bytes; say whether it wrote."""
        sha = sha256_hex(data)
        old = self.old.get(path)
        if old and old.sha == sha and self._size_now(path) == len(data):
            return OutputState(digest, sha, len(data)), False
        self.ensure_writer().write(path, data)
        return OutputState(digest, sha, len(data)), True

    def removed(self) -> list[str]:
        """The recorded outputs this build did not produce: to delete."""
        return [p for p in self.old if p not in self.new]

    def unrecorded(self) -> list[str]:
        """The files in the output folder that this build did not produce, for a build
        that has no record of what is there (a new or lost manifest): what an earlier
        build made public may be private now, and nothing says which it is.

        Left alone: dotfiles and dot-folders (no build makes one but `.well-known/`,
        whose card it writes anyway; an ACME challenge lives there), friends' sealed
        files (`SEALED_PATHS`), symlinks (never a build's, and never followed), and
        names no output can have. Nothing outside the output folder is looked at.
        """
        found: list[str] = []
        new = self.new
        for folder, dirs, files in os.walk(self.out_str):  # (symlinked folders: not entered)
            rel = os.path.relpath(folder, self.out_str)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and not f"{rel}{d}/".startswith(SEALED_PATHS)]
            for name in files:
                path = rel + name
                if name.startswith(".") or path in new or "\\" in path:
                    continue
                try:
                    if stat.S_ISREG(os.lstat(os.path.join(folder, name)).st_mode):
                        found.append(path)
                except FileNotFoundError:
                    pass
        return sorted(found)

    def set_aside(self, paths: list[str], into: Path) -> None:
        """Move the files `paths` (relative to the output folder) into the folder `into`,
        under the same relative paths: off the site, and not lost, since no record says
        whether a build or a person put them there (`unrecorded`)."""
        import shutil
        for path in paths:
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(os.path.join(self.out_str, path), target)  # (a copy across devices)
