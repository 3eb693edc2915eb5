"""The `o2m` command: the only module that prints or exits.

Every user error is an `O2MError`, shown as one line, ``o2m: error: <where>: <what>``,
with a hint below it and exit status 1; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, NoReturn

import click

from o2m_pub import __version__
from o2m_pub.config import find_site_root
from o2m_pub.errors import BuildFailed, O2MError, Problem, SiteError
from o2m_pub.host.publish.plan import (  # pure and light: for --grace's default
    DEFAULT_GRACE,
    duration_text,
)


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
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
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
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the key passphrase from this file (else $O2M_PASSPHRASE, else ask).")
@click.version_option(__version__, prog_name="o2m")
@click.pass_context
def main(ctx: click.Context, site: Path | None, debug: bool,
         passphrase_file: Path | None) -> None:
    """o2m: your posts as static files, for the public and for your friends."""
    ctx.obj = {"site": site, "debug": debug, "passphrase_file": passphrase_file}


def _passphrase(ctx: click.Context, prompt: str = "Passphrase", *, new: bool = False,
                file_option: Path | None = None, env_name: str = "O2M_PASSPHRASE") -> bytes:
    """A passphrase from a file, the environment, or (on a terminal only) a prompt."""
    from o2m_pub.friends.identity import passphrase_from_env_or_file
    from o2m_pub.protocol.keyfile import PassphraseError

    source = file_option if file_option is not None else ctx.obj.get("passphrase_file")
    env = {"O2M_PASSPHRASE": os.environ[env_name]} if env_name in os.environ else {}
    value = passphrase_from_env_or_file(env, source)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise PassphraseError(f"{prompt.lower()} needed, and stdin is not a terminal",
                              hint=f"set {env_name} or pass --passphrase-file")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=new).encode()


def _kdf_limits(strength: str) -> dict[str, int]:
    from nacl.pwhash import argon2id
    name = strength.upper()
    return {"opslimit": getattr(argon2id, f"OPSLIMIT_{name}"),
            "memlimit": getattr(argon2id, f"MEMLIMIT_{name}")}


KDF_OPTION = click.option(
    "--kdf", "kdf", type=click.Choice(["interactive", "moderate", "sensitive"]),
    default=lambda: os.environ.get("O2M_KDF", "moderate"), show_default="moderate, or $O2M_KDF",
    help="Argon2id strength for sealing the key (moderate: about 0.5 s to unlock).")


@main.command()
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
    passphrase = _passphrase(ctx, "Passphrase for your keys", new=True)
    created = init_site(folder, name=name, url=url, author=author, now=_now())
    identity, card = create_owner(folder, load(folder), passphrase, now=_now(),
                                  **_kdf_limits(kdf))
    out(f"made a new o2m site in {folder}:")
    for p in created:
        out(f"  {p.relative_to(folder)}{'/' if p.is_dir() else ''}")
    out(f"your fingerprint: {identity.fingerprint}")
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
    report = _run_build(root, ctx, drafts=drafts, jobs=jobs)
    if timings:
        for phase, seconds in report.timings.items():
            click.echo(f"  {phase:<22} {seconds * 1000:8.1f} ms", err=True)
    if not quiet:
        out(_summary(report, root))
        if drafts:
            out(f"preview: {(report.out_dir / 'index.html').as_uri()}")
    if report.feed_error is not None:
        _error_line(f"friends' feeds were not updated: {report.feed_error}",
                    report.feed_error.hint)
        if not report.problems:
            sys.exit(1)
    if report.problems:
        fail(BuildFailed(report.problems))


def _run_build(root: Path, ctx: click.Context | None = None, **options):  # noqa: ANN003, ANN202
    from o2m_pub.site.build import build_site

    def unlock():  # noqa: ANN202 - only when a friend's feed must be signed
        from o2m_pub.friends.identity import (
            load_identity,  # (the crypto is imported only then, too)
        )
        return load_identity(root, _passphrase(ctx) if ctx else b"")

    progress = _RichProgress() if sys.stderr.isatty() else None
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
                     + (f", removed {report.deleted:,}" if report.deleted else "") + f" in {where}/")
    else:
        parts.append("nothing to write")
    if report.private:
        parts.append(f"{report.private:,} private kept off the public site")
    if report.heads:
        parts.append(f"{report.heads:,} friend feed{'s' if report.heads != 1 else ''} signed")
    if report.drafts:
        parts.append(f"{report.drafts:,} draft{'s' if report.drafts != 1 else ''} skipped")
    return "; ".join(parts)


@main.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """Show your name, URL and key fingerprint (compare it aloud with friends)."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card
    from o2m_pub.protocol.keyfile import fingerprint

    root = _site_root(ctx)
    card = own_card(root)
    if card is None:
        raise SiteError("this site has no identity yet", hint="made by `o2m init`; "
                        "or bring one with `o2m key import FILE`")
    config = load(root)
    out(f"name:        {card.name}")
    out(f"url:         {card.url}")
    out(f"fingerprint: {fingerprint(card.sign_pk, card.box_pk)}")
    if card.name != config.author or card.url != config.url:
        warn("your card does not match o2m.toml (author or url changed): run `o2m card --renew`")
    _key_mode_warning(root)


