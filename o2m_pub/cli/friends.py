"""`o2m friend …` and `o2m group …`: the people you share with, and how you become
friends (cards and invitations). Who you are, your card and your keys are
`cli/identity.py`'s."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from o2m_pub.cli._common import local_now, out, site_root, warn
from o2m_pub.errors import SiteError

if TYPE_CHECKING:
    from o2m_pub.friends.friend_store import Friend
    from o2m_pub.protocol.cards import Card


def _store(ctx: click.Context):  # noqa: ANN202 - friends.FriendStore
    return friend_store(site_root(ctx))


def friend_store(root: Path):  # noqa: ANN201 - friends.FriendStore
    """The site's friend store, knowing the owner's key and o2m.toml's groups (also for
    `o2m serve`'s inbox)."""
    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import own_card

    card = own_card(root)
    return FriendStore(root, own_sign_pk=card.sign_pk if card else None,
                       config_groups=load(root).groups)


@click.group()
def friend() -> None:
    """Your friends: invite them or add their cards; list, rename, remove."""


@friend.command("add")
@click.argument("name")
@click.argument("card")
@click.option("--yes", is_flag=True, help="Add without asking (you checked the fingerprint).")
@click.option("--fingerprint", "expected", help="Add only if the card has this fingerprint.")
@click.option("--accept-key-change", is_flag=True,
              help="Replace the keys of a friend who has new ones (check the fingerprint first).")
@click.option("--timeout", type=click.FloatRange(1, 600), default=20, show_default=True,
              help="Seconds for fetching the card from a site URL, all told.")
@click.pass_context
def friend_add(ctx: click.Context, name: str, card: str, yes: bool, expected: str | None,
               accept_key_change: bool, timeout: float) -> None:
    """Add a friend as NAME from CARD: a card file, o2m1:… text, or their site's https URL.

    NAME is how you call them in `audience:` (lower case, e.g. alice). Adding someone
    gives them your friends-only posts; they see them once they add you back.
    """
    from o2m_pub.protocol.cards import (
        MalformedCardError,
        card_from_any,
        looks_like_card_text_without_prefix,
        text_cut_short,
    )
    from o2m_pub.protocol.keyfile import fingerprint

    by_url = card.startswith(("https://", "http://"))
    if by_url:
        if expected is None and (yes or not sys.stdin.isatty()):
            raise SiteError("a card fetched from a site needs its fingerprint checked",
                            hint="ask your friend for it and pass --fingerprint '…'")
        from o2m_pub.reader.http_fetch import fetch_card_bytes

        # the hardened fetcher of `o2m fetch`: caps, a wall-clock deadline, no proxy
        # from the environment; $O2M_CA_BUNDLE names a private CA
        parsed = card_from_any(fetch_card_bytes(card, deadline=timeout))
    elif card.startswith("o2m1:"):
        try:
            parsed = card_from_any(card)
        except MalformedCardError:
            if text_cut_short(card):
                raise MalformedCardError("this card is cut short: its end is missing",
                                         hint="copy the whole o2m1:… text, up to its last "
                                              "character") from None
            raise
    else:
        if looks_like_card_text_without_prefix(card):
            raise MalformedCardError("this looks like a card without its o2m1: prefix",
                                     hint="copy the whole o2m1:… text, or put o2m1: in front "
                                          "of what you pasted")
        path = Path(card)
        if not path.is_file():
            raise SiteError(f"{card}: no such card file",
                            hint="pass a card file, the o2m1:… text, or an https:// site URL")
        parsed = card_from_any(path.read_bytes())
    fp = fingerprint(parsed.sign_pk, parsed.box_pk)
    if expected is not None:
        if " ".join(expected.split()) != fp:
            raise SiteError(f"the card's fingerprint is {fp}, not the one given",
                            hint="do not add this card: check with your friend how they sent it")
    elif not yes:
        out(f"{parsed.name} <{parsed.url}>")
        out(f"fingerprint: {fp}")
        if not sys.stdin.isatty():
            raise SiteError("confirm the fingerprint with your friend first",
                            hint="then pass --yes, or --fingerprint '…' to check it here")
        if not click.confirm("Is this the fingerprint your friend sees in `o2m whoami`?"):
            raise SiteError("not added")
    store = _store(ctx)
    before = store.find_by_keys(parsed.sign_pk)
    added = store.add(name, parsed, now=local_now(), accept_key_change=accept_key_change)
    known = before is not None and before.name == added.name
    if known and before.card.raw == added.card.raw:  # the same card, or one older than theirs
        which = "a newer card" if added.card.raw != parsed.raw else "this card"
        out(f"{added.name} is already your friend with {which}; nothing changed")
        return
    out(f"{'updated' if known else 'added'} {added.name}: {parsed.name} <{parsed.url}>, "
        f"fingerprint {fp}")
    if not known or before.card.box_pk != added.card.box_pk:  # (else their feed stays)
        out("their feed is written at your next `o2m build`")


