"""The owner's keys and the sealed key file, as bytes (PROTOCOL.md §2.2, §2.3).

`Identity` holds the two independent key pairs; `fingerprint` is what people compare
aloud; `seal_identity` and `open_identity` are the key file format, with the salt, the
nonce and the passphrase passed in, so the format is checked byte for byte by test
vectors. Files, modes and fresh randomness are `friends.identity`'s job.

Only PyNaCl (libsodium) primitives are used: Ed25519, X25519, Argon2id and
XChaCha20-Poly1305. Secret bytes never appear in a repr, a message or a log.

Errors (each docstring is the user-facing text, see errors.py)::

    O2MError
    ├── PassphraseError (ValueError)     empty passphrase, unreadable passphrase file
    │   └── WrongPassphraseError         the key file does not open with it
    └── KeyFileError (ValueError)        the key file is malformed or unsupported
        ├── NoIdentityError              there is no key file yet
        └── IdentityExistsError          refusing to overwrite an identity
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing
from nacl.pwhash import argon2id

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
)

# PROTOCOL.md §2.3: the file layout and its fixed sizes.
MAGIC = b"o2m-secret-v1\n"
KDF = "argon2id13"
AEAD = "xchacha20poly1305-ietf"
SALT_BYTES = argon2id.SALTBYTES  # 16
NONCE_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
KEY_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES  # 32
SECRET_BYTES = 64  # sign_seed (32) || box_sk (32)
CIPHERTEXT_BYTES = SECRET_BYTES + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 80
MAX_HEADER_BYTES = 1024  # a real header is about 150 bytes
MAX_FILE_BYTES = len(MAGIC) + 2 + MAX_HEADER_BYTES + CIPHERTEXT_BYTES
_HEADER_KEYS = frozenset({"aead", "kdf", "memlimit", "nonce", "opslimit", "salt"})

# PROTOCOL.md §2.3: caps a reader applies before running the KDF, so a hostile header
# cannot make unlocking take forever or exhaust memory. The floors are libsodium's.
MAX_OPSLIMIT = argon2id.OPSLIMIT_SENSITIVE  # 4
MAX_MEMLIMIT = 1 << 30  # 1 GiB (= argon2id.MEMLIMIT_SENSITIVE)
MIN_OPSLIMIT = argon2id.OPSLIMIT_MIN  # 1
MIN_MEMLIMIT = argon2id.MEMLIMIT_MIN  # 8 KiB

# Defaults for every file this module writes (DESIGN.md: MODERATE-class limits that
# unlock in under a second). Measured with bench/bench_unlock.py on the reference box
# (2 vCPU Xeon): INTERACTIVE 0.06 s, MODERATE 0.41–0.45 s, 3 × 512 MiB 1.0–1.4 s,
# SENSITIVE 2.8–2.9 s.
# MODERATE leaves room for a laptop twice as slow and for machines with little RAM.
DEFAULT_OPSLIMIT = argon2id.OPSLIMIT_MODERATE  # 3
DEFAULT_MEMLIMIT = argon2id.MEMLIMIT_MODERATE  # 256 MiB

_PASSPHRASE_HINT = "check the passphrase; O2M_PASSPHRASE or --passphrase-file if scripted"


class PassphraseError(O2MError, ValueError):
    """The passphrase cannot be used."""

    hint = _PASSPHRASE_HINT


class WrongPassphraseError(PassphraseError):
    """Wrong passphrase (or the key file was altered)."""


class KeyFileError(O2MError, ValueError):
    """The key file is damaged or not supported."""

    hint = ("restore keys/identity.secret from a backup or an export; "
            "never edit it by hand")

    def __init__(self, message: str | None = None, *, path: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path

    @property
    def where(self) -> str | None:
        return self.path


class NoIdentityError(KeyFileError):
    """This site has no identity yet."""

    hint = "create one first, or import an exported identity"


class IdentityExistsError(KeyFileError):
    """This site already has an identity."""

    hint = ("export it first if you need it; importing over it needs an explicit "
            "replace, and the old keys are then gone")




def fingerprint(sign_pk: bytes, box_pk: bytes) -> str:
    """The fingerprint people compare aloud to check they have the right keys.

    PROTOCOL.md §2.2: H = SHA-256("o2m-fingerprint-v1" || sign_pk || box_pk); bytes
    0..29 as 6 chunks of 5, each big-endian mod 100000 as 5 digits, joined by spaces.
    Both keys are covered, so swapping either one changes the fingerprint.

    Raises:
        ValueError: if a key is not 32 bytes.
    """
    if len(sign_pk) != 32 or len(box_pk) != 32:
        raise ValueError("sign_pk and box_pk must be 32 bytes each")
    h = hashlib.sha256(b"o2m-fingerprint-v1" + bytes(sign_pk) + bytes(box_pk)).digest()
    groups = (int.from_bytes(h[i:i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return " ".join(f"{g:05d}" for g in groups)


@dataclass(frozen=True, repr=False)
class Identity:
    """The owner's two independent key pairs (PROTOCOL.md §2.2): Ed25519 to sign,
    X25519 to receive boxes. They are never derived from each other, so either can
    be rotated alone."""

    signing_key: nacl.signing.SigningKey
    box_key: nacl.public.PrivateKey

    @classmethod
    def from_secret_bytes(cls, secret: bytes) -> Identity:
        """Rebuild an identity from `sign_seed (32) || box_sk (32)` (PROTOCOL.md §2.3).

        Raises:
            ValueError: if `secret` is not 64 bytes.
        """
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"identity secret must be {SECRET_BYTES} bytes")
        return cls(nacl.signing.SigningKey(bytes(secret[:32])),
                   nacl.public.PrivateKey(bytes(secret[32:])))

    def to_secret_bytes(self) -> bytes:
        """`sign_seed || box_sk`: the plaintext of the key file. Handle with care."""
        return bytes(self.signing_key) + bytes(self.box_key)

    @property
    def sign_pk(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def box_pk(self) -> bytes:
        return bytes(self.box_key.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sign_pk, self.box_pk)

    def __repr__(self) -> str:
        # Never the secret halves: a repr ends up in tracebacks and debug logs.
        return f"Identity(fingerprint={self.fingerprint!r})"


def public_json(identity: Identity) -> bytes:
    """The public half as canonical JSON, for `keys/identity.pub.json`: what other
    tools may read without the passphrase."""
    return canonical_json({"box_pk": b64u_encode(identity.box_pk),
                           "sign_pk": b64u_encode(identity.sign_pk), "v": 1})


def _check_limits(opslimit: object, memlimit: object) -> None:
    # PROTOCOL.md §2.3: refuse what would make the KDF take forever (or fail in libsodium).
    if type(opslimit) is not int or type(memlimit) is not int:
        raise KeyFileError("key file header: opslimit and memlimit must be integers")
    if not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise KeyFileError(f"key file header: opslimit {opslimit} is outside "
                           f"{MIN_OPSLIMIT}..{MAX_OPSLIMIT}")
    if not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT:
        raise KeyFileError(f"key file header: memlimit {memlimit} bytes is outside "
                           f"{MIN_MEMLIMIT}..{MAX_MEMLIMIT} (1 GiB)")


def normalized_passphrase(passphrase: bytes) -> bytes:
    """The bytes a passphrase is sealed under (PROTOCOL.md §2.3, protocol 1.1): its UTF-8
    text in Unicode NFC, so "é" typed as one code point or as "e" + U+0301 (as some
    keyboards and systems do) is one passphrase. Bytes that are not UTF-8 are used as
    they are."""
    try:
        text = passphrase.decode("utf-8")
    except UnicodeDecodeError:
        return passphrase
    return unicodedata.normalize("NFC", text).encode("utf-8")


def _passphrase_forms(passphrase: bytes) -> list[bytes]:
    """What `open_identity` tries, in order: the NFC form, then the bytes as given, for
    a file sealed before protocol 1.1 (which used them unnormalised). The second Argon2id
    run happens only for a passphrase that is not in NFC already."""
    nfc = normalized_passphrase(passphrase)
    return [nfc] if nfc == passphrase else [nfc, passphrase]


def _derive_key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    # PROTOCOL.md §2.3: libsodium crypto_pwhash, ALG_ARGON2ID13, 32-byte key.
    return argon2id.kdf(KEY_BYTES, passphrase, salt, opslimit=opslimit, memlimit=memlimit)


def seal_identity(identity: Identity, passphrase: bytes, *, salt: bytes, nonce: bytes,
                  opslimit: int, memlimit: int) -> bytes:
    """Encrypt an identity under a passphrase: the bytes of a key file (PROTOCOL.md §2.3).

    The salt and nonce are passed in so test vectors are reproducible; the caller MUST
    draw fresh ones for every file it writes.

    Args:
        identity: the keys to seal.
        passphrase: the owner's passphrase (not empty); sealed under its NFC form
            (`normalized_passphrase`).
        salt: 16 random bytes for Argon2id.
        nonce: 24 random bytes for XChaCha20-Poly1305.
        opslimit: Argon2id passes, within the caps a reader accepts.
        memlimit: Argon2id memory in bytes, within the caps a reader accepts.

    Returns:
        MAGIC || header_len (2, big-endian) || header || ciphertext.

    Raises:
        PassphraseError: if the passphrase is empty.
        KeyFileError: if the limits are outside what `open_identity` accepts.
        ValueError: if the salt or nonce has the wrong length.
    """
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    if not passphrase:
        raise PassphraseError("the passphrase is empty",
                              hint="choose a passphrase of several words")
    if len(salt) != SALT_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes and nonce {NONCE_BYTES}")
    _check_limits(opslimit, memlimit)  # never write a file we would refuse to read
    header = canonical_json({"aead": AEAD, "kdf": KDF, "memlimit": memlimit,
                             "nonce": b64u_encode(nonce), "opslimit": opslimit,
                             "salt": b64u_encode(salt)})
    prefix = MAGIC + len(header).to_bytes(2, "big") + header
    key = _derive_key(normalized_passphrase(passphrase), salt, opslimit, memlimit)
    # PROTOCOL.md §2.3: the associated data is every byte before the ciphertext, so the
    # magic, the KDF limits, the salt and the nonce are all authenticated.
    ciphertext = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        identity.to_secret_bytes(), prefix, nonce, key)
    return prefix + ciphertext


@dataclass(frozen=True)
class _Header:
    opslimit: int
    memlimit: int
    salt: bytes
    nonce: bytes


def _parse_key_file(data: bytes) -> tuple[bytes, _Header, bytes]:
    """Split and check a key file without any crypto: (associated data, header,
    ciphertext). Everything an attacker controls is checked here, before Argon2id.

    Raises:
        KeyFileError: naming the first thing wrong.
    """
    # PROTOCOL.md §2.3, step by step: magic, header length, header, ciphertext length.
    if len(data) > MAX_FILE_BYTES:
        raise KeyFileError(f"key file is too large ({len(data)} bytes)")
    if not data.startswith(MAGIC):
        if data.startswith(b"o2m-secret-v"):
            version = data[:32].split(b"\n", 1)[0].decode("ascii", "replace")
            raise KeyFileError(f"unsupported key file version {version!r}; this o2m "
                               "reads o2m-secret-v1", hint="upgrade o2m")
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise KeyFileError("key file is truncated")
        raise KeyFileError("not an o2m key file (it does not start with o2m-secret-v1)")
    start = len(MAGIC) + 2
    if len(data) < start:
        raise KeyFileError("key file is truncated")
    header_len = int.from_bytes(data[len(MAGIC):start], "big")
    if not 0 < header_len <= MAX_HEADER_BYTES:
        raise KeyFileError(f"key file header length {header_len} is outside "
                           f"1..{MAX_HEADER_BYTES}")
    end = start + header_len
    if len(data) < end:
        raise KeyFileError("key file is truncated")
    raw = data[start:end]
    try:
        header = parse_json(raw, max_bytes=MAX_HEADER_BYTES)
    except EncodingError as e:
        raise KeyFileError(f"key file header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise KeyFileError("key file header is not a JSON object")
    if set(header) != _HEADER_KEYS:
        missing, extra = sorted(_HEADER_KEYS - set(header)), sorted(set(header) - _HEADER_KEYS)
        raise KeyFileError("key file header fields are wrong"
                           + (f"; missing: {', '.join(missing)}" if missing else "")
                           + (f"; unknown: {', '.join(extra)}" if extra else ""))
    if header["kdf"] != KDF:
        raise KeyFileError(f"unsupported kdf {header['kdf']!r} (this o2m knows {KDF!r})")
    if header["aead"] != AEAD:
        raise KeyFileError(f"unsupported aead {header['aead']!r} (this o2m knows {AEAD!r})")
    _check_limits(header["opslimit"], header["memlimit"])
    try:
        salt = b64u_decode(header["salt"], length=SALT_BYTES)
    except EncodingError as e:
        raise KeyFileError(f"key file header: salt is not {SALT_BYTES} bytes of b64u ({e})") \
            from None
    try:
        nonce = b64u_decode(header["nonce"], length=NONCE_BYTES)
    except EncodingError as e:
        raise KeyFileError(f"key file header: nonce is not {NONCE_BYTES} bytes of b64u "
                           f"({e})") from None
    if canonical_json(header) != raw:
        raise KeyFileError("key file header is not canonical JSON")
    ciphertext = data[end:]
    if len(ciphertext) < CIPHERTEXT_BYTES:
        raise KeyFileError("key file is truncated")
    if len(ciphertext) > CIPHERTEXT_BYTES:
        raise KeyFileError(f"key file has {len(ciphertext) - CIPHERTEXT_BYTES} "
                           "unexpected trailing bytes")
    return data[:end], _Header(header["opslimit"], header["memlimit"], salt, nonce), ciphertext


def open_identity(data: bytes, passphrase: bytes) -> Identity:
    """Decrypt a key file (PROTOCOL.md §2.3).

    The magic, header and limits are checked before Argon2id runs, so a hostile or
    damaged file fails fast and never costs more than the capped KDF.

    Args:
        data: the whole key file.
        passphrase: the passphrase it was sealed with: its NFC form opens the file, and
            so do the exact bytes it was sealed under before protocol 1.1.

    Returns:
        The identity.

    Raises:
        KeyFileError: the file is malformed, truncated, or uses an unsupported format or
            limits (the message says which).
        WrongPassphraseError: the AEAD did not open: a wrong passphrase, or a file
            altered after it was written (the two cannot be told apart).
    """
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be bytes")
    ad, header, ciphertext = _parse_key_file(bytes(data))
    for form in _passphrase_forms(passphrase):  # NFC first, then as given (§2.3)
        key = _derive_key(form, header.salt, header.opslimit, header.memlimit)
        try:
            secret = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, ad, header.nonce, key)
        except nacl.exceptions.CryptoError:
            continue
        return Identity.from_secret_bytes(secret)
    raise WrongPassphraseError()


def key_file_params(data: bytes) -> tuple[int, int]:
    """The (opslimit, memlimit) a key file was sealed with, without unlocking it; lets
    the CLI say "unlocking…" honestly or offer to re-seal with today's defaults.

    Raises:
        KeyFileError: as `open_identity`.
    """
    _, header, _ = _parse_key_file(bytes(data))
    return header.opslimit, header.memlimit
