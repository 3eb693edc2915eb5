"""Attachment names (PROTOCOL.md §3.3): what a name may be, and which name a
reference in a post's Markdown means.

One rule for both sides, so they cannot drift apart: the writer names each attachment
after a reference its post's Markdown makes to the file (`referenced_name` of that
reference), and the reader shows, for an image, the attachment whose name is
`referenced_name` of its `src`. The name is the reference's path as written, decoded
and normalised as text: never the file's path worked out on the writer's disk, which a
reader, knowing nothing of the author's folders, could not work out from the reference
(`../notes/x.png` written in `notes/` is the file `x.png` beside the post).
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 255
MAX_ATTACHMENTS = 64  # in one post
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def referenced_name(reference: str) -> str | None:
    """The attachment name a relative reference of a post means (PROTOCOL.md §3.3):
    its path, without query and fragment, percent-decoded (UTF-8) and normalised as a
    POSIX path (`./sunset.png`, `sunset%2Epng` and `sunset.png?v=2#top` mean
    `sunset.png`; `../trip/sunset.png` stays as it is).

    Args:
        reference: an `<img src>` or `<a href>` value of the post, as written.

    Returns:
        The name, or None for a reference that names no attachment: one with a scheme
        or a host, an empty path, or an absolute path (decoded).
    """
    parts = urlsplit(reference)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    if path.startswith("/"):
        return None
    return posixpath.normpath(path)


def is_attachment_name(name: object) -> bool:
    """Whether `name` is a well-formed attachment name (PROTOCOL.md §3.3): 1 to 255
    bytes of UTF-8, in normal form (no empty or "." segment, ".." only as leading
    segments and not last), not absolute, no backslash, NUL or other control
    character."""
    if not isinstance(name, str) or not name:
        return False
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 at all
        return False
    return (size <= MAX_NAME_BYTES and "\\" not in name and not _CONTROL.search(name)
            and not name.startswith("/") and posixpath.normpath(name) == name
            and name.rsplit("/", 1)[-1] not in (".", ".."))
