"""`o2m serve` and `o2m publish`: putting build/ where friends can fetch it."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import click

from o2m_pub.cli._common import (
    local_now,
    out,
    plural,
    site_root,
    stderr_console,
    warn,
)
from o2m_pub.cli.site import (  # `o2m serve --watch` is `o2m watch`'s loop; publish builds
    build_summary,
    run_build,
    start_watching,
)
from o2m_pub.host.publish.plan import (  # pure and light: for --grace's default
    DEFAULT_GRACE,
    duration_text,
)

# -- o2m serve (issue 5) -------------------------------------------------------------

@click.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1, or [serve] host]")
@click.option("--port", type=click.IntRange(0, 65535),
              help="HTTPS port (0: any free one).  [default: [serve] port, else the port "
                   "in site.url, else 8443]")
@click.option("--public", is_flag=True, help="Listen on all interfaces (IPv4 and IPv6).")
@click.option("--http-port", type=click.IntRange(0, 65535),
              help="Also listen for plain HTTP here, only to redirect to HTTPS.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes sharing the port.  [default: one per core, at most 8]")
@click.option("--watch", is_flag=True,
              help="Rebuild on every save (as `o2m watch`) and reload open pages.")
@click.option("--access-log", type=click.Path(dir_okay=False, allow_dash=True),
              default=None, help="Combined Log Format file, or - for stdout.  "
                                 "[default: .o2m/access.log]")
@click.option("--no-access-log", is_flag=True, help="Keep no access log.")
@click.option("--no-client-addresses", is_flag=True,
              help="Leave client IP addresses out of the access log.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 600), default=10,
              show_default=True, help="Seconds a client has to send a whole request from its "
                                      "first byte (against slowloris).")
@click.option("--idle-timeout", type=click.FloatRange(0.1, 3600), default=30, show_default=True,
              help="Seconds a connection may sit with no request and nothing left to send.")
@click.option("--max-connections", type=click.IntRange(1, 1_000_000), default=4096,
              show_default=True, help="Open connections per worker; more are closed at once.")
@click.option("--desk", is_flag=True,
              help="Also serve your desk at /desk/ (sign in with your passphrase), to use it "
                   "from anywhere. It is never part of build/.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, public: bool,
          http_port: int | None, workers: int | None, watch: bool, access_log: str | None,
          no_access_log: bool, no_client_addresses: bool, request_timeout: float,
          idle_timeout: float, max_connections: int, desk: bool) -> None:
    """Serve build/ over HTTPS until Ctrl-C or SIGTERM (SIGHUP reloads the certificate).

    Without a certificate in [serve], a self-signed one is made in keys/tls/ on the
    first run and its pin goes into your card, so friends check it without a CA.
    """
    from o2m_pub.config import STATE_DIR, load, serve_port
    from o2m_pub.host.serve import ServeError, ServeOptions, bind, chosen_tls_transport, run
    from o2m_pub.host.tls import site_pair

    root = site_root(ctx)
    config = load(root)
    build_dir = root / "build"
    if not watch and not (build_dir / "index.html").is_file():
        raise ServeError("nothing to serve: build/ has no index.html", path="build/",
                         hint="run `o2m build` first, or `o2m serve --watch`")
    tls = chosen_tls_transport()  # before a certificate is made or a port bound
    pair, made, self_signed = site_pair(root, config, local_now())
    if made:
        out(f"o2m: made a self-signed certificate in keys/tls/ for {config.url}")
    _card_for_certificate(ctx, root, config, pair.pin if self_signed else None)
    settings = config.serve
    host = "::" if public else (host or settings.host)
    workers = workers or min(os.cpu_count() or 1, 8)
    listening = bind(host, serve_port(config) if port is None else port,
                     settings.http_port if http_port is None else http_port, pair,
                     workers=workers)
    log_file = None
    if not (no_access_log or not settings.access_log):
        log_file = _open_access_log(root / STATE_DIR, access_log)

    def report(line: str) -> None:
        click.echo(f"o2m: {line}", err=True)

    from o2m_pub.cli.mentions import BackgroundSender, webmention_receiver
    mount = None
    if desk:
        from o2m_pub.cli.desk import serve_mount
        mount = serve_mount(root, config.url, host, listening.port)
    options = ServeOptions(
        workers=workers, mount=mount,
        live_reload=watch, access_log=log_file, request_timeout=request_timeout,
        idle_timeout=idle_timeout, max_connections=max_connections,
        log_addresses=settings.log_addresses and not no_client_addresses,
        moved_to=settings.moved_to,
        report=report, inbox_kinds=inbox_kinds(root, report),
        inbox_per_address=settings.inbox_per_address, inbox_total=settings.inbox_total,
        site_url=config.url, webmention=webmention_receiver(root, config, report), tls=tls)
    pin_text = f"  pin {_pin_text(pair.pin)}" if self_signed else ""
    out(f"o2m: serving {build_dir} at {listening.url}{pin_text}")
    if settings.moved_to:
        out(f"o2m: the site moved to {settings.moved_to}: all but its card is redirected there")
    if desk:
        out(f"o2m: your desk at {listening.url.rstrip('/')}/desk/ (sign in with your "
            "passphrase)")
    if listening.http is not None:
        out(f"o2m: plain HTTP on port {listening.http.getsockname()[1]} redirects to HTTPS")
    sys.stdout.flush()
    # under --watch, each build that changed the site sends the Webmentions due (§1.6)
    sender = BackgroundSender(root, report) if config.webmention else None
    start = (lambda: start_watching(ctx, root, after_build=sender and sender.after_build)) \
        if watch else None
    sys.exit(run(build_dir, root / STATE_DIR, listening, options, start_in_parent=start))


def inbox_kinds(root: Path, report):  # noqa: ANN001, ANN201 - dict[bytes, inbox.InboxKind]
    """What `o2m serve`'s inbox takes (PROTOCOL.md §5), by magic: acceptances of the
    owner's invitations (§2.7) and notices of replies and reactions (§4.7). The server
    knows none of it: each kind is a shape check and a handler.

    An acceptance is processed at once: the friend is added (`InvitationBook.accept`)
    and a notification recorded in the reader's store, which `o2m notifications` and
    the desk show. The notification goes through this handler, wired here,
    because the server part must not import the reader: one store of notifications,
    written at the moment it happens, rather than a side file for the next command to
    import.
    """
    from o2m_pub.cli.friends import accepted_lines, friend_store
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.invitations import InvitationBook
    from o2m_pub.host.inbox import InboxKind
    from o2m_pub.protocol.invite import ACCEPT_MAGIC, acceptance_well_formed
    from o2m_pub.protocol.keyfile import fingerprint
    from o2m_pub.reader.store import ReaderStore

    def accept(body: bytes) -> None:
        accepted = InvitationBook(root).accept(body, friend_store(root), now=local_now())
        own = own_card(root)
        friend = accepted.friend
        detail = f"fingerprints: theirs {friend.fingerprint}" + (
            f", yours {fingerprint(own.sign_pk, own.box_pk)}" if own else "")
        with ReaderStore.open(root) as store:
            store.add_notification("invitation_accepted", friend.name, detail)
        report("inbox: " + accepted_lines(accepted, own)[0])

    return {ACCEPT_MAGIC: InboxKind("acceptance", acceptance_well_formed, accept),
            **notice_kind(root, report)}


def notice_kind(root: Path, report):  # noqa: ANN001, ANN201 - {magic: inbox.InboxKind}
    """PROTOCOL.md §4.7: a notice is queued only when its sender is a known friend and
    its signature verifies, both checked before anything is stored; then the owner is
    told, and the next `o2m fetch` (which fetches that friend anyway) clears it."""
    from o2m_pub.cli.friends import friend_store
    from o2m_pub.friends.notice_queue import queue_notice, queued
    from o2m_pub.host.inbox import InboxKind
    from o2m_pub.protocol.conversation import (
        NOTICE_MAGIC,
        ConversationError,
        notice_sender,
        verify_notice,
    )
    from o2m_pub.reader.store import ReaderStore
    from o2m_pub.reader.thread_store import NOTICE_TEXT

    def well_formed(body: bytes) -> bool:
        try:
            notice_sender(body)
        except ConversationError:
            return False
        return True

    def notice(body: bytes) -> None:
        sender = notice_sender(body)
        friend = next((f for f in friend_store(root).list() if f.card.sign_pk == sender),
                      None)
        if friend is None:
            return  # not a friend: nothing stored, nothing said (§5: 202 all the same)
        verify_notice(body, sender)  # a bad signature: the server's log, nothing stored
        waiting = friend.name in queued(root)  # told once until the next fetch
        if queue_notice(root, friend.name, body) and not waiting:
            with ReaderStore.open(root) as store:
                store.add_notification("conversation", friend.name, NOTICE_TEXT)
            report(f"inbox: a notice from {friend.name}")

    return {NOTICE_MAGIC: InboxKind("notice", well_formed, notice)}


def _pin_text(pin: bytes) -> str:
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.protocol.cards import PIN_PREFIX
    return PIN_PREFIX + b64u_encode(pin)


def _card_for_certificate(ctx: click.Context, root: Path, config,  # noqa: ANN001
                          pin: bytes | None) -> None:
    """The card must say how friends check this server (PROTOCOL.md §2.4): the pin of a
    self-signed certificate, or no pin for one from `[serve] cert` (a CA checks it). A
    card that says otherwise is renewed (a higher seq): friends take it on their next
    fetch, over an unverified connection if the old pin no longer matches."""
    from o2m_pub.cli.identity import renew_card
    from o2m_pub.friends.identity import own_card
    from o2m_pub.protocol.keyfile import PassphraseError, WrongPassphraseError

    card = own_card(root)
    if card is None or card.tls_pin == pin:
        return
    what = "the TLS pin" if pin is not None else "no TLS pin (your certificate is a CA's)"
    try:
        renew_card(ctx, root, config, tls_pin=pin)
    except WrongPassphraseError:
        raise
    except PassphraseError as e:
        warn(f"your card should carry {what} ({e}); run `o2m card --renew`, then `o2m build`")
        return
    out(f"o2m: your card now carries {what}; `o2m build` publishes it, and friends "
        "take it on their next fetch")


def _open_access_log(state_dir: Path, where: str | None):  # noqa: ANN202 - a text file
    if where == "-":
        return sys.stdout
    path = Path(where) if where else state_dir / "access.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", newline="\n")


# -- o2m publish (issue 7) ----------------------------------------------------------


class _PublishProgress:
    """A byte-counting progress bar for `o2m publish` (only on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), console=stderr_console(), transient=True)
        self.task = None

    def batch(self, batch) -> None:  # noqa: ANN001 - publish_plan.Batch
        if not self.bar.live.is_started:
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(f"{batch.phase}: {batch.label}", total=batch.bytes or 1)

    def advance(self, files: int, size: int) -> None:
        if self.task is not None and size:
            self.bar.advance(self.task, size)

    def stop(self) -> None:
        if self.bar.live.is_started:
            self.bar.stop()


