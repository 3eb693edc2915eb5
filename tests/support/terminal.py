"""The CLI on a real terminal (a pty), for what `o2m` does only when a person is there:
prompts, confirmations, retries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def dialogue(cwd: Path, args: list[str], steps: list[tuple[str, str]], *,
             env: dict[str, str] | None = None, drop: tuple[str, ...] = (),
             timeout: float = 60) -> tuple[int, str]:
    """Run `o2m ARGS` on a pty: for each (prompt, answer), wait for the prompt's text,
    then type the answer and Enter. `drop` names environment variables to unset (e.g.
    O2M_PASSPHRASE, so that o2m asks). Returns (exit status, all it printed)."""
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in drop}
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", *args], cwd=cwd,
                            stdin=follower, stdout=follower, stderr=follower, env=full_env)
    os.close(follower)
    seen, pos = b"", 0  # pos: where the next prompt is looked for
    try:
        for prompt, answer in steps:
            while seen.find(prompt.encode(), pos) < 0:
                try:
                    chunk = os.read(leader, 1024)
                except OSError:
                    chunk = b""
                if not chunk:  # the process ended without asking
                    raise AssertionError(f"no {prompt!r} prompt in {seen.decode()!r}")
                seen += chunk
            pos = seen.find(prompt.encode(), pos) + len(prompt)
            os.write(leader, answer.encode() + b"\n")
        status = proc.wait(timeout=timeout)
        try:
            while chunk := os.read(leader, 4096):
                seen += chunk
        except OSError:  # the terminal closed with the process
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return status, seen.decode(errors="replace")
