"""Conversations across sites (PROTOCOL.md §4): post references, reply and reaction
statements, the reply links an original poster (OP) puts in its items, push notices,
and the thread tree a reader builds.

Pure functions over bytes and data: keys, nonces and times are passed in. A statement
is signed by its author with a detached signature that comes first (like a head, §3.4),
and is carried verbatim, so a reader checks the exact bytes the author signed. Opening
anything raises `ConversationError` only, with the reason in one line.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

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
    is_sha256_hex,
    parse_json,
    parse_utc_text,
)
from o2m_pub.protocol.cards import InvalidCardFieldError, check_card_url, parse_pin
from o2m_pub.protocol.feeds import MAX_OBJECT_BYTES, FeedFormatError, pad, unpad

REF_PREFIX = "o2m:"
REPLY_CONTEXT = b"o2m-reply-v1\n"
REACTION_CONTEXT = b"o2m-reaction-v1\n"
NOTICE_CONTEXT = b"o2m-notice-v1\n"
NOTICE_MAGIC = b"O2MNOTE1"
SIG_BYTES = 64
KEY_BYTES = 32
ID_BYTES = 16
NONCE_BYTES = 24
MAX_STATEMENT_BYTES = 4096  # §4.2: a statement, signature included
MAX_REPLY_LINKS = 512  # §4.4: per item
MAX_REACTIONS = 1024  # §4.4: per item
MAX_DEPTH = 16  # §4.6: replies to replies, the root's direct replies at depth 1
MAX_THREAD = 2048  # §4.6: replies in one thread
MAX_EMOJI_CODE_POINTS = 16
MAX_NOTICE_BYTES = 8192
_PERSON_NOTICE_KEY = b"o2m1 notice key\x00"
_PERSON_REACTION_ID = b"o2m-reaction-id\0"


class ConversationError(ValueError):
    """A reference, statement, link or notice that is malformed or does not verify."""


# --- post references (§4.1) --------------------------------------------------------------

@dataclass(frozen=True, order=True)
class PostRef:
    """A stable reference to a post: its author's signing key and its item id (§3.4),
    never a URL, so it survives a move of the author's site."""

    author: str  # b64u of the 32-byte Ed25519 signing key
    id: str  # b64u of the 16-byte item id

    @property
    def text(self) -> str:
        """The text form, `o2m:<author>/<id>` (front matter `reply_to:`)."""
        return f"{REF_PREFIX}{self.author}/{self.id}"

    def to_json(self) -> dict[str, str]:
        return {"author": self.author, "id": self.id}

    @classmethod
    def from_json(cls, value: Any) -> "PostRef":
        """A reference as §4.1 gives it: exactly `author` and `id`.

        Raises:
            ConversationError: not a reference.
        """
        if not isinstance(value, dict) or set(value) != {"author", "id"}:
            raise ConversationError("bad post reference")
        return cls(_b64u_field(value["author"], KEY_BYTES, "author key"),
                   _b64u_field(value["id"], ID_BYTES, "post id"))

    @classmethod
    def parse(cls, text: Any) -> "PostRef":
        """The text form `o2m:<author>/<id>`.

        Raises:
            ConversationError: not a reference.
        """
        if not isinstance(text, str) or not text.startswith(REF_PREFIX) or text.count("/") != 1:
            raise ConversationError("a post reference is o2m:<author key>/<post id>")
        author, _, post_id = text[len(REF_PREFIX):].partition("/")
        return cls(_b64u_field(author, KEY_BYTES, "author key"),
                   _b64u_field(post_id, ID_BYTES, "post id"))


def is_post_ref(text: Any) -> bool:
    """Whether `text` is the text form of a post reference."""
    try:
        PostRef.parse(text)
    except ConversationError:
        return False
    return True


def _b64u_field(value: Any, length: int, what: str) -> str:
    try:
        b64u_decode(value, length=length)
    except (EncodingError, TypeError):
        raise ConversationError(f"bad {what}") from None
    return value


