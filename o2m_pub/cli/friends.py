"""`o2m whoami`, `o2m card`, `o2m friend …`, `o2m group …` and `o2m key …`: who you
are, your keys, and the people you share with."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from o2m_pub.cli._common import (
    KDF_OPTION,
    kdf_limits,
    local_now,
    out,
    read_passphrase,
    site_root,
    unlock_identity,
    unlock_with_passphrase,
    warn,
)
from o2m_pub.errors import SiteError


@click.command()
@click.pass_context
def whoami(ctx: click.Context) -> None:
    """Show your name, URL and key fingerprint (compare it aloud with friends)."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card
    from o2m_pub.protocol.keyfile import fingerprint

    root = site_root(ctx)
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


@click.group()
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

    root = site_root(ctx)
    _, old = unlock_with_passphrase(ctx, root, "Current passphrase")  # (three tries)
    new = read_passphrase(ctx, "New passphrase", new=True, file_option=new_passphrase_file,
                      env_name="O2M_NEW_PASSPHRASE")
    identity = change_passphrase(root, old, new, **kdf_limits(kdf))
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

    root = site_root(ctx)
    if file.exists():
        raise SiteError(f"{file} exists; not overwriting it", hint="choose a new file name")
    data = export_identity(root, unlock_with_passphrase(ctx, root)[1],
                           read_passphrase(ctx, "Passphrase for the backup", new=True,
                                       file_option=export_passphrase_file,
                                       env_name="O2M_EXPORT_PASSPHRASE"), **kdf_limits(kdf))
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

    root = site_root(ctx)
    backup_pass = read_passphrase(ctx, "Backup passphrase", file_option=export_passphrase_file,
                              env_name="O2M_EXPORT_PASSPHRASE")
    identity = import_identity(root, file.read_bytes(), backup_pass,
                               read_passphrase(ctx, "New passphrase for this site", new=True),
                               replace=replace, **kdf_limits(kdf))
    write_own_card(root, identity, load(root), now=local_now())
    out(f"imported; fingerprint: {identity.fingerprint}")


@click.command()
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
    from o2m_pub.friends.identity import own_card, write_own_card
    from o2m_pub.friends.qr import qr_png, qr_svg, qr_terminal
    from o2m_pub.protocol.cards import card_to_text
    from o2m_pub.protocol.keyfile import fingerprint

    root = site_root(ctx)
    current = own_card(root)
    if renew or current is None:
        identity = unlock_identity(ctx, root)
        current = write_own_card(root, identity, load(root), now=local_now(),
                                 tls_pin=_served_pin(root, current))
    if png:
        png.write_bytes(qr_png(card_to_text(current)))
    if svg:
        svg.write_bytes(qr_svg(card_to_text(current)))
    if as_json:
        out(current.raw.decode())
    elif qr:
        out(qr_terminal(card_to_text(current)))
    else:
        out(card_to_text(current))
    click.echo(f"fingerprint: {fingerprint(current.sign_pk, current.box_pk)}", err=True)


def _store(ctx: click.Context):  # noqa: ANN202 - friends.FriendStore
    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import own_card

    root = site_root(ctx)
    card = own_card(root)
    return FriendStore(root, own_sign_pk=card.sign_pk if card else None,
                       config_groups=load(root).groups)


@click.group()
def friend() -> None:
    """Your friends: add their cards, list, rename, remove."""


@friend.command("add")
@click.argument("name")
@click.argument("card")
@click.option("--yes", is_flag=True, help="Add without asking (you checked the fingerprint).")
@click.option("--fingerprint", "expected", help="Add only if the card has this fingerprint.")
@click.option("--accept-key-change", is_flag=True,
              help="Replace the keys of a friend who has new ones (check the fingerprint first).")
@click.option("--timeout", type=click.FloatRange(1, 600), default=20, show_default=True,
              help="Seconds for fetching the card from a site URL, all told.")
@click.pass_context
def friend_add(ctx: click.Context, name: str, card: str, yes: bool, expected: str | None,
               accept_key_change: bool, timeout: float) -> None:
    """Add a friend as NAME from CARD: a card file, o2m1:… text, or their site's https URL.

    NAME is how you call them in `audience:` (lower case, e.g. alice). Adding someone
    gives them your friends-only posts; they see them once they add you back.
    """
    from o2m_pub.protocol.cards import MalformedCardError, card_from_any
    from o2m_pub.protocol.keyfile import fingerprint

    by_url = card.startswith(("https://", "http://"))
    if by_url:
        if expected is None and (yes or not sys.stdin.isatty()):
            raise SiteError("a card fetched from a site needs its fingerprint checked",
                            hint="ask your friend for it and pass --fingerprint '…'")
        from o2m_pub.reader.http_fetch import fetch_card_bytes

        # the hardened fetcher of `o2m fetch`: caps, a wall-clock deadline, no proxy
        # from the environment; $O2M_CA_BUNDLE names a private CA
        parsed = card_from_any(fetch_card_bytes(card, deadline=timeout))
    elif card.startswith("o2m1:"):
        try:
            parsed = card_from_any(card)
        except MalformedCardError:
            if _cut_short(card):
                raise MalformedCardError("this card is cut short: its end is missing",
                                         hint="copy the whole o2m1:… text, up to its last "
                                              "character") from None
            raise
    else:
        if _looks_like_card_text(card):
            raise MalformedCardError("this looks like a card without its o2m1: prefix",
                                     hint="copy the whole o2m1:… text, or put o2m1: in front "
                                          "of what you pasted")
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
    added = store.add(name, parsed, now=local_now(), accept_key_change=accept_key_change)
    if before is not None and before.name == added.name and before.card.raw == added.card.raw:
        out(f"{added.name} is already your friend with this card; nothing changed")
        return
    out(f"added {added.name}: {parsed.name} <{parsed.url}>, fingerprint {fp}")
    out("their feed is written at your next `o2m build`")


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


@click.group()
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


def _looks_like_card_text(text: str) -> bool:
    """Base64url of a JSON object, long as a card (a card's text without "o2m1:")."""
    import re
    compact = "".join(text.split())
    return len(compact) > 100 and re.fullmatch(r"eyJ[A-Za-z0-9_-]+", compact) is not None


def _cut_short(text: str) -> bool:
    """An o2m1: text whose JSON begins but never closes: its end was not copied."""
    import base64
    import binascii
    body = "".join(text.split())[len("o2m1:"):]
    try:
        data = base64.urlsafe_b64decode(body[:len(body) // 4 * 4])  # its whole quads
    except (binascii.Error, ValueError):
        return False
    return data.startswith(b"{") and not data.rstrip().endswith(b"}")


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
