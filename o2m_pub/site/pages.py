"""The page phases of a build: planned pages rendered through the templates and
written, in worker processes when there are many; a template error fails the pages it
breaks, which keep their last good version.

`Views` turns the records of the plan into what templates and feeds see, with the
rendered bodies from the build cache and their links resolved for each page.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from pathlib import Path
from typing import Callable, Container, Iterator
from urllib.parse import quote

import jinja2

from o2m_pub.config import SiteConfig
from o2m_pub.errors import Problem, SiteError
from o2m_pub.site.manifest import FileState, Manifest, OutputState
from o2m_pub.site.markers import resolve_markers
from o2m_pub.site.model import PostRecord, PostView
from o2m_pub.site.outputs import Outputs
from o2m_pub.site.plan import Page
from o2m_pub.site.render import BUILTIN_THEME, PAGE_TEMPLATES, PageRenderer, linker
from o2m_pub.site.report import BuildProgress
from o2m_pub.site.sources import chunked, worker_pool

TEMPLATES_DIR = "site_templates"
PAGE_PARALLEL_THRESHOLD = 400  # fewer pages than this render in-process
PageResult = tuple[str, "OutputState | None", "Problem | None", bool]  # path, state, problem, wrote
WriteIfChanged = Callable[[str, str, bytes], "tuple[OutputState, bool]"]


class Views:
    """Turns records into what templates and feeds see, resolving body markers.

    Args:
        bodies: render key -> (html, toc) from the build cache, None if it is missing.
        media: source path of each published media file -> (output path, state).
        link_targets: source path of each public post -> its permalink path.
    """

    def __init__(self, bodies: Callable[[str], tuple[str, str] | None], config: SiteConfig,
                 media: dict[str, tuple[str, FileState]], link_targets: dict[str, str]) -> None:
        self.config, self.media, self.targets = config, media, link_targets
        self.bodies = bodies
        self.tz = config.tz

    def _body(self, record: PostRecord) -> tuple[str, str]:
        body = self.bodies(record.render_key)
        if body is None:  # cache lost (deleted .o2m/ partly): the build redoes it next time
            raise SiteError(f"{record.source}: rendered body missing from the build cache",
                            hint="delete .o2m/build.db; the next build renders everything again")
        return body

    def _resolver(self, link: Callable[[str], str]) -> Callable[[str, str, str], str]:
        def resolve(kind: str, path: str, fragment: str) -> str:
            if kind == "MEDIA":
                target = self.media.get(path)
                return link(target[0]) + fragment if target else "#missing"
            target_path = self.targets.get(path)
            return link(target_path) + fragment if target_path is not None else "#missing"
        return resolve

    def view(self, record: PostRecord, link: Callable[[str], str]) -> PostView:
        resolve = self._resolver(link)
        cache: list[tuple[str, str]] = []

        def body() -> tuple[str, str]:
            if not cache:
                html, toc = self._body(record)
                cache.append((resolve_markers(html, resolve), toc))
            return cache[0]

        return PostView(record, url=self.config.url + record.path, tz=self.tz, body=body)

    def broken_links(self, record: PostRecord, root: Path,
                     unpublished: Callable[[str], PostRecord | None]) -> list[str]:
        """A warning for each post `record` links to that has no public page (its link
        becomes "#missing"), as a missing picture gets: the file, the line of the link
        when the file shows it, what is missing, and what to do. Asked of the post pages
        a build writes, so once per link, and never of an unchanged site.

        Args:
            unpublished: the record of a post that is built but not public, else None.
        """
        missing = [target for target in record.links if target not in self.targets]
        if not missing:
            return []
        try:
            lines = (root / record.source).read_text("utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        folder = posixpath.dirname(record.source)
        warnings = []
        for target in missing:
            written = posixpath.relpath(target, folder)
            line = next((n for n, text in enumerate(lines, 1) if f"]({written}" in text
                         or f"]({quote(written)}" in text), None)
            other = unpublished(target)
            if other is not None:
                why = (f"which is not public (audience: {', '.join(other.audience)}): "
                       "the link leads nowhere; link to a public post, or make that one "
                       "public")
            elif (root / target).is_file():
                why = ("which has no page (a draft, or it did not build): the link leads "
                       "nowhere until it does")
            else:
                why = ("which does not exist: the link leads nowhere; link to a post's .md "
                       "file by its path from this post's folder")
            warnings.append(f"{record.source}{f':{line}' if line else ''}: links to "
                            f"{target}, {why}")
        return warnings

    def absolute_html(self, record: PostRecord) -> str:
        def link(path: str) -> str:
            return self.config.url + path
        return resolve_markers(self._body(record)[0], self._resolver(link))

    def render(self, renderer: PageRenderer, page: Page) -> str:
        root = self.config.base_path if page.template == "404.html" else None
        link = linker(page.page_dir, root=root)
        ctx = dict(page.context)
        for key in ("post", "newer", "older"):
            if ctx.get(key) is not None:
                ctx[key] = self.view(ctx[key], link)
        if "posts" in ctx:
            ctx["posts"] = [self.view(p, link) for p in ctx["posts"]]
        if "archive_years" in ctx:
            ctx["years"] = [{**y, "posts": [self.view(p, link) for p in y["posts"]]}
                            for y in ctx.pop("archive_years")]
        if "year_posts" in ctx:
            months: dict[str, list[PostView]] = defaultdict(list)
            for p in ctx.pop("year_posts"):
                v = self.view(p, link)
                months[v.date.strftime("%B")].append(v)
            ctx["months"] = [{"name": m, "posts": ps} for m, ps in months.items()]
        canonical = None if root is not None else self.config.url + page.page_dir
        return renderer.render(page.template, page.page_dir, canonical, root=root, **ctx)


LINKS_KEY = "link_warnings"  # the build state's record of `LinkWarnings`


class LinkWarnings:
    """The warnings of public posts' links to posts with no public page, by the page
    that holds them: made when a page is written (`Views.broken_links`), recorded by the
    build, and said again by every build while the page stands, as a missing picture's
    warning is, without looking at any post of an unchanged site.

    Args:
        recorded: what the last build recorded (JSON), or None.
    """

    def __init__(self, recorded: str | None) -> None:
        self.recorded = recorded or "{}"
        self.by_page: dict[str, list[str]] = json.loads(self.recorded)

    def written(self, path: str, warnings: list[str]) -> None:
        """The page at `path` was written (or tried) with these warnings."""
        if warnings:
            self.by_page[path] = warnings
        else:
            self.by_page.pop(path, None)

    def standing(self, outputs: Container[str]) -> list[str]:
        """The warnings of the pages among `outputs` (this build's), in order."""
        self.by_page = {p: w for p, w in sorted(self.by_page.items()) if p in outputs}
        return [w for warnings in self.by_page.values() for w in warnings]

    def changed(self) -> str | None:
        """What to record, when it is not what was recorded."""
        now = json.dumps(self.by_page, sort_keys=True)
        return now if now != self.recorded else None


def render_page(views: Views, renderer: PageRenderer, page: Page, write: WriteIfChanged,
                root: Path) -> PageResult:
    """Render and write one page (in this process or a worker)."""
    try:
        html = views.render(renderer, page)
    except jinja2.TemplateError as e:
        return page.path, None, template_problem(e, root), False
    state, wrote = write(page.path, page.digest, html.encode())
    return page.path, state, None, wrote


_page_job: dict[str, object] = {}  # what forked page workers inherit


def _init_page_worker() -> None:
    views: Views = _page_job["views"]  # type: ignore[assignment]
    views.bodies = Manifest.body_reader(_page_job["db_path"])  # no shared connection


def _render_pages(indexes: list[int]) -> list[PageResult]:
    job = _page_job
    batch: list[Page] = job["batch"]  # type: ignore[assignment]
    return [render_page(job["views"], job["renderer"], batch[i],  # type: ignore[arg-type]
                        job["write"], job["root"]) for i in indexes]  # type: ignore[arg-type]


def render_pages(batch: list[Page], *, views: Views, renderer: PageRenderer,
                 outputs: Outputs, env: jinja2.Environment, root: Path, db_path: Path,
                 jobs: int, progress: BuildProgress | None) -> Iterator[PageResult]:
    """Render and write a batch of pages, across worker processes when it is large, and
    yield each result (the caller records it). Workers are forked now, so they share
    the plan and the views already in memory; their writes are counted here.

    Args:
        db_path: the manifest, which workers open read-only for the rendered bodies.
    """
    if jobs <= 1 or len(batch) < PAGE_PARALLEL_THRESHOLD:
        for page in batch:
            yield render_page(views, renderer, page, outputs.write_if_changed, root)
            if progress:
                progress.advance()
        return
    writer = outputs.ensure_writer()  # before the fork: the workers write through it
    for name in PAGE_TEMPLATES:  # compile once, before the fork
        env.get_template(name)
    _page_job.update(views=views, renderer=renderer, batch=batch,
                     write=outputs.write_if_changed, root=root, db_path=db_path)
    try:
        with worker_pool(jobs, initializer=_init_page_worker) as pool:
            for results in pool.map(_render_pages, chunked(list(range(len(batch))), jobs)):
                for result in results:
                    yield result
                    writer.written += result[3]  # the workers' writes, counted here
                if progress:
                    progress.advance(len(results))
        writer.mark_dirty()
    finally:
        _page_job.clear()


def template_problem(e: jinja2.TemplateError, root: Path) -> Problem:
    """A template error as a Problem naming the template file and line."""
    if isinstance(e, jinja2.TemplateSyntaxError):
        filename, line = e.filename or e.name or TEMPLATES_DIR, e.lineno
    else:
        filename, line = _template_frame(e)
    return Problem(_template_display_name(filename, root), line or 1,
                   f"template error: {e.message or e}",
                   hint="fix the template; pages it failed on keep their last good version")


def _template_frame(e: BaseException) -> tuple[str, int | None]:
    """The innermost template file and line in a runtime error's traceback (Jinja
    maps its compiled code back to template lines)."""
    tb, found = e.__traceback__, (TEMPLATES_DIR, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".html"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _template_display_name(filename: str, root: Path) -> str:
    path = Path(filename)
    for base, label in ((root, ""), (Path(str(BUILTIN_THEME)), "(built-in theme) ")):
        try:
            return label + path.resolve().relative_to(base.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return filename