def _key_mode_warning(root: Path) -> None:
    from o2m_pub.friends.identity import key_file_mode_warning
    message = key_file_mode_warning(root)
    if message:
        warn(message)


@main.group()
def key() -> None:
    """Your secret keys: change the passphrase, back them up, restore them."""


@key.command("passwd")
@click.option("--new-passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the new passphrase from this file (else $O2M_NEW_PASSPHRASE, else ask).")
@KDF_OPTION
@click.pass_context
def key_passwd(ctx: click.Context, new_passphrase_file: Path | None, kdf: str) -> None:
    """Change the passphrase; the keys (and your fingerprint) stay the same."""
    from o2m_pub.friends.identity import change_passphrase

    root = _site_root(ctx)
    old = _passphrase(ctx, "Current passphrase")
    new = _passphrase(ctx, "New passphrase", new=True, file_option=new_passphrase_file,
                      env_name="O2M_NEW_PASSPHRASE")
    identity = change_passphrase(root, old, new, **_kdf_limits(kdf))
    out(f"passphrase changed; fingerprint unchanged: {identity.fingerprint}")


@key.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--export-passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Passphrase for the backup (else $O2M_EXPORT_PASSPHRASE, else ask).")
@KDF_OPTION
@click.pass_context
def key_export(ctx: click.Context, file: Path, export_passphrase_file: Path | None,
               kdf: str) -> None:
    """Write a passphrase-protected backup of your keys to FILE."""
    from o2m_pub.friends.identity import export_identity

    root = _site_root(ctx)
    if file.exists():
        raise SiteError(f"{file} exists; not overwriting it", hint="choose a new file name")
    data = export_identity(root, _passphrase(ctx),
                           _passphrase(ctx, "Passphrase for the backup", new=True,
                                       file_option=export_passphrase_file,
                                       env_name="O2M_EXPORT_PASSPHRASE"), **_kdf_limits(kdf))
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    out(f"wrote {file} (keep it somewhere safe: with its passphrase it is you)")


@key.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--export-passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The backup's passphrase (else $O2M_EXPORT_PASSPHRASE, else ask).")
@click.option("--replace", is_flag=True, help="Replace this site's existing identity.")
@KDF_OPTION
@click.pass_context
def key_import(ctx: click.Context, file: Path, export_passphrase_file: Path | None,
               replace: bool, kdf: str) -> None:
    """Restore keys from a backup made by `o2m key export`."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import import_identity, write_own_card

    root = _site_root(ctx)
    backup_pass = _passphrase(ctx, "Backup passphrase", file_option=export_passphrase_file,
                              env_name="O2M_EXPORT_PASSPHRASE")
    identity = import_identity(root, file.read_bytes(), backup_pass,
                               _passphrase(ctx, "New passphrase for this site", new=True),
                               replace=replace, **_kdf_limits(kdf))
    write_own_card(root, identity, load(root), now=_now())
    out(f"imported; fingerprint: {identity.fingerprint}")


@main.command()
@click.option("--qr", is_flag=True, help="Show the card as a QR code in the terminal.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Write a QR code PNG.")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), help="Write a QR code SVG.")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON (for a file).")
@click.option("--renew", is_flag=True,
              help="Sign a new card with today's name and URL from o2m.toml (asks to unlock).")
@click.pass_context
def card(ctx: click.Context, qr: bool, png: Path | None, svg: Path | None, as_json: bool,
         renew: bool) -> None:
    """Print your contact card, to send to a friend (`o2m friend add` reads it)."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import load_identity, own_card, write_own_card
    from o2m_pub.protocol.cards import (
        card_qr_png,
        card_qr_svg,
        card_qr_terminal,
        card_to_text,
    )
    from o2m_pub.protocol.keyfile import fingerprint

    root = _site_root(ctx)
    current = own_card(root)
    if renew or current is None:
        identity = load_identity(root, _passphrase(ctx))
        current = write_own_card(root, identity, load(root), now=_now(),
                                 tls_pin=_served_pin(root, current))
    if png:
        png.write_bytes(card_qr_png(current))
    if svg:
        svg.write_bytes(card_qr_svg(current))
    if as_json:
        out(current.raw.decode())
    elif qr:
        out(card_qr_terminal(current))
    else:
        out(card_to_text(current))
    click.echo(f"fingerprint: {fingerprint(current.sign_pk, current.box_pk)}", err=True)


