"""Contact cards (PROTOCOL.md §2.4): the signed, shareable description of an identity.

A card says "the person who holds this Ed25519 key calls themself NAME, publishes at URL,
and takes encrypted mail at this X25519 key". It travels as a file, as `o2m1:` text,
or as a QR code, always through hands or hosts we do not trust, so this module is the
strict reader of hostile bytes. It is a pure core (STYLE.md §2): no files, no network,
time passed in. Fingerprints and display belong to `keys.py` and the CLI.

The reader refuses more than it must rather than less: the bytes must already be
canonical JSON (§2.1), so what was signed is exactly what is stored and shown, and
every field is checked before the signature, which is checked last.

    CardError                        (O2MError, ValueError) a card cannot be used
    ├── MalformedCardError           not a card at all: size, JSON, canonical form, text form
    ├── InvalidCardFieldError        one field breaks a rule of §2.4 (``.field`` names it)
    ├── UnsupportedCardVersionError  a card of another ``v`` (``.version``): not broken, newer
    ├── BadCardSignatureError        the signature does not match the card
    ├── CardQRError                  the card is too big for a QR code
    └── CertificateError             a TLS certificate to pin cannot be read

No other exception escapes :func:`parse_card`, :func:`card_from_text` or
:func:`card_from_any`, whatever the input (THREATS.md "Card parsing").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import nacl.bindings
import nacl.exceptions
import nacl.signing

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import (
    REFUSED_IN_NAME,
    TIME_RE,
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
    parse_utc_text,
    utc_text,
)

CARD_VERSION = 1
CARD_TYPE = "o2m-card"
MAX_CARD_BYTES = 4096  # PROTOCOL.md §2.4: "at most 4 KiB"
SIG_CONTEXT = b"o2m-card-v1\n"  # §2.4: domain separation of what a card signature means
TEXT_PREFIX = "o2m1:"
# The longest text form of a card within the cap: prefix + b64u of 4096 bytes, counted
# after the whitespace is removed (§2.4).
MAX_TEXT_CHARS = len(TEXT_PREFIX) + -(-MAX_CARD_BYTES * 4 // 3)
# §2.4, §2.7 reader limit: a text form as given, whitespace included, is refused above
# this before anything else is done with it (THREATS.md 5). Every text form within its
# cap (at most 10,929 characters, §2.7's) fits even with "\r\n" after each character.
MAX_WRAPPED_TEXT_CHARS = 65_536
MAX_NAME_CHARS = 64
PIN_PREFIX = "sha256/"
DIGEST_PREFIX = "sha256/"  # §2.4 `next`: the commitment to the next signing key
MAX_SEQ = 2**53 - 1
MAX_BIO_CHARS = 280
MAX_AVATAR_PATH_CHARS = 256
AVATAR_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
MAX_AVATAR_BYTES = 512 * 1024  # §2.4: readers cap an avatar download at 512 KiB
_REQUIRED = ("box_pk", "created", "name", "sig", "sign_pk", "type", "url", "v")
_OPTIONAL = ("avatar", "bio", "feed_pk", "next", "seq", "tls_pin")
_KNOWN = frozenset(_REQUIRED) | frozenset(_OPTIONAL)
# §2.1: whole seconds, UTC, a literal Z. [0-9], not \d, which also matches other scripts' digits.
# Only the characters RFC 3986 allows in a URL: urlsplit silently drops tabs and
# newlines (WHATWG rules), so "https://ev\nil.example/" would pass as another host.
# International host names are written in punycode.
_URL_CHARS_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
# The authority once userinfo is refused: a bracketed literal or a name, then an optional
# port. urlsplit is laxer: it takes text around the brackets (`[::1]junk`, `a[::1]`)
# and, in brackets, RFC 3986's IPvFuture (`[v1.x]`) and zone ids (`[fe80::1%25eth0]`).
_AUTHORITY_RE = re.compile(r"(?:\[(?P<literal>[^\[\]]*)\]|(?P<name>[^\[\]:]*))(?::[0-9]*)?")
# §2.4 avatar `path`: a relative path under the site's URL, in plain segments (non-empty;
# "." and ".." are refused apart, a segment may begin with a dot: `.well-known/`).
_AVATAR_PATH_RE = re.compile(r"[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
# §2.4 URL rule: host names that never name a public site (RFC 6761 localhost, RFC
# 6762 .local, RFC 8375 home.arpa, ICANN's .internal, and the common .lan).
_LOCAL_NAMES = ("localhost",)
_LOCAL_SUFFIXES = (".localhost", ".local", ".home.arpa", ".internal", ".lan")
_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
# A clamped X25519 scalar is a multiple of 8, so multiplying any point of order 1, 2, 4
# or 8 by it gives the all-zero output: one multiplication tests every low-order
# encoding (§2.4). Any fixed valid scalar works; this one is arbitrary.
_PROBE_SCALAR = hashlib.sha256(b"o2m low-order probe").digest()


# ---------------------------------------------------------------- errors


class CardError(O2MError, ValueError):
    """This contact card cannot be used."""

    hint: str | None = "ask your friend to send their card again"


class MalformedCardError(CardError):
    """This is not a contact card."""

    hint = "a card is the o2m1:… text or the .well-known/o2m-card.json file, unchanged"


class InvalidCardFieldError(CardError):
    """A field of this contact card is not valid."""

    def __init__(self, field: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"card field {field!r}: {reason}", hint=hint)
        self.field, self.reason = field, reason


class UnsupportedCardVersionError(CardError):
    """This contact card was made by a newer o2m."""

    hint = "update o2m to read it"

    def __init__(self, version: object) -> None:
        super().__init__(f"card version {version!r} is not supported (this o2m reads "
                         f"version {CARD_VERSION})")
        self.version = version


class BadCardSignatureError(CardError):
    """This contact card was changed after it was signed, or is forged."""

    hint = ("do not use it; get the card straight from your friend and compare the "
            "fingerprint with them")


class CertificateError(CardError):
    """The TLS certificate cannot be read."""

    hint = "give the server's certificate as a PEM or DER file"


# ---------------------------------------------------------------- the card


@dataclass(frozen=True)
class Card:
    """A parsed, verified contact card (§2.4). Build one only with :func:`make_card` or
    :func:`parse_card`, which guarantee that every field was checked and signed.

    `raw` is the authority: the exact canonical bytes, signature included, that were
    verified; store and re-publish those, never a re-serialization.
    """

    name: str
    url: str
    sign_pk: bytes
    box_pk: bytes
    tls_pin: bytes | None  # SHA-256 of the server's SubjectPublicKeyInfo, or no pin
    created: str  # RFC 3339 UTC, e.g. "2026-11-24T10:30:00Z" (§2.1)
    extra: Mapping[str, Any] = field(hash=False)  # unknown keys, kept and signed over
    raw: bytes = field(repr=False)
    seq: int = 0  # §2.4: grows with every new card of this signing key; absent = 0
    next: bytes | None = None  # SHA-256 of the next signing key (the pre-rotation commitment)
    feed_pk: bytes | None = None  # Ed25519 key that signs the public feed (§1.4)
    avatar: Avatar | None = None
    bio: str | None = None

    @property
    def created_at(self) -> datetime:
        """`created` as an aware UTC datetime (already checked to parse)."""
        return parse_utc_text(self.created)

    @property
    def sequenced(self) -> bool:
        """Whether the card carries any field of o2m 1.1 (`seq`, `next`, `feed_pk`): a
        card of o2m 1.0 has none, and so no order among its versions."""
        return self.seq > 0 or self.next is not None or self.feed_pk is not None


@dataclass(frozen=True)
class Avatar:
    """A card's picture (§2.4): where it is under the card's URL, its hash and type."""

    path: str
    sha256: str  # lowercase hex
    media_type: str

    def to_json(self) -> dict[str, str]:
        return {"media_type": self.media_type, "path": self.path, "sha256": self.sha256}


def _field_error(name: str, message: str, hint: str | None = None) -> InvalidCardFieldError:
    return InvalidCardFieldError(name, message, hint=hint)


def _string(doc: Mapping[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise _field_error(key, f"must be a string, not {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", list: "an array", dict: "an object"}.get(type(value), "a string")


def _check_name(name: str) -> str:
    """§2.4 / THREATS.md 39: a name is shown next to "verified", so it must look like
    what it is. Refuse (never strip) anything that can reorder or hide characters."""
    if unicodedata.normalize("NFC", name) != name:
        raise _field_error("name", "is not in Unicode NFC form")
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise _field_error("name", f"must be 1 to {MAX_NAME_CHARS} characters, "
                                   f"not {len(name)}")
    for ch in name:
        if REFUSED_IN_NAME.match(ch):
            raise _field_error("name", f"holds the invisible or control character "
                                       f"U+{ord(ch):04X}",
                               hint="names may not hold control, bidi or zero-width "
                                    "characters")
    return name


def _check_url(url: str) -> str:
    """§2.4, THREATS.md 4: the https base of the owner's site, with nothing that could
    smuggle credentials or make two spellings of one site differ."""
    if not url.startswith("https://"):
        raise _field_error("url", "must start with https://")
    if not _URL_CHARS_RE.fullmatch(url):
        raise _field_error("url", "holds a character that is not allowed (spaces, "
                                  "control or non-ASCII characters)",
                           hint="write international host names in punycode (xn--…)")
    if "?" in url or "#" in url:
        raise _field_error("url", "must not have a query or fragment")
    if not url.endswith("/"):
        raise _field_error("url", "must end with /")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a malformed port
    except ValueError:  # e.g. an unclosed "[" or a port that is not a number
        raise _field_error("url", "has a malformed host or port") from None
    if "@" in parts.netloc:
        raise _field_error("url", "must not hold a user name or password")
    authority = _AUTHORITY_RE.fullmatch(parts.netloc)
    if authority is None:
        raise _field_error("url", "has a malformed host or port")
    if authority["literal"] is not None:
        if not _is_ipv6_address(authority["literal"]):
            raise _field_error("url", "has a bracketed host that is not an IPv6 address "
                                      "(without a zone)")
    elif not _HOST_RE.fullmatch(authority["name"].lower()):
        raise _field_error("url", "has no valid host name")
    return url


def _is_ipv6_address(text: str) -> bool:
    """§2.4: what is between a URL's brackets is an IPv6 address: no zone id (`%…`,
    which names an interface of the reader's machine), no IPvFuture (`v1.x`)."""
    if "%" in text:  # ipaddress reads "fe80::1%eth0" as an address with a scope
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def check_card_url(url: str) -> str:
    """A card's `url` as §2.4 wants it (https, no userinfo, query or fragment, ending
    in /, a valid host), for a command to check before it signs one.

    Raises:
        InvalidCardFieldError: naming the rule broken.
    """
    return _check_url(url)


