"""Site configuration: ``o2m.toml`` at the site root.

Parsing is pure (bytes in, `SiteConfig` out) so it can be tested without files;
`load` is the thin reader around it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError

CONFIG_NAME = "o2m.toml"
CARD_FILE = "keys/card.json"  # the owner's signed card (PROTOCOL.md §2.4)
STATE_DIR = ".o2m"
RESERVED_AUDIENCES = frozenset({"public", "friends"})
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SiteConfig:
    """What the builder needs to know about the site, validated."""

    name: str
    author: str
    url: str  # absolute, ends with "/"
    description: str = ""
    language: str = "en"
    timezone: str = "UTC"
    default_audience: tuple[str, ...] = ("friends",)
    posts_per_page: int = 10
    feed_items: int = 20
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fingerprint: str = ""  # hash of the settings that change rendered output

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def base_path(self) -> str:
        """The URL path of the site root, e.g. "/" or "/blog/" (for root-relative links)."""
        return urlsplit(self.url).path or "/"


def _line_of(text: str, key: str) -> int | None:
    """The line where `key = ...` is set, for error messages (tomllib gives none)."""
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _audience(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("must be a name or a list of names")


def parse_config(data: bytes, path: str = CONFIG_NAME) -> SiteConfig:
    """Parse and validate the bytes of ``o2m.toml``.

    Raises:
        ConfigError: naming the file, the line where known, and what to change.
    """
    try:
        text = data.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", path=path, hint="save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"not valid TOML: {e}", path=path, line=int(m.group(1)) if m else None,
                          hint="see docs/CONFIG.md for the format") from None

    site = doc.get("site")
    if not isinstance(site, dict):
        raise ConfigError("no [site] table", path=path, hint="start the file with a [site] table")

    def fail(key: str, msg: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"site.{key} {msg}", path=path, line=_line_of(text, key), hint=hint)

    def text_field(key: str, default: str | None = None) -> str:
        value = site.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise fail(key, "must be a non-empty string" if default is None else "must be a string")
        return value.strip()

    name = text_field("name")
    author = text_field("author", name)
    url = text_field("url")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise fail("url", f"must be an absolute https:// URL, not {url!r}",
                   hint='e.g. url = "https://example.org/"')
    if not url.endswith("/"):
        url += "/"
    tz = text_field("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise fail("timezone", f"{tz!r} is not a known time zone",
                   hint='use an IANA name such as "Europe/Berlin" or "UTC"') from None

    groups: dict[str, tuple[str, ...]] = {}
    raw_groups = doc.get("groups", {})
    if not isinstance(raw_groups, dict):
        raise ConfigError("[groups] must be a table of name = [friends]", path=path)
    for gname, members in raw_groups.items():
        if not _NAME_RE.fullmatch(gname) or gname in RESERVED_AUDIENCES:
            raise ConfigError(f"group name {gname!r} is not allowed", path=path,
                              line=_line_of(text, gname),
                              hint="use lower-case letters, digits, - and _; not public or friends")
        try:
            groups[gname] = _audience(members)
        except ValueError as e:
            raise ConfigError(f"group {gname} {e}", path=path, line=_line_of(text, gname)) from None

    try:
        default_audience = _audience(site.get("default_audience", "friends"))
    except ValueError as e:
        raise fail("default_audience", str(e)) from None

    def int_field(key: str, default: int, low: int, high: int) -> int:
        value = site.get(key, default)
        if type(value) is not int or not low <= value <= high:
            raise fail(key, f"must be a whole number from {low} to {high}")
        return value

    settings = dict(
        name=name, author=author, url=url,
        description=text_field("description", ""),
        language=text_field("language", "en"),
        timezone=tz,
        default_audience=default_audience,
        posts_per_page=int_field("posts_per_page", 10, 1, 1000),
        feed_items=int_field("feed_items", 20, 1, 1000),
        groups=groups,
    )
    fingerprint = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()
    return SiteConfig(**settings, fingerprint=fingerprint)


def known_audience_names(friends: Collection[str],
                         groups: Mapping[str, Collection[str]]) -> frozenset[str]:
    """Every name a post's ``audience:`` may use: public, friends, groups, friends' names."""
    return RESERVED_AUDIENCES | frozenset(friends) | frozenset(groups)


def find_site_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds an o2m.toml, as git finds .git."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


def load(root: Path) -> SiteConfig:
    """Read and parse the site's o2m.toml."""
    path = root / CONFIG_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("missing", path=CONFIG_NAME,
                          hint="run `o2m init` to make a site here") from None
    return parse_config(data, CONFIG_NAME)
