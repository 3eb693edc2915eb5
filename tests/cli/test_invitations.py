"""`o2m friend invite` and `o2m friend accept` (PROTOCOL.md §2.7): the commands' output
and their one-line refusals, then end to end with real processes: Ada serves her site
with `o2m serve --watch`, Bob accepts her invitation and his answer is delivered at once;
both then read each other's friends-only posts."""

from __future__ import annotations

import datetime as dt
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_o2m
from support.o2m_server import o2m_serve

from o2m_pub.cli import main
from o2m_pub.friends.identity import own_card
from o2m_pub.friends.invitations import InvitationBook
from o2m_pub.protocol import invite
from o2m_pub.protocol.canonical import b64u_decode, b64u_encode


def o2m(root: Path, *args: str, env: dict[str, str] | None = None):  # noqa: ANN201 - Result
    return CliRunner(env=env).invoke(main, ["-C", str(root), *args])


def make_site(tmp_path: Path, name: str, url: str | None = None) -> Path:
    root = tmp_path / name
    result = CliRunner().invoke(main, ["init", str(root), "--name", name.title(), "--url",
                                       url or f"https://{name}.example/"])
    assert result.exit_code == 0, result.output
    return root


def friends_of(root: Path) -> list[str]:
    folder = root / "keys/friends"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []


def one_error_line(result, text: str) -> None:  # noqa: ANN001
    """Exit 1, and the error is one line (plus its hint), with no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("o2m: error: ") and text in lines[0], result.stderr
    assert len(lines) <= 2 and "Traceback" not in result.output


@pytest.fixture
def pair(tmp_path):
    """Ada (who invites) and Bob (who accepts); neither serves: Ada's URL has nobody
    listening, so a delivery fails fast."""
    return (make_site(tmp_path, "ada", "https://127.0.0.1:9/"), make_site(tmp_path, "bob"))


def invitation_text(root: Path, *args: str) -> str:
    result = o2m(root, "friend", "invite", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_invite_prints_the_text_and_keeps_the_invitation(pair, tmp_path):
    """stdout is the o2m1i: text alone (to paste); stderr says until when and how it is
    used; --png and --svg write QR codes; --list shows it pending."""
    ada, _ = pair
    result = o2m(ada, "friend", "invite", "bob", "--expires", "12h", "--png",
                 str(tmp_path / "i.png"), "--svg", str(tmp_path / "i.svg"))
    assert result.exit_code == 0, result.output
    text = result.stdout.strip()
    parsed = invite.invitation_from_text(text)
    assert parsed.card == own_card(ada) and parsed.name == "bob"
    assert "valid until" in result.stderr and "o2m friend accept" in result.stderr
    assert (tmp_path / "i.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "i.svg").read_bytes()
    ident = b64u_encode(parsed.invite_id)[:8]
    listed = o2m(ada, "friend", "invite", "--list")
    assert listed.stdout.startswith(f"{ident}  bob ") and "pending, until" in listed.stdout
    assert stat.S_IMODE((ada / ".o2m/invites.json").stat().st_mode) == 0o600


def test_invite_with_qr_draws_it_in_the_terminal(pair):
    """--qr shows the QR code, then the text."""
    ada, _ = pair
    result = o2m(ada, "friend", "invite", "--qr")
    assert "█" in result.stdout and result.stdout.strip().splitlines()[-1].startswith("o2m1i:")


def test_revoke_then_the_answer_is_refused(pair):
    """--revoke ID forgets an unused invitation; Bob's reply to it is then refused on
    Ada's side with one line, and nothing is stored."""
    ada, bob = pair
    text = invitation_text(ada, "bob")
    ident = b64u_encode(invite.invitation_from_text(text).invite_id)[:8]
    reply = o2m(bob, "friend", "accept", text, "--no-send").stdout.strip()
    assert o2m(ada, "friend", "invite", "--revoke", ident).stdout == \
        f"revoked invitation {ident} for bob\n"
    one_error_line(o2m(ada, "friend", "accept", reply), "answers no invitation of yours")
    assert friends_of(ada) == []


