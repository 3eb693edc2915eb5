"""The desk's thread view and its reply and react forms (issue 13), on real sites: Cyd
reads Bob's reply to Ada's post through Ada's thread, and her desk's forms write her reply
and her reaction through the same functions as `o2m reply` and `o2m react`."""

from __future__ import annotations

import json

import pytest
from support.desk import Client, make_app
from support.people import Person, server_context



@pytest.fixture()
def thread(tmp_path, ca, monkeypatch):
    from click.testing import CliRunner

    from o2m_pub.cli import main as cli_main

    monkeypatch.setenv("O2M_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("O2M_KDF", "interactive")
    authority, bundle = ca
    context = server_context(authority)
    a, b, c = (Person(tmp_path, n, context) for n in ("ada", "bob", "cyd"))
    for x, y in ((a, b), (a, c)):
        x.befriend(y)
        y.befriend(x)
    a.post("hello", "Hello friends", "friends")
    a.build()
    b.fetch(bundle)
    (post,) = b.timeline()
    result = CliRunner().invoke(cli_main, ["-C", str(b.root), "reply", post.short_id,
                                           "--text", "A <b>bold</b> reply."])
    assert result.exit_code == 0, result.output
    b.build()
    a.fetch(bundle)
    a.build()
    c.fetch(bundle)
    yield c
    for p in (a, b, c):
        p.server.stop()


def test_the_desk_shows_the_thread_and_its_forms_write_a_reply_and_a_reaction(thread):
    """GET /post/ID shows Bob's reply as text (never as HTML); the reply form writes a
    reply post in content/replies/ answering Ada's post; the react form keeps Cyd's
    reaction for the next build."""
    c = thread
    app = make_app(c.root)
    client = Client(app)
    client.sign_in(passphrase="test passphrase")
    (post,) = c.timeline()
    page = client.get(f"/post/{post.short_id}").body.decode()
    assert 'id="replies"' in page and "A &lt;b&gt;bold&lt;/b&gt; reply." in page
    assert client.post(f"/post/{post.short_id}/reply", {"text": "Mine too."}).status == 303
    (written,) = (c.root / "content" / "replies").glob("*.md")
    text = written.read_text()
    assert "reply_to: o2m:" in text and "audience: [ada]" in text and "Mine too." in text
    client.post(f"/post/{post.short_id}/react", {"choice": "🎉", "back": "/"})
    reactions = json.loads((c.root / ".o2m" / "reactions.json").read_text())["reactions"]
    assert [r["emoji"] for r in reactions.values()] == ["🎉"]
    app.reader.close()
    app.desk.close()


def test_the_author_reaches_the_thread_of_their_own_post_on_the_desk(garden):
    """On Ada's desk: her post's page (at the id her notification names, which links to
    it) shows Bob's reply and reaction; Bob's reply says what it answers, by title and
    author, linked to that page, never as a raw reference; her Posts page leads to the
    thread with what is in it; the timeline says what the reply answers."""
    g = garden
    app = make_app(g.ada.root)
    client = Client(app)
    client.sign_in(passphrase="test passphrase")
    try:
        notes = client.get("/notifications").body.decode()
        assert f'<a href="/post/{g.post}">{g.post}</a>' in notes
        page = client.get(f"/post/{g.post}")
        assert page.status == 200
        body = page.body.decode()
        assert "Garden update" in body and "The tomatoes are in." in body
        assert 'id="replies"' in body and "Lovely tomatoes!" in body
        assert f'id="r-{g.reply}"' in body and "👍 1" in body
        assert 'id="edit"' in body
        reply = client.get(f"/post/{g.reply}").body.decode()
        assert f'In reply to <a href="/post/{g.post}">“<bdi>Garden update</bdi>”</a> by ' \
               "<bdi>you</bdi>" in reply
        assert "o2m:" not in reply
        home = client.get("/").body.decode()
        assert f'<a href="/post/{g.post}">“<bdi>Garden update</bdi>”</a>' in home
        posts = client.get("/posts").body.decode()
        assert f'<a class="thread-link" href="/post/{g.post}">💬 1  👍 1</a>' in posts
        assert client.get("/post/zzzzzzzzzz").status == 404
    finally:
        app.reader.close()
        app.desk.close()


def test_a_reply_known_through_a_thread_leads_to_its_place_in_it(garden):
    """On Bob's desk, after Ada's build links his reply: his reply is his own post (its
    page says it answers Ada's "Garden update", linked); Ada's post shows it in its
    thread under an anchor a link can point at."""
    g = garden
    g.ada.build()
    g.bob.fetch(g.bundle)
    app = make_app(g.bob.root)
    client = Client(app)
    client.sign_in(passphrase="test passphrase")
    try:
        own = client.get(f"/post/{g.reply}").body.decode()
        assert "Lovely tomatoes!" in own
        assert f'In reply to <a href="/post/{g.post}">“<bdi>Garden update</bdi>”</a> by ' \
               "<bdi>ada</bdi>" in own
        thread = client.get(f"/post/{g.post}").body.decode()
        assert f'id="r-{g.reply}"' in thread
    finally:
        app.reader.close()
        app.desk.close()


def test_the_id_of_a_reply_read_through_a_thread_leads_to_its_place_there(thread):
    """Cyd reads Bob's reply (Bob is no friend of hers) only in Ada's thread: /post/ID of
    the reply leads to Ada's post, at the reply's anchor."""
    from o2m_pub.reader import thread_store
    from o2m_pub.reader.store import ReaderStore

    c = thread
    (post,) = c.timeline()
    with ReaderStore.open(c.root) as store:
        key = {n: k for k, n in thread_store.friend_names(store.db).items()}["ada"]
        (reply,), _ = thread_store.thread(store.db, f"o2m:{key}/{post.id}")
    app = make_app(c.root)
    client = Client(app)
    client.sign_in(passphrase="test passphrase")
    try:
        answer = client.get(f"/post/{reply.short_id}")
        assert answer.status == 303
        assert answer.headers["Location"].endswith(f"/post/{post.short_id}#r-{reply.short_id}")
    finally:
        app.reader.close()
        app.desk.close()


def test_the_author_continues_their_own_thread_on_the_desk(garden):
    """On Ada's desk, her own post's page has a reply form: it writes a reply to her
    post (to its audience, `friends`), which the page then shows in the thread under
    the post beside Bob's, as "you"; a reply Ada hid stays on her page, marked hidden
    with how to bring it back. After her build, Bob's fetch puts her reply in the thread
    on his desk."""
    from click.testing import CliRunner

    from o2m_pub.cli import main as cli_main
    g = garden
    app = make_app(g.ada.root)
    client = Client(app)
    client.sign_in(passphrase="test passphrase")
    try:
        page = client.get(f"/post/{g.post}").body.decode()
        assert 'id="reply-text"' in page and f'action="/post/{g.post}/reply"' in page
        g.wait_past_bobs_reply()
        answer = client.post(f"/post/{g.post}/reply", {"text": "The basil is in too."})
        assert answer.status == 303
        (written,) = (g.ada.root / "content" / "replies").glob("*.md")
        text = written.read_text()
        assert "reply_to: o2m:" in text and "audience: [friends]" in text
        page = client.get(f"/post/{g.post}").body.decode()
        replies = page[page.index('id="replies"'):]
        assert replies.index("Lovely tomatoes!") < replies.index("The basil is in too.")
        assert "<bdi>you</bdi>" in replies and "hidden by you" not in page
        result = CliRunner().invoke(cli_main, ["-C", str(g.ada.root), "thread", "hide",
                                               g.reply])
        assert result.exit_code == 0, result.output
        page = client.get(f"/post/{g.post}").body.decode()
        item = page[page.index(f'id="r-{g.reply}"'):]
        item = item[:item.index("</li>")]
        assert "hidden by you" in item and f"o2m thread unhide {g.reply}" in item
        assert "Lovely tomatoes!" in item
        assert client.post("/post/zzzzzzzzzz/reply", {"text": "x"}).status == 404
    finally:
        app.reader.close()
        app.desk.close()
    g.ada.build()
    assert g.bob.fetch(g.bundle)["ada"].ok
    app = make_app(g.bob.root)
    client = Client(app)
    client.sign_in(passphrase="test passphrase")
    try:
        page = client.get(f"/post/{g.post}").body.decode()
        replies = page[page.index('id="replies"'):]
        assert "The basil is in too." in replies and "<bdi>ada</bdi>" in replies
    finally:
        app.reader.close()
        app.desk.close()