@friend.command("invite")
@click.argument("name", required=False)
@click.option("--expires", default="7d", show_default=True, metavar="DURATION",
              help="How long it can be used: 7d, 12h, 30m (at most a year).")
@click.option("--qr", is_flag=True, help="Also show it as a QR code in the terminal.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Write a QR code PNG.")
@click.option("--svg", type=click.Path(dir_okay=False, path_type=Path), help="Write a QR code SVG.")
@click.option("--list", "list_them", is_flag=True,
              help="List your invitations: pending, used, expired.")
@click.option("--revoke", metavar="ID", help="Cancel an unused invitation (ID from --list).")
@click.pass_context
def friend_invite(ctx: click.Context, name: str | None, expires: str, qr: bool,
                  png: Path | None, svg: Path | None, list_them: bool,
                  revoke: str | None) -> None:
    """Invite a friend in one step: prints a one-time invitation (o2m1i:… text).

    Send it over a channel you trust (in person, a messenger you use with them):
    whoever holds it can use it, once. Your friend runs `o2m friend accept TEXT`: they
    add you, and their card comes back to you, at once if you run `o2m serve`, else as
    a reply text that you give to `o2m friend accept`. NAME is what you will call them
    in `audience:` (else a name made from their card).
    """
    from o2m_pub.friends.invitations import InvitationBook

    root = site_root(ctx)
    book = InvitationBook(root)
    if list_them:
        _list_invitations(root, book)
        return
    if revoke:
        gone = book.revoke(revoke)
        out(f"revoked invitation {gone.id[:8]}" + (f" for {gone.name}" if gone.name else ""))
        return
    _check_expires(expires)
    _make_invitation(root, book, name, expires, qr=qr, png=png, svg=svg)


def _check_expires(expires: str) -> None:
    """--expires as a duration within a year: a usage error (exit 2) otherwise, before
    anything is looked at (the invitation book holds the same bound, `MAX_EXPIRY`)."""
    import datetime as dt

    from o2m_pub.cli._common import BadValueError
    from o2m_pub.friends.invitations import MAX_EXPIRY
    from o2m_pub.host.publish.plan import parse_duration
    try:
        lifetime = parse_duration(expires)
    except ValueError:
        lifetime = None
    if lifetime is None or not dt.timedelta(0) < lifetime <= MAX_EXPIRY:
        raise BadValueError("--expires", f"{expires!r} is not a duration within a year",
                            hint="e.g. --expires 7d, 12h or 30m")


def new_invitation(root: Path, name: str | None, expires: str):  # noqa: ANN201
    """Make an invitation (§2.7) and remember it: what `o2m friend invite` and the desk
    do. Returns the `protocol.invite.Invitation` and its o2m1i: text.

    Raises:
        SiteError: no identity yet.
        InvalidFriendNameError: `name` is not a free friend name.
        InvitationError: `expires` is no duration within a year, or too many pending.
    """
    import nacl.utils

    from o2m_pub.friends.friend_store import InvalidFriendNameError, valid_name
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.invitations import InvitationBook
    from o2m_pub.host.publish.plan import parse_duration
    from o2m_pub.protocol.invite import SECRET_BYTES, InvitationError, invitation_to_text

    card = own_card(root)
    if card is None:
        raise SiteError("this site has no identity yet", hint="made by `o2m init`")
    if name is not None:
        if not valid_name(name):
            raise InvalidFriendNameError(f"{name!r} is not a valid friend name")
        store = friend_store(root)
        if name in {f.name for f in store.list()} | set(store.groups()):
            raise InvalidFriendNameError(f"{name!r} is already a friend's or a group's name",
                                         hint="invite them under another name")
    try:
        lifetime = parse_duration(expires)
    except ValueError as e:
        raise InvitationError(f"--expires {e}", hint="e.g. --expires 7d, 12h or 30m") from None
    now = local_now()
    invitation = InvitationBook(root).create(card, secret=nacl.utils.random(SECRET_BYTES),
                                             name=name, now=now, expires=now + lifetime)
    return invitation, invitation_to_text(invitation)


