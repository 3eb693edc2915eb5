"""What every publish target (a folder, an rclone remote) offers the publish driver,
and the one error they raise.

A target is given batches in order (publish_plan.py) and reports, through `landed`,
which files are durably on it, so the record (publish_record.py) never runs ahead of
the host. Errors are `PublishError`: one line naming the target, with a hint.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Callable, Iterable, Protocol

from o2m_pub.errors import O2MError
from o2m_pub.host.publish.plan import Batch, FileInfo

RESUME = ("the host still serves the site it had; run `o2m publish` again to resume "
          "where this one stopped")


class PublishError(O2MError):
    """The site could not be published to its target."""

    @property
    def where(self) -> str:
        return "publish"


class Progress(Protocol):
    """Told what is moving, for a progress display (cli/hosting.py draws it)."""

    def batch(self, batch: Batch) -> None: ...
    def advance(self, files: int, size: int) -> None: ...


class NoProgress:
    def batch(self, batch: Batch) -> None:
        pass

    def advance(self, files: int, size: int) -> None:
        pass


Landed = Callable[[list[tuple[str, FileInfo]]], None]


class Target(Protocol):
    """Where a site is published."""

    key: str  # names the target in the record (an absolute folder, or name:path)
    lists_cheaply: bool  # listed on every publish, not only with --check

    def prepare(self, *, interrupted: bool) -> None:
        """Check the target is there and writable (making its folder if needed)."""

    def send(self, source: Path, batch: Batch, landed: Landed, progress: Progress) -> None:
        """Copy the batch's files from `source` (build/) to the target."""

    def delete(self, paths: list[str], gone: Callable[[Iterable[str]], None]) -> None:
        """Remove these files from the target."""

    def listing(self) -> dict[str, int]:
        """Every file on the target, path -> size (for `--check`)."""


def error_from_os(e: OSError, target: str) -> PublishError:
    """A full disk, a permission, a vanished mount: one line and a hint."""
    what = f"{e.filename}: " if e.filename else f"{target}: "
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return PublishError(f"no space left on the target ({what.rstrip(': ')})",
                            hint=f"free some space there; {RESUME}")
    if e.errno in (errno.EACCES, errno.EPERM):
        return PublishError(f"{what}permission denied",
                            hint="let this user write to the target folder (the web server "
                            f"only needs to read it); {RESUME}")
    if e.errno == errno.EROFS:
        return PublishError(f"{what}the target is read-only",
                            hint=f"mount it read-write, or choose another target; {RESUME}")
    if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.EIO, errno.ENOTCONN):
        return PublishError(f"{what}{e.strerror or e} (did the target go away?)",
                            hint=f"check that it is mounted and reachable; {RESUME}")
    return PublishError(f"{what}{e.strerror or e}", hint=RESUME)
