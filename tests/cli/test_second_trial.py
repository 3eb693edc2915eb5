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


# -- 3: the passphrase hints name the right option -------------------------------------

@pytest.mark.parametrize(("args", "env", "variable", "option"), [
    (("key", "export", "BACKUP"), {}, "O2M_EXPORT_PASSPHRASE", "--export-passphrase-file"),
    (("key", "passwd"), {}, "O2M_NEW_PASSPHRASE", "--new-passphrase-file"),
    (("key", "import", "BACKUP", "--replace"), {"O2M_PASSPHRASE": "new one here"},
     "O2M_EXPORT_PASSPHRASE", "--export-passphrase-file"),
    (("key", "import", "BACKUP", "--replace"), {"O2M_EXPORT_PASSPHRASE": "b k p"},
     "O2M_PASSPHRASE", "--passphrase-file"),
    (("card", "--renew"), {}, "O2M_PASSPHRASE", "--passphrase-file"),
])
def test_each_passphrase_hint_names_the_option_that_command_takes(owner, tmp_path, args, env,
                                                                   variable, option):
    """Without a terminal, `o2m key export` said "pass --passphrase-file", which is the
    key's own passphrase (so the newcomer got "Wrong passphrase"). Each hint names the
    variable and the option for the passphrase asked, and doing what it says works."""
    backup = tmp_path / "backup"
    if "import" in args:
        made = run_o2m("key", "export", str(backup), cwd=owner,
                       env={"O2M_EXPORT_PASSPHRASE": "b k p"})
        assert made.returncode == 0, made.stderr
    argv = [str(backup) if a == "BACKUP" else a for a in args]
    result = _run_without(variable, argv, owner, env)
    assert result.returncode == 1, result.stderr
    assert f"hint: set {variable} or pass {option} FILE" in result.stderr
    secret = tmp_path / "secret"
    secret.write_text("b k p\n" if variable == "O2M_EXPORT_PASSPHRASE" else
                      "test passphrase\n")
    followed = _run_without(variable, [*argv, option, str(secret)], owner, env)
    assert followed.returncode == 0, followed.stderr


def test_the_key_passphrase_file_is_never_taken_for_another_passphrase(owner, tmp_path):
    """`--passphrase-file` is the key's own passphrase: `o2m key passwd` with it and
    $O2M_NEW_PASSPHRASE set takes the new one from the variable (it took the file's,
    the old passphrase, so nothing changed though it said "passphrase changed")."""
    old = tmp_path / "old"
    old.write_text("test passphrase\n")
    changed = _run_without("O2M_PASSPHRASE", ["key", "passwd", "--passphrase-file", str(old)],
                           owner, {"O2M_NEW_PASSPHRASE": "four new words here"})
    assert changed.returncode == 0, changed.stderr
    renewed = run_o2m("card", "--renew", cwd=owner,
                      env={"O2M_PASSPHRASE": "four new words here"})
    assert renewed.returncode == 0, renewed.stderr


