"""`o2m init`, `o2m build`, `o2m watch` and `o2m demo`: making and building a site.

`start_watching` is shared with `o2m serve --watch` (hosting.py).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Callable

import click

from o2m_pub.cli._common import (
    KDF_OPTION,
    RichProgress,
    error_line,
    fail,
    kdf_limits,
    local_now,
    out,
    plural,
    read_passphrase,
    report_problem,
    site_root,
    warn,
)
from o2m_pub.errors import BuildFailedError, O2MError


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The site's name (asked for when run interactively).")
@click.option("--url", help="Where the site will be published, e.g. https://example.org/.")
@click.option("--author", help="Your name as it appears on posts (default: the site's name).")
@KDF_OPTION
@click.pass_context
def init(ctx: click.Context, directory: Path | None, name: str | None, url: str | None,
         author: str | None, kdf: str) -> None:
    """Create a new site: config, your keys and card, a sample post, the default theme."""
    from o2m_pub.config import load, parse_config
    from o2m_pub.friends.identity import create_owner
    from o2m_pub.site.scaffold import config_text, init_site, refuse_existing_site

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
    refuse_existing_site(folder)  # before asking for a passphrase
    passphrase = read_passphrase(ctx, "Passphrase for your keys", new=True)
    created = init_site(folder, name=name, url=url, author=author, now=local_now())
    identity, card = create_owner(folder, load(folder), passphrase, now=local_now(),
                                  **kdf_limits(kdf))
    out(f"made a new o2m site in {folder}:")
    for p in created:
        out(f"  {p.relative_to(folder)}{'/' if p.is_dir() else ''}")
    out(f"your fingerprint: {identity.fingerprint}")
    out(f"next: cd {folder} && o2m build" if directory else "next: o2m build")


@click.command()
@click.option("--drafts", is_flag=True,
              help="Include drafts, in a private preview folder (.o2m/preview/).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Worker processes (default: cores).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something is wrong.")
@click.option("--timings", is_flag=True, help="Show how long each phase of the build took.")
@click.pass_context
def build(ctx: click.Context, drafts: bool, jobs: int | None, quiet: bool, timings: bool) -> None:
    """Render content/ into build/, redoing only what changed."""
    root = site_root(ctx)
    report = _run_build(root, ctx, drafts=drafts, jobs=jobs)
    if timings:
        for phase, seconds in report.timings.items():
            click.echo(f"  {phase:<22} {seconds * 1000:8.1f} ms", err=True)
    if not quiet:
        out(_summary(report, root))
        if drafts:
            out(f"preview: {(report.out_dir / 'index.html').as_uri()}")
    if report.feed_error is not None:
        error_line(f"friends' feeds were not updated: {report.feed_error}",
                    report.feed_error.hint)
        if not report.problems:
            sys.exit(1)
    if report.problems:
        fail(BuildFailedError(report.problems))


def _run_build(root: Path, ctx: click.Context | None = None, **options):  # noqa: ANN003, ANN202
    from o2m_pub.site.build import build_site

    def unlock():  # noqa: ANN202 - only when a friend's feed must be signed
        from o2m_pub.friends.identity import (
            load_identity,  # (the crypto is imported only then, too)
        )
        return load_identity(root, read_passphrase(ctx) if ctx else b"")

    progress = RichProgress() if sys.stderr.isatty() else None
    try:
        report = build_site(root, progress=progress, unlock=unlock, **options)
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
                     + (f", removed {report.deleted:,}" if report.deleted else "")
                     + f" in {where}/")
    else:
        parts.append("nothing to write")
    if report.private:
        parts.append(f"{report.private:,} private kept off the public site")
    if report.heads:
        parts.append(f"{report.heads:,} friend feed{'s' if report.heads != 1 else ''} signed")
    if report.drafts:
        parts.append(f"{report.drafts:,} draft{'s' if report.drafts != 1 else ''} skipped")
    return "; ".join(parts)


# -- o2m watch (issue 5) -------------------------------------------------------------

@click.command()
@click.option("--debounce", type=click.IntRange(0, 10_000), default=100, show_default=True,
              metavar="MS", help="Quiet time after the last change before a build starts.")
@click.option("--drafts", is_flag=True,
              help="Include drafts, in a private preview folder (.o2m/preview/).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Worker processes (default: cores).")
@click.pass_context
def watch(ctx: click.Context, debounce: int, drafts: bool, jobs: int | None) -> None:
    """Build, then rebuild on every save in content/, site_templates/, o2m.toml and keys/.

    One line per build: what changed, what was written, how long it took (or the
    error; the watch goes on). Ctrl-C or SIGTERM stops it, after a build in progress.
    """
    import signal
    import threading

    root = site_root(ctx)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:  # noqa: ANN001
        if stop.is_set():  # a second Ctrl-C: do not wait for the build
            raise KeyboardInterrupt
        stop.set()

    # (forked build workers inherit these handlers: one Ctrl-C does not kill them)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stop_watching = start_watching(ctx, root, debounce=debounce, drafts=drafts, jobs=jobs,
                                    quiet=stop.is_set)
    while not stop.wait(1.0):
        pass
    stop_watching()


def start_watching(ctx: click.Context, root: Path, *, debounce: int = 100,
                    drafts: bool = False, jobs: int | None = None,
                    quiet: Callable[[], bool] = lambda: False,
                    after_build: Callable[[object], None] | None = None) -> Callable[[], None]:
    """Start a `watch.SiteWatcher` that prints one line per build (`o2m watch`, and
    `o2m serve --watch` in its serving process); returns the function that stops it.
    The passphrase is asked for now, once, when friends' feeds will need the key;
    nothing is printed while `quiet()` (stopping). `after_build` gets each build's
    `watch.BuildResult` once it is printed (`o2m serve --watch` sends Webmentions)."""
    from o2m_pub.site.watch import SiteWatcher

    warned: set[str] = set()

    def report(result) -> None:  # noqa: ANN001 - watch.BuildResult
        if not quiet():
            _print_watch_result(result, root, warned, debug=bool(ctx.obj.get("debug")))
            if after_build is not None:
                after_build(result)

    watcher = SiteWatcher(root, report, unlock=_watch_unlock(ctx, root),
                          debounce=debounce / 1000, drafts=drafts, jobs=jobs)
    watcher.start()
    return watcher.stop


def _watch_unlock(ctx: click.Context, root: Path) -> Callable[[], object]:
    """The key for a watch session: unlocked now when the site has friends (ask once,
    before the first build, not in the middle of one); else only if a feed needs it."""
    from o2m_pub.friends.identity import load_identity

    def unlock():  # noqa: ANN202 - keys.Identity
        return load_identity(root, read_passphrase(ctx))

    friends = root / "keys" / "friends"
    if friends.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".")
                                for p in friends.iterdir()):
        early = [unlock()]  # the session keeps it; a later key change unlocks again

        def first_early() -> object:
            return early.pop() if early else unlock()
        return first_early
    return unlock


def _print_watch_result(result, root: Path, warned: set[str], *, debug: bool) -> None:  # noqa: ANN001
    """One line for a build (stdout), and its errors as `o2m build` prints them (stderr)."""
    when = dt.datetime.now().strftime("%H:%M:%S")
    if result.error is not None:
        e = result.error
        if isinstance(e, O2MError):
            where = f"{e.where}: " if e.where else ""
            error_line(f"{where}{e}", e.hint)
        elif isinstance(e, OSError):
            error_line(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", None)
        else:
            error_line(f"internal error: {e!r} (the watch goes on)", None)
            if debug:
                import traceback
                traceback.print_exception(e)
        return
    report = result.report
    for w in report.warnings:
        if w not in warned:
            warn(w)
    warned.clear()
    warned.update(report.warnings)
    if result.number == 1:
        out(f"{when} {_summary(report, root)}; watching for changes (Ctrl-C stops)")
    else:
        sources = result.sources
        what = sources[0] if len(sources) == 1 else f"{len(sources)} files" if sources \
            else "rebuild"
        parts = [f"wrote {report.written:,} file{'s' if report.written != 1 else ''}"
                 + (f", removed {report.deleted:,}" if report.deleted else "")
                 if report.written or report.deleted else "nothing to write"]
        if report.heads:
            parts.append(f"{report.heads:,} friend feed{'s' if report.heads != 1 else ''} "
                         "signed")
        if report.problems:
            n = len(report.problems)
            parts.append(f"{n} problem{'s' if n != 1 else ''}")
        out(f"{when} {what}: {', '.join(parts)} in {report.seconds:.2f} s")
    for p in report.problems:
        report_problem(p)
    if report.feed_error is not None:
        error_line(f"friends' feeds were not updated: {report.feed_error}",
                    report.feed_error.hint)


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(directory: Path | None) -> None:
    """Three people, three sites, three real servers: build, serve, fetch, read.

    Ada, Sam and Mum each get a site in DIRECTORY (default: the temp folder), a key,
    a pinned self-signed certificate and the other two as friends. Each site is built,
    served by `o2m serve` on 127.0.0.1 and fetched by the others with `o2m fetch`;
    then Ada's merged timeline is printed and the servers stop.
    """
    from o2m_pub.demo import (
        DEMO_PASSPHRASE,
        PEOPLE,
        free_ports,
        make_world,
        o2m_command,
        start_servers,
        stop_servers,
    )
    from o2m_pub.friends.identity import load_identity
    from o2m_pub.site.build import build_site

    folder = directory or Path(tempfile.gettempdir()) / "o2m-demo"
    ports = free_ports(len(PEOPLE))
    roots = make_world(folder, now=local_now(), ports=ports)
    out(f"o2m demo: three people with a site each in {folder}: "
        + ", ".join(f"{p.author} ({p.slug}/)" for p in PEOPLE))
    out("  each has a key, a self-signed certificate pinned in their card, "
        "and the other two as friends\n")
    problems = []
    for person in PEOPLE:
        root = roots[person.slug]
        report = build_site(root, unlock=lambda root=root: load_identity(root, DEMO_PASSPHRASE))
        problems += report.problems
        objects = sum(1 for p in (report.out_dir / "o").rglob("*") if p.is_file())
        out(f"built {person.slug}/: {_summary(report, root)}")
        out(f"  {plural(objects, 'encrypted object')}, {plural(report.heads, 'signed feed head')}"
            " in f/ (one per friend; no friend's name appears in build/)")
    for p in problems:
        report_problem(p)
    servers = start_servers(roots, ports)
    try:
        out("")
        for server in servers:
            out(f"serving {server.slug}/build at {server.url} (o2m serve, TLS, pinned)")
        for person in PEOPLE:
            out(f"\n$ o2m -C {person.slug} fetch")
            result = o2m_command(roots[person.slug], "fetch")
            _relay(result)
        out("\n$ o2m -C ada timeline")
        _relay(o2m_command(roots["ada"], "timeline", "--limit", "10"))
    finally:
        stop_servers(servers)
    out("\nthe servers have stopped. Try, with the passphrase 'demo' "
        f"(export O2M_PASSPHRASE={DEMO_PASSPHRASE.decode()}):")
    out(f"  cd {folder / 'ada'} && o2m serve --watch --port {ports[0]}   "
        "# open the URL it prints, then edit a post in content/")
    out(f"  cd {folder / 'sam'} && o2m timeline && o2m reader")
    if problems:
        fail(BuildFailedError(problems))


def _relay(result) -> None:  # noqa: ANN001 - subprocess.CompletedProcess
    """Show what one of the demo's commands printed, as if it had run here."""
    if result.stdout.strip():
        out(result.stdout.rstrip())
    if result.stderr.strip():
        click.echo(result.stderr.rstrip(), err=True)
    if result.returncode not in (0,):
        click.echo(f"(exit status {result.returncode})", err=True)
