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
