"""What o2m publishes, its own reader takes (audit of PROTOCOL.md §1.4 and §3.3 against
the writer): a post whose title, summary or tags pass §3.3's limits is bad input, one
line naming file and line, that post alone failing and its last good version kept."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import run_o2m
from support.friend import Friend

from o2m_pub.errors import PostError
from o2m_pub.protocol.canonical import canonical_json
from o2m_pub.protocol.cards import card_to_text
from o2m_pub.reader.fetch_plan import parse_post, parse_public_feed
from o2m_pub.site.content import parse_post as parse_source

TZ = dt.timezone.utc


def source(front: str) -> bytes:
    return f"---\ndate: 2026-03-01\n{front}---\nBody.\n".encode()


def parse(front: str):  # noqa: ANN201 - a PostSource
    return parse_source(source(front), "content/trip.md", tz=TZ, default_audience=("public",))


@pytest.mark.parametrize(("front", "line", "words"), [
    ("title: " + "x" * 4097 + "\n", 3, "`title` has 4,097 characters; a reader takes at most "
                                      "4,096"),
    ("summary: " + "\U0001f600" * 4097 + "\n", 3, "`summary` has 4,097 characters; a reader "
                                                  "takes at most 4,096"),
    ("tags: [" + ", ".join(f"t{i}" for i in range(65)) + "]\n", 3,
     "`tags` has 65 tags; a reader takes at most 64"),
    ("title: T\ntags:\n  - ok\n  - " + "x" * 129 + "\n", 4,
     "the tag 'xxxxxxxxxxxxxxxxxxxx…' has 129 characters; a reader takes 1 to 128"),
])
def test_a_field_past_a_readers_limit_is_bad_input_at_its_line(front, line, words):
    """§3.3 (and §1.4 for a public post's title and summary): one line naming the field's
    line, what is wrong and by how much, and a hint."""
    with pytest.raises(PostError) as caught:
        parse(front)
    problem = caught.value.problem
    assert (f"content/trip.md:{line}", words) == (f"{problem.path}:{problem.line}",
                                                  problem.message)
    assert problem.hint


def test_every_field_at_its_limit_is_taken():
    """4,096 code points of title and summary (emoji count one each), 64 tags of 128;
    a tag written twice counts once, as it is published once."""
    post = parse("title: " + "\U0001f600" * 4096 + "\nsummary: " + "s" * 4096 + "\ntags: ["
                 + ", ".join(f"{i:03d}" + "t" * 125 for i in range(64)) + ", 000"
                 + "t" * 125 + "]\n")
    assert (4096, 4096, 64) == (len(post.title), len(post.summary), len(post.tags))


@pytest.fixture
def ada(tmp_path):
    """Ada's site with keys and one friend, Bob: her friends-only posts are sealed."""
    root = tmp_path / "ada"
    assert run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/",
                   cwd=tmp_path).returncode == 0
    for p in (root / "content").rglob("*.md"):
        p.unlink()
    bob = Friend(1, "bob")
    assert run_o2m("friend", "add", "bob", card_to_text(bob.card), "--yes",
                   cwd=root).returncode == 0
    from o2m_pub.friends.identity import own_card
    return root, bob, own_card(root)


def write(root, name: str, front: str, body: str = "Body.") -> None:
    (root / "content/2026").mkdir(parents=True, exist_ok=True)
    (root / "content/2026" / name).write_text(f"---\ndate: 2026-11-20\n{front}---\n{body}\n")


@pytest.mark.parametrize(("bad", "line", "words"), [
    ("tags: [" + ", ".join(f"t{i}" for i in range(65)) + "]\n", 4, "`tags` has 65 tags"),
    ("title: " + "x" * 5000 + "\n", 3, "`title` has 5,000 characters"),
])
def test_a_friends_only_post_past_the_limits_fails_alone_and_friends_keep_its_last_version(
        ada, bad, line, words):
    """Audit t5: a friends-only post with 65 tags or a 5,000-character title was sealed
    and published, and every friend's reader refused it, with no word to the author.
    Now the build names its file and line and exits 1; Bob still reads the post's last
    good version, and the other posts (a new one too) reach him, each a post his reader
    takes."""
    root, bob, card = ada
    write(root, "trip.md", "title: Trip v1\naudience: friends\n")
    assert run_o2m("build", cwd=root).returncode == 0
    front = bad if bad.startswith("title:") else "title: Trip v2\n" + bad
    write(root, "trip.md", front + "audience: friends\n")
    write(root, "new.md", "title: New\naudience: friends\n")
    result = run_o2m("build", cwd=root)
    assert 1 == result.returncode
    assert "Traceback" not in result.stderr
    assert f"o2m: error: content/2026/trip.md:{line}: {words}" in result.stderr
    assert "hint: shorten the" in result.stderr or "hint: keep a post's tags" in result.stderr
    posts = bob.read_feed(root / "build", card)
    assert {"Trip v1", "New"} == {p["title"] for p in posts.values()}
    for post in posts.values():  # each one as o2m's reader checks it
        parse_post(canonical_json(post))


def test_a_public_post_with_a_title_too_long_fails_alone_and_feed_json_stays_readable(site):
    """A public post's title is in feed.json, where a 4,097-character one made every
    reader refuse the whole feed (all of the site's public posts): the post fails as bad
    input, its last good page stays, and the feed keeps its last good title."""
    site.post("2026/trip.md", title="Trip v1")
    site.post("2026/other.md", title="Other", date="2026-03-02")
    assert run_o2m("build", cwd=site.root).returncode == 0
    site.post("2026/trip.md", title="v2 " + "x" * 5000)
    result = run_o2m("build", cwd=site.root)
    assert 1 == result.returncode
    assert ("o2m: error: content/2026/trip.md:2: `title` has 5,003 characters; a reader "
            "takes at most 4,096") in result.stderr
    assert "Trip v1" in site.read("2026/trip/index.html")
    rows = parse_public_feed((site.build_dir / "feed.json").read_bytes(), "https://test.example/")
    assert {"Trip v1", "Other"} == {r.title for r in rows}

