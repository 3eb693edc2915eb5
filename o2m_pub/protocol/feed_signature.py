"""The signed public feed (PROTOCOL.md §1.4): `feed.json.sig` beside `feed.json`.

`feed.json` stays a plain JSON Feed that any feed reader takes; a detached document
signs its exact bytes by size and SHA-256, with a sequence number against rollback.
It is signed by the site's public-feed key (`feed_pk` in the card, so as trusted as
the card), a subkey kept unlocked so that a public-only build needs no passphrase. A
host or CDN that injects or alters a public post cannot make the signature match
(THREATS.md 54). Pure functions.

    FeedSignatureError (O2MError, ValueError)   a feed.json.sig that does not verify,
                                                or a feed.json it does not match
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from o2m_pub.errors import O2MError
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    is_sha256_hex,
    parse_json,
    parse_utc_text,
    utc_text,
)

SIG_CONTEXT = b"o2m-feed-sig-v1\n"
TYPE = "o2m-feed-sig"
MAX_SIG_BYTES = 2048  # §1.4: "at most 2 KiB", checked before parsing
FEED_PATH = "feed.json"
SIG_PATH = "feed.json.sig"
_REQUIRED = frozenset({"author", "feed_pk", "path", "seq", "sha256", "sig", "size", "type",
                       "updated", "v"})


class FeedSignatureError(O2MError, ValueError):
    """A public feed's signature does not match."""

    hint = ("a host or a network in between may have changed it; their private feed "
            "for you is checked on its own")


@dataclass(frozen=True)
class FeedSignature:
    """A verified `feed.json.sig`: what the signed `feed.json` must be."""

    author: bytes  # the card's sign_pk
    feed_pk: bytes
    path: str
    seq: int
    sha256: str  # lowercase hex
    size: int
    updated: str
    raw: bytes


def sign_feed(feed_key: nacl.signing.SigningKey, *, author_sign_pk: bytes, feed: bytes,
              seq: int, updated: dt.datetime, path: str = FEED_PATH) -> bytes:
    """The `feed.json.sig` of `feed` (the exact bytes of feed.json), §1.4."""
    doc = {"author": b64u_encode(bytes(author_sign_pk)),
           "feed_pk": b64u_encode(bytes(feed_key.verify_key)), "path": path, "seq": seq,
           "sha256": hashlib.sha256(feed).hexdigest(), "size": len(feed),
           "type": TYPE, "updated": utc_text(updated), "v": 1}
    signature = feed_key.sign(SIG_CONTEXT + canonical_json(doc)).signature
    return canonical_json({**doc, "sig": b64u_encode(signature)})


def _bad(detail: str) -> FeedSignatureError:
    return FeedSignatureError(f"public feed: signature does not match: {detail}")


def open_feed_signature(data: bytes, *, feed_pk: bytes, author_sign_pk: bytes) -> FeedSignature:
    """Check a downloaded `feed.json.sig` against the friend's card (§1.4): the cap,
    canonical JSON, type and version, every field, `feed_pk` and `author` equal to the
    card's, and the Ed25519 signature by `feed_pk` over the document without `sig`.
    Unknown keys are allowed (and signed over).

    Raises:
        FeedSignatureError: anything else.
    """
    try:
        doc = parse_json(data, max_bytes=MAX_SIG_BYTES)
    except EncodingError as e:
        raise _bad(f"not a signature ({e})") from None
    if not isinstance(doc, dict) or canonical_json(doc) != data:
        raise _bad("not a signature (not canonical JSON)")
    if doc.get("type") != TYPE or type(doc.get("v")) is not int or doc["v"] != 1:
        raise _bad("not an o2m feed signature of version 1")
    missing = sorted(_REQUIRED - set(doc))
    if missing:
        raise _bad(f"no {', '.join(missing)}")
    try:
        author = b64u_decode(doc["author"], length=32)
        signer = b64u_decode(doc["feed_pk"], length=32)
        sig = b64u_decode(doc["sig"], length=64)
    except (EncodingError, TypeError):
        raise _bad("a malformed key or signature") from None
    if author != bytes(author_sign_pk):
        raise _bad("made for another author")
    if signer != bytes(feed_pk):
        raise _bad("signed by another key than the one in their card")
    seq, size = doc["seq"], doc["size"]
    if type(seq) is not int or type(size) is not int:
        raise _bad("seq and size must be integers")
    if doc["path"] != FEED_PATH:
        raise _bad(f"signs {str(doc['path'])[:40]!r}, not {FEED_PATH}")
    if not is_sha256_hex(doc["sha256"]):
        raise _bad("sha256 must be 64 lowercase hex digits")
    try:
        parse_utc_text(doc["updated"])  # §2.1: a real date and time, not just its shape
    except ValueError:
        raise _bad("updated must be a time like 2026-11-24T10:30:00Z") from None
    unsigned = canonical_json({k: v for k, v in doc.items() if k != "sig"})
    try:
        nacl.signing.VerifyKey(signer).verify(SIG_CONTEXT + unsigned, sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        raise _bad("the signature is not by their feed key") from None
    return FeedSignature(author, signer, FEED_PATH, seq, doc["sha256"], size, doc["updated"],
                         data)


def check_feed(signature: FeedSignature, feed: bytes) -> None:
    """The downloaded `feed.json` is the one signed: its size, then its SHA-256.

    Raises:
        FeedSignatureError: other bytes (injected or altered posts, or a publish that
            is half done: the next fetch asks again).
    """
    if len(feed) != signature.size:
        raise _bad(f"feed.json is {len(feed):,} bytes, the signature says {signature.size:,}")
    if hashlib.sha256(feed).hexdigest() != signature.sha256:
        raise _bad("feed.json is not the one signed (a post was added or altered)")


def check_not_older(signature: FeedSignature, stored_seq: int | None,
                    stored_sha256: str | None) -> bool:
    """Rollback (§1.4): a signature with a lower `seq` than the one accepted before is
    refused. Returns True when it is the stored one again (same seq and hash: nothing
    to read).

    Raises:
        FeedSignatureError: a lower seq, or the same seq for other bytes.
    """
    if stored_seq is None:
        return False
    if signature.seq < stored_seq:
        raise FeedSignatureError(f"public feed: an older feed.json was served (seq "
                                 f"{signature.seq} < {stored_seq}): kept the newer posts")
    if signature.seq == stored_seq:
        if signature.sha256 != stored_sha256:
            raise FeedSignatureError(f"public feed: two different feeds with seq {stored_seq}")
        return True
    return False
