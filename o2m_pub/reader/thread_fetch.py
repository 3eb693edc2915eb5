"""The reader's side of conversations (PROTOCOL.md §4.5): from a friend's verified items
to the replies and reactions to store.

Pure like `fetch_plan`: the shell passes a `get_site(url, tls_pin)` that returns a `get`
for another site (the replier's), with the pin or the CA check, within the friend's
deadline. A link that fails fails that reply alone ("reply from X could not be checked:
…"); it never refuses the OP's feed.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from o2m_pub.protocol import feeds
from o2m_pub.protocol.canonical import b64u_decode, b64u_encode
from o2m_pub.protocol.cards import host_is_local
from o2m_pub.protocol.conversation import (
    ConversationError,
    PostRef,
    ReplyLink,
    check_linked,
    check_reply_post,
    open_link,
    open_reaction,
    open_reaction_text,
    open_reply,
)
from o2m_pub.reader.model import Reason, ThreadRow

GetSite = Callable[[str, "bytes | None"], Callable[..., Any]]
# §4.5 step 7: a reply read through a thread (its replier may be no friend of ours, and
# nothing of it counts towards a friend's quota) is at most this big
MAX_LINKED_OBJECT = 1 << 20


def statement_digest(statement_b64: str) -> str:
    return hashlib.sha256(statement_b64.encode()).hexdigest()


def own_item_row(item: feeds.Item, author: str) -> ThreadRow | None:
    """A reply or reaction in its author's own feed (§4.2, §4.3): the statement must be
    signed by the feed's author, for this item and (a reply) this object.

    Raises:
        ConversationError: a statement that does not fit its item.
    """
    if item.statement is None:
        return None
    try:
        signed = b64u_decode(item.statement)
    except (ValueError, TypeError):
        raise ConversationError("bad statement encoding") from None
    if item.is_reaction:
        r = open_reaction(signed)
        if r.author != author or r.id != item.id:
            raise ConversationError("a reaction signed by someone else, or for another item")
        return ThreadRow(r.author, r.id, "reaction", r.to.text, r.date, emoji=r.emoji,
                         statement=item.statement)
    s = open_reply(signed)
    assert item.object is not None
    if (s.author != author or s.id != item.id or s.object_hash != item.object.hash
            or s.object_size != item.object.size):  # §4.5: the item's object, hash and size
        raise ConversationError("a reply statement signed by someone else, or for another "
                                "item or version")
    if item.reply_to is not None and item.reply_to != s.to.text:
        raise ConversationError("the item answers another post than its statement says")
    return ThreadRow(s.author, s.id, "reply", s.to.text, s.date, thread_ref=s.thread.text,
                     statement=item.statement, key=b64u_encode(item.object.key), url=s.url,
                     object_hash=s.object_hash)


def linked_rows(item: feeds.Item, *, op_key: str, op_site_url: str,
                known: Mapping[tuple[str, str], ThreadRow], get_site: GetSite,
                budget: Any, parse_post: Callable[[bytes], dict[str, Any]]
                ) -> tuple[list[ThreadRow], list[str]]:
    """Every reply link and reaction in the OP's item for one of its posts (§4.4),
    checked in the order of §4.5; returns the rows (the item's whole set) and one line
    per link that failed. A link seen before with the same statement is not fetched
    again; one whose replier's host is down keeps the previous copy, marked stale."""
    post = PostRef(op_key, item.id)
    rows: list[ThreadRow] = []
    problems: list[str] = []
    replies: set[str] = set()
    op_public = not host_is_local(urlsplit(op_site_url).hostname or "")
    for value in item.replies:
        try:
            link = open_link(value)  # steps 1-4: the statement's own signature first
        except ConversationError as e:
            problems.append(f"a reply could not be checked: {e}")
            continue
        s = link.statement
        who = s.author[:8]
        try:
            check_linked(s, post)  # step 5
            _check_url(s.url, op_public)  # step 6
        except ConversationError as e:
            problems.append(f"reply from {who} could not be checked: {e}")
            rows.append(_failed(s.author, s.id, s.to.text, s.date, str(e), item.id))
            continue
        before = known.get((s.author, s.id))
        if before is not None and before.statement == value["statement"] \
                and before.status == "ok":
            rows.append(before)
            replies.add(s.ref.text)
            continue
        try:
            row = _fetch_linked(link, get_site, budget, parse_post, item.id, value)
        except _Down as e:
            if before is not None and before.markdown is not None:
                rows.append(ThreadRow(**{**before.__dict__, "status": "stale",
                                         "detail": str(e)}))
            else:
                rows.append(_failed(s.author, s.id, s.to.text, s.date, str(e), item.id))
            problems.append(f"reply from {who} could not be fetched: {e}")
            replies.add(s.ref.text)
            continue
        except ConversationError as e:
            problems.append(f"reply from {who} could not be checked: {e}")
            rows.append(_failed(s.author, s.id, s.to.text, s.date, str(e), item.id))
            continue
        rows.append(row)
        replies.add(s.ref.text)
    for value in item.reactions:
        try:
            r = open_reaction_text(value)
            if r.to != post and r.to.text not in replies:
                raise ConversationError("a reaction to a post outside this thread")
        except ConversationError as e:
            problems.append(f"a reaction could not be checked: {e}")
            continue
        rows.append(ThreadRow(r.author, r.id, "reaction", r.to.text, r.date, emoji=r.emoji,
                              statement=value, via_post=item.id))
    return _one_per_author_id(rows), problems


class _Down(Exception):
    """The replier's host did not serve the reply (unreachable, an HTTP error)."""


def _failed(author: str, rid: str, to: str, date: str, detail: str, via: str) -> ThreadRow:
    return ThreadRow(author, rid, "reply", to, date, status="failed", detail=detail,
                     via_post=via)


def _check_url(url: str, op_public: bool) -> None:
    """§4.5 step 6: https (checked with the statement), and not a local address when the
    OP's site is public (the address rule of §2.4)."""
    host = urlsplit(url).hostname or ""
    if op_public and host_is_local(host):
        raise ConversationError(f"its site {host} is a local address, and the thread's is "
                                "public")


def _fetch_linked(link: ReplyLink, get_site: GetSite, budget: Any,
                  parse_post: Callable[[bytes], dict[str, Any]], via: str,
                  value: Mapping[str, str]) -> ThreadRow:
    """Steps 7-8: the object from the replier's site, by hash and size, decrypted with
    the link's key; its post must say what its statement says."""
    s = link.statement
    if s.object_size > MAX_LINKED_OBJECT:
        raise ConversationError(f"its object is {s.object_size:,} bytes (a reply read "
                                f"through a thread is at most {MAX_LINKED_OBJECT:,})")
    pin = b64u_decode(link.tls_pin[len("sha256/"):]) if link.tls_pin else None
    ref = feeds.ObjectRef(s.object_hash, s.object_size, link.key)
    # Step 7, "within the fetch's byte budget": a reply that would pass what is left of
    # it is not fetched and not charged, so the OP's feed is never refused for it; like
    # a host that cannot be reached, it keeps the copy stored before (the next fetch
    # starts with a new budget).
    if ref.size > budget.total - budget.spent:
        raise _Down(f"its object ({ref.size:,} bytes) would pass this fetch's byte budget "
                    f"({budget.total:,} bytes of pages and objects)")
    budget.spend(ref.size)
    from o2m_pub.reader.fetch_plan import Refused  # (fetch_plan imports this module)
    try:
        resp = get_site(s.url, pin)(ref.path, cap=ref.size)
    except Refused as e:
        if e.reason is Reason.OVERSIZED:
            raise ConversationError("its object is larger than its link says") from None
        raise _Down(e.detail) from None
    if resp.status != 200:
        raise _Down(f"HTTP {resp.status}")
    try:
        plaintext = feeds.open_object(resp.body, ref)
    except feeds.FeedAuthError as e:
        raise ConversationError(str(e)) from None
    except feeds.FeedFormatError as e:
        raise ConversationError(str(e)) from None
    try:
        doc = parse_post(plaintext)
    except feeds.FeedFormatError as e:
        raise ConversationError(str(e)) from None
    check_reply_post(s, doc)
    return ThreadRow(s.author, s.id, "reply", s.to.text, s.date, thread_ref=s.thread.text,
                     statement=value["statement"], key=value["key"], url=s.url,
                     object_hash=s.object_hash, markdown=doc["markdown"],
                     title=doc.get("title"), via_post=via)


def _one_per_author_id(rows: list[ThreadRow]) -> list[ThreadRow]:
    """The first row of each (author, id): a link listed twice counts once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        if (r.author, r.id) not in seen:
            seen.add((r.author, r.id))
            out.append(r)
    return out
