"""Conversations across sites (issue 13, PROTOCOL.md §4), end to end with real sites made
by `o2m init`, served over TLS on 127.0.0.1 and fetched by the real fetcher: A posts to
friends; B, A's friend, replies and reacts; C, A's friend but not B's, reads B's reply
through A's thread; D, B's friend but not A's, sees nothing of it. Then an edit, a nested
reply, a changed reaction, a hidden reply and a deleted one reach everyone on their
next fetch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.people import Person, PortOnly, server_context

from o2m_pub.cli import main
from o2m_pub.friends.conversation_files import load_conversations
from o2m_pub.reader import thread_store
from o2m_pub.reader.store import ReaderStore


def cli(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def cli_fails(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["-C", str(root), *args])
    assert result.exit_code != 0, result.output
    return result.output


def short_id(person: Person, title: str) -> str:
    (post,) = [p for p in person.timeline() if p.title == title]
    return post.short_id


def thread_of(person: Person, title: str) -> list[thread_store.ThreadReply]:
    with ReaderStore.open(person.root) as store:
        (post,) = [p for p in store.timeline(limit=1000) if p.title == title]
        key = thread_store.friend_names(store.db)
        author = {n: k for k, n in key.items()}[post.friend]
        replies, _ = thread_store.thread(store.db, f"o2m:{author}/{post.id}")
        return replies


@pytest.fixture()
def four(tmp_path, ca, monkeypatch):
    """A, B, C, D: A<->B, A<->C, B<->D friends; C and B are not friends, D and A not."""
    monkeypatch.setenv("O2M_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("O2M_KDF", "interactive")
    authority, bundle = ca
    context = server_context(authority)
    people = {n: Person(tmp_path, n, context) for n in ("ada", "bob", "cyd", "dee")}
    a, b, c, d = (people[n] for n in ("ada", "bob", "cyd", "dee"))
    for x, y in ((a, b), (a, c), (b, d)):
        x.befriend(y)
        y.befriend(x)
    yield a, b, c, d, bundle
    for p in people.values():
        p.server.stop()


def test_a_reply_reaches_the_ops_friends_through_the_ops_thread(four):
    """The whole round: B's reply and reaction travel in B's feed to A; A's fetch records
    them and A's build links them in the item of every friend who reads the post; C,
    not B's friend, fetches the reply from B's site and checks B's signature; D, B's
    friend but not A's, sees nothing."""
    a, b, c, d, bundle = four
    a.post("hello", "Hello friends", "friends", body="What do you think?")
    a.build()
    b.fetch(bundle)
    c.fetch(bundle)
    post = short_id(b, "Hello friends")
    said = cli(b.root, "reply", post, "--text", "I think *yes*.")
    assert "(to ada)" in said
    (reply_file,) = (b.root / "content" / "replies").glob("*.md")
    assert "reply_to: o2m:" in reply_file.read_text()
    cli(b.root, "react", post, "👍")
    b.build()
    d.fetch(bundle)
    assert d.titles() == set()  # B's reply went to A alone (A is not D's friend)

    outcomes = a.fetch(bundle)
    assert outcomes["bob"].ok
    links = load_conversations(a.root)
    (entry,) = links.values()
    assert len(entry["replies"]) == 1 and len(entry["reactions"]) == 1
    assert any(kind == "reply" for kind, _ in _notifications(a))
    told = cli(a.root, "notifications")
    assert "bob replied to your post" in told and "bob reacted 👍 to your post" in told
    a.build()

    c.fetch(bundle)
    (reply,) = thread_of(c, "Hello friends")
    assert reply.status == "ok" and reply.markdown.strip() == "I think *yes*."
    assert reply.name.startswith("~")  # not C's friend: a short fingerprint
    shown = cli(c.root, "show", short_id(c, "Hello friends"))
    assert any(line.strip() == "I think *yes*." for line in shown.splitlines()), shown
    assert "👍 1" in shown
    assert "\ufffd" not in shown  # the reply's line breaks are not shown as controls
    assert "1 reply:" in cli(c.root, "timeline", "--thread", short_id(c, "Hello friends"))
    assert "[💬 1  👍 1]" in cli(c.root, "timeline")  # counts on the timeline

    # C answers B's reply (nested); A links it too; B sees it through A
    cli(c.root, "reply", reply.short_id, "--text", "Me too.")
    (nested_file,) = (c.root / "content" / "replies").glob("*.md")
    assert "thread: o2m:" in nested_file.read_text()
    c.build()
    a.fetch(bundle)
    a.build()
    b.fetch(bundle)
    replies = thread_of(b, "Hello friends")
    assert [(r.depth, (r.markdown or "").strip()) for r in replies] == [
        (1, "I think *yes*."), (2, "Me too.")]
    assert "replied to your post" in cli(b.root, "notifications")  # Cyd answered Bob

    # B edits the reply and changes the reaction: everyone sees it on the next fetch
    reply_file.write_text(reply_file.read_text().replace("I think *yes*.", "On reflection, no."))
    cli(b.root, "react", post, "🎉")
    b.build()
    a.fetch(bundle)
    a.build()
    c.fetch(bundle)
    texts = [(r.markdown or "").strip() for r in thread_of(c, "Hello friends")]
    assert texts[0] == "On reflection, no."
    shown = cli(c.root, "show", short_id(c, "Hello friends"))
    assert "🎉 1" in shown and "👍" not in shown

    # A hides C's reply: it leaves A's feeds, C's site is untouched
    with ReaderStore.open(a.root) as store:
        nested = [r for r in thread_store.thread(store.db, replies[0].to_ref)[0]
                  if r.depth == 2]
    cli(a.root, "thread", "hide", nested[0].short_id)
    a.build()
    b.fetch(bundle)
    assert [r.depth for r in thread_of(b, "Hello friends")] == [1]
    cli(a.root, "thread", "unhide", nested[0].short_id)

    # B deletes the reply and undoes the reaction
    reply_file.unlink()
    cli(b.root, "react", post, "--undo")
    b.build()
    a.fetch(bundle)
    a.build()
    c.fetch(bundle)
    assert [r.depth for r in thread_of(c, "Hello friends")] == []
    assert "🎉" not in cli(c.root, "show", short_id(c, "Hello friends"))