def _store(ctx: click.Context):  # noqa: ANN202 - friends.FriendStore
    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import own_card

    root = _site_root(ctx)
    card = own_card(root)
    return FriendStore(root, own_sign_pk=card.sign_pk if card else None,
                       config_groups=load(root).groups)


@main.group()
def friend() -> None:
    """Your friends: add their cards, list, rename, remove."""


@friend.command("add")
@click.argument("name")
@click.argument("card")
@click.option("--yes", is_flag=True, help="Add without asking (you checked the fingerprint).")
@click.option("--fingerprint", "expected", help="Add only if the card has this fingerprint.")
@click.option("--accept-key-change", is_flag=True,
              help="Replace the keys of a friend who has new ones (check the fingerprint first).")
@click.pass_context
def friend_add(ctx: click.Context, name: str, card: str, yes: bool, expected: str | None,
               accept_key_change: bool) -> None:
    """Add a friend as NAME from CARD: a card file, o2m1:… text, or their site's https URL.

    NAME is how you call them in `audience:` (lower case, e.g. alice). Adding someone
    gives them your friends-only posts; they see them once they add you back.
    """
    from o2m_pub.protocol.cards import card_from_any
    from o2m_pub.protocol.keyfile import fingerprint

    by_url = card.startswith(("https://", "http://"))
    if by_url:
        if expected is None and (yes or not sys.stdin.isatty()):
            raise SiteError("a card fetched from a site needs its fingerprint checked",
                            hint="ask your friend for it and pass --fingerprint '…'")
        parsed = card_from_any(_fetch_card(card))
    elif card.startswith("o2m1:"):
        parsed = card_from_any(card)
    else:
        path = Path(card)
        if not path.is_file():
            raise SiteError(f"{card}: no such card file",
                            hint="pass a card file, the o2m1:… text, or an https:// site URL")
        parsed = card_from_any(path.read_bytes())
    fp = fingerprint(parsed.sign_pk, parsed.box_pk)
    if expected is not None:
        if " ".join(expected.split()) != fp:
            raise SiteError(f"the card's fingerprint is {fp}, not the one given",
                            hint="do not add this card: check with your friend how they sent it")
    elif not yes:
        out(f"{parsed.name} <{parsed.url}>")
        out(f"fingerprint: {fp}")
        if not sys.stdin.isatty():
            raise SiteError("confirm the fingerprint with your friend first",
                            hint="then pass --yes, or --fingerprint '…' to check it here")
        if not click.confirm("Is this the fingerprint your friend sees in `o2m whoami`?"):
            raise SiteError("not added")
    store = _store(ctx)
    before = store.find_by_keys(parsed.sign_pk)
    added = store.add(name, parsed, now=_now(), accept_key_change=accept_key_change)
    if before is not None and before.name == added.name and before.card.raw == added.card.raw:
        out(f"{added.name} is already your friend with this card; nothing changed")
        return
    out(f"added {added.name}: {parsed.name} <{parsed.url}>, fingerprint {fp}")
    out("their feed is written at your next `o2m build`")


def _fetch_card(url: str) -> bytes:
    """The card published at a site's well-known path (PROTOCOL.md §2.4): https only, no
    redirects, no proxies from the environment, at most the card size cap read.
    A private CA (a test, a home network) can be named in $O2M_CA_BUNDLE."""
    import requests

    from o2m_pub.protocol.cards import MAX_CARD_BYTES
    if not url.startswith("https://"):
        raise SiteError(f"{url}: only https:// addresses are fetched")
    target = url if url.endswith(".json") else url.rstrip("/") + "/.well-known/o2m-card.json"
    session = requests.Session()
    session.trust_env = False
    try:
        with session.get(target, timeout=(10, 20), stream=True, allow_redirects=False,
                         verify=os.environ.get("O2M_CA_BUNDLE") or True) as r:
            if r.status_code != 200:
                raise SiteError(f"{target}: HTTP {r.status_code}",
                                hint="check the address, or ask for the card as o2m1:… text")
            data = r.raw.read(MAX_CARD_BYTES + 1, decode_content=True)
    except requests.RequestException as e:
        raise SiteError(f"{target}: cannot fetch the card ({e.__class__.__name__})",
                        hint="check the address, or ask for the card as o2m1:… text") from None
    finally:
        session.close()
    return data


@friend.command("list")
@click.pass_context
def friend_list(ctx: click.Context) -> None:
    """List your friends with their fingerprints."""
    friends = _store(ctx).list()
    if not friends:
        out("no friends yet: `o2m card` prints yours; `o2m friend add NAME CARD` adds theirs")
    for f in friends:
        out(f"{f.name:<16} {f.card.name} <{f.card.url}>  {f.fingerprint}")


