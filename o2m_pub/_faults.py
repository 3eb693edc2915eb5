"""Fault injection for the crash-safety tests: the one place production code can be
made to fail on purpose (THREATS.md 46, 47, 48).

Each hook point is one function, called by the code at that point; each does nothing
unless its environment variable asks for a fault:

    O2M_FAULT=kill:N        `before_write`: die by SIGKILL before the N-th file write
                            of this process (the build's writer, a folder publish)
    O2M_FAULT=enospc:N      `before_write`: fail that write with "No space left on
                            device" instead
    O2M_FETCH_FAULT=kill-in-commit:N
                            `in_fetch_commit`: die by SIGKILL inside the N-th friend
                            update transaction of the reader's store, after its posts
                            were written and before its state and COMMIT

The tests run o2m in a subprocess with the variable set. The variable is read when its
hook is first reached, not at import, and the count is per process (a forked worker
counts on from where its parent was). `reset` forgets both, for in-process tests.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from dataclasses import dataclass

WRITE_FAULT = "O2M_FAULT"
FETCH_FAULT = "O2M_FETCH_FAULT"


@dataclass
class _Plan:
    kind: str
    at: int
    reached: int = 0


_plans: dict[str, _Plan | None] = {}
_lock = threading.Lock()  # fetches apply updates from several threads


def _fault_due(variable: str, kinds: tuple[str, ...]) -> str | None:
    """Count one more pass through the hook of `variable`; the fault's kind if this
    pass is the one its plan names, else None."""
    with _lock:
        if variable not in _plans:
            kind, _, n = os.environ.get(variable, "").partition(":")
            _plans[variable] = _Plan(kind, int(n)) if kind in kinds and n.isdigit() else None
        plan = _plans[variable]
        if plan is None:
            return None
        plan.reached += 1
        return plan.kind if plan.reached == plan.at else None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def before_write(path: str) -> None:
    """The hook before a file is written (O2M_FAULT=kill:N or enospc:N).

    Raises:
        OSError: ENOSPC, when this is the write O2M_FAULT=enospc:N names.
    """
    kind = _fault_due(WRITE_FAULT, ("kill", "enospc"))
    if kind == "kill":
        _die()
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def in_fetch_commit() -> None:
    """The hook inside a friend update's transaction (O2M_FETCH_FAULT=kill-in-commit:N)."""
    if _fault_due(FETCH_FAULT, ("kill-in-commit",)):
        _die()


def reset() -> None:
    """Forget the plans and their counts: the variables are read again at the next hook."""
    with _lock:
        _plans.clear()
