"""The Webmention endpoint, ``POST /.well-known/webmention`` (W3C Webmention §3.2;
PROTOCOL.md §1.6): what `o2m serve` checks while the sender waits.

Only what the spec asks before answering (§3.2.1): a form body with one ``source`` and
one ``target``, both absolute http(s) URLs, not the same, and the target one of the
owner's public posts (`target_post`, wired in by the command: the server knows no
post). Then 202, and `receive` runs after the answer, off the request path: it records
the mention and verifies it (fetching the source) in a thread of its own, so a slow
source never holds the server. The body cap and the rate limits are the inbox's
(`inbox.body_rule`, `inbox.TokenBuckets`): one machinery for every POST of the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

WEBMENTION_PATH = b"/.well-known/webmention"
MAX_WEBMENTION_BYTES = 4096  # two URLs of at most 2,048 characters, form-encoded
MAX_URL_CHARS = 2048
FORM_TYPE = b"application/x-www-form-urlencoded"


@dataclass(frozen=True)
class WebmentionReceiver:
    """What the command wires in: `target_post(url)` is the path of the owner's public
    post that `url` names, or None; `receive(source, target, post)` runs after the 202
    (in a worker thread) and must not raise to the sender."""

    target_post: Callable[[str], str | None]
    receive: Callable[[str, str, str], None]


def _valid_url(value: str) -> bool:
    """An absolute http(s) URL with a host, printable, no whitespace, not overlong."""
    if not value or len(value) > MAX_URL_CHARS or any(
            c.isspace() or not c.isprintable() for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def check_request(content_type: bytes | None, body: bytes,
                  target_post: Callable[[str], str | None]
                  ) -> tuple[int, str, tuple[str, str, str] | None]:
    """The synchronous checks of a Webmention request (§3.2.1), pure but for
    `target_post`.

    Returns:
        (status, reason, (source, target, post) when accepted). 202 when accepted;
        415 for a body that is not a form; 400 for everything else the spec refuses.
    """
    if (content_type or b"").split(b";", 1)[0].strip().lower() != FORM_TYPE:
        return 415, "Send application/x-www-form-urlencoded", None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        return 400, "Not a form", None
    sources, targets = fields.get("source", []), fields.get("target", [])
    if len(sources) != 1 or len(targets) != 1:
        return 400, "Send one source and one target", None
    source, target = sources[0].strip(), targets[0].strip()
    if not _valid_url(source) or not _valid_url(target):
        return 400, "Source and target must be http(s) URLs", None
    if source.split("#", 1)[0] == target.split("#", 1)[0]:
        return 400, "Source and target are the same", None
    post = target_post(target)
    if post is None:
        return 400, "The target is not a public post of this site", None
    return 202, "Accepted", (source, target, post)


__all__ = ["FORM_TYPE", "MAX_WEBMENTION_BYTES", "WEBMENTION_PATH", "WebmentionReceiver",
           "check_request"]
