"""Conversations (PROTOCOL.md §4): `o2m reply`, `o2m react`, `o2m thread` (show, hide,
unhide), and the thread printed under a post by `o2m show`."""

from __future__ import annotations

import datetime as dt

from pathlib import Path

import click

from o2m_pub.cli._common import local_now, out, read_text_file, site_root
from o2m_pub.reader.sanitize import display_text


def _store(ctx: click.Context):  # noqa: ANN202 - (root, ReaderStore, own key text)
    from o2m_pub.friends.identity import own_sign_pk
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.reader.store import ReaderStore
    root = site_root(ctx)
    store = ReaderStore.open(root)
    store.own_key = b64u_encode(own_sign_pk(root))
    return root, store


def own_posts(root: Path):  # noqa: ANN201 - site.own_posts.OwnPosts | None
    """The owner's own posts, found by the ids their friends see (None: no identity)."""
    from o2m_pub.reader.model import short_id_for
    from o2m_pub.site.own_posts import OwnPosts
    return OwnPosts.of_site(root, short_id_for)


def _target(store, root: Path, post_id: str):  # noqa: ANN001, ANN202 - replying.ReplyTarget
    """The post `o2m reply` or `o2m react` answers: a friend's, a reply in a thread, or
    one of the owner's own posts (a reply to it continues its thread, §4.2; `react`
    refuses it)."""
    from o2m_pub.reader.replying import ConversationActionError, find_target, own_post_target
    from o2m_pub.reader.timeline import MIN_ID_PREFIX
    try:
        return find_target(store, post_id)
    except ConversationActionError:
        own = own_posts(root) if len(post_id.strip()) >= MIN_ID_PREFIX else None
        mine = own.find(post_id.strip()) if own is not None else None
        if mine is None:
            raise
        return own_post_target(mine, own.key)


def _friend_names(root: Path) -> list[str]:
    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    return [f.name for f in FriendStore(root, config_groups=load(root).groups).list()]


def _audience(store, target, root: Path, given: str | None) -> list[str]:  # noqa: ANN001
    from o2m_pub.reader.replying import ConversationActionError, default_audience
    friends = _friend_names(root)
    default = default_audience(store, target, friends)
    if given is None:
        return default
    names = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in friends]
    if unknown:
        raise ConversationActionError(f"not a friend: {', '.join(unknown)}",
                                      hint="name friends as `o2m friend list` shows them")
    return names


@click.command()
@click.argument("post_id", metavar="ID")
@click.option("--text", help="The reply's text (Markdown), instead of opening $EDITOR.")
@click.option("--file", "file", type=click.Path(dir_okay=False, exists=True, allow_dash=True,
                                                path_type=Path),
              help="Read the reply's text from this file (UTF-8); - reads standard input.")
@click.option("--audience", metavar="NAMES",
              help="Send it to these friends only (comma-separated); by default, the "
                   "original poster and your friends in the thread (to a post of your "
                   "own: whoever can read it).")
@click.pass_context
def reply(ctx: click.Context, post_id: str, text: str | None, file: Path | None,
          audience: str | None) -> None:
    """Reply to a post (ID as `o2m timeline` or `o2m show` gives it), a friend's or one
    of yours (continuing its thread): writes a post in content/replies/ with `reply_to:`
    filled in; `o2m build` publishes it. Without --text or --file, opens $EDITOR (on a
    terminal only)."""
    from o2m_pub.reader.replying import ConversationActionError, write_reply

    if text is not None and file is not None:
        raise ConversationActionError("--text and --file conflict: give the reply once",
                                      hint="--text TEXT, or --file FILE (- for standard input)")
    root, store = _store(ctx)
    with store:
        target = _target(store, root, post_id)
        names = _audience(store, target, root, audience)
    if file is not None:
        text = _read_reply(file)
    if text is None:
        text = _edit_reply()
    path = write_reply(root, target, text, names, local_now())
    out(f"reply to {target.short_id} written: {path.relative_to(root)} "
        f"(to {', '.join(names)}); `o2m build` publishes it")


_NO_EDITOR_HINT = ("give the reply with --text TEXT, or --file FILE "
                   "(`--file -` reads it from standard input)")


