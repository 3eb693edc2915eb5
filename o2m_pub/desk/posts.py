"""The owner's posts in `content/`, written by the desk exactly as by hand: a page bundle
``content/YYYY/SLUG/index.md`` (front matter and Markdown) with its photos beside it.
`o2m watch` (or `o2m serve --watch`) sees the files change and rebuilds.

- Every path comes from the desk, never from a form: a post is named by its path below
  `content/`, which must be a `.md` file that resolves inside `content/` (no `..`, no
  symlink out); a photo's name is `photo-N.ext`.
- Every write is atomic (`_files.write_file`: a temporary file, fsync, rename) and
  never overwrites a change made on disk since the form was opened: the form carries
  the SHA-256 of the file as it was read, and a save or delete whose file no longer has
  it is refused (`EditConflictError`), with the text kept in the form. The check and the
  write hold a lock, so two desks (or two tabs) cannot both pass it.
- What is written is parsed back by the builder's own `site.content.parse_post` before
  it is written, so the desk never leaves a post the build would refuse.

    EditConflictError (DeskError)   the file changed on disk since it was opened
    PostPathError (DeskError)       not a post of content/
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from o2m_pub._files import fsync_dir, write_file
from o2m_pub.config import STATE_DIR
from o2m_pub.desk.web import DeskError
from o2m_pub.errors import PostError
from o2m_pub.site.content import SLUG_RE, parse_post, slugify, split_front_matter
from o2m_pub.site.scan import CONTENT_DIR, is_editor_litter, scan_sources

LOCK_NAME = "desk-write.lock"
PHOTO_RE = re.compile(r"photo-(\d{1,4})\.(jpg|png|webp)")
MAX_TAGS = 20


class EditConflictError(DeskError):
    """This post changed on disk since you opened it."""

    hint = ("your text is still in the form: copy it, reload the post to see the other "
            "change, and apply yours again")


class PostPathError(DeskError):
    """That is not one of your posts."""


@dataclass(frozen=True)
class OwnPost:
    """One of the owner's posts as the desk lists it."""

    path: str  # below content/, e.g. "2026/picnic/index.md"
    title: str | None
    date: dt.datetime
    draft: bool
    audience: tuple[str, ...]
    tags: tuple[str, ...]
    bundle: bool  # a folder of its own (photos can be added)
    digest: str  # SHA-256 of the file as read
    problem: str | None = None  # the builder would refuse it: why


@dataclass
class Draft:
    """What the compose form holds."""

    title: str = ""
    body: str = ""
    tags: str = ""  # comma or space separated
    audience: tuple[str, ...] = ("friends",)
    draft: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # other front matter, kept


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- paths


def content_dir(root: Path) -> Path:
    return root / CONTENT_DIR


def resolve(root: Path, path: str) -> Path:
    """The file of a post named by its path below content/.

    Raises:
        PostPathError: not a .md path below content/ (after resolving symlinks).
    """
    if not path or "\x00" in path or "\\" in path or path.startswith("/") or \
            not path.endswith(".md") or any(p in ("", ".", "..") for p in path.split("/")):
        raise PostPathError("that is not one of your posts")
    base = content_dir(root).resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base) or target == base:
        raise PostPathError("that is not one of your posts")
    return target


def _bundle_dir(root: Path, path: str) -> Path | None:
    """The folder of a page bundle post (content/…/SLUG/index.md), else None."""
    if not path.endswith("/index.md"):
        return None
    return resolve(root, path).parent


# ---------------------------------------------------------------- front matter


@lru_cache(maxsize=1)
def _loader():  # noqa: ANN202 - a yaml Loader class: dates stay text, as the builder reads them
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return Loader


def front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    """(the front matter as a dict, the body) of a post's text."""
    import yaml

    front, body, _ = split_front_matter(text, source)
    if front is None:
        return {}, body
    data = yaml.load(front, Loader=_loader())  # noqa: S506 - a safe loader
    return (data if isinstance(data, dict) else {}), body


def render_file(meta: dict[str, Any], body: str) -> bytes:
    """A post file: YAML front matter between --- lines, then the Markdown body."""
    import yaml

    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000,
                           default_flow_style=None).rstrip("\n")
    body = body.replace("\r\n", "\n")
    return f"---\n{front}\n---\n{body.rstrip()}\n".encode()


def split_tags(text: str) -> tuple[str, ...]:
    words = [w.strip().lstrip("#") for w in re.split(r"[,\s]+", text) if w.strip().lstrip("#")]
    return tuple(dict.fromkeys(words))[:MAX_TAGS]


def meta_for(draft: Draft, *, date: str | None, updated: str | None = None) -> dict[str, Any]:
    """The front matter of a draft: the fields the desk edits, then the others kept."""
    meta: dict[str, Any] = {}
    if draft.title.strip():
        meta["title"] = " ".join(draft.title.split())
    if date is not None:
        meta["date"] = date
    if updated is not None:
        meta["updated"] = updated
    tags = split_tags(draft.tags)
    if tags:
        meta["tags"] = list(tags)
    meta["audience"] = draft.audience[0] if len(draft.audience) == 1 else list(draft.audience)
    if draft.draft:
        meta["draft"] = True
    for key, value in draft.extra.items():
        if key not in ("title", "date", "updated", "tags", "audience", "draft"):
            meta[key] = value
    return meta


