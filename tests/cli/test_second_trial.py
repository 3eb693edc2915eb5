"""The second newcomer's trial (2026-12, a fresh install following the README), friction
by friction: each test runs the command the newcomer ran, in its own process on a real
site, and checks what they should have been told."""

from __future__ import annotations

import pytest
from conftest import run_o2m
from support.friend import Friend

from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.protocol.cards import card_to_text
from o2m_pub.reader.model import FriendUpdate, PostRow, short_id_for
from o2m_pub.reader.store import ReaderStore

BOB = Friend(1, "bob")
BOB_KEY = b64u_encode(bytes(BOB.sign.verify_key))
POST_ID = b64u_encode(bytes(range(16)))
UTF8_HINT = "hint: o2m takes UTF-8 text: set your terminal to UTF-8"


@pytest.fixture
def owner(tmp_path):
    """A site made by `o2m init`, with Bob as a friend and one post of his in the
    timeline (so `o2m reply` and `o2m show` have something to work on)."""
    root = tmp_path / "ada"
    made = run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    added = run_o2m("friend", "add", "bob", card_to_text(BOB.card), "--yes", cwd=root)
    assert added.returncode == 0, added.stderr
    with ReaderStore.open(root) as store:
        store.apply_update(FriendUpdate("bob", BOB_KEY, upserts=[PostRow(
            id=POST_ID, audience="private", date="2026-11-20T10:00:00Z", title="Hi",
            markdown="Hello Ada.")]))
    return root


def _bob_post() -> str:
    return short_id_for(BOB_KEY, POST_ID)


# -- 1: text that is not UTF-8 ---------------------------------------------------------

@pytest.mark.parametrize(("args", "named"), [
    (("reply", "POST", "--text", b"caf\xe9"), "--text"),
    (("timeline", "--tag", b"\xe9"), "--tag"),
    (("show", b"\xe9\xe9\xe9\xe9"), "ID"),
    (("init", "x", "--name", b"caf\xe9", "--url", "https://x.example/"), "--name"),
    (("fetch", "bob", b"\xe9"), "FRIENDS"),
])
def test_an_argument_that_is_not_utf8_is_one_line_naming_it(owner, args, named):
    """An argument in another encoding (a Latin-1 terminal, a script) was `o2m: internal
    error: UnicodeEncodeError … surrogates not allowed`; it is a usage error (exit 2, as
    click's are) on one line naming the option, with the byte shown and a hint; nothing
    is written (no site made by `init`)."""
    import os
    argv = [os.fsdecode(a) if isinstance(a, bytes) else a.replace("POST", _bob_post())
            for a in args]
    result = run_o2m(*argv, cwd=owner)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    first, hint = result.stderr.splitlines()
    assert first.startswith(f"o2m: error: {named}: '")
    assert first.endswith("' is not UTF-8 text")
    assert "\\xe9" in first
    assert hint.strip().startswith(UTF8_HINT)
    assert "internal error" not in result.stderr
    assert not (owner / "x").exists()


def test_a_reply_file_that_is_not_utf8_says_so_with_a_hint(owner, tmp_path):
    """`o2m reply ID --file latin1.txt` (a file saved as Windows-1252) was an internal
    error (UnicodeDecodeError); now one line names the file and the line, and the hint
    says to save it as UTF-8; no reply is written."""
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"Hello,\ncaf\xe9 at noon?\n")
    result = run_o2m("reply", _bob_post(), "--file", str(latin1), cwd=owner)
    assert result.returncode == 1, result.stderr
    first, hint = result.stderr.splitlines()
    assert first == f"o2m: error: {latin1}:2: not UTF-8 text"
    assert hint.strip().startswith("hint: save the file as UTF-8")
    assert not (owner / "content" / "replies").exists()


def test_a_reply_file_in_utf8_with_a_byte_order_mark_is_taken(owner, tmp_path):
    """The reading helper takes what editors on Windows write: UTF-8 with a byte order
    mark, which does not end up in the reply."""
    marked = tmp_path / "bom.txt"
    marked.write_bytes("\ufeffcafé at noon?\n".encode())
    result = run_o2m("reply", _bob_post(), "--file", str(marked), cwd=owner)
    assert result.returncode == 0, result.stderr
    (written,) = (owner / "content" / "replies").glob("*.md")
    text = written.read_text("utf-8")
    assert "café at noon?" in text
    assert "\ufeff" not in text


# -- 2: a renamed or removed friend still named in `audience:` -------------------------

TRIP = "---\ntitle: Trip\ndate: 2026-03-01\naudience: bob\n---\nHi bob.\n"
TWO = "---\ntitle: Two\ndate: 2026-03-02\naudience:\n  - bob\n  - family\n---\nbob, again.\n"
BOBBY = "---\ntitle: Other\ndate: 2026-03-03\naudience: [bobby, friends]\n---\nbob\n"