_DEFAULT_PORTS = {"https": 443, "http": 80}


def site_origin(url: str) -> tuple[str, str, int]:
    """The origin of a URL (RFC 6454): scheme, host and port, lowercased, with the
    scheme's default port when none is written, so ``https://a/`` and ``https://A:443/``
    are one origin. It is what one TLS key serves: the rule for pins (one pin per
    origin, §2.4) and for redirects (a fetch stays on its friend's origin).

    Raises:
        ValueError: the URL's port is not a number in range.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def _check_box_pk(box_pk: bytes) -> bytes:
    """§2.4, THREATS.md 3: a low-order X25519 key would make every shared secret with
    it a public constant. libsodium refuses such a result (it raises); an older one
    returns zeros, which we refuse too."""
    try:
        shared = nacl.bindings.crypto_scalarmult(_PROBE_SCALAR, box_pk)
    except nacl.exceptions.CryptoError:
        shared = bytes(32)
    if shared == bytes(32):
        raise _field_error("box_pk", "is a low-order X25519 point (an unusable key)")
    return box_pk


def _key(doc: Mapping[str, Any], key: str, length: int) -> bytes:
    try:
        return b64u_decode(_string(doc, key), length=length)
    except EncodingError as e:
        raise _field_error(key, f"must be b64u of {length} bytes ({e})") from None


def parse_pin(text: str) -> bytes:
    """§2.4, THREATS.md 7: "sha256/" + b64u of exactly 32 bytes; nothing else."""
    if not text.startswith(PIN_PREFIX):
        raise _field_error("tls_pin", f"must start with {PIN_PREFIX!r}")
    try:
        return b64u_decode(text[len(PIN_PREFIX):], length=32)
    except EncodingError as e:
        raise _field_error("tls_pin", f"must be {PIN_PREFIX} and b64u of 32 bytes ({e})",
                           hint="compute it with `o2m` from the server's certificate") from None


def _check_created(text: str) -> str:
    """§2.1: e.g. 2026-11-24T10:30:00Z, a real date (no 31 February, no leap second)."""
    if not TIME_RE.fullmatch(text):
        raise _field_error("created", "must be a UTC time like 2026-11-24T10:30:00Z")
    try:
        parse_utc_text(text)
    except ValueError:
        raise _field_error("created", "is not a real date and time") from None
    return text


def _check_seq(doc: Mapping[str, Any]) -> int:
    """§2.4: an integer in [0, 2^53), absent = 0 (`true` is not 1 here)."""
    if "seq" not in doc:
        return 0
    value = doc["seq"]
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        raise _field_error("seq", "must be an integer from 0 to 2^53 - 1")
    return value


def _parse_digest(doc: Mapping[str, Any], key: str) -> bytes:
    """§2.4 `next`: "sha256/" + b64u of a 32-byte SHA-256, nothing else."""
    text = _string(doc, key)
    if not text.startswith(DIGEST_PREFIX):
        raise _field_error(key, f"must start with {DIGEST_PREFIX!r}")
    try:
        return b64u_decode(text[len(DIGEST_PREFIX):], length=32)
    except EncodingError as e:
        raise _field_error(key, f"must be {DIGEST_PREFIX} and b64u of 32 bytes ({e})") from None


def _check_bio(bio: str) -> str:
    """§2.4: 1 to 280 code points in NFC, the characters a name may hold, and line
    breaks (U+000A)."""
    if unicodedata.normalize("NFC", bio) != bio:
        raise _field_error("bio", "is not in Unicode NFC form")
    if not 1 <= len(bio) <= MAX_BIO_CHARS:
        raise _field_error("bio", f"must be 1 to {MAX_BIO_CHARS} characters, not {len(bio)}")
    for ch in bio:
        if ch != "\n" and REFUSED_IN_NAME.match(ch):
            raise _field_error("bio", f"holds the invisible or control character "
                                      f"U+{ord(ch):04X}")
    return bio


def _parse_avatar(value: object) -> Avatar:
    """§2.4: exactly {"media_type", "path", "sha256"}; the path stays under the card's
    URL (no scheme, no leading /, no . or .. segment, no query), the type is one of
    three raster formats (never SVG: it can hold script)."""
    if not isinstance(value, dict) or set(value) != {"media_type", "path", "sha256"}:
        raise _field_error("avatar", 'must be {"media_type", "path", "sha256"}')
    path, digest, media_type = value["path"], value["sha256"], value["media_type"]
    if not (isinstance(path, str) and len(path) <= MAX_AVATAR_PATH_CHARS
            and _AVATAR_PATH_RE.fullmatch(path)
            and not any(part in (".", "..") for part in path.split("/"))):
        raise _field_error("avatar", "path must be a relative path under the site's URL")
    if not (isinstance(digest, str) and _HEX64_RE.fullmatch(digest)):
        raise _field_error("avatar", "sha256 must be 64 lowercase hex digits")
    if media_type not in AVATAR_TYPES:
        raise _field_error("avatar", f"media_type must be one of {', '.join(sorted(AVATAR_TYPES))}")
    return Avatar(path=path, sha256=digest, media_type=media_type)


def key_commitment(sign_pk: bytes) -> bytes:
    """The commitment a card makes to its next signing key (§2.4 `next`, §2.5): the
    SHA-256 of that key's 32 public bytes."""
    return hashlib.sha256(bytes(sign_pk)).digest()


