"""The desk's requests and responses, and the rules every answer follows: security
headers, cookies, and which Host and Origin a request may name. Pure: no sockets.

The shell (`server.py`) turns a Twisted request into a `Request` and writes back the
`DeskResponse`; an answer that needs slow work (the passphrase check runs Argon2id) is a
`Slow`: the shell runs `work` in a thread and answers with `then(result)`. A `Stream`
asks the shell to keep the connection for server-sent events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from o2m_pub.desk.forms import Upload
from o2m_pub.errors import O2MError

HTML_TYPE = "text/html; charset=utf-8"
# No script but our own file, no style but our own sheet, images only from the desk,
# no framing anywhere (clickjacking), forms only to the desk.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; form-action 'self'; "
                           "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cache-Control": "no-store",
}
HSTS = "max-age=31536000"  # only over TLS


class DeskError(O2MError):
    """The desk cannot do this."""


@dataclass
class Request:
    """One request as the core sees it. `path` is below the desk's base, still
    percent-encoded, starting with "/"; header names are lower case."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    client: str = "?"  # the peer's address
    secure: bool = False  # over TLS


@dataclass
class DeskResponse:
    """One answer. `cookies` are whole Set-Cookie values."""

    status: int
    body: bytes = b""
    content_type: str = HTML_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)


@dataclass
class Slow:
    """An answer that needs slow work off the request thread: the shell runs `work()`
    in a worker thread, then answers with `then(result)` (or `then(exception)` when
    `work` raised) back on the request thread."""

    work: Callable[[], Any]
    then: Callable[[Any], "DeskResponse"]


@dataclass
class Stream:
    """Server-sent events: the shell keeps the connection open and sends an event
    whenever `changed()` returns a new value (polled every `every` seconds)."""

    changed: Callable[[], object]
    every: float = 2.0


Answer = DeskResponse | Slow | Stream


def redirect(location: str, *, cookies: list[str] | None = None, status: int = 303) -> DeskResponse:
    """A redirect to a path of the desk (never elsewhere: `location` is ours)."""
    return DeskResponse(status, b"", headers={"Location": location}, cookies=cookies or [])


def all_headers(response: DeskResponse, *, secure: bool) -> dict[str, str]:
    """The headers of `response` with the security headers (and HSTS over TLS)."""
    headers = {**SECURITY_HEADERS, **response.headers}
    if secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return headers


# ---------------------------------------------------------------- cookies


@dataclass(frozen=True)
class CookiePolicy:
    """How the desk names and flags its cookies.

    Over TLS the session cookie is ``__Host-o2m-desk``: the prefix makes the browser
    refuse it unless it is Secure, host-only (no Domain) and Path=/, so no other host
    or plain-HTTP page can set or overwrite it. On plain loopback HTTP (`o2m desk`) a
    browser may refuse a Secure cookie, and the prefix needs Secure, so the strongest
    form that every browser accepts is ``o2m-desk``: host-only, Path=/, HttpOnly,
    SameSite=Strict, named with its port (``o2m-desk-8480``) so that the desks of two
    sites on one machine do not sign each other out. Its known limit: browsers do not
    isolate cookies by port, so another server on 127.0.0.1 that the browser visits
    would be sent it (a local process can reach the desk's port anyway; its defence
    is the passphrase)."""

    secure: bool
    port: int | None = None  # on plain http: in the name, so two desks keep apart

    @property
    def session(self) -> str:
        return "__Host-o2m-desk" if self.secure else f"o2m-desk{self._suffix}"

    @property
    def pre(self) -> str:
        """The sign-in form's own cookie (CSRF of the sign-in form)."""
        return "__Host-o2m-pre" if self.secure else f"o2m-pre{self._suffix}"

    @property
    def _suffix(self) -> str:
        return f"-{self.port}" if self.port else ""

    def set(self, name: str, value: str, *, max_age: int | None = None) -> str:
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.secure:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)

    def clear(self, name: str) -> str:
        return self.set(name, "", max_age=0)


def parse_cookies(header: str) -> dict[str, str]:
    """A Cookie header as a dict; the first of two cookies of one name wins (the
    browser sends the most specific first)."""
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in found:
            found[name] = value.strip()
    return found


# ---------------------------------------------------------------- who may ask


@dataclass(frozen=True)
class Origin:
    """Where the desk is, as the browser sees it: scheme, the Host values it answers
    to (host:port), and the base path ("/" or "/desk/")."""

    scheme: str
    hosts: frozenset[str]
    base: str = "/"
    port: int | None = None

    def host_ok(self, host: str | None) -> bool:
        """DNS rebinding: a page of evil.example resolving to our address names its
        own host, which we refuse."""
        return host is not None and host.lower() in self.hosts

    def origin_ok(self, origin: str | None) -> bool:
        """An Origin header, when sent, must be ours ("null" is not)."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme == self.scheme and parts.netloc.lower() in self.hosts and \
            not parts.path

    def link(self, path: str) -> str:
        """A path below the base, as an absolute path of this server."""
        return self.base + path.lstrip("/")


def user_navigation(headers: dict[str, str]) -> bool:
    """Whether a GET is the person's own navigation in the desk: a top-level page load
    (Fetch Metadata: mode navigate, destination document) from one of the desk's own
    pages (same-origin) or from the address bar or a bookmark (none), and no prefetch.
    Anything else, a link or image of another site (cross-site, or same-site: another
    port of 127.0.0.1, which a SameSite cookie does not tell apart), a frame, a
    prefetch, or a client that sends no Sec-Fetch headers, may read a page but its
    script changes no state (THREATS.md 53, security review finding 6)."""
    return (headers.get("sec-fetch-site") in ("same-origin", "none")
            and headers.get("sec-fetch-mode") == "navigate"
            and headers.get("sec-fetch-dest") == "document"
            and "prefetch" not in headers.get("sec-purpose", "")
            and "prefetch" not in headers.get("purpose", ""))


def loopback_origin(host: str, port: int, base: str = "/") -> Origin:
    """The Origin of `o2m desk` on a loopback address."""
    names = [f"[{host}]" if ":" in host else host]
    if host in ("127.0.0.1", "::1"):
        names.append("localhost")
    return Origin("http", frozenset(f"{n}:{port}".lower() for n in names), base, port)


def site_origin(url: str, extra_hosts: frozenset[str] = frozenset(),
                base: str = "/desk/") -> Origin:
    """The Origin of the desk under the owner's site (`o2m serve --desk`): the host of
    the site's URL (with its port, and without it when it is 443)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    netloc = f"[{host}]" if ":" in host else host
    port = parts.port or 443
    hosts = {f"{netloc}:{port}"}
    if port == 443:
        hosts.add(netloc)
    return Origin("https", frozenset(hosts) | extra_hosts, base)


def safe_next(value: str | None, base: str) -> str:
    """Where to go after signing in: a path of the desk, never another site
    (``//evil.example``, ``/\\evil``, schemes and control characters are refused)."""
    if not value or not value.startswith(base) or value.startswith("//") or "\\" in value \
            or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return base
    return value


def quote_segment(value: str) -> str:
    """One path segment, percent-encoded (a friend's name, a post id)."""
    return quote(str(value), safe="")
