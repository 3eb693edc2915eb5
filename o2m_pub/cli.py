"""The `o2m` command: the only module that prints or exits.

Every user error is an `O2MError`, shown as one line, ``o2m: error: <where>: <what>``,
with a hint below it and exit status 1; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from functools import lru_cache

import click

from . import __version__
from .config import find_site_root
from .errors import BuildFailed, O2MError, Problem, SiteError


def out(text: str = "") -> None:
    click.echo(text)


@lru_cache(maxsize=1)
def _stderr():  # noqa: ANN202 - rich.console.Console, imported only when needed
    from rich.console import Console
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _error_line(text: str, hint: str | None) -> None:
    """`o2m: error: ...` and its hint; user text is escaped (it may hold [brackets])."""
    from rich.markup import escape
    _stderr().print(f"[bold red]o2m: error:[/] {escape(text)}", emoji=False)
    if hint:
        _stderr().print(f"  [dim]hint: {escape(hint)}[/]", emoji=False)


def warn(text: str) -> None:
    from rich.markup import escape
    _stderr().print(f"[yellow]o2m: warning:[/] {escape(text)}", emoji=False)


def fail(e: O2MError) -> NoReturn:
    where = e.where
    _error_line(f"{where + ': ' if where else ''}{e}", e.hint)
    sys.exit(1)


def report_problem(p: Problem) -> None:
    _error_line(str(p), p.hint)


class _RichProgress:
    """The builder's progress protocol on a rich progress bar (only on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=_stderr(), transient=True)
        self.task = None

    def start(self, label: str, total: int) -> None:
        if total < 200:
            self.task = None
            return
        if self.task is None and not self.bar.live.is_started:
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar.live.is_started:
            self.bar.stop()


def _site_root(ctx: click.Context) -> Path:
    start = ctx.obj.get("site") or Path.cwd()
    root = find_site_root(start)
    if root is None:
        raise SiteError(f"no o2m.toml in {start} or above: not an o2m site",
                        hint="run `o2m init` to make one, or pass -C SITE_DIR")
    return root


class _Group(click.Group):
    """Turns O2MError into one line (and everything else into a traceback only with --debug)."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except O2MError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            fail(e)
        except OSError as e:  # a full disk, a permission: the user's to mend, one line
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = f"{e.filename}: " if e.filename else ""
            fail(O2MError(f"{where}{e.strerror or e}",
                          hint="nothing was half-written; fix this and run the command again"))
        except KeyboardInterrupt:
            click.echo("o2m: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--site", type=click.Path(file_okay=False, path_type=Path),
              help="Run as if started in this site folder.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="o2m")
@click.pass_context
def main(ctx: click.Context, site: Path | None, debug: bool) -> None:
    """o2m: your posts as static files, for the public and for your friends."""
    ctx.obj = {"site": site, "debug": debug}


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The site's name (asked for when run interactively).")
@click.option("--url", help="Where the site will be published, e.g. https://example.org/.")
@click.option("--author", help="Your name as it appears on posts (default: the site's name).")
@click.pass_context
def init(ctx: click.Context, directory: Path | None, name: str | None, url: str | None,
         author: str | None) -> None:
    """Create a new site: config, a sample post, the default theme."""
    from .config import parse_config
    from .scaffold import config_text, init_site

    folder = directory or ctx.obj.get("site") or Path.cwd()
    interactive = sys.stdin.isatty()
    default_name = folder.resolve().name.replace("-", " ").title() or "My site"
    if name is None:
        name = click.prompt("Site name", default=default_name) if interactive else default_name
    if url is None:
        url = (click.prompt("Public URL", default="https://example.org/") if interactive
               else "https://example.org/")
    parse_config(config_text(name=name, url=url, author=author or name, timezone="UTC").encode(),
                 "--name/--url")  # validate before touching the disk
    created = init_site(folder, name=name, url=url, author=author, now=_now())
    out(f"made a new o2m site in {folder}:")
    for p in created:
        out(f"  {p.relative_to(folder)}{'/' if p.is_dir() else ''}")
    out(f"next: cd {folder} && o2m build" if directory else "next: o2m build")


@main.command()
@click.option("--drafts", is_flag=True,
              help="Include drafts, in a private preview folder (.o2m/preview/).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Worker processes (default: cores).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something is wrong.")
@click.option("--timings", is_flag=True, help="Show how long each phase of the build took.")
@click.pass_context
def build(ctx: click.Context, drafts: bool, jobs: int | None, quiet: bool, timings: bool) -> None:
    """Render content/ into build/, redoing only what changed."""
    root = _site_root(ctx)
    report = _run_build(root, drafts=drafts, jobs=jobs)
    if timings:
        for phase, seconds in report.timings.items():
            click.echo(f"  {phase:<22} {seconds * 1000:8.1f} ms", err=True)
    if not quiet:
        out(_summary(report, root))
        if drafts:
            out(f"preview: {(report.out_dir / 'index.html').as_uri()}")
    if report.problems:
        fail(BuildFailed(report.problems))


def _run_build(root: Path, **options):  # noqa: ANN003, ANN202
    from .build import build_site

    progress = _RichProgress() if sys.stderr.isatty() else None
    try:
        report = build_site(root, progress=progress, **options)
    finally:
        if progress:
            progress.stop()
    for w in report.warnings:
        warn(w)
    for p in report.problems:
        report_problem(p)
    return report


def _summary(report, root: Path) -> str:  # noqa: ANN001
    n = report.posts
    parts = [f"built {n:,} post{'s' if n != 1 else ''} ({report.changed:,} changed) "
             f"in {report.seconds:.1f} s"]
    if report.written or report.deleted:
        where = report.out_dir.relative_to(root) if report.out_dir.is_relative_to(root) \
            else report.out_dir
        parts.append(f"wrote {report.written:,} file{'s' if report.written != 1 else ''}"
                     + (f", removed {report.deleted:,}" if report.deleted else "") + f" in {where}/")
    else:
        parts.append("nothing to write")
    if report.private:
        parts.append(f"{report.private:,} private kept off the public site")
    if report.drafts:
        parts.append(f"{report.drafts:,} draft{'s' if report.drafts != 1 else ''} skipped")
    return "; ".join(parts)


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(directory: Path | None) -> None:
    """Make and build a sample site in a folder of its own, and show it."""
    from .scaffold import make_demo_site

    folder = directory or Path(tempfile.gettempdir()) / "o2m-demo"
    count = make_demo_site(folder, now=_now())
    out(f"o2m demo: a sample site of {count} post files in {folder}")
    report = _run_build(folder)
    out(_summary(report, folder))
    build_dir = report.out_dir
    pages = sum(1 for _ in build_dir.rglob("*.html"))
    media = sum(1 for _ in (build_dir / "media").rglob("*") if _.is_file()) \
        if (build_dir / "media").exists() else 0
    out(f"  {pages} HTML pages, {media} media files, feed.json, atom.xml, sitemap.xml")
    out(f"  open in a browser: {(build_dir / 'index.html').as_uri()}")
    out(f"  edit a post in {folder / 'content'} and run "
              f"`o2m -C {folder} build` to see an incremental rebuild")
    if report.problems:
        fail(BuildFailed(report.problems))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).astimezone()
