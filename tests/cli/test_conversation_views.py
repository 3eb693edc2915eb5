"""Conversations as the people in them see them in the terminal (PROTOCOL.md §4), on real
sites served over TLS (support/garden.py: Ada's "Garden update", Bob's reply and his
reaction): the author sees the thread on their own post, a thread starts at its first
post whatever id names it, a reply says what it answers, and `o2m reply` / `o2m react`
say plainly what they cannot do."""

from __future__ import annotations

import json
import os
import re

from support.garden import NOTE_TEXT, cli, cli_fails
from support.terminal import dialogue


def test_the_author_sees_the_thread_on_their_own_post(garden):
    """`o2m notifications` names Ada's post by an id that `o2m show` and `o2m thread show`
    take on Ada's own site: her post (not in her timeline: it is hers), with Bob's
    reply and his reaction as her fetch stored them."""
    g = garden
    assert f"bob replied to your post ({g.post})" in cli(g.ada.root, "notifications")
    shown = cli(g.ada.root, "show", g.post)
    lines = shown.splitlines()
    assert lines[0] == "Garden update"
    assert lines[1].startswith("by you, 2026-11-20")
    assert "The tomatoes are in." in shown
    assert "reactions: 👍 1 (bob)" in lines
    assert "1 reply:" in lines and "    Lovely tomatoes!" in lines
    thread = cli(g.ada.root, "thread", "show", g.post[:5]).splitlines()
    assert thread[0] == f"{g.post}  you  Garden update"
    assert thread[1:4] == ["reactions: 👍 1 (bob)", "1 reply:", f"  {g.reply}  " +
                           thread[3].split("  ", 2)[2]]
    assert thread[3].endswith("  bob") and thread[4] == "    Lovely tomatoes!"


def test_an_unknown_id_says_where_it_was_looked_for(garden):
    """Bad input: `o2m thread show` with an id of nothing this site has says where it
    looked (no word of answering), and `o2m show` still names the timeline's ids; an id
    of fewer than 4 characters is too short for `react` and `thread show` too."""
    g = garden
    said = cli_fails(g.ada.root, "thread", "show", "zzzzzz")
    assert "no post 'zzzzzz' in your timeline, in your posts or in their threads" in said
    assert "answer" not in said
    assert "no post with id 'zzzzzz'" in cli_fails(g.ada.root, "show", "zzzzzz")
    # two characters name no post, not even a reply of a thread (they matched one)
    for args in (("react", g.reply[:2], "👍"), ("thread", "show", g.reply[:2])):
        assert "too short for a post id" in cli_fails(g.ada.root, *args)
    assert not (g.ada.root / ".o2m" / "reactions.json").exists()


def test_a_thread_shown_from_a_reply_starts_at_its_first_post(garden):
    """The reply's id leads to its thread: the head is the first post (Ada's, "you" on
    her side, "ada" on Bob's), the reply is listed once under it, and the reaction to
    the post is the post's, not the reply's."""
    g = garden
    for args in (("thread", "show", g.reply), ("timeline", "--thread", g.reply)):
        lines = cli(g.ada.root, *args).splitlines()
        assert lines[0] == f"{g.post}  you  Garden update", lines
        assert lines[1] == "reactions: 👍 1 (bob)"
        assert [line for line in lines if "Lovely tomatoes!" in line] == ["    Lovely tomatoes!"]
        assert sum(g.reply in line for line in lines) == 1
    g.ada.build()  # Ada's feeds link the reply; Bob sees his own reply in her thread
    g.bob.fetch(g.bundle)
    lines = cli(g.bob.root, "thread", "show", g.reply).splitlines()
    assert lines[0] == f"{g.post}  ada  Garden update"
    assert lines[1] == "reactions: 👍 1 (you)"
    assert lines[3].endswith("  you")


def test_a_reply_says_what_it_answers_and_a_note_is_printed_once(garden):
    """A reply in the timeline and in `o2m show` carries "↳ reply to “Garden update”",
    with who wrote that post (and in `show` its id); a note's text is printed once."""
    g = garden
    timeline = cli(g.ada.root, "timeline")
    (line,) = [line for line in timeline.splitlines() if g.reply in line]
    assert "Lovely tomatoes!  ↳ reply to “Garden update” (you)" in line
    shown = cli(g.ada.root, "show", g.reply).splitlines()
    assert shown[0].startswith("from bob, ")  # a note: no headline before it
    assert shown[1] == f"↳ reply to “Garden update” (you, {g.post})"
    assert shown.count("Lovely tomatoes!") == 1
    note = cli(g.bob.root, "show", g.note)
    assert note.count(NOTE_TEXT) == 1, note
    own_reply = cli(g.bob.root, "show", g.reply).splitlines()  # Bob's own, on his site
    assert own_reply[0].startswith("by you, ")
    assert own_reply[1] == f"↳ reply to “Garden update” (ada, {g.post})"


