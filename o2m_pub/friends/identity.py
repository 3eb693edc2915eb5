"""The owner's identity on disk: the sealed key file, its public half, and the own card.

The formats are `protocol.keyfile` and `protocol.cards`; this module draws fresh salts
and nonces and writes `keys/identity.secret` (0600, in a 0700 folder) atomically, so a
crash or a full disk leaves the old file or the new one, never neither (THREATS.md 48).
`keys/card.json` is the owner's signed card: public, copied by the build to
`build/.well-known/o2m-card.json` (PROTOCOL.md §2.4) and shared with friends.

Beside them (PROTOCOL.md 1.1): `keys/next.secret`, the next signing key the card
commits to (sealed like the key file), `keys/feed.key`, the public-feed signing key
(unsealed, 0600), and `keys/card-state.json`, the card's sequence high-water mark and
the site's first key (post ids are made from it).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.public
import nacl.signing
import nacl.utils

from o2m_pub._files import fsync_dir, write_file
from o2m_pub.config import CARD_FILE, SiteConfig
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
)
from o2m_pub.protocol.cards import (
    Avatar,
    Card,
    CardError,
    key_commitment,
    make_card,
    parse_card,
)
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
NEXT_KEY_FILE = "keys/next.secret"  # the pre-committed next signing key (§2.5), sealed
FEED_KEY_FILE = "keys/feed.key"  # the public-feed signing key (§1.4), 0600, not sealed
CARD_STATE_FILE = "keys/card-state.json"  # the card seq high-water mark, the first key
FEED_KEY_TYPE = "o2m-feed-key"
PENDING_FILE = "keys/.replace.pending"  # a several-file change of keys/ in progress
_STAGED_PREFIX = ".staged-"
_PENDING_NAME_RE = re.compile(r"keys/[a-z][a-z0-9.-]*")
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


# ---------------------------------------------------------------- several files as one


def _staged(root: Path, rel: str) -> Path:
    return root / "keys" / f"{_STAGED_PREFIX}{Path(rel).name}"


def replace_key_files(root: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Replace several files of keys/ as one change (a key rotation changes the key
    file, the next key, the card and more): each is written whole beside its target
    and synced, then a marker naming them all, then they are renamed into place. A
    crash before the marker leaves the old files; after it, `finish_pending` (run
    whenever the identity or the card is read) completes the renames.

    Args:
        files: site-relative path under keys/ -> (bytes, mode).
    """
    ensure_keys_dir(root)
    for rel, (data, mode) in files.items():
        if not _PENDING_NAME_RE.fullmatch(rel):
            raise ValueError(f"not a file of keys/: {rel}")
        write_file(_staged(root, rel), data, mode)
    write_file(root / PENDING_FILE, canonical_json(sorted(files)), 0o600)
    finish_pending(root)


def finish_pending(root: Path) -> None:
    """Complete a `replace_key_files` that a crash interrupted after its marker was
    written (nothing to do, one failed open, when there is none)."""
    marker = root / PENDING_FILE
    try:
        data = marker.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        names = parse_json(data, max_bytes=4096)
        if not isinstance(names, list) or not all(
                isinstance(n, str) and _PENDING_NAME_RE.fullmatch(n) for n in names):
            raise EncodingError("not a list of files of keys/")
    except EncodingError:
        raise KeyFileError("an interrupted change of your keys cannot be finished",
                           path=PENDING_FILE,
                           hint="restore keys/ from your backup, or ask for help") from None
    for rel in names:
        staged = _staged(root, rel)
        if staged.exists():
            os.replace(staged, root / rel)
    fsync_dir(root / "keys")
    marker.unlink()
    fsync_dir(root / "keys")


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
    finish_pending(root)
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
    An empty value is returned as b"" so it fails loudly rather than prompting. The
    bytes are returned as given: the key file normalises them to NFC itself
    (`keyfile.normalized_passphrase`, PROTOCOL.md §2.3), whatever way they came in.

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


# ---------------------------------------------------------------- the next key and the feed key


def seal_key(identity: Identity, passphrase: bytes, opslimit: int, memlimit: int) -> bytes:
    """`identity` in the key file format (§2.3), with a fresh salt and nonce."""
    return seal_identity(identity, passphrase, salt=nacl.utils.random(SALT_BYTES),
                         nonce=nacl.utils.random(NONCE_BYTES), opslimit=opslimit,
                         memlimit=memlimit)


def identity_kdf(root: Path) -> dict[str, int]:
    """The Argon2id limits of keys/identity.secret: the next key is sealed alike."""
    opslimit, memlimit = key_file_params(_read_key_file(root))
    return {"opslimit": opslimit, "memlimit": memlimit}


def create_next_key(root: Path, passphrase: bytes, *, opslimit: int = DEFAULT_OPSLIMIT,
                    memlimit: int = DEFAULT_MEMLIMIT) -> Identity:
    """A fresh next key pair (PROTOCOL.md §2.5), sealed in keys/next.secret in the key
    file format under `passphrase`: the key the card commits to, and the only key a
    rotation may move to. Its box half is not used (a rotation makes a fresh one).

    Raises:
        PassphraseError: the passphrase is empty.
        OSError: the file could not be written.
    """
    ensure_keys_dir(root)
    nxt = new_identity()
    write_file(root / NEXT_KEY_FILE, seal_key(nxt, passphrase, opslimit, memlimit), 0o600)
    return nxt


