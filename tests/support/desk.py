"""The desk's core driven without sockets: a real site (keys, content/, stores), a real
`DeskApp`, and a client that keeps cookies as a browser does and runs a `Slow` answer's
work at once (the passphrase check is real Argon2id, at the tests' "interactive" limits).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


from o2m_pub.desk import guard
from o2m_pub.desk.actions import Capabilities
from o2m_pub.desk.app import DeskApp, open_app
from o2m_pub.desk.forms import Upload
from o2m_pub.desk.server import unlocker
from o2m_pub.desk.web import Origin, Request, DeskResponse, Slow, Stream, loopback_origin
from o2m_pub.friends.identity import load_identity
from support.sites import new_site

PASS = "test passphrase"
HOST = "127.0.0.1:8480"


make_site = new_site  # a fresh site with keys, no post


def make_app(root: Path, origin: Origin | None = None,
             capabilities: Capabilities | None = None) -> DeskApp:
    from o2m_pub.cli.desk import capabilities as wired
    return open_app(root, origin or loopback_origin("127.0.0.1", 8480),
                    unlock=unlocker(root, load_identity),
                    capabilities=capabilities if capabilities is not None else wired(root))


@dataclass
class Client:
    """A browser of one address: cookies kept, Slow answers run in line."""

    app: DeskApp
    host: str = HOST
    address: str = "127.0.0.1"
    secure: bool = False
    cookies: dict[str, str] = field(default_factory=dict)
    last: DeskResponse | None = None

    def request(self, method: str, target: str, form: dict[str, str] | None = None,
                files: dict[str, Upload] | None = None,
                headers: dict[str, str] | None = None) -> DeskResponse:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        answer = self.app.handle(Request(method, parts.path, query, dict(form or {}),
                                         dict(files or {}), {"host": self.host, **(headers or {})},
                                         dict(self.cookies), self.address, self.secure))
        if isinstance(answer, Slow):
            try:
                result = answer.work()
            except Exception as e:  # noqa: BLE001 - handed to `then`, as the shell does
                result = e
            answer = answer.then(result)
        assert not isinstance(answer, Stream)
        for cookie in answer.cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        self.last = answer
        return answer

    def get(self, target: str, **kw) -> DeskResponse:  # noqa: ANN003
        return self.request("GET", target, **kw)

    def post(self, target: str, form: dict[str, str] | None = None, *, csrf: bool = True,
             **kw) -> DeskResponse:  # noqa: ANN003
        form = dict(form or {})
        if csrf and "csrf" not in form:
            form["csrf"] = self.csrf()
        return self.request("POST", target, form, **kw)

    def csrf(self) -> str:
        token = self.cookies.get(self.app.cookies.session)
        return guard.csrf_token(token) if token else ""

    def sign_in(self, passphrase: str = PASS, target: str = "/") -> DeskResponse:
        page = self.get("/signin?next=" + target)
        token = form_value(page.body, "csrf")
        return self.request("POST", "/signin", {"csrf": token, "passphrase": passphrase,
                                                "next": target})


def form_value(body: bytes, name: str) -> str:
    """The value of the first <input name=NAME> of a page (HTML entities undone)."""
    import html
    for tag in re.findall(rb"<input[^>]*>", body):
        if re.search(rf'\bname="{re.escape(name)}"'.encode(), tag):
            m = re.search(rb'\bvalue="([^"]*)"', tag)
            return html.unescape(m.group(1).decode()) if m else ""
    raise AssertionError(f"no field {name} in the page")


def text(response: DeskResponse) -> str:
    return response.body.decode()


def start_desk(root, *args: str, env: dict[str, str] | None = None
               ) -> tuple[subprocess.Popen, str]:
    """`o2m desk --port 0` as a user runs it; returns the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "-C", str(root), "desk",
                             "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    m = re.fullmatch(r"o2m: desk at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {proc.stderr.read()}")
    return proc, m.group(1)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
