"""Site configuration: ``o2m.toml`` at the site root.

Parsing is pure (bytes in, `SiteConfig` out) so it can be tested without files;
`load` is the thin reader around it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Mapping
from urllib.parse import urlsplit

from o2m_pub.errors import ConfigError

CONFIG_NAME = "o2m.toml"
CARD_FILE = "keys/card.json"  # the owner's signed card (PROTOCOL.md §2.4)
STATE_DIR = ".o2m"
MANIFEST, PREVIEW_MANIFEST = "build.db", "preview.db"  # the builder's state, in STATE_DIR
BUILD_DIR = "build"  # the public site, at the site root
PREVIEW_DIR = "preview"  # the drafts' private preview, in STATE_DIR
RESERVED_AUDIENCES = frozenset({"public", "friends"})
DEFAULT_PORT = 8443  # `o2m serve` (docs/CONFIG.md [serve]); unprivileged, so no root needed
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# what each table takes; [groups] takes any group name ([serve] and [reader] refuse an
# unknown key, the others warn, as front matter does)
SITE_KEYS = ("name", "author", "url", "description", "language", "timezone",
             "default_audience", "posts_per_page", "feed_items", "raw_html", "webmention",
             "webmention_endpoint", "webmention_links")
TABLES = ("site", "groups", "serve", "reader", "publish")
PUBLISH_KEYS = ("target",)


def build_paths(root: Path, drafts: bool) -> tuple[Path, Path]:
    """(the builder's state, its output folder) for the site at `root`: build/, or with
    drafts the private preview. One answer for the builder and for `o2m build`, which
    starts the scan ahead of them before it imports the builder."""
    state = root / STATE_DIR
    if drafts:
        return state / PREVIEW_MANIFEST, state / PREVIEW_DIR
    return state / MANIFEST, root / BUILD_DIR


@dataclass(frozen=True)
class ServeConfig:
    """How `o2m serve` listens, from the optional ``[serve]`` table."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: site.url's port, else DEFAULT_PORT (`serve_port`)
    http_port: int | None = None  # a plain-HTTP port that only redirects to HTTPS
    cert: str | None = None  # the owner's certificate chain (PEM), relative to the site root
    key: str | None = None  # its private key (PEM); both or neither
    access_log: bool = True
    log_addresses: bool = True
    inbox_per_address: int = 10  # POSTs a minute to the inbox from one address (PROTOCOL.md §5)
    inbox_total: int = 120  # ... and from everyone together
    moved_to: str | None = None  # the site moved there: all but its card is redirected


DEFAULT_QUOTA_PER_FRIEND = 256 << 20  # [reader] quota_per_friend (docs/CONFIG.md)
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.I)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


@dataclass(frozen=True)
class ReaderConfig:
    """How `o2m fetch` keeps friends' posts, from the optional ``[reader]`` table."""

    quota_per_friend: int = DEFAULT_QUOTA_PER_FRIEND  # bytes one friend may take, all runs


def parse_size(text: object) -> int:
    """A size as o2m.toml writes it: "256 MiB", "1 GiB", "500 MB", or bytes (an integer).

    Raises:
        ValueError: none of those.
    """
    if type(text) is int and text >= 0:
        return text
    m = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError("not a size")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "B").lower()])


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
    raw_html: bool = True  # false: raw HTML in posts is escaped (docs/HOSTING.md)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    # Webmention (PROTOCOL.md §1.6): advertise, accept and send them; an external
    # endpoint to advertise instead of `o2m serve`'s own; mention every outbound link of
    # a public post, not only its reply_to
    webmention: bool = True
    webmention_endpoint: str | None = None
    webmention_links: bool = False
    # o2m.toml's lines of [site]'s keys, for a setting found wrong later (a
    # default_audience that names no friend: `site.audience.check_default_audience`)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)
    warnings: tuple[str, ...] = ()  # "o2m.toml:LINE: what": unknown keys, ignored

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def base_path(self) -> str:
        """The URL path of the site root, e.g. "/" or "/blog/" (for root-relative links)."""
        return urlsplit(self.url).path or "/"


def _line_of(text: str, key: str, table: str | None = None) -> int | None:
    """The line where `key = ...` is set (in `table`'s part of the file when given, else
    anywhere), for error messages (tomllib gives none)."""
    start, end = 0, len(text)
    if table is not None:
        header = _header(text, table)
        if header:
            start = header.end()
            after = re.compile(r"^\s*\[", re.M).search(text, start)
            end = after.start() if after else end
    m = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", re.M).search(text, start, end)
    if m is None and table is not None:
        return _line_of(text, key)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _unknown(names: Collection[str], known: Collection[str], what: str, text: str,
             path: str, table: str | None = None) -> list[str]:
    """Warnings for names o2m does not know ("o2m.toml:3: unknown setting 'languag' in
    [site] (did you mean 'language'?), ignored"), as front matter's unknown fields get."""
    warnings = []
    for name in names:
        if name in known:
            continue
        import difflib  # (only for a mistake)
        near = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.7)
        guess = f" (did you mean {near[0]!r}?)" if near else ""
        line = (_line_of(text, name, table) if table is not None
                else _header_line(text, name))
        place = f" in [{table}]" if table is not None else ""
        warnings.append(f"{path}{f':{line}' if line else ''}: unknown {what} {name!r}"
                        f"{place}{guess}, ignored")
    return warnings


