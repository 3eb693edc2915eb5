"""The reader's side of a friend's feed (PROTOCOL.md §3.5): from downloaded bytes and the
stored state to one `FriendUpdate` for the store, or a refusal with its reason.

No sockets, no SQLite, no clock: the shell (`http_fetch.py`) passes in a `get` function
that downloads one file under the friend's site (with a size cap), what the store knew,
and the time. Verification runs in the order of §3.5:

    steps 1-7   open_head: size cap, magic, decryption, padding, signature, JSON, fields
                (and `expires` at most 30 days after `updated`, THREATS.md 57)
    step 8      accept_head: seq above the stored high-water mark (rollback and
                equivocation refused)
    step 9      accept_head: a head signed more than a day in the future is refused;
                expiry: a stale head is accepted but flagged (freeze warning)
    step 10     item count, form and per-item caps (open_head)
    step 11     archive pages, only back to the first one already stored, each by hash;
                at most MAX_ITEMS_PER_FETCH items in the head and these pages together,
                and the pages' bytes are charged to the friend's byte budget
    step 12     objects by hash and size, then decrypted with the item's key, charged
                to the same budget

A page or object the host does not serve refuses the whole update (the author's site is
broken or mid-upload; the next fetch retries); one that does not open, or a post that
is not well formed, fails that item alone (§3.5 "Missing files").

Edits replace (newest version of an id wins: head first, then pages newest first);
tombstones delete. A friend's text is kept as they published it: Markdown source for
private posts (rendered locally), untrusted HTML for public posts from their
`feed.json` (sanitised by the reading side before it is shown).

The values it reads and returns (`FriendState`, `FriendUpdate`, `PostRow`, `Reason`)
are in `model.py`, shared with the store.

    Refused (Exception)         this friend's fetch is refused; `.reason` is a `Reason`
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import shlex
from dataclasses import dataclass, field
from typing import Any, Protocol

from o2m_pub.protocol import feeds
from o2m_pub.protocol.attachments import MAX_ATTACHMENTS, is_attachment_name, is_media_type
from o2m_pub.protocol.canonical import (
    EncodingError,
    b64u_decode,
    b64u_encode,
    is_https_url,
    parse_json,
    utc_text,
)
from o2m_pub.protocol.cards import CardError, parse_card
from o2m_pub.protocol.feed_signature import (
    FEED_PATH,
    MAX_SIG_BYTES,
    SIG_PATH,
    FeedSignatureError,
    check_feed,
    check_not_older,
    open_feed_signature,
)
from o2m_pub.protocol.conversation import ConversationError, is_post_ref
from o2m_pub.protocol.keyfile import fingerprint
from o2m_pub.protocol.post_limits import (
    MAX_CONTENT_HTML,
    MAX_PUBLIC_FEED_BYTES,
    MAX_PUBLIC_ITEMS,
    MAX_SUMMARY,
    MAX_TITLE,
    tags_problem,
)
from o2m_pub.protocol.public_media import parse_media
from o2m_pub.protocol.rotation import RotationError, follow_chain
from o2m_pub.reader.model import (
    AcceptedHead,
    FeedStateChange,
    FriendState,
    FriendUpdate,
    PostRow,
    Reason,
    SpooledText,
    ThreadRow,
    Validators,
)
from o2m_pub.reader.thread_fetch import GetSite, linked_rows, own_item_row

MAX_PAGES_PER_FETCH = 4096
MAX_ITEMS_PER_FETCH = 100_000  # per friend and run: the head's items and its new pages'
MAX_FRIEND_BYTES = 512 << 20  # per friend and run: new archive pages and objects together
CARD_PATH = ".well-known/o2m-card.json"
PUBLIC_FEED_PATH = FEED_PATH
# A refusal for these reasons is also a notification, of this kind (THREATS.md 6, 11).
_NOTIFIED = {Reason.KEY_CHANGED: "key_changed", Reason.EQUIVOCATION: "equivocation"}


class Refused(Exception):
    """A friend's fetch is refused: nothing of it is stored."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class ByteBudget:
    """The bytes of archive pages and objects one friend may cost in one run (§3.5:
    each file is charged before it is downloaded; THREATS.md 16, 20)."""

    total: int
    spent: int = 0

    def spend(self, n: int) -> None:
        """Charge `n` bytes, before they are downloaded.

        Raises:
            Refused(OVERSIZED): they would take the friend over the budget.
        """
        self.spent += n
        if self.spent > self.total:
            raise Refused(Reason.OVERSIZED, f"more than {self.total:,} bytes of archive "
                          "pages and objects in one fetch")