@friend.command("show")
@click.argument("name")
@click.pass_context
def friend_show(ctx: click.Context, name: str) -> None:
    """Show one friend's card."""
    store = _store(ctx)
    f = store.get(name)
    groups = [g for g, members in store.groups().items() if name in members]
    out(f"name:        {f.name}")
    out(f"calls self:  {f.card.name}")
    out(f"site:        {f.card.url}")
    out(f"fingerprint: {f.fingerprint}")
    out(f"added:       {f.added}")
    out(f"groups:      {', '.join(groups) or '-'}")
    if f.previous_keys:
        out(f"key changes: {len(f.previous_keys)}")


@friend.command("rename")
@click.argument("old")
@click.argument("new")
@click.pass_context
def friend_rename(ctx: click.Context, old: str, new: str) -> None:
    """Call a friend by another name (update `audience:` lines that use the old one)."""
    _store(ctx).rename(old, new)
    out(f"renamed {old} to {new}")


@friend.command("remove")
@click.argument("name")
@click.pass_context
def friend_remove(ctx: click.Context, name: str) -> None:
    """Remove a friend: at the next build their feed is deleted and they get nothing new."""
    _store(ctx).remove(name)
    out(f"removed {name}; their feed goes at the next `o2m build` "
        "(what they already fetched stays with them)")


@main.group()
def group() -> None:
    """Groups of friends, usable as an audience (e.g. `audience: family`)."""


@group.command("list")
@click.pass_context
def group_list(ctx: click.Context) -> None:
    """List groups and their members."""
    groups = _store(ctx).groups()
    if not groups:
        out("no groups yet: `o2m group add family alice bob`")
    for name, members in sorted(groups.items()):
        out(f"{name:<16} {', '.join(members)}")


@group.command("add")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_context
def group_add(ctx: click.Context, name: str, members: tuple[str, ...]) -> None:
    """Add friends to a group (made if new)."""
    out(f"{name}: {', '.join(_store(ctx).group_add(name, members))}")


@group.command("remove")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_context
def group_remove(ctx: click.Context, name: str, members: tuple[str, ...]) -> None:
    """Take friends out of a group."""
    _store(ctx).group_remove(name, members)
    out(f"removed {', '.join(members)} from {name}")


@group.command("delete")
@click.argument("name")
@click.pass_context
def group_delete(ctx: click.Context, name: str) -> None:
    """Delete a group made with `o2m group add`."""
    _store(ctx).group_delete(name)
    out(f"deleted group {name}")


# -- o2m watch (issue 5) -------------------------------------------------------------

@main.command()
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

    root = _site_root(ctx)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:  # noqa: ANN001
        if stop.is_set():  # a second Ctrl-C: do not wait for the build
            raise KeyboardInterrupt
        stop.set()

    # (forked build workers inherit these handlers: one Ctrl-C does not kill them)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stop_watching = _start_watching(ctx, root, debounce=debounce, drafts=drafts, jobs=jobs,
                                    quiet=stop.is_set)
    while not stop.wait(1.0):
        pass
    stop_watching()


def _start_watching(ctx: click.Context, root: Path, *, debounce: int = 100,
                    drafts: bool = False, jobs: int | None = None,
                    quiet: Callable[[], bool] = lambda: False) -> Callable[[], None]:
    """Start a `watch.SiteWatcher` that prints one line per build (`o2m watch`, and
    `o2m serve --watch` in its serving process); returns the function that stops it.
    The passphrase is asked for now, once, when friends' feeds will need the key;
    nothing is printed while `quiet()` (stopping)."""
    from o2m_pub.site.watch import SiteWatcher

    warned: set[str] = set()

    def report(result) -> None:  # noqa: ANN001 - watch.BuildResult
        if not quiet():
            _print_watch_result(result, root, warned, debug=bool(ctx.obj.get("debug")))

    watcher = SiteWatcher(root, report, unlock=_watch_unlock(ctx, root),
                          debounce=debounce / 1000, drafts=drafts, jobs=jobs)
    watcher.start()
    return watcher.stop