def stamp(now: dt.datetime) -> str:
    """A post's date as the desk writes it: local time with its offset, to the second."""
    return now.replace(microsecond=0).isoformat()


# ---------------------------------------------------------------- reading


class Posts:
    """The owner's posts of one site."""

    def __init__(self, root: Path, tz: dt.tzinfo, default_audience: tuple[str, ...]) -> None:
        self.root = root
        self.tz = tz
        self.default_audience = default_audience
        self._cache: dict[str, tuple[tuple[int, int], OwnPost]] = {}

    def _read(self, path: str, data: bytes) -> OwnPost:
        source = f"{CONTENT_DIR}/{path}"
        bundle = path.endswith("/index.md")
        try:
            post = parse_post(data, source, tz=self.tz, default_audience=self.default_audience)
        except PostError as e:
            return OwnPost(path, None, dt.datetime.fromtimestamp(0, dt.timezone.utc), False, (),
                           (), bundle, digest(data), problem=str(e.problem))
        return OwnPost(path, post.title, post.date, post.draft, post.audience, post.tags,
                       bundle, digest(data))

    def list(self) -> list[OwnPost]:
        """Every post under content/, newest first (a post the build refuses comes first,
        with its problem). Files are parsed again only when they change."""
        found, _ = scan_sources(self.root)
        posts, seen = [], set()
        for source, st in found.items():
            path = source[len(CONTENT_DIR) + 1:]
            seen.add(path)
            key = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(path)
            if cached is None or cached[0] != key:
                try:
                    data = (self.root / source).read_bytes()
                except OSError:
                    continue
                cached = (key, self._read(path, data))
                self._cache[path] = cached
            posts.append(cached[1])
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return sorted(posts, key=lambda p: (p.problem is not None, p.date, p.path), reverse=True)

    def open(self, path: str) -> tuple[OwnPost, Draft, bytes]:
        """A post to edit: what the list shows, the form's fields, and the file's bytes.

        Raises:
            PostPathError: not a post of content/ (or gone).
        """
        target = resolve(self.root, path)
        try:
            data = target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise PostPathError("that post is not there any more") from None
        own = self._read(path, data)
        try:
            meta, body = front_matter(data.decode("utf-8-sig"), path)
        except Exception:  # noqa: BLE001 - YAML or text the builder refuses too
            meta, body = {}, data.decode("utf-8", "replace")
        tags = meta.get("tags")
        tags_text = ", ".join(str(t) for t in tags) if isinstance(tags, list) else \
            (str(tags) if tags else "")
        audience = own.audience or self.default_audience
        return own, Draft(title=str(meta.get("title") or ""), body=body, tags=tags_text,
                          audience=tuple(audience), draft=bool(meta.get("draft") is True),
                          extra=meta), data

    def media(self, path: str, name: str) -> Path | None:
        """A photo of a bundle post (for the edit page's preview)."""
        if not PHOTO_RE.fullmatch(name):
            return None
        folder = _bundle_dir(self.root, path)
        if folder is None:
            return None
        target = folder / name
        return target if target.is_file() and not target.is_symlink() else None

    # ---------------------------------------------------------------- writing

    @contextmanager
    def _lock(self) -> Iterator[None]:
        state = self.root / STATE_DIR
        state.mkdir(mode=0o700, exist_ok=True)
        with open(state / LOCK_NAME, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def check(self, data: bytes, path: str) -> None:
        """Refuse what the builder would refuse (PostError, naming the field)."""
        parse_post(data, f"{CONTENT_DIR}/{path}", tz=self.tz,
                   default_audience=self.default_audience)

    def new_path(self, title: str, now: dt.datetime) -> str:
        """A fresh bundle path for a new post: content/YEAR/SLUG/index.md, the slug from
        the title (or the time, for a note), made unique in its year."""
        local = now.astimezone(self.tz)
        base = slugify(title) if title.strip() else f"note-{local:%Y-%m-%d-%H%M}"
        base = base[:60].rstrip("-") or "post"
        year = content_dir(self.root) / f"{local.year:04d}"
        taken = {p.stem if p.is_file() else p.name for p in year.iterdir()} \
            if year.is_dir() else set()
        taken |= {p.path.split("/")[-2] if p.bundle else p.path.rsplit("/", 1)[-1][:-3]
                  for p in self.list() if p.date.year == local.year}
        slug, n = base, 2
        while slug in taken or not SLUG_RE.match(slug):
            slug, n = f"{base}-{n}", n + 1
        return f"{local.year:04d}/{slug}/index.md"

    def create(self, draft: Draft, now: dt.datetime,
               photos: list[tuple[bytes, str, str]] = ()) -> str:  # type: ignore[assignment]
        """Write a new post (and its photos, as (bytes, extension, alt text), shown at
        the end of its text); returns its path.

        Raises:
            PostError: the builder would refuse it (nothing is written).
        """
        with self._lock():
            path = self.new_path(draft.title, now)
            folder = resolve(self.root, path).parent
            names = _photo_names(folder, [ext for _, ext, _ in photos])
            body = with_photos(draft.body, names, [alt for _, _, alt in photos])
            data = render_file(meta_for(draft, date=stamp(now.astimezone(self.tz))), body)
            self.check(data, path)
            folder.mkdir(parents=True, exist_ok=False)
            for (photo, _, _), name in zip(photos, names):
                write_file(folder / name, photo, 0o644)
            write_file(folder / "index.md", data, 0o644)
        return path

    def save(self, path: str, draft: Draft, base: str, now: dt.datetime,
             photos: list[tuple[bytes, str, str]] = ()) -> str:  # type: ignore[assignment]
        """Write an edited post over `path`, if the file is still as it was read.

        Args:
            base: the SHA-256 of the file when the form was opened.

        Raises:
            EditConflictError: the file changed (or went) since.
            PostError: the builder would refuse the new text (nothing is written).
            PostPathError: not a post of content/, or photos for a post that is no bundle.
        """
        target = resolve(self.root, path)
        with self._lock():
            try:
                current = target.read_bytes()
            except FileNotFoundError:
                raise EditConflictError("this post was deleted on disk since you opened it") \
                    from None
            if digest(current) != base:
                raise EditConflictError("this post changed on disk since you opened it")
            folder = _bundle_dir(self.root, path)
            if photos and folder is None:
                raise PostPathError("photos go with posts in a folder of their own (…/index.md);"
                                    " this post is a single file")
            meta, _ = front_matter(current.decode("utf-8-sig"), path)
            date = meta.get("date")
            was_draft = meta.get("draft") is True
            updated = None if draft.draft or was_draft else stamp(now.astimezone(self.tz))
            draft.extra = {k: v for k, v in meta.items() if k not in ("updated",)}
            if date is None and was_draft:
                date = stamp(now.astimezone(self.tz))
            if was_draft and not draft.draft:
                date = stamp(now.astimezone(self.tz))  # published now: dated now
            names = _photo_names(folder, [ext for _, ext, _ in photos]) if folder else []
            body = with_photos(draft.body, names, [alt for _, _, alt in photos])
            data = render_file(meta_for(draft, date=str(date) if date is not None else None,
                                        updated=updated), body)
            self.check(data, path)
            for (photo, _, _), name in zip(photos, names):
                write_file(folder / name, photo, 0o644)  # type: ignore[operator]
            write_file(target, data, 0o644)
        return path

    def delete(self, path: str, base: str) -> None:
        """Delete a post (its bundle folder with its photos, or its file), if it is still
        as it was read. The next build takes it off the site and out of friends' feeds.

        Raises:
            EditConflictError: the file changed (or went) since it was read.
        """
        target = resolve(self.root, path)
        with self._lock():
            try:
                current = target.read_bytes()
            except FileNotFoundError:
                raise EditConflictError("this post was already deleted on disk") from None
            if digest(current) != base:
                raise EditConflictError("this post changed on disk since you opened it")
            folder = _bundle_dir(self.root, path)
            if folder is not None and _only_desk_files(folder):
                for child in folder.iterdir():
                    child.unlink()
                folder.rmdir()
                fsync_dir(folder.parent)
            else:
                target.unlink()
                fsync_dir(target.parent)


def with_photos(body: str, names: list[str], alts: list[str]) -> str:
    """The body with a Markdown image line per new photo at its end."""
    lines = [f"![{_alt_text(alt)}]({name})" for name, alt in zip(names, alts)]
    return body.rstrip() + ("\n\n" + "\n\n".join(lines) if lines else "")


def _alt_text(alt: str) -> str:
    """Alt text on one line, its brackets escaped for Markdown."""
    text = " ".join(alt.split())
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _photo_names(folder: Path | None, extensions: list[str]) -> list[str]:
    """The next free photo-N names in a bundle folder."""
    used = set()
    if folder is not None and folder.is_dir():
        used = {int(m.group(1)) for m in (PHOTO_RE.fullmatch(n) for n in os.listdir(folder)) if m}
    names, n = [], 1
    for ext in extensions:
        while n in used:
            n += 1
        used.add(n)
        names.append(f"photo-{n}.{ext}")
    return names


def _only_desk_files(folder: Path) -> bool:
    """A bundle holding only index.md, its photos and editor litter: the desk may
    delete the whole folder. Anything else (the owner's own files) keeps the folder."""
    for name in os.listdir(folder):
        if name != "index.md" and not PHOTO_RE.fullmatch(name) and not is_editor_litter(name):
            return False
        if (folder / name).is_dir():
            return False
    return True