def install_next_key(root: Path, data: bytes, passphrase_for_data: bytes,
                     new_passphrase: bytes, **kdf: int) -> Identity:
    """Install an exported next key (`o2m key export` writes it beside the identity)
    as keys/next.secret, re-sealed under `new_passphrase`.

    Raises:
        KeyFileError, WrongPassphraseError: `data` cannot be opened.
    """
    nxt = open_identity(data, passphrase_for_data)
    ensure_keys_dir(root)
    write_file(root / NEXT_KEY_FILE, seal_key(nxt, new_passphrase, **kdf), 0o600)
    return nxt


def load_next_key(root: Path, passphrase: bytes) -> Identity:
    """Unlock keys/next.secret.

    Raises:
        KeyFileError: there is none, or it is damaged.
        WrongPassphraseError: the passphrase does not open it.
    """
    try:
        data = (root / NEXT_KEY_FILE).read_bytes()
    except FileNotFoundError:
        raise KeyFileError("this site has no next key", path=NEXT_KEY_FILE,
                           hint="restore keys/next.secret from your backup of keys/") from None
    try:
        return open_identity(data, passphrase)
    except (KeyFileError, WrongPassphraseError) as e:  # named, so the caller can ask
        e.path = e.path or NEXT_KEY_FILE                # for its own passphrase
        raise


def feed_key_json(key: nacl.signing.SigningKey) -> bytes:
    """The bytes of keys/feed.key: canonical JSON of the key's 32-byte seed."""
    return canonical_json({"seed": b64u_encode(bytes(key)), "type": FEED_KEY_TYPE,
                           "v": 1}) + b"\n"


def load_feed_key(root: Path) -> nacl.signing.SigningKey | None:
    """The public-feed signing key (PROTOCOL.md §1.4) from keys/feed.key, or None when
    there is none. It is kept unencrypted (mode 0600), so a build of public posts
    alone signs feed.json without the passphrase; the card vouches for its public half.

    Raises:
        KeyFileError: the file is damaged.
    """
    try:
        data = (root / FEED_KEY_FILE).read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = parse_json(data.rstrip(b"\n"), max_bytes=1024)
        if doc.get("type") != FEED_KEY_TYPE or doc.get("v") != 1:
            raise ValueError("not an o2m feed key")
        return nacl.signing.SigningKey(b64u_decode(doc["seed"], length=32))
    except (EncodingError, ValueError, KeyError, TypeError, AttributeError):
        raise KeyFileError("the public-feed key is damaged", path=FEED_KEY_FILE,
                           hint="delete it and run `o2m card --renew`: a new one is made "
                                "and your card names it") from None


def make_feed_key(root: Path) -> nacl.signing.SigningKey:
    """A fresh public-feed key in keys/feed.key (0600), replacing any before."""
    ensure_keys_dir(root)
    key = nacl.signing.SigningKey.generate()
    write_file(root / FEED_KEY_FILE, feed_key_json(key), 0o600)
    return key


# ---------------------------------------------------------------- the card's state


@dataclass(frozen=True)
class CardState:
    """What the owner's side remembers of their cards, in keys/card-state.json:

    - `seq`: the highest card sequence number ever given (§2.4: every new card of one
      signing key has a higher one; kept apart from card.json, which a restore or an
      import may replace);
    - `origin_sign_pk`: the signing key the site first had. Post ids are made from it
      (§3.4), so they stay the same across key rotations."""

    seq: int = 0
    origin_sign_pk: bytes | None = None


def read_card_state(root: Path) -> CardState:
    """keys/card-state.json (an empty state when there is none yet).

    Raises:
        KeyFileError: the file is damaged.
    """
    try:
        data = (root / CARD_STATE_FILE).read_bytes()
    except FileNotFoundError:
        return CardState()
    try:
        doc = parse_json(data.rstrip(b"\n"), max_bytes=4096)
        seq = doc["seq"]
        if type(seq) is not int:
            raise ValueError("seq")
        origin = doc.get("origin_sign_pk")
        return CardState(seq, b64u_decode(origin, length=32) if origin else None)
    except (EncodingError, ValueError, KeyError, TypeError, AttributeError):
        raise KeyFileError("the card state is damaged", path=CARD_STATE_FILE,
                           hint="delete it: o2m then continues above your current card") from None


def card_state_json(state: CardState) -> bytes:
    doc: dict[str, object] = {"seq": state.seq, "v": 1}
    if state.origin_sign_pk is not None:
        doc["origin_sign_pk"] = b64u_encode(state.origin_sign_pk)
    return canonical_json(doc) + b"\n"


def item_id_key(root: Path) -> bytes | None:
    """The key post ids are made from (§3.4): the site's first signing key, so a
    rotation never changes an id; None for a site without an identity."""
    origin = read_card_state(root).origin_sign_pk
    if origin is not None:
        return origin
    try:
        return own_sign_pk(root)
    except KeyFileError:
        return None


