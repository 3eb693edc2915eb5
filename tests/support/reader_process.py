"""`o2m reader` in its own process, as a user runs it: started on a free port of
127.0.0.1, its URL read from its first line, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path


def start_reader(root: Path) -> tuple[subprocess.Popen, str]:
    """`o2m reader --port 0` as a user runs it; returns the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "-C", str(root), "reader",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    m = re.fullmatch(r"o2m: reader at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {proc.stderr.read()}")
    return proc, m.group(1)


def stop_reader(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