def _read_reply(file: Path) -> str:
    """The reply's text from a file (`read_text_file`), or from standard input for `-`."""
    if str(file) != "-":
        return read_text_file(file)
    import sys

    from o2m_pub.cli._common import decode_text
    return decode_text(sys.stdin.buffer.read(), "standard input",
                       hint="give it as UTF-8, or the text with --text")


def _edit_reply() -> str:
    """The reply written in $EDITOR, which is opened only on a terminal: in a script
    (no terminal on standard input) an editor would hang or fill the output with
    escape codes."""
    import sys

    from o2m_pub.reader.replying import ConversationActionError
    if not sys.stdin.isatty():
        raise ConversationActionError("no terminal to open an editor in", hint=_NO_EDITOR_HINT)
    try:
        text = click.edit("\n", extension=".md")
    except click.ClickException as e:  # an editor that is not there, or failed
        raise ConversationActionError(
            f"the editor did not work ({e.format_message()})",
            hint="set $EDITOR to one you have (e.g. EDITOR=nano), or " + _NO_EDITOR_HINT) \
            from None
    if text is None:
        raise ConversationActionError("no reply written", hint="nothing was saved")
    return text


@click.command()
@click.argument("post_id", metavar="ID")
@click.argument("emoji", required=False)
@click.option("--undo", is_flag=True, help="Take your reaction back.")
@click.option("--audience", metavar="NAMES",
              help="Send it to these friends only (comma-separated).")
@click.pass_context
def react(ctx: click.Context, post_id: str, emoji: str | None, undo: bool,
          audience: str | None) -> None:
    """React to a post with one emoji (one per post: a new one replaces it); `o2m build`
    publishes it."""
    from o2m_pub.friends.identity import own_sign_pk
    from o2m_pub.reader.replying import ConversationActionError, react as do

    if emoji is not None and undo:
        raise ConversationActionError(
            "an emoji and --undo conflict: give one of them",
            hint="o2m react ID 👍 sets your reaction; o2m react ID --undo takes it back")
    if emoji is None and not undo:
        raise ConversationActionError("no emoji given",
                                      hint="e.g. o2m react ID 👍, or o2m react ID --undo")
    root, store = _store(ctx)
    with store:
        target = _target(store, root, post_id)
        names = _audience(store, target, root, audience)
    kept = do(root, own_sign_pk(root), target, None if undo else emoji, names, local_now())
    out(f"reaction to {target.short_id} removed" if kept is None else
        f"reacted {kept.emoji} to {target.short_id} (to {', '.join(names)}); "
        "`o2m build` publishes it")


@click.group()
def thread() -> None:
    """Threads: show one, or hide a reply from a thread of yours."""


@thread.command("show")
@click.argument("post_id", metavar="ID")
@click.pass_context
def thread_show(ctx: click.Context, post_id: str) -> None:
    """A post's thread, in order."""
    print_thread_of(ctx, post_id)


def _hide(ctx: click.Context, reply_id: str, hidden: bool) -> None:
    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.protocol.conversation import PostRef
    from o2m_pub.reader import thread_store
    from o2m_pub.reader.fetch_run import export_links
    from o2m_pub.reader.replying import ConversationActionError

    root, store = _store(ctx)
    with store:
        found = thread_store.find_reply(store.db, reply_id)
        if found is None:
            raise ConversationActionError(f"no reply {reply_id!r} in your threads")
        ref = PostRef.parse(found[0])
        if found[1] is None or not found[1].startswith(f"o2m:{store.own_key}/"):
            raise ConversationActionError("you can hide replies only from your own threads")
        thread_store.set_hidden(store.db, ref.author, ref.id, hidden)
        export_links(root, store, FriendStore(root, config_groups=load(root).groups).list())
    out(f"reply {reply_id} {'hidden from' if hidden else 'shown again in'} your thread "
        f"for your friends{' (you still see it, marked hidden)' if hidden else ''}; "
        "`o2m build` updates their feeds")


@thread.command("hide")
@click.argument("reply_id", metavar="ID")
@click.pass_context
def thread_hide(ctx: click.Context, reply_id: str) -> None:
    """Hide a reply from your thread: your feeds stop linking it (the replier's site is
    not touched)."""
    _hide(ctx, reply_id, True)


@thread.command("unhide")
@click.argument("reply_id", metavar="ID")
@click.pass_context
def thread_unhide(ctx: click.Context, reply_id: str) -> None:
    """Show a hidden reply in your thread again."""
    _hide(ctx, reply_id, False)