@dataclass(frozen=True)
class Download:
    """One download: status 200 (body read whole, within the cap), 304 or 404."""

    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class Getter(Protocol):
    def __call__(self, path: str, *, cap: int, etag: str | None = None,
                 last_modified: str | None = None) -> Download:
        """Download `path` under the friend's site URL; 200, 304 or 404, else raise
        Refused (transport, TLS, status, size cap, deadline)."""


@dataclass(frozen=True)
class FriendKeys:
    """What verifying one friend's feed for us needs (§3.1)."""

    name: str  # the local friend name
    sign_pk: bytes  # from their card
    box_pk: bytes
    reader_sign_pk: bytes  # ours
    secrets: feeds.FeedSecrets
    site_url: str  # their card's url, ending in "/"
    feed_pk: bytes | None = None  # their card's public-feed key (None: an o2m 1.0 site)
    rotations: tuple[bytes, ...] = ()  # the verified rotations that led to sign_pk
    new_secrets: bool = False  # the secrets were derived anew (their keys or ours changed)

    @property
    def sign_pk_text(self) -> str:
        return b64u_encode(self.sign_pk)


@dataclass
class Outcome:
    """What happened to one friend in one fetch."""

    friend: str
    status: str  # "new", "unchanged", "no feed", "refused"
    new: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0  # items whose object would not open with their key (THREATS.md 19)
    stale_since: str | None = None
    reason: Reason | None = None
    detail: str = ""
    update: FriendUpdate | None = None
    notifications: list[tuple[str, str]] = field(default_factory=list)
    public_error: str | None = None  # their feed.json was refused; the rest still landed
    public_unsigned: bool = False  # their public feed was read without a signature
    card: Any = None  # card_refresh.CardRefresh: what their published card came to
    as_text: int = 0  # posts too complex to render: stored as their text (render.py)
    no_feed: bool = False  # no feed for you there (yet); kept when public posts are "new"

    @property
    def ok(self) -> bool:
        return self.status != "refused"


# ---------------------------------------------------------------- the head (§3.5 1-10)


def verify_head(data: bytes, keys: FriendKeys, state: FriendState | None,
                now: str) -> tuple[feeds.Head, feeds.Verdict]:
    """Steps 1-10 for a downloaded head.

    Raises:
        Refused: oversized, malformed, bad signature, rollback or equivocation.
    """
    if len(data) > feeds.MAX_HEAD_BYTES:  # step 1 (open_head checks it too)
        raise Refused(Reason.OVERSIZED, "head: too large")
    try:
        head = feeds.open_head(data, keys.secrets, author_sign_pk=keys.sign_pk,
                               reader_sign_pk=keys.reader_sign_pk)
    except feeds.FeedFormatError as e:
        raise Refused(Reason.MALFORMED, f"head: {e}") from None
    except feeds.FeedAuthError as e:
        raise Refused(Reason.BAD_SIGNATURE, f"head: {e}") from None
    try:
        verdict = feeds.accept_head(head, stored_seq=state.seq if state else None,
                                    stored_signed=state.head_signed if state else None,
                                    now=now)
    except feeds.EquivocationError as e:
        raise Refused(Reason.EQUIVOCATION, str(e)) from None
    except feeds.RollbackError as e:
        raise Refused(Reason.ROLLBACK, str(e)) from None
    except feeds.FutureHeadError as e:  # THREATS.md 57
        raise Refused(Reason.MALFORMED, f"head: {e}") from None
    return head, verdict


# ---------------------------------------------------------------- pages (§3.5 11)


def read_archive(head: feeds.Head, keys: FriendKeys, stored_pages: frozenset[str],
                 get: Getter, budget: ByteBudget) -> tuple[list[feeds.Item], list[str]]:
    """The items of archive pages not yet stored, newest page first, stopping at the
    first page already stored; returns (items, the new pages' hashes).

    Each page's size is taken from `budget` (the friend's bytes for this run) before it
    is downloaded, and the head's and pages' items together stop at
    MAX_ITEMS_PER_FETCH: a chain of 4096 pages of 4 MiB would be 16 GiB and 16.7
    million items (THREATS.md 16)."""
    items: list[feeds.Item] = []
    new_pages: list[str] = []
    ref = head.prev
    while ref is not None and ref.hash not in stored_pages:
        if len(new_pages) >= MAX_PAGES_PER_FETCH or ref.hash in new_pages:
            raise Refused(Reason.MALFORMED, "archive pages loop or never end")
        budget.spend(ref.size)
        resp = get(ref.path, cap=ref.size)
        if resp.status != 200:
            raise Refused(Reason.HTTP_ERROR, f"archive page {ref.hash[:12]}: HTTP {resp.status}")
        try:
            page_items, prev = feeds.open_page(resp.body, ref, keys.secrets,
                                               author_sign_pk=keys.sign_pk,
                                               reader_sign_pk=keys.reader_sign_pk)
        except feeds.FeedFormatError as e:
            raise Refused(Reason.MALFORMED, f"archive page: {e}") from None
        except feeds.FeedAuthError as e:
            raise Refused(Reason.BAD_SIGNATURE, f"archive page: {e}") from None
        items += page_items
        if len(head.items) + len(items) > MAX_ITEMS_PER_FETCH:
            raise Refused(Reason.OVERSIZED, f"more than {MAX_ITEMS_PER_FETCH:,} items in the head "
                          "and its archive pages")
        new_pages.append(ref.hash)
        ref = prev
    return items, new_pages