def test_reply_opens_no_editor_without_a_terminal(garden):
    """With no --text or --file and no terminal (a script, a pipe), `o2m reply` opens no
    editor: one error line and a hint; `--file -` reads standard input; a file that is
    not UTF-8 is refused by name, and --text with --file conflict."""
    g = garden
    replies = g.bob.root / "content" / "replies"
    before = set(replies.glob("*.md"))
    said = cli_fails(g.bob.root, "reply", g.post)
    assert "o2m: error: no terminal to open an editor in" in said
    assert "--text" in said and "--file -" in said and "Editing failed" not in said
    assert set(replies.glob("*.md")) == before
    latin = g.bob.root / "latin1.txt"
    latin.write_bytes("Très bien".encode("latin-1"))
    assert "latin1.txt:1: not UTF-8 text" in cli_fails(g.bob.root, "reply", g.post,
                                                        "--file", str(latin))
    assert "conflict" in cli_fails(g.bob.root, "reply", g.post, "--file", str(latin),
                                   "--text", "Hi")
    said = cli_fails(g.bob.root, "reply", g.post, "--file", "-",
                     input="Line one.\nTrès bien".encode("latin-1"))
    assert "o2m: error: standard input:2: not UTF-8 text" in said and "--text" in said
    assert set(replies.glob("*.md")) == before
    cli(g.bob.root, "reply", g.post, "--file", "-", input="From standard input.\n")
    (new,) = set(replies.glob("*.md")) - before
    assert "From standard input." in new.read_text()


def test_reply_on_a_terminal_uses_the_editor_or_says_why_it_could_not(garden, tmp_path):
    """On a terminal, $EDITOR writes the reply; an editor that is not there gives an
    `o2m: error:` line with a hint, never click's bare "Error: … Editing failed"."""
    g = garden
    replies = g.bob.root / "content" / "replies"
    before = set(replies.glob("*.md"))
    args = ["-C", str(g.bob.root), "reply", g.post]
    status, said = dialogue(tmp_path, args, [], env={"EDITOR": "nosucheditor"})
    assert status == 1
    assert "o2m: error:" in said and "the editor did not work" in said
    assert "hint:" in said and "--text" in said
    assert not said.lstrip().startswith("Error:")
    assert set(replies.glob("*.md")) == before
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "Written in the editor.\\n" > "$1"\n')
    os.chmod(editor, 0o755)
    status, said = dialogue(tmp_path, args, [], env={"EDITOR": str(editor)})
    assert status == 0, said
    (new,) = set(replies.glob("*.md")) - before
    assert "Written in the editor." in new.read_text()


def test_react_says_what_is_wrong_in_its_own_words(garden):
    """An emoji with --undo is a conflict; --undo with no reaction says so (no hint of
    `o2m timeline`); a prefix is echoed as the full id; one's own post or reply takes
    no reaction of one's own (it would count among the others' for everyone)."""
    g = garden
    said = cli_fails(g.bob.root, "react", g.post, "👍", "--undo")
    assert "conflict" in said and "give one emoji, or --undo" not in said
    said = cli_fails(g.bob.root, "react", g.post)
    assert "no emoji given" in said
    cli(g.bob.root, "react", g.post, "--undo")
    said = cli_fails(g.bob.root, "react", g.post, "--undo")
    assert f"you have no reaction to {g.post} to take back" in said
    assert "o2m timeline" not in said
    assert cli(g.bob.root, "react", g.post[:5], "🎉").startswith(f"reacted 🎉 to {g.post} ")
    g.ada.build()
    g.bob.fetch(g.bundle)  # Bob's reply comes back to him through Ada's thread
    reactions = (g.bob.root / ".o2m" / "reactions.json").read_bytes()
    said = cli_fails(g.bob.root, "react", g.reply[:6], "👍")
    assert f"{g.reply} is your own reply" in said
    said = cli_fails(g.ada.root, "react", g.post, "👍")
    assert f"{g.post} is your own post" in said and "o2m thread show" in said
    assert (g.bob.root / ".o2m" / "reactions.json").read_bytes() == reactions
    assert not (g.ada.root / ".o2m" / "reactions.json").exists() or json.loads(
        (g.ada.root / ".o2m" / "reactions.json").read_text())["reactions"] == {}


