"""Posts as files: front matter (YAML between ``---`` lines) and a Markdown body.

Pure functions: `parse_post` takes the file's bytes and returns a `PostSource` or raises
`PostError` naming the line. Time zones and the site's audiences are passed in.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from o2m_pub.errors import PostError
from o2m_pub.protocol.post_limits import tags_problem, text_problem

MAX_POST_BYTES = 8 * 1024 * 1024
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_FRONT_MATTER_NODES = 10_000
_BARE_FIELD = re.compile(r"\ufeff?([A-Za-z_]+):[ \t\r\n]")  # a field's line, no dashes above
KNOWN_FIELDS = frozenset({"title", "date", "updated", "tags", "summary", "slug", "draft",
                          "audience", "reply_to", "thread"})
# A misspelling of these would not be a harmless omission: a post meant for one audience
# would go to the default one, a draft would be published. Such a post is refused.
GUARDING_FIELDS = {
    "audience": "this post would go to the default audience instead of the one you meant",
    "draft": "this draft would be published",
}
_SHORT_HOUR = re.compile(r"^(\d{4}-\d\d-\d\d[T ])(\d)(?=:)")  # 2026-03-14T9:30
SLUG_RE = re.compile(r"^[^\W_][\w-]{0,127}$")
_DATE_IN_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.M)


@lru_cache(maxsize=1)
def _loader_class():  # noqa: ANN202 - a yaml Loader class, made on first use
    """The safe loader, minus implicit timestamps: dates stay text so we parse them
    ourselves with the site's time zone and a useful error message. (PyYAML is imported
    here, not at start-up: a build with no changed post never needs it.)"""
    import yaml

    class FrontMatterLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    FrontMatterLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return FrontMatterLoader


@dataclass(frozen=True)
class PostSource:
    """A post as written, validated; what the renderer and the planner work from."""

    source: str  # site-relative path, e.g. "content/2026/trip/index.md"
    title: str | None
    date: dt.datetime
    updated: dt.datetime | None
    tags: tuple[str, ...]
    summary: str | None
    slug: str
    draft: bool
    audience: tuple[str, ...]
    reply_to: str | None  # an https URL, or a post reference o2m:<author>/<id> (§4.1)
    body: str
    body_line: int  # the file line where the Markdown body starts
    lines: dict[str, int] = field(default_factory=dict)  # front matter field -> line
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # "file:line: what", for the build's warning lines
    thread: str | None = None  # the root of a nested reply's thread (a reference, §4.1)

    @property
    def path(self) -> str:
        """The post's folder in the built site (its stable permalink), e.g. "2026/trip/"."""
        return f"{self.date.year:04d}/{self.slug}/"