def _header(text: str, table: str) -> re.Match[str] | None:
    """The `[table]` line of o2m.toml's text."""
    return re.search(rf"^\s*\[\s*{re.escape(table)}\s*\]", text, re.M)


def _header_line(text: str, table: str) -> int | None:
    m = _header(text, table)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _url_problem(url: str) -> tuple[str, str] | None:
    """Why `url` cannot be the site's address, with a hint; None when it can. The rules
    of the card's `url` (PROTOCOL.md §2.4, `protocol.cards.check_card_url`), so a URL
    o2m.toml takes is one the build can sign a card for."""
    example = 'e.g. url = "https://ada.example/" (friends fetch your feeds there, over TLS)'
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "has a malformed host or port", example
    if parts.scheme != "https" or not parts.netloc:
        return f"must be an absolute https:// URL, not {url!r}", example
    if not re.fullmatch(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*", url):
        return ("holds a character that is not allowed (spaces, control or non-ASCII "
                "characters)", "write international host names in punycode (xn--…)")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not have a query or fragment", example
    if "@" in parts.netloc:
        return "must not hold a user name or password", example
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal, its brackets dropped
        import ipaddress  # (only for one)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "has a malformed IPv6 host", example
    elif not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", host):
        return "has no valid host name", example
    return None


def _audience(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("must be a name or a list of names")


class _Table:
    """One table of o2m.toml, read with one-line errors naming `table.key` and its line."""

    def __init__(self, name: str, value: object, text: str, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table", path=path)
        self.name, self.values, self.source, self.path = name, value, text, path

    def fail(self, key: str, msg: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.name}.{key} {msg}", path=self.path,
                           line=_line_of(self.source, key, self.name), hint=hint)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        """A string, stripped; a key with no default (or a required one) must not be empty."""
        value = self.values.get(key, default)
        if value is None and not required:
            return None
        strict = required or default is None
        if not isinstance(value, str) or (strict and not value.strip()):
            raise self.fail(key, "must be a non-empty string" if strict else "must be a string")
        return value.strip()

    def number(self, key: str, default: int | None, low: int, high: int,
               what: str = "a whole number") -> int | None:
        value = self.values.get(key, default)
        if value is not None and (type(value) is not int or not low <= value <= high):
            raise self.fail(key, f"must be {what} from {low} to {high}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value


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

    if "site" not in doc:
        raise ConfigError("no [site] table", path=path, hint="start the file with a [site] table")
    table = _Table("site", doc["site"], text, path)
    site, fail, text_field = table.values, table.fail, table.text

    name = text_field("name", required=True)
    author = text_field("author", name)
    url = text_field("url", required=True)
    problem = _url_problem(url)
    if problem is not None:
        raise fail("url", problem[0], hint=problem[1])
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

    settings = dict(
        name=name, author=author, url=url,
        description=text_field("description", ""),
        language=text_field("language", "en"),
        timezone=tz,
        default_audience=default_audience,
        posts_per_page=table.number("posts_per_page", 10, 1, 1000),
        feed_items=table.number("feed_items", 20, 1, 1000),
        groups=groups,
        # both change every page's <link rel="webmention">: fingerprinted
        webmention=table.flag("webmention", True),
        webmention_endpoint=_endpoint(table),
    )
    fingerprint = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()
    warnings = (_unknown([k for k, v in doc.items() if isinstance(v, dict)], TABLES, "table",
                         text, path)
                + [f"{path}{f':{n}' if (n := _line_of(text, k)) else ''}: {k!r} is outside "
                   "any table, ignored" for k, v in doc.items() if not isinstance(v, dict)]
                + _unknown(site, SITE_KEYS, "setting", text, path, "site")
                + _unknown(doc.get("publish", {}) if isinstance(doc.get("publish"), dict)
                           else {}, PUBLISH_KEYS, "setting", text, path,
                           "publish"))
    lines = {k: line for k in site if (line := _line_of(text, k, "site")) is not None}
    # raw_html changes post bodies only, which the build renders again when it changes
    # (`sources.markup_options`), so it is not in the fingerprint
    return SiteConfig(**settings, fingerprint=fingerprint, raw_html=table.flag("raw_html", True),
                      lines=lines, warnings=tuple(warnings),
                      webmention_links=table.flag("webmention_links", False),
                      serve=_serve_table(_Table("serve", doc.get("serve", {}), text, path)),
                      reader=_reader_table(_Table("reader", doc.get("reader", {}), text, path)),
                      publish_target=_Table("publish", doc.get("publish", {}), text, path)
                      .text("target"))


def _endpoint(table: _Table) -> str | None:
    """``webmention_endpoint``: an absolute http(s) URL (a static host's external
    Webmention receiver), or None for `o2m serve`'s own."""
    url = table.text("webmention_endpoint")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment \
            or any(c.isspace() or c in "<>\"" for c in url):
        raise table.fail("webmention_endpoint", f"must be an absolute http(s) URL, not {url!r}",
                         hint='e.g. webmention_endpoint = '
                              '"https://webmention.io/example.org/webmention"')
    return url


def _serve_table(table: _Table) -> ServeConfig:
    """The ``[serve]`` table; none of it changes the built site, so it is not fingerprinted."""
    unknown = set(table.values) - {"host", "port", "http_port", "cert", "key", "access_log",
                                   "log_addresses", "inbox_per_address", "inbox_total",
                                   "moved_to"}
    if unknown:
        raise table.fail(sorted(unknown)[0], "is not a known setting", hint="see docs/CONFIG.md")
    cert, key = table.text("cert"), table.text("key")
    if (cert is None) != (key is None):
        raise table.fail("cert" if cert is None else "key", "is missing: set both cert and key",
                         hint="name the certificate chain and its private key, e.g. from certbot")
    return ServeConfig(host=table.text("host", "127.0.0.1"),
                       port=table.number("port", None, 1, 65535, "a port number"),
                       http_port=table.number("http_port", None, 1, 65535, "a port number"),
                       cert=cert, key=key, access_log=table.flag("access_log", True),
                       log_addresses=table.flag("log_addresses", True),
                       inbox_per_address=table.number("inbox_per_address", 10, 1, 100_000,
                                                      "a number of requests a minute"),
                       inbox_total=table.number("inbox_total", 120, 1, 1_000_000,
                                                "a number of requests a minute"),
                       moved_to=_moved_to(table))


def _moved_to(table: _Table) -> str | None:
    """``[serve] moved_to``: the https base URL the site moved to (`o2m move`)."""
    url = table.text("moved_to")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment \
            or not url.isascii() or any(c in url for c in " \t\r\n\"<>\\"):
        raise table.fail("moved_to", f"must be an absolute https:// URL, not {url!r}")
    return url if url.endswith("/") else url + "/"


_TABLE_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_URL_LINE_RE = re.compile(r"""^(\s*url\s*=\s*)("(?:[^"\\]|\\.)*"|'[^']*')(.*)$""")


def replace_site_url(text: str, url: str) -> str:
    """o2m.toml's text with ``[site] url`` set to `url`, every other byte (comments,
    order) kept: what `o2m move` writes.

    Raises:
        ConfigError: there is no ``url = "…"`` line in the [site] table.
    """
    lines = text.splitlines(keepends=True)
    table = None
    for i, line in enumerate(lines):
        header = _TABLE_RE.match(line)
        if header:
            table = header.group(1)
            continue
        m = _URL_LINE_RE.match(line.rstrip("\r\n"))
        if table == "site" and m:
            ending = line[len(line.rstrip("\r\n")):]
            lines[i] = m.group(1) + json.dumps(url) + m.group(3) + ending
            return "".join(lines)
    raise ConfigError("no url = \"…\" line in the [site] table", path=CONFIG_NAME,
                      hint="set [site] url by hand")


def _reader_table(table: _Table) -> ReaderConfig:
    """The ``[reader]`` table (`o2m fetch`); it changes nothing built, so no fingerprint."""
    unknown = set(table.values) - {"quota_per_friend"}
    if unknown:
        raise table.fail(sorted(unknown)[0], "is not a known setting", hint="see docs/CONFIG.md")
    value = table.values.get("quota_per_friend", DEFAULT_QUOTA_PER_FRIEND)
    try:
        quota = parse_size(value)
    except ValueError:
        raise table.fail("quota_per_friend", f"must be a size such as \"256 MiB\", not "
                         f"{value!r}", hint='e.g. quota_per_friend = "1 GiB"') from None
    if quota < 64 << 10:
        raise table.fail("quota_per_friend", "must be at least 64 KiB",
                         hint='a bare number is bytes: write a unit, e.g. "256 MiB"')
    return ReaderConfig(quota_per_friend=quota)


def serve_port(config: SiteConfig) -> int:
    """The port `o2m serve` listens on without --port: [serve] port; else the port
    site.url names, the one friends' cards send them to (`o2m init --url
    https://127.0.0.1:45361/`); else DEFAULT_PORT (a URL without a port, or with 443,
    means 443, which only root may take: a proxy or a port forward in front is expected
    then)."""
    if config.serve.port is not None:
        return config.serve.port
    named = urlsplit(config.url).port
    return named if named and named != 443 else DEFAULT_PORT


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
