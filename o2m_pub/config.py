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
DEFAULT_PORT = 8443  # `o2m serve` (docs/CONFIG.md [serve]); unprivileged, so no root needed
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ServeConfig:
    """How `o2m serve` listens, from the optional ``[serve]`` table."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    http_port: int | None = None  # a plain-HTTP port that only redirects to HTTPS
    cert: str | None = None  # the owner's certificate chain (PEM), relative to the site root
    key: str | None = None  # its private key (PEM); both or neither
    access_log: bool = True
    log_addresses: bool = True


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
    serve: ServeConfig = field(default_factory=ServeConfig)
    publish_target: str | None = None  # [publish] target: a folder or an rclone remote

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
    return SiteConfig(**settings, fingerprint=fingerprint,
                      serve=_serve_table(doc.get("serve", {}), text, path),
                      publish_target=_publish_target(doc.get("publish", {}), text, path))


def _serve_table(table: object, text: str, path: str) -> ServeConfig:
    """The ``[serve]`` table; none of it changes the built site, so it is not fingerprinted."""
    if not isinstance(table, dict):
        raise ConfigError("[serve] must be a table", path=path)

    def fail(key: str, msg: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"serve.{key} {msg}", path=path, line=_line_of(text, key), hint=hint)

    unknown = set(table) - {"host", "port", "http_port", "cert", "key", "access_log",
                            "log_addresses"}
    if unknown:
        raise fail(sorted(unknown)[0], "is not a known setting", hint="see docs/CONFIG.md")

    def port(key: str, default: int | None) -> int | None:
        value = table.get(key, default)
        if value is not None and (type(value) is not int or not 1 <= value <= 65535):
            raise fail(key, "must be a port number from 1 to 65535")
        return value

    def string(key: str, default: str | None) -> str | None:
        value = table.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key, "must be a non-empty string")
        return value.strip() if isinstance(value, str) else None

    def flag(key: str) -> bool:
        value = table.get(key, True)
        if not isinstance(value, bool):
            raise fail(key, "must be true or false")
        return value

    cert, key = string("cert", None), string("key", None)
    if (cert is None) != (key is None):
        raise fail("cert" if cert is None else "key", "is missing: set both cert and key",
                   hint="name the certificate chain and its private key, e.g. from certbot")
    return ServeConfig(host=string("host", "127.0.0.1") or "127.0.0.1",
                       port=port("port", DEFAULT_PORT) or DEFAULT_PORT,
                       http_port=port("http_port", None), cert=cert, key=key,
                       access_log=flag("access_log"), log_addresses=flag("log_addresses"))


def _publish_target(table: object, text: str, path: str) -> str | None:
    """The ``[publish]`` table's target: where `o2m publish` copies build/ by default."""
    if not isinstance(table, dict):
        raise ConfigError("[publish] must be a table", path=path)
    target = table.get("target")
    if target is not None and (not isinstance(target, str) or not target.strip()):
        raise ConfigError("publish.target must be a non-empty string", path=path,
                          line=_line_of(text, "target"),
                          hint='a folder ("/var/www/site") or an rclone remote ("host:www")')
    return target.strip() if target else None


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