def _watch_unlock(ctx: click.Context, root: Path) -> Callable[[], object]:
    """The key for a watch session: unlocked now when the site has friends (ask once,
    before the first build, not in the middle of one); else only if a feed needs it."""
    from o2m_pub.friends.identity import load_identity

    def unlock():  # noqa: ANN202 - keys.Identity
        return load_identity(root, _passphrase(ctx))

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
            _error_line(f"{where}{e}", e.hint)
        elif isinstance(e, OSError):
            _error_line(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", None)
        else:
            _error_line(f"internal error: {e!r} (the watch goes on)", None)
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
        _error_line(f"friends' feeds were not updated: {report.feed_error}",
                    report.feed_error.hint)


# -- o2m serve (issue 5) -------------------------------------------------------------

@main.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1, or [serve] host]")
@click.option("--port", type=click.IntRange(0, 65535),
              help="HTTPS port (0: any free one).  [default: 8443, or [serve] port]")
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
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, public: bool,
          http_port: int | None, workers: int | None, watch: bool, access_log: str | None,
          no_access_log: bool, no_client_addresses: bool, request_timeout: float,
          idle_timeout: float, max_connections: int) -> None:
    """Serve build/ over HTTPS until Ctrl-C or SIGTERM (SIGHUP reloads the certificate).

    Without a certificate in [serve], a self-signed one is made in keys/tls/ on the
    first run and its pin goes into your card, so friends check it without a CA.
    """
    from o2m_pub.config import STATE_DIR, load
    from o2m_pub.host.serve import ServeError, ServeOptions, bind, run
    from o2m_pub.host.tls import site_pair

    root = _site_root(ctx)
    config = load(root)
    build_dir = root / "build"
    if not watch and not (build_dir / "index.html").is_file():
        raise ServeError("nothing to serve: build/ has no index.html", path="build/",
                         hint="run `o2m build` first, or `o2m serve --watch`")
    pair, made, self_signed = site_pair(root, config, _now())
    if made:
        out(f"o2m: made a self-signed certificate in keys/tls/ for {config.url}")
    if self_signed:
        _put_pin_in_card(ctx, root, config, pair.pin)
    settings = config.serve
    host = "::" if public else (host or settings.host)
    workers = workers or min(os.cpu_count() or 1, 8)
    listening = bind(host, settings.port if port is None else port,
                     settings.http_port if http_port is None else http_port, pair,
                     workers=workers)
    log_file = None
    if not (no_access_log or not settings.access_log):
        log_file = _open_access_log(root / STATE_DIR, access_log)
    options = ServeOptions(
        workers=workers,
        live_reload=watch, access_log=log_file, request_timeout=request_timeout,
        idle_timeout=idle_timeout, max_connections=max_connections,
        log_addresses=settings.log_addresses and not no_client_addresses,
        report=lambda line: click.echo(f"o2m: {line}", err=True))
    pin_text = f"  pin {_pin_text(pair.pin)}" if self_signed else ""
    out(f"o2m: serving {build_dir} at {listening.url}{pin_text}")
    if listening.http is not None:
        out(f"o2m: plain HTTP on port {listening.http.getsockname()[1]} redirects to HTTPS")
    sys.stdout.flush()
    start = (lambda: _start_watching(ctx, root)) if watch else None
    sys.exit(run(build_dir, root / STATE_DIR, listening, options, start_in_parent=start))


def _served_pin(root: Path, card) -> bytes | None:  # noqa: ANN001 - cards.Card | None
    """The pin a renewed card carries: the self-signed server certificate's, if any."""
    from o2m_pub.config import load
    from o2m_pub.host.tls import CERT_NAME, TLS_DIR, TLSError, tls_pin_from_certificate

    if load(root).serve.cert is None:
        try:
            return tls_pin_from_certificate((root / TLS_DIR / CERT_NAME).read_bytes())
        except (OSError, TLSError, ValueError):
            pass
    return card.tls_pin if card else None


def _pin_text(pin: bytes) -> str:
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.protocol.cards import PIN_PREFIX
    return PIN_PREFIX + b64u_encode(pin)


def _put_pin_in_card(ctx: click.Context, root: Path, config, pin: bytes) -> None:  # noqa: ANN001
    """A new self-signed certificate's pin must reach friends through the signed card."""
    from o2m_pub.friends.identity import load_identity, own_card, write_own_card
    from o2m_pub.protocol.keyfile import PassphraseError

    card = own_card(root)
    if card is None or card.tls_pin == pin:
        return
    try:
        identity = load_identity(root, _passphrase(ctx, "Passphrase (to put the TLS pin in "
                                                        "your card)"))
    except PassphraseError as e:
        warn(f"your card does not carry this server's TLS pin yet ({e}); "
             "run `o2m card --renew`, then `o2m build`")
        return
    write_own_card(root, identity, config, now=_now(), tls_pin=pin)
    out("o2m: your card now carries the TLS pin; `o2m build` publishes it, "
        "and `o2m card` shows it to send to friends")


def _open_access_log(state_dir: Path, where: str | None):  # noqa: ANN202 - a text file
    if where == "-":
        return sys.stdout
    path = Path(where) if where else state_dir / "access.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", newline="\n")