def _make_invitation(root: Path, book, name: str | None, expires: str, *,  # noqa: ANN001
                     qr: bool, png: Path | None, svg: Path | None) -> None:
    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.qr import qr_png, qr_svg, qr_terminal

    invitation, text = new_invitation(root, name, expires)
    card = own_card(root)
    if png:
        png.write_bytes(qr_png(text))
    if svg:
        svg.write_bytes(qr_svg(text))
    if qr:
        out(qr_terminal(text))
    out(text)
    ident = _short_id(invitation.invite_id)
    say(f"invitation {ident}" + (f" for {name}" if name else "") + ", valid until "
        f"{_local(root, invitation.expires)}; whoever holds it can use it once, so send "
        "it over a channel you trust")
    say("they run: o2m friend accept 'o2m1i:…'; `o2m serve` takes their answer at once, "
        "else they send you a reply text for `o2m friend accept`")
    if card is not None and card.tls_pin is None:
        say("your card has no TLS pin: their answer reaches `o2m serve` only if your "
            "certificate is one their system trusts")


def _short_id(invite_id: bytes) -> str:
    from o2m_pub.protocol.canonical import b64u_encode
    return b64u_encode(invite_id)[:8]


def _local(root: Path, stored: str) -> str:
    """A §2.1 time in the site's zone, to the minute."""
    from o2m_pub.config import load
    from o2m_pub.protocol.canonical import parse_utc_text

    return parse_utc_text(stored).astimezone(load(root).tz).strftime("%Y-%m-%d %H:%M %Z")


def say(text: str) -> None:
    """A line for the person at the terminal (stderr), when stdout carries a text to
    paste elsewhere."""
    click.echo(text, err=True)


def _list_invitations(root: Path, book) -> None:  # noqa: ANN001 - InvitationBook
    records = book.list()
    if not records:
        out("no invitations: `o2m friend invite [NAME]` makes one")
    now = local_now()
    for r in records:
        status = r.status(now)
        if status == "used":
            detail = f"used on {_local(root, r.used)}: made {r.friend} a friend"
        else:
            detail = f"{status}, {'until' if status == 'pending' else 'since'} " \
                     f"{_local(root, r.expires)}"
        out(f"{r.id[:8]}  {r.name or '-':<16} {detail}")


@friend.command("accept")
@click.argument("text")
@click.option("--name", help="What you will call them (else a name made from their card).")
@click.option("--no-send", is_flag=True,
              help="Do not send your answer to their site: print the reply text to send them.")
@click.option("--timeout", type=click.FloatRange(1, 600), default=20, show_default=True,
              help="Seconds for sending your answer to their site, all told.")
@click.pass_context
def friend_accept(ctx: click.Context, text: str, name: str | None, no_send: bool,
                  timeout: float) -> None:
    """Accept an invitation (o2m1i:… text), or finish one of yours with the reply your
    friend sent back (o2m1r:… text). TEXT may also be a file holding it.

    Accepting adds the one who invited you as a friend (the invitation vouches for their
    card) and sends your card back to their site; if it cannot be delivered, a reply
    text is printed for you to send them.
    """
    from o2m_pub.protocol.invite import INVITE_PREFIX, REPLY_PREFIX, MalformedInvitationError

    root = site_root(ctx)
    text = _text_or_file(text)
    if text.startswith(INVITE_PREFIX):
        _accept_invitation(root, text, name, no_send=no_send, timeout=timeout)
    elif text.startswith(REPLY_PREFIX):
        _finish_invitation(root, text)
    else:
        raise MalformedInvitationError("not an invitation (o2m1i:…) or a reply (o2m1r:…)")


def _text_or_file(text: str) -> str:
    """TEXT as given, or the content of the file it names (a long text saved to disk)."""
    stripped = text.strip()
    if stripped.startswith(("o2m1i:", "o2m1r:")):
        return stripped
    path = Path(text)
    if path.is_file() and path.stat().st_size <= 64 * 1024:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    return stripped