def commitment_text(digest: bytes) -> str:
    """A commitment as cards and rotation statements write it: "sha256/" + b64u."""
    return DIGEST_PREFIX + b64u_encode(bytes(digest))


# ---------------------------------------------------------------- reading


def parse_card(data: bytes) -> Card:
    """Read a card from untrusted bytes, checking everything §2.4 requires.

    Order matters: size cap first (nothing big is decoded), then strict JSON, type and
    version (a newer card is reported as such, not as broken), canonical form (so the
    signed bytes are the stored bytes), every field, and the signature last.

    Args:
        data: the card's canonical JSON bytes, exactly as published.

    Returns:
        The verified card; its `raw` is `data`.

    Raises:
        MalformedCardError: over 4 KiB, not strict JSON, not an object, or not canonical.
        UnsupportedCardVersionError: a card of another version.
        InvalidCardFieldError: a missing field or one that breaks its rule.
        BadCardSignatureError: the signature does not verify.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedCardError(f"a card is bytes, not {type(data).__name__}")
    data = bytes(data)
    try:
        doc = parse_json(data, max_bytes=MAX_CARD_BYTES)  # §2.1: cap before parsing
    except EncodingError as e:
        raise MalformedCardError(f"not a card: {e}") from None
    if not isinstance(doc, dict):
        raise MalformedCardError(f"not a card: a card is a JSON object, not "
                                 f"{_json_type(doc)}")
    if doc.get("type") != CARD_TYPE:
        raise MalformedCardError(f"not a card: 'type' is not {CARD_TYPE!r}")
    if "v" not in doc:
        raise _field_error("v", "is missing")
    version = doc["v"]
    if type(version) is not int:  # bool is an int in Python; true is not 1 here
        raise _field_error("v", "must be an integer")
    if version != CARD_VERSION:  # §2.4: "unsupported version", not an error of the card
        raise UnsupportedCardVersionError(version)
    try:
        canonical = canonical_json(doc)
    except (EncodingError, UnicodeEncodeError):  # e.g. a lone surrogate from "\ud800"
        raise MalformedCardError("not a card: holds text that is not valid Unicode") from None
    if canonical != data:
        raise MalformedCardError("not a card: not in canonical JSON form (§2.1)",
                                 hint="use the card exactly as o2m wrote it; do not "
                                      "reformat it")
    for key in _REQUIRED:
        if key not in doc:
            raise _field_error(key, "is missing")
    name = _check_name(_string(doc, "name"))
    url = _check_url(_string(doc, "url"))
    sign_pk = _key(doc, "sign_pk", 32)
    box_pk = _check_box_pk(_key(doc, "box_pk", 32))
    tls_pin = parse_pin(_string(doc, "tls_pin")) if "tls_pin" in doc else None
    created = _check_created(_string(doc, "created"))
    seq = _check_seq(doc)
    next_digest = _parse_digest(doc, "next") if "next" in doc else None
    feed_pk = _key(doc, "feed_pk", 32) if "feed_pk" in doc else None
    avatar = _parse_avatar(doc["avatar"]) if "avatar" in doc else None
    bio = _check_bio(_string(doc, "bio")) if "bio" in doc else None
    sig = _key(doc, "sig", 64)
    # §2.4: Ed25519 over the context and the canonical card without "sig". The doc is
    # canonical, so this is the stored bytes minus the sig member, re-joined.
    unsigned = {k: v for k, v in doc.items() if k != "sig"}
    try:
        nacl.signing.VerifyKey(sign_pk).verify(SIG_CONTEXT + canonical_json(unsigned), sig)
    except (nacl.exceptions.CryptoError, ValueError):  # BadSignatureError, small-order pk
        raise BadCardSignatureError("the card's signature does not verify") from None
    extra = {k: v for k, v in doc.items() if k not in _KNOWN}
    return Card(name=name, url=url, sign_pk=sign_pk, box_pk=box_pk, tls_pin=tls_pin,
                created=created, extra=MappingProxyType(extra), raw=data, seq=seq,
                next=next_digest, feed_pk=feed_pk, avatar=avatar, bio=bio)


def card_to_text(card: Card) -> str:
    """The text form (§2.4): "o2m1:" + b64u of the card's exact bytes, for chat and QR."""
    return TEXT_PREFIX + b64u_encode(card.raw)