def thread_lines(store, root_ref: str, own_key: str | None,  # noqa: ANN001
                 tz: dt.tzinfo, own=None) -> list[str]:  # noqa: ANN001 - OwnPosts | None
    """The lines `o2m show` prints under a post: its reactions, then its replies, each
    indented by its depth, with their ids, times (as the timeline shows them, in the
    site's zone) and reactions. In a thread of the owner's (`own` given), their own
    replies from content/ are in it too, and a reply they hid is listed, marked."""
    from o2m_pub.reader import thread_store
    from o2m_pub.reader.sanitize import display_text
    from o2m_pub.reader.timeline import local_time

    mine = own is not None and root_ref.startswith(f"o2m:{own.key}/")
    replies, refused = thread_store.thread(store.db, root_ref, own_key,
                                           own.replies_in(root_ref) if mine else ())
    counts = thread_store.reactions(store.db, [root_ref, *(r.ref for r in replies)], own_key)
    lines = []
    if counts.get(root_ref):
        lines.append("reactions: " + _reaction_text(counts[root_ref]))
    if replies:
        lines.append(f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}:")
    for r in replies:
        pad = "  " * r.depth
        head = f"{pad}{r.short_id}  {local_time(r.date, tz)}  {display_text(r.name)}"
        if r.status == "failed":
            lines.append(f"{head}  (could not be checked: {display_text(r.detail)})")
            continue
        if r.status == "stale":
            head += "  (stale: their site did not answer)"
        if r.hidden:
            head += (f"  (hidden by you: your friends no longer see it through your post; "
                     f"`o2m thread unhide {r.short_id}`)")
        lines.append(head)
        for line in (r.markdown or "").strip().splitlines() or [""]:
            lines.append(f"{pad}  {display_text(line)}")  # (a line break is no control)
        if counts.get(r.ref):
            lines.append(f"{pad}  reactions: {_reaction_text(counts[r.ref])}")
    for ref, why in refused[:10]:
        lines.append(f"not shown: {ref[-8:]}: {why}")
    return lines


def _reaction_text(counts) -> str:  # noqa: ANN001
    from o2m_pub.reader.sanitize import display_text
    return "  ".join(f"{c.emoji} {len(c.names)} ({', '.join(display_text(n) for n in c.names)})"
                     for c in counts)


def print_thread_of(ctx: click.Context, post_id: str) -> None:
    """`o2m timeline --thread ID` and `o2m thread show ID`: the headline of the thread's
    first post (ID may name any post of the thread: a friend's, a reply, or one of the
    owner's own, whose thread their friends' feeds brought), then the thread."""
    from o2m_pub.cli.reading import site_zone

    site, store = _store(ctx)
    own = own_posts(site)
    with store:
        root = _thread_root(store, own, post_id)
        head = _label(store, own, root)
        title = display_text(head.title) if head.title is not None else \
            f"(not in your timeline: {display_text(root)})"
        out(f"{head.short_id or display_text(post_id)}  {display_text(head.who)}  {title}")
        lines = thread_lines(store, root, store.own_key, site_zone(site), own)
        for line in lines or ["no replies or reactions yet"]:
            out(line)


def _thread_root(store, own, post_id: str) -> str:  # noqa: ANN001
    """The reference of the first post of the thread that `post_id` is part of.

    Raises:
        NoSuchPostError: no post of the timeline, no reply of a thread and none of the
            owner's posts has this id.
    """
    from o2m_pub.reader.replying import ConversationActionError, find_target
    from o2m_pub.reader.timeline import MIN_ID_PREFIX, NoSuchPostError, find_post
    if len(post_id.strip()) < MIN_ID_PREFIX:
        find_post(store, post_id)  # raises: too short to name one post
    try:
        target = find_target(store, post_id)
        return target.thread or target.ref
    except ConversationActionError:
        pass
    mine = own.find(post_id.strip()) if own is not None else None
    if mine is None:
        raise NoSuchPostError(
            f"no post {display_text(post_id)!r} in your timeline, in your posts or in "
            "their threads", hint="`o2m timeline` gives your friends' posts' ids, and "
            "`o2m notifications` those of your posts that have replies")
    return mine.thread_root


def _label(store, own, ref: str):  # noqa: ANN001, ANN202 - thread_store.PostLabel
    from o2m_pub.reader.thread_store import post_label
    return post_label(store.db, ref, store.own_key,
                      own.title_of if own is not None else None)


