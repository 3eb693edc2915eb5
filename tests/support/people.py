"""People with sites of their own, served over TLS by a stdlib server or o2m serve."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import ssl
import threading
from pathlib import Path

import trustme
from click.testing import CliRunner

from o2m_pub.cli import main
from o2m_pub.friends.identity import load_identity, own_card
from o2m_pub.reader.http_fetch import Limits, run_fetch
from o2m_pub.reader.store import ReaderStore
from o2m_pub.site.build import build_site

PASS = b"test passphrase"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class TLSFolderServer:
    """A stdlib HTTPS server of one folder (If-Modified-Since gives 304s)."""

    def __init__(self, folder: Path, context: ssl.SSLContext) -> None:
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://localhost:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def o2m(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class PortOnly:
    """No server yet: a free port of 127.0.0.1 for the site's URL, for a test that
    starts `o2m serve` on it later (`Person(..., server_cls=PortOnly)`)."""

    def __init__(self, folder: Path, context: ssl.SSLContext) -> None:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"https://localhost:{self.port}/"

    def stop(self) -> None:
        pass


class Person:
    """A site of its own, served over TLS at the URL in its card."""

    def __init__(self, base: Path, name: str, context: ssl.SSLContext,
                 server_cls: type = TLSFolderServer) -> None:
        self.name = name
        self.root = base / name
        self.root.mkdir()
        self.server = server_cls(self.root / "build", context)
        o2m("init", str(self.root), "--name", name.title(), "--url", self.server.url,
            "--own-cert")  # served with a test CA's certificate: no pin in the card
        for p in (self.root / "content").rglob("*.md"):
            p.unlink()

    @property
    def card(self):  # noqa: ANN201
        return own_card(self.root)

    def befriend(self, other: "Person", as_name: str | None = None) -> None:
        from o2m_pub.protocol.cards import card_to_text
        o2m("-C", str(self.root), "friend", "add", as_name or other.name,
            card_to_text(other.card), "--yes")

    def post(self, slug: str, title: str, audience: str, body: str = "Body.",
             date: str = "2026-11-20", **extra: str) -> None:
        folder = self.root / "content" / "2026"
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["---", f"title: {title}", f"date: {date}", f"audience: {audience}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        (folder / f"{slug}.md").write_text("\n".join(lines + ["---", body, ""]))

    def build(self, now: dt.datetime | None = None) -> None:
        report = build_site(self.root, unlock=lambda: load_identity(self.root, PASS),
                            **({"now": now} if now else {}))
        assert not report.problems, report.problems

    def fetch(self, bundle: str, *names: str, now: dt.datetime | None = None,
              limits: Limits = Limits(deadline=20, read_timeout=5, connect_timeout=5)):
        """The fetcher in-process; returns {friend: Outcome}."""
        outcomes = run_fetch(self.root, names, unlock=lambda: load_identity(self.root, PASS),
                             now=now or dt.datetime.now(dt.timezone.utc), limits=limits,
                             ca_bundle=bundle)
        return {o.friend: o for o in outcomes}

    def timeline(self, **kw) -> list:  # noqa: ANN003
        with ReaderStore.open(self.root) as store:
            return store.timeline(limit=1000, **kw)

    def titles(self, **kw) -> set[str]:  # noqa: ANN003
        return {p.title for p in self.timeline(**kw)}