def card_from_text(text: str) -> Card:
    """Read the text form. Whitespace anywhere is dropped (mail and chat wrap long
    lines; b64u has none); the length is capped before decoding, at MAX_TEXT_CHARS
    without the whitespace (§2.4) and at MAX_WRAPPED_TEXT_CHARS as given.

    Raises:
        MalformedCardError: not an o2m1: text, too long, or bad b64u.
        CardError: anything :func:`parse_card` refuses.
    """
    if not isinstance(text, str):
        raise MalformedCardError(f"a card text is a string, not {type(text).__name__}")
    if len(text) > MAX_WRAPPED_TEXT_CHARS:  # cheap to check first, before any copy
        raise MalformedCardError("not a card: the text is too long")
    text = "".join(text.split())
    if not text.startswith(TEXT_PREFIX):
        raise MalformedCardError(f"not a card: card text starts with {TEXT_PREFIX!r}",
                                 hint="copy the whole o2m1:… text")
    if len(text) > MAX_TEXT_CHARS:
        raise MalformedCardError("not a card: the text is too long")
    try:
        data = b64u_decode(text[len(TEXT_PREFIX):])
    except EncodingError as e:
        raise MalformedCardError(f"not a card: {e} after {TEXT_PREFIX!r}",
                                 hint="copy the whole o2m1:… text, unchanged") from None
    return parse_card(data)