def newest_versions(items: list[feeds.Item]) -> list[feeds.Item]:
    """One item per id, the first seen (items come newest first: head, then pages)."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            out.append(item)
    return out


# ---------------------------------------------------------------- objects (§3.5 12)


def _optional_text(doc: dict[str, Any], key: str, limit: int) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise feeds.FeedFormatError(f"bad {key}")
    return value


def _post_text(doc: dict[str, Any], key: str, limit: int) -> None:
    """An optional text of the post: absent, or a string of at most `limit` characters."""
    if key in doc and (not isinstance(doc[key], str) or len(doc[key]) > limit):
        raise feeds.FeedFormatError(f"post: bad {key}")


def _check_attachment_name(name: Any) -> None:
    """§3.3: the attachment's path relative to the post, as its Markdown refers to it: in
    normal form (no empty, "." or inner ".." segment; ".." only leading), not absolute,
    no backslash, NUL or other control character, 1 to 255 bytes of UTF-8. It is never
    used as a file name (the reader keeps attachments by hash)."""
    if not is_attachment_name(name):
        raise feeds.FeedFormatError(f"post: bad attachment name {name!r:.80}")


def _check_attachment(a: Any) -> None:
    if not isinstance(a, dict) or not {"name", "media_type", "hash", "size", "key"} <= a.keys():
        raise feeds.FeedFormatError("post: bad attachment")
    _check_attachment_name(a["name"])
    if not is_media_type(a["media_type"]):
        raise feeds.FeedFormatError("post: bad attachment media_type")
    feeds.ObjectRef.from_json({k: a[k] for k in ("hash", "key", "size")})


def parse_post(plaintext: bytes) -> dict[str, Any]:
    """The post document of §3.3, checked field by field (fails closed on the fields it
    knows; keys it does not know are ignored, for forward compatibility).

    Raises:
        feeds.FeedFormatError: anything but a well-formed o2m-post.
    """
    try:
        doc = parse_json(plaintext, max_bytes=feeds.MAX_OBJECT_BYTES)
    except EncodingError as e:
        raise feeds.FeedFormatError(f"post: {e}") from None
    if not isinstance(doc, dict) or doc.get("type") != "o2m-post" or type(doc.get("v")) is not int \
            or doc["v"] != 1:  # `true == 1` in Python: the type is checked too
        raise feeds.FeedFormatError("not an o2m post of version 1")
    if not isinstance(doc.get("markdown"), str):
        raise feeds.FeedFormatError("post without markdown")
    feeds.check_time(doc.get("date"))
    if "updated" in doc:
        feeds.check_time(doc["updated"])
    _post_text(doc, "title", MAX_TITLE)
    _post_text(doc, "summary", MAX_SUMMARY)
    if "reply_to" in doc and not (is_https_url(doc["reply_to"])
                                  or is_post_ref(doc["reply_to"])):
        raise feeds.FeedFormatError("post: bad reply_to")
    if "thread" in doc and not (is_post_ref(doc["thread"]) and is_post_ref(doc.get("reply_to"))):
        raise feeds.FeedFormatError("post: bad thread")
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) \
            or tags_problem(tags):
        raise feeds.FeedFormatError("post: bad tags")
    attachments = doc.get("attachments", [])
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise feeds.FeedFormatError("post: bad attachments")
    for a in attachments:
        _check_attachment(a)
    return doc


def _get_object(ref: feeds.ObjectRef, get: Getter, what: str) -> bytes:
    """Download an object and check its size and hash (THREATS.md 18, 20): a host that
    serves other bytes under a hash refuses the whole friend."""
    resp = get(ref.path, cap=ref.size)
    if resp.status != 200:
        raise Refused(Reason.HTTP_ERROR, f"{what} {ref.hash[:12]}: HTTP {resp.status}")
    if len(resp.body) != ref.size or hashlib.sha256(resp.body).hexdigest() != ref.hash:
        raise Refused(Reason.BAD_OBJECT, f"{what} {ref.hash[:12]} does not match its hash")
    return resp.body


class Attachments(Protocol):
    """The attachment cache as one friend's fetch sees it (THREATS.md 23)."""

    def has(self, object_hash: str) -> bool:
        """Cached, and credited to this friend by an earlier download of their own."""

    def save(self, object_hash: str, plaintext: bytes) -> bool:
        """Cache bytes this friend's download and key just vouched for; False when other
        bytes are cached under that hash (then the attachment is left out)."""


