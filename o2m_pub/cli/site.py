"""`o2m init`, `o2m build`, `o2m watch` and `o2m demo`: making and building a site.

`start_watching` is shared with `o2m serve --watch` (hosting.py).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import gc
import shlex
import sys
from functools import lru_cache
from pathlib import Path
from typing import Callable

import click

from o2m_pub.cli._common import (
    KDF_OPTION,
    BadValueError,
    RichProgress,
    error_line,
    fail,
    kdf_limits,
    local_now,
    obtain_passphrase,
    out,
    plural,
    report_problem,
    site_root,
    unlock_identity,
    unlock_with_passphrase,
    warn,
)
from o2m_pub.config import build_paths
from o2m_pub.errors import BuildFailedError, O2MError, SiteError


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The site's name (asked for when run interactively).")
@click.option("--url", help="Where the site will be published, e.g. https://ada.example/ "
                            "(asked for when run interactively; needed in a script).")
@click.option("--author", help="Your name as it appears on posts and in your card "
                               "(asked for when run interactively; default: the site's name).")
@click.option("--description", help="One line about the site, for search engines and feeds.")
@click.option("--own-cert", is_flag=True,
              help="Make no self-signed certificate: you will name your own in [serve] "
                   "(from certbot, say), and your card carries no TLS pin.")
@KDF_OPTION
@click.pass_context
def init(ctx: click.Context, directory: Path | None, name: str | None, url: str | None,
         author: str | None, description: str | None, own_cert: bool, kdf: str) -> None:
    """Create a new site: config, your keys, TLS certificate and card, a sample post, and
    site_templates/ for your changes to the theme. A refused or interrupted init leaves
    nothing behind."""
    from urllib.parse import urlsplit

    from o2m_pub.config import load, parse_config
    from o2m_pub.errors import ConfigError, SiteError
    from o2m_pub.friends.identity import create_owner
    from o2m_pub.site.scaffold import (
        built_aside,
        check_site_url,
        config_text,
        init_site,
        refuse_existing_site,
    )

    folder = directory or ctx.obj.get("site") or Path.cwd()
    interactive = sys.stdin.isatty()
    default_name = folder.resolve().name.replace("-", " ").title() or "My site"
    if url is None and not interactive:  # before any question: a script gets one line
        raise BadValueError("--url", "needed without a terminal: the https:// address where "
                            "the site will be published (links in your feeds and your card "
                            "point there)",
                            hint="e.g. o2m init my-site --url https://ada.example/")
    if url is not None:  # a usage error (exit 2), before the disk is looked at
        try:
            url = check_site_url(url)
        except SiteError as e:
            raise BadValueError("--url", str(e), hint=e.hint) from None
    refuse_existing_site(folder)
    if name is None:
        name = click.prompt("Site name", default=default_name) if interactive else default_name
    if url is None:
        url = click.prompt("Public URL, where build/ will be published (https://…)",
                           value_proc=_answered_url)
    if author is None and interactive:
        author = click.prompt("Your name, as friends and readers will see it",
                              default=name).strip()
    if description is None:
        description = click.prompt("One line about the site (for search engines; "
                                   "Enter for none)", default="", show_default=False
                                   ).strip() if interactive else ""
    try:  # the other values, validated before touching the disk
        parse_config(config_text(name=name, url=url, author=author or name, timezone="UTC",
                                 description=description).encode(), "o2m.toml")
    except ConfigError as e:
        raise SiteError(str(e).replace("site.", "--", 1), hint=e.hint) from None
    passphrase = _new_passphrase(ctx)
    now = local_now()
    with built_aside(folder) as work:  # moved into place only when all of it is made
        created = init_site(work, name=name, url=url, author=author, description=description,
                            now=now)
        pin = None
        if not own_cert:
            from o2m_pub.host.tls import TLS_DIR, ensure_self_signed
            pair, _ = ensure_self_signed(work, [urlsplit(url).hostname or "localhost"], now)
            pin = pair.pin
            created.append(work / TLS_DIR)
        identity, card = create_owner(work, load(work), passphrase, now=now, tls_pin=pin,
                                      **kdf_limits(kdf))
        shown = [f"  {p.relative_to(work)}{'/' if p.is_dir() else ''}" for p in created]
    out(f"made a new o2m site in {folder}:")
    out("\n".join(shown))
    if pin is not None:
        out("  (a self-signed TLS certificate for `o2m serve`: its pin is in your card, "
            "so friends can check it)")
    else:
        out("  (no certificate: name yours in [serve] cert and key, docs/CONFIG.md)")
    out(f"your fingerprint: {identity.fingerprint}")
    out(f"next: cd {folder} && o2m build" if directory else "next: o2m build")


def _new_passphrase(ctx: click.Context) -> bytes:
    """The passphrase for a new site's keys; a weak one is warned about, and when it
    was typed at the terminal the owner confirms it or types another."""
    from o2m_pub.friends.passphrase_strength import passphrase_weakness

    while True:
        passphrase, typed = obtain_passphrase(ctx, "Passphrase for your keys", new=True)
        weakness = passphrase_weakness(passphrase)
        if weakness is None or not passphrase:  # (an empty one is refused, not warned of)
            return passphrase
        warn(f"this passphrase looks weak: {weakness}. It guards your keys and every "
             "friend's feed; four or more random words are strong and easy to type")
        if not typed or click.confirm("Use it anyway?", default=False):
            return passphrase


@click.command()
@click.option("--drafts", is_flag=True,
              help="Include drafts, in a private preview folder (.o2m/preview/).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Worker processes (default: cores).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing unless something is wrong.")
@click.option("--timings", is_flag=True, help="Show how long each phase of the build took.")
@click.pass_context
def build(ctx: click.Context, drafts: bool, jobs: int | None, quiet: bool, timings: bool) -> None:
    """Render content/ into build/, redoing only what changed.

    When your name, URL or certificate changed (or the card was made by an older o2m),
    a new card is signed first (it asks to unlock), so friends take it on their next
    fetch.
    """
    root = site_root(ctx)
    _fewer_collections()
    with _scan_ahead(root, drafts) as ahead:
        identity = None if drafts else renew_stale_card(ctx, root)
        if identity is not None and ahead is not None:
            ahead.close()  # it asked for the passphrase: scan what is there now instead
        report = run_build(root, ctx, drafts=drafts, jobs=jobs, identity=identity, ahead=ahead)
    if timings:
        for phase, seconds in report.timings.items():
            click.echo(f"  {phase:<22} {seconds * 1000:8.1f} ms", err=True)
    if not quiet:
        out(build_summary(report, root))
        if drafts:
            out(f"preview: {(report.out_dir / 'index.html').as_uri()}")
    if report.feed_error is not None:
        error_line(f"friends' feeds were not updated: {report.feed_error}",
                    report.feed_error.hint)
        if not report.problems:
            sys.exit(1)
    if report.problems:
        fail(BuildFailedError(report.problems))


def _answered_url(text: str) -> str:
    """The URL answered at `o2m init`'s question, checked: a mistake is said and the
    question asked again (click's prompt does so on BadParameter)."""
    from o2m_pub.site.scaffold import check_site_url
    try:
        return check_site_url(text)
    except SiteError:
        host = text.strip().split("://")[-1].strip("/")
        host = host if host and not any(c.isspace() for c in host) else "ada.example"
        raise click.BadParameter(f"{text.strip()!r} is not an https:// address; e.g. "
                                 f"https://{host}/") from None


def _scan_ahead(root: Path, drafts: bool):  # noqa: ANN202 - a context of ScanAhead | None
    """The scan of content/ and the pages' sizes taken now in a forked child, while this
    process imports the build and reads its state (site/scan_ahead.py), for a big site.
    (The paths are `Builder`'s: `config.build_paths`.)"""
    from o2m_pub.site.scan_ahead import start

    return start(root, *build_paths(root, drafts)) or contextlib.nullcontext()


def renew_stale_card(ctx: click.Context, root: Path):  # noqa: ANN201 - Identity | None
    """Sign a new card when the site's name, URL or certificate changed, or the card
    lacks the fields of o2m 1.1 (PROTOCOL.md §2.4); returns the identity unlocked for
    it (the build then needs no second prompt), or None. Without a passphrase at hand
    (no terminal, no $O2M_PASSPHRASE), it only warns."""
    if not (root / "keys").is_dir():  # no keys, no card: spare a build their imports
        return None
    from o2m_pub.cli.identity import card_changes, renew_card
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card
    from o2m_pub.protocol.keyfile import PassphraseError, WrongPassphraseError

    config = load(root)
    try:
        changes = card_changes(root, config, own_card(root))
    except O2MError:
        return None  # a damaged card or key file: the commands that need them say so
    if not changes:
        return None
    try:
        card, identity = renew_card(ctx, root, config)
    except WrongPassphraseError:
        raise
    except PassphraseError as e:
        warn(f"your card is out of date ({', '.join(changes)}) and was not renewed ({e}): "
             "run `o2m card --renew`")
        return None
    click.echo(f"o2m: signed a new card for {', '.join(changes)} (seq {card.seq}); friends "
               "take it on their next fetch", err=True)
    return identity


def build_and_report(ctx: click.Context, root: Path, *,  # noqa: ANN201 - BuildReport
                     passphrase: bytes | None = None):
    """`o2m build` for the commands that change the site's keys or URL first (`o2m key
    rotate`, `o2m move`): the summary line, problems and a feed error are shown."""
    report = run_build(root, ctx, passphrase=passphrase)
    out(build_summary(report, root))
    if report.feed_error is not None:
        error_line(f"friends' feeds were not updated: {report.feed_error}",
                   report.feed_error.hint)
    return report


# Allocations between the garbage collector's young collections in a one-off build
# (Python's default: 700). A one-post edit imports Jinja2, Python-Markdown and o2m's
# build and makes objects for 10,000 posts, none of them in a cycle: with 700 that set
# off 61 collections, 8 ms; with this, none. Cyclic garbage waits longer for its
# collection, up to this many allocations (a cold build's peak: the same with two
# workers, a few MB more in one process).
ONE_OFF_GC_THRESHOLD = 20_000


def _fewer_collections() -> None:
    """A one-off build: the young generation collected less often (its other two
    thresholds as they are)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(ONE_OFF_GC_THRESHOLD, middle, old)


@lru_cache(maxsize=1)
def _freeze_at_exit() -> None:
    """At interpreter exit, before its last garbage collections: freeze what is alive.
    A build leaves its 10,000 post records alive to the end, and those collections
    would walk them all (about 30 ms on the benchmark site) for memory the process is
    giving back anyway."""
    atexit.register(gc.freeze)


def run_build(root: Path, ctx: click.Context | None = None, *, identity=None,  # noqa: ANN001
              passphrase: bytes | None = None, **options):  # noqa: ANN003, ANN202
    """Build the site (`o2m build`, and `o2m publish` first), printing its warnings and
    problems; returns the report. `identity` (already unlocked) or `passphrase`, when
    given, spare a prompt."""
    from o2m_pub.site.build import build_site

    _freeze_at_exit()
    _fewer_collections()
    unlocked = [identity] if identity is not None else []

    def unlock():  # noqa: ANN202 - only when a friend's feed must be signed
        from o2m_pub.friends.identity import load_identity  # (and the crypto, only then)
        if unlocked:
            return unlocked[0]
        if passphrase is not None:
            unlocked.append(load_identity(root, passphrase))
        elif ctx is None:
            unlocked.append(load_identity(root, b""))
        else:
            unlocked.append(unlock_identity(ctx, root))
        return unlocked[0]

    progress = RichProgress() if sys.stderr.isatty() else None
    waited = ctx.obj.get("prompt_seconds", 0.0) if ctx else 0.0
    try:
        report = build_site(root, progress=progress, unlock=unlock, **options)
    finally:
        if progress:
            progress.stop()
    if ctx:  # the time someone took to type the passphrase is not the build's
        report.seconds -= ctx.obj.get("prompt_seconds", 0.0) - waited
    for w in report.warnings:
        warn(w)
    for p in report.problems:
        report_problem(p)
    if report.notices and unlocked:  # PROTOCOL.md §4.7: push, when the OP serves
        from o2m_pub.cli.conversations import send_notices
        for line in send_notices(root, report.notices, unlocked[0]):
            warn(line)
    return report


def build_summary(report, root: Path) -> str:  # noqa: ANN001
    """The build's one summary line."""
    n = report.posts + report.private  # public and private: all the writer wrote
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


# -- o2m move (issue 12) -------------------------------------------------------------

@click.command()
@click.argument("new_url")
@click.option("--no-pin", is_flag=True,
              help="The new host has a certificate from a CA: no TLS pin in your card.")
@click.option("--no-build", is_flag=True, help="Do not build afterwards.")
@click.pass_context
def move(ctx: click.Context, new_url: str, no_pin: bool, no_build: bool) -> None:
    """Move your site to NEW_URL: o2m.toml, a new card, a build.

    Publish build/ to the new host, and once more to the old one: the old host then
    serves your new card, and friends follow on their next fetch with no paste (posts
    keep their identity: nothing is duplicated in their timelines). Keep the old host up
    until they have fetched; a redirect there helps feed readers (docs/HOSTING.md).
    """
    from o2m_pub._files import write_file
    from o2m_pub.cli.identity import renew_card
    from o2m_pub.config import CONFIG_NAME, load, parse_config, replace_site_url
    from o2m_pub.protocol.cards import InvalidCardFieldError, check_card_url

    new_url = new_url if new_url.endswith("/") else new_url + "/"
    try:  # a usage error (exit 2), before the site is read
        check_card_url(new_url)
    except InvalidCardFieldError as e:
        raise BadValueError("NEW_URL", f"{new_url}: {e.reason}", hint="give the https:// "
                            "address of the new site, e.g. https://ada.example/") from None
    root = site_root(ctx)
    config = load(root)
    if new_url == config.url:
        raise SiteError(f"your site is already at {new_url}")
    path = root / CONFIG_NAME
    text = replace_site_url(path.read_text(encoding="utf-8"), new_url)
    new_config = parse_config(text.encode("utf-8"))  # checked before anything is written
    identity, passphrase = unlock_with_passphrase(ctx, root)  # a wrong one changes nothing
    write_file(path, text.encode("utf-8"), 0o644)
    card, _ = renew_card(ctx, root, new_config, no_pin=no_pin, identity=identity)
    out(f"moved {config.url} -> {new_url}: o2m.toml and your card (seq {card.seq}, "
        + ("TLS pin " + ("kept" if card.tls_pin else "none") + ")"))
    if not no_build:
        build_and_report(ctx, root, passphrase=passphrase)
    out("next:")
    out(f"  1. publish build/ to the new host ({new_url})")
    out(f"  2. publish it once more to the old host ({config.url}): it then serves your "
        "new card, and friends follow on their next fetch")
    out("  3. keep the old host up until they have; to redirect visitors there, see "
        "docs/HOSTING.md (an old `o2m serve`: [serve] moved_to = "
        f"\"{new_url}\" in its o2m.toml)")


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
    unlock, held = _watch_unlock(ctx, root), []

    def remembered():  # noqa: ANN202 - keys.Identity, kept for the notices below
        held[:] = [unlock()]
        return held[0]

    def report(result) -> None:  # noqa: ANN001 - watch.BuildResult
        if not quiet():
            _print_watch_result(result, root, warned, debug=bool(ctx.obj.get("debug")))
            if after_build is not None:
                after_build(result)
        if held and result.report is not None and result.report.notices:
            _send_notices_later(root, result.report.notices, held[0])

    watcher = SiteWatcher(root, report, unlock=remembered,
                          debounce=debounce / 1000, drafts=drafts, jobs=jobs)
    watcher.start()
    return watcher.stop


def _send_notices_later(root: Path, notices: list, identity: object) -> None:
    """PROTOCOL.md §4.7 under `o2m watch`: the notices of a build, sent in a thread of
    their own (an OP's server that does not answer never holds up the next build)."""
    import threading

    from o2m_pub.cli.conversations import send_notices

    def send() -> None:
        try:
            send_notices(root, notices, identity)
        except Exception:  # noqa: BLE001 - a hint only: the OP's fetch finds it anyway
            pass
    threading.Thread(target=send, daemon=True, name="o2m-notices").start()


def _watch_unlock(ctx: click.Context, root: Path) -> Callable[[], object]:
    """The key for a watch session: unlocked now when the site has friends (ask once,
    before the first build, not in the middle of one); else only if a feed needs it."""
    def unlock():  # noqa: ANN202 - keys.Identity
        return unlock_identity(ctx, root)

    friends = root / "keys" / "friends"
    if friends.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".")
                                for p in friends.iterdir()):
        early = [unlock()]  # the session keeps it; a later key change unlocks again

        def first_early() -> object:
            return early.pop() if early else unlock()
        return first_early
    return unlock


