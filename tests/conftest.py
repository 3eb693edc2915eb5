"""Shared fixtures: real site folders on disk, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from o2m_pub.cli import main

# Every test that seals a key does so with a known passphrase and libsodium's
# "interactive" Argon2id limits (0.06 s instead of 0.45 s to unlock); the production
# default is measured by bench/bench_unlock.py, not here.
os.environ["O2M_PASSPHRASE"] = "test passphrase"
os.environ["O2M_KDF"] = "interactive"

CONFIG = """\
[site]
name = "Test site"
author = "Tess"
url = "https://test.example/"
timezone = "Europe/Berlin"
default_audience = "public"
posts_per_page = 3

[groups]
family = ["alice"]
"""


class Site:
    """A site folder with helpers to write posts and run the real `o2m`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.build_dir = root / "build"

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def post(self, rel: str, *, title: str | None = "A post", date: str = "2026-03-01",
             body: str = "Hello.", **fields: object) -> Path:
        lines = ["---"]
        if title is not None:
            lines.append(f"title: {title}")
        lines.append(f"date: {date}")
        lines += [f"{k}: {v}" for k, v in fields.items()]
        lines += ["---", body, ""]
        return self.write(f"content/{rel}", "\n".join(lines))

    def o2m(self, *args: str, ok: bool = True):  # noqa: ANN201 - click Result
        result = CliRunner().invoke(main, ["-C", str(self.root), *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def read(self, rel: str) -> str:
        return (self.build_dir / rel).read_text(encoding="utf-8")

    def outputs(self) -> dict[str, bytes]:
        return {p.relative_to(self.build_dir).as_posix(): p.read_bytes()
                for p in sorted(self.build_dir.rglob("*")) if p.is_file()}

    def stamps(self) -> dict[str, tuple[int, int]]:
        """(inode, mtime_ns) of every output: a rewrite changes the inode (rename)."""
        return {p.relative_to(self.build_dir).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
                for p in self.build_dir.rglob("*") if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    root = tmp_path / "site"
    root.mkdir()
    (root / "o2m.toml").write_text(CONFIG, encoding="utf-8")
    (root / "content").mkdir()
    return Site(root)


def run_o2m(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as a user runs it (exit codes, stderr, signals)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "o2m_pub", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def https_folder(tmp_path):
    """A real HTTPS server on 127.0.0.1 (an ephemeral port) serving a folder, with a
    certificate from a test CA: yields (base URL, folder, CA bundle path)."""
    import functools
    import http.server
    import ssl
    import threading

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        yield f"https://localhost:{server.server_address[1]}/", folder, bundle
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = trustme.CA()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return authority, str(bundle)


@pytest.fixture()
def garden(tmp_path, ca, monkeypatch):
    """Ada's garden post, with Bob's reply and reaction fetched back by Ada, on real TLS
    servers (support.garden): the owner's side of a thread, for the CLI and the desk."""
    from support.garden import make_garden
    monkeypatch.setenv("O2M_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("O2M_KDF", "interactive")
    world = make_garden(tmp_path, ca)
    yield world
    world.stop()
