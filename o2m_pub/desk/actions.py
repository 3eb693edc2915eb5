"""The seams where other parts plug actions into the desk, so each appears when it lands.

The desk builds what exists today (friends by card, groups, the timeline, compose,
profile, notifications). Replying and reacting are the work of another issue
(conversations), inviting comes from `o2m friend invite`'s code: each is an interface
here, `None` until `cli/` wires an implementation in (`cli/desk.py` wires
invitations). While it is `None` its button is not drawn and its route answers 404:
nothing pretends to work (tests/desk/test_desk_app.py and test_desk_invitations.py
check both).

To add one: implement the Protocol below (in the part that owns the action), pass it
in `Capabilities` where `cli/desk.py` makes the app, and the desk shows the button on
every post (reply, react) or on the friends page (invite), posts the form to
``/post/ID/reply``, ``/post/ID/react``, or ``/friends/invite``, ``/friends/accept``
and ``/invitations/ID/revoke``, and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from o2m_pub.friends.invitations import PendingInvitation
    from o2m_pub.protocol.cards import Card
    from o2m_pub.reader.model import StoredPost
    from o2m_pub.site.own_posts import OwnPostInfo


class ReplyAction(Protocol):
    """Write a reply to a friend's post or to one of the owner's own (conversations: a
    post of the owner's with `reply_to`, which the build sends to the thread's owner)."""

    def reply(self, post: "StoredPost", text: str) -> str:
        """Write the reply; returns the path of the owner's new post below content/."""

    def reply_own(self, post: "OwnPostInfo", text: str) -> str:
        """The same, to one of the owner's own posts (its thread's continuation)."""


class ReactAction(Protocol):
    """React to a friend's post with one of `choices` (conversations)."""

    choices: tuple[str, ...]

    def react(self, post: "StoredPost", choice: str) -> None: ...


@dataclass(frozen=True)
class NewInvitation:
    """An invitation just made: its short id (as `o2m friend invite --list` shows it),
    its o2m1i: text to send, and when it expires (§2.1 UTC)."""

    id: str
    text: str
    expires: str


@dataclass(frozen=True)
class InvitationAnswer:
    """What a pasted text did: an invitation of a friend's accepted (their site added
    as `friend`; `delivered` says whether their site took the answer, else
    `reply_text` is to be sent them), or a reply to one of the owner's invitations
    taken (`delivered` None)."""

    friend: str  # the owner's name for them
    known: bool  # they were a friend already
    delivered: bool | None
    detail: str | None = None  # why the answer was not delivered
    reply_text: str | None = None


class InviteAction(Protocol):
    """Invitations (PROTOCOL.md §2.7), as `o2m friend invite` and `o2m friend accept`
    make and take them (`cli/friends.py`, `friends/invitations.py`)."""

    def invite(self, name: str | None, expires: str) -> NewInvitation:
        """A new invitation, for a friend to be called `name` (None: a name made
        from their card), valid for `expires` ("7d", "12h")."""

    def invitations(self) -> "list[PendingInvitation]":
        """Every invitation kept, oldest first."""

    def revoke(self, ident: str) -> None:
        """Cancel an unused invitation (its id, or the start of it)."""

    def accept(self, text: str, name: str | None) -> InvitationAnswer:
        """Accept a friend's invitation (o2m1i:…, delivering the answer to their site;
        slow: the desk calls it off the request thread), or take a friend's reply
        (o2m1r:…) to one of the owner's."""


@dataclass(frozen=True)
class Capabilities:
    """What the desk can do beyond its own pages. `renew_card` is `o2m card --renew`'s
    own code (it needs the TLS pin, which only `cli/` can ask `host` for), called with
    the card fields that change (`avatar`, `bio`) as keywords; `profile_fields` the
    card fields this o2m's cards know besides the name."""

    renew_card: Callable[..., "Card"] | None = None
    reply: ReplyAction | None = None
    react: ReactAction | None = None
    invite: InviteAction | None = None
    profile_fields: tuple[str, ...] = field(default=())  # e.g. ("bio", "avatar")
