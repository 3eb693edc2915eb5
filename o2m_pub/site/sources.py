"""The first phase of a build: which post files there are, and parsing and rendering
those that changed, in worker processes when there are many.

Rendering a post is pure but for reading its file: `render_post` returns the record
the planner works from, the HTML for the build cache, or the problem that fails that
post alone.
"""

from __future__ import annotations

import json
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

PARALLEL_THRESHOLD = 48  # fewer changed posts than this render in-process


def sha_of_file(path: Path) -> str | None:
    """A post's file's hash (a post whose stat changed may still hold the same bytes);
    None when it cannot be read (the renderer reports it, for that post alone)."""
    try:
        return sha256_hex(path.read_bytes())
    except OSError:
        return None


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


PARSE_KEY = "parse_options"  # the build state's record of `parse_options`


def parse_options(config: SiteConfig) -> str:
    """The settings a post's record is parsed with, besides its bytes: the zone of a
    date written without one, and the audience of a post that names none. Recorded by
    the build, which parses every post again when they change (docs/CONFIG.md): a post
    kept from before would stay public, or dated in the old zone, until edited."""
    return json.dumps({"timezone": config.timezone,
                       "default_audience": list(config.default_audience)}, sort_keys=True)


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
                                    media=rendered.media, links=rendered.links,
                                    media_refs=rendered.media_refs)
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
