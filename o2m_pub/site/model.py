"""The data a build keeps about each post between builds, and the views templates see."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from typing import Any, Callable

from markupsafe import Markup

from o2m_pub.site.content import PostSource, slugify

PUBLIC = "public"
NOTE_TITLE_WORDS = 8


@dataclass(frozen=True)
class PostRecord:
    """One post after parsing and rendering: everything but its HTML (kept in the
    build cache under `render_key`), small enough to keep 10,000 in memory."""

    source: str
    title: str | None
    date: str  # ISO 8601 with offset
    updated: str | None
    tags: tuple[str, ...]
    summary: str  # the front matter's, or the first paragraph's text
    slug: str
    path: str
    draft: bool
    audience: tuple[str, ...]
    reply_to: str | None
    word_count: int
    render_key: str
    utc: str  # `date` in UTC, for sorting
    media: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    lines: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    thread: str | None = None  # a nested reply's thread root (PROTOCOL.md §4.2)
    # (file in media, a reference to it as the Markdown writes it): the names a
    # friends-only post gives its files (PROTOCOL.md §3.3), learnt as the body rendered
    media_refs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_source(cls, post: PostSource, *, summary: str, word_count: int, render_key: str,
                    media: tuple[str, ...], links: tuple[str, ...],
                    media_refs: tuple[tuple[str, str], ...] = ()) -> "PostRecord":
        return cls(
            source=post.source, title=post.title, date=post.date.isoformat(),
            updated=post.updated.isoformat() if post.updated else None, tags=post.tags,
            summary=post.summary or summary, slug=post.slug, path=post.path, draft=post.draft,
            audience=post.audience, reply_to=post.reply_to, word_count=word_count,
            render_key=render_key, utc=post.date.astimezone(dt.timezone.utc).isoformat(),
            media=media, links=links, lines=post.lines,
            extra=_jsonable(post.extra), thread=post.thread, media_refs=media_refs,
        )

    def to_json(self) -> str:
        """A JSON array of the fields in declaration order (compact and quick to load:
        a build loads 10,000 of these before it knows what changed)."""
        return json.dumps([self.__dict__[f] for f in RECORD_FIELDS], ensure_ascii=False,
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "PostRecord":
        return cls.many_from_json([None], [text])[0]

    @classmethod
    def many_from_json(cls, digests: list[str | None], texts: list[str],
                       list_digests: list[str] | None = None) -> list["PostRecord"]:
        """Records from their `to_json` texts and digests (kept beside them, so loading
        10,000 records hashes nothing; None: made from the fields when first asked)."""
        out = []
        new, n_fields = object.__new__, len(RECORD_FIELDS)
        values_list = json.loads("[" + ",".join(texts) + "]")
        if list_digests is None:
            list_digests = [None] * len(digests)  # type: ignore[list-item]
        for digest, list_digest, values in zip(digests, list_digests, values_list):
            if len(values) != n_fields:
                raise ValueError("record from another version of o2m")
            record = new(cls)  # skips the frozen dataclass's slow __init__
            d = record.__dict__
            d.update(zip(RECORD_FIELDS, values))
            d["tags"], d["audience"], d["media"], d["links"] = (  # TUPLE_FIELDS
                tuple(d["tags"]), tuple(d["audience"]), tuple(d["media"]), tuple(d["links"]))
            d["media_refs"] = tuple(map(tuple, d["media_refs"]))  # PAIRS_FIELDS
            if digest is not None:
                d["digest"] = digest
            if list_digest is not None:
                d["list_digest"] = list_digest
            out.append(record)
        return out

    @cached_property
    def digest(self) -> str:
        """Changes whenever anything a page could show of this post changes. Not with
        `media_refs`, which shows nowhere: the versions of friends-only posts are this
        digest too, and a post sealed before o2m kept its references must not be sealed
        again for that alone (so the digest is still that of a record without them)."""
        return _digest(json.dumps([self.__dict__[f] for f in _SHOWN_FIELDS],
                                  ensure_ascii=False, separators=(",", ":")))

    @cached_property
    def list_digest(self) -> str:
        """Changes whenever what a list of posts shows of this post changes: a titled
        post's title, dates, tags and summary; a note's whole text (lists show it)."""
        if not self.title:
            return self.digest
        return _digest("\x1f".join((self.title, self.date, self.updated or "", self.summary,
                                     self.path, *self.tags)))

    @property
    def is_public(self) -> bool:
        return PUBLIC in self.audience

    @cached_property
    def when(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.date)

    @property
    def sort_key(self) -> tuple[str, str]:
        """Oldest first; ties broken by path so the order never depends on the disk."""
        return (self.utc, self.path)

    @property
    def display_title(self) -> str:
        if self.title:
            return self.title
        words = self.summary.split()
        return " ".join(words[:NOTE_TITLE_WORDS]) + ("…" if len(words) > NOTE_TITLE_WORDS else "")


RECORD_FIELDS = tuple(f.name for f in fields(PostRecord))  # in the order of to_json
TUPLE_FIELDS = ("tags", "audience", "media", "links")
PAIRS_FIELDS = ("media_refs",)  # a tuple of pairs, lists of lists in JSON
# what `digest` covers: all but `media_refs` (the last field, so the digest is the one a
# record without it had)
_SHOWN_FIELDS = tuple(f for f in RECORD_FIELDS if f != "media_refs")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _jsonable(value: Any) -> Any:
    """Custom front matter fields, made JSON-safe (dates become text)."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class TagView:
    name: str
    slug: str
    path: str
    count: int | None = 0


@lru_cache(maxsize=4096)
def tag_view(name: str, count: int = 0) -> TagView:
    slug = slugify(name)
    return TagView(name=name, slug=slug, path=f"tags/{slug}/", count=count)


class PostView:
    """A post as a template sees it on one page (links are relative to that page)."""

    def __init__(self, record: PostRecord, *, url: str, tz: dt.tzinfo,
                 body: Callable[[], tuple[str, str]]) -> None:
        self._r, self._body = record, body
        self.url = url
        self.date = record.when.astimezone(tz)
        self.updated = dt.datetime.fromisoformat(record.updated).astimezone(tz) \
            if record.updated else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)

    @property
    def tags(self) -> list[TagView]:
        return [tag_view(t) for t in self._r.tags]

    @property
    def is_note(self) -> bool:
        return not self._r.title

    @property
    def reading_minutes(self) -> int:
        return max(1, math.ceil(self._r.word_count / 230))

    @property
    def html(self) -> Markup:
        return Markup(self._body()[0])

    @property
    def toc(self) -> Markup:
        return Markup(self._body()[1])
