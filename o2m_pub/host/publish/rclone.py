"""Publishing to any rclone remote (`name:path`): SFTP, WebDAV, S3-compatible stores...

o2m drives the order; rclone moves the bytes. Each batch of the plan is one
`rclone copy --files-from-raw LIST build/ name:path`, deletions one `rclone delete
--files-from-raw`; a batch is recorded as sent only when rclone says all of it arrived.
rclone reads its own configuration (`$RCLONE_CONFIG`, `RCLONE_CONFIG_<NAME>_<KEY>`
variables, `RCLONE_<FLAG>` for any flag), so o2m passes none of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from o2m_pub.host.publish.plan import Batch
from o2m_pub.host.publish.target import (
    RESUME,
    Landed,
    NoProgress,
    Progress,
    PublishError,
)

NO_TRAVERSE_BELOW = 1000  # fewer files than this: look each one up, do not list the remote
_LOG = ["--use-json-log", "-v", "--stats", "1s", "--stats-log-level", "NOTICE"]


class RcloneTarget:
    """An rclone remote as the target."""

    def __init__(self, remote: str, work_dir: Path) -> None:
        self.remote = remote
        self.key = remote
        self.lists_cheaply = False  # listing costs a round trip: only with --check
        self.work_dir = work_dir  # where the file lists go (the private state folder)

    def __str__(self) -> str:
        return self.remote

    def _rclone(self) -> str:
        found = shutil.which("rclone")
        if found is None:
            raise PublishError(f"rclone is not installed, and {self.remote} is an rclone remote",
                               hint="install it (Debian: apt install rclone), or publish to a "
                               "folder")
        return found

    def prepare(self, *, interrupted: bool) -> None:
        self._run(["mkdir", self.remote])  # also proves the remote is reachable

    def send(self, source: Path, batch: Batch, landed: Landed, progress: Progress) -> None:
        args = ["copy", "--files-from-raw", "LIST", str(source), self.remote]
        if len(batch.files) < NO_TRAVERSE_BELOW:
            args.append("--no-traverse")
        if batch.recheck:  # a file that changes in place may keep its size (padded heads)
            args.append("--ignore-times")
        self._run(args, batch.paths, progress=progress,
                  total=(len(batch.files), batch.bytes))
        landed(list(batch.files))

    def delete(self, paths: list[str], gone: Callable[[Iterable[str]], None]) -> None:
        self._run(["delete", "--files-from-raw", "LIST", self.remote], paths)
        gone(paths)

    def listing(self) -> dict[str, int]:
        try:
            out = self._run(["lsjson", "-R", "--files-only", self.remote])
        except _RemoteFolderMissingError:
            return {}
        try:
            return {e["Path"]: int(e["Size"]) for e in json.loads(out)}
        except (ValueError, KeyError, TypeError):
            raise PublishError(f"{self.remote}: rclone listed the remote in a form o2m "
                               "does not understand", hint="is rclone up to date?") from None

    def _run(self, args: list[str], paths: list[str] | None = None, *,
             progress: Progress | None = None, total: tuple[int, int] = (0, 0)) -> str:
        """Run rclone, following its JSON log for progress and errors; stdout returned."""
        command = [self._rclone(), *args]
        list_file = None
        if paths is not None:
            fd, list_file = tempfile.mkstemp(prefix="publish-", suffix=".list", dir=self.work_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.writelines(p + "\n" for p in paths)
            command[command.index("LIST")] = list_file
        command += _LOG
        progress = progress or NoProgress()
        messages: list[str] = []
        seen = [0, 0]  # files, bytes reported so far
        try:
            with tempfile.TemporaryFile() as stdout, subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                    text=True, encoding="utf-8", errors="replace") as proc:
                try:
                    assert proc.stderr is not None
                    for line in proc.stderr:
                        _follow(line, messages, seen, progress)
                    code = proc.wait()
                except BaseException:
                    proc.kill()
                    proc.wait()
                    raise
                stdout.seek(0)
                output = stdout.read().decode("utf-8", "replace")
        except OSError as e:
            raise PublishError(f"cannot run rclone: {e.strerror or e}") from None
        finally:
            if list_file:
                os.unlink(list_file)
        if code != 0:
            raise self._failure(code, messages)
        progress.advance(max(total[0] - seen[0], 0), max(total[1] - seen[1], 0))
        return output

    def _failure(self, code: int, messages: list[str]) -> PublishError:
        message = messages[-1] if messages else f"rclone exited with status {code}"
        if code == 3 or "directory not found" in message.lower():
            return _RemoteFolderMissingError(message)
        if code < 0:
            message = f"rclone was stopped by signal {-code}"
        what, hint = classify_rclone_message(message)
        return PublishError(f"{self.remote}: {what}", hint=hint)


# Private: `listing` takes it as an empty remote (nothing published there yet); from
# any other rclone command it is shown as the PublishError it is.
class _RemoteFolderMissingError(PublishError):
    """The remote folder does not exist (yet)."""


def _follow(line: str, messages: list[str], seen: list[int], progress: Progress) -> None:
    """One line of rclone's log: count files and bytes, keep errors for the report."""
    line = line.strip()
    if not line:
        return
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):  # a fatal error is printed before the JSON log starts
        messages.append(line.split(" ", 2)[-1] if line[:4].isdigit() else line)
        return
    msg = str(entry.get("msg", "")).strip()
    if entry.get("level") in ("error", "critical", "fatal") and msg:
        messages.append(msg)
    if msg.startswith("Copied"):
        seen[0] += 1
        progress.advance(1, 0)
    stats = entry.get("stats")
    if isinstance(stats, dict) and isinstance(stats.get("bytes"), int):
        delta = stats["bytes"] - seen[1]
        if delta > 0:
            seen[1] += delta
            progress.advance(0, delta)


_KINDS = (
    (("no space left", "quota", "insufficient storage", "507", "disk full"),
     "the target is full", "free some space there; " + RESUME),
    (("didn't find section in config file", "config file not found"),
     "no such rclone remote", "define it with `rclone config`, or with RCLONE_CONFIG_<NAME>_TYPE "
     "and friends; o2m uses rclone's own configuration ($RCLONE_CONFIG)"),
    (("permission denied", "read only", "read-only", "403", "forbidden", "access denied",
      "401", "unauthorized", "unable to authenticate", "authentication failed"),
     "permission denied", "check the remote's user, password or key, and that it may write "
     "there; " + RESUME),
    (("connection refused", "no such host", "i/o timeout", "couldn't connect",
      "network is unreachable", "connection reset", "timeout", "eof", "broken pipe",
      "no route to host", "dial tcp"),
     "cannot reach the remote", "check the address and that the server is up; " + RESUME),
)


def classify_rclone_message(message: str) -> tuple[str, str]:
    """(what went wrong, in o2m's words with rclone's, a hint) for rclone's last error."""
    short = " ".join(message.split())
    if len(short) > 240:
        short = short[:237] + "..."
    low = short.lower()
    for needles, what, hint in _KINDS:
        if any(_mentions(low, n) for n in needles):
            return f"{what} ({short})", hint
    return f"rclone failed ({short})", RESUME


def _mentions(text: str, needle: str) -> bool:
    """Whether rclone's message says `needle`; an HTTP status only as a number of its own
    (a port such as 127.0.0.1:55507 is no 507 Insufficient Storage)."""
    if needle.isdigit():
        return re.search(rf"(?<!\d){needle}(?!\d)", text) is not None
    return needle in text