def show_not_in_timeline(ctx: click.Context, root: Path, store, post_id: str,  # noqa: ANN001
                         source: bool) -> bool:
    """`o2m show ID` for a post that is not a friend's post of the timeline: one of the
    owner's own posts (with the thread its friends' feeds brought), or a reply that
    reached this reader only through a thread. False: neither has this id."""
    from o2m_pub.cli.reading import show_post_text, site_zone
    from o2m_pub.reader import thread_store
    from o2m_pub.reader.timeline import MIN_ID_PREFIX, local_time, reply_context

    post_id = post_id.strip()
    if len(post_id) < MIN_ID_PREFIX:
        return False
    own = own_posts(root)
    own_key = store.own_key = own.key if own else None
    tz = site_zone(root)
    mine = own.find(post_id) if own is not None else None
    if mine is not None:
        when = mine.date.astimezone(tz).strftime("%Y-%m-%d %H:%M") if mine.date else "?"
        header = [f"by you, {when}, for {', '.join(mine.audience) or '?'}"
                  + (" (draft)" if mine.draft else ""), f"id {mine.short_id}  {mine.source}"]
        if mine.problem:
            header.append(f"the build refuses it: {display_text(mine.problem)}")
        if mine.reply_to:
            header.insert(1, reply_context(_label(store, own, mine.reply_to), with_id=True))
        show_post_text(display_text(mine.title) if mine.title else None, header, mine.body,
                       source=source)
        ref = mine.ref
    else:
        found = thread_store.reply_row(store.db, post_id, own_key)
        if found is None:
            return False
        reply, _ = found
        header = [f"from {display_text(reply.name)}, {local_time(reply.date, tz)}",
                  reply_context(_label(store, own, reply.to_ref), with_id=True),
                  f"id {reply.short_id} (a reply in a thread)"]
        if reply.status == "failed":
            header.append(f"could not be checked: {display_text(reply.detail)}")
        elif reply.status == "stale":
            header.append("stale: their site did not answer (an older copy)")
        # as text, as the thread shows it: a reply read through a thread was not
        # rendered by a fetch's bounded child, and no parser runs on it while you wait
        show_post_text(display_text(reply.title) if reply.title else None, header,
                       reply.markdown or "", source=source, render=False)
        ref = reply.ref
    lines = thread_lines(store, ref, own_key, tz, own)
    if lines:
        out()
        for line in lines:
            out(line)
    return True


def own_key(root: Path) -> str | None:
    """The owner's key as references name it (§4.1); None for a site with no identity."""
    from o2m_pub.errors import O2MError
    from o2m_pub.friends.identity import own_sign_pk
    from o2m_pub.protocol.canonical import b64u_encode
    try:
        return b64u_encode(own_sign_pk(root))
    except O2MError:
        return None


def send_notices(root: Path, notices, identity, *,  # noqa: ANN001 - BuildReport.notices, Identity
                 deadline: float = 5.0) -> list[str]:
    """PROTOCOL.md §4.7: tell each OP at once that a reply or reaction to their post is
    published, by a notice to their inbox (only `o2m serve` has one: a static host
    answers 404 or 405, and the OP's next fetch finds it anyway). Returns a line for
    each notice not delivered."""
    import nacl.utils

    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.protocol.conversation import PostRef, seal_notice
    from o2m_pub.reader.http_fetch import post_to_inbox

    friends = {b64u_encode(f.card.sign_pk): f
               for f in FriendStore(root, config_groups=load(root).groups).list()}
    lines = []
    for kind, post, op, seq in notices:
        friend = friends.get(op)
        if friend is None:
            continue
        body = seal_notice(signing_key=identity.signing_key,
                           own_box_sk=bytes(identity.box_key),
                           recipient_box_pk=friend.card.box_pk,
                           recipient_sign_pk=friend.card.sign_pk, kind=kind,
                           post=PostRef.parse(post), seq=seq, nonce=nacl.utils.random(24))
        answer = post_to_inbox(friend.card.url, body, tls_pin=friend.card.tls_pin,
                               deadline=deadline)
        if not answer.delivered:
            lines.append(f"{friend.name} was not told at once of your {kind} "
                         f"({answer.detail}); they see it on their next fetch")
    return lines