def _thread_ids(root, post: str) -> list[tuple[int, str, str]]:  # noqa: ANN001
    """(depth, short id, who) of each reply `o2m thread show` lists, from its head lines
    ("  ID  DATE TIME  WHO", indented by depth)."""
    heads = (re.match(r"^((?:  )+)([a-z2-7]{8,52})  \S+ \S+  (\S+)", line)
             for line in cli(root, "thread", "show", post).splitlines()[1:])
    return [(len(m[1]) // 2, m[2], m[3]) for m in heads if m]


def test_the_author_replies_to_their_own_post_and_friends_see_it_in_the_thread(garden):
    """`o2m reply` to one's own post continues its thread (PROTOCOL.md §4.2): the reply
    names the post, goes to whoever can read it (its audience, `friends`), and shows at
    once under the post in the author's `o2m thread show` and `o2m show`, beside Bob's
    reply; a reply to that reply nests under it. After Ada's build and Bob's fetch, Bob
    sees both of Ada's replies in the thread, where they belong."""
    g = garden
    g.wait_past_bobs_reply()
    said = cli(g.ada.root, "reply", g.post[:6], "--text", "Update: the basil is in too.")
    assert said.startswith(f"reply to {g.post} written: content/replies/")
    assert "(to friends)" in said
    (written,) = (g.ada.root / "content" / "replies").glob("*.md")
    text = written.read_text()
    assert "reply_to: o2m:" in text and "thread:" not in text and "audience: [friends]" in text
    thread = _thread_ids(g.ada.root, g.post)
    assert [(depth, who) for depth, _, who in thread] == [(1, "bob"), (1, "you")]
    own = thread[1][1]
    shown = cli(g.ada.root, "show", g.post)
    assert "2 replies:" in shown and "    Update: the basil is in too." in shown
    cli(g.ada.root, "reply", own, "--text", "And the beans.")
    nested = [f for f in (g.ada.root / "content" / "replies").glob("*.md") if f != written]
    assert f"thread: {text.split('reply_to: ')[1].split()[0]}" in nested[0].read_text()
    thread = _thread_ids(g.ada.root, g.post)
    assert [(depth, who) for depth, _, who in thread] == [(1, "bob"), (1, "you"), (2, "you")]
    assert thread[1][1] == own
    assert cli(g.ada.root, "show", own).splitlines()[1] == (
        f"↳ reply to “Garden update” (you, {g.post})")
    g.ada.build()
    assert g.bob.fetch(g.bundle)["ada"].ok
    seen = _thread_ids(g.bob.root, g.post)
    assert [(depth, who) for depth, _, who in seen] == [(1, "you"), (1, "ada"), (2, "ada")]
    assert seen[1][1] == own
    bobs = cli(g.bob.root, "thread", "show", g.post)
    assert "    Update: the basil is in too." in bobs and "      And the beans." in bobs


def test_a_reply_the_owner_hid_stays_in_their_own_thread_view_marked(garden):
    """`o2m thread hide` takes a reply out of the links Ada's feeds carry, not out of
    Ada's own view: `o2m thread show` and `o2m show` still list it, marked hidden with
    how to undo it, and `unhide` takes the mark away."""
    g = garden
    assert "hidden" not in cli(g.ada.root, "thread", "show", g.post)
    cli(g.ada.root, "thread", "hide", g.reply)
    for args in (("thread", "show", g.post), ("show", g.post)):
        lines = cli(g.ada.root, *args).splitlines()
        (line,) = [line for line in lines if g.reply in line]
        assert line.endswith(f"(hidden by you: your friends no longer see it through your "
                             f"post; `o2m thread unhide {g.reply}`)")
        assert "    Lovely tomatoes!" in lines
    cli(g.ada.root, "thread", "unhide", g.reply)
    assert "hidden" not in cli(g.ada.root, "thread", "show", g.post)


def test_no_reply_to_an_own_post_whose_readers_are_not_known(garden):
    """Bad input: a reply to one's own post goes to that post's audience. A post with a
    problem the build refuses (here a broken `tags:` line under `audience: [bob]`) has
    no audience o2m can know, and a draft has no readers yet: `o2m reply` refuses both
    with what to mend, and writes nothing (it wrote a reply "to friends", every friend,
    found by a review), and the desk offers no reply form on their pages."""
    from o2m_pub.cli.conversations import own_posts
    from support.desk import Client, make_app

    g = garden
    content = g.ada.root / "content" / "2026"
    (content / "secret.md").write_text(
        "---\ntitle: For Bob\ndate: 2026-11-22\naudience: [bob]\ntags: [a\n---\nShh.\n")
    (content / "plan.md").write_text(
        "---\ntitle: Plan\ndate: 2026-11-23\naudience: [bob]\ndraft: true\n---\nSoon.\n")
    own = own_posts(g.ada.root)
    broken, draft = (own.ref_of(f"content/2026/{name}.md")[1] for name in ("secret", "plan"))
    said = cli_fails(g.ada.root, "reply", broken, "--text", "A reply.")
    assert f"o2m: error: {broken} has a problem, so who can read it is not known" in said
    assert "hint: mend content/2026/secret.md first, then reply" in said
    said = cli_fails(g.ada.root, "reply", draft, "--text", "A reply.")
    assert f"o2m: error: {draft} is a draft: your friends cannot read it yet" in said
    assert not (g.ada.root / "content" / "replies").exists()
    client = Client(make_app(g.ada.root))
    client.sign_in(passphrase="test passphrase")
    for short in (broken, draft):
        page = client.get(f"/post/{short}").body.decode()
        assert 'id="post"' in page and 'id="reply-text"' not in page
        assert client.post(f"/post/{short}/reply", {"text": "A reply."}).status == 400
    assert not (g.ada.root / "content" / "replies").exists()
