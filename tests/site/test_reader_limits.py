"""What o2m publishes, its own reader takes (audit of PROTOCOL.md §1.4 and §3.3 against
the writer): a post whose title, summary or tags pass §3.3's limits is bad input, one
line naming file and line, that post alone failing and its last good version kept; and
feed.json is fitted to §1.4's caps (4 MiB, 1,000 items, 1 MiB of HTML an item), with a
warning for each change, instead of being refused whole by every reader."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from conftest import run_o2m
from support.friend import Friend
from support.sites import add_friends, new_site

from o2m_pub.config import parse_config
from o2m_pub.errors import PostError
from o2m_pub.protocol.canonical import canonical_json
from o2m_pub.protocol.post_limits import MAX_CONTENT_HTML, MAX_PUBLIC_FEED_BYTES
from o2m_pub.reader.fetch_plan import parse_post, parse_public_feed
from o2m_pub.site import syndication
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
    root = new_site(tmp_path)
    bob = Friend(1, "bob")
    add_friends(root, {"bob": bob})
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


BIG = ("word " * 200 + "\n\n") * 900  # about 900 kB of HTML


def test_a_feed_past_4_mib_leaves_out_its_oldest_posts_with_a_warning(site):
    """Audit t8: `feed_items` up to 1,000 full posts made a feed.json over the 4 MiB
    every reader takes, and they refused all of it. Now the oldest posts are left out
    until it fits, the build says which, they stay on the site, and atom.xml carries
    the same entries."""
    for i in range(6):
        site.post(f"2026/m{i}.md", title=f"M{i}", date=f"2026-03-0{i + 1}", body=BIG)
    result = run_o2m("build", cwd=site.root)
    assert 0 == result.returncode, result.stderr
    assert ("o2m: warning: feed.json: its 6 newest public posts would pass the 4,194,304 "
            "bytes a feed reader takes (PROTOCOL.md §1.4): it and atom.xml leave out the 2 "
            "oldest (content/2026/m1.md, content/2026/m0.md), which stay on the site"
            ) in result.stderr
    data = (site.build_dir / "feed.json").read_bytes()
    assert len(data) <= MAX_PUBLIC_FEED_BYTES
    rows = parse_public_feed(data, "https://test.example/")
    assert ["M5", "M4", "M3", "M2"] == [r.title for r in rows]
    atom = site.read("atom.xml")
    assert ["M5", "M4", "M3", "M2"] == re.findall(r'<title type="text">([^<]*)</title>', atom)
    assert "M0" in site.read("2026/m0/index.html")


def test_a_post_too_long_for_a_feed_gives_its_summary_and_a_link(site):
    """A post whose HTML passes the 1,048,576 characters a reader takes of an item is
    still in the feeds, so their readers learn of it: its summary and a link to its page
    instead of its text, with a warning that names it."""
    site.post("2026/long.md", title="Long", summary="All about it.", body=BIG * 2)
    site.post("2026/short.md", title="Short", date="2026-03-02")
    result = run_o2m("build", cwd=site.root)
    assert 0 == result.returncode, result.stderr
    assert re.search(r"o2m: warning: content/2026/long\.md: its HTML has [\d,]+ characters, "
                     r"more than the 1,048,576 a feed reader takes \(PROTOCOL\.md §1\.4\): "
                     r"feed\.json and atom\.xml give its summary and a link to its page "
                     r"instead of its text", result.stderr), result.stderr
    feed = json.loads(site.read("feed.json"))
    long = next(i for i in feed["items"] if i["title"] == "Long")
    assert ('<p>All about it.</p>\n<p><a href="https://test.example/2026/long/">Read it on '
            'the site</a></p>') == long["content_html"]
    assert "<p>Hello.</p>" == next(i for i in feed["items"] if i["title"] == "Short")[
        "content_html"]
    assert 2 == len(parse_public_feed(site.read("feed.json").encode(), "https://test.example/"))
    assert "Read it on the site" in site.read("atom.xml")


class _Record:
    """What the feeds read of a post (a stand-in for the site's PostRecord)."""

    def __init__(self, n: int) -> None:
        self.source, self.title, self.summary = f"content/p{n}.md", f"P{n}", f"S{n}"
        self.date, self.updated = "2026-03-01T10:00:00+00:00", None
        self.tags, self.reply_to = (), None


CONFIG = parse_config(b'[site]\nname = "T"\nauthor = "T"\nurl = "https://test.example/"\n')


def fit(*htmls: str) -> syndication.FittedFeeds:
    """Feeds of posts with these HTML texts, the newest first."""
    return syndication.fit_feeds(CONFIG, [
        syndication.FeedEntry(_Record(n), f"https://test.example/2026/p{n}/",  # type: ignore[arg-type]
                              html) for n, html in enumerate(htmls)])


def test_a_feed_within_the_caps_is_left_as_it_is():
    """Content of exactly 1,048,576 characters is within the cap: no change, no warning."""
    html = "<p>" + "x" * (MAX_CONTENT_HTML - 7) + "</p>"
    fitted = fit(html, "<p>b</p>")
    assert ([], 2) == (fitted.warnings, len(fitted.entries))
    assert [html, "<p>b</p>"] == [i["content_html"] for i in json.loads(fitted.json)["items"]]


def test_one_character_more_and_the_post_gives_a_link():
    """One character over the cap: its summary and a link, and a warning."""
    fitted = fit("<p>" + "x" * (MAX_CONTENT_HTML - 6) + "</p>")
    [item] = json.loads(fitted.json)["items"]
    assert ('<p>S0</p>\n<p><a href="https://test.example/2026/p0/">Read it on the site</a>'
            '</p>') == item["content_html"]
    assert ["content/p0.md: its HTML has 1,048,577 characters, more than the 1,048,576 a "
            "feed reader takes (PROTOCOL.md §1.4): feed.json and atom.xml give its summary "
            "and a link to its page instead of its text"] == fitted.warnings


def test_a_newest_post_too_big_for_feed_json_alone_still_goes_as_a_link():
    """1,048,576 characters of four bytes each are within the characters' cap but not
    within 4 MiB: the newest post is never left out, it goes as a link, and the feed
    holds the posts that then fit."""
    fitted = fit("<p>" + "\U0001f600" * (MAX_CONTENT_HTML - 7) + "</p>", "<p>b</p>")
    assert len(fitted.json) <= MAX_PUBLIC_FEED_BYTES
    assert [True, False] == ["Read it on the site" in i["content_html"]
                             for i in json.loads(fitted.json)["items"]]
    assert [("content/p0.md: it alone passes the 4,194,304 bytes of feed.json (PROTOCOL.md "
             "§1.4): feed.json and atom.xml give its summary and a link to its page instead "
             "of its text")] == fitted.warnings


def test_a_feed_has_at_most_1000_items():
    """§1.4: a reader takes 1,000 items (`feed_items` is at most that too)."""
    assert 1000 == len(json.loads(fit(*["<p>x</p>"] * 1001).json)["items"])
