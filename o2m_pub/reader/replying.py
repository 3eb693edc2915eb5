"""Replying and reacting (PROTOCOL.md §4), the owner's actions on what they read: the
core that `o2m reply`, `o2m react`, `o2m thread` and the desk's forms share.

A reply is a post in content/ whose front matter names the post it answers by reference
(`reply_to: o2m:<author>/<id>`, and `thread:` for a reply to a reply); a reaction is a
line of `.o2m/reactions.json`. The next build signs both into the owner's feeds.

The default audience of a reply or reaction is what o2m can compute of "whoever can read
the post I answer": the original poster (OP) if they are a friend, the author of the
post answered if a friend, and the owner's friends who took part in the thread (replied
or reacted, as far as this reader has seen). Friends who read the OP's post but never
took part cannot be known here: they still see the reply, through the OP's link (§4.4),
but not in the replier's own feed. The owner may narrow the audience. A reply to one of
the owner's own posts (a thread's continuation, §4.2) goes to that post's audience,
which the owner knows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from o2m_pub._files import write_file
from o2m_pub.errors import O2MError
from o2m_pub.friends.conversation_files import OwnReaction, load_reactions, save_reactions
from o2m_pub.protocol.canonical import b64u_decode, b64u_encode, utc_text
from o2m_pub.protocol.conversation import (
    ConversationError,
    PostRef,
    check_emoji,
    reaction_id,
)
from o2m_pub.reader import thread_store
from o2m_pub.reader.model import short_id_for
from o2m_pub.reader.store import ReaderStore
from o2m_pub.reader.timeline import MIN_ID_PREFIX, NoSuchPostError, find_post

if TYPE_CHECKING:
    from o2m_pub.reader.model import StoredPost


class ConversationActionError(O2MError):
    """A reply or reaction cannot be made."""

    hint = "`o2m timeline` lists the posts you can read, with their ids"


@dataclass(frozen=True)
class ReplyTarget:
    """The post a reply or reaction answers."""

    ref: str  # its reference's text (or, for a public post without an id, its https URL)
    thread: str | None  # the thread's root, when it is itself a reply
    author: str  # b64u key
    friend: str | None  # the author's friend name, when a friend
    short_id: str
    title: str
    own_audience: tuple[str, ...] | None = None  # one of the owner's posts: its audience


def own_post_target(post: Any, own_key: str) -> ReplyTarget:  # noqa: ANN401
    """One of the owner's own posts as the post a reply answers: a reply to one's own
    post continues its thread (§4.2), as a reply to one's own reply in any thread does.
    `post` is a `site.own_posts.OwnPostInfo` (the desk and the CLI find it: the reader
    does not look into content/).

    Raises:
        ConversationActionError: the post is a draft (not published: a reply would be
            alone in its thread), or has a problem the build refuses (its audience is
            then unknown, and a reply must never go to more friends than can read it).
    """
    if post.problem:
        raise ConversationActionError(
            f"{post.short_id} has a problem, so who can read it is not known: "
            f"{post.problem}", hint=f"mend {post.source} first, then reply")
    if post.draft:
        raise ConversationActionError(
            f"{post.short_id} is a draft: your friends cannot read it yet",
            hint=f"publish it first (remove `draft: true` from {post.source}), then reply")
    root = post.thread_root
    return ReplyTarget(post.ref, root if root != post.ref else None, own_key, None,
                       post.short_id, post.title or " ".join(post.body.split())[:60],
                       own_audience=tuple(post.audience))


def find_target(store: ReaderStore, short_id: str) -> ReplyTarget:
    """The post `short_id` names: a friend's post in the timeline, or a reply seen in a
    thread. Only what this reader has (and could read) can be answered.

    Raises:
        ConversationActionError: no such post.
    """
    keys = {n: k for k, n in thread_store.friend_names(store.db).items()}
    try:
        post = find_post(store, short_id)
    except NoSuchPostError as e:
        if len(short_id.strip()) < MIN_ID_PREFIX:  # (a reply of a thread neither)
            raise ConversationActionError(str(e), hint=e.hint) from None
        found = thread_store.find_reply(store.db, short_id.strip())
        if found is None:
            raise ConversationActionError(
                f"no post {short_id!r} that you can read: you can answer only posts in "
                "your timeline or in their threads") from None
        ref, root = found
        parsed = PostRef.parse(ref)
        names = thread_store.friend_names(store.db)
        return ReplyTarget(ref, root, parsed.author, names.get(parsed.author),
                           short_id_for(parsed.author, parsed.id), "a reply")
    author = keys.get(post.friend, "")
    try:
        b64u_decode(post.id, length=16)
        ref = PostRef(author, post.id).text
    except Exception:  # a public post known by its URL alone
        if not post.url:
            raise ConversationActionError(f"post {short_id!r} cannot be referred to") from None
        ref = post.url
    root = None
    for (thread_ref,) in store.db.execute(
            "SELECT thread_ref FROM thread_items WHERE author = ? AND id = ? AND kind = 'reply'",
            (author, post.id)):
        root = thread_ref
    if root is None and post.reply_to and post.reply_to.startswith("o2m:"):
        root = post.reply_to
    return ReplyTarget(ref, root, author, post.friend, post.short_id,
                  post.title or (post.markdown or "")[:60])


def default_audience(store: ReaderStore, target: ReplyTarget, friends: list[str]) -> list[str]:
    """The friends a reply or reaction goes to by default (see the module docstring). A
    reply to one of the owner's own posts goes to whoever can read that post: the owner
    knows its audience (its groups and `friends` as written, so the reply follows them);
    a public post's replies go to all friends (a reply is a private post)."""
    if target.own_audience is not None:
        if "public" in target.own_audience:
            return ["friends"]
        return list(target.own_audience)  # (own_post_target refuses a post with none)
    names = thread_store.friend_names(store.db)
    root = target.thread or target.ref
    keys = {PostRef.parse(root).author if root.startswith("o2m:") else target.author,
            target.author} | thread_store.participants(store.db, root)
    chosen = {names[k] for k in keys if k in names}
    return sorted(n for n in chosen if n in friends)


