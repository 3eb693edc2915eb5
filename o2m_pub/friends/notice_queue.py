"""Notices of replies and reactions pushed to `o2m serve`'s inbox (PROTOCOL.md §4.7),
queued in `.o2m/inbox/` until the next `o2m fetch` of their sender.

Only a notice from a known friend whose signature verified reaches `queue_notice` (the
inbox's handler checks both before anything is stored); the queue is capped in count and
bytes, and one friend never holds more than one notice in it (a newer one replaces it),
so a flood from a friend's key fills nothing. A notice only says "fetch me now": what it
announces comes, verified, from the sender's feed.
"""

from __future__ import annotations

import os
from pathlib import Path

from o2m_pub._files import TMP_PREFIX, write_file
from o2m_pub.config import STATE_DIR

INBOX_DIR = "inbox"
MAX_QUEUED = 256
MAX_QUEUED_BYTES = 1 << 20


def _folder(root: Path) -> Path:
    return root / STATE_DIR / INBOX_DIR


def queue_notice(root: Path, friend: str, data: bytes) -> bool:
    """Keep a verified notice from `friend` (replacing theirs); False when the queue is
    full (then nothing is stored)."""
    folder = _folder(root)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{friend}.notice"
    others = [p for p in _notices(folder) if p != target]
    if len(others) >= MAX_QUEUED or \
            sum(p.stat().st_size for p in others) + len(data) > MAX_QUEUED_BYTES:
        return False
    write_file(target, data, mode=0o600)
    return True


def queued(root: Path) -> list[str]:
    """The friends with a notice waiting."""
    folder = _folder(root)
    return sorted(p.stem for p in _notices(folder)) if folder.is_dir() else []


def _notices(folder: Path) -> list[Path]:
    """The queued notices: not a notice being written (`write_file`'s temporary file,
    which ends in ``.notice`` too)."""
    return [p for p in folder.glob("*.notice") if not p.name.startswith(TMP_PREFIX)]


def drop(root: Path, friends: list[str]) -> None:
    """Forget the notices of friends just fetched."""
    for name in friends:
        try:
            os.unlink(_folder(root) / f"{name}.notice")
        except FileNotFoundError:
            pass