@dataclass(frozen=True)
class InvitationTaken:
    """An invitation accepted (the invitee's side, §2.7): its owner added as `friend`
    (`known`: they were a friend already), and the answer delivered to their site or,
    when it was not (`detail` says why), the reply text to send them."""

    friend: "Friend"
    known: bool
    own: "Card"
    delivered: bool
    detail: str | None
    reply_text: str | None


def accept_invitation(root: Path, text: str, name: str | None, *, send: bool,
                      timeout: float) -> InvitationTaken:
    """The invitee's side (§2.7): check the invitation, add its owner, answer (POSTed to
    their inbox when `send`): what `o2m friend accept` and the desk do.

    Raises:
        MalformedInvitationError, ExpiredInvitationError, InvitationError: not an
            invitation that can be accepted (e.g. one's own).
        SiteError: no identity yet.
        FriendError: the owner's card cannot be added.
    """
    import nacl.utils

    from o2m_pub.friends.identity import own_card
    from o2m_pub.friends.invitations import friend_name_for
    from o2m_pub.protocol.invite import (
        NONCE_BYTES,
        InvitationError,
        check_not_expired,
        invitation_from_text,
        reply_to_text,
        seal_acceptance,
    )

    invitation = invitation_from_text(text)
    check_not_expired(invitation, local_now())
    own = own_card(root)
    if own is None:
        raise SiteError("this site has no identity yet", hint="made by `o2m init`")
    owner = invitation.card
    if owner.sign_pk == own.sign_pk:
        raise InvitationError("this is your own invitation",
                              hint="send it to the friend you invite")
    store = friend_store(root)
    known = store.find_by_keys(owner.sign_pk)
    if known is not None:
        local = known.name
    else:
        local = name or friend_name_for(owner.name, {f.name for f in store.list()}
                                        | set(store.groups()))
    added = store.add(local, owner, now=local_now())
    acceptance = seal_acceptance(invitation.secret, own, nonce=nacl.utils.random(NONCE_BYTES))
    detail = "not sent"
    if send:
        answer = _deliver(owner, acceptance, timeout)
        if answer.delivered:
            return InvitationTaken(added, known is not None, own, True, None, None)
        detail = answer.detail
    return InvitationTaken(added, known is not None, own, False, detail,
                           reply_to_text(acceptance))


def _accept_invitation(root: Path, text: str, name: str | None, *, no_send: bool,
                       timeout: float) -> None:
    from o2m_pub.protocol.keyfile import fingerprint

    taken = accept_invitation(root, text, name, send=not no_send, timeout=timeout)
    added, owner, own = taken.friend, taken.friend.card, taken.own
    say(("already your friend" if taken.known else "added") + f" as {added.name}: "
        f"{owner.name} <{owner.url}>")
    say(f"their fingerprint: {added.fingerprint} (the invitation vouches for it; compare it "
        "with them when you can)")
    say(f"your fingerprint:  {fingerprint(own.sign_pk, own.box_pk)}")
    later = (f"your feed for {added.name} is written at your next `o2m build`; theirs is "
             "read at your next `o2m fetch`")
    if taken.delivered:
        # An inbox answers 202 before it looks at anything secret, whatever it then
        # decides (PROTOCOL.md §5): it never tells whether an invitation exists or was
        # used, so "received" is all this side can know, and all it may say.
        say(f"sent: {owner.name}'s site received your answer; it checks it after "
            "answering and does not say whether it took it (an inbox never tells whether "
            "an invitation is unknown, used or expired)")
        if taken.known:
            say(f"{added.name} was your friend already: if you accepted this invitation "
                "before, it is used, and this answer is refused there (the first one stands)")
        say(f"your feed for {added.name} is written at your next `o2m build`; `o2m fetch` "
            f"finds theirs once their site has taken your answer (they are told) and built")
        return
    if no_send:
        say("your answer was not sent (--no-send)")
    else:
        say(f"could not deliver your answer to {owner.name}'s site: {taken.detail}")
    say(f"send {owner.name} this reply text (over the way the invitation came), for their "
        "`o2m friend accept`:")
    out(taken.reply_text or "")
    say(later)


