"""The seams where other parts plug actions into the desk, so each appears when it lands.

The desk builds what exists today (friends by card, groups, the timeline, compose,
profile, notifications). Replying, reacting and inviting are the work of other issues
(conversations; connections): each is an interface here, `None` until `cli/` wires an
implementation in. While it is `None` its button is not drawn and its route answers
404: nothing pretends to work (tests/desk/test_app.py checks both).

To add one: implement the Protocol below (in the part that owns the action), pass it
in `Capabilities` where `cli/desk.py` makes the app, and the desk shows the button on
every post (reply, react) or on the friends page (invite), posts the form to
``/post/ID/reply``, ``/post/ID/react`` or ``/friends/invite``, and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from o2m_pub.friends.identity import Identity
    from o2m_pub.protocol.cards import Card
    from o2m_pub.reader.model import StoredPost


class ReplyAction(Protocol):
    """Write a reply to a friend's post (conversations: a post of the owner's with
    `reply_to`, which the build sends to the thread's owner)."""

    def reply(self, post: "StoredPost", text: str) -> str:
        """Write the reply; returns the path of the owner's new post below content/."""


class ReactAction(Protocol):
    """React to a friend's post with one of `choices` (conversations)."""

    choices: tuple[str, ...]

    def react(self, post: "StoredPost", choice: str) -> None: ...


class InviteAction(Protocol):
    """Invitations (connections: `o2m friend invite` / `accept`)."""

    def invite(self, name: str) -> str:
        """A new invitation for a friend to be called `name`: its text, to send."""

    def accept(self, text: str, name: str) -> str:
        """Accept an invitation's text as friend `name`; returns the friend's name."""


@dataclass(frozen=True)
class Capabilities:
    """What the desk can do beyond its own pages. `renew_card` is `o2m card --renew`'s
    own code (it needs the TLS pin, which only `cli/` can ask `host` for);
    `profile_fields` the card fields this o2m's cards know besides the name."""

    renew_card: Callable[[Path, "Identity"], "Card"] | None = None
    reply: ReplyAction | None = None
    react: ReactAction | None = None
    invite: InviteAction | None = None
    profile_fields: tuple[str, ...] = field(default=())  # e.g. ("bio", "avatar")