def _notifications(person: Person) -> list[tuple[str, str]]:
    with ReaderStore.open(person.root) as store:
        return [(n.kind, n.detail) for n in store.notifications()]


def test_a_reply_to_a_post_one_cannot_read_is_refused(four):
    """Bad input: `o2m reply` with an id no post of the timeline (or its threads) has is
    refused with its reason, and nothing is written."""
    a, b, c, d, bundle = four
    a.post("hello", "Hello friends", "friends")
    a.build()
    d.fetch(bundle)  # D is not A's friend: D has nothing of A's
    said = cli_fails(d.root, "reply", "abcdefgh", "--text", "Hi")
    assert "no post 'abcdefgh' that you can read" in said
    assert not (d.root / "content" / "replies").exists()
    assert "that you can read" in cli_fails(d.root, "react", "abcdefgh", "👍")


def test_a_reaction_must_be_one_emoji(four):
    """Bad input: a reaction of text, or of two emoji, is refused before anything is
    saved."""
    a, b, c, d, bundle = four
    a.post("hello", "Hello friends", "friends")
    a.build()
    b.fetch(bundle)
    post = short_id(b, "Hello friends")
    for bad in ("ok", "👍👍", "a👍"):
        said = cli_fails(b.root, "react", post, bad)
        assert "emoji" in said
    assert not (b.root / ".o2m" / "reactions.json").exists() or \
        json.loads((b.root / ".o2m" / "reactions.json").read_text())["reactions"] == {}


def test_four_sites_served_by_o2m_serve_hold_a_conversation(tmp_path, ca, monkeypatch):
    """Issue 13's end-to-end case with four real `o2m serve` processes (self-signed
    certificates, pinned in the cards): B's reply reaches C through A's thread, fetched
    from B's server with the pin A's link carries; D, not A's friend, sees nothing."""
    from support.o2m_server import o2m_serve
    from support.people import o2m  # noqa: F401 - (Person's own CLI runner)

    monkeypatch.setenv("O2M_PASSPHRASE", "test passphrase")
    authority, bundle = ca
    context = server_context(authority)
    people = [Person(tmp_path, n, context, server_cls=PortOnly) for n in ("ada", "bob",
                                                                          "cyd", "dee")]
    a, b, c, d = people
    a.post("hello", "Hello friends", "friends", body="Thoughts?")
    for p in people:
        p.build()
    with o2m_serve(a.root, "--port", str(a.server.port)), \
            o2m_serve(b.root, "--port", str(b.server.port)), \
            o2m_serve(c.root, "--port", str(c.server.port)), \
            o2m_serve(d.root, "--port", str(d.server.port)):
        for x, y in ((a, b), (a, c), (b, d)):  # their cards now pin their servers' keys
            x.befriend(y)
            y.befriend(x)
        for p in people:
            p.build()
        assert b.card.tls_pin is not None
        assert b.fetch(bundle)["ada"].ok
        post = short_id(b, "Hello friends")
        cli(b.root, "reply", post, "--text", "Served reply.")
        cli(b.root, "react", post, "👍")
        b.build()
        assert a.fetch(bundle)["bob"].ok
        (entry,) = load_conversations(a.root).values()
        assert entry["replies"][0]["tls_pin"].startswith("sha256/")
        a.build()
        c.fetch(bundle)
        (reply,) = thread_of(c, "Hello friends")
        assert (reply.status, (reply.markdown or "").strip()) == ("ok", "Served reply.")
        assert "👍 1" in cli(c.root, "show", short_id(c, "Hello friends"))
        d.fetch(bundle)
        assert d.titles() == set()
        with ReaderStore.open(d.root) as store:
            assert store.db.execute("SELECT count(*) FROM thread_items").fetchone() == (0,)

