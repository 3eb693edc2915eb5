"""What some tests need of the machine: running a command without root's power over
file modes, and a small real file system to fill up."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def as_unprivileged(args: list[str]) -> list[str]:
    """As root, drop the capabilities that bypass file modes, so permissions apply
    (as they do for the user the tests stand for); as anyone else, `args` unchanged.
    Without `setpriv` (util-linux) root cannot drop them: the test skips, or fails in CI."""
    if os.geteuid() != 0:
        return args
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        message = "setpriv (util-linux) is needed to drop root's file capabilities"
        if os.environ.get("CI") == "true":  # Debian always has util-linux
            pytest.fail(message)
        pytest.skip(message)
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable",
            *args]


def o2m_unprivileged(*args: str, cwd: Path, env: dict[str, str] | None = None
                     ) -> subprocess.CompletedProcess[str]:
    """`o2m ARGS...` in its own process, without root's power over file modes
    (`as_unprivileged`): a file the test locked cannot be read or written, as for the
    user the tests stand for. No stdin; its output as text."""
    return subprocess.run(as_unprivileged([sys.executable, "-m", "o2m_pub", *args]), cwd=cwd,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@contextmanager
def locked(path: Path) -> Iterator[Path]:
    """`path` with no permission for anyone (mode 0) for the block, as a file its owner
    locked, its own mode again after: run o2m on it with `o2m_unprivileged`."""
    before = stat.S_IMODE(path.stat().st_mode)
    path.chmod(0)
    try:
        yield path
    finally:
        path.chmod(before)


def try_mount_tmpfs(folder: Path, size: str) -> bool:
    """Make `folder` and mount a tmpfs of `size` (e.g. "400k") on it; False where this
    process may not mount (not root, or no mount rights in its namespace)."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                        str(folder)], capture_output=True)
    return r.returncode == 0