def looks_like_card_text_without_prefix(text: str) -> bool:
    """Base64url of a JSON object, long as a card: a card's text without "o2m1:" (for
    the message that says so)."""
    compact = "".join(text.split())
    return len(compact) > 100 and re.fullmatch(r"eyJ[A-Za-z0-9_-]+", compact) is not None


def text_cut_short(text: str) -> bool:
    """An o2m1: text whose JSON begins but never closes: its end was not copied (for the
    message that says so)."""
    body = "".join(text.split())[len(TEXT_PREFIX):]
    try:
        data = base64.urlsafe_b64decode(body[:len(body) // 4 * 4])  # its whole quads
    except (binascii.Error, ValueError):
        return False
    return data.startswith(b"{") and not data.rstrip().endswith(b"}")


def card_from_any(value: str | bytes) -> Card:
    """Read a card given in any of its shapes: a card file's bytes, or the o2m1: text
    (as str or bytes, e.g. a file holding the pasted text), whose whitespace may be
    anywhere, its prefix included. Whitespace around a file's JSON is ignored (editors
    add a final newline); the JSON itself must be exact.

    Raises:
        CardError: whatever the shape, if it is not a valid card.
    """
    if isinstance(value, str):
        if len(value) > MAX_WRAPPED_TEXT_CHARS:
            raise MalformedCardError("not a card: the text is too long")
        if "".join(value.split()).startswith(TEXT_PREFIX):
            return card_from_text(value)
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedCardError("not a card: not valid Unicode") from None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MalformedCardError(f"a card is bytes or text, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > MAX_WRAPPED_TEXT_CHARS:  # a card file is at most 4 KiB, a text as above
        raise MalformedCardError("not a card: the text is too long")
    if b"".join(value.split()).startswith(TEXT_PREFIX.encode()):
        try:
            return card_from_text(value.decode("ascii"))
        except UnicodeDecodeError:
            raise MalformedCardError("not a card: the o2m1: text is not ASCII") from None
    return parse_card(value.strip(b" \t\r\n"))


# ---------------------------------------------------------------- writing


def make_card(signing_key: nacl.signing.SigningKey, *, name: str, url: str, box_pk: bytes,
              tls_pin: bytes | None, created: datetime,
              extra: Mapping[str, Any] | None = None, seq: int | None = None,
              next_digest: bytes | None = None, feed_pk: bytes | None = None,
              avatar: Avatar | None = None, bio: str | None = None) -> Card:
    """Make and sign our own card (§2.4).

    The result is checked by :func:`parse_card` itself, so a card we make is always
    one every reader accepts: one set of rules, not two that drift apart.

    Args:
        signing_key: the identity's Ed25519 key; `sign_pk` is its public half.
        name: shown to friends; normalized to NFC here, then checked.
        url: the https base URL of our site, ending in "/".
        box_pk: our X25519 public key (32 bytes).
        tls_pin: SHA-256 of our server's SubjectPublicKeyInfo
            (:func:`tls_pin_from_certificate`), or None for no pin.
        created: an aware datetime; written in UTC, whole seconds (§2.1).
        extra: further keys to carry and sign (for later versions and tests).
        seq: the card's sequence number, above every card made before with this
            signing key; None leaves it out (a card as o2m 1.0 made them).
        next_digest: the commitment to the next signing key, `key_commitment` of its
            public half (`next`, §2.5).
        feed_pk: the public key of the site's public-feed signing key (§1.4).
        avatar, bio: the optional picture and short text shown with the name.

    Raises:
        InvalidCardFieldError: a field breaks its rule, or `extra` reuses a known key.
        MalformedCardError: the card would be over 4 KiB, or `extra` is not canonical JSON.
        ValueError: `created` is a naive datetime (a bug of the caller).
    """
    if created.tzinfo is None or created.utcoffset() is None:
        raise ValueError("created must be an aware datetime")
    stamp = utc_text(created)
    if tls_pin is not None and len(tls_pin) != 32:
        raise _field_error("tls_pin", f"must be 32 bytes (a SHA-256), not {len(tls_pin)}",
                           hint="compute it with tls_pin_from_certificate()")
    doc: dict[str, Any] = dict(extra or {})
    clash = sorted(doc.keys() & _KNOWN)
    if clash:
        raise _field_error(clash[0], "is set by o2m; it cannot be an extra field",
                           hint="give extra fields names o2m does not use")
    doc.update({
        "box_pk": b64u_encode(bytes(box_pk)),
        "created": stamp,
        "name": unicodedata.normalize("NFC", name),
        "sign_pk": b64u_encode(bytes(signing_key.verify_key)),
        "type": CARD_TYPE,
        "url": url,
        "v": CARD_VERSION,
    })
    if tls_pin is not None:
        doc["tls_pin"] = PIN_PREFIX + b64u_encode(bytes(tls_pin))
    if seq is not None:
        doc["seq"] = seq
    if next_digest is not None:
        doc["next"] = commitment_text(next_digest)
    if feed_pk is not None:
        doc["feed_pk"] = b64u_encode(bytes(feed_pk))
    if avatar is not None:
        doc["avatar"] = avatar.to_json()
    if bio is not None:
        doc["bio"] = unicodedata.normalize("NFC", bio)
    try:
        unsigned = canonical_json(doc)
    except (EncodingError, UnicodeEncodeError) as e:
        raise MalformedCardError(f"cannot write the card: {e}",
                                 hint="extra fields must be canonical JSON (§2.1)") from None
    doc["sig"] = b64u_encode(signing_key.sign(SIG_CONTEXT + unsigned).signature)
    try:
        return parse_card(canonical_json(doc))
    except InvalidCardFieldError as e:  # our own input: the friend's-card hint is wrong
        raise InvalidCardFieldError(e.field, e.reason,
                                    hint=f"fix the {e.field} given for your card") from None
    except MalformedCardError as e:  # over 4 KiB
        raise MalformedCardError(f"cannot write the card: {e}",
                                 hint="make the extra fields shorter") from None


def tls_pin_from_certificate(cert_pem_or_der: bytes) -> bytes:
    """The pin of a server certificate (§2.4): SHA-256 of its SubjectPublicKeyInfo in
    DER, as HPKP did. It pins the key, not the certificate, so it survives renewals
    that keep the key.

    Raises:
        CertificateError: the bytes are not one PEM or DER X.509 certificate.
    """
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cert_pem_or_der)
        else:
            cert = x509.load_der_x509_certificate(cert_pem_or_der)
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise CertificateError(f"not an X.509 certificate: {e}") from None
    return hashlib.sha256(spki).digest()


# ---------------------------------------------------------------- comparing


def same_identity(a: Card, b: Card) -> bool:
    """True when both cards carry the same keys (§2.2): the same person, whatever the
    name or URL says now."""
    return a.sign_pk == b.sign_pk and a.box_pk == b.box_pk


def key_changed(old: Card, new: Card) -> bool:
    """True when `new` claims to be `old` (same URL or same name) with other keys.

    THREATS.md 6: the friend store must then warn and ask, never overwrite silently —
    it may be a lost key, or someone who took over the name or the host.
    """
    return (old.url == new.url or old.name == new.name) and not same_identity(old, new)


# ---------------------------------------------------------------- updates (§2.4)


def is_local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address of the reader's own machine or network, not of a public site (§2.4
    URL rule, §3.5): loopback, private, link-local, unique-local, shared (CGNAT),
    unspecified, multicast or reserved; an IPv4-mapped IPv6 address as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_unspecified or address.is_multicast or address.is_reserved
            or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_SPACE))


