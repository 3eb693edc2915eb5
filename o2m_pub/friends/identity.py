"""The owner's identity on disk: the sealed key file, its public half, and the own card.

The formats are `protocol.keyfile` and `protocol.cards`; this module draws fresh salts
and nonces and writes `keys/identity.secret` (0600, in a 0700 folder) atomically, so a
crash or a full disk leaves the old file or the new one, never neither (THREATS.md 48).
`keys/card.json` is the owner's signed card: public, copied by the build to
`build/.well-known/o2m-card.json` (PROTOCOL.md §2.4) and shared with friends.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import nacl.public
import nacl.signing
import nacl.utils

from o2m_pub._files import fsync_dir, write_file
from o2m_pub.config import CARD_FILE, SiteConfig
from o2m_pub.protocol.canonical import EncodingError, b64u_decode, parse_json
from o2m_pub.protocol.cards import Card, make_card, parse_card
from o2m_pub.protocol.keyfile import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    MAX_FILE_BYTES,
    NONCE_BYTES,
    SALT_BYTES,
    Identity,
    IdentityExistsError,
    KeyFileError,
    NoIdentityError,
    PassphraseError,
    WrongPassphraseError,
    fingerprint,
    key_file_params,
    open_identity,
    public_json,
    seal_identity,
)

KEY_FILE = "keys/identity.secret"
PUBLIC_FILE = "keys/identity.pub.json"
_MAX_PASSPHRASE_FILE_BYTES = 64 * 1024


def new_identity() -> Identity:
    """A fresh identity from the OS random generator: two independent key pairs
    (PROTOCOL.md §2.2), never derived from each other."""
    return Identity(nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate())


def ensure_keys_dir(root: Path) -> Path:
    """keys/ with mode 0700 when we create it (DESIGN.md); an existing looser folder is
    left alone and reported by `key_file_mode_warning`."""
    folder = root / Path(KEY_FILE).parent
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        if not folder.is_dir():
            raise KeyFileError(f"{folder} exists and is not a folder",
                               path=str(Path(KEY_FILE).parent)) from None
        return folder
    os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    fsync_dir(folder.parent)
    return folder


def _read_key_file(root: Path) -> bytes:
    path = root / KEY_FILE
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise NoIdentityError(path=KEY_FILE) from None
    except IsADirectoryError:
        raise KeyFileError("the key file is a folder", path=KEY_FILE) from None
    except OSError as e:  # e.g. permission denied: one clear line, not a traceback
        raise KeyFileError(f"cannot read the key file: {e.strerror or e}", path=KEY_FILE,
                           hint="check the owner and mode of keys/") from None
    return data


def _write_identity(root: Path, identity: Identity, passphrase: bytes, *, opslimit: int,
                    memlimit: int) -> None:
    """Seal with a fresh salt and nonce (PROTOCOL.md §2.3), then write the secret file
    and its public half. The secret file comes first: it is the truth, the public file
    can always be rebuilt from it."""
    sealed = seal_identity(identity, passphrase, salt=nacl.utils.random(SALT_BYTES),
                           nonce=nacl.utils.random(NONCE_BYTES), opslimit=opslimit,
                           memlimit=memlimit)
    ensure_keys_dir(root)
    write_file(root / KEY_FILE, sealed, 0o600)
    write_file(root / PUBLIC_FILE, public_json(identity) + b"\n", 0o644)


def _refuse_existing(root: Path) -> None:
    if os.path.lexists(root / KEY_FILE):
        raise IdentityExistsError(path=KEY_FILE)


def create_identity_files(root: Path, passphrase: bytes, *,
                          opslimit: int = DEFAULT_OPSLIMIT,
                          memlimit: int = DEFAULT_MEMLIMIT) -> Identity:
    """Make a new identity for the site at `root` and store it sealed.

    Raises:
        IdentityExistsError: the site already has a key file (it is never overwritten).
        PassphraseError: the passphrase is empty.
        OSError: the file could not be written; nothing was left behind.
    """
    _refuse_existing(root)
    identity = new_identity()
    _write_identity(root, identity, passphrase, opslimit=opslimit, memlimit=memlimit)
    return identity


def load_identity(root: Path, passphrase: bytes) -> Identity:
    """Unlock the site's identity.

    Raises:
        NoIdentityError: there is no key file.
        KeyFileError: the key file is malformed or unsupported.
        WrongPassphraseError: the passphrase does not open it.
    """
    data = _read_key_file(root)
    try:
        return open_identity(data, passphrase)
    except KeyFileError as e:
        e.path = e.path or KEY_FILE  # the core does not know where the bytes came from
        raise


def change_passphrase(root: Path, old: bytes, new: bytes, *,
                      opslimit: int = DEFAULT_OPSLIMIT,
                      memlimit: int = DEFAULT_MEMLIMIT) -> Identity:
    """Re-seal the same keys under a new passphrase, with a new salt and nonce and
    today's KDF limits. The old file stays valid until the new one has replaced it.

    Raises:
        WrongPassphraseError: `old` is wrong; nothing was changed.
        KeyFileError, NoIdentityError: as `load_identity`.
        PassphraseError: `new` is empty.
        OSError: the new file could not be written (e.g. ENOSPC); the old one is intact.
    """
    identity = load_identity(root, old)
    _write_identity(root, identity, new, opslimit=opslimit, memlimit=memlimit)
    return identity


def export_identity(root: Path, passphrase: bytes, export_passphrase: bytes, *,
                    opslimit: int = DEFAULT_OPSLIMIT,
                    memlimit: int = DEFAULT_MEMLIMIT) -> bytes:
    """The identity sealed under `export_passphrase`, in the key file format, for a
    backup or another machine (`import_identity` reads it). Nothing is written.

    Raises:
        As `load_identity`; PassphraseError if `export_passphrase` is empty.
    """
    identity = load_identity(root, passphrase)
    return seal_identity(identity, export_passphrase, salt=nacl.utils.random(SALT_BYTES),
                         nonce=nacl.utils.random(NONCE_BYTES), opslimit=opslimit,
                         memlimit=memlimit)


def import_identity(root: Path, data: bytes, passphrase_for_data: bytes,
                    new_passphrase: bytes, *, replace: bool = False,
                    opslimit: int = DEFAULT_OPSLIMIT,
                    memlimit: int = DEFAULT_MEMLIMIT) -> Identity:
    """Install an exported identity as this site's, re-sealed under `new_passphrase`
    with a fresh salt and nonce.

    Raises:
        IdentityExistsError: the site has an identity and `replace` is false (checked
            before any KDF runs); nothing was changed.
        KeyFileError: `data` is not a usable key file.
        WrongPassphraseError: `passphrase_for_data` does not open `data`.
        PassphraseError: `new_passphrase` is empty.
        OSError: the file could not be written; the old one is intact.
    """
    if not replace:
        _refuse_existing(root)
    identity = open_identity(data, passphrase_for_data)
    _write_identity(root, identity, new_passphrase, opslimit=opslimit, memlimit=memlimit)
    return identity


def key_file_mode_warning(root: Path) -> str | None:
    """A warning when keys/ or the key file can be read by others (looser than
    0700/0600) or belongs to someone else; None when all is well or there is no file.
    Permissions are not enforced on Windows, so nothing is checked there."""
    if os.name == "nt":
        return None
    folder, path = root / Path(KEY_FILE).parent, root / KEY_FILE
    try:
        folder_st, file_st = os.stat(folder), os.lstat(path)
    except FileNotFoundError:
        return None
    problems = []
    if stat.S_ISLNK(file_st.st_mode):
        problems.append(f"{KEY_FILE} is a symlink; keep the key file itself in the site")
    if stat.S_IMODE(folder_st.st_mode) & 0o077:
        problems.append(f"keys/ has mode {stat.S_IMODE(folder_st.st_mode):04o}, "
                        "others may read it (run: chmod 700 keys)")
    if stat.S_IMODE(file_st.st_mode) & 0o077:
        problems.append(f"{KEY_FILE} has mode {stat.S_IMODE(file_st.st_mode):04o}, "
                        f"others may read it (run: chmod 600 {KEY_FILE})")
    if hasattr(os, "getuid") and file_st.st_uid != os.getuid():
        problems.append(f"{KEY_FILE} belongs to another user (uid {file_st.st_uid})")
    return "; ".join(problems) or None


def passphrase_from_env_or_file(env: Mapping[str, str],
                                passphrase_file: Path | None) -> bytes | None:
    """The passphrase for scripts: the first line of `passphrase_file` (without its line
    ending) when one is given, else `O2M_PASSPHRASE`; None when neither is set, and the
    CLI then prompts. An explicit file wins over the environment, as a flag does.
    An empty value is returned as b"" so it fails loudly rather than prompting.

    Raises:
        PassphraseError: the file cannot be read.
    """
    if passphrase_file is not None:
        try:
            with open(passphrase_file, "rb") as f:
                data = f.read(_MAX_PASSPHRASE_FILE_BYTES)
        except OSError as e:
            raise PassphraseError(f"cannot read the passphrase file {passphrase_file}: "
                                  f"{e.strerror or e}") from None
        line = data.split(b"\n", 1)[0]
        return line[:-1] if line.endswith(b"\r") else line
    value = env.get("O2M_PASSPHRASE")
    return None if value is None else value.encode("utf-8")


# ---------------------------------------------------------------- the own card


def write_own_card(root: Path, identity: Identity, config: SiteConfig, *, now: dt.datetime,
                   tls_pin: bytes | None = None) -> Card:
    """Sign a card for the site's name, URL and keys, and keep it in keys/card.json."""
    card = make_card(identity.signing_key, name=config.author, url=config.url,
                     box_pk=identity.box_pk, tls_pin=tls_pin, created=now)
    write_file(root / CARD_FILE, card.raw, 0o644)
    return card


