"""A real `o2m serve` in its own process, for tests: started on an ephemeral port of
127.0.0.1, its URL and certificate read back, stopped with SIGTERM.

    with o2m_serve(site_root) as server:
        requests.get(server.url + "index.html", verify=server.verify)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

def site_with_a_friend(root: Path, name: str) -> Path:
    """`o2m init` a site at `root` with one friend and a post for friends, so its build
    has o/, p/ and f/ (not built yet: the caller adds what it needs first)."""
    from conftest import run_o2m  # tests/ is on the path: the CLI in a subprocess

    slug = name.lower()
    assert run_o2m("init", str(root), "--name", name, "--url", f"https://{slug}.example/",
                   cwd=root.parent).returncode == 0
    friend = root.parent / "friend"  # beside the site, in the caller's fresh folder
    assert run_o2m("init", str(friend), "--name", "Fran", "--url", "https://fran.example/",
                   cwd=friend.parent).returncode == 0
    card = run_o2m("card", cwd=friend).stdout.strip()
    assert run_o2m("friend", "add", "fran", card, "--yes", cwd=root).returncode == 0
    (root / "content" / "secret.md").write_text(
        "---\ntitle: For friends\ndate: 2026-05-01\naudience: friends\n---\nHi.\n")
    return root


_LISTENING = re.compile(r"serving .* at (https://\S+)(?:\s+pin (\S+))?")


@dataclass
class RunningServer:
    process: subprocess.Popen
    url: str  # https://127.0.0.1:PORT/
    pin: str | None  # "sha256/..." for a self-signed certificate
    verify: str  # the certificate to trust (self-signed: its own PEM)
    lines: list[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def output(self) -> str:
        """What the server printed after start (stdout and stderr), once stopped."""
        rest = self.process.stdout.read() if self.process.stdout else ""
        return "".join(self.lines) + rest


def start_o2m_serve(root: Path, *args: str, env: dict[str, str] | None = None,
                    deadline: float = 60, port: str | None = "0") -> RunningServer:
    """`o2m serve --port 0 --workers 1 ARGS` in `root` (`port` None: no --port, so
    the site's own choice); returns once it listens."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [sys.executable, "-m", "o2m_pub", "-C", str(root), "serve",
           *(("--port", port) if port is not None else ()), "--workers", "1", *args]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, env=full_env)
    lines: list[str] = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = _LISTENING.search(line)
        if m:
            cert = root / "keys" / "tls" / "cert.pem"
            return RunningServer(process, m.group(1), m.group(2), str(cert), lines)
    process.kill()
    raise RuntimeError("o2m serve did not start:\n" + "".join(lines) +
                       (process.stdout.read() if process.stdout else ""))


@contextlib.contextmanager
def o2m_serve(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    server = start_o2m_serve(root, *args, env=env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