def _changed_files(sources: tuple[str, ...], shown: int = 3) -> str:
    """The files whose change caused a rebuild, named: "content/a.md", "content/a.md,
    o2m.toml", "content/a.md, content/b.md, content/c.md and 4 more"."""
    if not sources:
        return "rebuild"
    names = ", ".join(sources[:shown])
    return names if len(sources) <= shown else f"{names} and {len(sources) - shown:,} more"


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
        out(f"{when} {build_summary(report, root)}; watching for changes (Ctrl-C stops)")
    else:
        what = _changed_files(result.sources)
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
    import tempfile

    from o2m_pub.demo import (
        DEMO_PASSPHRASE,
        PEOPLE,
        conversation_steps,
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
        out(f"built {person.slug}/: {build_summary(report, root)}")
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
        out("\na conversation: Sam replies to Ada's post for friends and Mum reacts; "
            "the thread lives with Ada")
        for slug, *args in conversation_steps(roots["ada"]):
            out(f"\n$ o2m -C {slug} {' '.join(shlex.quote(a) for a in args)}")
            _relay(o2m_command(roots[slug], *args))
    finally:
        stop_servers(servers)
    out("\nthe servers have stopped. Try, with the passphrase 'demo' "
        f"(export O2M_PASSPHRASE={DEMO_PASSPHRASE.decode()}):")
    out(f"  cd {folder / 'ada'} && o2m serve --watch --port {ports[0]}   "
        "# open the URL it prints, then edit a post in content/")
    out(f"  cd {folder / 'sam'} && o2m timeline && o2m desk")
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