_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


def write_reply(root: Path, target: ReplyTarget, text: str, audience: list[str],
                now: dt.datetime, content_dir: str = "content") -> Path:
    """Write a reply post in content/replies/ (the file the next build publishes).

    Raises:
        ConversationActionError: an empty reply, or no one to send it to.
    """
    if not text.strip():
        raise ConversationActionError("an empty reply is not sent",
                                      hint="write something, or leave it")
    if not audience:
        raise ConversationActionError(
            "none of your friends can read this reply",
            hint="the original poster is not your friend: add them, or name an audience")
    folder = root / content_dir / "replies"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y-%m-%d-%H%M%S")
    path = folder / f"{stamp}-re-{target.short_id}.md"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-re-{target.short_id}-{n}.md"
    lines = ["---", f"date: {now.isoformat(timespec='seconds')}", f"reply_to: {target.ref}"]
    if target.thread and target.thread != target.ref:
        lines.append(f"thread: {target.thread}")
    lines.append("audience: [" + ", ".join(audience) + "]")
    lines += ["---", "", text.strip(), ""]
    # whole or not at all: `o2m build` (or a running `o2m watch`) publishes what it finds
    write_file(path, "\n".join(lines).encode("utf-8"))
    return path


def react(root: Path, own_sign_pk: bytes, target: ReplyTarget, emoji: str | None,
          audience: list[str], now: dt.datetime) -> OwnReaction | None:
    """Set (or with `emoji` None, remove) the owner's reaction to a post; the next build
    publishes it (or its tombstone). Returns the reaction kept, or None.

    Raises:
        ConversationActionError: not one emoji, a post without a reference, one of the
            owner's own posts or replies, nothing to take back, or no one to send it to.
    """
    try:
        to = PostRef.parse(target.ref)
    except ConversationError:
        raise ConversationActionError("only posts of o2m feeds take reactions") from None
    rid = reaction_id(own_sign_pk, to)
    reactions = load_reactions(root)
    if emoji is None:
        if reactions.pop(rid, None) is None:
            raise ConversationActionError(
                f"you have no reaction to {target.short_id} to take back",
                hint=f"`o2m show {target.short_id}` lists the reactions to it")
        save_reactions(root, reactions)
        return None
    if to.author == b64u_encode(own_sign_pk):
        # a reaction is what others make of a post: one's own would be counted among
        # theirs for everyone in the thread (and is most often a mistyped id)
        raise ConversationActionError(
            f"{target.short_id} is your own {'reply' if target.thread else 'post'}: "
            "reactions are for your friends' posts",
            hint="check the id: `o2m thread show ID` lists a thread's replies with theirs")
    try:
        check_emoji(emoji)
    except ConversationError as e:
        raise ConversationActionError(str(e), hint="e.g. o2m react ID 👍") from None
    if not audience:
        raise ConversationActionError("none of your friends can read this reaction",
                                      hint="the original poster is not your friend")
    reaction = OwnReaction(rid, to.text, emoji, utc_text(now), tuple(audience))
    reactions[rid] = reaction
    save_reactions(root, reactions)
    return reaction


REACTION_CHOICES = ("👍", "❤️", "😂", "🎉", "😮", "😢")


class DeskConversations:
    """The desk's reply and react actions (`desk.actions.ReplyAction`, `ReactAction`):
    the same functions as `o2m reply` and `o2m react`, with the default audience."""

    choices = REACTION_CHOICES

    def __init__(self, root: Path, now: Callable[[], dt.datetime]) -> None:
        self.root, self.now = root, now

    def _target(self, short_id: str) -> tuple[ReplyTarget, list[str]]:
        from o2m_pub.config import load
        from o2m_pub.friends.friend_store import FriendStore
        friends = [f.name for f in FriendStore(self.root,
                                               config_groups=load(self.root).groups).list()]
        with ReaderStore.open(self.root) as store:
            target = find_target(store, short_id)
            return target, default_audience(store, target, friends)

    def reply(self, post: "StoredPost", text: str) -> str:
        target, audience = self._target(post.short_id)
        path = write_reply(self.root, target, text, audience, self.now())
        return str(path.relative_to(self.root / "content"))

    def reply_own(self, post: Any, text: str) -> str:  # noqa: ANN401 - OwnPostInfo
        """A reply to one of the owner's own posts (its thread's continuation, §4.2), to
        whoever can read that post."""
        from o2m_pub.friends.identity import own_sign_pk
        target = own_post_target(post, b64u_encode(own_sign_pk(self.root)))
        with ReaderStore.open(self.root) as store:
            audience = default_audience(store, target, [])
        path = write_reply(self.root, target, text, audience, self.now())
        return str(path.relative_to(self.root / "content"))

    def react(self, post: "StoredPost", choice: str) -> None:
        from o2m_pub.friends.identity import own_sign_pk
        target, audience = self._target(post.short_id)
        react(self.root, own_sign_pk(self.root), target, choice, audience, self.now())
