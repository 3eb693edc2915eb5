"""Clearing a tool's output before a cold build without deleting it just then.

Deleting tens of thousands of files just before a timed build slows that build's own
file creation on some file systems, so the timing would include the deletion's cost
too. ext4 without a journal (the disk of the 2-core benchmark machine) does not reuse
an inode freed in the last minute (several while its inode table is not yet written
back), and for each new file it scans past all such inodes again (`recently_deleted` in the
kernel's fs/ext4/ialloc.c). Measured there: 7,000 folders with a page each cost 25 µs
of system time a file on a settled disk, 61 µs right after deleting such a tree once
and 161 µs after twice; a cold build of the 10,000-post site had 4.4 s of system time
instead of 2.9 s. Every tool pays it, in proportion to how much of its time is the file
system's.

So the old output is renamed into a trash folder on the same disk (a rename frees no
inode) and the trash is deleted once, after the measurements: it holds every set-aside
output until then (each tool's whole output, once per repeat). A trash left by a run
that was stopped is emptied at that end too, not before the timings. A run started
within a few minutes of another one's end still sees that deletion: leave a few
minutes between runs, or run `sync` and wait a minute. The trash must be on the same
file system as the sites (a rename cannot cross one).
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path


class Trash:
    """Where outputs go instead of being deleted before a timed build."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._names = (f"{time.time_ns()}-{n}" for n in itertools.count())

    def set_aside(self, path: Path) -> None:
        """Take `path` (a file or folder, if it exists) out of the way by a rename."""
        if not path.exists() and not path.is_symlink():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path.rename(self.folder / f"{next(self._names)}-{path.name}")

    def empty(self) -> None:
        """Delete what was set aside, once nothing is timed any more."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Trash":
        return self

    def __exit__(self, *exc: object) -> None:
        self.empty()