def create_owner(root: Path, config: SiteConfig, passphrase: bytes, *,
                 now: dt.datetime, tls_pin: bytes | None = None,
                 **kdf: int) -> tuple[Identity, Card]:
    """A new identity, sealed under `passphrase`, and its first card (`o2m init`),
    with the pin of the site's self-signed certificate when there is one."""
    identity = create_identity_files(root, passphrase, **kdf)
    return identity, write_own_card(root, identity, config, now=now, tls_pin=tls_pin)


def own_card(root: Path) -> Card | None:
    """The owner's card, or None before there is one."""
    try:
        data = (root / CARD_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return parse_card(data)


def own_sign_pk(root: Path) -> bytes:
    """The site's signing key, from its public half (no passphrase needed).

    Raises:
        KeyFileError: the public half is missing or damaged.
    """
    try:
        doc = parse_json((root / PUBLIC_FILE).read_bytes().rstrip(b"\n"), max_bytes=4096)
        return b64u_decode(doc["sign_pk"], length=32)
    except FileNotFoundError:
        raise KeyFileError("this site has friends but no identity", path=PUBLIC_FILE,
                           hint="restore keys/ from a backup (`o2m key import FILE`)") from None
    except (OSError, EncodingError, KeyError, TypeError):
        raise KeyFileError("the public half of your identity is damaged", path=PUBLIC_FILE,
                           hint="`o2m key export` and `o2m key import --replace` rewrite it") from None


__all__ = [
    "KEY_FILE", "PUBLIC_FILE", "Identity", "IdentityExistsError", "KeyFileError",
    "NoIdentityError", "PassphraseError", "WrongPassphraseError", "change_passphrase",
    "create_identity_files", "create_owner", "export_identity", "fingerprint",
    "import_identity", "key_file_mode_warning", "key_file_params", "load_identity",
    "new_identity",
    "own_card", "own_sign_pk", "passphrase_from_env_or_file", "write_own_card",
]