def _size_text(n: int) -> str:
    if n < 1000:
        return f"{n:,} B"
    size = float(n)
    for unit in ("kB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:,.1f} {unit}"
    return f"{size / 1000:,.1f} GB"


def _publish_summary(report) -> list[str]:  # noqa: ANN001 - publish.PublishReport
    """One line per phase for --dry-run; one summary line otherwise."""
    plan = report.plan
    waiting = (f"; {len(plan.waiting):,} gone from build/, kept for the "
               f"{_grace_text(report.grace)} grace period" if plan.waiting else "")
    if report.dry_run:
        lines = [f"would publish to {report.target}:"]
        for batch in plan.batches:
            lines.append(f"  {batch.phase:<9} {batch.label}: "
                         f"{plural(len(batch.files), 'file')}, {_size_text(batch.bytes)}")
        if plan.deletions:
            lines.append(f"  deletions {plural(len(plan.deletions), 'file')}")
        if plan.empty:
            lines.append("  nothing: the target has everything")
        lines.append(f"  ({plan.unchanged:,} unchanged{waiting})")
        return lines
    if plan.empty:
        return [f"{report.target} is up to date ({plan.unchanged:,} files){waiting}"]
    parts = [f"{phase} {files:,} ({_size_text(size)})"
             for phase, (files, size) in report.sent.items() if files]
    if report.deleted:
        parts.append(f"deleted {report.deleted:,}")
    return [f"published to {report.target} in {report.seconds:.1f} s: "
            + ", ".join(parts) + f"; {plan.unchanged:,} unchanged{waiting}"]


def _grace_text(grace: dt.timedelta) -> str:
    seconds = int(grace.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return f"{seconds}-second"


@click.command()
@click.argument("target", required=False)
@click.option("-n", "--dry-run", is_flag=True,
              help="Show what would move, per phase; send nothing.")
@click.option("--grace", default=duration_text(DEFAULT_GRACE), show_default=True,
              metavar="DURATION",
              help="How long objects gone from build/ stay on the host (e.g. 7d, 12h, 0).")
@click.option("--check", is_flag=True,
              help="List the target first and send again whatever it lacks.")
@click.option("-v", "--verbose", is_flag=True, help="List every file that moves.")
@click.option("--no-build", is_flag=True,
              help="Publish build/ as it is, without building it first.")
@click.pass_context
def publish(ctx: click.Context, target: str | None, dry_run: bool, grace: str, check: bool,
            verbose: bool, no_build: bool) -> None:
    """Build, then copy build/ to TARGET: a folder, or an rclone remote such as host:www.

    New objects and media go first, then pages, then friends' feed heads, then
    deletions, so the host always serves a whole site. Only changed files are sent;
    an interrupted publish resumes. TARGET defaults to o2m.toml's [publish] target.
    A build that finds a problem publishes nothing.
    """
    from o2m_pub.cli._common import BadValueError
    from o2m_pub.host.publish.plan import parse_duration
    from o2m_pub.host.publish.publish import chosen_target, publish_site
    from o2m_pub.host.publish.target import PublishError

    root = site_root(ctx)
    try:
        grace_delta = parse_duration(grace)
    except ValueError as e:
        raise BadValueError("--grace", str(e), hint="e.g. --grace 7d, 12h, 30m or 0") from None
    chosen_target(root, target, base=Path.cwd())  # a missing target: said before building
    if not no_build:  # what is published is what content/ says now, never a stale build/
        report = run_build(root, ctx)
        if report.written or report.deleted:  # (a build/ already current: not a word)
            out(build_summary(report, root))
        if report.problems or report.feed_error is not None:
            raise PublishError("nothing published: the build found a problem (above)",
                               hint="mend it and publish again, or publish build/ as it "
                                    "is with --no-build")
    progress = _PublishProgress() if sys.stderr.isatty() and not dry_run else None
    try:
        report = publish_site(root, target, base=Path.cwd(), dry_run=dry_run,
                              grace=grace_delta, check=check, progress=progress)
    finally:
        if progress:
            progress.stop()
    if report.hidden:
        shown = ", ".join(report.hidden[:10]) + (", …" if len(report.hidden) > 10 else "")
        warn(f"not published: {plural(len(report.hidden), 'dotfile')} in build/ that no "
             f"build makes, which `o2m serve` refuses too: {shown}")
    if report.check is not None:
        missing, unknown = report.check.missing, report.check.unknown
        out(f"checked {report.target}: {plural(len(missing), 'file')} missing or changed there"
            + (" (sent again)" if missing and not dry_run else "")
            + (f"; {len(unknown):,} not put there by o2m (left alone)" if unknown else ""))
    if verbose:
        for batch in report.plan.batches:
            for path in batch.paths:
                out(f"  {batch.phase:<9} {path}")
        for path in report.plan.deletions:
            out(f"  {'delete':<9} {path}")
    for line in _publish_summary(report):
        out(line)
    if not dry_run:  # the pages are live now: tell whom they mention (PROTOCOL.md §1.6)
        from o2m_pub.cli.mentions import after_publish
        after_publish(root)
