"""The reader's values: what the fetch plan reads of a friend's stored state, what it
hands the store, and what the store gives back. Plain data, no I/O: `fetch_plan` (the
pure core of PROTOCOL.md §3.5) and `store` (SQLite) both speak these and neither needs
the other, as tuf's `api/metadata.py` serves both its updater and its repository.

    Reason            why a friend's fetch was refused: the words `o2m fetch` prints
    FriendState       what the store remembers of one friend's feed
    FeedStateChange   what one fetch that was not refused changes in it, of which
    ├── AcceptedHead  the new high-water mark (§3.5 step 8) and the pages stored (step 11)
    └── Validators    a file's HTTP validators, for the next conditional request
    PostRow           one post version to store
    SpooledText       its text, when it waits on disk for the update to be stored
    ThreadRow         one reply or reaction of a conversation (PROTOCOL.md §4), as stored
    FriendUpdate      all one fetch of one friend changes, stored in one transaction
    StoredPost, FriendSummary, Notification   what the store shows
"""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from o2m_pub.protocol.public_media import ListedFile

SHORT_ID_LENGTH = 10  # base32 characters: 50 bits, so 10^5 posts rarely collide

#: What a notification can be about (`o2m notifications`).
NOTIFICATION_KINDS = ("new_friend_feed", "unreachable", "stale", "key_changed",
                      "equivocation", "reply", "reaction", "conversation", "invitation_accepted", "moved",
                      "certificate_changed", "card_changed", "key_rotated", "card_refused", "over_quota")