def host_is_local(host: str) -> bool:
    """Whether a URL's host names the reader's own machine or network (§2.4): an IP
    literal for which `is_local_address` holds, `localhost`, or a name under a suffix
    that is never public (.localhost, .local, .home.arpa, .internal, .lan). Any other
    name is public."""
    host = host.lower().strip("[]").rstrip(".")
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        return is_local_address(ipaddress.ip_address(host))
    except ValueError:
        return False


def url_is_local(url: str) -> bool:
    """`host_is_local` of a URL's host."""
    return host_is_local(urlsplit(url).hostname or "")


def url_move_allowed(old_url: str, new_url: str) -> bool:
    """The URL rule of §2.4: a site whose card URL was public may not move to a local
    one (a friend's site may not steer your fetcher into your own network); a local
    site (tests, the demo, a LAN) may move anywhere. Both are https already."""
    return url_is_local(old_url) or not url_is_local(new_url)


@dataclass(frozen=True)
class CardUpdate:
    """What a reader does with a card fetched for a friend whose card it holds (§2.4):

    - "unchanged": the same bytes;
    - "adopt": the same signing key, a higher `seq`, the same `next` (or a first one),
      and a URL the rule allows: taken without asking; `changes` names what differs;
    - "key change": another signing key: only a verified rotation chain (§2.5) adopts it;
    - refusals, nothing stored changes: "replay" (a lower `seq`), "equivocation" (the
      same `seq`, other bytes), "unsequenced" (both cards of o2m 1.0: no order),
      "commitment" (`next` changed outside a rotation), "address" (the URL rule).
    """

    kind: str
    detail: str = ""
    changes: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.kind not in ("unchanged", "adopt", "key change")