@pytest.mark.parametrize("args, text", [
    (("friend", "invite", "Bob"), "'Bob' is not a valid friend name"),
    (("friend", "invite", "--revoke", "nope"), "no invitation with an id starting 'nope'"),
    (("friend", "accept", "hello"), "not an invitation (o2m1i:…) or a reply (o2m1r:…)"),
])
def test_bad_arguments_are_one_line(pair, args, text):
    """Each mistake is one line and a hint, exit status 1."""
    ada, _ = pair
    one_error_line(o2m(ada, *args), text)


@pytest.mark.parametrize("expires", ["soon", "0", "400d"])
def test_a_bad_expiry_is_a_usage_error(pair, expires):
    """--expires that is no duration within a year: one line naming the option and a
    hint, exit status 2 (a bad option value, as click's own checks give)."""
    ada, _ = pair
    result = o2m(ada, "friend", "invite", "--expires", expires)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"o2m: error: --expires: '{expires}' is not a duration within a year",
        "  hint: e.g. --expires 7d, 12h or 30m"]
    assert InvitationBook(ada).list() == []


def test_a_name_already_used_is_refused_when_inviting(pair):
    """Inviting under a friend's name is refused at once (not when the answer comes)."""
    ada, bob = pair
    assert o2m(ada, "friend", "add", "bob", str(bob / "keys/card.json"), "--yes").exit_code == 0
    one_error_line(o2m(ada, "friend", "invite", "bob"), "already a friend's or a group's name")


def test_the_whole_exchange_by_reply_text(pair):
    """Ada's site is unreachable: Bob's accept adds Ada, says why it could not deliver
    and prints the o2m1r: reply on stdout; Ada's accept of it adds Bob under the
    invitation's name and shows both fingerprints; a second use is refused."""
    ada, bob = pair
    text = invitation_text(ada, "bobby")
    accepted = o2m(bob, "friend", "accept", text, "--timeout", "5")
    assert accepted.exit_code == 0, accepted.output
    assert "added as ada: Ada <https://127.0.0.1:9/>" in accepted.stderr
    assert "could not deliver your answer to Ada's site: cannot reach the site (" in \
        accepted.stderr
    reply = accepted.stdout.strip()
    assert reply.startswith("o2m1r:") and friends_of(bob) == ["ada"]
    finished = o2m(ada, "friend", "accept", reply)
    assert finished.exit_code == 0, finished.output
    bob_fp = o2m(bob, "whoami").stdout.split("fingerprint: ")[1].strip()
    ada_fp = o2m(ada, "whoami").stdout.split("fingerprint: ")[1].strip()
    assert finished.stdout.splitlines()[:3] == [
        "bobby accepted your invitation: added bobby: Bob <https://bob.example/>",
        f"their fingerprint: {bob_fp}", f"your fingerprint:  {ada_fp}"]
    assert friends_of(ada) == ["bobby"]
    before = (ada / ".o2m/invites.json").read_bytes()
    one_error_line(o2m(ada, "friend", "accept", reply), "used already: it made bobby a friend")
    assert (ada / ".o2m/invites.json").read_bytes() == before


def test_a_forged_invitation_is_refused_and_nothing_is_stored(pair):
    """An invitation whose card was altered (another URL under Ada's signature): one
    line, no friend added, nothing sent."""
    ada, bob = pair
    text = invitation_text(ada)
    raw = b64u_decode(text[len("o2m1i:"):]).replace(b"https://127.0.0.1:9/",
                                                     b"https://127.0.0.1:8/")
    one_error_line(o2m(bob, "friend", "accept", "o2m1i:" + b64u_encode(raw)),
                   "the card in this invitation cannot be used: the card's signature does "
                   "not verify")
    assert friends_of(bob) == []


def test_an_expired_invitation_is_refused_and_nothing_is_stored(pair):
    """An invitation past its expiry: one line naming when, nothing stored."""
    ada, bob = pair
    long_ago = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    made = InvitationBook(ada).create(own_card(ada), secret=os.urandom(32), name=None,
                                      now=long_ago, expires=long_ago + dt.timedelta(days=7))
    one_error_line(o2m(bob, "friend", "accept", invite.invitation_to_text(made)),
                   "this invitation from Ada expired on 2026-01-08T00:00:00Z")
    assert friends_of(bob) == []