def _deliver(owner, acceptance: bytes, timeout: float):  # noqa: ANN001, ANN202
    """POST the acceptance to the owner's inbox, pinned by their card (§5)."""
    from o2m_pub.errors import O2MError
    from o2m_pub.reader.http_fetch import InboxAnswer, post_to_inbox

    try:
        return post_to_inbox(owner.url, acceptance, tls_pin=owner.tls_pin, deadline=timeout)
    except O2MError as e:  # a CA bundle that cannot be read: the reply text still works
        return InboxAnswer(None, str(e))


def finish_invitation(root: Path, text: str):  # noqa: ANN201 - invitations.Accepted
    """The owner's side of a reply text (§2.7), as the server's inbox would: what `o2m
    friend accept o2m1r:…` and the desk do.

    Raises:
        MalformedInvitationError, InvitationError, FriendError: see
            `InvitationBook.accept`.
    """
    from o2m_pub.friends.invitations import InvitationBook
    from o2m_pub.protocol.invite import reply_from_text

    return InvitationBook(root).accept(reply_from_text(text), friend_store(root),
                                       now=local_now())


def _finish_invitation(root: Path, text: str) -> None:
    from o2m_pub.friends.identity import own_card

    for line in accepted_lines(finish_invitation(root, text), own_card(root)):
        out(line)


def accepted_lines(accepted, own) -> list[str]:  # noqa: ANN001 - Accepted, Card
    """What the owner is told of an acceptance (here, and in `o2m serve`'s log)."""
    from o2m_pub.protocol.keyfile import fingerprint

    friend = accepted.friend
    lines = [f"{friend.name} accepted your invitation: "
             + ("already your friend with this card" if accepted.already else
                f"added {friend.name}: {friend.card.name} <{friend.card.url}>"),
             f"their fingerprint: {friend.fingerprint}"]
    if own is not None:
        lines.append(f"your fingerprint:  {fingerprint(own.sign_pk, own.box_pk)}")
    lines.append(f"your feed for {friend.name} is written at your next `o2m build`")
    return lines


@friend.command("list")
@click.pass_context
def friend_list(ctx: click.Context) -> None:
    """List your friends with their fingerprints."""
    friends = _store(ctx).list()
    if not friends:
        out("no friends yet: `o2m card` prints yours; `o2m friend add NAME CARD` adds theirs")
    for f in friends:
        out(f"{f.name:<16} {f.card.name} <{f.card.url}>  {f.fingerprint}")


@friend.command("show")
@click.argument("name")
@click.pass_context
def friend_show(ctx: click.Context, name: str) -> None:
    """Show one friend's card."""
    store = _store(ctx)
    f = store.get(name)
    groups = [g for g, members in store.groups().items() if name in members]
    out(f"name:        {f.name}")
    out(f"calls self:  {f.card.name}")
    out(f"site:        {f.card.url}")
    out(f"fingerprint: {f.fingerprint}")
    out(f"added:       {f.added}")
    out(f"groups:      {', '.join(groups) or '-'}")
    out(f"card:        seq {f.card.seq}, " + ("TLS pin" if f.card.tls_pin else "no TLS pin")
        + (", public feed signed" if f.card.feed_pk else ", public feed unsigned (an older o2m)"))
    if f.card.bio:
        out(f"bio:         {' '.join(f.card.bio.split())}")
    if f.previous_keys:
        out(f"key changes: {len(f.previous_keys)}"
            + (f" ({len(f.rotations)} by verified rotation)" if f.rotations else ""))


@friend.command("rename")
@click.argument("old")
@click.argument("new")
@click.pass_context
def friend_rename(ctx: click.Context, old: str, new: str) -> None:
    """Call a friend by another name. Their posts in your timeline and the groups of
    `o2m group` go with them; posts whose `audience:` names them, and o2m.toml's
    groups, are listed (at a terminal, o2m offers to change them, and asks first)."""
    from o2m_pub.cli.reading import reader_without_fetch
    from o2m_pub.reader.store import rename_friend
    root = site_root(ctx)
    with reader_without_fetch(root) as reader:
        rename_friend(_store(ctx), reader, old, new)
    out(f"renamed {old} to {new}")
    _old_name_uses(root, old, new)


