"""`o2m mention …`: Webmentions (PROTOCOL.md §1.6), received and sent; and the wiring
that `o2m serve` and `o2m publish` use.

The parts do not know each other: `host.webmention` takes a request and hands it on,
`reader.webmention` fetches and checks pages, `site.mentions` keeps the state and the
build shows what was approved. This module joins them: `webmention_receiver` for the
server (the endpoint's target check, then record and verify), `send_pending` for
`o2m publish`, `o2m serve --watch` and `o2m mention send`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click

from o2m_pub.cli._common import local_now, out, plural, site_root, warn

# -- the server's endpoint --------------------------------------------------------------


def webmention_receiver(root: Path, config, report: Callable[[str], None]):  # noqa: ANN001, ANN201
    """`o2m serve`'s Webmention endpoint (a `host.webmention.WebmentionReceiver`), or
    None when the site takes none (``[site] webmention = false``).

    The target check runs on the request path: the post must be one of the public
    posts of the last build (`site.mentions.PublicPaths`, re-read only when the build's
    manifest changed). `receive` runs in a worker thread after the 202: it records the
    mention, then verifies it (`reader.webmention.verify`, the source fetched with its
    caps, never from an address nearer than the owner's own site) and stores the result
    for `o2m mention list`."""
    if not config.webmention:
        return None
    from o2m_pub.host.webmention import WebmentionReceiver
    from o2m_pub.site.mention_plan import post_of
    from o2m_pub.site.mentions import PublicPaths

    paths = PublicPaths(root)

    def target_post(url: str) -> str | None:
        return post_of(url, config.url, paths())

    def receive(source: str, target: str, post: str) -> None:
        from o2m_pub.site.mentions import MentionStore
        with MentionStore(root) as store:
            mention_id = store.receive(source, target, post, local_now())
        report(verify_mention(root, config, mention_id))

    return WebmentionReceiver(target_post, receive)


_floors: dict[str, object] = {}


def _own_floor(site_url: str):  # noqa: ANN202 - public_web.Reach
    """The reach of the owner's own site: a source may be no nearer (a site served on
    a private network verifies sources there; one on the internet, only public ones).
    A site whose name does not resolve here counts as public."""
    from o2m_pub.reader.public_web import Reach, WebRefused, reach_of_url
    if site_url not in _floors:
        try:
            _floors[site_url] = reach_of_url(site_url)
        except WebRefused:
            return Reach.PUBLIC
    return _floors[site_url]


def verify_mention(root: Path, config, mention_id: int) -> str:  # noqa: ANN001
    """Verify one stored mention now and store the outcome; one line saying what came
    of it."""
    from o2m_pub.reader.webmention import verify
    from o2m_pub.site.mentions import MentionStore

    with MentionStore(root) as store:
        mention = store.get(mention_id)
    result = verify(mention.source, mention.target, floor=_own_floor(config.url))
    with MentionStore(root) as store:
        store.verified(mention_id, result.outcome, reason=result.reason or result.outcome,
                       facts=result.facts, now=local_now())
    what = f"webmention {mention_id} from {mention.source} to /{mention.post}"
    if result.outcome == "verified":
        return f"{what}: a {result.facts.kind}, waiting for `o2m mention approve {mention_id}`"
    return f"{what}: {result.outcome}" + (f" ({result.detail})" if result.detail else "")


# -- sending ----------------------------------------------------------------------------


@dataclass
class SendReport:
    """What `send_pending` did: one line per mention tried or skipped."""

    lines: list[str] = field(default_factory=list)
    sent: int = 0
    due: int = 0


def send_pending(root: Path, *, dry_run: bool = False,
                 on_line: Callable[[str], None] | None = None) -> SendReport:
    """Send every Webmention due (`site.mention_plan.plan_mentions`), once its source
    is live: a post's page must answer 200 and link to the target (a deleted one must
    answer 404 or 410) before anyone is told to read it; what is not live yet stays due.
    Each outcome is recorded at once (`site.mentions.MentionStore.record_sent`)."""
    from o2m_pub.config import load
    from o2m_pub.site.mention_plan import plan_mentions, told_mark
    from o2m_pub.site.mentions import MentionStore, published_posts

    config = load(root)
    report = SendReport()
    if not config.webmention:
        return report
    posts = published_posts(root)
    if not MentionStore.exists(root) and not plan_mentions(
            posts, {}, {}, config.url, with_links=config.webmention_links):
        return report  # nothing was ever due: no store made for nothing

    def line(text: str) -> None:
        report.lines.append(text)
        if on_line is not None:
            on_line(text)

    with MentionStore(root) as store:
        sent, told = store.sent(), store.told()
        due = plan_mentions(posts, sent, told, config.url, with_links=config.webmention_links)
        report.due = len(due)
        if dry_run:
            for item in due:
                line(f"would send ({item.why}): {item.source} -> {item.target}")
            return report
        done = _send_due(store, due, sent, line, report)
        live = {p.path: told_mark(p.digest, config.webmention_links) for p in posts}
        settled = {p: d for p, d in live.items() if told.get(p) != d and p not in done}
        settled.update({p: live[p] for p, finished in done.items() if finished and p in live})
        settled.update({p: None for p in told if p not in live})
        store.set_told(settled)
    return report


def _send_due(store, due, sent, line, report) -> dict[str, bool]:  # noqa: ANN001
    """Send `due`, source by source; post path -> whether all its mentions are settled."""
    from o2m_pub.reader.public_web import WebRefused
    from o2m_pub.reader.webmention import links_of, send
    from o2m_pub.site.mention_plan import DELETED, after_delivery

    finished: dict[str, bool] = {}
    pages: dict[str, tuple[int, frozenset[str]] | str] = {}
    for item in due:
        if item.source not in pages:
            try:
                pages[item.source] = links_of(item.source)
            except WebRefused as e:
                pages[item.source] = e.detail
        page = pages[item.source]
        if isinstance(page, str):
            line(f"not sent: {item.source} -> {item.target}: cannot read the post's own "
                 f"page ({page}); tried again next time")
            finished[item.post] = False
            continue
        status, links = page
        live = (status in (404, 410) if item.digest == DELETED else
                status == 200 and (item.why == "unlinked" or item.target in links))
        if not live:
            line(f"not sent: {item.source} -> {item.target}: the post's page is not live "
                 f"yet (HTTP {status}); tried again next time")
            finished[item.post] = False
            continue
        delivery = send(item.source, item.target)
        record = after_delivery(item, delivery.outcome, delivery.detail, delivery.endpoint,
                                sent.get((item.post, item.target)), local_now().isoformat(
                                    timespec="seconds"))
        store.record_sent(record)
        report.sent += record.outcome in ("sent", "unlinked", "deleted")
        finished[item.post] = finished.get(item.post, True) and record.outcome != "failed"
        line(f"{record.outcome}: {item.source} -> {item.target}"
             + (f" ({delivery.detail})" if delivery.detail else ""))
    return finished


class BackgroundSender:
    """`send_pending` in a thread of its own after each build of `o2m serve --watch`:
    one run at a time, and one more if builds came meanwhile."""

    def __init__(self, root: Path, report: Callable[[str], None]) -> None:
        self.root, self.report = root, report
        self._lock = threading.Lock()
        self._running = self._again = False

    def after_build(self, result) -> None:  # noqa: ANN001 - watch.BuildResult
        if result.error is not None or result.report is None:
            return
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._run, name="o2m-webmention", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                send_pending(self.root, on_line=lambda text: self.report("webmention: " + text))
            except Exception as e:  # noqa: BLE001 - the server goes on
                self.report(f"webmention: not sent: {e}")
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False


# -- o2m mention … ----------------------------------------------------------------------


@click.group()
def mention() -> None:
    """Webmentions: received for your public posts, and sent for them."""


def _store(ctx: click.Context):  # noqa: ANN202
    from o2m_pub.site.mentions import MentionStore
    root = site_root(ctx)
    return root, MentionStore(root)


def _line(m) -> str:  # noqa: ANN001 - site.mentions.Mention
    author = m.author_name or "(no name)"
    if m.author_url:
        author += f" <{m.author_url}>"
    kind = m.kind if m.status not in ("verifying", "refused") else "-"
    extra = f"  [{m.reason}]" if m.reason and m.status in ("refused", "verifying") else ""
    return (f"{m.id:>4}  {m.status:<9}  {kind:<8}  {m.received[:10]}  {author}\n"
            f"      {m.source} -> /{m.post}{extra}")


@mention.command("list")
@click.option("--all", "show_all", is_flag=True,
              help="Also those refused at verification and still verifying.")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "refused",
                                             "verifying"]), multiple=True,
              help="Only these (may be given more than once).")
@click.option("--sent", is_flag=True, help="List the mentions this site sent instead.")
@click.pass_context
def list_mentions(ctx: click.Context, show_all: bool, status: tuple[str, ...],
                  sent: bool) -> None:
    """Received mentions: pending, approved and rejected, with id, type, author and
    source (approve or reject them by id)."""
    root, store = _store(ctx)
    with store:
        if sent:
            records = sorted(store.sent().values(), key=lambda r: (r.at, r.post, r.target))
            for r in records:
                out(f"{r.at[:16]}  {r.outcome:<11}  /{r.post} -> {r.target}"
                    + (f"  ({r.detail})" if r.detail and r.outcome != "sent" else ""))
            if not records:
                click.echo("no mention sent yet", err=True)
            return
        wanted = status or (("pending", "approved", "rejected", "refused", "verifying")
                            if show_all else ("pending", "approved", "rejected"))
        mentions = store.mentions(wanted)
    for m in mentions:
        out(_line(m))
    if not mentions:
        click.echo("no mentions" + ("" if show_all or status else
                                    " (--all also shows refused ones)"), err=True)


def _set(ctx: click.Context, ids: tuple[int, ...], status: str) -> None:
    _, store = _store(ctx)
    with store:
        for mention_id in ids:
            m = store.set_status(mention_id, status)
            out(f"{status} {m.id}: {m.author_name or m.source} on /{m.post}")
    out("o2m: the post's page shows it after the next build (`o2m build`)"
        if status == "approved" else "o2m: the next build takes it off the post's page")


@mention.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@click.pass_context
def approve(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Show these mentions on their posts' pages (from the next build on)."""
    _set(ctx, ids, "approved")