_COMPARED = ("url", "tls_pin", "name", "box_pk", "feed_pk", "avatar", "bio")


def changed_fields(old: Card, new: Card) -> tuple[str, ...]:
    """The fields a reader shows as changed between two cards of one person."""
    return tuple(f for f in _COMPARED if getattr(old, f) != getattr(new, f))


def decide_card_update(stored: Card, fetched: Card) -> CardUpdate:
    """The card update rule of §2.4, for two verified cards. Pure.

    Args:
        stored: the friend's card the reader holds.
        fetched: the card their site publishes now.

    Returns:
        The decision; for "key change" the caller follows the rotation chain
        (`rotation.verify_rotation`), which applies the URL rule too.
    """
    if fetched.raw == stored.raw:
        return CardUpdate("unchanged")
    if fetched.sign_pk != stored.sign_pk:
        return CardUpdate("key change", "their card is signed by another key")
    if fetched.seq < stored.seq:
        return CardUpdate("replay", f"an older card (seq {fetched.seq} < {stored.seq}) "
                                    "was served: kept the newer one")
    if fetched.seq == stored.seq:
        if not stored.sequenced and not fetched.sequenced:
            return CardUpdate("unsequenced", "their card changed, but was made by an older "
                                             "o2m (no sequence number): ask them for it")
        return CardUpdate("equivocation", f"two different cards with the same seq "
                                          f"{fetched.seq}: kept the one you had")
    if stored.next is not None and fetched.next != stored.next:
        return CardUpdate("commitment", "their new card changes its next-key commitment "
                                        "without a key rotation")
    if not url_move_allowed(stored.url, fetched.url):
        return CardUpdate("address", f"their card moves from a public address to the "
                                     f"local {fetched.url}: refused")
    return CardUpdate("adopt", changes=changed_fields(stored, fetched))