@main.command()
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
    roots = make_world(folder, now=_now(), ports=ports)
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
        out(f"  {_plural(objects, 'encrypted object')}, {_plural(report.heads, 'signed feed head')}"
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
        fail(BuildFailed(problems))


def _relay(result) -> None:  # noqa: ANN001 - subprocess.CompletedProcess
    """Show what one of the demo's commands printed, as if it had run here."""
    if result.stdout.strip():
        out(result.stdout.rstrip())
    if result.stderr.strip():
        click.echo(result.stderr.rstrip(), err=True)
    if result.returncode not in (0,):
        click.echo(f"(exit status {result.returncode})", err=True)


# -- o2m fetch (issue 6) --------------------------------------------------------------

def _interval(text: str | None) -> float | None:
    """30s, 10m, 1h (or a bare number of seconds) -> seconds; at least 10 s."""
    import re
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m:
        raise click.BadParameter(f"{text!r} is not an interval like 30s, 10m or 1h",
                                 param_hint="--every")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds < 10:
        raise click.BadParameter("at least 10s, to be kind to your friends' hosts",
                                 param_hint="--every")
    return seconds


def _fetch_line(o) -> str:  # noqa: ANN001 - fetch_plan.Outcome
    from rich.markup import escape
    if o.status == "refused":
        text = f"[red]refused: {escape(o.reason or '')}[/]: {escape(o.detail)}"
    elif o.status == "no feed":
        text = "[dim]no feed for you yet (they have not added you back)[/]"
    elif o.status == "new":
        parts = [f"{n} {word}" for n, word in ((o.new, "new"), (o.updated, "updated"),
                                               (o.deleted, "deleted")) if n]
        text = "[green]" + ", ".join(parts) + "[/]"
    else:
        text = "unchanged"
    if o.skipped:
        text += f", [yellow]{o.skipped} that would not open[/]"
    if o.stale_since:
        text += f", [yellow]stale since {escape(o.stale_since)} (freeze warning)[/]"
    if o.public_error:
        text += f", [yellow]their public feed.json refused: {escape(o.public_error)}[/]"
    return f"{escape(o.friend):<16} {text}"


@main.command()
@click.argument("friends", nargs=-1)
@click.option("--every", metavar="INTERVAL",
              help="Fetch again every INTERVAL (30s, 10m, 1h) until Ctrl-C.")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Friends fetched at once.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120, show_default=True,
              help="Seconds for all of one friend's files (a slow host is cut off then).")
@click.option("-q", "--quiet", is_flag=True, help="Print only friends that were refused or stale.")
@click.pass_context
def fetch(ctx: click.Context, friends: tuple[str, ...], every: str | None, workers: int,
          timeout: float, quiet: bool) -> None:
    """Fetch friends' feeds (all, or FRIENDS): verify, decrypt, store for `o2m timeline`.

    Prints one line per friend: new posts, unchanged, no feed yet, or refused with the
    reason (unreachable, timeout, bad certificate, bad signature, rollback,
    equivocation, oversized, malformed, bad object, key changed). A refused friend
    keeps everything stored before; the others are not held up.

    \b
    Exit status:
      0  every friend was fetched (or has no feed for you yet)
      1  some friend was refused (their feed, or only their public feed.json), or
         their feed is stale (past its expiry); or another fetch of this site is
         running
      2  usage error (an unknown friend, a bad --every)

    \b
    To fetch regularly, leave `o2m fetch --every 15m` running, or use cron:
      */15 * * * *  o2m -C ~/site fetch -q
    or a systemd user timer (see README.md). A fetch needs the passphrase only the
    first time a friend is fetched ($O2M_PASSPHRASE or --passphrase-file when
    unattended); a private CA can be named in $O2M_CA_BUNDLE.
    """
    from o2m_pub.friends.friend_store import FriendStore, UnknownFriendError

    interval = _interval(every)
    root = _site_root(ctx)
    store = FriendStore(root)
    for name in friends:
        try:
            store.get(name)
        except UnknownFriendError as e:
            raise click.BadParameter(f"{e} ({e.hint})", param_hint="FRIENDS") from None
    while True:
        failed = _fetch_once(ctx, root, friends, workers=workers, timeout=timeout, quiet=quiet,
                             wait=interval is not None)
        if interval is None:
            sys.exit(1 if failed else 0)
        import time
        time.sleep(interval)


def _fetch_once(ctx: click.Context, root: Path, friends: tuple[str, ...], *, workers: int,
                timeout: float, quiet: bool, wait: bool = False) -> bool:
    """One fetch of every friend; prints a line each; True when some friend failed.
    With `wait` (--every), a fetch already running for this site is waited for."""
    from o2m_pub.reader.http_fetch import Limits, run_fetch

    def unlock():  # noqa: ANN202 - only when a friend's feed secrets are not cached
        from o2m_pub.friends.identity import load_identity
        return load_identity(root, _passphrase(ctx))

    progress = None
    if sys.stderr.isatty() and not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        progress = Progress(TextColumn("fetching"), BarColumn(), MofNCompleteColumn(),
                            console=_stderr(), transient=True)
    task = None

    def on_start(total: int) -> None:
        nonlocal task
        if progress is not None:
            progress.start()
            task = progress.add_task("fetch", total=total)

    def on_done(outcome) -> None:  # noqa: ANN001
        if progress is not None and task is not None:
            progress.advance(task)

    try:
        outcomes = run_fetch(root, friends, unlock=unlock, now=_now(),
                             limits=Limits(workers=workers, deadline=timeout),
                             on_start=on_start, on_done=on_done, wait_for_lock=wait)
    finally:
        if progress is not None:
            progress.stop()
    if not outcomes:
        out("no friends to fetch: `o2m friend add NAME CARD` adds one")
    console = _stdout_console()
    failed = False
    for o in outcomes:
        bad = o.status == "refused" or bool(o.stale_since) or bool(o.public_error)
        failed |= bad
        if bad or not quiet:
            console.print(_fetch_line(o), soft_wrap=True)
    return failed