def reaction_id(author_sign_pk: bytes, to: PostRef) -> str:
    """The item id of `author`'s reaction to `to`: fixed per (author, post), so a changed
    reaction is a new version of the same item and `--undo` is its tombstone (§4.3)."""
    digest = hashlib.sha256(_PERSON_REACTION_ID + author_sign_pk
                            + canonical_json(to.to_json())).digest()
    return b64u_encode(digest[:ID_BYTES])


# --- emoji (§4.3) ---------------------------------------------------------------------------

_ZWJ, _VS16, _KEYCAP = 0x200D, 0xFE0F, 0x20E3
# §4.3's bases: the emoji blocks, then its single code points (U+3297 and U+3299, not
# U+3298 between them, which is no emoji).
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF),
                 (0x2190, 0x21FF), (0x2900, 0x297F), (0x25AA, 0x25FE), (0x00A9, 0x00A9),
                 (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
                 (0x2139, 0x2139), (0x24C2, 0x24C2), (0x3030, 0x3030), (0x303D, 0x303D),
                 (0x3297, 0x3297), (0x3299, 0x3299))
_MODIFIERS = range(0x1F3FB, 0x1F400)  # skin tones
_REGIONAL = range(0x1F1E6, 0x1F200)
_TAGS = range(0xE0020, 0xE0080)
_KEYCAP_BASES = frozenset(map(ord, "0123456789#*"))


def _is_emoji_base(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _EMOJI_RANGES)


def check_emoji(text: Any) -> str:
    """One emoji, as §4.3's grammar allows it: 1 to 16 code points, NFC; bases of the
    emoji blocks, each followed by variation selector 16, skin-tone modifiers or tag
    characters (subdivision flags), joined by ZWJ; or exactly two regional indicators
    (a flag); or a keycap. A single regional indicator is a base of U+1F000-U+1FAFF like
    any other; three, or a flag with anything after it, are refused. Anything else
    (text, two emoji, controls) is refused.

    Raises:
        ConversationError: naming what is wrong.
    """
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_EMOJI_CODE_POINTS:
        raise ConversationError(f"a reaction is one emoji (1 to {MAX_EMOJI_CODE_POINTS} "
                                "code points)")
    if unicodedata.normalize("NFC", text) != text:
        raise ConversationError("a reaction's emoji must be in NFC")
    cps = [ord(c) for c in text]
    if len(cps) == 2 and all(c in _REGIONAL for c in cps):
        return text  # a flag
    if cps[0] in _KEYCAP_BASES:
        if cps[1:] in ([_VS16, _KEYCAP], [_KEYCAP]):
            return text
        raise ConversationError("not one emoji")
    expect_base = True
    for cp in cps:
        if expect_base:
            if not _is_emoji_base(cp):
                raise ConversationError("not an emoji")
            expect_base = False
        elif cp == _ZWJ:
            expect_base = True
        elif not (cp == _VS16 or cp in _MODIFIERS or cp in _TAGS):
            raise ConversationError("one emoji per reaction")
    if expect_base:
        raise ConversationError("an emoji does not end with a joiner")
    return text


# --- statements (§4.2, §4.3) -------------------------------------------------------------------

@dataclass(frozen=True)
class ReplyStatement:
    """A verified reply statement: who replied, which version (object hash and size),
    to which post, in which thread, and where the replier's site is."""

    author: str
    date: str
    id: str
    object_hash: str
    object_size: int
    thread: PostRef
    to: PostRef
    url: str
    signed: bytes  # signature || body, exactly as received

    @property
    def ref(self) -> PostRef:
        return PostRef(self.author, self.id)


@dataclass(frozen=True)
class ReactionStatement:
    """A verified reaction statement (its undo is a tombstone of its item, §4.3)."""

    author: str
    date: str
    emoji: str
    id: str
    to: PostRef
    signed: bytes


def _sign(doc: dict[str, Any], context: bytes, signing_key: nacl.signing.SigningKey) -> bytes:
    body = canonical_json(doc)
    return signing_key.sign(context + body).signature + body