class Spool(Protocol):
    """Where one friend's fetch keeps their texts until the update is stored (the
    shell's `spool.FriendSpool`): a long one goes to disk, so that a fetch holds one
    object at a time in memory, not a friend's whole update (security review finding 5)."""

    def keep(self, text: str) -> str | SpooledText:
        """`text` itself, or what stands for it on disk."""


def read_post(item: feeds.Item, get: Getter, attachments: Attachments,
              budget: ByteBudget, spool: Spool | None = None) -> PostRow | None:
    """Fetch, check and decrypt one post version and its attachments; None when its
    object does not open with the item's key or is not a well-formed post (that item
    alone fails, THREATS.md 19). Its text goes to `spool`, when there is one."""
    ref = item.object
    assert ref is not None
    budget.spend(ref.size)
    data = _get_object(ref, get, "object")
    try:
        plaintext = feeds.open_object(data, ref)
        del data  # each copy of a big object goes as soon as the next is made
        doc = parse_post(plaintext)
        del plaintext
    except (feeds.FeedAuthError, feeds.FeedFormatError):
        return None
    kept, opened = [], set()  # opened: this post's objects downloaded and checked here
    for a in doc.get("attachments", []):
        aref = feeds.ObjectRef.from_json({k: a[k] for k in ("hash", "key", "size")})
        # Cached for this friend only after their own download and key check: a copy
        # cached for another friend proves nothing about this post's key (THREATS 23).
        # One file under two names (§3.3) is one object: downloaded once.
        if (aref.hash, aref.key) not in opened and not attachments.has(aref.hash):
            budget.spend(aref.size)
            blob = _get_object(aref, get, "attachment")
            try:
                if not attachments.save(aref.hash, feeds.open_object(blob, aref)):
                    continue
            except (feeds.FeedAuthError, feeds.FeedFormatError):
                continue  # that attachment alone is left out
            opened.add((aref.hash, aref.key))
        kept.append({"name": a["name"], "media_type": a["media_type"], "hash": aref.hash,
                     "size": aref.size})
    markdown = doc.pop("markdown")
    return PostRow(id=item.id, audience="private", date=doc["date"], title=doc.get("title"),
                   markdown=spool.keep(markdown) if spool is not None else markdown,
                   summary=doc.get("summary"),
                   updated=doc.get("updated"), tags=tuple(doc.get("tags", [])),
                   reply_to=doc.get("reply_to") or item.reply_to,
                   attachments=tuple(kept), object_hash=ref.hash)


# ---------------------------------------------------------------- public posts (§1.4)


