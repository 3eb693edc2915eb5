"""What a build tells its caller: progress while it runs, and a report when it is done."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from o2m_pub.errors import O2MError, Problem


class BuildProgress(Protocol):
    """Told how far a build is (the CLI draws a bar when it runs on a terminal)."""

    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...


@dataclass
class BuildReport:
    """What a build did, for the one-line summary and for tests."""

    out_dir: Path
    posts: int = 0  # public posts on the site
    changed: int = 0  # posts parsed and rendered again, public or private
    private: int = 0  # posts whose audience keeps them off the public site
    drafts: int = 0
    written: int = 0
    deleted: int = 0
    seconds: float = 0.0
    heads: int = 0  # friends' feed heads signed
    changed_paths: list[str] = field(default_factory=list)  # outputs written anew or removed
    feed_error: O2MError | None = None  # friends' feeds could not be signed this time
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    # PROTOCOL.md §4.7: (kind, OP's post reference, OP's key, seq) of each reply or
    # reaction this build published, for a notice to the OP's inbox
    notices: list[tuple[str, str, str, int]] = field(default_factory=list)