class Reason(enum.StrEnum):
    """Why a friend's fetch was refused. Each value is the text `o2m fetch` prints and
    the store keeps in `last_reason` (a str enum, so it reads and stores as that text)."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    BAD_CERTIFICATE = "bad certificate"
    TLS_TOO_OLD = "TLS version too old"
    HTTP_ERROR = "http error"
    REDIRECT = "redirect refused"
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad signature"
    ROLLBACK = "rollback"
    EQUIVOCATION = "equivocation"
    KEY_CHANGED = "key changed"
    BAD_OBJECT = "bad object"
    OVER_QUOTA = "over quota"  # what they would store passes [reader] quota_per_friend

    @property
    def is_transport(self) -> bool:
        """The bytes could not be had (host, network, TLS, HTTP status), as against bytes
        that were had and are bad (tuf's DownloadError against RepositoryError): only
        the first kind, when it lasts, means the friend is unreachable."""
        return self in _TRANSPORT


_TRANSPORT = frozenset({Reason.UNREACHABLE, Reason.TIMEOUT, Reason.BAD_CERTIFICATE,
                        Reason.TLS_TOO_OLD, Reason.HTTP_ERROR, Reason.REDIRECT})


# ---------------------------------------------------------------- the fetcher's memory


@dataclass(frozen=True)
class FriendState:
    """The fetcher's memory of one friend's feed (a row of the store's friend_state)."""

    friend: str
    sign_pk: str
    seq: int | None = None
    head_digest: str | None = None
    head_signed: bytes | None = None
    updated: str | None = None
    expires: str | None = None
    pages: tuple[str, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    pub_etag: str | None = None
    pub_last_modified: str | None = None
    first_seen: str | None = None
    last_attempt: str | None = None
    last_success: str | None = None
    failing_since: str | None = None
    last_reason: str | None = None  # a Reason's text (older stores may hold other text)
    last_error: str | None = None
    stale_since: str | None = None
    keys_for: str | None = None
    feed_name: str | None = None
    head_key: bytes | None = None
    card_etag: str | None = None  # validators of their published card (§3.5 card refresh)
    card_last_modified: str | None = None
    sig_etag: str | None = None  # validators of their feed.json.sig (§1.4)
    sig_last_modified: str | None = None
    pub_seq: int | None = None  # the accepted feed.json.sig: its seq (rollback guard)
    pub_sha256: str | None = None  # ... and the feed.json it signs
    pub_reread: int = 0  # 1: read their feed.json once more, even unchanged (schema 4)


@dataclass(frozen=True)
class AcceptedHead:
    """A head newer than the stored one (§3.5 step 8), with every archive page stored
    once its update is (step 11 stops at these): the friend's new high-water mark."""

    seq: int
    signed: bytes  # its signed bytes: the same seq with other bytes is equivocation
    updated: str | None = None
    expires: str | None = None
    pages: tuple[str, ...] = ()  # hashes of the archive pages stored, old and new

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the signed bytes."""
        return hashlib.sha256(self.signed).hexdigest()


@dataclass(frozen=True)
class Validators:
    """A file's HTTP validators, sent back in the next conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FeedStateChange:
    """What one fetch that was not refused changes in the friend's FriendState. A
    field left None leaves the stored value as it is."""

    succeeded_at: str  # this attempt, which ends any run of failures
    stale_since: str | None = None  # the expiry of a stale head; None: not stale
    forget_head: bool = False  # the stored head is of no feed of this key: clear it,
    #                            its pages and its validators (before `head` is set)
    head: AcceptedHead | None = None
    head_validators: Validators | None = None
    public_validators: Validators | None = None  # of their feed.json
    first_seen: str | None = None  # their feed for us appeared now
    card_validators: Validators | None = None  # of their published card
    sig_validators: Validators | None = None  # of their feed.json.sig
    public_signature: tuple[int, str] | None = None  # (seq, sha256) of the accepted one
    public_read: bool = False  # their feed.json was read whole (ends a `pub_reread`)


@dataclass(frozen=True)
class SpooledText:
    """A post's text that waits on disk (`spool.py`) until its update is stored, so
    that a fetch holds no friend's text in memory (security review finding 5): the
    file's name in the spool, and what the store needs to know of it unread."""

    name: str
    size: int  # bytes, UTF-8
    digest: str  # hex SHA-256 of those bytes


@dataclass(frozen=True)
class PostRow:
    """A post version to store (the fetcher's output)."""

    id: str
    audience: str
    date: str
    title: str | None = None
    markdown: str | SpooledText | None = None
    html: str | None = None
    summary: str | None = None
    updated: str | None = None
    tags: tuple[str, ...] = ()
    reply_to: str | None = None
    url: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    object_hash: str | None = None
    media: tuple[ListedFile, ...] = ()  # public posts: the files `_o2m.media` lists (§1.4)
    site_path: str | None = None  # public posts: the URL after their site's URL, to
    #                               merge copies an earlier move left (not stored)


@dataclass(frozen=True)
class ThreadRow:
    """One reply or reaction of a conversation (PROTOCOL.md §4), verified: carried by a
    friend's feed, either their own (`via_post` None: in their item of that id) or as a
    link in their item for `via_post`, one of their posts (they are its OP).

    `status` is "ok", "stale" (the replier's host could not be reached: the previous
    copy is kept) or "failed" (`detail` says why; nothing of it is shown but the
    reason)."""

    author: str  # b64u signing key of the replier or reactor
    id: str  # their item id
    kind: str  # "reply" or "reaction"
    to_ref: str  # o2m:<author>/<id> of the post answered or reacted to
    date: str
    thread_ref: str | None = None  # the root of a reply's thread
    emoji: str | None = None
    statement: str = ""  # b64u of the signed statement
    key: str | None = None  # b64u of the reply object's key
    url: str | None = None  # the replier's site
    object_hash: str | None = None
    markdown: str | None = None  # of a linked reply (a direct one is in posts)
    title: str | None = None
    status: str = "ok"
    detail: str = ""
    via_post: str | None = None


@dataclass
class FriendUpdate:
    """Everything one accepted fetch of one friend changes, applied in one transaction.

    `state` is what changes in their feed state (None: only posts change); `upserts`
    replace posts by (friend, id) (an edit replaces, keeping the read flag unless the
    text changed); `deletes` are tombstoned ids."""

    friend: str
    sign_pk: str
    state: FeedStateChange | None = None
    upserts: list[PostRow] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    notifications: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    # PROTOCOL.md §4: their own replies and reactions (by their item id; replaced), the
    # ids of theirs tombstoned, and for each of their posts the whole set of what its
    # item links (replacing the set stored for it)
    thread_rows: list[ThreadRow] = field(default_factory=list)
    thread_deletes: list[str] = field(default_factory=list)
    thread_links: dict[str, list[ThreadRow]] = field(default_factory=dict)
    thread_news: int = 0  # replies and reactions in their threads new or changed


def short_id_for(friend_key: str, post_id: str, length: int = SHORT_ID_LENGTH) -> str:
    """A stable short id for the CLI: lowercase base32 of SHA-256(author key, 0, post id).
    Stable across fetches and edits (the item id stays), different per author."""
    digest = hashlib.sha256(f"{friend_key}\0{post_id}".encode()).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:length]


# ---------------------------------------------------------------- what the store shows


@dataclass(frozen=True)
class StoredPost:
    """One post of a friend, as stored. Text fields are the friend's own: `markdown` is
    their source (render it locally), `html` (public posts only) is untrusted HTML that
    MUST be sanitised (nh3) before it is shown."""

    friend: str
    id: str
    short_id: str
    audience: str  # "private" or "public"
    title: str | None
    markdown: str | None
    html: str | None
    summary: str | None
    date: str  # RFC 3339 UTC with Z
    updated: str | None
    tags: tuple[str, ...]
    reply_to: str | None
    url: str | None
    attachments: tuple[dict[str, Any], ...]  # name, media_type, hash, size (no keys)
    read: bool
    fetched: str
    # Its body rendered by the fetch (render.py): sanitised HTML, safe to show as it is;
    # None until then. `too_complex`: it is the escaped text, the post could not be
    # rendered within the limits (THREATS.md 49).
    rendered: str | None = None
    rendered_images: tuple[str, ...] = ()  # attachment names `rendered` shows inline
    too_complex: bool = False
    object_hash: str | None = None  # the version stored (a rendering is kept for it)
    # a public post's files, as its signed feed lists them (PROTOCOL.md §1.4): the only
    # photos of the friend's site the desk shows inline, and only with these bytes
    media: tuple[ListedFile, ...] = ()

    @property
    def cursor(self) -> str:
        """Pass as `before=` to get the page after this post (keyset paging)."""
        return f"{self.date}|{self.short_id}"


@dataclass(frozen=True)
class FriendSummary:
    """One line of the friends' overview: how their feed is doing."""

    friend: str
    posts: int
    unread: int
    seq: int | None
    last_success: str | None
    first_seen: str | None
    failing_since: str | None
    last_reason: str | None
    last_error: str | None
    stale_since: str | None
    expires: str | None


@dataclass(frozen=True)
class Notification:
    """One notification (`o2m notifications`): `kind` is one of NOTIFICATION_KINDS."""

    id: int
    kind: str
    friend: str | None
    detail: str
    created: str
    seen: bool
