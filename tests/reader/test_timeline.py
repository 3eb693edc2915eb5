"""`o2m timeline`, `o2m show`, `o2m notifications` (and `o2m reader`'s refusals) on a
real store.

The store is filled through its own write API (`ReaderStore.apply_update`, the call
`o2m fetch` makes for each accepted feed), in a real site folder, and the commands run
through the real CLI.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pytest
from support.data import BOB_PK, PNG
from support.people import PASS, Person, server_context  # noqa: F401

from o2m_pub.reader.model import AcceptedHead, FeedStateChange, FriendUpdate, PostRow
from o2m_pub.reader.store import ReaderStore

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)
ALICE_PK = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
# A 1x1 PNG: a real image for the browser to decode.
PNG_HASH = "ab" * 32
DOC_HASH = "cd" * 32

# (friend, id, title, markdown, date, tags, attachments)
POSTS = [
    ("alice", "a1", "Ridge walk", "We left at *dawn*.\n\n![the ridge](ridge.png)",
     "2026-11-20T08:00:00Z", ("hiking",),
     ({"name": "ridge.png", "media_type": "image/png", "hash": PNG_HASH, "size": len(PNG)},
      {"name": "notes.pdf", "media_type": "application/pdf", "hash": DOC_HASH, "size": 5})),
    ("alice", "a2", None, "A note about [bread](https://bread.example/) and *butter*.",
     "2026-11-22T09:30:00Z", ("food",), ()),
    ("bob", "b1", "Hello from Bob", "Bob's first post.", "2026-11-21T18:00:00Z", (), ()),
    ("bob", "b2", "Hostile", "Hi <script>window.__pwned = 1; document.title = 'pwned'"
     "</script><img src=x onerror=\"window.__pwned=2\"> [js](javascript:window.__pwned=3)"
     "\n\n![tracker](http://127.0.0.1:9/pixel.png)", "2026-11-23T10:00:00Z", ("food",), ()),
]


def fill(store: ReaderStore, posts=POSTS) -> None:
    """Store posts as `o2m fetch` does: one update per friend (their attachment bytes
    cached by hash first, as the store's write order says)."""
    store.attachments.save(PNG_HASH, PNG)
    store.attachments.save(DOC_HASH, b"%PDF-")
    for friend, pk in (("alice", ALICE_PK), ("bob", BOB_PK)):
        rows = [PostRow(id=pid, audience="private", date=date, title=title, markdown=md,
                        tags=tags, attachments=atts, object_hash="ef" * 32)
                for f, pid, title, md, date, tags, atts in posts if f == friend]
        store.apply_update(FriendUpdate(friend=friend, sign_pk=pk, state=FeedStateChange(
            "2026-11-30T11:00:00Z", head=AcceptedHead(3, b"head 3"),
            first_seen="2026-11-01T00:00:00Z"), upserts=rows), now=NOW)


@pytest.fixture
def reader_store(site):
    """A site whose reader's store holds POSTS (alice and bob) and two notifications."""
    with ReaderStore.open(site.root) as store:
        fill(store)
        store.add_notification("new_friend_feed", "bob", now=NOW)
        store.add_notification("key_changed", "alice", now=NOW)
    return site


def short_ids(site) -> dict[str, str]:
    """Post id -> short id."""
    with ReaderStore.open(site.root) as store:
        return dict(store.db.execute("SELECT id, short_id FROM posts"))


def lines(result) -> list[str]:
    return result.stdout.splitlines()


def test_timeline_lists_every_post_newest_first_with_unread_marks(reader_store):
    """Without a terminal: one plain line per post: mark, id, local date, friend, title
    or the start of the text (the site's zone is Europe/Berlin)."""
    ids = short_ids(reader_store)
    result = reader_store.o2m("timeline")
    assert lines(result) == [
        f"* {ids['b2']}  2026-11-23 11:00  bob  Hostile",
        f"* {ids['a2']}  2026-11-22 10:30  alice  A note about bread and butter.",
        f"* {ids['b1']}  2026-11-21 19:00  bob  Hello from Bob",
        f"* {ids['a1']}  2026-11-20 09:00  alice  Ridge walk",
    ]


def test_timeline_pages_by_limit_before_and_page(reader_store):
    """--limit cuts, --before ID continues after a post, --page N counts pages; the pages
    together are the whole timeline, each post once."""
    ids = short_ids(reader_store)
    first = [line.split()[1] for line in lines(reader_store.o2m("timeline", "--limit", "3"))]
    assert first == [ids["b2"], ids["a2"], ids["b1"]]
    after = reader_store.o2m("timeline", "--limit", "3", "--before", first[-1])
    assert [line.split()[1] for line in lines(after)] == [ids["a1"]]
    assert lines(reader_store.o2m("timeline", "--limit", "3", "--page", "2")) == lines(after)
    assert reader_store.o2m("timeline", "--limit", "2", "--page", "9").stdout == ""


def test_timeline_filters_by_friend_tag_and_since(reader_store):
    """--friend, --tag and --since narrow the timeline; --since takes dates, times in
    the site's zone, and ages."""
    ids = short_ids(reader_store)

    def listed(*args):
        return [line.split()[1] for line in lines(reader_store.o2m("timeline", *args))]

    assert listed("--friend", "alice") == [ids["a2"], ids["a1"]]
    assert listed("--tag", "food") == [ids["b2"], ids["a2"]]
    assert listed("--since", "2026-11-22") == [ids["b2"], ids["a2"]]
    assert listed("--since", "2026-11-22 10:31") == [ids["b2"]]
    assert listed("--friend", "bob", "--tag", "food") == [ids["b2"]]
    assert listed("--since", "1d") == []  # nothing in the day before now


@pytest.mark.parametrize("args, message", [
    (["--since", "last tuesday"], "--since: 'last tuesday' is not a date, a time or an age"),
    (["--friend", "mallory"], "no posts or feed of 'mallory' in the store"),
    (["--before", "zzzzzzzz"], "no post with id 'zzzzzzzz'"),
    (["--before", "abcd", "--page", "2"], "--before, --page: cannot be used together"),
    (["--limit", "0"], "Invalid value for '-n' / '--limit'"),
])
def test_timeline_bad_input_is_one_line(reader_store, args, message):
    """Each bad option: one line, non-zero exit, no traceback, the store untouched."""
    before = short_ids(reader_store)
    result = reader_store.o2m("timeline", *args, ok=False)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert short_ids(reader_store) == before


def test_timeline_of_an_empty_store_says_how_to_fill_it(site):
    """No posts: nothing on stdout, a hint on stderr, exit 0."""
    result = site.o2m("timeline")
    assert result.stdout == ""
    assert "o2m fetch" in result.stderr


def test_show_prints_the_post_lists_attachments_and_marks_it_read(reader_store):
    """`o2m show` prints header, text and attachments (name, type, size, cache path);
    the post is then read, and the timeline drops its mark."""
    ids = short_ids(reader_store)
    result = reader_store.o2m("show", ids["a1"][:6])  # a unique prefix is enough
    text = result.output
    assert text.startswith(f"Ridge walk\nfrom alice, 2026-11-20 09:00  #hiking\nid {ids['a1']}")
    assert "We left at dawn." in text  # rendered, even in a pipe (newcomer review 9)
    assert "We left at *dawn*." in reader_store.o2m("show", "--source", ids["a1"]).output
    cache = reader_store.root / ".o2m" / "objects" / PNG_HASH[:2] / PNG_HASH
    assert f"  ridge.png  image/png  {len(PNG)} bytes  {cache}" in text
    assert "  notes.pdf  application/pdf  5 bytes  " in text
    timeline = reader_store.o2m("timeline", "--friend", "alice").output
    assert f"  {ids['a1']}  " in timeline and f"* {ids['a1']}" not in timeline
    # in a pipe, no line carries the spaces rich pads Markdown to the page's width with
    assert [] == [line for line in text.splitlines() if line != line.rstrip()]


def test_show_of_an_unknown_or_ambiguous_id_is_one_line(reader_store):
    """An unknown id, a too-short prefix: one line with a hint, exit 1."""
    result = reader_store.o2m("show", "nothing9", ok=False)
    assert result.exit_code == 1
    assert "o2m: error: no post with id 'nothing9'" in result.output
    assert "hint:" in result.output


def test_show_neutralises_terminal_escapes_in_a_friends_text(site):
    """THREATS.md 39 in a terminal: a friend's title or text cannot send escape
    sequences (clear the screen, set the window title) or reorder lines."""
    with ReaderStore.open(site.root) as store:
        store.apply_update(FriendUpdate("eve", BOB_PK, upserts=[PostRow(
            id="e1", audience="private", date="2026-11-01T00:00:00Z",
            title="evil\x1b]0;owned\x07\u202etitle", markdown="text\x1b[2J\u2066more")]))
        short = store.db.execute("SELECT short_id FROM posts").fetchone()[0]
    for output in (site.o2m("timeline").output, site.o2m("show", short).output):
        assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
        assert "\u2066" not in output
    assert "evil\ufffd]0;owned\ufffd\ufffdtitle" in site.o2m("show", short).output


def test_show_neutralises_terminal_escapes_in_a_stored_posts_url(site):
    """THREATS.md 39: a stored post's url is the friend's text too (the store does not
    check it), so `o2m show` neutralises an escape sequence or bidi override in it."""
    with ReaderStore.open(site.root) as store:
        store.apply_update(FriendUpdate("eve", BOB_PK, upserts=[PostRow(
            id="e2", audience="public", date="2026-11-01T00:00:00Z", title="Linked",
            markdown="text", url="https://eve.example/\x1b]0;owned\x07\u202elmth.exe")]))
        short = store.db.execute("SELECT short_id FROM posts").fetchone()[0]
    output = site.o2m("show", short).output
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "https://eve.example/\ufffd]0;owned\ufffd\ufffdlmth.exe" in output


def test_notifications_list_then_mark_seen(reader_store):
    """New notifications are listed once; --all shows them again, unmarked."""
    first = lines(reader_store.o2m("notifications"))
    assert first == [
        "* 2026-11-30 13:00  alice's key changed: their posts are not read until you check "
        "their new card with them and accept it (o2m friend add alice CARD "
        "--accept-key-change)",
        "* 2026-11-30 13:00  bob added you back: you can read what they share with you now",
    ]
    again = reader_store.o2m("notifications")
    assert again.stdout == "" and "no new notifications" in again.stderr
    assert [line[1:] for line in lines(reader_store.o2m("notifications", "--all"))] == \
        [line[1:] for line in first]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "::", "example.org"])
