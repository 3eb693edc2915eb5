"""The desk's shell: Twisted web around `app.DeskApp`.

- `DeskResource` turns a Twisted request into a `web.Request` (the path below the
  desk's base, the form and its files parsed by `forms`), asks the app, and writes the
  answer with the security headers. A `web.Slow` answer runs its work in a thread (the
  passphrase check: Argon2id takes its time and memory, and one check runs at a time
  in all the processes of a site, `unlocker`); a `web.Stream` keeps the connection for
  server-sent events.
- `DeskRequest` refuses a body past its cap at the headers (`forms.body_cap`: a few KiB
  before sign-in, an upload once signed in) and never spools one to disk.
- `listen` and `run` serve it alone on a loopback address (`o2m desk`); `mount` makes
  what `o2m serve --desk` hands to `host.serve` for one path of the TLS server.

    DeskListenError (DeskError)   the desk cannot start
"""

from __future__ import annotations

import fcntl
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from twisted.internet import threads
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web import resource, server

from o2m_pub.config import STATE_DIR
from o2m_pub.desk import forms
from o2m_pub.desk.app import DeskApp
from o2m_pub.desk.web import (
    DeskError,
    Request,
    DeskResponse,
    Slow,
    Stream,
    all_headers,
    parse_cookies,
)

LOOPBACK_HOSTS = ("127.0.0.1", "::1")
DEFAULT_PORT = 8480
UNLOCK_LOCK = "desk-unlock.lock"
KEEPALIVE_SECONDS = 25.0


class DeskListenError(DeskError):
    """The desk cannot start."""


def unlocker(root: Path, load: Callable[[Path, bytes], Any]) -> Callable[[bytes], Any]:
    """The passphrase check, one at a time across every process of the site (an
    Argon2id unlock takes hundreds of MB: many at once would exhaust memory)."""
    lock_path = root / STATE_DIR / UNLOCK_LOCK

    def unlock(passphrase: bytes) -> Any:  # noqa: ANN401 - an Identity
        lock_path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(lock_path, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            return load(root, passphrase)
    return unlock


# ---------------------------------------------------------------- requests


def _headers(request: server.Request) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v[0].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders() if v}


def _query(request: server.Request) -> dict[str, str]:
    _, _, raw = request.uri.partition(b"?")
    if not raw:
        return {}
    try:
        return forms.parse_urlencoded(raw)
    except forms.FormError:
        return {}


def signed_in(app: DeskApp, headers: dict[str, str]) -> bool:
    cookies = parse_cookies(headers.get("cookie", ""))
    return app.desk.check(cookies.get(app.cookies.session), app.clock()) is not None


def body_cap_of(app: DeskApp, method: str, headers: dict[str, str]) -> int:
    """The cap of a request's body, from its request line and headers
    (`forms.body_cap`)."""
    if method != "POST":
        return 0
    return forms.body_cap(method, headers.get("content-type", ""), signed_in(app, headers))


def _method_so_far(request: server.Request) -> str:
    """The method of a request whose headers were just read (Twisted keeps the request
    line on its channel until the body is in; read with a default: a Twisted that
    renames it gets the smallest cap)."""
    method = getattr(request.channel, "_command", b"POST") or b"POST"
    return method.decode("latin-1", "replace").upper()


class DeskRequest(server.Request):
    """A request whose body is capped at its headers and kept in memory: past the cap,
    a 413 answer and the connection closed, before the body is read."""

    refused = False
    cap = 0
    received = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        self.content = io.BytesIO()
        self.cap = self.channel.site.body_cap(self)
        if length is not None and length > self.cap:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.cap:
            self._refuse()
            return
        self.content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if not self.refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.refused = True
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n")
        transport.loseConnection()


# ---------------------------------------------------------------- the resource


class DeskResource(resource.Resource):
    """The desk at `base` ("/" alone, "/desk/" under the site)."""

    isLeaf = True

    def __init__(self, app: DeskApp, reactor: Any) -> None:  # noqa: ANN401
        super().__init__()
        self.app, self.reactor = app, reactor
        self.base = app.origin.base.encode()

    def render(self, request: server.Request) -> bytes | int:
        path = request.path
        if path == self.base.rstrip(b"/"):
            request.setResponseCode(301)
            request.setHeader(b"location", self.base)
            return b""
        try:
            desk_request = self._request(request, path[len(self.base) - 1:])
        except forms.FormError as e:
            return self._write(request, DeskResponse(400, f"{e}\n".encode(),
                                                 "text/plain; charset=utf-8"))
        try:
            answer = self.app.handle(desk_request)
        except Exception:  # a bug: one line for the browser, no traceback
            return self._write(request, _bug())
        if isinstance(answer, Slow):
            return self._slow(request, answer)
        if isinstance(answer, Stream):
            return self._stream(request, answer)
        return self._write(request, answer)

    def _request(self, request: server.Request, path: bytes) -> Request:
        headers = _headers(request)
        form: dict[str, str] = {}
        files: dict[str, forms.Upload] = {}
        method = request.method.decode("ascii", "replace").upper()
        if method == "POST":
            request.content.seek(0)
            form, files = forms.parse_body(request.content.read(),
                                           headers.get("content-type", ""))
        client = getattr(request.getClientAddress(), "host", "?")
        return Request(method, path.decode("utf-8", "replace"), _query(request), form, files,
                       headers, parse_cookies(headers.get("cookie", "")), str(client),
                       request.isSecure())

    def _write(self, request: server.Request, response: DeskResponse) -> bytes:
        request.setResponseCode(response.status)
        request.setHeader(b"content-type", response.content_type.encode())
        request.setHeader(b"server", b"o2m desk")
        for name, value in all_headers(response, secure=request.isSecure()).items():
            request.setHeader(name.encode(), value.encode("latin-1"))
        for cookie in response.cookies:
            request.responseHeaders.addRawHeader(b"set-cookie", cookie.encode("latin-1"))
        return response.body

    def _slow(self, request: server.Request, slow: Slow) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def done(result: object) -> None:
            if isinstance(result, Failure):
                result = result.value
            try:
                response = slow.then(result)
            except Exception:
                response = _bug()
            if gone:
                return
            request.write(self._write(request, response))
            request.finish()

        pool = self.reactor.getThreadPool()
        threads.deferToThreadPool(self.reactor, pool, slow.work).addBoth(done)
        return server.NOT_DONE_YET

    def _stream(self, request: server.Request, stream: Stream) -> int:
        self._write(request, DeskResponse(200, b"", "text/event-stream"))
        request.write(b"retry: 5000\n\n")
        state = {"last": stream.changed(), "quiet": 0.0}

        def poll() -> None:
            try:
                now = stream.changed()
            except Exception:  # the store is busy: try at the next tick
                return
            state["quiet"] += stream.every
            if now != state["last"]:
                state["last"], state["quiet"] = now, 0.0
                request.write(b"data: changed\n\n")
            elif state["quiet"] >= KEEPALIVE_SECONDS:
                state["quiet"] = 0.0
                request.write(b": keep-alive\n\n")

        loop = LoopingCall(poll)
        loop.clock = self.reactor
        loop.start(stream.every, now=False)
        request.notifyFinish().addBoth(lambda _: loop.running and loop.stop())
        return server.NOT_DONE_YET


