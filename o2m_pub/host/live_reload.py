"""`o2m serve --watch`: open pages reload themselves after each build, by server-sent
events. The script that listens is injected into pages only in this mode (the file
cache adds `file_cache.LIVE_TAG`); the page CSP of `--watch` allows it."""

from __future__ import annotations

from pathlib import Path

from twisted.web import http, server

from o2m_pub.config import MANIFEST

LIVE_PATH = b"/_o2m/live"
LIVE_SCRIPT_PATH = b"/_o2m/live.js"
LIVE_SCRIPT = (b'"use strict";new EventSource("/_o2m/live").onmessage=function(){'
               b'location.reload();};\n')


class LiveReload:
    """Server-sent events that tell open pages to reload after a build.

    Each worker watches the build's manifest (it changes on every commit), so this
    works whichever process rebuilt, and however many workers there are.
    """

    def __init__(self, state_dir: Path) -> None:
        self.stamp_paths = [state_dir / MANIFEST, state_dir / f"{MANIFEST}-wal"]
        self.listeners: list[server.Request] = []
        self.stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[int, ...]:
        stamp = []
        for path in self.stamp_paths:
            try:
                stamp.append(path.stat().st_mtime_ns)
            except OSError:
                stamp.append(0)
        return tuple(stamp)

    def render(self, request: server.Request) -> bytes | int:
        if request.path == LIVE_SCRIPT_PATH:
            request.setHeader(b"content-type", b"text/javascript; charset=utf-8")
            request.setHeader(b"cache-control", b"no-cache")
            return LIVE_SCRIPT
        if request.path != LIVE_PATH:
            request.setResponseCode(http.NOT_FOUND)
            return b""
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-store")
        request.write(b"retry: 1000\n\n")
        self.listeners.append(request)
        request.notifyFinish().addBoth(lambda _: self._forget(request))
        return server.NOT_DONE_YET

    def _forget(self, request: server.Request) -> None:
        if request in self.listeners:
            self.listeners.remove(request)

    def poll(self) -> None:
        stamp = self._read_stamp()
        if stamp != self.stamp:
            self.stamp = stamp
            for request in list(self.listeners):
                request.write(b"data: reload\n\n")

    def close_all(self) -> None:
        for request in list(self.listeners):
            request.finish()
