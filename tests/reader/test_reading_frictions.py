"""Reading friends' posts as the new user's trial did (newcomer review, frictions 9 and
17): `o2m show` in a terminal, and a friend whose host is down."""

from __future__ import annotations

import pytest
from conftest import run_o2m
from support.people import Person, server_context

from o2m_pub.reader.model import FriendUpdate, PostRow, short_id_for
from o2m_pub.reader.store import ReaderStore
from o2m_pub.site.markup import MarkdownRenderer

AUTHOR = "A" * 43
POST = """\
A tiny script:

```python
def run(steps):
    for name, minutes in steps:
        print(name, minutes)
```

| Step | Minutes |
|:-----|--------:|
| Mix | 10 |
| Rest | 45 |

![the hill at dawn](hill.png)

It is **23rd** today.
"""


@pytest.fixture
def stored(site):
    """Bob's store with Ada's public post (HTML, as her feed.json carries it) and a
    friends-only post (Markdown), both with code, a table and an image."""
    html = MarkdownRenderer().render(POST, "content/2026/s.md").html
    with ReaderStore.open(site.root) as store:
        store.apply_update(FriendUpdate("ada", AUTHOR, upserts=[
            PostRow(id="pub", audience="public", date="2026-11-01T10:00:00Z",
                    title="A tiny script", html=html, url="https://ada.example/2026/s/"),
            PostRow(id="priv", audience="private", date="2026-11-02T10:00:00Z",
                    title="For friends", markdown=POST)]))
    return site, {name: short_id_for(AUTHOR, name) for name in ("pub", "priv")}


@pytest.mark.parametrize("kind", ["pub", "priv"])
def test_show_renders_code_tables_and_images_readably(stored, kind):
    """Public (HTML) and friends-only (Markdown) posts alike: code keeps its
    indentation, a table row stays on one line, an image is "[image: ALT]", and no
    Markdown punctuation shows (was: code flush left, a cell per line, the image gone,
    and raw Markdown for the private post)."""
    site, ids = stored
    result = run_o2m("show", ids[kind], cwd=site.root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip() == "def run(steps):" for line in lines)
    code = next(line for line in lines if "for name, minutes in steps:" in line)
    body = next(line for line in lines if "print(name, minutes)" in line)
    indent = code.index("for")
    assert body.index("print") == indent + 4 and indent >= code.index("for") > 0
    assert any("Mix" in line and "10" in line for line in lines)
    assert any("Rest" in line and "45" in line for line in lines)
    assert "[image: the hill at dawn]" in result.stdout
    assert "**" not in result.stdout and "![" not in result.stdout
    assert "23rd" in result.stdout


def test_show_source_prints_the_markdown_as_written(stored):
    """--source keeps the raw Markdown."""
    site, ids = stored
    result = run_o2m("show", "--source", ids["priv"], cwd=site.root)
    assert result.returncode == 0
    assert "**23rd**" in result.stdout and "![the hill at dawn](hill.png)" in result.stdout


def test_an_unreachable_friend_is_a_notification_at_the_first_failed_fetch(tmp_path, ca):
    """Ada's host goes down: Bob's next `o2m fetch` says "unreachable: connection
    refused" (not "refused: unreachable: [Errno 111] …"), and `o2m notifications` shows
    it at once (was: only after a day), once for the whole outage."""
    authority, bundle = ca
    context = server_context(authority)
    ada, bob = Person(tmp_path, "ada", context), Person(tmp_path, "bob", context)
    ada.befriend(bob)
    bob.befriend(ada)
    ada.post("a", "Hello", "friends")
    ada.build()
    assert bob.fetch(bundle)["ada"].new == 1
    ada.server.stop()
    bob.server.stop()
    env = {"O2M_CA_BUNDLE": bundle}
    fetched = run_o2m("fetch", "--timeout", "5", cwd=bob.root, env=env)
    assert fetched.returncode == 1
    assert fetched.stdout.split() == ["ada", "unreachable:", "connection", "refused"]
    notes = run_o2m("notifications", cwd=bob.root).stdout
    assert "a fetch of ada failed: connection refused (the next o2m fetch tries again" \
        in notes
    assert run_o2m("fetch", "--timeout", "5", cwd=bob.root, env=env).returncode == 1
    assert run_o2m("notifications", "--all", cwd=bob.root).stdout.count("a fetch of ada") == 1
