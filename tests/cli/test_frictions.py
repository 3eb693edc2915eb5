"""The new user's trial (newcomer review, 2026-12), friction by friction: each test
runs the command the reviewer ran, as a user runs it, and checks what they expected."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_o2m
from support.friend import Friend
from support.terminal import dialogue

from o2m_pub.protocol.cards import card_to_text
from o2m_pub.reader.model import FriendUpdate, PostRow, short_id_for
from o2m_pub.reader.store import ReaderStore

PASS = "test passphrase"
BOB = Friend(1, "bob")


@pytest.fixture
def owner(tmp_path):
    """A site made by `o2m init`, with Bob as a friend (so builds sign his feed), built."""
    root = tmp_path / "ada"
    assert run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path).returncode == 0
    added = run_o2m("friend", "add", "bob", card_to_text(BOB.card), "--yes", cwd=root)
    assert added.returncode == 0, added.stderr
    assert run_o2m("build", cwd=root).returncode == 0
    return root


# -- 11: --passphrase-file after the command -------------------------------------------

def test_passphrase_file_works_after_the_command(owner, tmp_path):
    """`o2m build --passphrase-file F` (as the hints write it), not only `o2m
    --passphrase-file F build`; and for commands inside groups (`o2m key export`)."""
    pf = tmp_path / "pass"
    pf.write_text(PASS + "\n")
    env = {"O2M_PASSPHRASE": "wrong"}  # the file wins over the environment, as a flag does
    (owner / "content/2026/new.md").write_text("---\ntitle: New\ndate: 2026-03-01\n---\nx\n")
    built = run_o2m("build", "--passphrase-file", str(pf), cwd=owner, env=env)
    assert built.returncode == 0, built.stderr
    assert "1 friend feed signed" in built.stdout
    renewed = run_o2m("card", "--renew", "--passphrase-file", str(pf), cwd=owner, env=env)
    assert renewed.returncode == 0, renewed.stderr
    exported = run_o2m("key", "export", str(tmp_path / "backup"), "--passphrase-file",
                       str(pf), cwd=owner, env={**env, "O2M_EXPORT_PASSPHRASE": "b k"})
    assert exported.returncode == 0, exported.stderr


# -- 12: three tries at a terminal -----------------------------------------------------

def test_a_mistyped_passphrase_gets_three_tries_at_a_terminal(owner):
    """At a terminal, a wrong passphrase is asked again (as sudo and ssh do): two
    mistakes, then the right one, and `o2m card --renew` succeeds."""
    status, seen = dialogue(owner, ["card", "--renew"], [
        ("Passphrase", "wrong1"), ("Passphrase", "wrong2"), ("Passphrase", PASS)],
        drop=("O2M_PASSPHRASE",))
    assert status == 0, seen
    assert seen.count("Wrong passphrase, try again.") == 2
    assert "o2m1:" in seen


def test_three_wrong_passphrases_end_the_command_with_one_line(owner):
    """The third mistake ends it, with the usual one line and hint."""
    status, seen = dialogue(owner, ["card", "--renew"], [
        ("Passphrase", "a"), ("Passphrase", "b"), ("Passphrase", "c")],
        drop=("O2M_PASSPHRASE",))
    assert status == 1
    assert seen.count("Wrong passphrase, try again.") == 2
    assert "o2m: error: Wrong passphrase" in re.sub(r"\x1b\[[0-9;]*m", "", seen)  # no colours


def test_a_build_at_a_terminal_asks_again_after_a_mistyped_passphrase(owner):
    """`o2m build` at a terminal: a mistyped passphrase is asked again, and with the right
    one friends' feeds are signed. (The summary's time leaves out the time spent at the
    prompt, `cli.site.run_build`; no test asserts a duration.)"""
    (owner / "content/2026/new.md").write_text("---\ntitle: New\ndate: 2026-03-01\n---\nx\n")
    status, seen = dialogue(owner, ["build"], [("Passphrase", "nope"), ("Passphrase", PASS)],
                            drop=("O2M_PASSPHRASE",))
    assert status == 0, seen
    assert re.search(r"built \d+ posts? \(\d+ changed\) in \d+\.\d s", seen), seen
    assert "Wrong passphrase, try again." in seen and "1 friend feed signed" in seen


def test_a_key_rotation_at_a_terminal_asks_again_after_a_mistyped_passphrase(owner):
    """`o2m key rotate` at a terminal gets the same three tries as every other command
    that unlocks the key, and rotates with the right passphrase."""
    status, seen = dialogue(owner, ["key", "rotate", "--no-build"],
                            [("Passphrase", "nope"), ("Passphrase", PASS)],
                            drop=("O2M_PASSPHRASE",))
    assert status == 0, seen
    assert "Wrong passphrase, try again." in seen and "rotated to a new key" in seen


# -- 18: the build summary counts private posts ----------------------------------------

def test_the_build_summary_counts_private_posts_that_changed(site):
    """Two friends-only posts added: the summary says they were built and changed
    (was "built 1 post (0 changed)"); editing one is "1 changed"."""
    site.post("2026/public.md", title="Public")
    site.post("2026/p1.md", title="For friends 1", audience="friends")
    site.post("2026/p2.md", title="For friends 2", audience="friends")
    first = site.o2m("build").output
    assert first.startswith("built 3 posts (3 changed) in "), first
    assert "2 private kept off the public site" in first
    site.post("2026/p1.md", title="For friends 1, edited", audience="friends")
    again = site.o2m("build").output
    assert again.startswith("built 3 posts (1 changed) in "), again


# -- 18: watch lines name the files ----------------------------------------------------

def test_a_watch_line_names_the_files_that_changed(site):
    """Two files saved at once: the line names both (was "2 files: wrote 6 files")."""
    site.post("2026/a.md", title="A")
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "watch", "--debounce", "400"],
                            cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "watching" in proc.stdout.readline()
        site.post("2026/b.md", title="B")
        site.post("2026/c.md", title="C")
        line = proc.stdout.readline()
        assert "content/2026/b.md" in line and "content/2026/c.md" in line, line
        assert re.search(r"content/2026/[bc]\.md, content/2026/[bc]\.md: wrote", line), line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


# -- 14, 15: a pipe into head, a short id ----------------------------------------------

def _store_with_posts(root, n: int, title_length: int = 200) -> list[str]:
    with ReaderStore.open(root) as store:
        store.apply_update(FriendUpdate("bob", "B" * 43, upserts=[
            PostRow(id=f"p{i}", audience="private", date=f"2026-11-{1 + i % 28:02d}T{i % 24:02d}"
                    f":{i % 60:02d}:00Z", title=f"Post {i} " + "x" * title_length,
                    markdown="text") for i in range(n)]))
    return [short_id_for("B" * 43, f"p{i}") for i in range(n)]


def test_timeline_into_head_exits_quietly(site):
    """`o2m timeline | head -3` prints three lines and nothing on stderr (a closed pipe
    is not an error), however much was left to write."""
    _store_with_posts(site.root, 600)
    result = subprocess.run(f"{sys.executable} -m o2m_pub timeline -n 1000 | head -3",
                            shell=True, cwd=site.root, capture_output=True, text=True,
                            timeout=60)
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == ""


def test_a_too_short_id_says_how_many_characters_it_needs(site):
    """`o2m show qxw` names the minimum, instead of "no post with id 'qxw'"."""
    ids = _store_with_posts(site.root, 1, title_length=1)
    result = run_o2m("show", ids[0][:3], cwd=site.root)
    assert result.returncode == 1
    assert f"'{ids[0][:3]}' is too short for a post id: give at least 4 characters" \
        in result.stderr
    assert run_o2m("show", ids[0][:4], cwd=site.root).returncode == 0


# -- 16: card-paste mistakes -----------------------------------------------------------

def test_a_card_without_its_prefix_is_named(owner):
    """A card pasted without `o2m1:` (was: "File name too long")."""
    text = card_to_text(BOB.card).removeprefix("o2m1:")
    result = run_o2m("friend", "add", "bob2", text, "--yes", cwd=owner)
    assert result.returncode == 1
    assert "o2m: error: this looks like a card without its o2m1: prefix" in result.stderr
    assert "File name too long" not in result.stderr


def test_a_card_cut_at_the_end_is_named(owner):
    """The last characters of a card missing (was: "not valid JSON: Unterminated
    string…")."""
    result = run_o2m("friend", "add", "bob2", card_to_text(BOB.card)[:-20], "--yes",
                     cwd=owner)
    assert result.returncode == 1
    assert "o2m: error: this card is cut short: its end is missing" in result.stderr
    assert "copy the whole o2m1:… text" in result.stderr
    assert "JSON" not in result.stderr


def test_adding_a_friends_card_again_says_what_it_changed(owner):
    """Bob's card again: nothing changed; his newer card (another URL): "updated", and
    no feed to write for it (his keys are the same); his older card after it: nothing
    changed, since a newer one is kept (was: "added bob", then "already your friend with
    this card")."""
    import datetime as dt

    from o2m_pub.protocol.cards import make_card
    newer = make_card(BOB.sign, name="Bob", url="https://bob.example/new/",
                      box_pk=bytes(BOB.box.public_key), tls_pin=None,
                      created=dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc), seq=2)

    def add(card) -> str:  # noqa: ANN001
        result = run_o2m("friend", "add", "bob", card_to_text(card), "--yes", cwd=owner)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "bob is already your friend with this card; nothing changed" in add(BOB.card)
    updated = add(newer)
    assert updated.startswith("updated bob: Bob <https://bob.example/new/>")
    assert "their feed is written" not in updated
    assert "bob is already your friend with a newer card; nothing changed" in add(BOB.card)


