"""The public site as third-party clients read it (clients review, 2026-12): feed
readers (feedparser), Webmention receivers (mf2py and mf2util's authorship rules),
crawlers (robots.txt, meta descriptions). Each test reads the built files with the
same tool the review used."""

from __future__ import annotations

import json
import re

import feedparser
import mf2py
import mf2util
import pytest

from o2m_pub.host.static_rules import PAGE_CSP

SITE_URL = "https://test.example/"
BODY = """\
## First part

A table of the days:

| Day | Distance |
|:----|---------:|
| Mon | 12 km |
| Tue | 9 km |

Some code:

```python
def run(steps):
    for name, minutes in steps:
        print(name, minutes)
```

A claim[^src] and [a link to the second part](#second-part).

## Second part

More.

[^src]: Where it comes from.
"""


@pytest.fixture
def built(site):
    """A site with a long post (headings, a table, code, a footnote), a note, a reply
    and posts in two years, built."""
    site.post("2025/old.md", title="Last year", date="2025-06-01", body="Old news.")
    site.post("2026/trip.md", title="The trip", date="2026-03-01", body=BODY)
    site.post("2026/note.md", title=None, date="2026-03-02", body="Just a note.")
    site.post("2026/reply.md", title="\"Re: lunch\"", date="2026-03-03", body="Yes!",
              reply_to="https://bob.example/2026/lunch/")
    site.o2m("build")
    return site


def _parse(site, rel: str, url: str) -> dict:
    return mf2py.parse(doc=site.read(rel), url=url)


def test_feed_content_has_absolute_fragment_links_and_no_pilcrows(built):
    """feedparser resolves a "#x" link against the feed (…/atom.xml#x, a broken link)
    and shows the headings' ¶ permalinks as text: feed content names the post's URL
    and has no ¶ (clients review fix 1)."""
    post_url = SITE_URL + "2026/trip/"
    feed = feedparser.parse(built.read("atom.xml"), response_headers={
        "content-location": SITE_URL + "atom.xml", "content-type": "application/atom+xml"})
    assert not feed.bozo
    (entry,) = [e for e in feed.entries if e.link == post_url]
    html = entry.content[0].value
    assert "¶" not in html and "headerlink" not in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    fragments = [h for h in hrefs if "#" in h]
    assert fragments and all(h.startswith(post_url + "#") for h in fragments), fragments
    assert "atom.xml#" not in html
    assert '<td align="right">12 km</td>' in html  # a reader has no align-right class
    items = json.loads(built.read("feed.json"))["items"]
    (item,) = [i for i in items if i["url"] == post_url]
    assert "¶" not in item["content_html"]
    assert f'href="{post_url}#second-part"' in item["content_html"]
    assert f'href="{post_url}#fn:src"' in item["content_html"]


def test_the_json_feed_names_an_icon_the_build_has(built):
    """JSON Feed's icon and favicon point to the theme's favicon, which is built."""
    doc = json.loads(built.read("feed.json"))
    assert doc["icon"] == doc["favicon"] == SITE_URL + "static/favicon.svg"
    assert built.read("static/favicon.svg").startswith("<svg")


def test_every_page_has_a_meta_description_and_a_favicon(built):
    """No page without a meta description (Lighthouse meta-description; the site's
    description is empty here, so one is made of the author's name) and every page
    names the favicon (no 404 for /favicon.ico in the console)."""
    pages = sorted(p for p in built.build_dir.rglob("*.html"))
    assert len(pages) > 8
    for page in pages:
        html = page.read_text()
        m = re.search(r'<meta name="description" content="([^"]+)">', html)
        assert m, page
        assert re.search(r'<link rel="icon" type="image/svg\+xml" href="[^"]*favicon\.svg\?v=',
                         html), page
    assert '<meta name="description" content="Notes by Tess">' in built.read("index.html")


def test_robots_txt_names_the_sitemap_and_the_csp_lets_tools_fetch_it(built):
    """robots.txt is a build output naming the sitemap; the page CSP has connect-src
    'self', so a tool inside the page (Lighthouse) can read it (clients review fix 9)."""
    robots = built.read("robots.txt")
    assert f"Sitemap: {SITE_URL}sitemap.xml" in robots.splitlines()
    assert "User-agent: *" in robots and "Disallow: /f/" in robots
    assert "connect-src 'self'" in PAGE_CSP


def test_table_alignment_is_a_class_the_theme_styles(built):
    """`|---:|` becomes class="align-right" (no obsolete align=, no inline style), and
    the theme's CSS right-aligns it (clients review fix 4)."""
    page = built.read("2026/trip/index.html")
    assert '<td class="align-right">12 km</td>' in page and "align=" not in page
    css = built.read("static/style.css")
    assert "td.align-right { text-align: right; }" in css
    assert "display: block" not in css.split("/* Tables")[1].split("/*")[0]


def test_every_h_entry_has_an_author_and_its_canonical_url(built):
    """mf2util's authorship algorithm finds the author of each post, and the h-entry's
    u-url is the pretty permalink, the one rel=canonical names (not …/index.html)."""
    for rel, path in (("2026/trip/index.html", "2026/trip/"), ("2026/note/index.html",
                                                                  "2026/note/")):
        parsed = _parse(built, rel, SITE_URL + path)
        (entry,) = [i for i in parsed["items"] if "h-entry" in i["type"]]
        assert entry["properties"]["url"] == [SITE_URL + path]
        assert parsed["rels"]["canonical"] == [SITE_URL + path]
        author = mf2util.find_author(parsed, SITE_URL + path)
        assert author == {"name": "Tess", "url": SITE_URL}, author


