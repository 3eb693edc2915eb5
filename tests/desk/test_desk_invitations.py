"""Invitations in the desk (PROTOCOL.md §2.7): made, listed and revoked, and a friend's
invitation or reply accepted by pasting it, through the same code as `o2m friend invite`
and `o2m friend accept` (cli/friends.py): the desk's core over real sites."""

from __future__ import annotations

import re

from click.testing import CliRunner
from support.desk import Client, make_app, make_site, text

from o2m_pub.cli import main
from o2m_pub.cli.friends import accept_invitation, finish_invitation, new_invitation
from o2m_pub.desk.actions import Capabilities
from o2m_pub.friends.friend_store import FriendStore
from o2m_pub.friends.invitations import InvitationBook
from o2m_pub.protocol.invite import invitation_from_text


def cli(root, *args: str) -> str:
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def made_text(page: str) -> str:
    m = re.search(r'<textarea id="invitation-text"[^>]*>(o2m1i:[A-Za-z0-9_-]+)</textarea>',
                  page)
    assert m, "no invitation text in the page"
    return m.group(1)


def test_make_an_invitation_with_its_qr_code_and_expiry_list_and_revoke_it(world, client):
    """The owner makes an invitation for "dan", valid a day: the page shows its text
    (a §2.7 invitation of the owner's card, named for dan), its QR code as an inline
    SVG that scales (no file, no data: URL) and when it expires; `o2m friend invite
    --list` knows it. Listed as open with a revoke button; revoked, it is gone for the
    terminal too."""
    root = world["root"]
    page = text(client.post("/friends/invite", {"name": "dan", "expires": "1d"}))
    invitation = invitation_from_text(made_text(page))
    assert invitation.card.url == "https://ada.example/" and invitation.name == "dan"
    assert re.search(r'<figure class="qr"><svg xmlns="http://www.w3.org/2000/svg" '
                     r'viewBox="0 0 (\d+) \1" width="\1" height="\1" role="img" '
                     r'aria-label="QR code of this invitation"', page)
    (record,) = InvitationBook(root).list()
    assert record.name == "dan" and record.expires == invitation.expires
    until = re.search(r'id="invitation-expiry">It can be used once, until <strong>'
                      r'(\d{4}-\d\d-\d\d \d\d:\d\d)</strong>', page)
    assert until and until.group(1) in page.split('id="invitations"')[1]
    assert re.search(rf"{record.id[:8]}\s+dan\s+pending", cli(root, "friend", "invite",
                                                                "--list"))
    listing = text(client.get("/invitations"))
    assert f'data-id="{record.id[:8]}" data-status="pending"' in listing
    assert f'id="revoke-{record.id[:8]}"' in listing and "o2m1i:" not in listing
    assert "/invitations" in text(client.get("/friends"))
    response = client.post(f"/invitations/{record.id[:8]}/revoke")
    assert response.status == 303
    assert "Invitation revoked" in text(client.get(response.headers["Location"]))
    assert InvitationBook(root).list() == []
    assert "no invitations" in cli(root, "friend", "invite", "--list")


def test_an_invitation_the_core_refuses_is_said_on_the_page(world, client):
    """A name already a friend's, a name that is no name, or a lifetime not offered is
    refused with the reason on the page, and nothing is made."""
    for form, said in (({"name": "bob", "expires": "7d"}, "already a friend"),
                       ({"name": "Not A Name!", "expires": "7d"}, "not a valid friend name"),
                       ({"name": "", "expires": "400d"}, "Choose how long it lasts")):
        response = client.post("/friends/invite", form)
        assert response.status == 400 and said in text(response), form
    assert InvitationBook(world["root"]).list() == []


