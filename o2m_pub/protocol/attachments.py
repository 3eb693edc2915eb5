"""Attachments (PROTOCOL.md §3.3): what a name may be, which name a reference in a
post's Markdown means, and what a media type may be.

One rule for both sides, so they cannot drift apart: the writer names each attachment
after a reference its post's Markdown makes to the file (`referenced_name` of that
reference), and the reader shows, for an image, the attachment whose name is
`referenced_name` of its `src`. The name is the reference's path as written, decoded
and normalised as text: never the file's path worked out on the writer's disk, which a
reader, knowing nothing of the author's folders, could not work out from the reference
(`../notes/x.png` written in `notes/` is the file `x.png` beside the post).

The media type has one rule for both sides too (`is_media_type`): the reader refuses a
post whose attachment breaks it, so the writer puts nothing else there
(`attachment_media_type`), whatever the machine's MIME table guesses.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 255
MAX_ATTACHMENTS = 64  # in one post
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_MEDIA_TYPE = 127  # characters
OCTET_STREAM = "application/octet-stream"
MEDIA_TYPE_RE = re.compile(  # RFC 6838 §4.2 restricted names, in lower case, no parameters
    r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", re.ASCII)


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


def is_media_type(value: object) -> bool:
    """Whether `value` is an attachment's `media_type` as PROTOCOL.md §3.3 allows it:
    `type/subtype` of RFC 6838's restricted names in lower case, no parameters, at most
    127 characters (`image/png`, `application/vnd.ms-excel`; not `image/PNG` nor
    `text/plain; charset=utf-8`)."""
    return (isinstance(value, str) and len(value) <= MAX_MEDIA_TYPE
            and MEDIA_TYPE_RE.fullmatch(value) is not None)


def attachment_media_type(guess: str | None) -> str:
    """The `media_type` a writer gives a file whose type it guessed (from its name, as
    `mimetypes.guess_type` does): the guess in lower case (media types are
    case-insensitive, RFC 6838 §4.2, and MIME tables such as /etc/mime.types hold
    `audio/AMR` or `application/vnd.ms-word.document.macroEnabled.12`), or
    `application/octet-stream` when there is none or it still breaks `is_media_type`.

    Args:
        guess: the guessed type, or None.

    Returns:
        A media type every reader accepts (PROTOCOL.md §3.3).
    """
    media_type = (guess or "").strip().lower()
    return media_type if is_media_type(media_type) else OCTET_STREAM
