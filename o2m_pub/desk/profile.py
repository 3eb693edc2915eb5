"""The owner's profile: the display name is `author` in o2m.toml's [site] table, and the
name on the card (`o2m card --renew` signs a new card from o2m.toml). The desk changes
the one line of o2m.toml that sets it, keeps every other byte (comments included),
checks the result with the config parser before writing, and writes atomically.

The bio and the picture are the card's alone (PROTOCOL.md §2.4): the picture, cut
square and re-encoded by `photos.square_avatar`, goes to keys/avatar, where `o2m build`
publishes it at the path the card names (as `o2m card --renew --avatar` does).
`actions.Capabilities` says which of these fields the card code of this o2m knows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from o2m_pub._files import write_file
from o2m_pub.config import CONFIG_NAME, parse_config
from o2m_pub.desk.web import DeskError
from o2m_pub.errors import ConfigError
from o2m_pub.protocol.canonical import REFUSED_IN_NAME

if TYPE_CHECKING:
    from o2m_pub.protocol.cards import Avatar

MAX_NAME_CHARS = 64  # PROTOCOL.md §2.4: a card's name
_TABLE = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
_AUTHOR = re.compile(r"^(\s*)author\s*=.*$")


def check_name(name: str) -> str:
    """A display name as a card may carry it (§2.4): one line, at most 64 characters,
    no control, bidi or zero-width characters.

    Raises:
        DeskError: not such a name.
    """
    name = " ".join(name.split())
    if not name:
        raise DeskError("a display name cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise DeskError(f"a display name has at most {MAX_NAME_CHARS} characters")
    if REFUSED_IN_NAME.search(name):
        raise DeskError("a display name cannot hold control, direction or invisible characters")
    return name


def with_author(text: str, name: str) -> str:
    """o2m.toml's text with `author` in [site] set to `name` (the line replaced, or
    added after the table's header); every other line as it was."""
    value = json.dumps(name, ensure_ascii=False)  # a TOML basic string is JSON's
    lines = text.splitlines(keepends=True)
    table, header_at, replaced = None, None, False
    for i, line in enumerate(lines):
        m = _TABLE.match(line)
        if m:
            table = m.group(1).strip()
            if table == "site":
                header_at = i
            continue
        a = _AUTHOR.match(line)
        if table == "site" and a:
            ending = "\n" if line.endswith("\n") else ""
            lines[i] = f"{a.group(1)}author = {value}{ending}"
            replaced = True
            break
    if not replaced:
        if header_at is None:
            raise DeskError("o2m.toml has no [site] table")
        lines.insert(header_at + 1, f"author = {value}\n")
    return "".join(lines)


def set_author(root: Path, name: str) -> str:
    """Write the display name into o2m.toml; returns the text as it was (to put back if
    the card cannot be signed).

    Raises:
        DeskError: not a valid name, or o2m.toml would not parse with it.
    """
    name = check_name(name)
    path = root / CONFIG_NAME
    old = path.read_text(encoding="utf-8")
    new = with_author(old, name)
    try:
        config = parse_config(new.encode(), CONFIG_NAME)
    except ConfigError as e:
        raise DeskError(f"o2m.toml would not be valid: {e}") from None
    if config.author != name:
        raise DeskError("o2m.toml sets the author in a way the desk cannot change: edit it "
                        "by hand")
    write_file(path, new.encode(), 0o644)
    return old


def restore(root: Path, text: str) -> None:
    write_file(root / CONFIG_NAME, text.encode(), 0o644)


def install_avatar(root: Path, png: bytes) -> tuple["Avatar", bytes | None]:
    """Put the owner's new picture (a PNG from `photos.square_avatar`) in keys/avatar
    for the build; returns the card's `avatar` for it and the bytes that were there
    before (to put back if the card cannot be signed)."""
    import hashlib

    from o2m_pub.protocol.cards import Avatar
    from o2m_pub.site.build import AVATAR_FILE

    path = root / AVATAR_FILE
    try:
        before = path.read_bytes()
    except FileNotFoundError:
        before = None
    digest = hashlib.sha256(png).hexdigest()
    write_file(path, png, 0o644)
    return Avatar(path=f"media/{digest[:16]}/avatar.png", sha256=digest,
                  media_type="image/png"), before


def restore_avatar(root: Path, before: bytes | None) -> None:
    from o2m_pub.site.build import AVATAR_FILE
    path = root / AVATAR_FILE
    if before is None:
        path.unlink(missing_ok=True)
    else:
        write_file(path, before, 0o644)


def check_bio(text: str) -> str | None:
    """A bio as the profile form sends it: line breaks made U+000A, blank lines and
    spaces at the ends dropped; None for an empty one (no bio on the card). The card's
    own rules (§2.4: 280 characters, no invisible characters) are checked when it is
    signed.

    Raises:
        DeskError: longer than a card allows.
    """
    import unicodedata

    from o2m_pub.protocol.cards import MAX_BIO_CHARS
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    bio = unicodedata.normalize("NFC", "\n".join(line for line in lines if line))
    if len(bio) > MAX_BIO_CHARS:
        raise DeskError(f"a bio has at most {MAX_BIO_CHARS} characters, not {len(bio)}")
    return bio or None
