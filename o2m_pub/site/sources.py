"""The first phase of a build: which post files there are, and parsing and rendering
those that changed, in worker processes when there are many.

Rendering a post is pure but for reading its file: `render_post` returns the record
the planner works from, the HTML for the build cache, or the problem that fails that
post alone.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from o2m_pub.config import STATE_DIR, SiteConfig
from o2m_pub.errors import PostError, Problem
from o2m_pub.site.code_cache import NAME as CODE_CACHE_NAME, CodeCache, prune
from o2m_pub.site.content import parse_post
from o2m_pub.site.model import PostRecord
from o2m_pub.site.plan import sha256_hex
from o2m_pub.site.report import BuildProgress

CONTENT_DIR = "content"
PARALLEL_THRESHOLD = 48  # fewer changed posts than this render in-process
# Suffixes of editors' backups and temporary files: vim (file~, .swp/.swx/.swo when
# the swap file is not a dotfile), emacs (file~), JetBrains safe write
# (file___jb_tmp___, file___jb_old___), Kate (.kate-swp), downloads (.part,
# .crdownload), and generic .tmp / .~tmp.
_LITTER_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", "~tmp", ".part", ".crdownload",
                    "___jb_tmp___", "___jb_old___", ".kate-swp")
# Prefixes: dotfiles (vim's .file.swp, emacs's .#file lock, .DS_Store, gedit's
# .goutputstream-XXXXXX, our own .~o2m- temporaries), emacs's #file# autosave,
# Office's ~$file lock.
_LITTER_PREFIXES = (".", "#", "~$")


def sha_of_file(path: Path) -> str | None:
    """A post's file's hash (a post whose stat changed may still hold the same bytes);
    None when it cannot be read (the renderer reports it, for that post alone)."""
    try:
        return sha256_hex(path.read_bytes())
    except OSError:
        return None


def is_editor_litter(name: str) -> bool:
    """Whether a file name is an editor's temporary, swap, backup or lock file, or a
    dotfile: never a source of the site (scan_sources skips them; `o2m watch` ignores them)."""
    if not name or name.startswith(_LITTER_PREFIXES) or name.endswith(_LITTER_SUFFIXES):
        return True
    # vim checks that it may write in a folder by creating and deleting "4913" (or
    # 5036, 5159, ...: 4913 + 123 k, the first name free)
    # (ASCII digits only: "¹" is a digit to str.isdigit, not to int)
    return (name.isascii() and name.isdigit() and int(name) >= 4913
            and (int(name) - 4913) % 123 == 0)


def scan_sources(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """Every post file under content/ with its stat; symlinks that leave content/ are
    refused (THREATS.md 38), as are dotfiles and editors' temporary files. A file
    that vanishes between the listing and its stat is not a source."""
    content = root / CONTENT_DIR
    real_content = os.path.realpath(content)
    found: dict[str, os.stat_result] = {}
    warnings: list[str] = []
    # each folder with its real path: an entry that is no symlink is really at
    # real_folder/name, so only symlinks cost a realpath (a walk of lstats from /)
    stack = [(str(content), CONTENT_DIR, real_content)]
    seen_dirs = {real_content}  # a symlinked folder is followed once, never in a loop
    while stack:
        folder, rel, real_folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        # this folder's posts in order: the name of a plain file (nearly all of them,
        # stat-ed together below), or (name, stat) for a symlink's target
        posts: list = []
        for e in entries:
            name = e.name
            # a plain file named *.md: litter only by its prefix (no litter suffix, and
            # no number, ends in ".md")
            if name.endswith(".md") and not e.is_symlink() and e.is_file():
                if not name.startswith(_LITTER_PREFIXES):
                    posts.append(name)
                continue
            if is_editor_litter(name):
                continue
            rel_path = f"{rel}/{name}"
            symlink = e.is_symlink()
            if symlink:
                real = os.path.realpath(e.path)
                if not (real + os.sep).startswith(real_content + os.sep):
                    warnings.append(f"{rel_path}: symlink to a file outside content/, skipped")
                    continue
            if e.is_dir():
                real = os.path.realpath(e.path) if symlink else f"{real_folder}/{name}"
                if real in seen_dirs:
                    warnings.append(f"{rel_path}: a folder already read (symlink loop?), skipped")
                    continue
                seen_dirs.add(real)
                stack.append((e.path, rel_path, real))
            elif name.endswith(".md") and e.is_file():
                posts.append((name, e.stat()))
        if posts:
            found.update(_stat_posts(folder, rel, posts))
    return found, warnings


def _stat_posts(folder: str, rel: str, posts: list) -> Iterator[tuple[str, os.stat_result]]:
    """(path from content/'s parent, stat) of each of a folder's posts, in order: plain
    files by one `map(os.stat, ...)` (no Python frame per file), a file gone since the
    listing left out."""
    prefix, folder = rel + "/", folder + "/"
    if all(type(p) is str for p in posts):
        try:
            stats = list(map(os.stat, [folder + p for p in posts]))
            return zip([prefix + p for p in posts], stats)
        except FileNotFoundError:
            pass
    return _stat_each(folder, prefix, posts)


def _stat_each(folder: str, prefix: str, posts: list) -> Iterator[tuple[str, os.stat_result]]:
    for post in posts:
        if type(post) is not str:
            yield prefix + post[0], post[1]
            continue
        try:
            yield prefix + post, os.stat(folder + post)
        except FileNotFoundError:
            continue


# --- worker processes ----------------------------------------------------------------

def worker_pool(jobs: int, **kwargs):  # noqa: ANN003, ANN202 - a ProcessPoolExecutor
    """Worker processes by fork: they start at once and share what is already loaded.
    (Imported here: a small rebuild never needs them.)"""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    return ProcessPoolExecutor(jobs, mp_context=get_context("fork"), **kwargs)


def chunked(items: list, jobs: int) -> list[list]:
    """`items` in chunks for `jobs` workers: small enough to balance the load, large
    enough that passing them costs little."""
    size = max(8, min(64, len(items) // (jobs * 8) or 1))
    return [items[i:i + size] for i in range(0, len(items), size)]


# --- rendering posts (in worker processes for big builds) -----------------------------

MARKUP_KEY = "markup_options"  # the build state's record of `markup_options`


def markup_options(raw_html: bool) -> str:
    """What, besides the Markdown library's version, changes how a post renders: part of
    each body's cache key, and recorded by the build, which renders every post again
    when it changes. "" for the defaults, so a site that sets nothing keeps its keys."""
    return "" if raw_html else "raw_html=false"


_worker: dict[str, object] = {}


def _init_worker(root: str, tz_name: str, default_audience: tuple[str, ...],
                 raw_html: bool = True) -> None:
    from o2m_pub.site.markup import (
        MarkdownRenderer,  # imported only when something must render
    )
    md = _worker.get("md")
    if md is None or md.raw_html != raw_html:  # one pipeline per process and setting
        _worker["md"] = MarkdownRenderer(raw_html)  # (a Builder session reuses it)
    _worker.update(root=root, tz=zoneinfo.ZoneInfo(tz_name), audience=default_audience)
    _worker["md"].code_cache = _code_cache(Path(root, STATE_DIR, CODE_CACHE_NAME))


def _code_cache(path: Path) -> CodeCache:
    """This process's store of highlighted blocks at `path` (a `Builder` session keeps
    it from one build to the next)."""
    cache = _worker.get("code_cache")
    if isinstance(cache, CodeCache) and cache.path == path:
        cache.next_build()
    else:
        cache = _worker["code_cache"] = CodeCache(path)
    return cache


RenderResult = tuple[str, str, "PostRecord | None", str, str, "Problem | None",
                     tuple[str, ...]]


def render_post(source: str) -> RenderResult:
    """Read, parse and render one post: (source, sha, record, html, toc, problem,
    warnings)."""
    try:
        data = Path(_worker["root"], source).read_bytes()  # type: ignore[arg-type]
    except OSError as e:  # unreadable: that post fails, the others build
        return source, "", None, "", "", Problem(source, 1, f"cannot read it: {e.strerror or e}",
                                                 hint="check the file's permissions"), ()
    sha = sha256_hex(data)
    try:
        post = parse_post(data, source, tz=_worker["tz"],  # type: ignore[arg-type]
                          default_audience=_worker["audience"])  # type: ignore[arg-type]
    except PostError as e:
        return source, sha, None, "", "", e.problem, ()
    from o2m_pub.site.markup import MARKUP_VERSION, smarten  # loaded by _init_worker
    options = markup_options(_worker["md"].raw_html)  # type: ignore[attr-defined]
    key = sha256_hex(f"{MARKUP_VERSION}{options}\0{source}\0{post.body}".encode())[:32]
    rendered = _worker["md"].render(post.body, source)  # type: ignore[attr-defined]
    post = replace(post, title=post.title and smarten(post.title),
                   summary=post.summary and smarten(post.summary))
    record = PostRecord.from_source(post, summary=rendered.summary,
                                    word_count=rendered.word_count, render_key=key,
                                    media=rendered.media, links=rendered.links)
    return source, sha, record, rendered.html, rendered.toc, None, post.warnings


def _render_chunk(sources: list[str]) -> list[RenderResult]:
    results = [render_post(s) for s in sources]
    _worker["code_cache"].flush()  # type: ignore[attr-defined]
    return results


def render_changed(sources: list[str], root: Path, config: SiteConfig, jobs: int,
                   progress: BuildProgress | None) -> Iterator[RenderResult]:
    """Render changed posts, across `jobs` processes when there are many."""
    if not sources:
        return
    init = (str(root), config.timezone, config.default_audience, config.raw_html)
    if progress:
        progress.start("rendering posts", len(sources))
    if jobs <= 1 or len(sources) < PARALLEL_THRESHOLD:
        _init_worker(*init)
        for s in sources:
            yield render_post(s)
            if progress:
                progress.advance()
        _worker["code_cache"].flush()  # type: ignore[attr-defined]
    else:
        with worker_pool(jobs, initializer=_init_worker, initargs=init) as pool:
            for results in pool.map(_render_chunk, chunked(sources, jobs)):
                yield from results
                if progress:
                    progress.advance(len(results))
    prune(Path(root, STATE_DIR, CODE_CACHE_NAME))  # what this build added, within budget