def sign_reply(*, signing_key: nacl.signing.SigningKey, post_id: str, date: str,
               object_hash: str, object_size: int, to: PostRef, thread: PostRef,
               url: str) -> bytes:
    """The signed reply statement (§4.2) of one version of a reply: signature (64 bytes)
    then the canonical JSON body.

    Raises:
        ConversationError: a field out of its rules (checked as a reader would).
    """
    doc = {"author": b64u_encode(bytes(signing_key.verify_key)), "date": date, "id": post_id,
           "object": {"hash": object_hash, "size": object_size}, "thread": thread.to_json(),
           "to": to.to_json(), "type": "o2m-reply", "url": url, "v": 1}
    signed = _sign(doc, REPLY_CONTEXT, signing_key)
    open_reply(signed)
    return signed


def sign_reaction(*, signing_key: nacl.signing.SigningKey, date: str, emoji: str,
                  to: PostRef) -> bytes:
    """The signed reaction statement (§4.3).

    Raises:
        ConversationError: not one emoji.
    """
    author = bytes(signing_key.verify_key)
    doc = {"author": b64u_encode(author), "date": date, "emoji": check_emoji(emoji),
           "id": reaction_id(author, to), "to": to.to_json(), "type": "o2m-reaction", "v": 1}
    signed = _sign(doc, REACTION_CONTEXT, signing_key)
    open_reaction(signed)
    return signed


def _open_signed(signed: Any, context: bytes, kind: str) -> dict[str, Any]:
    """§4.5 steps 1-3: the cap, the body's `author`, the signature over the exact bytes;
    then canonical form, `v` and `type`."""
    if not isinstance(signed, bytes) or not SIG_BYTES < len(signed) <= MAX_STATEMENT_BYTES:
        raise ConversationError(f"a {kind} statement is 65 to {MAX_STATEMENT_BYTES} bytes")
    sig, body = signed[:SIG_BYTES], signed[SIG_BYTES:]
    try:
        doc = parse_json(body, max_bytes=MAX_STATEMENT_BYTES)
    except EncodingError as e:
        raise ConversationError(f"{kind} statement: malformed: {e}") from None
    if not isinstance(doc, dict) or canonical_json(doc) != body:
        raise ConversationError(f"{kind} statement: not canonical JSON")
    try:
        author = b64u_decode(doc.get("author"), length=KEY_BYTES)
    except (EncodingError, TypeError):
        raise ConversationError(f"{kind} statement: bad author key") from None
    try:
        nacl.signing.VerifyKey(author).verify(context + body, sig)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise ConversationError(f"{kind} statement: signature does not match its author") \
            from None
    if type(doc.get("v")) is not int or doc["v"] != 1 or doc.get("type") != f"o2m-{kind}":
        raise ConversationError(f"not an o2m {kind} statement of version 1")
    try:
        parse_utc_text(doc.get("date"))
    except (ValueError, TypeError):
        raise ConversationError(f"{kind} statement: bad date") from None
    return doc


def open_reply(signed: bytes) -> ReplyStatement:
    """Verify and read a reply statement (§4.5 steps 1-4): the signature with its own
    `author` key over the exact bytes, before any field is trusted.

    Raises:
        ConversationError: naming the first thing wrong.
    """
    doc = _open_signed(signed, REPLY_CONTEXT, "reply")
    object_hash, object_size = _statement_object(doc.get("object"))
    url = _site_url(doc.get("url"))
    post_id = _b64u_field(doc.get("id"), ID_BYTES, "post id")
    return ReplyStatement(doc["author"], doc["date"], post_id, object_hash, object_size,
                          PostRef.from_json(doc.get("thread")),
                          PostRef.from_json(doc.get("to")), url, signed)


