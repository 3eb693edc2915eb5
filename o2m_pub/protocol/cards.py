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
# The longest text form of a card within the cap: prefix + b64u of 4096 bytes.
MAX_TEXT_CHARS = len(TEXT_PREFIX) + -(-MAX_CARD_BYTES * 4 // 3)
MAX_NAME_CHARS = 64
PIN_PREFIX = "sha256/"
_REQUIRED = ("box_pk", "created", "name", "sig", "sign_pk", "type", "url", "v")
_KNOWN = frozenset(_REQUIRED) | {"tls_pin"}
# §2.1: whole seconds, UTC, a literal Z. [0-9], not \d, which also matches other scripts' digits.
# Only the characters RFC 3986 allows in a URL: urlsplit silently drops tabs and
# newlines (WHATWG rules), so "https://ev\nil.example/" would pass as another host.
# International host names are written in punycode.
_URL_CHARS_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
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

    @property
    def created_at(self) -> datetime:
        """`created` as an aware UTC datetime (already checked to parse)."""
        return parse_utc_text(self.created)


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
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal; urlsplit has dropped its brackets
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _field_error("url", "has a malformed IPv6 host") from None
    elif not _HOST_RE.fullmatch(host):
        raise _field_error("url", "has no valid host name")
    return url


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


def _parse_pin(text: str) -> bytes:
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
    tls_pin = _parse_pin(_string(doc, "tls_pin")) if "tls_pin" in doc else None
    created = _check_created(_string(doc, "created"))
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
                created=created, extra=MappingProxyType(extra), raw=data)


def card_to_text(card: Card) -> str:
    """The text form (§2.4): "o2m1:" + b64u of the card's exact bytes, for chat and QR."""
    return TEXT_PREFIX + b64u_encode(card.raw)


def card_from_text(text: str) -> Card:
    """Read the text form. Whitespace anywhere is dropped (mail and chat wrap long
    lines; b64u has none), the length is capped before decoding.

    Raises:
        MalformedCardError: not an o2m1: text, too long, or bad b64u.
        CardError: anything :func:`parse_card` refuses.
    """
    if not isinstance(text, str):
        raise MalformedCardError(f"a card text is a string, not {type(text).__name__}")
    if len(text) > 2 * MAX_TEXT_CHARS:  # generous for line breaks, cheap to check first
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


def card_from_any(value: str | bytes) -> Card:
    """Read a card given in any of its shapes: a card file's bytes, or the o2m1: text
    (as str or bytes, e.g. a file holding the pasted text). Whitespace around a file's
    JSON is ignored (editors add a final newline); the JSON itself must be exact.

    Raises:
        CardError: whatever the shape, if it is not a valid card.
    """
    if isinstance(value, str):
        if len(value) > 2 * MAX_TEXT_CHARS:
            raise MalformedCardError("not a card: too long")
        if value.strip().startswith(TEXT_PREFIX):
            return card_from_text(value)
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedCardError("not a card: not valid Unicode") from None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MalformedCardError(f"a card is bytes or text, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > 2 * MAX_TEXT_CHARS:
        raise MalformedCardError("not a card: too long")
    value = value.strip(b" \t\r\n")
    if value.startswith(TEXT_PREFIX.encode()):
        try:
            return card_from_text(value.decode("ascii"))
        except UnicodeDecodeError:
            raise MalformedCardError("not a card: the o2m1: text is not ASCII") from None
    return parse_card(value)


# ---------------------------------------------------------------- writing


def make_card(signing_key: nacl.signing.SigningKey, *, name: str, url: str, box_pk: bytes,
              tls_pin: bytes | None, created: datetime,
              extra: Mapping[str, Any] | None = None) -> Card:
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