def test_a_forged_reply_is_refused_and_nothing_is_stored(pair):
    """A reply with one byte of its ciphertext changed: one line on Ada's side."""
    ada, bob = pair
    reply = o2m(bob, "friend", "accept", invitation_text(ada), "--no-send").stdout.strip()
    data = bytearray(b64u_decode(reply[len("o2m1r:"):]))
    data[100] ^= 1
    one_error_line(o2m(ada, "friend", "accept", "o2m1r:" + b64u_encode(bytes(data))),
                   "does not open with its invitation's secret")
    assert friends_of(ada) == []


def test_accepting_ones_own_invitation_is_refused(pair):
    """Ada pastes her own invitation: one line, nothing stored."""
    ada, _ = pair
    one_error_line(o2m(ada, "friend", "accept", invitation_text(ada)),
                   "this is your own invitation")
    assert friends_of(ada) == []


def test_accept_takes_a_file_and_a_name(pair, tmp_path):
    """TEXT may be a file holding the invitation; --name chooses Ada's local name."""
    ada, bob = pair
    saved = tmp_path / "invitation.txt"
    saved.write_text(invitation_text(ada) + "\n")
    result = o2m(bob, "friend", "accept", str(saved), "--name", "ada-l", "--no-send")
    assert result.exit_code == 0, result.output
    assert friends_of(bob) == ["ada-l"]


# ---------------------------------------------------------------- end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _site_with_post(tmp_path: Path, name: str, title: str) -> tuple[Path, int]:
    port = _free_port()
    root = tmp_path / name
    done = run_o2m("init", str(root), "--name", name.title(), "--url",
                   f"https://localhost:{port}/", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (root / "content" / f"{name}-secret.md").write_text(
        f"---\ntitle: {title}\ndate: 2026-11-20\naudience: friends\n---\nHello.\n")
    assert run_o2m("build", cwd=root).returncode == 0
    return root, port


def _until(check, seconds: float = 60):  # noqa: ANN001, ANN202
    end = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.2)


def test_invite_and_accept_with_delivery_to_a_served_owner(tmp_path):
    """Ada runs `o2m serve --watch`; Bob (serving his own site) accepts her invitation:
    his answer is delivered ("sent"), Ada's server adds him at once, her
    `o2m notifications` shows "bob accepted your invitation" with both fingerprints, her
    watch builds Bob's feed, and each side's `o2m fetch` reads the other's friends-only
    post."""
    ada, ada_port = _site_with_post(tmp_path, "ada", "Ada private note")
    bob, bob_port = _site_with_post(tmp_path, "bob", "Bob private note")
    with o2m_serve(ada, "--watch", "--port", str(ada_port)) as ada_server, \
            o2m_serve(bob, "--port", str(bob_port)):
        invited = run_o2m("friend", "invite", "bob", cwd=ada)
        assert invited.returncode == 0, invited.stderr
        accepted = run_o2m("friend", "accept", invited.stdout.strip(), cwd=bob)
        assert accepted.returncode == 0, accepted.stderr
        assert "sent: Ada's site received your answer" in accepted.stderr
        assert accepted.stdout == ""  # no reply text to send
        assert _until(lambda: friends_of(ada) == ["bob"])
        notes = run_o2m("notifications", cwd=ada).stdout
        ada_fp = run_o2m("whoami", cwd=ada).stdout.split("fingerprint: ")[1].strip()
        bob_fp = run_o2m("whoami", cwd=bob).stdout.split("fingerprint: ")[1].strip()
        assert f"bob accepted your invitation: fingerprints: theirs {bob_fp}, yours " \
               f"{ada_fp}" in notes
        # Ada's watch saw keys/friends/ change and built Bob's feed: Bob reads it.
        fetched = _until(lambda: "Ada private note" in run_o2m("fetch", cwd=bob).stdout
                         + run_o2m("timeline", cwd=bob).stdout)
        assert fetched, run_o2m("fetch", cwd=bob).stdout
        assert run_o2m("build", cwd=bob).returncode == 0
        ada_fetch = run_o2m("fetch", cwd=ada)
        assert ada_fetch.returncode == 0, ada_fetch.stdout + ada_fetch.stderr
        assert "Bob private note" in run_o2m("timeline", cwd=ada).stdout
    assert "o2m: inbox: bob accepted your invitation: added bob" in ada_server.output()