def test_reader_refuses_to_listen_beyond_loopback(reader_store, host):
    """Decrypted posts stay on this machine: any non-loopback --host is refused before
    anything is opened (`o2m reader` is now the desk's old name)."""
    result = reader_store.o2m("reader", "--host", host, ok=False)
    assert result.exit_code == 2  # a bad option value: a usage error
    assert "the desk listens on 127.0.0.1 or ::1 only" in result.output


def test_the_store_is_never_under_build(reader_store):
    """The reader's store, with decrypted posts, lives in the private state folder."""
    assert (reader_store.root / ".o2m" / "reader.db").is_file()
    assert not (reader_store.root / "build").exists() or not any(
        p.name.startswith("reader") for p in (reader_store.root / "build").rglob("*"))
    mode = os.stat(reader_store.root / ".o2m" / "reader.db").st_mode & 0o077
    assert mode == 0
    sqlite3.connect(reader_store.root / ".o2m" / "reader.db").close()


def test_after_a_real_fetch_the_timeline_has_exactly_the_posts_for_you(tmp_path, ca):
    """End to end: Ada builds and serves her site over TLS, Bob runs `o2m fetch`; his
    `o2m timeline` shows her public post and the one for her friends, not the one for
    Carol alone, and `o2m notifications` says she added him back."""
    from click.testing import CliRunner

    from o2m_pub.cli import main

    authority, bundle = ca
    context = server_context(authority)
    ada, bob, carol = (Person(tmp_path, name, context) for name in ("ada", "bob", "carol"))
    try:
        ada.befriend(bob)
        bob.befriend(ada)
        ada.befriend(carol)
        ada.post("open", "Open to all", "public", date="2026-11-20")
        ada.post("circle", "For friends", "friends", date="2026-11-21", tags="[cats]")
        ada.post("c", "Just Carol", "carol", date="2026-11-22")
        ada.build()

        def o2m(*args: str) -> list[str]:
            result = CliRunner().invoke(main, ["-C", str(bob.root), *args],
                                        env={"O2M_CA_BUNDLE": bundle}, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.stdout.splitlines()

        o2m("fetch", "-q")
        listed = o2m("timeline")
        assert [line.split("  ")[2:] for line in listed] == [
            ["ada", "For friends"], ["ada", "Open to all"]]
        assert all(line.startswith("* ") for line in listed)
        assert [line.split("  ")[3] for line in o2m("timeline", "--tag", "cats")] == \
            ["For friends"]
        assert any("ada added you back" in line for line in o2m("notifications"))
    finally:
        for p in (ada, bob, carol):
            p.server.stop()