def _statement_object(obj: Any) -> tuple[str, int]:
    """§4.2: `object` names the version's object as a reference does (§3.3), by `hash`
    (64 lowercase hex) and `size` (1 to 64 MiB), both required; other keys are ignored
    (§2.1), as in an object reference."""
    if not isinstance(obj, dict) or not {"hash", "size"} <= obj.keys():
        raise ConversationError("reply statement: its object needs `hash` and `size`")
    object_hash, object_size = obj["hash"], obj["size"]
    if (not is_sha256_hex(object_hash) or type(object_size) is not int
            or not 0 < object_size <= MAX_OBJECT_BYTES):
        raise ConversationError("reply statement: bad object hash or size")
    return object_hash, object_size


def _site_url(url: Any) -> str:
    """§4.2: `url` is the replier's card URL, so it follows a card's rule (§2.4: https,
    a valid host and port, no userinfo, query or fragment, ending in /); a reader splits
    it and connects to it (§4.5 steps 6-7)."""
    if not isinstance(url, str):
        raise ConversationError("reply statement: `url` is not an https site URL")
    try:
        return check_card_url(url)
    except InvalidCardFieldError as e:
        raise ConversationError(f"reply statement: `url` is not an https site URL "
                                f"({e.reason})") from None


def open_reaction(signed: bytes) -> ReactionStatement:
    """Verify and read a reaction statement (§4.5); the `id` must be the one fixed for
    (author, to), so one person has one reaction per post.

    Raises:
        ConversationError: naming the first thing wrong.
    """
    doc = _open_signed(signed, REACTION_CONTEXT, "reaction")
    to = PostRef.from_json(doc.get("to"))
    if doc.get("id") != reaction_id(b64u_decode(doc["author"]), to):
        raise ConversationError("reaction statement: its id is not the one of (author, to)")
    return ReactionStatement(doc["author"], doc["date"], check_emoji(doc.get("emoji")),
                             doc["id"], to, signed)


# --- links (§4.4) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplyLink:
    """What the OP puts in its item for a reply: the replier's statement, the key of the
    reply's object, and the pin of the replier's site as the OP knows it."""

    statement: ReplyStatement
    key: bytes
    tls_pin: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"key": b64u_encode(self.key), "statement": b64u_encode(self.statement.signed)}
        if self.tls_pin:
            out["tls_pin"] = self.tls_pin
        return out


def make_link(signed_statement: bytes, key: bytes, tls_pin: str | None = None) -> dict[str, str]:
    """A reply link (§4.4) as JSON, checked as a reader will check it."""
    link = ReplyLink(open_reply(signed_statement), key, tls_pin).to_json()
    open_link(link)
    return link


def open_link(value: Any) -> ReplyLink:
    """Read and verify one link of an item's `replies` (§4.5 steps 1-4).

    Raises:
        ConversationError: naming the first thing wrong.
    """
    if not isinstance(value, dict) or not {"key", "statement"} <= value.keys():
        raise ConversationError("a reply link has `key` and `statement`")
    try:
        key = b64u_decode(value["key"], length=KEY_BYTES)
        signed = b64u_decode(value["statement"])
    except (EncodingError, TypeError):
        raise ConversationError("a reply link: bad key or statement encoding") from None
    pin = value.get("tls_pin")
    if pin is not None:
        try:  # a card's pin (§2.4): "sha256/" and canonical b64u of 32 bytes
            if not isinstance(pin, str):
                raise InvalidCardFieldError("tls_pin", "not a string")
            parse_pin(pin)
        except InvalidCardFieldError:
            raise ConversationError("a reply link: bad tls_pin") from None
    return ReplyLink(open_reply(signed), key, pin)


def open_reaction_text(value: Any) -> ReactionStatement:
    """One entry of an item's `reactions`: b64u of a signed reaction statement."""
    try:
        signed = b64u_decode(value)
    except (EncodingError, TypeError):
        raise ConversationError("a reaction: bad encoding") from None
    return open_reaction(signed)


