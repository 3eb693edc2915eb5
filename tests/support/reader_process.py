"""The old web reader (reader/web.py) in its own process, as `o2m reader` ran it before
the desk took that name: started on a free port of 127.0.0.1 over the site's store, its
URL read from its first line, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path


LEGACY_READER = """
import sys
from pathlib import Path
from o2m_pub.config import load
from o2m_pub.reader.store import ReaderStore
from o2m_pub.reader.web import listen, run
root = Path(sys.argv[1])
with ReaderStore.open(root) as store:
    listening = listen(store, load(root).tz, "127.0.0.1", 0)
    run(lambda: print(f"o2m: reader at {listening.url} (Ctrl-C to stop)", flush=True))
"""


def start_reader(root: Path) -> tuple[subprocess.Popen, str]:
    """reader/web.py as `o2m reader --port 0` ran it; returns the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-c", LEGACY_READER, str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