# -- reading: o2m timeline, show, notifications, reader (issue 6) ---------------------


def _reader_store(ctx: click.Context):  # noqa: ANN202 - (site root, store.ReaderStore)
    from o2m_pub.reader.store import ReaderStore
    root = _site_root(ctx)
    return root, ReaderStore.open(root)


def _site_zone(root: Path):  # noqa: ANN202 - a tzinfo
    from o2m_pub.config import load
    return load(root).tz  # load refuses an unknown zone


def _stdout_console():  # noqa: ANN202 - rich.console.Console
    from rich.console import Console
    return Console(highlight=False, emoji=False)


@main.command()
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Posts per page.")
@click.option("--before", "before_id", metavar="ID",
              help="Start after this post (the last id of the previous page).")
@click.option("--page", type=click.IntRange(1, 1_000_000), help="Page number (1: the newest).")
@click.option("--friend", help="Only this friend's posts (their name in `o2m friend list`).")
@click.option("--tag", help="Only posts with this tag.")
@click.option("--since", help="Only posts since a date or time (2026-11-01, "
                              "'2026-11-01 18:00') or an age (12h, 3d, 2w).")
@click.pass_context
def timeline(ctx: click.Context, limit: int, before_id: str | None, page: int | None,
             friend: str | None, tag: str | None, since: str | None) -> None:
    """Your friends' posts, newest first; * marks the unread. `o2m show ID` reads one."""
    from o2m_pub.reader.timeline import (
        ReadingError,
        check_friend,
        entry,
        find_post,
        page_cursor,
        parse_since,
    )

    if before_id and page:
        raise ReadingError("--before and --page cannot be used together",
                           hint="--before ID continues after a post; --page N counts pages")
    root, store = _reader_store(ctx)
    with store:
        tz = _site_zone(root)
        if friend is not None:
            check_friend(store, friend)
        filters = {"friend": friend, "tag": tag,
                   "since": parse_since(since, tz, _now()) if since else None}
        cursor = (find_post(store, before_id).cursor if before_id
                  else page_cursor(store, page or 1, limit, **filters))
        posts = store.timeline(limit=limit + 1, before=cursor, **filters)
        entries = [entry(p, tz) for p in posts[:limit]]
    if not entries:
        filtered = before_id or page or friend or tag or since
        click.echo("no posts match" if filtered else
                   "no posts yet: `o2m fetch` gathers your friends' feeds", err=True)
        return
    if sys.stdout.isatty():
        _timeline_table(entries)
        if len(posts) > limit:
            click.echo(f"more: o2m timeline --before {entries[-1].short_id}", err=True)
    else:
        for e in entries:
            out(f"{'*' if e.unread else ' '} {e.short_id}  {e.date}  {e.friend}  {e.headline}")


