"""Private posts as files (PROTOCOL.md §3): padded, encrypted, content-addressed
objects, and per-friend feed documents, signed by the author and encrypted to the pair.

Pure functions: keys, nonces and times are passed in; the build decides what to write
and the reader what to fetch. Opening anything raises one of two errors only:
`FeedFormatError` (not a well-formed o2m file) or `FeedAuthError` (it does not verify
for us), so a hostile file can never surface as a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable

import nacl.bindings
import nacl.exceptions
import nacl.hash
import nacl.secret
import nacl.signing
from nacl.encoding import RawEncoder

from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    canonical_json,
    is_https_url,
    is_sha256_hex,
    parse_json,
    parse_utc_text,
)

OBJECT_MAGIC = b"O2MOBJ1\n"
HEAD_MAGIC = b"O2MHEAD1"
PAGE_MAGIC = b"O2MPAGE1"
NONCE_BYTES = 24
KEY_BYTES = 32
MIN_PADDED = 512
MAX_HEAD_BYTES = 1 << 20  # a head over 1 MiB is refused before decrypting
MAX_PAGE_BYTES = 4 << 20
MAX_ITEMS = 4096
MAX_ITEM_BYTES = 256 << 10  # §3.4: one item's canonical JSON, whatever it holds
MAX_REPLIES = 512  # §3.4: entries of one item's `replies`
MAX_REACTIONS = 1024  # §3.4: entries of one item's `reactions`
MAX_OBJECT_BYTES = 64 << 20
# §3.4, THREATS.md 57: a head is valid for at most this long after it was signed, so a
# host that freezes a feed is seen as stale within it; and its `updated` may lie at most
# this far in the future of the reader's clock.
HEAD_LIFETIME = dt.timedelta(days=30)
MAX_CLOCK_SKEW = dt.timedelta(days=1)
FEED_SIG_CONTEXT = b"o2m-feed-v1\n"
_PERSON_NAME = b"o2m1 feed name\x00\x00"
_PERSON_HEAD_KEY = b"o2m1 head key\x00\x00\x00"
MAX_SEQ = 2**53 - 1


class FeedFormatError(ValueError):
    """A feed file or object is not well formed (truncated, wrong magic, bad padding)."""


class FeedAuthError(ValueError):
    """A feed file or object does not verify: forged, tampered with, or not for us."""


# --- pairwise derivation (§3.1) ------------------------------------------------------

@dataclass(frozen=True)
class FeedSecrets:
    """What one direction of a friendship (author -> reader) needs: the head's file
    name and the key that encrypts the head and its archive pages."""

    name: str  # 32 lowercase hex digits
    key: bytes

    @property
    def head_path(self) -> str:
        return f"f/{self.name}"


def pairwise_secrets(own_box_sk: bytes, peer_box_pk: bytes, author_sign_pk: bytes,
                     reader_sign_pk: bytes) -> FeedSecrets:
    """Derive the feed name and head key of the feed `author` writes for `reader`.

    Either side computes the same values: the X25519 secret is symmetric, and the
    direction is fixed by the order of the two signing keys (§3.1). The name and the key
    come from separate labelled derivations, so the name reveals nothing of the key.

    Raises:
        FeedAuthError: the peer's key is a low-order point (the shared secret is zero).
    """
    try:
        shared = nacl.bindings.crypto_scalarmult(own_box_sk, peer_box_pk)
    except nacl.exceptions.RuntimeError:  # libsodium refuses an all-zero result
        raise FeedAuthError("unusable public key") from None
    context = author_sign_pk + reader_sign_pk
    name = nacl.hash.blake2b(context, digest_size=16, key=shared, person=_PERSON_NAME,
                             encoder=RawEncoder)
    key = nacl.hash.blake2b(context, digest_size=32, key=shared, person=_PERSON_HEAD_KEY,
                            encoder=RawEncoder)
    return FeedSecrets(name.hex(), key)


# --- padding (§3.2) --------------------------------------------------------------------

def padded_size(n: int) -> int:
    """The bucket for `n` bytes: at least 512, then 2^k, 1.25·2^k, 1.5·2^k or 1.75·2^k,
    whichever is the first not below n (at most 25% overhead; sizes leak ~2 bits/octave)."""
    if n <= MIN_PADDED:
        return MIN_PADDED
    k = (n - 1).bit_length() - 1  # 2^k < n <= 2^(k+1)
    for quarter in (5, 6, 7, 8):
        size = (1 << k) * quarter // 4
        if size >= n:
            return size
    raise AssertionError("unreachable")


def pad(plaintext: bytes) -> bytes:
    body = len(plaintext).to_bytes(4, "big") + plaintext
    return body + bytes(padded_size(len(body)) - len(body))


def unpad(padded: bytes) -> bytes:
    if len(padded) < 4 or len(padded) != padded_size(len(padded)):
        raise FeedFormatError("bad padding")
    n = int.from_bytes(padded[:4], "big")
    if n > len(padded) - 4 or padded_size(n + 4) != len(padded) or any(padded[4 + n:]):
        raise FeedFormatError("bad padding")
    return padded[4:4 + n]


# --- objects (§3.3) ---------------------------------------------------------------------

_REF_KEYS = frozenset({"hash", "key", "size"})


@dataclass(frozen=True)
class ObjectRef:
    """How a feed item points at an object: its SHA-256 (which names its file), its
    size, and the key that opens it."""

    hash: str  # 64 lowercase hex digits
    size: int
    key: bytes

    @property
    def path(self) -> str:
        return f"o/{self.hash}"

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "key": b64u_encode(self.key), "size": self.size}

    @classmethod
    def from_json(cls, value: Any) -> "ObjectRef":
        """A reference as §3.3 gives it; keys it does not know are ignored (a later
        version of the protocol may add some: forward compatibility)."""
        if not isinstance(value, dict) or not _REF_KEYS <= value.keys():
            raise FeedFormatError("bad object reference")
        h, size = value["hash"], value["size"]
        if not is_sha256_hex(h) or type(size) is not int or not 0 < size <= MAX_OBJECT_BYTES:
            raise FeedFormatError("bad object reference")
        try:
            key = b64u_decode(value["key"], length=KEY_BYTES)
        except EncodingError:
            raise FeedFormatError("bad object key") from None
        return cls(h, size, key)




def seal_object(plaintext: bytes, *, key: bytes, nonce: bytes) -> tuple[bytes, ObjectRef]:
    """Encrypt one post or attachment with its own fresh key (§3.3)."""
    sealed = nacl.secret.SecretBox(key).encrypt(pad(plaintext), nonce)
    data = OBJECT_MAGIC + bytes(sealed)
    return data, ObjectRef(hashlib.sha256(data).hexdigest(), len(data), key)


def open_object(data: bytes, ref: ObjectRef) -> bytes:
    """Check an object against its reference, then decrypt it (§3.3: the hash is
    checked before any decryption).

    Raises:
        FeedAuthError: wrong size or hash, or it does not decrypt with the key.
        FeedFormatError: it decrypts but its padding is wrong.
    """
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.hash:
        raise FeedAuthError("object does not match its reference")
    if not data.startswith(OBJECT_MAGIC):
        raise FeedFormatError("not an o2m object")
    try:
        padded = nacl.secret.SecretBox(ref.key).decrypt(data[len(OBJECT_MAGIC):])
    except (nacl.exceptions.CryptoError, ValueError):
        raise FeedAuthError("object does not decrypt with its key") from None
    return unpad(padded)


# --- feed documents (§3.4) --------------------------------------------------------------

SIG_BYTES = 64


def seal_document(doc: dict[str, Any], *, magic: bytes, signing_key: nacl.signing.SigningKey,
                  key: bytes, nonce: bytes) -> bytes:
    """Sign a head or archive page, then encrypt it to the pair (§3.4): the plaintext is
    the detached signature followed by the exact bytes it signs, so a reader verifies
    before it parses anything. The values are not type-walked again: items come from
    Item and ObjectRef (strings, bounded ints) and seal_head checks the sequence number."""
    body = canonical_json(doc, check=False)
    sig = signing_key.sign(FEED_SIG_CONTEXT + body).signature
    return magic + bytes(nacl.secret.SecretBox(key).encrypt(pad(sig + body), nonce))


def open_document(data: bytes, *, magic: bytes, key: bytes, author_sign_pk: bytes,
                  reader_sign_pk: bytes, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """Decrypt, verify and parse a head or archive page (§3.5 steps 1-7), in that order;
    returns the document and the signed plaintext (to tell a replay from equivocation).

    Raises:
        FeedFormatError, FeedAuthError: see the module docstring.
    """
    if len(data) > max_bytes:
        raise FeedFormatError("too large")
    if not data.startswith(magic):
        raise FeedFormatError("not an o2m feed file of this kind")
    try:
        padded = nacl.secret.SecretBox(key).decrypt(data[len(magic):])
    except (nacl.exceptions.CryptoError, ValueError):
        raise FeedAuthError("does not decrypt: tampered with, or not for us") from None
    signed = unpad(padded)
    sig, body = signed[:SIG_BYTES], signed[SIG_BYTES:]
    try:
        nacl.signing.VerifyKey(author_sign_pk).verify(FEED_SIG_CONTEXT + body, sig)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise FeedAuthError("bad signature") from None
    try:
        doc = parse_json(body, max_bytes=max_bytes)
    except EncodingError as e:
        raise FeedFormatError(f"malformed: {e}") from None
    if not isinstance(doc, dict) or canonical_json(doc) != body:
        raise FeedFormatError("not canonical JSON")
    if type(doc.get("v")) is not int or doc["v"] != 1:  # true == 1 in Python, not in §3.4
        raise FeedFormatError(f"unsupported version {doc.get('v')!r}")
    expected_type = "o2m-head" if magic == HEAD_MAGIC else "o2m-page"
    if doc.get("type") != expected_type:
        raise FeedFormatError("wrong document type")
    if doc.get("author") != b64u_encode(author_sign_pk):
        raise FeedAuthError("signed by its author for another author's feed")
    if doc.get("recipient") != b64u_encode(reader_sign_pk):
        raise FeedAuthError("addressed to someone else")
    items = doc.get("items")
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise FeedFormatError("bad or too many items")
    return doc, signed


# --- items, heads and pages (§3.4) --------------------------------------------------------

ITEM_ID_BYTES = 16
HEAD_ITEMS = 64  # a head carries at most 2 x this many items before a page is cut


@dataclass(frozen=True)
class Item:
    """One entry of a feed: a post version (with its object), a reaction (a statement and
    no object, §4.3), or a tombstone. The conversation fields (§4.4) are checked here for
    their shape only: a reader verifies each link and reaction on its own, and one that
    fails fails alone (§4.5)."""

    id: str  # b64u of 16 bytes, stable across edits of one post
    date: str  # RFC 3339 UTC: when this version was published
    object: ObjectRef | None  # None for a tombstone or a reaction
    reply_to: str | None = None  # an https URL or a post reference (§4.1)
    replies: tuple[dict[str, Any], ...] = ()  # reply links (§4.4)
    statement: str | None = None  # b64u of a signed reply or reaction statement (§4.2)
    reactions: tuple[str, ...] = ()  # b64u of signed reaction statements (§4.4)

    @property
    def deleted(self) -> bool:
        return self.object is None and self.statement is None

    @property
    def is_reaction(self) -> bool:
        return self.object is None and self.statement is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"date": self.date, "id": self.id}
        if self.object is not None:
            out["object"] = self.object.to_json()
        elif self.statement is None:
            out["deleted"] = True
        if self.reply_to:
            out["reply_to"] = self.reply_to
        if self.replies:
            out["replies"] = list(self.replies)
        if self.statement:
            out["statement"] = self.statement
        if self.reactions:
            out["reactions"] = list(self.reactions)
        return out

    @classmethod
    def from_json(cls, value: Any) -> "Item":
        """An item as §3.4 gives it. Keys it does not know are ignored (forward
        compatibility), but count towards the item's cap: one item is at most
        MAX_ITEM_BYTES of canonical JSON, MAX_REPLIES reply links and MAX_REACTIONS
        reactions, else the whole document is refused.

        Raises:
            FeedFormatError: naming the first thing wrong.
        """
        if not isinstance(value, dict) or not {"id", "date"} <= value.keys():
            raise FeedFormatError("bad item")
        _check_item_size(value)
        try:
            b64u_decode(value["id"], length=ITEM_ID_BYTES)
        except EncodingError:
            raise FeedFormatError("bad item id") from None
        check_time(value["date"])
        deleted = value.get("deleted", False)
        statement = value.get("statement")
        if statement is not None and (not isinstance(statement, str) or not statement):
            raise FeedFormatError("bad statement")
        if deleted is True:
            if "object" in value or statement is not None:
                raise FeedFormatError("a tombstone has no object")
            obj = None
        elif deleted is False and "object" in value:
            obj = ObjectRef.from_json(value["object"])
        elif deleted is False and statement is not None:
            obj = None  # a reaction (§4.3)
        else:
            raise FeedFormatError("an item has an object or is deleted")
        reply_to = value.get("reply_to")
        replies = value.get("replies", [])
        reactions = value.get("reactions", [])
        if reply_to is not None and not (is_https_url(reply_to) or _is_ref_text(reply_to)):
            raise FeedFormatError("bad reply_to")
        if not isinstance(replies, list) or not all(
                isinstance(r, dict) and isinstance(r.get("key"), str)
                and isinstance(r.get("statement"), str) for r in replies):
            raise FeedFormatError("bad replies")
        if not isinstance(reactions, list) or not all(isinstance(r, str) for r in reactions):
            raise FeedFormatError("bad reactions")
        return cls(value["id"], value["date"], obj, reply_to, tuple(replies), statement,
                   tuple(reactions))


_REF_TEXT = re.compile(r"o2m:([A-Za-z0-9_-]{43})/([A-Za-z0-9_-]{22})", re.ASCII)


def _is_ref_text(value: Any) -> bool:
    """The text form of a post reference (§4.1): `o2m:<author>/<id>`, each b64u of
    exactly 32 and 16 bytes, canonical (§2.1), as `conversation.PostRef.parse` reads it
    (which imports this module, hence the same rule here)."""
    match = _REF_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return False
    try:
        b64u_decode(match[1], length=KEY_BYTES)
        b64u_decode(match[2], length=ITEM_ID_BYTES)
    except EncodingError:
        return False
    return True


_ITEM_KEYS = frozenset({"id", "date", "object", "deleted", "reply_to"})


def _check_item_size(value: dict[str, Any]) -> None:
    """§3.4: at most MAX_REPLIES replies and MAX_ITEM_BYTES of canonical JSON. An item of
    only the known fields but `replies`, whose reference holds only its own three, is
    far below the byte cap once those fields pass their checks (an id, a date, a
    reference and one URL of at most 2,048 characters), so only others are measured."""
    replies = value.get("replies")
    if isinstance(replies, list) and len(replies) > MAX_REPLIES:
        raise FeedFormatError(f"an item has {len(replies):,} replies (at most {MAX_REPLIES})")
    reactions = value.get("reactions")
    if isinstance(reactions, list) and len(reactions) > MAX_REACTIONS:
        raise FeedFormatError(f"an item has {len(reactions):,} reactions "
                              f"(at most {MAX_REACTIONS})")
    ref = value.get("object")
    if value.keys() <= _ITEM_KEYS and (not isinstance(ref, dict) or ref.keys() <= _REF_KEYS):
        return
    try:
        size = len(canonical_json(value, check=False))
    except (TypeError, ValueError, UnicodeEncodeError):
        raise FeedFormatError("bad item") from None
    if size > MAX_ITEM_BYTES:
        raise FeedFormatError(f"an item is {size:,} bytes (at most {MAX_ITEM_BYTES:,})")


@dataclass(frozen=True)
class PageRef:
    """An archive page, named by its hash like an object."""

    hash: str
    size: int

    @property
    def path(self) -> str:
        return f"p/{self.hash}"

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "size": self.size}

    @classmethod
    def from_json(cls, value: Any) -> "PageRef":
        if (not isinstance(value, dict) or set(value) != {"hash", "size"}
                or not is_sha256_hex(value["hash"]) or type(value["size"]) is not int
                or not 0 < value["size"] <= MAX_PAGE_BYTES):
            raise FeedFormatError("bad page reference")
        return cls(value["hash"], value["size"])


@dataclass(frozen=True)
class Head:
    """A verified feed head (§3.4)."""

    seq: int
    updated: str
    expires: str
    items: tuple[Item, ...]
    prev: PageRef | None
    signed: bytes  # the exact signed bytes, to tell equivocation from a replay


def check_time(value: Any) -> str:
    """RFC 3339 UTC with Z and whole seconds (§2.1)."""
    try:
        parse_utc_text(value)
    except ValueError:
        raise FeedFormatError("bad time") from None
    return value


def _items(doc: dict[str, Any]) -> tuple[Item, ...]:
    items = tuple(Item.from_json(v) for v in doc["items"])
    if len({i.id for i in items}) != len(items):
        raise FeedFormatError("an item id appears twice")
    return items


def open_head(data: bytes, secrets: FeedSecrets, *, author_sign_pk: bytes,
              reader_sign_pk: bytes) -> Head:
    """Decrypt, verify and parse a head (§3.5 steps 1-7 and 10); step 7 includes the
    window: a head valid for more than HEAD_LIFETIME is refused (THREATS.md 57)."""
    doc, signed = open_document(data, magic=HEAD_MAGIC, key=secrets.key,
                                author_sign_pk=author_sign_pk, reader_sign_pk=reader_sign_pk,
                                max_bytes=MAX_HEAD_BYTES)
    if set(doc) != {"v", "type", "author", "recipient", "seq", "updated", "expires", "items",
                    "prev"}:
        raise FeedFormatError("unexpected fields in head")
    seq = doc["seq"]
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:  # §3.4: no bool, no float, no text
        raise FeedFormatError("bad sequence number")
    prev = PageRef.from_json(doc["prev"]) if doc["prev"] is not None else None
    updated, expires = check_time(doc["updated"]), check_time(doc["expires"])
    if parse_utc_text(expires) - parse_utc_text(updated) > HEAD_LIFETIME:  # THREATS.md 57
        raise FeedFormatError(f"expires {expires}, more than {HEAD_LIFETIME.days} days after "
                              f"it was signed ({updated})")
    return Head(seq, updated, expires, _items(doc), prev, signed)


def open_page(data: bytes, ref: PageRef, secrets: FeedSecrets, *, author_sign_pk: bytes,
              reader_sign_pk: bytes) -> tuple[tuple[Item, ...], PageRef | None]:
    """Check an archive page against its reference, then decrypt and verify it."""
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.hash:
        raise FeedAuthError("page does not match its reference")
    doc, _ = open_document(data, magic=PAGE_MAGIC, key=secrets.key,
                           author_sign_pk=author_sign_pk, reader_sign_pk=reader_sign_pk,
                           max_bytes=MAX_PAGE_BYTES)
    if set(doc) != {"v", "type", "author", "recipient", "items", "prev"}:
        raise FeedFormatError("unexpected fields in page")
    prev = PageRef.from_json(doc["prev"]) if doc["prev"] is not None else None
    return _items(doc), prev


def _base_doc(kind: str, author_sign_pk: bytes, reader_sign_pk: bytes,
              items: list[Item], prev: PageRef | None) -> dict[str, Any]:
    return {"v": 1, "type": kind, "author": b64u_encode(author_sign_pk),
            "recipient": b64u_encode(reader_sign_pk), "items": [i.to_json() for i in items],
            "prev": prev.to_json() if prev else None}


def seal_head(*, signing_key: nacl.signing.SigningKey, reader_sign_pk: bytes,
              secrets: FeedSecrets, seq: int, updated: str, expires: str, items: list[Item],
              prev: PageRef | None, nonce: bytes, size: int | None = None) -> bytes:
    """A reader's head (§3.4), sealed.

    Args:
        size: the length the sealed head should have, at least its own (`head_size`):
            `pad` keys of spaces in its items bring it there (THREATS.md 55: every head
            of a site the same size, so none stands out when it grows). Where its items
            cannot hold the padding (a head with none), tombstones of ids no post has
            (`pad_item_id`) carry it.
    """
    doc = _head_doc(bytes(signing_key.verify_key), reader_sign_pk, seq, updated, expires,
                    items, prev)
    if size is not None:
        doc = _padded_head(doc, size, lambda n: pad_item_id(secrets.key, n))
    return seal_document(doc, magic=HEAD_MAGIC, signing_key=signing_key, key=secrets.key,
                         nonce=nonce)


def head_size(*, author_sign_pk: bytes, reader_sign_pk: bytes, seq: int, updated: str,
              expires: str, items: list[Item], prev: PageRef | None) -> int:
    """The length of the head `seal_head` makes from these, without `size`."""
    doc = _head_doc(author_sign_pk, reader_sign_pk, seq, updated, expires, items, prev)
    return HEAD_OVERHEAD + padded_size(4 + SIG_BYTES + len(canonical_json(doc, check=False)))


def pad_item_id(head_key: bytes, n: int) -> str:
    """The id of a head's `n`-th pad tombstone (§3.4, THREATS.md 55): a tombstone of an id
    no post has, there only to carry padding a head's own items cannot (a friend who sees
    no post has a head with no items). Every reader takes it as a tombstone of a post it
    never had: nothing to drop. Derived from the pair's head key, so a reader meets the
    same ids in every build rather than new ones each time, and they mean nothing to
    anyone else."""
    digest = hashlib.sha256(b"o2m-pad-id\0" + head_key + n.to_bytes(4, "big")).digest()
    return b64u_encode(digest[:ITEM_ID_BYTES])


def _head_doc(author_sign_pk: bytes, reader_sign_pk: bytes, seq: int, updated: str,
              expires: str, items: list[Item], prev: PageRef | None) -> dict[str, Any]:
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError("sequence number out of range")
    doc = _base_doc("o2m-head", author_sign_pk, reader_sign_pk, items, prev)
    doc.update(seq=seq, updated=updated, expires=expires)
    return doc


_PAD_KEY = ',"pad":""'  # what a `pad` key adds to an item's canonical JSON, spaces aside


def _pad_room(item: dict[str, Any]) -> int:
    """How many bytes a `pad` key can add to `item` (its key and spaces) within
    MAX_ITEM_BYTES: none for an item padded already or too full for the key."""
    room = MAX_ITEM_BYTES - len(canonical_json(item, check=False))
    return 0 if "pad" in item or room < len(_PAD_KEY) else room


def _padded_head(doc: dict[str, Any], size: int,
                 pad_id: Callable[[int], str]) -> dict[str, Any]:
    """`doc` with `pad` keys (strings of spaces; a key readers ignore, §2.1) in its items,
    from the newest, so that its plaintext fills the bucket of a `size`-byte head
    exactly; each item stays within MAX_ITEM_BYTES. When its items have too little room
    (a head with no items has none), tombstones of the ids `pad_id(0)`, `pad_id(1)`, …
    are added after them to hold the rest (§3.4). The doc as it is when it is in that
    bucket (or a bigger one) already."""
    padded = size - HEAD_OVERHEAD
    if padded < MIN_PADDED or padded_size(padded) != padded:
        raise ValueError(f"{size} bytes is not the size of a sealed head")
    plain = 4 + SIG_BYTES + len(canonical_json(doc, check=False))
    if padded_size(plain) >= padded:
        return doc
    need = padded - plain
    base = list(doc["items"])
    room = sum(_pad_room(item) for item in base)
    while room + len(_PAD_KEY) <= need:  # a shortfall under one key stays in the bucket
        tomb = {"date": doc["updated"], "deleted": True,
                "id": pad_id(len(base) - len(doc["items"]))}
        grows = len(canonical_json(tomb, check=False)) + (1 if base else 0)  # and a comma
        if grows > need:
            break  # only items each within a key of the cap: the head stays a bucket short
        base.append(tomb)
        need -= grows
        room += _pad_room(tomb)
    items = []
    for item in base:
        spaces = min(need, _pad_room(item)) - len(_PAD_KEY)
        if spaces >= 0:
            item = {**item, "pad": " " * spaces}
            need -= spaces + len(_PAD_KEY)
        items.append(item)
        if need < len(_PAD_KEY):  # the bucket is filled (or too nearly for another key)
            items += base[len(items):]
            break
    return {**doc, "items": items}


HEAD_OVERHEAD = len(HEAD_MAGIC) + NONCE_BYTES + nacl.secret.SecretBox.MACBYTES  # 48


def seal_dummy_head(size: int, *, key: bytes, nonce: bytes) -> bytes:
    """A file of `size` bytes that, to anyone without `key`, is a head like any other
    (THREATS.md 55): the head magic, a nonce and a secretbox of padding under a key no
    one keeps. It pads the number of heads a host sees; no reader ever asks for it.

    Args:
        size: the size of a real head (magic, nonce, MAC and a padded bucket, §3.2).
        key, nonce: fresh random bytes, never kept.

    Raises:
        ValueError: `size` is not the size of a sealed head.
    """
    padded = size - HEAD_OVERHEAD
    if padded < MIN_PADDED or padded_size(padded) != padded:
        raise ValueError(f"{size} bytes is not the size of a sealed head")
    return HEAD_MAGIC + bytes(nacl.secret.SecretBox(key).encrypt(pad(bytes(padded - 4)),
                                                                 nonce))


def seal_page(*, signing_key: nacl.signing.SigningKey, reader_sign_pk: bytes,
              secrets: FeedSecrets, items: list[Item], prev: PageRef | None,
              nonce: bytes) -> tuple[bytes, PageRef]:
    doc = _base_doc("o2m-page", bytes(signing_key.verify_key), reader_sign_pk, items, prev)
    data = seal_document(doc, magic=PAGE_MAGIC, signing_key=signing_key, key=secrets.key,
                         nonce=nonce)
    return data, PageRef(hashlib.sha256(data).hexdigest(), len(data))


def append_to_feed(head_items: list[Item],
                   new_items: list[Item]) -> tuple[list[Item], list[list[Item]]]:
    """Add new item versions at the front of the head (newest first), dropping older
    versions of the same posts from the head; while the head holds over 2 x HEAD_ITEMS,
    its oldest HEAD_ITEMS items are cut into an archive page (RFC 5005 style, §3.4).
    Adding one post therefore rewrites the head and, now and then, one new page.

    Returns (the new head's items, the pages to cut, oldest first)."""
    ids = {i.id for i in new_items}
    items = list(new_items) + [i for i in head_items if i.id not in ids]
    pages: list[list[Item]] = []
    while len(items) > 2 * HEAD_ITEMS:
        pages.append(items[-HEAD_ITEMS:])
        items = items[:-HEAD_ITEMS]
    return items, pages


# --- the reader's decision (§3.5 steps 8-9) -------------------------------------------------

class RollbackError(FeedAuthError):
    """An older head than one already accepted (a replay, or a host rolled back)."""


class EquivocationError(FeedAuthError):
    """Two different heads with one sequence number: the author's key may be misused."""


@dataclass(frozen=True)
class Verdict:
    """What to do with a verified head."""

    fresh: bool  # newer than what we have: store its items
    stale: bool  # past its expiry: keep the posts, flag "stale since …" (freeze)


class FutureHeadError(FeedFormatError):
    """A head signed further in the future than clocks drift (THREATS.md 57)."""


def accept_head(head: Head, *, stored_seq: int | None, stored_signed: bytes | None,
                now: str) -> Verdict:
    """Rollback, equivocation and freeze checks against the stored high-water mark
    (§3.5 steps 8-9). A head whose `updated` lies more than MAX_CLOCK_SKEW after `now`
    is refused: with its expiry it would put off the freeze warning for longer than
    HEAD_LIFETIME (THREATS.md 57).

    Raises:
        RollbackError: head.seq is below the stored one.
        EquivocationError: same seq, different signed bytes (the stored head is kept).
        FutureHeadError: head.updated is after now + MAX_CLOCK_SKEW.
    """
    fresh = is_newer(head.seq, head.signed, stored_seq, stored_signed)  # step 8
    if parse_utc_text(head.updated) > parse_utc_text(now) + MAX_CLOCK_SKEW:  # step 9
        raise FutureHeadError(f"signed at {head.updated}, more than {MAX_CLOCK_SKEW.days} "
                              f"day after this machine's clock ({now})")
    # step 9: fresh while `expires` > now, so a head that expires this second is stale
    # (both are §2.1 time texts, which sort as the times they name)
    return Verdict(fresh=fresh, stale=head.expires <= now)


def is_newer(seq: int, signed: bytes, stored_seq: int | None,
             stored_signed: bytes | None) -> bool:
    """Step 8 of §3.5: True for a head newer than the stored one, False for the very
    same head again.

    Raises:
        RollbackError: `seq` is below the stored one.
        EquivocationError: the same seq with other signed bytes.
    """
    if stored_seq is None:
        return True
    if seq < stored_seq:
        raise RollbackError(f"sequence {seq} is older than {stored_seq}")
    if seq == stored_seq:
        if stored_signed is not None and signed != stored_signed:
            raise EquivocationError(f"two different heads carry sequence {seq}")
        return False
    return True