@pytest.fixture
def naming_bob(owner):
    """Ada's site with two posts for Bob (one line, a block list), a post for a 'bobby'
    (another name), and an o2m.toml group naming Bob."""
    posts = {"content/2026/trip.md": TRIP, "content/2026/two.md": TWO,
             "content/2026/other.md": BOBBY}
    for rel, text in posts.items():
        (owner / rel).write_text(text, encoding="utf-8")
    toml = owner / "o2m.toml"
    toml.write_text(toml.read_text("utf-8") + '\n[groups]\nfamily = ["bob"]  # bob\n',
                    encoding="utf-8")
    return owner


def _contents(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted((root / "content").rglob("*.md"))} | {
        "o2m.toml": (root / "o2m.toml").read_bytes()}


def _group_line(root) -> int:
    lines = (root / "o2m.toml").read_text("utf-8").splitlines()
    return lines.index('family = ["bob"]  # bob') + 1


def test_a_rename_names_the_posts_and_groups_that_still_name_the_old_name(naming_bob):
    """`o2m friend rename bob robert` used to leave `audience: bob` behind in silence:
    the posts fell out of Robert's feed and the next build stopped on "unknown audience
    'bob'". It lists each place (file:line) and says what to do; without a terminal it
    changes nothing in content/ or o2m.toml."""
    before = _contents(naming_bob)
    result = run_o2m("friend", "rename", "bob", "robert", cwd=naming_bob)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "renamed bob to robert\n"
    lines = result.stderr.splitlines()
    assert lines[0] == ("o2m: warning: 3 places still name bob as an audience, which now "
                        "means no one:")
    assert lines[1:4] == [f"  o2m.toml:{_group_line(naming_bob)}  (group family)",
                          "  content/2026/trip.md:4  (audience)",
                          "  content/2026/two.md:4  (audience)"]
    assert lines[4].startswith("  hint: change bob to robert there before your next "
                               "`o2m build`")
    assert len(lines) == 5
    assert _contents(naming_bob) == before


def test_a_rename_at_a_terminal_changes_them_when_asked(naming_bob):
    """At a terminal, the rename offers to change them, and does on "y": only the name
    in the audience lines and in the group, every other byte as it was; the next build
    has no problem and puts both posts in Robert's feed (the friend's feed opened with
    the friend's own keys)."""
    from support.terminal import dialogue

    from o2m_pub.friends.identity import own_card
    before = _contents(naming_bob)
    status, seen = dialogue(naming_bob, ["friend", "rename", "bob", "robert"],
                            [("Change bob to robert there? [y/N]", "y")])
    assert status == 0, seen
    after = _contents(naming_bob)
    assert after["content/2026/trip.md"] == TRIP.replace("audience: bob",
                                                         "audience: robert").encode()
    assert after["content/2026/two.md"] == TWO.replace("  - bob", "  - robert").encode()
    assert after["content/2026/other.md"] == before["content/2026/other.md"]
    assert after["o2m.toml"] == before["o2m.toml"].replace(b'["bob"]', b'["robert"]')
    assert "could not be changed" not in seen
    (naming_bob / "content/2026/other.md").unlink()  # 'bobby' is nobody here
    built = run_o2m("build", cwd=naming_bob)
    assert built.returncode == 0, built.stderr
    titles = {p["title"] for p in BOB.read_feed(naming_bob / "build",
                                                own_card(naming_bob)).values() if p}
    assert {"Trip", "Two"} <= titles


def test_a_rename_at_a_terminal_changes_nothing_when_declined(naming_bob):
    """Declined ("n", the default), nothing is changed, and the hint says what to do."""
    from support.terminal import dialogue
    before = _contents(naming_bob)
    status, seen = dialogue(naming_bob, ["friend", "rename", "bob", "robert"],
                            [("Change bob to robert there? [y/N]", "n")])
    assert status == 0, seen
    assert _contents(naming_bob) == before
    assert "hint: change bob to robert there" in seen


def test_a_removal_names_the_posts_that_still_name_the_friend(naming_bob):
    """`o2m friend remove bob` lists the same places and says to take Bob out of them;
    it never edits them, even at a terminal (what a post for Bob alone should become is
    the owner's choice)."""
    before = _contents(naming_bob)
    result = run_o2m("friend", "remove", "bob", cwd=naming_bob)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == ("o2m: warning: 3 places still name bob as an audience, which now "
                        "means no one:")
    assert lines[2:4] == ["  content/2026/trip.md:4  (audience)",
                          "  content/2026/two.md:4  (audience)"]
    assert lines[4].startswith("  hint: take bob out of each")
    assert _contents(naming_bob) == before


def test_a_rename_of_a_friend_no_post_names_says_nothing_more(owner):
    """No post and no group names the friend: the rename is one line, as before."""
    result = run_o2m("friend", "rename", "bob", "robert", cwd=owner)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "renamed bob to robert\n", "")
