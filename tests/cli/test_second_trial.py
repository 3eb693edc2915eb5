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