@friend.command("remove")
@click.argument("name")
@click.pass_context
def friend_remove(ctx: click.Context, name: str) -> None:
    """Remove a friend: at the next build their feed is deleted and they get nothing new.
    Their posts leave your timeline. Posts whose `audience:` names them are listed."""
    from o2m_pub.cli.reading import reader_without_fetch
    from o2m_pub.reader.store import StoreError, remove_friend
    root = site_root(ctx)
    store = _store(ctx)
    try:
        with reader_without_fetch(root) as reader:
            remove_friend(store, reader, name)
    except StoreError as e:  # cutting someone off never waits for the timeline's repair
        store.remove(name)
        warn(f"their posts stay in your timeline: {e}")
    out(f"removed {name}, and their posts from your timeline; your feed for them goes at "
        "the next `o2m build` (what they already fetched stays with them)")
    _old_name_uses(root, name, None)


def _old_name_uses(root: Path, old: str, new: str | None) -> None:
    """After a rename (`new`) or a removal (None): the posts and o2m.toml lines that
    still name `old` as an audience, which now means no one (the next build stops on
    them, and until they change, what they name does not reach the friend). At a
    terminal, a rename offers to change them; nothing in content/ changes unasked."""
    from o2m_pub.config import load
    from o2m_pub.site.audience_uses import find_uses

    uses = find_uses(root, load(root), old)
    if not uses:
        return
    n = len(uses)
    warn(f"{n} place{'s' if n != 1 else ''} still name{'' if n != 1 else 's'} {old} as an "
         "audience, which now means no one:")
    for use in uses:
        say(f"  {use}  ({use.what})")
    if new is None:
        say(f"  hint: take {old} out of each (a post for {old} alone: give it another "
            "audience, or delete it) before your next `o2m build`, which stops on "
            f"\"unknown audience '{old}'\"")
        return
    if sys.stdin.isatty() and click.confirm(f"Change {old} to {new} there?", default=False,
                                            err=True):
        uses = _rewrite_uses(root, uses, old, new)
        if not uses:
            return
        say("these could not be changed safely; edit them by hand:")
        for use in uses:
            say(f"  {use}  ({use.what})")
    say(f"  hint: change {old} to {new} there before your next `o2m build`: until then "
        f"they are not for {new}, and the build stops on \"unknown audience '{old}'\"")


def _rewrite_uses(root: Path, uses: list, old: str, new: str) -> list:  # noqa: ANN001
    """Change `old` to `new` in each file of `uses` (audience_uses checks each change);
    returns the uses left as they were."""
    import stat

    from o2m_pub._files import write_file
    from o2m_pub.config import CONFIG_NAME, load
    from o2m_pub.site.audience_uses import rewrite_config, rewrite_post

    config = load(root)
    left = []
    for path in dict.fromkeys(use.path for use in uses):
        target = root / path
        data = target.read_bytes()
        if path == CONFIG_NAME:
            text = rewrite_config(data.decode("utf-8"), config, old, new)
            changed = None if text is None else text.encode("utf-8")
        else:
            changed = rewrite_post(data, path, old, new, config.tz)
        if changed is None:
            left += [use for use in uses if use.path == path]
            continue
        write_file(target, changed, stat.S_IMODE(target.stat().st_mode))
        say(f"changed {path}")
    return left


@click.group()
def group() -> None:
    """Groups of friends, usable as an audience (e.g. `audience: family`)."""


@group.command("list")
@click.pass_context
def group_list(ctx: click.Context) -> None:
    """List groups and their members."""
    groups = _store(ctx).groups()
    if not groups:
        out("no groups yet: `o2m group add family alice bob`")
    for name, members in sorted(groups.items()):
        out(f"{name:<16} {', '.join(members)}")


@group.command("add")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_context
def group_add(ctx: click.Context, name: str, members: tuple[str, ...]) -> None:
    """Add friends to a group (made if new)."""
    out(f"{name}: {', '.join(_store(ctx).group_add(name, members))}")


@group.command("remove")
@click.argument("name")
@click.argument("members", nargs=-1, required=True)
@click.pass_context
def group_remove(ctx: click.Context, name: str, members: tuple[str, ...]) -> None:
    """Take friends out of a group."""
    _store(ctx).group_remove(name, members)
    out(f"removed {', '.join(members)} from {name}")


@group.command("delete")
@click.argument("name")
@click.pass_context
def group_delete(ctx: click.Context, name: str) -> None:
    """Delete a group made with `o2m group add`."""
    _store(ctx).group_delete(name)
    out(f"deleted group {name}")