def check_linked(statement: ReplyStatement, op_post: PostRef) -> None:
    """§4.5 step 5: a link in the OP's item for `op_post` names a reply in that post's
    thread (a direct reply, or a nested one whose `thread` is the post).

    Raises:
        ConversationError: the reply belongs to another post.
    """
    if statement.thread != op_post:
        raise ConversationError("the reply is not in this post's thread")
    if statement.to == statement.ref:
        raise ConversationError("a reply to itself")


def check_reply_post(statement: ReplyStatement, post: Mapping[str, Any]) -> None:
    """§4.5 step 8: the decrypted post says what its statement says.

    Raises:
        ConversationError: its `reply_to` or `thread` differ.
    """
    if post.get("reply_to") != statement.to.text:
        raise ConversationError("the reply's post answers another post than its statement says")
    thread = post.get("thread", post.get("reply_to"))
    if thread != statement.thread.text:
        raise ConversationError("the reply's post is in another thread than its statement says")


# --- notices (§4.7) ------------------------------------------------------------------------------

def notice_key(shared: bytes, author_sign_pk: bytes, reader_sign_pk: bytes) -> bytes:
    """The pairwise notice key: BLAKE2b over the §3.1 context (sender, then recipient)."""
    return nacl.hash.blake2b(author_sign_pk + reader_sign_pk, digest_size=32, key=shared,
                             person=_PERSON_NOTICE_KEY, encoder=RawEncoder)


def _shared(own_box_sk: bytes, peer_box_pk: bytes) -> bytes:
    try:
        return nacl.bindings.crypto_scalarmult(own_box_sk, peer_box_pk)
    except nacl.exceptions.RuntimeError:
        raise ConversationError("unusable public key") from None


@dataclass(frozen=True)
class Notice:
    """A verified notice: a friend says a reply or reaction to one of our posts is
    published (`seq`: their feed's sequence number for us when they sent it)."""

    sender: str
    kind: str
    post: PostRef
    seq: int


def seal_notice(*, signing_key: nacl.signing.SigningKey, own_box_sk: bytes,
                recipient_box_pk: bytes, recipient_sign_pk: bytes, kind: str, post: PostRef,
                seq: int, nonce: bytes) -> bytes:
    """A notice (§4.7): `"O2MNOTE1" || sender sign_pk || sig || body`, body = nonce ||
    secretbox(pad(canonical doc)), sig over `"o2m-notice-v1\\n" || body`."""
    if kind not in ("reply", "reaction") or not 0 <= seq < 2**53:
        raise ConversationError("a notice is of a reply or a reaction")
    sender = bytes(signing_key.verify_key)
    key = notice_key(_shared(own_box_sk, recipient_box_pk), sender, recipient_sign_pk)
    doc = {"kind": kind, "post": post.to_json(), "seq": seq, "type": "o2m-notice", "v": 1}
    body = nonce + bytes(nacl.secret.SecretBox(key).encrypt(pad(canonical_json(doc)),
                                                             nonce).ciphertext)
    sig = signing_key.sign(NOTICE_CONTEXT + body).signature
    return NOTICE_MAGIC + sender + sig + body


def notice_sender(data: bytes) -> bytes:
    """The sender key a notice claims, read before anything else is done with it.

    Raises:
        ConversationError: not shaped as a notice.
    """
    if (not isinstance(data, bytes) or len(data) > MAX_NOTICE_BYTES
            or not data.startswith(NOTICE_MAGIC)
            or len(data) < len(NOTICE_MAGIC) + KEY_BYTES + SIG_BYTES + NONCE_BYTES + 16):
        raise ConversationError("not a notice")
    return data[len(NOTICE_MAGIC):len(NOTICE_MAGIC) + KEY_BYTES]


def verify_notice(data: bytes, sender_sign_pk: bytes) -> bytes:
    """§4.7 steps 1-2: the shape, and the signature of a known sender, before anything is
    stored. Returns the body (nonce and box) to open later.

    Raises:
        ConversationError: not a notice, another sender, or a bad signature.
    """
    if notice_sender(data) != sender_sign_pk:
        raise ConversationError("the notice names another sender")
    start = len(NOTICE_MAGIC) + KEY_BYTES
    sig, body = data[start:start + SIG_BYTES], data[start + SIG_BYTES:]
    try:
        nacl.signing.VerifyKey(sender_sign_pk).verify(NOTICE_CONTEXT + body, sig)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise ConversationError("the notice's signature does not match its sender") from None
    return body