def _run_without(variable: str, argv: list[str], cwd, env: dict[str, str]):  # noqa: ANN001, ANN202
    """`o2m ARGV` with `variable` unset and `env` set (run_o2m keeps all of os.environ)."""
    import os
    import subprocess
    import sys
    full = {**{k: v for k, v in os.environ.items() if k != variable}, "PYTHONUNBUFFERED": "1",
            **env}
    return subprocess.run([sys.executable, "-m", "o2m_pub", *argv], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("which", ["backup", "next key"])
def test_a_wrong_second_passphrase_names_its_own_variable_and_option(owner, tmp_path, which):
    """A wrong backup passphrase (`o2m key import`) or a wrong one for keys/next.secret
    (`o2m key rotate`, when it was sealed apart) said "O2M_PASSPHRASE or
    --passphrase-file if scripted", the key's own; it names the passphrase it was
    and the variable (and option) that gives it. (The rotation never asked for the
    next key's own passphrase at all: the key file's error did not say which file.)"""
    if which == "backup":
        backup = tmp_path / "backup"
        made = run_o2m("key", "export", str(backup), cwd=owner,
                       env={"O2M_EXPORT_PASSPHRASE": "b k p"})
        assert made.returncode == 0, made.stderr
        result = run_o2m("key", "import", str(backup), "--replace", cwd=owner,
                         env={"O2M_EXPORT_PASSPHRASE": "not it"})
        expected = (f"o2m: error: wrong passphrase for the backup {backup} (or the file "
                    "was altered)", "hint: check the passphrase; O2M_EXPORT_PASSPHRASE or "
                    "--export-passphrase-file if scripted")
    else:
        from o2m_pub._files import write_file
        from o2m_pub.friends.identity import (
            NEXT_KEY_FILE,
            identity_kdf,
            load_next_key,
            seal_key,
        )
        nxt = load_next_key(owner, b"test passphrase")
        write_file(owner / NEXT_KEY_FILE, seal_key(nxt, b"sealed apart", **identity_kdf(owner)),
                   0o600)
        result = run_o2m("key", "rotate", "--no-build", cwd=owner,
                         env={"O2M_NEXT_PASSPHRASE": "not it"})
        expected = ("o2m: error: wrong passphrase for keys/next.secret (or the file was "
                    "altered)", "hint: check the passphrase; O2M_NEXT_PASSPHRASE if scripted")
    assert result.returncode == 1, result.stderr
    first, hint = result.stderr.splitlines()
    assert (first, hint.strip()) == expected
    if which == "next key":  # and the right one is asked for, and taken (it was not)
        rotated = run_o2m("key", "rotate", "--no-build", cwd=owner,
                          env={"O2M_NEXT_PASSPHRASE": "sealed apart"})
        assert rotated.returncode == 0, rotated.stderr
        assert rotated.stdout.startswith("rotated to a new key")


# -- 4: public posts, and no feed for you yet -------------------------------------------

def test_fetch_says_no_feed_yet_of_a_friend_with_new_public_posts(tmp_path, ca):
    """Carol has not added Alice back, but has public posts: `o2m fetch` printed only
    "carol 1 new", and Alice never learnt that Carol's friends-only posts are not for
    her yet. The line gives both facts; the next fetch, with nothing new, still says
    "no feed for you yet"; and it is no failure (exit status 0)."""
    from support.people import Person, server_context
    authority, bundle = ca
    context = server_context(authority)
    alice, carol = Person(tmp_path, "alice", context), Person(tmp_path, "carol", context)
    try:
        alice.befriend(carol)  # Carol never added Alice
        carol.post("open", "Carol in public", "public")
        carol.post("inner", "Carol's friends only", "friends")
        carol.build()
        env = {"O2M_CA_BUNDLE": bundle}
        first = run_o2m("fetch", cwd=alice.root, env=env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.split() == ["carol", "1", "new", "(public),", "no", "feed", "for",
                                        "you", "yet", "(they", "have", "not", "added", "you",
                                        "back)"]
        again = run_o2m("fetch", cwd=alice.root, env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split()[1:] == ["no", "feed", "for", "you", "yet", "(they", "have",
                                            "not", "added", "you", "back)"]
        assert alice.titles() == {"Carol in public"}
    finally:
        alice.server.stop()
        carol.server.stop()


# -- 5: an invitation used twice ---------------------------------------------------------

def test_accepting_an_invitation_again_does_not_claim_it_was_taken(tmp_path):
    """Bob accepts Ada's invitation twice. Ada's `o2m serve` takes the first answer and
    refuses the second ("used already"), but its inbox answers 202 to both: by design
    (PROTOCOL.md §5) it never tells whether an invitation was used. Bob's second accept
    said "delivered: Ada's site took your answer"; now neither says the site took it,
    and the second says what a used invitation means."""
    import socket

    from support.o2m_server import o2m_serve
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ada, bob = tmp_path / "ada", tmp_path / "bob"
    for root, url in ((ada, f"https://localhost:{port}/"), (bob, "https://bob.example/")):
        made = run_o2m("init", str(root), "--name", root.name.title(), "--url", url,
                       cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    assert run_o2m("build", cwd=ada).returncode == 0
    with o2m_serve(ada, "--port", str(port)) as server:
        invited = run_o2m("friend", "invite", "bob", cwd=ada)
        assert invited.returncode == 0, invited.stderr
        text = invited.stdout.strip()
        answers = [run_o2m("friend", "accept", text, cwd=bob) for _ in range(2)]
        _read_until(server, "used already")
    log = server.output()
    assert "o2m: inbox: bob accepted your invitation: added bob" in log
    assert "acceptance not taken: this invitation was used already" in log  # the second
    for answer in answers:
        assert answer.returncode == 0, answer.stderr
        assert "took your answer" not in answer.stderr
        assert "sent: Ada's site received your answer; it checks it after answering and " \
               "does not say whether it took it" in answer.stderr
    assert "was your friend already" not in answers[0].stderr
    assert ("ada was your friend already: if you accepted this invitation before, it is "
            "used, and this answer is refused there") in answers[1].stderr


def _read_until(server, text: str, seconds: float = 60) -> None:  # noqa: ANN001
    """Read the running server's output into `server.lines` until it holds `text` (its
    inbox handles a message after answering it), or `seconds` pass. Straight from the
    pipe: the text wrapper's buffer is for `readline`, which would block."""
    import os
    import select
    import time
    end, fd, got = time.monotonic() + seconds, server.process.stdout.fileno(), b""
    while text.encode() not in got and time.monotonic() < end:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    server.lines.append(got.decode())


# -- 6: a repeated word ------------------------------------------------------------------

@pytest.mark.parametrize(("passphrase", "reason"), [
    ("carol carol carol carol", "it has only 1 different word (4 in all: a repeated word "
                                "adds little)"),
    ("plum plum river river", "it has only 2 different words (4 in all: a repeated word "
                              "adds little)"),
    ("test passphrase", "it has fewer than 3 words"),
])
def test_the_weak_passphrase_warning_says_what_is_weak(tmp_path, passphrase, reason):
    """`carol carol carol carol` was called weak because it "has fewer than 3 words"
    (it has four, all the same): the warning of `o2m init` counts the different words
    and says so; a short one is still "fewer than 3 words"."""
    made = run_o2m("init", str(tmp_path / "site"), "--name", "Carol", "--url",
                   "https://carol.example/", cwd=tmp_path, env={"O2M_PASSPHRASE": passphrase})
    assert made.returncode == 0, made.stderr
    assert f"o2m: warning: this passphrase looks weak: {reason}. It guards your keys" \
        in made.stderr


def test_a_passphrase_of_distinct_words_is_not_warned_of(tmp_path):
    """Four different words: no warning."""
    made = run_o2m("init", str(tmp_path / "site"), "--name", "Carol", "--url",
                   "https://carol.example/", cwd=tmp_path,
                   env={"O2M_PASSPHRASE": "plum river lantern oak"})
    assert made.returncode == 0, made.stderr
    assert "weak" not in made.stderr


# -- 7: bad option values are usage errors, exit status 2 --------------------------------

@pytest.mark.parametrize(("args", "first"), [
    (("timeline", "--since", "yesterday"),
     "o2m: error: --since: 'yesterday' is not a date, a time or an age"),
    (("timeline", "--before", "abcd", "--page", "2"),
     "o2m: error: --before, --page: cannot be used together"),
    (("fetch", "--every", "5s"), "o2m: error: --every: '5s' is under 10s"),
    (("fetch", "nobody"), "o2m: error: FRIENDS: you have no friend called 'nobody'"),
    (("friend", "invite", "--expires", "3x"),
     "o2m: error: --expires: '3x' is not a duration within a year"),
    (("card", "--bio", "Hi"), "o2m: error: --no-pin, --avatar, --no-avatar, --bio: these "
                              "change your card, so they go with --renew"),
    (("desk", "--host", "0.0.0.0"),
     "o2m: error: --host: 0.0.0.0: the desk listens on 127.0.0.1 or ::1 only"),
    (("timeline", "--page", "0"), None),  # click's own check, exit 2 as ever
])
def test_a_bad_option_value_is_a_usage_error_with_exit_status_2(owner, args, first):
    """`timeline --since yesterday` exited 1 but `--page 0` exited 2. Every bad option
    value is a usage error, exit status 2 as click's own checks (and `fetch --every`)
    give; o2m's own are one line naming the option, with a hint."""
    result = run_o2m(*args, cwd=owner)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    if first is not None:
        lines = result.stderr.splitlines()
        assert lines[0] == first
        assert lines[1].startswith("  hint: ") and len(lines) == 2


def test_c_with_a_folder_that_does_not_exist_says_so(tmp_path):
    """`o2m -C /nonexistent build` said "no o2m.toml in /nonexistent or above"; it says
    the folder does not exist (a bad option value: exit 2). `o2m -C NEW init` still
    makes the site there."""
    missing = tmp_path / "nonexistent"
    result = run_o2m("-C", str(missing), "build", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == f"o2m: error: -C: {missing}: no such folder"
    assert "no o2m.toml" not in result.stderr
    made = run_o2m("-C", str(missing), "init", "--url", "https://new.example/", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (missing / "o2m.toml").is_file()


# -- 8: desk --open without a browser ----------------------------------------------------

def _no_browser_env(tmp_path, **extra: str) -> dict[str, str]:
    """No display and nothing on the PATH: Python's webbrowser finds no browser."""
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty), "BROWSER": "", "DISPLAY": "", "WAYLAND_DISPLAY": "", **extra}


def _stderr_line(proc, seconds: float = 30) -> str:
    import select
    ready, _, _ = select.select([proc.stderr], [], [], seconds)
    return proc.stderr.readline() if ready else ""


def test_desk_open_without_a_browser_says_so_and_where_to_go(owner, tmp_path):
    """`o2m desk --open` on a machine with no browser did nothing, without a word: it
    says that no browser could be opened and prints the URL to open; the desk serves
    on."""
    from support.desk import start_desk, stop
    proc, url = start_desk(owner, "--open", env=_no_browser_env(tmp_path))
    try:
        line = _stderr_line(proc)
        assert line.startswith(f"o2m: warning: no web browser could be opened here: open "
                               f"{url} in one on this machine"), line
        import urllib.request
        with urllib.request.urlopen(url, timeout=20) as answer:  # the desk still answers
            assert answer.status == 200
    finally:
        assert stop(proc) == 0


def test_desk_open_with_a_browser_says_nothing_more(owner, tmp_path):
    """With a browser ($BROWSER, here a script that notes the URL), the desk's URL is
    handed to it and no warning is printed."""
    from support.desk import start_desk, stop
    noted = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\necho \"$1\" > {noted}\n")
    browser.chmod(0o755)
    proc, url = start_desk(owner, "--open",
                           env=_no_browser_env(tmp_path, BROWSER=str(browser), PATH="/bin"))
    try:
        import time
        deadline = time.monotonic() + 30
        while not (noted.exists() and noted.read_text().strip()) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert noted.read_text().strip() == url
    finally:
        assert stop(proc) == 0
        assert "no web browser" not in proc.stderr.read()
