"""`o2m desk` (and its old name `o2m reader`): the owner's desk in the browser, on this
machine; and what `o2m serve --desk` mounts under the site's TLS server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from o2m_pub.cli._common import BadValueError, out, site_root, warn


def capabilities(root: Path):  # noqa: ANN201 - desk.actions.Capabilities
    """What the desk can do beyond its own pages, wired here (cli is the one part that
    may import every other). Reply and react are conversations' (`reader.replying`),
    invitations those of `o2m friend invite/accept`."""
    from o2m_pub.cli._common import local_now
    from o2m_pub.cli.identity import renew_own_card
    from o2m_pub.desk.actions import Capabilities
    from o2m_pub.reader.replying import DeskConversations
    talk = DeskConversations(root, local_now)
    return Capabilities(renew_card=renew_own_card, reply=talk, react=talk,
                        invite=Invitations(root), profile_fields=("bio", "avatar"))


ACCEPT_TIMEOUT = 20.0  # seconds for delivering an answer, as `o2m friend accept`'s default


class Invitations:
    """`desk.actions.InviteAction` through the code of `o2m friend invite` and `o2m friend
    accept` (cli/friends.py), so the desk and the terminal make and take the same
    invitations, in the same `.o2m/invites.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def invite(self, name: str | None, expires: str):  # noqa: ANN201 - NewInvitation
        from o2m_pub.cli.friends import _short_id, new_invitation
        from o2m_pub.desk.actions import NewInvitation
        invitation, text = new_invitation(self.root, name, expires)
        return NewInvitation(_short_id(invitation.invite_id), text, invitation.expires)

    def invitations(self):  # noqa: ANN201 - list[PendingInvitation]
        from o2m_pub.friends.invitations import InvitationBook
        return InvitationBook(self.root).list()

    def revoke(self, ident: str) -> None:
        from o2m_pub.friends.invitations import InvitationBook
        InvitationBook(self.root).revoke(ident)

    def accept(self, text: str, name: str | None):  # noqa: ANN201 - InvitationAnswer
        from o2m_pub.cli.friends import accept_invitation, finish_invitation
        from o2m_pub.desk.actions import InvitationAnswer
        from o2m_pub.protocol.invite import (
            INVITE_PREFIX,
            REPLY_PREFIX,
            MalformedInvitationError,
        )
        text = "".join(text.split())
        if text.startswith(INVITE_PREFIX):
            taken = accept_invitation(self.root, text, name, send=True,
                                      timeout=ACCEPT_TIMEOUT)
            return InvitationAnswer(taken.friend.name, taken.known, taken.delivered,
                                    taken.detail, taken.reply_text)
        if text.startswith(REPLY_PREFIX):
            accepted = finish_invitation(self.root, text)
            return InvitationAnswer(accepted.friend.name, accepted.already, None)
        raise MalformedInvitationError("not an invitation (o2m1i:…) or a reply (o2m1r:…)")


def _unlock(root: Path):  # noqa: ANN202 - bytes -> Identity
    from o2m_pub.desk.server import unlocker
    from o2m_pub.friends.identity import load_identity
    return unlocker(root, load_identity)


def _run_desk(ctx: click.Context, host: str, port: int, open_browser: bool) -> None:
    from o2m_pub.desk.app import open_app
    from o2m_pub.desk.server import DeskListenError, check_host, listen, run
    from o2m_pub.desk.web import loopback_origin

    try:
        host = check_host(host)  # before anything is opened
    except DeskListenError as e:  # a bad option value: a usage error (exit 2)
        raise BadValueError("--host", f"{host}: the desk listens on 127.0.0.1 or ::1 only",
                            hint=e.hint) from None
    root = site_root(ctx)

    def make(bound: int):  # noqa: ANN202 - desk.app.DeskApp
        return open_app(root, loopback_origin(host, bound), unlock=_unlock(root),
                        capabilities=capabilities(root))

    listening = listen(make, host, port)

    def started() -> None:  # once the reactor runs and Ctrl-C / SIGTERM stop it
        out(f"o2m: desk at {listening.url} (Ctrl-C to stop)")
        sys.stdout.flush()
        if open_browser:
            open_in_browser(listening.url)

    run(started)


def open_in_browser(url: str) -> None:
    """--open: the desk in the web browser; where none can be started (a server without
    a display, no browser installed), say so and where to go, rather than nothing."""
    import webbrowser
    from urllib.parse import urlsplit

    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        port = urlsplit(url).port
        warn(f"no web browser could be opened here: open {url} in one on this machine "
             f"(from another, forward the port first: ssh -L {port}:localhost:{port} "
             "THIS-MACHINE)")


_HOST = click.option("--host", default="127.0.0.1", show_default=True,
                     help="Loopback address to listen on: 127.0.0.1 or ::1, nothing else.")
_PORT = click.option("--port", type=click.IntRange(0, 65535), default=8480, show_default=True,
                     help="Port to listen on (0: any free one).")
_OPEN = click.option("--open", "open_browser", is_flag=True, help="Open it in your web browser.")


@click.command()
@_HOST
@_PORT
@_OPEN
@click.pass_context
def desk(ctx: click.Context, host: str, port: int, open_browser: bool) -> None:
    """Your desk in the browser: read friends, write posts, add friends.

    Served on this machine only; sign in with your passphrase. To use it from
    anywhere, run `o2m serve --desk` (the desk under your site's TLS server).
    Keep `o2m watch` running to publish what you write.
    """
    _run_desk(ctx, host, port, open_browser)


@click.command()
@_HOST
@_PORT
@_OPEN
@click.pass_context
def reader(ctx: click.Context, host: str, port: int, open_browser: bool) -> None:
    """The same as `o2m desk` (its old name)."""
    _run_desk(ctx, host, port, open_browser)


def serve_mount(root: Path, url: str, bind_host: str, port: int):  # noqa: ANN201
    """`ServeOptions.mount` for `o2m serve --desk`: a factory called in each worker
    process (its own stores), answering at the site's own host (and, when the server is
    on loopback, at 127.0.0.1 and localhost on its port)."""
    from o2m_pub.desk.web import site_origin

    extra: frozenset[str] = frozenset()
    if bind_host in ("127.0.0.1", "::1", "localhost"):
        extra = frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})
    origin = site_origin(url, extra)

    def make(reactor):  # noqa: ANN001, ANN202 - a host.serve.Mount
        from o2m_pub.desk.app import open_app
        from o2m_pub.desk.server import mount
        return mount(lambda: open_app(root, origin, unlock=_unlock(root),
                                      capabilities=capabilities(root)), reactor)
    return make
