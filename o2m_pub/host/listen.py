"""The listening sockets of `o2m serve`, opened before any reactor exists.

They are bound in the first process, so that a port in use or a bad address is one
line before anything starts, and so that worker processes can be forked afterwards
(docs/adr/0004: one worker per core, each with its own ``SO_REUSEPORT`` socket).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from o2m_pub.errors import O2MError
from o2m_pub.host.tls import KeyPair


class ServeError(O2MError):
    """The server cannot start: a port in use, no build/, a bad certificate."""


@dataclass
class Listening:
    """Bound sockets, before any reactor runs (so workers can be forked)."""

    https: socket.socket
    http: socket.socket | None
    url: str
    pair: KeyPair
    reuse_port: bool = False  # each worker opens its own socket on the port

    @property
    def port(self) -> int:
        return self.https.getsockname()[1]


def bind(host: str, port: int, http_port: int | None, pair: KeyPair, *,
         workers: int = 1) -> Listening:
    """Open the listening sockets, or say in one line why not.

    With several workers the HTTPS socket is opened with SO_REUSEPORT, so that each
    worker can open its own on the same port and the kernel spreads connections
    evenly (one shared socket would wake every worker and favour whichever is idle).

    Raises:
        ServeError: the address is unknown, the port is in use or needs privileges.
    """
    reuse_port = workers > 1 and hasattr(socket, "SO_REUSEPORT")
    https = _bind_one(host, port, reuse_port=reuse_port)
    plain = _bind_one(host, http_port) if http_port is not None else None
    bound = https.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "localhost"
    return Listening(https, plain, f"https://{shown}:{bound}/", pair, reuse_port)


def _bind_one(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ServeError(f"cannot listen on {host}: {e.strerror}",
                         hint="give --host an address of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ServeError(f"{host}:{port} is already in use",
                             hint="stop the other server, or pick another --port") from None
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}",
                         hint="ports below 1024 need privileges; try --port 8443") from None
    sock.setblocking(False)
    return sock


def own_socket(listening: Listening) -> Listening:
    """A worker's own HTTPS socket in the parent's SO_REUSEPORT group (the shared one
    is closed in this process)."""
    shared = listening.https
    own = socket.socket(shared.family, socket.SOCK_STREAM)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if shared.family == socket.AF_INET6:
        own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                       shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    own.bind(shared.getsockname())
    own.listen(1024)
    own.setblocking(False)
    shared.close()
    return Listening(own, listening.http, listening.url, listening.pair, True)


def raise_fd_limit() -> None:
    """Many idle clients must meet the header deadline, not the fd limit."""
    import resource as rlimit
    soft, hard = rlimit.getrlimit(rlimit.RLIMIT_NOFILE)
    if hard == rlimit.RLIM_INFINITY or soft < hard:
        try:
            rlimit.setrlimit(rlimit.RLIMIT_NOFILE, (min(hard, 65536), hard))
        except (ValueError, OSError):
            pass
