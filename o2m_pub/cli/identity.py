"""`o2m whoami`, `o2m card` and `o2m key …`: who you are, the card that says so, and
the keys behind it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from o2m_pub.cli._common import (
    KDF_OPTION,
    BadValueError,
    kdf_limits,
    local_now,
    out,
    read_passphrase,
    site_root,
    unlock_with_passphrase,
    warn,
    wrong_passphrase_for,
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


@key.command("rotate")
@click.option("--compromised", is_flag=True,
              help="Your current key was stolen: friends are told so.")
@click.option("--no-build", is_flag=True, help="Do not build afterwards.")
@click.pass_context
def key_rotate(ctx: click.Context, compromised: bool, no_build: bool) -> None:
    """Move to your pre-committed next key (keys/next.secret), then build.

    Your card commits to the digest of your next signing key. This signs a statement
    with the current and the next key, makes a new card with the new keys (committing to
    yet another next key) and rebuilds every friend's feed for them. Publish as usual:
    friends' next fetch follows the rotation, keeping your history, with no paste. With
    --compromised, friends are told the old key was stolen; a thief of that key alone
    cannot rotate, as the next key is sealed apart.
    """
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.key_rotation import rotate_keys
    from o2m_pub.protocol.keyfile import WrongPassphraseError, fingerprint

    root = site_root(ctx)
    config = load(root)
    passphrase = unlock_with_passphrase(ctx, root)[1]  # three tries at a terminal
    current = own_card(root)
    pin = card_pin(root, config, current)
    try:
        done = rotate_keys(root, config, passphrase, now=local_now(), tls_pin=pin,
                           reason="compromised" if compromised else "routine")
    except WrongPassphraseError as e:
        if e.path != "keys/next.secret":
            raise
        next_passphrase = read_passphrase(ctx, "Passphrase of keys/next.secret",
                                          env_name="O2M_NEXT_PASSPHRASE")
        with wrong_passphrase_for("keys/next.secret", "O2M_NEXT_PASSPHRASE"):
            done = rotate_keys(root, config, passphrase, now=local_now(), tls_pin=pin,
                               reason="compromised" if compromised else "routine",
                               next_passphrase=next_passphrase)
    out(f"rotated to a new key: fingerprint {fingerprint(done.new.sign_pk, done.new.box_pk)} "
        f"(was {fingerprint(done.old.sign_pk, done.old.box_pk)})")
    out("back up keys/ now: it holds your new key and the next one")
    if no_build:
        out("next: `o2m build`, then publish: friends follow on their next fetch")
        return
    from o2m_pub.cli.site import build_and_report
    build_and_report(ctx, root, passphrase=passphrase)
    out("publish build/ as usual: friends follow the rotation on their next fetch")


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
    passphrase = unlock_with_passphrase(ctx, root)[1]  # three tries at a terminal
    backup = read_passphrase(ctx, "Passphrase for the backup", new=True,
                             file_option=export_passphrase_file,
                             env_name="O2M_EXPORT_PASSPHRASE")
    data = export_identity(root, passphrase, backup, **kdf_limits(kdf))
    next_data = _export_next_key(root, passphrase, backup, kdf)
    next_file = file.with_name(file.name + ".next")
    for path, content in ((file, data), (next_file, next_data)):
        if content is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
    out(f"wrote {file} (keep it somewhere safe: with its passphrase it is you)")
    if next_data is not None:
        out(f"wrote {next_file}: your next key (`o2m key rotate` needs it; keep it with {file})")


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
    from o2m_pub.friends.identity import import_identity, own_card, write_own_card

    root = site_root(ctx)
    backup_pass = read_passphrase(ctx, "Backup passphrase", file_option=export_passphrase_file,
                              env_name="O2M_EXPORT_PASSPHRASE")
    new_pass = read_passphrase(ctx, "New passphrase for this site", new=True)
    with wrong_passphrase_for(f"the backup {file}", "O2M_EXPORT_PASSPHRASE"):
        identity = import_identity(root, file.read_bytes(), backup_pass, new_pass,
                                   replace=replace, **kdf_limits(kdf))
    next_file = file.with_name(file.name + ".next")
    if next_file.is_file():  # written beside it by `o2m key export`
        from o2m_pub.friends.identity import install_next_key
        with wrong_passphrase_for(f"the backup {next_file}", "O2M_EXPORT_PASSPHRASE"):
            install_next_key(root, next_file.read_bytes(), backup_pass, new_pass,
                             **kdf_limits(kdf))
    config = load(root)
    write_own_card(root, identity, config, now=local_now(), passphrase=new_pass,
                   tls_pin=card_pin(root, config, own_card(root)))
    out(f"imported; fingerprint: {identity.fingerprint}")


def _export_next_key(root: Path, passphrase: bytes, backup: bytes,
                     kdf: str) -> bytes | None:
    """keys/next.secret sealed under the backup's passphrase (None: the site has none)."""
    from o2m_pub.friends.identity import NEXT_KEY_FILE, load_next_key, seal_key

    if not (root / NEXT_KEY_FILE).is_file():
        return None
    return seal_key(load_next_key(root, passphrase), backup, **kdf_limits(kdf))