# -- 8: publish builds first -----------------------------------------------------------

def test_publish_builds_first(site, tmp_path):
    """An edit saved and published without `o2m build` reaches the host (was: the stale
    build/ was sent, "published … 26 unchanged"); --no-build publishes build/ as it is."""
    site.post("2026/trip.md", title="Trip", body="First words.")
    assert site.o2m("build")
    www = tmp_path / "www"
    assert run_o2m("publish", str(www), cwd=site.root).returncode == 0
    site.post("2026/trip.md", title="Trip", body="Second words.")
    stale = run_o2m("publish", "--no-build", str(www), cwd=site.root)
    assert stale.returncode == 0 and "First words." in (www / "2026/trip/index.html").read_text()
    result = run_o2m("publish", str(www), cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("built 1 post (1 changed)")
    assert "Second words." in (www / "2026/trip/index.html").read_text()


def test_publish_refuses_when_the_build_finds_a_problem(site, tmp_path):
    """A post that does not build: nothing is published, one line says why."""
    site.post("2026/trip.md", title="Trip")
    site.write("content/2026/bad.md", "---\ntitle: Bad\ndate: someday\n---\nx\n")
    www = tmp_path / "www"
    result = run_o2m("publish", str(www), cwd=site.root)
    assert result.returncode == 1
    assert "o2m: error: publish: nothing published: the build found a problem" in result.stderr
    assert not www.exists()


# -- 20: fetch --every says when it fetches next ---------------------------------------

def test_fetch_every_says_when_the_next_fetch_is(site):
    """`o2m fetch --every 15m` prints "next fetch at HH:MM" between rounds (here a
    site with no friend yet: a round with no host to wait for)."""
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "fetch", "--every", "15m",
                             "--timeout", "5"], cwd=site.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not lines or not lines[-1].startswith("next fetch at"):
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            assert ready, f"no 'next fetch at' line in {lines}"  # (the first round is over)
            line = proc.stdout.readline()
            assert line, (lines, proc.stderr.read())
            lines.append(line)
        assert re.fullmatch(r"next fetch at \d\d:\d\d \(Ctrl-C stops\)\n", lines[-1])
        assert lines[0].startswith("no friends to fetch")  # the round before it
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_damaged_timeline_store_does_not_stop_removing_a_friend(owner):
    """`o2m friend remove bob` with a damaged .o2m/reader.db: Bob is removed all the
    same (cutting someone off must not wait for a repair), and a warning says his posts
    may still be in the timeline."""
    (owner / ".o2m").mkdir(exist_ok=True)
    (owner / ".o2m/reader.db").write_bytes(b"not a database, " * 512)
    result = run_o2m("friend", "remove", "bob", cwd=owner)
    assert result.returncode == 0, result.stderr
    assert "removed bob" in result.stdout
    assert "o2m: warning: their posts stay in your timeline" in result.stderr
    assert "Traceback" not in result.stderr
    assert "no friends yet" in run_o2m("friend", "list", cwd=owner).stdout


def test_a_rename_the_timeline_store_refuses_is_undone(owner, monkeypatch):
    """`o2m friend rename bob robert` whose second half, in the timeline's store, fails:
    the friend keeps the old name (both stores or neither), and the error is one line."""
    from click.testing import CliRunner

    from o2m_pub.cli import main
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.reader.store import ReaderStore, StoreError
    ReaderStore.open(owner).close()

    def refuse(self, old, new):  # noqa: ANN001, ANN202
        raise StoreError("the reader's store is damaged")

    monkeypatch.setattr(ReaderStore, "rename_friend", refuse)
    result = CliRunner().invoke(main, ["-C", str(owner), "friend", "rename", "bob", "robert"])
    assert result.exit_code == 1
    assert "o2m: error: the reader's store is damaged" in result.output
    assert ["bob"] == [f.name for f in FriendStore(owner).list()]
