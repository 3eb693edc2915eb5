"""`o2m fetch`, `o2m timeline`, `o2m show` and `o2m notifications`: gathering friends'
feeds and reading them in the terminal (in the browser: `o2m desk`, cli/desk.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from o2m_pub.cli._common import (
    BadValueError,
    local_now,
    out,
    site_root,
    stderr_console,
    unlock_identity,
)
from o2m_pub.errors import O2MError

# -- o2m fetch (issue 6) --------------------------------------------------------------

def _interval(text: str | None) -> float | None:
    """30s, 10m, 1h (or a bare number of seconds) -> seconds; at least 10 s."""
    import re
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m:
        raise BadValueError("--every", f"{text!r} is not an interval",
                            hint="e.g. --every 30s, 10m or 1h")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if seconds < 10:
        raise BadValueError("--every", f"{text!r} is under 10s",
                            hint="at least 10s, to be kind to your friends' hosts")
    return seconds


_NO_FEED = "[dim]no feed for you yet (they have not added you back)[/]"


def _fetch_line(o) -> str:  # noqa: ANN001 - fetch_plan.Outcome
    from rich.markup import escape
    if o.status == "refused":
        from o2m_pub.reader.model import Reason
        # the host could not be had ("unreachable: connection refused"), or what it
        # served was refused ("refused: bad signature: …")
        transport = bool(o.reason) and Reason(o.reason).is_transport
        text = (f"[red]{'' if transport else 'refused: '}{escape(o.reason or '')}[/]: "
                f"{escape(o.detail)}")
    elif o.status == "no feed":
        text = _NO_FEED
    elif o.status == "new":
        parts = [f"{n} {word}" for n, word in ((o.new, "new"), (o.updated, "updated"),
                                               (o.deleted, "deleted")) if n]
        text = "[green]" + ", ".join(parts) + "[/]"
        if o.no_feed:  # public posts, and still no feed for you: both facts
            text += f" (public), {_NO_FEED}"
    else:
        text = "unchanged"
    news = o.update.thread_news if o.update is not None else 0
    if news:  # replies and reactions their threads link to (PROTOCOL.md §4.4)
        text = ("" if text == "unchanged" else text + ", ") + \
            f"[green]{news} new in their threads[/]"
    if o.skipped:
        text += f", [yellow]{o.skipped} that would not open[/]"
    if o.stale_since:
        text += f", [yellow]stale since {escape(o.stale_since)} (freeze warning)[/]"
    if o.public_error:
        text += f", [yellow]their public feed.json refused: {escape(o.public_error)}[/]"
    elif o.public_unsigned and (o.new or o.updated):
        text += " [dim](public feed unsigned: an older o2m)[/]"
    card = o.card
    if card is not None and card.adopted is not None:
        what = "followed their new key" if card.rekeyed else "took their new card"
        if card.adopted.url != card.previous.url:
            what += f" (moved to {escape(card.adopted.url)})"
        text += f", [cyan]{what}[/]"
    if card is not None and card.error:
        text += f", [yellow]{escape(card.error)}[/]"
    if o.as_text:
        text += f", [yellow]{o.as_text} too complex to render (shown as text)[/]"
    return f"{escape(o.friend):<16} {text}"


@click.command()
@click.argument("friends", nargs=-1)
@click.option("--every", metavar="INTERVAL",
              help="Fetch again every INTERVAL (30s, 10m, 1h) until Ctrl-C.")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Friends fetched at once.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120, show_default=True,
              help="Seconds for all of one friend's files (a slow host is cut off then).")
@click.option("-q", "--quiet", is_flag=True, help="Print only friends that were refused or stale.")
@click.pass_context
def fetch(ctx: click.Context, friends: tuple[str, ...], every: str | None, workers: int,
          timeout: float, quiet: bool) -> None:
    """Fetch friends' feeds (all, or FRIENDS): verify, decrypt, store for `o2m timeline`.

    Each friend's published card is read first: a newer one signed by their key (a new
    address, certificate or name), or one their verified key rotation leads to, is
    taken without a paste (`o2m notifications` says what changed).

    Prints one line per friend: new posts, unchanged, no feed yet (also after new public
    posts of a friend who has not added you back), or refused with the
    reason (unreachable, timeout, bad certificate, TLS version too old, bad signature,
    rollback, equivocation, oversized, malformed, bad object, key changed, over quota:
    [reader] quota_per_friend in o2m.toml). A refused friend
    keeps everything stored before; the others are not held up.

    \b
    Exit status:
      0  every friend was fetched (or has no feed for you yet)
      1  some friend was refused (their feed, or only their public feed.json or
         their published card), or their feed is stale (past its expiry); or another
         fetch of this site is running
      2  usage error (an unknown friend, a bad --every)

    \b
    To fetch regularly, leave `o2m fetch --every 15m` running, or use cron:
      */15 * * * *  o2m -C ~/site fetch -q
    or a systemd user timer (see README.md). A fetch needs the passphrase only the
    first time a friend is fetched ($O2M_PASSPHRASE or --passphrase-file when
    unattended); a private CA can be named in $O2M_CA_BUNDLE.
    """
    from o2m_pub.friends.friend_store import FriendStore, UnknownFriendError

    interval = _interval(every)
    root = site_root(ctx)
    store = FriendStore(root)
    for name in friends:
        try:
            store.get(name)
        except UnknownFriendError as e:
            raise BadValueError("FRIENDS", str(e), hint=e.hint) from None
    while True:
        failed = _fetch_once(ctx, root, friends, workers=workers, timeout=timeout, quiet=quiet,
                             wait=interval is not None)
        if interval is None:
            sys.exit(1 if failed else 0)
        import datetime as dt
        import time
        if not quiet:
            at = local_now() + dt.timedelta(seconds=interval)
            out(f"next fetch at {at.strftime('%H:%M:%S' if interval < 60 else '%H:%M')} "
                "(Ctrl-C stops)")
            sys.stdout.flush()
        time.sleep(interval)


def _fetch_once(ctx: click.Context, root: Path, friends: tuple[str, ...], *, workers: int,
                timeout: float, quiet: bool, wait: bool = False) -> bool:
    """One fetch of every friend; prints a line each; True when some friend failed.
    With `wait` (--every), a fetch already running for this site is waited for."""
    from o2m_pub.reader.fetch_run import run_fetch
    from o2m_pub.reader.http_fetch import Limits

    def unlock():  # noqa: ANN202 - only when a friend's feed secrets are not cached
        return unlock_identity(ctx, root)

    progress = None
    if sys.stderr.isatty() and not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        progress = Progress(TextColumn("fetching"), BarColumn(), MofNCompleteColumn(),
                            console=stderr_console(), transient=True)
    task = None

    def on_start(total: int) -> None:
        nonlocal task
        if progress is not None:
            progress.start()
            task = progress.add_task("fetch", total=total)

    def on_done(outcome) -> None:  # noqa: ANN001
        if progress is not None and task is not None:
            progress.advance(task)

    try:
        outcomes = run_fetch(root, friends, unlock=unlock, now=local_now(),
                             limits=Limits(workers=workers, deadline=timeout),
                             on_start=on_start, on_done=on_done, wait_for_lock=wait)
    finally:
        if progress is not None:
            progress.stop()
    if not outcomes:
        out("no friends to fetch: `o2m friend add NAME CARD` adds one")
    console = _stdout_console()
    failed = False
    for o in outcomes:
        bad = o.status == "refused" or bool(o.stale_since) or bool(o.public_error) \
            or bool(o.card is not None and o.card.error)
        failed |= bad
        if bad or not quiet:
            console.print(_fetch_line(o), soft_wrap=True)
    return failed


# -- reading: o2m timeline, show, notifications, reader (issue 6) ---------------------


def _reader_store(ctx: click.Context):  # noqa: ANN202 - (site root, store.ReaderStore)
    from o2m_pub.reader.store import ReaderStore
    root = site_root(ctx)
    return root, ReaderStore.open(root)


def reader_without_fetch(root: Path):  # noqa: ANN201 - a context of ReaderStore | None
    """The reader's store (None if the site never fetched), after any running `o2m
    fetch`: for `o2m friend remove` and `rename`, which change what it keeps."""
    from o2m_pub.reader.store import store_for_friend_change
    return store_for_friend_change(root, wait=True, on_wait=lambda: click.echo(
        "o2m: waiting for the running `o2m fetch` to end", err=True))


def site_zone(root: Path):  # noqa: ANN202 - a tzinfo
    from o2m_pub.config import load
    return load(root).tz  # load refuses an unknown zone


def _stdout_console():  # noqa: ANN202 - rich.console.Console
    from rich.console import Console
    return Console(highlight=False, emoji=False)


@click.command()
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Posts per page.")
@click.option("--before", "before_id", metavar="ID",
              help="Start after this post (the last id of the previous page).")
@click.option("--page", type=click.IntRange(1, 1_000_000), help="Page number (1: the newest).")
@click.option("--friend", help="Only this friend's posts (their name in `o2m friend list`).")
@click.option("--tag", help="Only posts with this tag.")
@click.option("--since", help="Only posts since a date or time (2026-11-01, "
                              "'2026-11-01 18:00') or an age (12h, 3d, 2w).")
@click.option("--thread", "thread_id", metavar="ID", help="The thread of this post, in order.")
@click.pass_context
def timeline(ctx: click.Context, limit: int, before_id: str | None, page: int | None,
             friend: str | None, tag: str | None, since: str | None,
             thread_id: str | None = None) -> None:
    """Your friends' posts, newest first; * marks the unread. `o2m show ID` reads one."""
    if thread_id is not None:
        from o2m_pub.cli.conversations import print_thread_of
        print_thread_of(ctx, thread_id)
        return
    from o2m_pub.reader.timeline import check_friend, entry, find_post, page_cursor

    if before_id and page:
        raise BadValueError("--before, --page", "cannot be used together",
                            hint="--before ID continues after a post; --page N counts pages")
    root, store = _reader_store(ctx)
    with store:
        tz = site_zone(root)
        if friend is not None:
            check_friend(store, friend)
        filters = {"friend": friend, "tag": tag, "since": _since(since, tz)}
        cursor = (find_post(store, before_id).cursor if before_id
                  else page_cursor(store, page or 1, limit, **filters))
        posts = store.timeline(limit=limit + 1, before=cursor, **filters)
        entries = [entry(p, tz) for p in posts[:limit]]
        from o2m_pub.reader.thread_store import summaries  # PROTOCOL.md §4
        talk = summaries(store.db, [(p.friend, p.id) for p in posts[:limit]])
        talk = {p.short_id: talk[f"{p.friend}\0{p.id}"] for p in posts[:limit]
                if f"{p.friend}\0{p.id}" in talk}
        answers = _reply_contexts(root, store, posts[:limit])
    if not entries:
        filtered = before_id or page or friend or tag or since
        click.echo("no posts match" if filtered else
                   "no posts yet: `o2m fetch` gathers your friends' feeds", err=True)
        return
    if sys.stdout.isatty():
        _timeline_table(entries, talk, answers)
        if len(posts) > limit:
            click.echo(f"more: o2m timeline --before {entries[-1].short_id}", err=True)
    else:
        for e in entries:
            out(f"{'*' if e.unread else ' '} {e.short_id}  {e.date}  {e.friend}  {e.headline}"
                + (f"  {answers[e.short_id]}" if e.short_id in answers else "")
                + (f"  [{talk[e.short_id]}]" if e.short_id in talk else ""))


def _since(text: str | None, tz):  # noqa: ANN001, ANN202 - tzinfo; str | None
    """--since as the store's time; a value that is none is a usage error (exit 2, as
    --page 0 is)."""
    from o2m_pub.reader.timeline import ReadingError, parse_since
    if not text:
        return None
    try:
        return parse_since(text, tz, local_now())
    except ReadingError as e:
        raise BadValueError("--since", f"{text!r} is not a date, a time or an age",
                            hint=e.hint) from None


def _reply_contexts(root: Path, store, posts) -> dict[str, str]:  # noqa: ANN001
    """Short id -> "↳ reply to “Garden update” (you)", for the replies of a page."""
    if not any(p.reply_to for p in posts):
        return {}
    from o2m_pub.cli.conversations import own_posts
    from o2m_pub.reader.timeline import reply_contexts
    own = own_posts(root)
    return reply_contexts(store, posts, own.key if own else None,
                          own.title_of if own else None)


def _timeline_table(entries, talk: dict[str, str],  # noqa: ANN001 - TimelineEntry
                    answers: dict[str, str]) -> None:
    """The timeline as a rich table; every cell is Text (a friend's [brackets] are text)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column(width=1, no_wrap=True)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(style="green", no_wrap=True, max_width=16)
    table.add_column(ratio=1)
    for e in entries:
        text = Text(e.headline, style="bold" if e.unread else "")
        if e.short_id in answers:
            text.append(f"  {answers[e.short_id]}", style="dim")
        if e.tags:
            text.append("  " + " ".join(f"#{t}" for t in e.tags), style="dim")
        if e.short_id in talk:
            text.append(f"  {talk[e.short_id]}", style="dim")
        table.add_row(Text("*" if e.unread else " ", style="bold yellow"), Text(e.short_id),
                      Text(e.date), Text(e.friend), text)
    _stdout_console().print(table)


@click.command()
@click.argument("post_id", metavar="ID")
@click.option("--source", is_flag=True,
              help="Print the post as written (Markdown, or a public post's text), not "
                   "rendered.")
@click.pass_context
def show(ctx: click.Context, post_id: str, source: bool) -> None:
    """Print one post in full with its attachments, and mark it read.

    Private and public posts alike are rendered for the terminal: code blocks as
    written, tables as tables, an image as [image: its description].
    """
    from o2m_pub.reader.sanitize import body_text, display_text
    from o2m_pub.reader.terminal import html_to_markdown
    from o2m_pub.reader.timeline import (
        NoSuchPostError,
        attachments,
        entry,
        find_post,
        human_size,
        post_text,
    )

    root, store = _reader_store(ctx)
    with store:
        try:
            post = find_post(store, post_id)
        except NoSuchPostError:
            # one of the owner's own posts, or a reply known only through a thread
            from o2m_pub.cli.conversations import show_not_in_timeline
            if show_not_in_timeline(ctx, root, store, post_id, source):
                return
            raise
        e = entry(post, site_zone(root))
        files = attachments(post, store)
        text = post_text(post)
        header = [f"from {e.friend}, {e.date}"
                  + (" (public)" if post.audience == "public" else "")
                  + (f"  {' '.join('#' + t for t in e.tags)}" if e.tags else ""),
                  f"id {post.short_id}" + (f"  {display_text(post.url)}" if post.url else "")]
        if post.reply_to:  # what it answers, so that it is not read as a post of its own
            header.insert(1, _reply_line(root, store, post.reply_to))
        listing = [f"  {f.name}  {f.media_type}  {human_size(f.size)}  "
                   f"{f.path if f.path else '(not fetched yet)'}" for f in files]
        markdown = None
        if not source and not post.too_complex:
            # one rendering for both kinds (a public post's HTML as Markdown), and rich's
            # parser (markdown-it, linear in our measures) only on a post the fetch did
            # not find too complex, and of a size a person reads: a friend's text never
            # costs a parser more than that while you wait (THREATS.md 49)
            body = post.markdown if post.markdown is not None else post.html
            if body and len(body) <= _RICH_MARKDOWN_CHARS:
                markdown = body_text(post.markdown if post.markdown is not None
                                     else html_to_markdown(post.html))
        if post.too_complex:
            header.append("too complex to render: shown as its text")
        # a note's headline is the start of its text: the text alone says it, once
        has_title = bool(post.title and post.title.strip())
        _show_rich(e.headline if has_title else None, header, text, listing,
                   markdown=markdown)
        _show_thread(root, store, post)
        store.mark_read([post.short_id])


def _reply_line(root: Path, store, reply_to: str) -> str:  # noqa: ANN001
    """"↳ reply to “Garden update” (you, apbexfu3xo)" (PROTOCOL.md §4.2)."""
    from o2m_pub.cli.conversations import own_posts
    from o2m_pub.reader.thread_store import post_label
    from o2m_pub.reader.timeline import reply_context
    own = own_posts(root)
    label = post_label(store.db, reply_to, own.key if own else None,
                       own.title_of if own else None)
    return reply_context(label, with_id=True)


def show_post_text(title: str | None, header: list[str], text: str, *, source: bool,
                   render: bool = True) -> None:
    """A post's text as `o2m show` prints a friend's: the owner's own posts and the
    replies of threads. `render`: through rich's Markdown (the owner's own text, or a
    text of a size a person reads), else as its text."""
    from o2m_pub.reader.sanitize import body_text
    text = body_text(text)
    markdown = text if render and not source and len(text) <= _RICH_MARKDOWN_CHARS \
        else None
    _show_rich(title, header, text, [], markdown=markdown)


def _show_thread(root: Path, store, post) -> None:  # noqa: ANN001
    """PROTOCOL.md §4: the post's reactions and replies, under it."""
    from o2m_pub.cli.conversations import own_key, thread_lines
    from o2m_pub.reader.replying import find_target
    own = own_key(root)
    try:
        target = find_target(store, post.short_id)
    except O2MError:
        return
    lines = thread_lines(store, target.ref, own, site_zone(root))
    if lines:
        out()
        for line in lines:
            out(line)


_RICH_MARKDOWN_CHARS = 64 * 1024


def _show_rich(title: str | None, header: list[str], text: str, listing: list[str], *,
               markdown: str | None) -> None:
    """The post through rich: colours on a terminal; in a pipe, plain text without the
    spaces rich pads each line of Markdown with to the width of the page. A note (no
    `title`) starts with its header: its text follows once."""
    from rich.text import Text

    console = _stdout_console()
    with console.capture() as captured:
        if title is not None:
            console.print(Text(title, style="bold"))
        console.print(Text("\n".join(header), style="dim"))
        console.print()
        console.print(_terminal_markdown(markdown) if markdown is not None else Text(text))
        if listing:
            console.print()
            console.print(Text("attachments:", style="bold"))
            console.print(Text("\n".join(listing)), soft_wrap=True)  # paths stay whole
    shown = captured.get()
    if not console.is_terminal:
        shown = "\n".join(line.rstrip() for line in shown.split("\n"))  # (no U+2028 split)
    sys.stdout.write(shown)


def _terminal_markdown(text: str):  # noqa: ANN202 - rich.markdown.Markdown
    """rich's Markdown, with each image as the text "[image: ALT]" where it stands (rich
    would draw an emoji, and out of place). rich shows no raw HTML and loads nothing;
    links are shown with their address, not made clickable (a friend's link text could
    hide where it goes)."""
    from markdown_it.token import Token
    from rich.markdown import Markdown

    md = Markdown(text, hyperlinks=False)
    for token in md.parsed:
        if token.children:
            token.children = [
                Token("text", "", 0, content=f"[image: {' '.join(c.content.split())}]"
                      if c.content.strip() else "[image]")
                if c.type == "image" else c for c in token.children]
    return md


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include those already seen.")
@click.pass_context
def notifications(ctx: click.Context, show_all: bool) -> None:
    """New friends' feeds, key changes, unreachable or stale friends; listed ones are
    marked seen."""
    from o2m_pub.reader.timeline import local_time, notification_text

    root, store = _reader_store(ctx)
    with store:
        tz = site_zone(root)
        items = store.notifications(unseen_only=not show_all)
        for n in items:
            out(f"{'*' if not n.seen else ' '} {local_time(n.created, tz)}  "
                f"{notification_text(n)}")
        store.mark_notifications_seen([n.id for n in items if not n.seen])
    if not items:
        click.echo("no notifications" if show_all else "no new notifications", err=True)
