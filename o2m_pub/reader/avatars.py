"""Friends' pictures (PROTOCOL.md §2.4 `avatar`), downloaded by the fetch and kept as files.

A card names its picture by a path under its URL, with its SHA-256 and type. `o2m
fetch` downloads it once per hash, with the getter of the friend's feed (their card's
pin, or CAs; redirects only on their origin; a deadline), at most `MAX_AVATAR_BYTES`
(§2.4's 512 KiB), checks the hash, and checks with Pillow that the bytes decode as an
image of the declared type and of a sane size (a small file can claim a huge image: a
decompression bomb is refused, not decoded). The bytes are kept as they came (§2.4:
re-encoded nothing) in ``.o2m/avatars/SHA256`` (0600): a file by hash, no table in the
store. The desk serves them with the declared type and `nosniff`.

A picture that cannot be had or is refused costs the friend's fetch nothing: their
initials show instead, and the next fetch tries again.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from o2m_pub._files import write_file
from o2m_pub.protocol.cards import MAX_AVATAR_BYTES

if TYPE_CHECKING:
    from o2m_pub.protocol.cards import Avatar, Card
    from o2m_pub.reader.fetch_plan import Getter

AVATARS_DIR = "avatars"  # under the state folder (.o2m/)
MAX_PIXELS = 4096 * 4096  # decoded: at most 64 MiB of RGBA, for a picture shown at 96 px
_PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def avatar_file(state_dir: Path, avatar: "Avatar") -> Path:
    """Where the picture of this hash is kept (it may not be there)."""
    return state_dir / AVATARS_DIR / avatar.sha256


def picture_problem(data: bytes, media_type: str) -> str | None:
    """Why these bytes are no picture of `media_type` to show (None: they are one):
    too big, not that format by their content, too many pixels, or damaged."""
    from PIL import Image

    if len(data) > MAX_AVATAR_BYTES:
        return f"over {MAX_AVATAR_BYTES // 1024} KiB"
    expected = _PILLOW_FORMATS.get(media_type)
    if expected is None:
        return f"not a type a card's picture may have ({media_type})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[expected]) as image:
                if image.width * image.height > MAX_PIXELS:
                    return "too large in pixels"
                image.load()  # decodes it all: a damaged file fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too large in pixels"
    except Exception as e:  # Pillow raises many kinds for damaged input  # noqa: BLE001
        return f"not a readable {expected} image ({type(e).__name__})"
    return None


def fetch_avatar(card: "Card", get: "Getter", state_dir: Path) -> str | None:
    """Download `card`'s picture unless it is kept already; returns why it was not
    kept (None: it is there now, or the card has none).

    Raises nothing: a picture is never a reason for a friend's fetch to fail."""
    from o2m_pub.reader.fetch_plan import Refused

    avatar = card.avatar
    if avatar is None:
        return None
    path = avatar_file(state_dir, avatar)
    if path.exists():
        return None
    try:
        response = get(avatar.path, cap=MAX_AVATAR_BYTES)
    except Refused as e:
        return f"the picture could not be downloaded ({e.reason})"
    if response.status != 200:
        return f"the picture could not be downloaded (HTTP {response.status})"
    if hashlib.sha256(response.body).hexdigest() != avatar.sha256:
        return "the picture is not the one the card names (its hash differs)"
    problem = picture_problem(response.body, avatar.media_type)
    if problem is not None:
        return f"the picture was refused: {problem}"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(path, response.body, 0o600)
    except OSError as e:
        return f"the picture could not be kept ({e.strerror or e})"
    return None