@lru_cache(maxsize=4096)
def slugify(text: str) -> str:
    """A URL-safe slug: lower case, letters and digits kept (any script), the rest "-"."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[\W_]+", "-", text).strip("-")
    return text[:80].rstrip("-") or "post"


def split_front_matter(text: str, source: str) -> tuple[str | None, str, int]:
    """Split a post into (front matter text or None, body, first body line).

    Raises:
        PostError: the front matter never ends, or its fields stand without the dashes
            (a first line such as `title: …`, as Pelican's Markdown posts begin: they
            would otherwise be published as the post's first paragraph).
    """
    if not (text.startswith("---\n") or text.startswith("---\r\n")):
        if _bare_fields(text, source):
            field = _BARE_FIELD.match(text).group(1)  # type: ignore[union-attr]
            raise PostError(source, 1, f"`{field}:` and the fields below it are not "
                            "between lines of three dashes",
                            hint="put a line `---` above the first field and another below "
                            "the last (a body that starts so: an empty `---` `---` above it)")
        return None, text, 1
    start = text.index("\n") + 1
    end = _FRONT_MATTER_END.search(text, start)
    if not end:
        raise PostError(source, 1, "front matter starts with --- but never ends",
                        hint="close the front matter with a line of three dashes: ---")
    front = text[start:end.start()]
    body_start = end.end() + 1
    return front, text[body_start:], text.count("\n", 0, min(body_start, len(text))) + 1


def _bare_fields(text: str, source: str) -> bool:
    """Whether a post without dashes starts with front matter fields all the same: its
    first two lines are o2m's fields (`title:`, `date:` …), or its first line is one
    and its file name has no date (without a `date:`, such a post fails anyway). A post
    dated by its name may start with a sentence like "Thread: a few thoughts"."""
    lines = text.lstrip("\ufeff").split("\n", 2)
    known = [bool(m) and m.group(1).lower() in KNOWN_FIELDS
             for m in map(_BARE_FIELD.match, (line + "\n" for line in lines[:2]))]
    return known[0] and ((len(known) > 1 and known[1])
                         or not _DATE_IN_NAME.match(_stem(source)))


def _count_nodes(value: Any, budget: list[int]) -> None:
    """Walk `value`, failing once it has too many nodes: YAML aliases can make a
    small file expand into billions of values ("billion laughs")."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("too many values")
    if isinstance(value, dict):
        for k, v in value.items():
            _count_nodes(k, budget)
            _count_nodes(v, budget)
    elif isinstance(value, list):
        for v in value:
            _count_nodes(v, budget)


def _load_yaml(front: str, source: str, first_line: int) -> tuple[dict[str, Any], dict[str, int]]:
    if len(front.encode()) > MAX_FRONT_MATTER_BYTES:
        raise PostError(source, 1, f"front matter is over {MAX_FRONT_MATTER_BYTES // 1024} KiB",
                        hint="keep long text in the body, below the front matter")
    import yaml
    loader = _loader_class()(front)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = first_line + (mark.line if mark else 0)
        what = (e.problem or "invalid YAML").strip()
        raise PostError(source, line, f"front matter is not valid YAML: {what}",
                        hint="check quoting and indentation; a value with ': ' needs quotes") from None
    except yaml.YAMLError as e:
        raise PostError(source, first_line, f"front matter is not valid YAML: {e}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PostError(source, first_line, "front matter must be a set of `key: value` lines")
    try:
        _count_nodes(data, [MAX_FRONT_MATTER_NODES])
    except ValueError:
        raise PostError(source, first_line, "front matter expands to too many values",
                        hint="remove YAML aliases (*name) that repeat large values") from None
    lines = {}
    if node is not None and isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node.value, str):
                lines[key_node.value] = first_line + key_node.start_mark.line
    return data, lines


def _is_post_ref(text: Any) -> bool:
    """PROTOCOL.md §4.1's check, imported only for what looks like a reference (it
    loads PyNaCl, which a plain post, or a reply to an https:// address, never needs)."""
    if not (isinstance(text, str) and text.startswith("o2m:")):
        return False
    from o2m_pub.protocol.conversation import is_post_ref
    return is_post_ref(text)


def parse_datetime(value: Any, tz: dt.tzinfo) -> dt.datetime:
    """ISO 8601 date or date-time, with or without zone; naive times are in `tz`."""
    if isinstance(value, (int, float)) or not isinstance(value, str):
        raise ValueError("must be a date such as 2026-11-24 or 2026-11-24T09:30:00+01:00")
    text = _SHORT_HOUR.sub(r"\g<1>0\2", value.strip())  # 9:30 is 09:30
    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            return dt.datetime(d.year, d.month, d.day, tzinfo=tz)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        m = re.match(r"(\d{4})-(\d\d)-(\d\d)(?!\d)", text)
        try:
            reason = m and dt.date(*map(int, m.groups())) and None
        except ValueError as e:  # "month must be in 1..12", "day is out of range …"
            reason = str(e)
        raise ValueError(f"{value.strip()!r} is not a date"
                         + (f": {reason}" if reason else " o2m reads")) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


DATE_HINT = ("write it as 2026-11-24, 2026-11-24 09:30 or 2026-11-24T09:30:00+01:00 "
             "(year-month-day, 24-hour time, an optional UTC offset)")


def unknown_fields(meta: dict[str, Any], lines: dict[str, int],
                   source: str) -> tuple[list[str], PostError | None]:
    """Front matter fields o2m does not know: warnings ("file:line: unknown field 'tag'
    (did you mean 'tags'?), ignored"), and the error for a misspelt field that guards
    who reads the post (`GUARDING_FIELDS`), which must never pass silently."""
    warnings = []
    for key in meta:
        if not isinstance(key, str) or key in KNOWN_FIELDS:
            continue
        near = difflib.get_close_matches(key.lower(), KNOWN_FIELDS, n=1, cutoff=0.7)
        line = lines.get(key, 1)
        if near and near[0] in GUARDING_FIELDS and near[0] not in meta:
            return warnings, PostError(
                source, line, f"unknown field {key!r} (did you mean {near[0]!r}?)",
                hint=f"fix its name: left as it is, {GUARDING_FIELDS[near[0]]}")
        guess = f" (did you mean {near[0]!r}?)" if near else ""
        warnings.append(f"{source}:{line}: unknown field {key!r}{guess}, ignored")
    return warnings, None


def _as_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise ValueError("must be a name or a list of names")
    return tuple(v.strip() for v in value)


def parse_post(data: bytes, source: str, *, tz: dt.tzinfo,
               default_audience: tuple[str, ...]) -> PostSource:
    """Parse one post file.

    Args:
        data: the file's bytes.
        source: its site-relative path, used in messages and to derive the slug.
        tz: the site's time zone, for dates written without one.
        default_audience: the audience of a post that names none.

    Raises:
        PostError: for anything wrong, naming the line and how to mend it.
    """
    if len(data) > MAX_POST_BYTES:
        raise PostError(source, 1, f"the file is over {MAX_POST_BYTES // 2**20} MiB",
                        hint="split it or move large data into attachments")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise PostError(source, line, "not UTF-8 text", hint="save the file as UTF-8") from None
    if "\x00" in text:
        raise PostError(source, text.count("\n", 0, text.index("\x00")) + 1,
                        "the file contains a NUL character")
    front, body, body_line = split_front_matter(text, source)
    meta, lines = _load_yaml(front, source, 2) if front is not None else ({}, {})

    def fail(key: str, message: str, hint: str | None = None) -> PostError:
        return PostError(source, lines.get(key, 1), message, hint=hint)

    def text_value(key: str) -> str | None:
        value = meta.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise fail(key, f"`{key}` must be text")
        return str(value).strip() or None

    stem = _stem(source)
    date_in_name = _DATE_IN_NAME.match(stem)
    if "date" not in meta and not date_in_name:
        raise fail("date", "no `date:` in the front matter",
                   hint="add a line such as `date: 2026-11-24 09:30`")
    warnings, misspelt = unknown_fields(meta, lines, source)
    if misspelt is not None:
        raise misspelt
    try:
        date = parse_datetime(meta["date"] if "date" in meta else date_in_name.group(1), tz)
    except ValueError as e:
        raise fail("date", f"`date` {e}", hint=DATE_HINT) from None
    try:
        updated = parse_datetime(meta["updated"], tz) if meta.get("updated") is not None else None
    except ValueError as e:
        raise fail("updated", f"`updated` {e}", hint=DATE_HINT) from None

    raw_slug = text_value("slug")
    if raw_slug is not None:
        if not SLUG_RE.match(raw_slug):
            raise fail("slug", f"`slug` {raw_slug!r} may hold only letters, digits, - and _",
                       hint="no slashes, dots or spaces: e.g. `slug: summer-trip`")
        slug = raw_slug
    else:
        slug = slugify(date_in_name.group(2) if date_in_name else stem)

    try:
        tags = _as_names(meta["tags"]) if meta.get("tags") not in (None, []) else ()
    except ValueError:
        raise fail("tags", "`tags` must be a list of words, e.g. [travel, food]") from None
    tags = tuple(dict.fromkeys(tags))
    title, summary = text_value("title"), text_value("summary")
    _check_limits(title, summary, tags, fail)
    try:
        audience = _as_names(meta["audience"]) if meta.get("audience") is not None \
            else default_audience
    except ValueError:
        raise fail("audience", "`audience` must be public, friends, a group or friend name, "
                               "or a list of them") from None
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise fail("draft", "`draft` must be true or false")

    reply_to = text_value("reply_to")
    if reply_to is not None and not _is_post_ref(reply_to) and (
            not reply_to.startswith("https://") or len(reply_to) > 2048
            or any(c.isspace() for c in reply_to)):
        raise fail("reply_to", "`reply_to` must be the https:// address of the post answered, "
                               "or its reference o2m:<author>/<id>",
                   hint="`o2m reply ID` fills it in; or e.g. "
                        "`reply_to: https://bob.example/2026/trip/`")
    thread = text_value("thread")
    if thread is not None and (not _is_post_ref(thread) or reply_to is None
                               or not _is_post_ref(reply_to)):
        raise fail("thread", "`thread` must be the reference o2m:<author>/<id> of the "
                             "thread's first post, in a reply whose `reply_to` is a reference",
                   hint="`o2m reply ID` fills it in; leave it out for a direct reply")
    if thread == reply_to:
        thread = None  # a direct reply: its thread is the post it answers (§4.2)
    return PostSource(
        source=source, title=title, date=date, updated=updated,
        tags=tags, summary=summary, slug=slug,
        draft=draft, audience=audience, reply_to=reply_to, thread=thread,
        body=body, body_line=body_line, lines=lines,
        extra={k: v for k, v in meta.items() if k not in KNOWN_FIELDS and isinstance(k, str)},
        warnings=tuple(warnings),
    )


def _check_limits(title: str | None, summary: str | None, tags: tuple[str, ...],
                  fail: Callable[..., PostError]) -> None:
    """The limits every reader holds a post to (PROTOCOL.md §3.3, and §1.4 for a public
    post's title and summary in feed.json): a friends-only post beyond them would be
    published and refused by each friend, a public one would make readers refuse the
    site's whole feed.json. For every post, whatever its audience, so a post does not
    start to fail when its audience changes.

    Raises:
        PostError: (from `fail`) naming the field's line.
    """
    for key, value in (("title", title), ("summary", summary)):
        problem = value and text_problem(key, value)
        if problem:
            raise fail(key, problem, hint=f"shorten the {key}: the body below the front "
                       "matter has room for long text")
    problem = tags_problem(tags)
    if problem:
        raise fail("tags", problem, hint="keep a post's tags few and short, as words such "
                   "as [travel, food]")


def _stem(source: str) -> str:
    """The name a slug is made from: the file name, or the folder of a bundle's index.md."""
    parts = source.rsplit("/", 2)
    name = parts[-1].rsplit(".", 1)[0]
    if name == "index" and len(parts) >= 2 and parts[-2] != "content":
        return parts[-2]
    return name