@mention.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@click.pass_context
def reject(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Never show these (a re-send from the same page stays rejected)."""
    _set(ctx, ids, "rejected")


@mention.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@click.pass_context
def delete(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Forget these mentions (a re-send arrives as a new one)."""
    _, store = _store(ctx)
    with store:
        for mention_id in ids:
            m = store.delete(mention_id)
            out(f"deleted {m.id}: {m.source} on /{m.post}")


@mention.command()
@click.argument("ids", nargs=-1, type=int)
@click.pass_context
def verify(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Verify mentions again now (default: those a stopped server left verifying)."""
    from o2m_pub.config import load

    root, store = _store(ctx)
    with store:
        todo = list(ids) or [m.id for m in store.unverified()]
        for mention_id in todo:
            store.get(mention_id)  # an unknown id fails here, before any fetch
    config = load(root)
    for mention_id in todo:
        out(verify_mention(root, config, mention_id))
    if not todo:
        click.echo("nothing to verify", err=True)


@mention.command("send")
@click.option("-n", "--dry-run", is_flag=True, help="List what is due; send nothing.")
@click.pass_context
def send_command(ctx: click.Context, dry_run: bool) -> None:
    """Send the Webmentions due for your published public posts (new, changed or
    deleted since last told); `o2m publish` does this after each upload."""
    root = site_root(ctx)
    report = send_pending(root, dry_run=dry_run, on_line=out)
    if not report.due:
        click.echo("no Webmention due", err=True)
    elif not dry_run:
        click.echo(f"o2m: {plural(report.sent, 'Webmention')} sent of "
                   f"{report.due:,} due", err=True)


def after_publish(root: Path) -> None:
    """`o2m publish`'s last step: the pages are live, so tell whom they mention. A
    failure here is a warning: the upload itself succeeded."""
    from o2m_pub.errors import O2MError
    try:
        send_pending(root, on_line=lambda text: out("webmention: " + text))
    except O2MError as e:
        warn(f"Webmentions not sent: {e}")
