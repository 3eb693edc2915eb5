"""Sites to publish and the real programs (nginx, caddy, rclone) that host them."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from o2m_pub.cli import main
from o2m_pub.friends.identity import own_card
from support.friend import Friend
from support.sites import add_friends, new_site

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


IN_CI = os.environ.get("CI") == "true"


def need_program(name: str, package: str) -> str:
    """The program's path; in CI a missing one fails the test, elsewhere it skips."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (Debian package: {package})"
        if IN_CI:
            pytest.fail(message + "; CI must install it (.ci/run)")
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:port (the server is up)."""
    for _ in range(300):
        if proc.poll() is not None:
            detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise AssertionError(f"server exited with {proc.returncode}: {detail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def o2m(root: Path, *args: str, ok: bool = True):  # noqa: ANN201 - click Result
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def write_post(root: Path, name: str, title: str, audience: str = "public",
               body: str = "Body.", date: str = "2026-11-20") -> None:
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    (root / "content/2026" / f"{name}.md").write_text(
        f"---\ntitle: {title}\ndate: {date}\naudience: {audience}\n---\n{body}\n")


def make_site(tmp_path: Path, url: str = "https://ada.example/"):  # noqa: ANN201
    """Ada's site, with Bob as a friend, two public posts and one for friends, built:
    (root, bob, Ada's card)."""
    root = new_site(tmp_path, "ada", url, "--own-cert")  # served with a CA's certificate
    bob = Friend(1, "bob")
    add_friends(root, {"bob": bob})
    write_post(root, "hello", "Hello world", date="2026-11-01")
    write_post(root, "second", "Second post", date="2026-11-02")
    write_post(root, "secret", "Only for friends", "friends", date="2026-11-03")
    o2m(root, "build")
    return root, bob, own_card(root)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def update_site(root: Path) -> None:
    """A new public post, a new post for friends, an edited one: new objects, new and
    changed pages, new feeds and a new head."""
    write_post(root, "third", "Third post", date="2026-11-04")
    write_post(root, "secret2", "Second secret", "friends", date="2026-11-05")
    write_post(root, "hello", "Hello again", date="2026-11-01", body="Edited.")
    o2m(root, "build")