def next_card_seq(root: Path, current: Card | None, now: dt.datetime) -> int:
    """The sequence number of the owner's next card: above every card made before
    (the state's high-water mark and the card in keys/), and never below the Unix time
    of `now`, so a site whose keys/ was restored from an old backup still goes up."""
    floor = max(read_card_state(root).seq, current.seq if current is not None else 0)
    return max(floor + 1, int(now.timestamp()))


# ---------------------------------------------------------------- the own card


_KEEP: Any = object()


def write_own_card(root: Path, identity: Identity, config: SiteConfig, *, now: dt.datetime,
                   tls_pin: bytes | None = None, passphrase: bytes | None = None,
                   avatar: Avatar | None = _KEEP, bio: str | None = _KEEP) -> Card:
    """Sign a new card for the site's name, URL and keys, and keep it in keys/card.json
    (PROTOCOL.md §2.4): a higher `seq` than any card before, the commitment to the
    next key (`next`) and the public-feed key (`feed_pk`).

    The next key and the feed key are made when missing (a site of o2m 1.0, or a new
    identity): the next key is sealed under `passphrase` with the key file's limits.
    The card's `next` stays what the current card of this key says; it changes only
    through `o2m key rotate`.

    Args:
        tls_pin: the pin to carry, or None for none.
        passphrase: the site's passphrase, needed only to make (or first read) the
            next key.
        avatar, bio: the new ones (None: none); by default the current card's.

    Raises:
        PassphraseError: the next key had to be made or read and no passphrase was given.
        KeyFileError, WrongPassphraseError: keys/next.secret cannot be read.
        CardError: a field breaks its rule.
    """
    try:
        current = own_card(root)
    except CardError:
        current = None  # a damaged card.json: replaced below
    same = current is not None and current.sign_pk == identity.sign_pk
    if same and current.next is not None:
        next_digest = current.next
    else:
        if passphrase is None:
            raise PassphraseError("your card needs its next key, and the key is locked",
                                  hint="run the command on a terminal, or set O2M_PASSPHRASE")
        nxt = load_next_key(root, passphrase) if (root / NEXT_KEY_FILE).exists() else None
        if nxt is None or (not same and current is not None
                           and current.next == key_commitment(nxt.sign_pk)):
            # a first next key (a site of o2m 1.0); or the one kept is the next key of
            # the identity this one replaces (`o2m key import --replace`)
            nxt = create_next_key(root, passphrase, **identity_kdf(root))
        next_digest = key_commitment(nxt.sign_pk)
    feed_key = load_feed_key(root) or make_feed_key(root)
    keep = current if same else None
    state = read_card_state(root)
    card = make_card(identity.signing_key, name=config.author, url=config.url,
                     box_pk=identity.box_pk, tls_pin=tls_pin, created=now,
                     seq=next_card_seq(root, current, now), next_digest=next_digest,
                     feed_pk=bytes(feed_key.verify_key),
                     avatar=(keep.avatar if keep else None) if avatar is _KEEP else avatar,
                     bio=(keep.bio if keep else None) if bio is _KEEP else bio)
    origin = state.origin_sign_pk or (current.sign_pk if current else identity.sign_pk)
    write_file(root / CARD_STATE_FILE, card_state_json(CardState(card.seq, origin)), 0o600)
    write_file(root / CARD_FILE, card.raw, 0o644)
    return card


def create_owner(root: Path, config: SiteConfig, passphrase: bytes, *,
                 now: dt.datetime, tls_pin: bytes | None = None,
                 **kdf: int) -> tuple[Identity, Card]:
    """A new identity, its next key and its public-feed key, sealed under `passphrase`,
    and its first card (`o2m init`), with the pin of the site's self-signed certificate
    when there is one."""
    identity = create_identity_files(root, passphrase, **kdf)
    create_next_key(root, passphrase, **kdf)
    make_feed_key(root)
    return identity, write_own_card(root, identity, config, now=now, passphrase=passphrase,
                                    tls_pin=tls_pin)


def own_card(root: Path) -> Card | None:
    """The owner's card, or None before there is one (a rotation a crash left half
    done is finished first: `key_rotation.finish_pending`)."""
    finish_pending(root)
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
    "CARD_STATE_FILE", "FEED_KEY_FILE", "KEY_FILE", "NEXT_KEY_FILE", "PUBLIC_FILE",
    "CardState", "Identity", "IdentityExistsError", "KeyFileError", "NoIdentityError",
    "PassphraseError", "WrongPassphraseError", "change_passphrase", "create_identity_files",
    "create_next_key", "create_owner", "export_identity", "finish_pending", "fingerprint",
    "import_identity", "install_next_key", "item_id_key", "key_file_mode_warning",
    "key_file_params", "load_feed_key", "load_identity", "load_next_key", "make_feed_key",
    "new_identity", "next_card_seq", "own_card", "own_sign_pk", "passphrase_from_env_or_file",
    "read_card_state", "replace_key_files", "write_own_card",
]