@click.command()
@click.option("--qr", is_flag=True, help="Show the card as a QR code in the terminal.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Write a QR code PNG.")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), help="Write a QR code SVG.")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON (for a file).")
@click.option("--renew", is_flag=True,
              help="Sign a new card with today's name, URL and certificate (asks to unlock).")
@click.option("--no-pin", is_flag=True,
              help="With --renew: no TLS pin (your host has a certificate from a CA).")
@click.option("--avatar", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --renew: a PNG, JPEG or WebP picture (at most 512 KiB).")
@click.option("--no-avatar", is_flag=True, help="With --renew: no picture.")
@click.option("--bio", help="With --renew: a few words about you (at most 280 characters; "
                            "'' for none).")
@click.pass_context
def card(ctx: click.Context, qr: bool, png: Path | None, svg: Path | None, as_json: bool,
         renew: bool, no_pin: bool, avatar: Path | None, no_avatar: bool,
         bio: str | None) -> None:
    """Print your contact card, to send to a friend (`o2m friend add` reads it).

    With --renew, a new card is signed (a higher sequence number, PROTOCOL.md §2.4):
    `o2m build` publishes it, and friends who have your card take the new one on their
    next fetch, without a paste. `o2m build` renews it by itself when your name, URL or
    certificate changed.
    """
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.qr import qr_png, qr_svg, qr_terminal
    from o2m_pub.protocol.cards import card_to_text
    from o2m_pub.protocol.keyfile import fingerprint

    root = site_root(ctx)
    current = own_card(root)
    if not renew and (no_pin or avatar or no_avatar or bio is not None):
        raise BadValueError("--no-pin, --avatar, --no-avatar, --bio",
                            "these change your card, so they go with --renew",
                            hint="add --renew")
    if renew or current is None:
        changes = {}
        if avatar is not None or no_avatar:
            changes["avatar"] = None if no_avatar else _install_avatar(root, avatar)
        if bio is not None:
            changes["bio"] = bio or None
        before = current
        current, _ = renew_card(ctx, root, load(root), no_pin=no_pin, **changes)
        if before is not None:
            click.echo(f"o2m: card renewed (seq {current.seq}): `o2m build` publishes it; "
                       "friends take it on their next fetch", err=True)
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


# -- the own card: renewing it when the site changed ---------------------------------


def card_pin(root: Path, config, current, *, no_pin: bool = False) -> bytes | None:  # noqa: ANN001
    """The TLS pin a new card carries (PROTOCOL.md §2.4): none with `[serve] cert`
    (a CA-issued certificate, checked the usual way) or --no-pin; none when the card
    has none already (the owner took it out: the host has a CA certificate), unless
    there is no card yet; else the pin of the self-signed certificate in keys/tls/."""
    from o2m_pub.host.tls import CERT_NAME, TLS_DIR, TLSError, tls_pin_from_certificate

    if no_pin or config.serve.cert is not None:
        return None
    if current is not None and current.tls_pin is None:
        return None
    try:
        return tls_pin_from_certificate((root / TLS_DIR / CERT_NAME).read_bytes())
    except (OSError, TLSError, ValueError):
        return current.tls_pin if current is not None else None


def card_changes(root: Path, config, current) -> list[str]:  # noqa: ANN001
    """What makes the owner's card out of date, in words (empty: it is current): a
    new name, URL or certificate, or the fields of o2m 1.1 missing (§2.4)."""
    from o2m_pub.friends.identity import load_feed_key
    from o2m_pub.protocol.keyfile import KeyFileError

    if current is None:
        return []
    changes = []
    if current.name != config.author:
        changes.append("a new name")
    if current.url != config.url:
        changes.append("a new URL")
    if card_pin(root, config, current) != current.tls_pin:
        changes.append("a new certificate")
    try:
        feed_key = load_feed_key(root)
    except KeyFileError:
        feed_key = None
    if current.next is None or current.feed_pk is None or current.seq == 0:
        changes.append("the fields of o2m 1.1 (sequence, next key, feed key)")
    elif feed_key is None or bytes(feed_key.verify_key) != current.feed_pk:
        changes.append("a new public-feed key")
    return changes


_PIN_RULE = object()


def renew_card(ctx: click.Context, root: Path, config, *, no_pin: bool = False,  # noqa: ANN001
               identity=None, tls_pin=_PIN_RULE, **changes) -> tuple:  # noqa: ANN001, ANN003
    """Sign a new card (`o2m card --renew`, and `o2m build` or `o2m move` when the site
    changed); returns (card, identity). The passphrase is asked for once: it unlocks
    the key and, for a site made by o2m 1.0, seals the next key (keys/next.secret)
    made then; the public-feed key (keys/feed.key) is made too when missing. The pin
    is `card_pin`'s unless `tls_pin` is given (`o2m serve` knows the certificate)."""
    from o2m_pub.friends.identity import own_card, write_own_card

    current = own_card(root)
    if identity is None:  # three tries at a terminal
        identity, passphrase = unlock_with_passphrase(ctx, root)
    else:
        passphrase = read_passphrase(ctx)
    if tls_pin is _PIN_RULE:
        tls_pin = card_pin(root, config, current, no_pin=no_pin)
    card = write_own_card(root, identity, config, now=local_now(), passphrase=passphrase,
                          tls_pin=tls_pin, **changes)
    return card, identity


def _install_avatar(root: Path, source: Path):  # noqa: ANN202 - cards.Avatar
    """Copy a picture into keys/avatar, for the build to publish (§2.4)."""
    import hashlib

    from o2m_pub._files import write_file
    from o2m_pub.protocol.cards import MAX_AVATAR_BYTES, Avatar

    data = source.read_bytes()
    if len(data) > MAX_AVATAR_BYTES:
        raise SiteError(f"{source} is {len(data):,} bytes; a card's picture is at most "
                        f"{MAX_AVATAR_BYTES:,}", hint="make it smaller (e.g. 256 x 256)")
    kinds = ((b"\x89PNG\r\n\x1a\n", "image/png", "png"), (b"\xff\xd8\xff", "image/jpeg", "jpg"))
    found = next(((t, e) for magic, t, e in kinds if data.startswith(magic)), None)
    if found is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        found = ("image/webp", "webp")
    if found is None:
        raise SiteError(f"{source} is not a PNG, JPEG or WebP picture")
    digest = hashlib.sha256(data).hexdigest()
    write_file(root / "keys" / "avatar", data, 0o644)
    return Avatar(path=f"media/{digest[:16]}/avatar.{found[1]}", sha256=digest,
                  media_type=found[0])



def renew_own_card(root: Path, identity, **changes):  # noqa: ANN001, ANN003, ANN201
    """Sign a new card from o2m.toml's name and URL, with the pin `o2m card --renew`
    would give, and the `avatar` or `bio` given in `changes` (else the current
    card's): the desk's profile page (wired in cli/desk.py), which has just unlocked
    `identity` with the owner's passphrase."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import own_card, write_own_card

    config = load(root)
    return write_own_card(root, identity, config, now=local_now(),
                          tls_pin=card_pin(root, config, own_card(root)), **changes)