def test_accept_a_friends_invitation_by_pasting_it(world, client, tmp_path):
    """Dan invites Ada (`o2m friend invite`'s code, on his site); Ada pastes his text,
    with line breaks, in her desk: Dan is added as "dan-site" with his fingerprint
    shown; his site cannot be reached here, so the page gives her the reply text,
    which Dan's `o2m friend accept` takes: each is the other's friend."""
    dan = make_site(tmp_path / "dan", "dan", url="https://127.0.0.1:9/")
    _, invitation = new_invitation(dan, "ada", "7d")
    wrapped = "\n".join(invitation[i:i + 60] for i in range(0, len(invitation), 60))
    page = text(client.post("/friends/accept", {"text": wrapped, "name": "dan-site"}))
    assert "You accepted <bdi>Dan</bdi>&#39;s invitation" in page or \
        "You accepted <bdi>Dan</bdi>'s invitation" in page
    ada_friends = FriendStore(world["root"])
    assert ada_friends.get("dan-site").card.url == "https://127.0.0.1:9/"
    assert ada_friends.get("dan-site").fingerprint in page
    assert 'id="not-delivered"' in page
    reply = form_value_textarea(page, "reply-text")
    assert reply.startswith("o2m1r:")
    accepted = finish_invitation(dan, reply)
    assert accepted.friend.name == "ada" and accepted.friend.card.url == "https://ada.example/"
    assert "Dan" in text(client.get("/friends"))


def form_value_textarea(page: str, ident: str) -> str:
    m = re.search(rf'<textarea id="{ident}"[^>]*>([^<]*)</textarea>', page)
    assert m, f"no textarea {ident}"
    return m.group(1)


def test_take_a_friends_reply_to_an_invitation_made_in_the_desk(world, client, tmp_path):
    """Ada invites in her desk; Erin accepts with `o2m friend accept --no-send`'s code
    and sends back her reply text; Ada pastes it in the desk: Erin is her friend under
    the invitation's name, and the invitation is used."""
    erin = make_site(tmp_path / "erin", "erin")
    invitation = made_text(text(client.post("/friends/invite", {"name": "erin",
                                                                 "expires": "7d"})))
    taken = accept_invitation(erin, invitation, None, send=False, timeout=1)
    assert taken.reply_text and not taken.delivered
    page = text(client.post("/friends/accept", {"text": taken.reply_text}))
    assert "<bdi>Erin</bdi> accepted your invitation" in page
    assert FriendStore(world["root"]).get("erin").card.url == "https://erin.example/"
    (record,) = InvitationBook(world["root"]).list()
    assert (record.friend, record.used is not None) == ("erin", True)
    assert 'data-status="used"' in text(client.get("/invitations"))
    again = client.post("/friends/accept", {"text": taken.reply_text})
    assert again.status == 400 and "used already" in text(again)
    assert form_value_textarea(text(again), "invitation") == taken.reply_text


def test_a_pasted_text_that_is_no_invitation_is_refused_and_changes_nothing(world, client):
    """Garbage, a card, or the owner's own invitation: a 400 page saying why; no
    friend is added."""
    own = made_text(text(client.post("/friends/invite", {"expires": "7d"})))
    before = [f.name for f in FriendStore(world["root"]).list()]
    for pasted, said in (("hello", "not an invitation"), (own, "your own invitation"),
                         ("o2m1i:AAAA", "")):
        response = client.post("/friends/accept", {"text": pasted})
        assert response.status == 400 and said in text(response), pasted
    assert [f.name for f in FriendStore(world["root"]).list()] == before


def test_without_the_capability_there_is_no_invitation_page(world):
    """An app without an InviteAction draws no invitation link or form, and its routes
    are 404 (the seam of actions.py)."""
    app = make_app(world["root"], capabilities=Capabilities())
    client = Client(app)
    client.sign_in()
    assert "/invitations" not in text(client.get("/friends"))
    assert "/friends/accept" not in text(client.get("/friends/add"))
    assert client.get("/invitations").status == 404
    assert client.post("/friends/invite", {"expires": "7d"}).status == 404
    assert client.post("/friends/accept", {"text": "x"}).status == 404
    app.reader.close()
    app.desk.close()