def open_notice(data: bytes, *, sender_sign_pk: bytes, sender_box_pk: bytes,
                own_box_sk: bytes, own_sign_pk: bytes) -> Notice:
    """Verify, decrypt and read a notice (§4.7).

    Raises:
        ConversationError: naming the first thing wrong.
    """
    body = verify_notice(data, sender_sign_pk)
    key = notice_key(_shared(own_box_sk, sender_box_pk), sender_sign_pk, own_sign_pk)
    try:
        plain = unpad(nacl.secret.SecretBox(key).decrypt(body[NONCE_BYTES:],
                                                         body[:NONCE_BYTES]))
        doc = parse_json(plain, max_bytes=MAX_NOTICE_BYTES)
    except (nacl.exceptions.CryptoError, ValueError, FeedFormatError, EncodingError):
        raise ConversationError("the notice does not open") from None
    if (not isinstance(doc, dict) or doc.get("type") != "o2m-notice" or doc.get("v") != 1
            or doc.get("kind") not in ("reply", "reaction")
            or type(doc.get("seq")) is not int or not 0 <= doc["seq"] < 2**53):
        raise ConversationError("not an o2m notice of version 1")
    post = PostRef.from_json(doc.get("post"))
    if post.author != b64u_encode(own_sign_pk):
        raise ConversationError("the notice is about someone else's post")
    return Notice(b64u_encode(sender_sign_pk), doc["kind"], post, doc["seq"])


# --- the thread tree (§4.6) ------------------------------------------------------------------------

@dataclass(frozen=True)
class ThreadEntry:
    """One reply in a thread, in display order: its depth (1 for a direct reply)."""

    ref: PostRef
    to: PostRef
    depth: int
    date: str


def thread_order(root: PostRef, replies: Iterable[tuple[PostRef, PostRef, str]]
                 ) -> tuple[list[ThreadEntry], list[tuple[PostRef, str]]]:
    """The replies of a thread in display order (depth first, each level by date, then
    reference), and those refused with their reason: a reply whose parent is not in the
    thread (or forms a cycle: such replies never reach the root), deeper than MAX_DEPTH,
    or past MAX_THREAD.

    Args:
        root: the thread's root post.
        replies: (reply, the post it answers, its date) for each reply.
    """
    children: dict[PostRef, list[tuple[str, PostRef]]] = {}
    known: dict[PostRef, PostRef] = {}
    for ref, to, date in replies:
        if ref in known or ref == root:
            continue
        known[ref] = to
        children.setdefault(to, []).append((date, ref))
    out: list[ThreadEntry] = []
    refused: list[tuple[PostRef, str]] = []
    stack = [(root, 0)]
    reached = {root}
    accepted = 0
    while stack:
        parent, depth = stack.pop()
        kids = sorted(children.get(parent, ()), reverse=True)
        for date, ref in kids:
            reached.add(ref)
            if depth + 1 > MAX_DEPTH:
                refused.append((ref, f"deeper than {MAX_DEPTH} replies"))
                continue
            if accepted >= MAX_THREAD:
                refused.append((ref, f"the thread holds more than {MAX_THREAD} replies"))
                continue
            accepted += 1
            stack.append((ref, depth + 1))
        if parent != root:
            out.append(ThreadEntry(parent, known[parent], depth, ""))
    dates = {ref: date for ref, _, date in replies}
    out = [ThreadEntry(e.ref, e.to, e.depth, dates.get(e.ref, "")) for e in out]
    for ref in known:
        if ref not in reached:
            refused.append((ref, "its parent is not in the thread (or a reply loop)"))
    return out, refused
