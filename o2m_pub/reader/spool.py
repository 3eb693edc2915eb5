"""Friends' texts kept on disk while a fetch runs, so that no fetch holds them in memory.

A fetch stores each friend's update in one transaction (THREATS.md 47), so every post of
the update waits until its last object is checked. Kept in memory, a friend's posts cost
as much RAM as their text: 4 posts of 50 MiB took `o2m fetch` to 417 MB (security review
finding 5; a full 512 MiB budget would be about 1 GB). Here each post's text above
`SPOOL_CHARS` is written to a file of its own in ``.o2m/spool/`` (0600, in the private
state folder) as soon as its object is opened, and the row to store carries a
`model.SpooledText` instead: the store reads the files back one at a time inside the
update's transaction. A fetch then holds one object at a time, whatever a friend sends.

Files are removed once their friend's update is stored or refused, and the folder is
emptied when a fetch starts (what a killed fetch left there).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from o2m_pub.reader.model import SpooledText

SPOOL_DIR = "spool"
SPOOL_CHARS = 64 * 1024  # shorter texts stay in memory: no file per small post


class TextSpool:
    """The spool folder of one reader's store (files only, so fetch threads share it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, text: str) -> SpooledText:
        """Write `text` to a new file of the spool; returns what stands for it.

        Raises:
            OSError: it could not be written (a full disk, THREATS.md 48): the error
                names the file, and nothing of it is left.
        """
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = text.encode("utf-8")
        path = self.folder / secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as e:
            path.unlink(missing_ok=True)
            e.filename = e.filename or str(path)
            raise
        return SpooledText(path.name, len(data), hashlib.sha256(data).hexdigest())

    def read(self, spooled: SpooledText) -> str:
        """The text back (the store, inside the update's transaction)."""
        return (self.folder / spooled.name).read_bytes().decode("utf-8")

    def discard(self, names: list[str]) -> None:
        for name in names:
            try:
                os.unlink(self.folder / name)
            except FileNotFoundError:
                pass

    def clear(self) -> None:
        """Remove everything a fetch left here (one fetch runs per site at a time)."""
        shutil.rmtree(self.folder, ignore_errors=True)


class FriendSpool:
    """The spool as one friend's fetch uses it (fetch_plan's `Spool`): texts longer
    than `SPOOL_CHARS` go to disk, and the files it wrote are known, to be removed once
    the friend's update is stored or refused."""

    def __init__(self, spool: TextSpool) -> None:
        self._spool = spool
        self.names: list[str] = []

    def keep(self, text: str) -> str | SpooledText:
        if len(text) <= SPOOL_CHARS:
            return text
        spooled = self._spool.keep(text)
        self.names.append(spooled.name)
        return spooled

    def discard(self) -> None:
        self._spool.discard(self.names)
        self.names.clear()