def _utc(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("bad date")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("date without offset")
    try:
        return utc_text(parsed)  # in UTC, as everything stored
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise ValueError("date out of range") from None


def _stable_id(item: dict[str, Any]) -> str | None:
    """The stable post id of a public item (`_o2m.id`, §1.4): b64u of 16 bytes."""
    extension = item.get("_o2m")
    value = extension.get("id") if isinstance(extension, dict) else None
    if not isinstance(value, str):
        return None
    try:
        b64u_decode(value, length=16)
    except EncodingError:
        return None
    return value


def parse_public_feed(data: bytes, site_url: str, *, signed: bool = False) -> list[PostRow]:
    """A friend's public JSON Feed (§1.4) as posts. Only items whose id is a permalink
    on their own site are kept (no other origin can be credited to them); the HTML is
    kept as untrusted text. A post is keyed by its stable id (`_o2m.id`) when the feed
    is `signed` (so it keeps its identity when the site moves), else by its permalink:
    an unsigned feed is only as authentic as TLS makes it, and may not name ids.

    Raises:
        Refused: not a JSON Feed within the caps.
    """
    try:
        doc = parse_json(data, max_bytes=MAX_PUBLIC_FEED_BYTES)
        items = doc["items"]
        if not isinstance(items, list) or len(items) > MAX_PUBLIC_ITEMS:
            raise ValueError("too many items")
        rows = []
        for it in items:
            url = it.get("url") or it.get("id")
            if not isinstance(url, str) or not url.startswith(site_url) or len(url) > 2048:
                continue
            html = it.get("content_html")
            if html is not None and (not isinstance(html, str) or len(html) > MAX_CONTENT_HTML):
                raise ValueError("bad content_html")
            tags = it.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError("bad tags")
            extension = it.get("_o2m")
            if not isinstance(extension, dict):
                extension = {}
            reply_to = extension.get("reply_to")
            stable = _stable_id(it) if signed else None
            row = PostRow(
                id=stable or url, audience="public", date=_utc(it.get("date_published")),
                title=_optional_text(it, "title", MAX_TITLE), html=html or "",
                summary=_optional_text(it, "summary", MAX_SUMMARY),
                updated=_utc(it["date_modified"]) if it.get("date_modified") else None,
                tags=tuple(tags[:64]), reply_to=reply_to if isinstance(reply_to, str) else None,
                url=url, site_path=url[len(site_url):] or None,
                # the files its HTML refers to: a bad list or entry is ignored, as a bad
                # id is (§1.4), and its images stay links
                media=parse_media(extension.get("media"), site_url))
            digest = hashlib.sha256(repr(row).encode()).hexdigest()
            rows.append(dataclasses.replace(row, object_hash=digest))
        return rows
    except (EncodingError, ValueError, KeyError, TypeError, AttributeError, OverflowError,
            feeds.FeedFormatError) as e:
        raise Refused(Reason.MALFORMED, f"public feed.json: {e}") from None


# ---------------------------------------------------------------- one friend


def check_card(keys: FriendKeys, get: Getter) -> None:
    """When their feed is gone or no longer opens, look at the card their site
    publishes: other keys there mean a key change, refused until the owner accepts
    the new card (THREATS.md 6).

    Raises:
        Refused(KEY_CHANGED): the published card has other keys than the stored one.
    """
    try:
        resp = get(CARD_PATH, cap=4096)
    except Refused:
        return
    if resp.status != 200:
        return
    try:
        card = parse_card(resp.body)
    except CardError:
        return
    if card.sign_pk != keys.sign_pk or card.box_pk != keys.box_pk:
        # The command names the stored friend and the stored site, where this card was
        # found, never the new card's URL; every word is shell-quoted all the same
        # (§2.4 allows $ ( ) ; & ' in a URL): pasted, it runs o2m and nothing else
        # (THREATS.md 50). Last on the line, so no delimiter can be spoofed.
        command = shlex.join(["o2m", "friend", "add", keys.name, keys.site_url,
                              "--accept-key-change"])
        raise Refused(Reason.KEY_CHANGED, f"their site's card has new keys (fingerprint "
                      f"{fingerprint(card.sign_pk, card.box_pk)}); check it with them, then "
                      f"run: {command}")


def rotated_to(old_sign_pk: str, rotations: tuple[bytes, ...], new_sign_pk: bytes) -> bool:
    """Whether the statements kept with a friend (verified when their card was adopted,
    §2.5) lead from the key the stored state was verified with to their key now."""
    try:
        old = b64u_decode(old_sign_pk, length=32)
    except EncodingError:
        return False
    start = next((i for i, r in enumerate(rotations) if _starts_at(r, old)), None)
    if start is None:
        return False
    try:
        last = follow_chain(old, list(rotations[start:]))
    except RotationError:
        return False
    return last is not None and last.new_sign_pk == new_sign_pk


def _starts_at(statement: bytes, sign_pk: bytes) -> bool:
    from o2m_pub.protocol.rotation import parse_rotation
    try:
        return parse_rotation(statement).old_sign_pk == sign_pk
    except RotationError:
        return False


def fetch_friend(keys: FriendKeys, state: FriendState | None,
                 stored_hashes: dict[str, str | None], get: Getter,
                 attachments: Attachments, now: dt.datetime,
                 public: bool = True, max_bytes: int = MAX_FRIEND_BYTES,
                 spool: Spool | None = None, get_site: GetSite | None = None,
                 threads: Threads | None = None) -> Outcome:
    """Fetch and verify one friend's feed for us (and their public feed.json): an
    Outcome whose `update` the store applies in one transaction. At most `max_bytes`
    of archive pages and objects are downloaded. Raises nothing: a refusal is an
    Outcome with a reason, and nothing of it is to be stored."""
    stamp = utc_text(now)
    # Their head is another file now (their keys or ours changed): the validators
    # kept are of the old one.
    other_head = keys.new_secrets or (state is not None and state.sign_pk != keys.sign_pk_text)
    if state is not None and other_head:
        state = dataclasses.replace(state, etag=None, last_modified=None)
    if state is not None and state.sign_pk != keys.sign_pk_text:
        if rotated_to(state.sign_pk, keys.rotations, keys.sign_pk):
            # A verified key rotation (§2.5) starts the new key's feed afresh: the one
            # way the high-water mark is ever reset (THREATS.md 17, fast-forward).
            state = FriendState(friend=state.friend, sign_pk=keys.sign_pk_text,
                                first_seen=state.first_seen,
                                failing_since=state.failing_since)
        else:
            # A card the owner accepted by hand (`friend add --accept-key-change`): the
            # new key's feed must go on above the high-water mark. Its head is another
            # file, so the old one's HTTP validators are dropped.
            state = dataclasses.replace(state, sign_pk=keys.sign_pk_text)
    try:
        return _fetch(keys, state, stored_hashes, get, attachments, stamp, public,
                      ByteBudget(max_bytes), other_head, spool,
                      _Conversation(get_site, threads or {}))
    except Refused as e:
        return refusal(keys.name, state, e, now)


def refusal(friend: str, state: FriendState | None, e: Refused, now: dt.datetime) -> Outcome:
    """The outcome of a friend's fetch refused for `e`, with the notifications it
    calls for: a key change, an equivocation; unreachable, told at once on the first
    failure of a run of them, and once per run."""
    out = Outcome(friend, "refused", reason=e.reason, detail=e.detail)
    if e.reason in _NOTIFIED:
        out.notifications.append((_NOTIFIED[e.reason], e.detail))
    if e.reason.is_transport and not (state and state.failing_since):
        what = e.detail if e.reason is Reason.UNREACHABLE else f"{e.reason}: {e.detail}"
        out.notifications.append(("unreachable", what))
    return out


def _fetch(keys: FriendKeys, state: FriendState | None, stored_hashes: dict[str, str | None],
           get: Getter, attachments: Attachments, stamp: str, public: bool,
           budget: ByteBudget, other_head: bool = False,
           spool: Spool | None = None, talk: "_Conversation | None" = None) -> Outcome:
    out = Outcome(keys.name, "unchanged")
    update = FriendUpdate(keys.name, keys.sign_pk_text)
    # The feed state to check against: none before a first accepted head (a changed key
    # has already been given a fresh state by fetch_friend); what is stored of a head
    # then belongs to no feed of this key, and is cleared.
    known = state if state is not None and state.seq is not None else None
    head_validators: Validators | None = Validators() if other_head else None
    accepted: AcceptedHead | None = None
    first_seen: str | None = None
    resp = get(keys.secrets.head_path, cap=feeds.MAX_HEAD_BYTES,
               etag=known.etag if known else None,
               last_modified=known.last_modified if known else None)
    if resp.status == 404:
        check_card(keys, get)
        if known and not keys.new_secrets:  # THREATS.md 29: it went away; keep what we have
            raise Refused(Reason.HTTP_ERROR, "their feed for you is gone (HTTP 404)")
        out.status = "no feed"  # (for new keys: until they fetch your card and build)
        out.no_feed = True
    elif resp.status == 304:
        expires = state.expires if state else None
        out.stale_since = expires if expires and expires <= stamp else None  # §3.5 step 9
    else:
        try:
            head, verdict = verify_head(resp.body, keys, known, stamp)
        except Refused as e:
            if e.reason == Reason.BAD_SIGNATURE:
                check_card(keys, get)
            raise
        head_validators = Validators(resp.etag, resp.last_modified)
        out.stale_since = head.expires if verdict.stale else None
        if verdict.fresh:
            accepted = _accept(head, keys, known, stored_hashes, get, attachments, out,
                               update, budget, spool, talk or _Conversation(None, {}))
            if state is None or state.first_seen is None:
                first_seen = stamp
                update.notifications.append(("new_friend_feed",
                                             "their feed for you appeared: they added you"))
    if out.stale_since and not (state and state.stale_since == out.stale_since):
        update.notifications.append(("stale", f"their feed is stale since {out.stale_since} "
                                     "(their site stopped updating, or is frozen)"))
    pub = _public(keys, state, stored_hashes, get, out, update) if public else _Public()
    update.state = FeedStateChange(
        succeeded_at=stamp, stale_since=out.stale_since, forget_head=known is None,
        head=accepted, head_validators=head_validators, public_validators=pub.validators,
        first_seen=first_seen, sig_validators=pub.sig_validators,
        public_signature=pub.signature, public_read=pub.read)
    out.update = update
    if out.new or out.updated or out.deleted:
        out.status = "new"
    return out


def _accept(head: feeds.Head, keys: FriendKeys, state: FriendState | None,
            stored_hashes: dict[str, str | None], get: Getter, attachments: Attachments,
            out: Outcome, update: FriendUpdate, budget: ByteBudget,
            spool: Spool | None = None,
            talk: "_Conversation | None" = None) -> AcceptedHead:
    """Steps 11-12 for a head newer than the stored one; returns the new high-water mark.
    Then, for each item, what it says of conversations (§4.5): their own replies and
    reactions, and the links in their items for their posts. The links come last: a
    reply they link is fetched with what is left of the byte budget (and the deadline)
    once their own pages and objects are read, so it can never take the room of those
    and have the friend's update refused (§4.5: "never refused for it")."""
    talk = talk or _Conversation(None, {})
    stored_pages = frozenset(state.pages if state else ())
    page_items, new_pages = read_archive(head, keys, stored_pages, get, budget)
    talking: list[feeds.Item] = []
    for item in newest_versions(list(head.items) + page_items):
        if item.deleted:
            if item.id in stored_hashes:
                update.deletes.append(item.id)
                out.deleted += 1
            update.thread_deletes.append(item.id)
            if item.id in talk.threads:
                update.thread_links[item.id] = []
            continue
        talking.append(item)
        if item.is_reaction:
            continue
        if stored_hashes.get(item.id) == item.object.hash:
            continue  # this version is stored: never fetched again
        row = read_post(item, get, attachments, budget, spool)
        if row is None:
            out.skipped += 1
            continue
        _upsert(update, out, stored_hashes, row)
    for item in talking:
        _conversation(item, keys, update, budget, talk)
    return AcceptedHead(head.seq, head.signed, head.updated, head.expires,
                        pages=tuple(state.pages if state else ()) + tuple(new_pages))


Threads = dict[str, dict[tuple[str, str], ThreadRow]]  # via_post -> (author, id) -> row


@dataclass(frozen=True)
class _Conversation:
    """What a fetch needs for conversations: a `get` for other sites (None: links are
    not followed), and the rows stored for each of this friend's posts."""

    get_site: GetSite | None
    threads: Threads


def _conversation(item: feeds.Item, keys: FriendKeys, update: FriendUpdate,
                  budget: ByteBudget, talk: _Conversation) -> None:
    """§4.5 for one item of a verified head: a reply or reaction of theirs, and the links
    their item carries for one of their posts. A failure fails that reply alone."""
    try:
        row = own_item_row(item, keys.sign_pk_text)
    except ConversationError as e:
        update.notifications.append(("conversation", f"a reply or reaction of theirs could "
                                                     f"not be checked: {e}"))
        row = None
    if row is not None:
        update.thread_rows.append(row)
    if item.is_reaction or talk.get_site is None:
        return
    if not item.replies and not item.reactions and item.id not in talk.threads:
        return
    rows, problems = linked_rows(item, op_key=keys.sign_pk_text, op_site_url=keys.site_url,
                                 known=talk.threads.get(item.id, {}), get_site=talk.get_site,
                                 budget=budget, parse_post=parse_post)
    update.thread_links[item.id] = rows
    known = talk.threads.get(item.id, {})
    update.thread_news += sum(1 for r in rows if r.status == "ok" and (
        (before := known.get((r.author, r.id))) is None or before.statement != r.statement))
    for line in problems[:5]:
        update.notifications.append(("conversation", line))


def _upsert(update: FriendUpdate, out: Outcome, stored_hashes: dict[str, str | None],
            row: PostRow) -> None:
    """Store a post, counted as new or as an edit of one already stored."""
    update.upserts.append(row)
    if row.id in stored_hashes:
        out.updated += 1
    else:
        out.new += 1


@dataclass
class _Public:
    """What one fetch changes of a friend's public feed state."""

    validators: Validators | None = None  # of feed.json
    sig_validators: Validators | None = None  # of feed.json.sig
    signature: tuple[int, str] | None = None  # (seq, sha256) of the signature accepted
    read: bool = False  # feed.json was read whole (a store's `pub_reread` is done)


def _public(keys: FriendKeys, state: FriendState | None, stored_hashes: dict[str, str | None],
            get: Getter, out: Outcome, update: FriendUpdate) -> _Public:
    """Their public posts, from feed.json (§1.4), by conditional requests. A post that
    leaves the feed (older than its newest `feed_items`) stays stored.

    With a `feed_pk` in their card, `feed.json.sig` is fetched first and checked
    (their feed key, their key as author, no lower seq than accepted before), then
    feed.json by its size and SHA-256: an injected or altered post refuses the public
    feed (THREATS.md 54). Without one (an o2m 1.0 site), feed.json is read as before,
    as authentic as TLS makes it, and the outcome says so (`public_unsigned`).

    It never holds up what their signed feed for us brought: a public feed that
    cannot be fetched, read or verified is reported in `out.public_error` with one
    line, nothing of it is stored, and it is asked for again next time."""
    result = _Public()
    # a store from before items listed their files (schema 4) reads feed.json once
    # more, unchanged or not, to keep its `_o2m.media`
    fresh = state is not None and not state.pub_reread
    try:
        if keys.feed_pk is None:
            out.public_unsigned = True
            resp = get(PUBLIC_FEED_PATH, cap=MAX_PUBLIC_FEED_BYTES,
                       etag=state.pub_etag if fresh else None,
                       last_modified=state.pub_last_modified if fresh else None)
            if resp.status != 200:
                return result
            rows = parse_public_feed(resp.body, keys.site_url)
            result.validators = Validators(resp.etag, resp.last_modified)
        else:
            rows = _signed_public(keys, state, get, result)
            if rows is None:
                return result
    except Refused as e:
        out.public_error = f"{e.reason}: {e.detail}"
        return _Public()
    except FeedSignatureError as e:
        out.public_error = str(e)
        return _Public()
    result.read = True
    for row in rows:
        stored = stored_hashes.get(row.id, "")
        if stored == row.object_hash:
            continue
        if stored is None:  # a version the store forgot to read again (its schema 4
            update.upserts.append(row)  # migration): stored anew, no news to report
            continue
        _upsert(update, out, stored_hashes, row)
    return result


def _signed_public(keys: FriendKeys, state: FriendState | None, get: Getter,
                   result: _Public, retry: bool = True) -> list[PostRow] | None:
    """The rows of a signed public feed, or None when it is unchanged (its signature
    answered 304, or is the one accepted before) or not published (404).

    Raises:
        FeedSignatureError: a missing or bad signature, a rollback, or a feed.json
            that is not the one signed.
        Refused: transport failures, caps, a malformed feed.json.
    """
    assert keys.feed_pk is not None
    known = state is not None and state.pub_seq is not None
    again = known and bool(state.pub_reread)  # read it whole, even the one accepted
    ask = known and not again  # with its validators
    resp = get(SIG_PATH, cap=MAX_SIG_BYTES, etag=state.sig_etag if ask else None,
               last_modified=state.sig_last_modified if ask else None)
    if resp.status == 304:
        return None
    if resp.status == 404:
        feed = get(PUBLIC_FEED_PATH, cap=MAX_PUBLIC_FEED_BYTES)
        if feed.status == 404:
            return None  # no public feed at all
        raise FeedSignatureError("public feed: signature does not match: feed.json.sig "
                                 "is missing, and their card names a feed key")
    signature = open_feed_signature(resp.body, feed_pk=keys.feed_pk,
                                    author_sign_pk=keys.sign_pk)
    result.sig_validators = Validators(resp.etag, resp.last_modified)
    result.signature = (signature.seq, signature.sha256)
    stored_sha = state.pub_sha256 if state else None
    if (check_not_older(signature, state.pub_seq if state else None, stored_sha)
            or signature.sha256 == stored_sha) and not again:
        return None  # the feed.json accepted before, signed again
    if signature.size > MAX_PUBLIC_FEED_BYTES:  # §1.4: a cap of the reader, not a mismatch
        raise Refused(Reason.OVERSIZED, f"public feed.json: {signature.size:,} bytes signed, "
                      f"over the {MAX_PUBLIC_FEED_BYTES:,} bytes a reader takes "
                      "(PROTOCOL.md §1.4)")
    try:  # no byte past the size signed is downloaded
        feed: Download | None = get(PUBLIC_FEED_PATH, cap=signature.size)
    except Refused as e:
        if e.reason != Reason.OVERSIZED:
            raise
        feed = None
    if feed is not None and feed.status != 200:
        raise FeedSignatureError(f"public feed: signature does not match: feed.json "
                                 f"answered HTTP {feed.status}")
    try:
        if feed is None:
            raise FeedSignatureError(f"public feed: signature does not match: feed.json is "
                                     f"larger than the {signature.size:,} bytes signed")
        check_feed(signature, feed.body)
    except FeedSignatureError:
        if retry:  # a publish between the two downloads? Both once more (§1.4)
            return _signed_public(keys, None if state is None else dataclasses.replace(
                state, sig_etag=None, sig_last_modified=None), get, result, retry=False)
        raise
    return parse_public_feed(feed.body, keys.site_url, signed=True)