def _bug() -> DeskResponse:
    return DeskResponse(500, b"<!doctype html><title>500</title><p>Something went wrong in the "
                         b"desk.</p>")


# ---------------------------------------------------------------- alone: o2m desk


class _Attached(resource.Resource):
    """The desk's resource, attached once the port (and so the app) is known."""

    isLeaf = True
    target: DeskResource | None = None

    def render(self, request: server.Request) -> bytes | int:
        assert self.target is not None
        return self.target.render(request)


class DeskSite(server.Site):
    """Twisted's Site with capped bodies, no access log, no tracebacks."""

    requestFactory = DeskRequest

    def __init__(self, reactor: Any) -> None:  # noqa: ANN401
        self.holder = _Attached()
        super().__init__(self.holder, reactor=reactor)
        self.app: DeskApp | None = None
        self.displayTracebacks = False

    def attach(self, app: DeskApp) -> None:
        self.app = app
        self.holder.target = DeskResource(app, self.reactor)

    def body_cap(self, request: server.Request) -> int:
        if self.app is None:
            return 0
        return body_cap_of(self.app, _method_so_far(request), _headers(request))

    def log(self, request: server.Request) -> None:
        pass  # what you read is nobody's business


def check_host(host: str) -> str:
    """The desk alone listens on loopback only (under `o2m serve --desk` it is TLS).

    Raises:
        DeskListenError: any other address.
    """
    value = host.strip("[]")
    if value == "localhost":
        value = "127.0.0.1"
    if value not in LOOPBACK_HOSTS:
        raise DeskListenError(f"--host {host}: the desk listens on 127.0.0.1 or ::1 only",
                              hint="to reach it from elsewhere, run `o2m serve --desk`: the "
                                   "desk under your site's TLS server")
    return value


@dataclass
class DeskListening:
    url: str
    port: Any


def listen(make_app: Callable[[int], DeskApp], host: str, port: int,
           reactor: Any = None) -> DeskListening:  # noqa: ANN401
    """Bind the desk on a loopback address (port 0: any free one); `make_app` gets the
    port bound (the Host values it answers to depend on it).

    Args:
        reactor: the Twisted reactor to listen with; None: the global one, which `run`
            runs (`o2m desk`).

    Raises:
        DeskListenError: not a loopback host, or the port cannot be had.
    """
    from twisted.internet.error import CannotListenError

    if reactor is None:
        from twisted.internet import reactor

    host = check_host(host)
    site = DeskSite(reactor)
    try:
        bound = reactor.listenTCP(port, site, interface=host)
    except CannotListenError as e:
        raise DeskListenError(f"cannot listen on {host} port {port}: {e.socketError}",
                              hint="another program (or another desk) uses it: choose another "
                                   "--port") from None
    actual = bound.getHost().port
    site.attach(make_app(actual))
    netloc = f"[{host}]:{actual}" if ":" in host else f"{host}:{actual}"
    return DeskListening(url=f"http://{netloc}/", port=bound)


def run(on_started: Callable[[], None] | None = None, reactor: Any = None) -> None:  # noqa: ANN401
    """Run `reactor` (None: the global one) until SIGINT or SIGTERM, then return."""
    import signal

    if reactor is None:
        from twisted.internet import reactor

    def stop(_signum: int, _frame: object) -> None:
        reactor.callFromThread(lambda: reactor.running and reactor.stop())

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    if on_started is not None:
        reactor.callWhenRunning(on_started)
    reactor.run(installSignalHandlers=False)


# ---------------------------------------------------------------- under the site: serve --desk


@dataclass
class DeskMount:
    """What `host.serve` needs to put the desk under one path (`host.serve.Mount`)."""

    prefix: bytes
    resource: DeskResource
    app: DeskApp

    def body_cap(self, method: str, headers: dict[str, str]) -> int:
        return body_cap_of(self.app, method, headers)


def mount(make_app: Callable[[], DeskApp], reactor: Any) -> DeskMount:  # noqa: ANN401
    """The desk for one worker process of `o2m serve` (made after the fork: its own
    SQLite connections)."""
    app = make_app()
    return DeskMount(app.origin.base.encode(), DeskResource(app, reactor), app)