def test_a_reply_reads_as_a_reply_by_its_author(built):
    """A Webmention receiver's view of a reply (mf2util.interpret_comment): a reply,
    its URL the canonical one, and an author (was: None)."""
    url = SITE_URL + "2026/reply/"
    parsed = _parse(built, "2026/reply/index.html", url)
    comment = mf2util.interpret_comment(parsed, url, ["https://bob.example/2026/lunch/"])
    assert comment["comment_type"] == ["reply"]
    assert comment["url"] == url
    assert comment["author"]["name"] == "Tess" and comment["author"]["url"] == SITE_URL


def test_the_home_page_is_an_h_feed_with_a_name_an_author_and_a_representative_card(built):
    """The home page's h-feed has a name and an author; its h-entries have authors and
    canonical URLs; the footer's h-card is the site's representative h-card (url and
    uid are the site's address, also rel=me)."""
    parsed = _parse(built, "index.html", SITE_URL)
    (feed,) = [i for i in parsed["items"] if "h-feed" in i["type"]]
    assert feed["properties"]["name"] == ["Test site"]
    assert feed["properties"]["author"][0]["properties"]["name"] == ["Tess"]
    urls = {c["properties"]["url"][0] for c in feed["children"]}
    assert urls == {SITE_URL + p for p in ("2026/trip/", "2026/note/", "2026/reply/")}
    for child in feed["children"]:
        assert mf2util.find_author(parsed, SITE_URL, hentry=child)["name"] == "Tess"
    card = mf2util.representative_hcard(parsed, SITE_URL)
    assert card is not None and card["properties"]["name"] == ["Tess"]
    assert card["properties"]["uid"] == [SITE_URL]
    assert SITE_URL in parsed["rels"]["me"]
    # a post page's representative card too: its url is a rel=me of the page
    post = _parse(built, "2026/trip/index.html", SITE_URL + "2026/trip/")
    assert mf2util.representative_hcard(post, SITE_URL + "2026/trip/")["properties"][
        "name"] == ["Tess"]


def test_the_archive_lists_the_posts_under_each_year(built):
    """The archive page lists each year's posts, not only "2026 — 3 posts" (newcomer
    review, point 20)."""
    page = built.read("archive/index.html")
    years = re.findall(r'<h2 id="year-(\d{4})">', page)
    assert years == ["2026", "2025"]
    part_2026, part_2025 = page.split('id="year-2026"')[1].split('id="year-2025"')
    assert 'href="../2026/trip/index.html"' in part_2026
    assert 'href="../2026/reply/index.html"' in part_2026
    assert 'href="../2025/old/index.html"' in part_2025 and "Last year" in part_2025


def test_code_blocks_and_tables_are_reachable_from_the_keyboard(built):
    """The built post: <pre> takes the focus, the table is in a labelled focusable
    region (clients review fix 5), and footnote back-links are underlined (fix 6)."""
    page = built.read("2026/trip/index.html")
    assert '<pre tabindex="0">' in page
    assert ('<div aria-label="Table: Day, Distance" class="table-wrap" role="region" '
            'tabindex="0"><table>') in page
    css = built.read("static/style.css")
    assert re.search(r"\.footnote-backref \{ text-decoration: underline;", css)


def test_the_authors_picture_and_bio_from_the_card_are_on_every_page(tmp_path):
    """The profile (issue 14): the picture and bio the card carries, set by the desk's
    profile page or `o2m card --renew --avatar F --bio T`, are on the public site too,
    in the footer's representative h-card (u-photo, p-note); a new bio renews the pages."""
    from PIL import Image

    from conftest import run_o2m

    root, url = tmp_path / "ada", "https://ada.example/"
    made = run_o2m("init", str(root), "--name", "Ada", "--url", url, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    picture = tmp_path / "me.png"
    Image.new("RGB", (64, 64), "teal").save(picture)
    renewed = run_o2m("card", "--renew", "--avatar", str(picture), "--bio", "Bread and bikes.",
                      cwd=root)
    assert renewed.returncode == 0, renewed.stderr
    assert run_o2m("build", cwd=root).returncode == 0
    for page in ("index.html", "archive/index.html"):
        parsed = mf2py.parse(doc=(root / "build" / page).read_text(), url=url + page)
        card = mf2util.representative_hcard(parsed, url + page)
        assert card["properties"]["note"] == ["Bread and bikes."]
        photo = card["properties"]["photo"][0]
        photo = photo["value"] if isinstance(photo, dict) else photo
        assert photo.startswith(url + "media/")
        assert (root / "build" / photo[len(url):]).read_bytes() == picture.read_bytes()
    assert run_o2m("card", "--renew", "--bio", "Bikes.", cwd=root).returncode == 0
    assert run_o2m("build", cwd=root).returncode == 0
    page = (root / "build/archive/index.html").read_text()
    assert "Bikes." in page and "Bread and bikes." not in page
