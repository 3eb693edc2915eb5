"""Conversations (PROTOCOL.md §4): `o2m reply`, `o2m react`, `o2m thread` (show, hide,
unhide), and the thread printed under a post by `o2m show`."""

from __future__ import annotations

import datetime as dt

from pathlib import Path

import click

from o2m_pub.cli._common import local_now, out, read_text_file, site_root


def _store(ctx: click.Context):  # noqa: ANN202 - (root, ReaderStore, own key text)
    from o2m_pub.friends.identity import own_sign_pk
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.reader.store import ReaderStore
    root = site_root(ctx)
    store = ReaderStore.open(root)
    store.own_key = b64u_encode(own_sign_pk(root))
    return root, store


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
@click.option("--file", "file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Read the reply's text from this file.")
@click.option("--audience", metavar="NAMES",
              help="Send it to these friends only (comma-separated); by default, the "
                   "original poster and your friends in the thread.")
@click.pass_context
def reply(ctx: click.Context, post_id: str, text: str | None, file: Path | None,
          audience: str | None) -> None:
    """Reply to a post (ID as `o2m timeline` or `o2m show` gives it): writes a post in
    content/replies/ with `reply_to:` filled in; `o2m build` publishes it."""
    from o2m_pub.reader.replying import ConversationActionError, find_target, write_reply

    root, store = _store(ctx)
    with store:
        target = find_target(store, post_id)
        names = _audience(store, target, root, audience)
    if file is not None:
        text = read_text_file(file)
    if text is None:
        text = click.edit("\n", extension=".md")
        if text is None:
            raise ConversationActionError("no reply written", hint="nothing was saved")
    path = write_reply(root, target, text, names, local_now())
    out(f"reply to {target.short_id} written: {path.relative_to(root)} "
        f"(to {', '.join(names)}); `o2m build` publishes it")


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
    from o2m_pub.reader.replying import ConversationActionError, find_target, react as do

    if (emoji is None) != undo:
        raise ConversationActionError("give one emoji, or --undo",
                                      hint="e.g. o2m react ID 👍, or o2m react ID --undo")
    root, store = _store(ctx)
    with store:
        target = find_target(store, post_id)
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
    out(f"reply {reply_id} {'hidden from' if hidden else 'shown again in'} your thread; "
        "`o2m build` updates your friends' feeds")


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
                 tz: dt.tzinfo) -> list[str]:
    """The lines `o2m show` prints under a post: its reactions, then its replies, each
    indented by its depth, with their ids, times (as the timeline shows them, in the
    site's zone) and reactions."""
    from o2m_pub.reader import thread_store
    from o2m_pub.reader.sanitize import display_text
    from o2m_pub.reader.timeline import local_time

    replies, refused = thread_store.thread(store.db, root_ref, own_key)
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
    """`o2m timeline --thread ID` and `o2m thread show ID`: the post's headline, then
    its thread."""
    from o2m_pub.reader.replying import find_target

    from o2m_pub.cli.reading import site_zone

    site, store = _store(ctx)
    with store:
        target = find_target(store, post_id)
        root = target.thread or target.ref
        out(f"{target.short_id}  {target.friend or target.author[:8]}  {target.title}")
        for line in thread_lines(store, root, store.own_key, site_zone(site)):
            out(line)


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