def _timeline_table(entries) -> None:  # noqa: ANN001 - list[timeline.TimelineEntry]
    """The timeline as a rich table; every cell is Text (a friend's [brackets] are text)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column(width=1, no_wrap=True)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(style="green", no_wrap=True, max_width=16)
    table.add_column(ratio=1)
    for e in entries:
        text = Text(e.headline, style="bold" if e.unread else "")
        if e.tags:
            text.append("  " + " ".join(f"#{t}" for t in e.tags), style="dim")
        table.add_row(Text("*" if e.unread else " ", style="bold yellow"), Text(e.short_id),
                      Text(e.date), Text(e.friend), text)
    _stdout_console().print(table)


@main.command()
@click.argument("post_id", metavar="ID")
@click.option("--source", is_flag=True, help="Print the Markdown source, not rendered.")
@click.pass_context
def show(ctx: click.Context, post_id: str, source: bool) -> None:
    """Print one post in full with its attachments, and mark it read."""
    from o2m_pub.reader.sanitize import display_text
    from o2m_pub.reader.timeline import (
        attachments,
        entry,
        find_post,
        human_size,
        post_text,
    )

    root, store = _reader_store(ctx)
    with store:
        post = find_post(store, post_id)
        e = entry(post, _site_zone(root))
        files = attachments(post, store)
        text = post_text(post)
        header = [e.headline, f"from {e.friend}, {e.date}"
                  + (" (public)" if post.audience == "public" else "")
                  + (f"  {' '.join('#' + t for t in e.tags)}" if e.tags else ""),
                  f"id {post.short_id}" + (f"  {display_text(post.url)}" if post.url else "")]
        listing = [f"  {f.name}  {f.media_type}  {human_size(f.size)}  "
                   f"{f.path if f.path else '(not fetched yet)'}" for f in files]
        if sys.stdout.isatty():
            _show_rich(header, text, listing, markdown=post.markdown is not None and not source)
        else:
            out("\n".join(header))
            out()
            out(text)
            if listing:
                out()
                out("attachments:")
                out("\n".join(listing))
        store.mark_read([post.short_id])


def _show_rich(header: list[str], text: str, listing: list[str], *, markdown: bool) -> None:
    from rich.markdown import Markdown
    from rich.text import Text

    console = _stdout_console()
    console.print(Text(header[0], style="bold"))
    console.print(Text("\n".join(header[1:]), style="dim"))
    console.print()
    # rich's Markdown shows no raw HTML and loads nothing; links are shown, not made
    # clickable (a friend's link text could hide where it goes).
    console.print(Markdown(text, hyperlinks=False) if markdown else Text(text))
    if listing:
        console.print()
        console.print(Text("attachments:", style="bold"))
        console.print(Text("\n".join(listing)), soft_wrap=True)  # paths stay whole


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Include those already seen.")
@click.pass_context
def notifications(ctx: click.Context, show_all: bool) -> None:
    """New friends' feeds, key changes, unreachable or stale friends; listed ones are
    marked seen."""
    from o2m_pub.reader.timeline import local_time, notification_text

    root, store = _reader_store(ctx)
    with store:
        tz = _site_zone(root)
        items = store.notifications(unseen_only=not show_all)
        for n in items:
            out(f"{'*' if not n.seen else ' '} {local_time(n.created, tz)}  "
                f"{notification_text(n)}")
        store.mark_notifications_seen([n.id for n in items if not n.seen])
    if not items:
        click.echo("no notifications" if show_all else "no new notifications", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback address to listen on: 127.0.0.1 or ::1, nothing else.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port to listen on.  [default: 0, any free one]")
@click.option("--open", "open_browser", is_flag=True, help="Open it in your web browser.")
@click.pass_context
def reader(ctx: click.Context, host: str, port: int, open_browser: bool) -> None:
    """Read your friends' posts in your browser, served on this machine only."""
    from o2m_pub.reader.web import check_host, listen, run

    check_host(host)  # before anything is opened
    root, store = _reader_store(ctx)
    with store:
        listening = listen(store, _site_zone(root), host, port)

        def started() -> None:  # once the reactor runs and Ctrl-C / SIGTERM stop it
            out(f"o2m: reader at {listening.url} (Ctrl-C to stop)")
            sys.stdout.flush()
            if open_browser:
                import webbrowser
                webbrowser.open(listening.url)

        run(started)


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
                            TransferSpeedColumn(), console=_stderr(), transient=True)
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
                         f"{_plural(len(batch.files), 'file')}, {_size_text(batch.bytes)}")
        if plan.deletions:
            lines.append(f"  deletions {_plural(len(plan.deletions), 'file')}")
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


@main.command()
@click.argument("target", required=False)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would move, per phase; send nothing.")
@click.option("--grace", default=duration_text(DEFAULT_GRACE), show_default=True,
              metavar="DURATION",
              help="How long objects gone from build/ stay on the host (e.g. 7d, 12h, 0).")
@click.option("--check", is_flag=True,
              help="List the target first and send again whatever it lacks.")
@click.option("-v", "--verbose", is_flag=True, help="List every file that moves.")
@click.pass_context
def publish(ctx: click.Context, target: str | None, dry_run: bool, grace: str, check: bool,
            verbose: bool) -> None:
    """Copy build/ to TARGET: a folder, or an rclone remote such as host:www.

    New objects and media go first, then pages, then friends' feed heads, then
    deletions, so the host always serves a whole site. Only changed files are sent;
    an interrupted publish resumes. TARGET defaults to o2m.toml's [publish] target.
    """
    from o2m_pub.host.publish.plan import parse_duration
    from o2m_pub.host.publish.publish import publish_site
    from o2m_pub.host.publish.target import PublishError

    root = _site_root(ctx)
    try:
        grace_delta = parse_duration(grace)
    except ValueError as e:
        raise PublishError(f"--grace {e}", hint="e.g. --grace 7d, 12h, 30m or 0") from None
    progress = _PublishProgress() if sys.stderr.isatty() and not dry_run else None
    try:
        report = publish_site(root, target, base=Path.cwd(), dry_run=dry_run,
                              grace=grace_delta, check=check, progress=progress)
    finally:
        if progress:
            progress.stop()
    if report.check is not None:
        missing, unknown = report.check.missing, report.check.unknown
        out(f"checked {report.target}: {_plural(len(missing), 'file')} missing or changed there"
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


# -- end of o2m publish ---------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).astimezone()


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
