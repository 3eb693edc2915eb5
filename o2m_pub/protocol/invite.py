"""Invitations (PROTOCOL.md §2.7): befriending in one step.

The owner hands out an invitation: their signed card and a fresh 32-byte secret, with an
expiry, as `o2m1i:` text (or a QR code) over a channel they chose. Whoever holds it adds
the owner and answers with an acceptance: their own card, encrypted with a key derived
from the secret and addressed by an id derived from it, so that only a holder of the
secret can write one and only the owner (who kept the secret) can read it. The owner's
server takes acceptances at its inbox (§5); a site on a static host gets the same bytes
back as `o2m1r:` reply text. The secret, sent over the channel the owner chose, stands in
for the fingerprint check on both sides.

Pure functions: secrets, nonces and times are passed in; no files, no network. Every
refusal is an `InvitationError`; no other exception escapes the readers, whatever the
input.

    InvitationError                    (O2MError, ValueError) this invitation or reply cannot be used
    ├── MalformedInvitationError       not an invitation or reply: size, JSON, fields, card
    ├── ExpiredInvitationError         the invitation's time is over
    └── BadAcceptanceError             a reply that does not open with the invitation's secret
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.hash
import nacl.secret
from nacl.encoding import RawEncoder

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_json,
    parse_utc_text,
    utc_text,
)
from o2m_pub.protocol.cards import MAX_WRAPPED_TEXT_CHARS, Card, CardError, parse_card
from o2m_pub.protocol.feeds import pad, padded_size, unpad

INVITE_TYPE = "o2m-invite"
ACCEPT_TYPE = "o2m-accept"
VERSION = 1
INVITE_PREFIX = "o2m1i:"
REPLY_PREFIX = "o2m1r:"
ACCEPT_MAGIC = b"O2MACPT1"  # §2.7; the inbox (§5) tells kinds apart by these 8 bytes
SECRET_BYTES = 32
INVITE_ID_BYTES = 16
BOX_KEY_BYTES = 32
NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE  # 24
MAC_BYTES = nacl.secret.SecretBox.MACBYTES  # 16
MAX_INVITATION_BYTES = 8192  # §2.7: the canonical invitation document
MAX_ACCEPTANCE_BYTES = 8192  # §2.7 and §5: the whole acceptance, magic included
_HEADER_BYTES = len(ACCEPT_MAGIC) + INVITE_ID_BYTES + NONCE_BYTES
MIN_ACCEPTANCE_BYTES = _HEADER_BYTES + MAC_BYTES + padded_size(0)  # 576
# §2.7: BLAKE2b personalisations, 16 bytes each (zero-padded).
PERSON_INVITE_ID = b"o2m1 invite id\x00\x00"
PERSON_BOX_KEY = b"o2m1 invite box\x00"
_INVITE_KEYS = frozenset({"card", "expires", "secret", "type", "v"})  # "name" is optional
_ACCEPT_KEYS = frozenset({"card", "invite_id", "type", "v"})
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)  # a friend name (config rule)


def _max_text_chars(max_bytes: int, prefix: str) -> int:
    """§2.7: a text form's cap, counted after its whitespace is removed."""
    return len(prefix) + -(-max_bytes * 4 // 3)


# ---------------------------------------------------------------- errors


class InvitationError(O2MError, ValueError):
    """This invitation cannot be used."""

    hint: str | None = "ask for a new invitation (`o2m friend invite`)"


class MalformedInvitationError(InvitationError):
    """This is not an o2m invitation or reply."""

    hint = "copy the whole o2m1i:… (or o2m1r:…) text, unchanged"


class ExpiredInvitationError(InvitationError):
    """This invitation has expired."""


class BadAcceptanceError(InvitationError):
    """This reply does not open with its invitation's secret: forged or altered."""

    hint = "ask your friend to run `o2m friend accept` with your invitation again"


# ---------------------------------------------------------------- derivations


def invite_id(secret: bytes) -> bytes:
    """The invitation's public name (§2.7): keyed BLAKE2b of nothing, 16 bytes. It lets
    the owner find the secret an acceptance was made with, and reveals nothing of it."""
    return nacl.hash.blake2b(b"", digest_size=INVITE_ID_BYTES, key=_secret(secret),
                             person=PERSON_INVITE_ID, encoder=RawEncoder)


def box_key(secret: bytes) -> bytes:
    """The key that seals the acceptance (§2.7): keyed BLAKE2b of nothing, 32 bytes, a
    separate derivation from `invite_id`."""
    return nacl.hash.blake2b(b"", digest_size=BOX_KEY_BYTES, key=_secret(secret),
                             person=PERSON_BOX_KEY, encoder=RawEncoder)


def _secret(secret: bytes) -> bytes:
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_BYTES:
        raise ValueError(f"an invitation secret is {SECRET_BYTES} bytes")
    return bytes(secret)


# ---------------------------------------------------------------- the invitation


@dataclass(frozen=True)
class Invitation:
    """A parsed invitation (§2.7): the owner's verified card, the secret, the expiry
    and, when the owner gave one, the name they will call the invitee. `raw` is the
    canonical document."""

    card: Card
    secret: bytes
    expires: str  # §2.1 time
    name: str | None
    raw: bytes

    @property
    def invite_id(self) -> bytes:
        return invite_id(self.secret)

    @property
    def expires_at(self) -> dt.datetime:
        return parse_utc_text(self.expires)


def make_invitation(card: Card, *, secret: bytes, expires: dt.datetime,
                    name: str | None = None) -> Invitation:
    """The owner's invitation (§2.7), checked by `parse_invitation` itself.

    Args:
        card: the owner's own card, as published.
        secret: 32 fresh random bytes (the caller draws them; this core draws nothing).
        expires: an aware datetime; written in UTC, whole seconds.
        name: the friend name the owner will give the invitee, if chosen already.

    Raises:
        MalformedInvitationError: `name` is not a friend name, or the result is over
            the cap (a card near its own 4 KiB cap still fits).
        ValueError: a secret that is not 32 bytes, or a naive `expires`.
    """
    doc: dict[str, Any] = {"card": parse_json(card.raw, max_bytes=len(card.raw)),
                           "expires": utc_text(expires), "secret": b64u_encode(_secret(secret)),
                           "type": INVITE_TYPE, "v": VERSION}
    if name is not None:
        doc["name"] = name
    return parse_invitation(canonical_json(doc))


def parse_invitation(data: bytes) -> Invitation:
    """Read an invitation document from untrusted bytes (§2.7), in the order the spec
    gives: the cap, strict JSON, type and version, canonical form, the fields, and the
    card with its signature (§2.4). Expiry is checked apart (`check_not_expired`), with
    the reader's own clock.

    Raises:
        MalformedInvitationError: anything but such a document (a card refused by §2.4
            says why).
    """
    doc = _document(data, MAX_INVITATION_BYTES, INVITE_TYPE, "invitation")
    missing = sorted(_INVITE_KEYS - set(doc))
    if missing:
        raise MalformedInvitationError(f"not an invitation: {missing[0]!r} is missing")
    try:
        secret = b64u_decode(doc["secret"], length=SECRET_BYTES)
    except EncodingError:
        raise MalformedInvitationError("not an invitation: 'secret' is not b64u of "
                                       f"{SECRET_BYTES} bytes") from None
    expires = _time(doc["expires"], "expires")
    name = doc.get("name")
    if name is not None and not (isinstance(name, str) and _NAME_RE.fullmatch(name)):
        raise MalformedInvitationError("not an invitation: 'name' is not a friend name")
    card = _card(doc["card"], "invitation")
    return Invitation(card=card, secret=secret, expires=expires, name=name, raw=bytes(data))


def check_not_expired(invitation: Invitation, now: dt.datetime) -> None:
    """Refuse an invitation whose time is over (§2.7: `expires` <= now).

    Raises:
        ExpiredInvitationError: it expired; the message says when (UTC).
    """
    if invitation.expires_at <= now:
        raise ExpiredInvitationError(f"this invitation from {invitation.card.name} expired "
                                     f"on {invitation.expires}",
                                     hint="ask them for a new one (`o2m friend invite`)")


def invitation_to_text(invitation: Invitation) -> str:
    """The text form (§2.7): "o2m1i:" + b64u of the document, for chat and QR codes."""
    return INVITE_PREFIX + b64u_encode(invitation.raw)


def invitation_from_text(text: str) -> Invitation:
    """Read the text form; whitespace anywhere is dropped (chat clients wrap lines); the
    length is capped before decoding, without the whitespace (§2.7) and as given
    (`MAX_WRAPPED_TEXT_CHARS`, §2.4).

    Raises:
        MalformedInvitationError: not o2m1i: text, too long, bad b64u, or a document
            `parse_invitation` refuses.
    """
    return parse_invitation(_from_text(text, INVITE_PREFIX, MAX_INVITATION_BYTES, "invitation"))


# ---------------------------------------------------------------- the acceptance


@dataclass(frozen=True)
class Acceptance:
    """An opened acceptance: which invitation it answers, and the invitee's card."""

    invite_id: bytes
    card: Card


def seal_acceptance(secret: bytes, card: Card, *, nonce: bytes) -> bytes:
    """The invitee's answer (§2.7): `ACCEPT_MAGIC || invite_id || nonce ||
    secretbox(pad(canonical {"card", "invite_id", "type", "v"}), nonce, box_key)`.

    Args:
        secret: the invitation's secret.
        card: the invitee's own card.
        nonce: 24 fresh random bytes.

    Raises:
        ValueError: a secret or nonce of the wrong length (a bug of the caller).
    """
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
    ident = invite_id(secret)
    body = canonical_json({"card": parse_json(card.raw, max_bytes=len(card.raw)),
                           "invite_id": b64u_encode(ident), "type": ACCEPT_TYPE, "v": VERSION})
    sealed = nacl.secret.SecretBox(box_key(secret)).encrypt(pad(body), bytes(nonce))
    data = ACCEPT_MAGIC + ident + bytes(sealed)
    if len(data) > MAX_ACCEPTANCE_BYTES:  # a card is at most 4 KiB: cannot happen
        raise ValueError("the acceptance would be over its cap")
    return data


def acceptance_well_formed(data: bytes) -> bool:
    """Whether `data` has the shape of an acceptance (§5: what earns a 202): the cap,
    the magic, and a ciphertext whose length is a padding bucket (§3.2) plus the MAC.
    Structure only; it needs no secret and says nothing of whether it opens."""
    if not MIN_ACCEPTANCE_BYTES <= len(data) <= MAX_ACCEPTANCE_BYTES:
        return False
    padded = len(data) - _HEADER_BYTES - MAC_BYTES
    return data.startswith(ACCEPT_MAGIC) and padded_size(padded) == padded


def acceptance_invite_id(data: bytes) -> bytes:
    """The invitation an acceptance claims to answer (bytes 8..24), read before any
    crypto so the owner can look up the secret.

    Raises:
        MalformedInvitationError: `data` is not shaped as an acceptance.
    """
    if not acceptance_well_formed(data):
        raise MalformedInvitationError("not an o2m reply to an invitation")
    return bytes(data[len(ACCEPT_MAGIC):len(ACCEPT_MAGIC) + INVITE_ID_BYTES])


def open_acceptance(data: bytes, secret: bytes) -> Acceptance:
    """Open an acceptance with the secret of the invitation it names (§2.7, the owner's
    checks in order): shape, the id derived from this secret, the secretbox, the
    padding, canonical JSON, type and version, the `invite_id` inside equal to the one
    outside, and the invitee's card with its signature (§2.4).

    Raises:
        MalformedInvitationError: not shaped as an acceptance, or it opens but is not
            a well-formed answer (a card refused by §2.4 says why).
        BadAcceptanceError: made with another secret, or altered.
    """
    ident = acceptance_invite_id(data)
    if ident != invite_id(secret):
        raise BadAcceptanceError("this reply is for another invitation")
    nonce = data[_HEADER_BYTES - NONCE_BYTES:_HEADER_BYTES]
    try:
        padded = nacl.secret.SecretBox(box_key(secret)).decrypt(data[_HEADER_BYTES:], nonce)
        body = unpad(padded)
    except (nacl.exceptions.CryptoError, ValueError):  # unpad's FeedFormatError too
        raise BadAcceptanceError() from None
    doc = _document(body, MAX_ACCEPTANCE_BYTES, ACCEPT_TYPE, "reply")
    if not _ACCEPT_KEYS <= set(doc):
        raise MalformedInvitationError("not a reply: a field is missing")
    if doc["invite_id"] != b64u_encode(ident):
        raise BadAcceptanceError("the reply names another invitation inside")
    return Acceptance(invite_id=ident, card=_card(doc["card"], "reply"))


def reply_to_text(acceptance: bytes) -> str:
    """The reply text form (§2.7): "o2m1r:" + b64u of the acceptance bytes, for an
    owner whose site has no inbox (a static host)."""
    return REPLY_PREFIX + b64u_encode(acceptance)


def reply_from_text(text: str) -> bytes:
    """The acceptance bytes of a reply text (whitespace dropped, length capped first).

    Raises:
        MalformedInvitationError: not o2m1r: text, too long, or not an acceptance.
    """
    data = _from_text(text, REPLY_PREFIX, MAX_ACCEPTANCE_BYTES, "reply")
    acceptance_invite_id(data)
    return data


# ---------------------------------------------------------------- shared readers


def _a(what: str) -> str:
    """"an invitation", "a reply"."""
    return ("an " if what[0] in "aeiou" else "a ") + what


def _from_text(text: str, prefix: str, max_bytes: int, what: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedInvitationError(f"{_a(what)} text is a string")
    if len(text) > MAX_WRAPPED_TEXT_CHARS:  # §2.4's reader limit, before any copy
        raise MalformedInvitationError(f"not {_a(what)}: the text is too long")
    text = "".join(text.split())
    limit = _max_text_chars(max_bytes, prefix)
    if not text.startswith(prefix):
        raise MalformedInvitationError(f"not {_a(what)}: it starts with {prefix!r}")
    if len(text) > limit:
        raise MalformedInvitationError(f"not {_a(what)}: the text is too long")
    try:
        return b64u_decode(text[len(prefix):])
    except EncodingError as e:
        raise MalformedInvitationError(f"not {_a(what)}: {e} after {prefix!r}") from None


def _document(data: bytes, cap: int, kind: str, what: str) -> dict[str, Any]:
    """A canonical JSON object of type `kind` and version 1, within `cap` bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedInvitationError(f"{_a(what)} is bytes")
    try:
        doc = parse_json(bytes(data), max_bytes=cap)
    except EncodingError as e:
        raise MalformedInvitationError(f"not {_a(what)}: {e}") from None
    if not isinstance(doc, dict) or doc.get("type") != kind:
        raise MalformedInvitationError(f"not {_a(what)}: 'type' is not {kind!r}")
    version = doc.get("v")
    if type(version) is not int or version != VERSION:
        raise MalformedInvitationError(f"{what} version {version!r} is not supported "
                                       f"(this o2m reads version {VERSION})",
                                       hint="update o2m to read it")
    try:
        canonical = canonical_json(doc)
    except (EncodingError, UnicodeEncodeError):
        raise MalformedInvitationError(f"not {_a(what)}: holds text that is not valid "
                                       "Unicode") from None
    if canonical != bytes(data):
        raise MalformedInvitationError(f"not {_a(what)}: not in canonical JSON form (§2.1)")
    return doc


def _time(value: Any, key: str) -> str:
    try:
        parse_utc_text(value)
    except ValueError:
        raise MalformedInvitationError(f"not an invitation: {key!r} is not a UTC time "
                                       "like 2026-11-24T10:30:00Z") from None
    return value


def _card(value: Any, what: str) -> Card:
    """The card object inside a document: its canonical bytes are the card's own (the
    document is canonical), verified by §2.4."""
    if not isinstance(value, dict):
        raise MalformedInvitationError(f"not {_a(what)}: 'card' is not a card")
    try:
        return parse_card(canonical_json(value))
    except CardError as e:
        raise MalformedInvitationError(f"the card in this {what} cannot be used: {e}",
                                       hint=e.hint) from None


__all__ = [
    "ACCEPT_MAGIC", "Acceptance", "BadAcceptanceError", "ExpiredInvitationError", "Invitation",
    "InvitationError", "MAX_ACCEPTANCE_BYTES", "MalformedInvitationError", "acceptance_invite_id",
    "acceptance_well_formed", "box_key", "check_not_expired", "invitation_from_text",
    "invitation_to_text", "invite_id", "make_invitation", "open_acceptance", "parse_invitation",
    "reply_from_text", "reply_to_text", "seal_acceptance",
]
