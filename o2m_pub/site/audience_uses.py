"""Where a friend's name is used as an audience: the posts whose `audience:` names it,
and o2m.toml's groups and default_audience. `o2m friend rename` and `remove` list them
(a post naming a name that no longer means anyone is left out of that friend's feed,
and the next build stops on it), and a rename can rewrite them.

The rewrite is careful: it changes only the name, as a whole word, in the lines of the
`audience:` field (or, in o2m.toml, inside quotes on the lines of the groups and of
default_audience), then parses the result again and keeps it only if everything but
the audience (and in o2m.toml, but the groups and default_audience) reads the same.
A file where that fails is left for the owner to edit, and listed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from o2m_pub.config import CONFIG_NAME, ConfigError, SiteConfig, parse_config
from o2m_pub.errors import PostError
from o2m_pub.site.content import parse_post
from o2m_pub.site.scan import scan_sources

_FIELD_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")
_TABLE_LINE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')\s*=")


@dataclass(frozen=True)
class NameUse:
    """One place that names a friend as an audience: a file (from the site's root), the
    line, and what names it ("audience", "group family", "default_audience")."""

    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def _word(name: str) -> re.Pattern[str]:
    """`name` as a whole audience name: not a part of a longer one (bob, not bobby)."""
    return re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(name)}(?![A-Za-z0-9_-])")


# -- posts ----------------------------------------------------------------------------

def _audience_lines(text: str) -> list[int]:
    """The 0-based indexes of the lines of the front matter's `audience:` field: its own
    line and those under it (a block list), up to the next field."""
    lines = text.split("\n")
    if not lines or lines[0].lstrip("\ufeff").rstrip("\r") != "---":
        return []
    found: list[int] = []
    inside = False
    for i, line in enumerate(lines[1:], start=1):
        bare = line.rstrip("\r")
        if bare in ("---", "..."):
            break
        field = _FIELD_LINE.match(bare)
        if field:
            inside = field.group(1) == "audience"
        if inside:
            found.append(i)
    return found


def post_uses(data: bytes, source: str, name: str, tz: dt.tzinfo) -> int | None:
    """The line of the post's `audience:` if it names `name`, else None. A post that
    does not parse is judged by the words of its `audience:` lines alone."""
    try:
        post = parse_post(data, source, tz=tz, default_audience=("friends",))
    except PostError:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        indexes = _audience_lines(text)
        lines = text.split("\n")
        word = _word(name)
        hit = any(word.search(lines[i].split("#", 1)[0]) for i in indexes)
        return indexes[0] + 1 if hit else None
    if "audience" not in post.lines or name not in post.audience:
        return None
    return post.lines["audience"]


def rewrite_post(data: bytes, source: str, old: str, new: str,
                 tz: dt.tzinfo) -> bytes | None:
    """The post with `old` renamed `new` in its audience, every other byte as it was; None
    when that cannot be done safely (the post does not parse, or the result would read
    differently in anything but the audience)."""
    try:
        before = parse_post(data, source, tz=tz, default_audience=("friends",))
        text = data.decode("utf-8")
    except (PostError, UnicodeDecodeError):
        return None
    lines = text.split("\n")
    word = _word(old)
    for i in _audience_lines(text):
        lines[i] = word.sub(new, lines[i])
    changed = "\n".join(lines).encode("utf-8")
    try:
        after = parse_post(changed, source, tz=tz, default_audience=("friends",))
    except PostError:
        return None
    expected = tuple(new if a == old else a for a in before.audience)
    if changed == data or after != dataclasses.replace(before, audience=expected):
        return None
    return changed


# -- o2m.toml ---------------------------------------------------------------------------

def _config_lines(text: str, config: SiteConfig, name: str) -> dict[int, str]:
    """0-based line index -> what it sets, for o2m.toml's lines that name `name` in
    quotes in a group of [groups] or in [site] default_audience."""
    quoted = re.compile(rf"""(["']){re.escape(name)}\1""")
    found: dict[int, str] = {}
    table, key = None, None
    for i, line in enumerate(text.split("\n")):
        header = _TABLE_LINE.match(line)
        if header:
            table, key = header.group(1), None
            continue
        assigned = _KEY_LINE.match(line)
        if assigned:
            key = assigned.group(1).strip("\"'")
        if not quoted.search(line.split("#", 1)[0]):
            continue
        if table == "groups" and key is not None and name in config.groups.get(key, ()):
            found[i] = f"group {key}"
        elif table == "site" and key == "default_audience" and name in config.default_audience:
            found[i] = "default_audience"
    return found


def config_uses(text: str, config: SiteConfig, name: str) -> list[NameUse]:
    """Where o2m.toml names `name`: its groups and its default_audience."""
    return [NameUse(CONFIG_NAME, i + 1, what)
            for i, what in sorted(_config_lines(text, config, name).items())]


def rewrite_config(text: str, config: SiteConfig, old: str, new: str) -> str | None:
    """o2m.toml's text with `old` renamed `new` in its groups and default_audience, the
    rest unchanged; None when that cannot be done safely."""
    lines = text.split("\n")
    quoted = re.compile(rf"""(["']){re.escape(old)}\1""")
    targets = _config_lines(text, config, old)
    for i in targets:
        code, hash_, comment = lines[i].partition("#")
        lines[i] = quoted.sub(lambda m: f"{m.group(1)}{new}{m.group(1)}", code) + hash_ + comment
    changed = "\n".join(lines)
    try:
        after = parse_config(changed.encode("utf-8"))
    except ConfigError:
        return None
    groups = {g: tuple(new if m == old else m for m in members)
              for g, members in config.groups.items()}
    default = tuple(new if a == old else a for a in config.default_audience)
    expected = dataclasses.replace(config, groups=groups, default_audience=default,
                                   fingerprint=after.fingerprint)
    if not targets or after != expected:
        return None
    return changed


# -- both -------------------------------------------------------------------------------

def find_uses(root: Path, config: SiteConfig, name: str) -> list[NameUse]:
    """Every place of the site that names `name` as an audience: o2m.toml's lines, then
    the posts, in path order. A post is parsed only if its bytes hold the name."""
    uses: list[NameUse] = []
    toml = root / CONFIG_NAME
    if name in config.default_audience or any(name in m for m in config.groups.values()):
        uses += config_uses(toml.read_text("utf-8"), config, name) or [
            NameUse(CONFIG_NAME, 1, "groups")]
    needle = name.encode()
    for source in sorted(scan_sources(root)[0]):  # the post files a build finds
        try:
            data = (root / source).read_bytes()
        except FileNotFoundError:
            continue
        if needle not in data:
            continue
        line = post_uses(data, source, name, config.tz)
        if line is not None:
            uses.append(NameUse(source, line, "audience"))
    return uses

