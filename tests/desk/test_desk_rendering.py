"""Friends' posts in the desk come from the renderings the fetch stored (reader/render.py),
never from a parser run while a page waits (THREATS.md 49): the desk's core over a real
site, a real reader store and the real render worker."""

from __future__ import annotations

import datetime as dt
import threading

from support.desk import text
from support.desk_world import PNG, RIDGE_HASH, store_posts

from o2m_pub.desk import feed
from o2m_pub.protocol.public_media import ListedFile
from o2m_pub.reader.model import PostRow
from o2m_pub.reader.render import render_pending
from o2m_pub.reader.store import ReaderStore

# Python-Markdown needs minutes for each of these, nh3 90 s for the divs, and
# html.parser 83 s for the scripts and the comments (tests/reader/test_render.py).
HOSTILE_MARKDOWN = {"open brackets": "[" * 20_000, "open images": "![" * 10_000,
                    "open links": "[a](" * 8_000, "open footnotes": "[^" * 10_000}
HOSTILE_HTML = {"nested divs": "<div>" * 100_000, "scripts": "<script" * 100_000,
                "comments": "<!--" * 100_000}
ANSWER_WITHIN = 60.0  # seconds: a guard against a hang, as a browser's timeout is


def short_ids(root) -> dict[str, str]:
    with ReaderStore.open(root) as store:
        return {p.title: p.short_id for p in store.timeline(limit=1000)}


def get_in_time(client, path: str):  # noqa: ANN001, ANN201 - a web.DeskResponse
    """GET `path`, failing (not hanging) if the desk does not answer in ANSWER_WITHIN."""
    got: list = []
    worker = threading.Thread(target=lambda: got.append(client.get(path)), daemon=True)
    worker.start()
    worker.join(ANSWER_WITHIN)
    assert got, f"{path}: no answer"
    return got[0]


def test_threat_49_pathological_posts_are_shown_as_stored_text_at_once(world, client):
    """THREATS 49 in the desk: bob's four shapes of Markdown that take Python-Markdown
    minutes, and carol's public posts that take nh3 or html.parser minutes, are
    rendered by the fetch's worker within its CPU limit (here 1 s) and stored as too
    complex. The timeline, the friend filters, a search and each post page answer,
    each hostile post as its escaped text with a note, and the posts around them as
    their stored rendering."""
    root = world["root"]
    store_posts(root, "bob", world["bob"], [
        PostRow(id=f"h{i}", audience="private", date=f"2026-11-23T1{i}:00:00Z", title=name,
                markdown=source) for i, (name, source) in enumerate(HOSTILE_MARKDOWN.items())],
        render=False)
    store_posts(root, "carol", world["carol"], [
        PostRow(id=f"x{i}", audience="public", date=f"2026-11-23T0{i}:00:00Z", title=name,
                html=source, url=f"https://carol.example/2026/x{i}/")
        for i, (name, source) in enumerate(HOSTILE_HTML.items())], render=False)
    with ReaderStore.open(root) as store:
        summary = render_pending(store, ["bob", "carol"], cpu_seconds=1.0, budget_seconds=600)
    assert summary.left == {"bob": 0, "carol": 0}
    assert summary.as_text["bob"] == 4 and summary.as_text["carol"] >= 1
    ids = short_ids(root)

    for path in ("/", "/?friend=bob", "/?friend=carol", "/?group=family", "/search?q=open"):
        response = get_in_time(client, path)
        assert response.status == 200, path
    page = text(get_in_time(client, "/"))
    assert all(name in page for name in [*HOSTILE_MARKDOWN, *HOSTILE_HTML])
    for name, source in HOSTILE_MARKDOWN.items():
        page = text(get_in_time(client, f"/post/{ids[name]}"))
        assert 'id="render-note"' in page and "too complex to render" in page
        assert f"<pre>{source}</pre>" in page  # brackets need no escaping
    page = text(get_in_time(client, f"/post/{ids['nested divs']}"))
    assert "too complex to render" in page and "&lt;div" not in page
    for name in ("scripts", "comments"):
        page = text(get_in_time(client, f"/post/{ids[name]}"))
        body = page.split('id="body">', 1)[1].split("</article>", 1)[0]
        assert "<script" not in body and "<!--" not in body
    page = text(get_in_time(client, f"/post/{ids['Ridge walk']}"))
    assert "<em>dawn</em>" in page and 'id="render-note"' not in page


def test_the_post_page_is_the_stored_rendering_not_a_new_one(world, client):
    """What the store holds is what the desk shows (here a rendering no parser would
    make from the post's text), with the URLs of its photos made the desk's."""
    root = world["root"]
    with ReaderStore.open(root) as store:
        post = next(p for p in store.timeline() if p.title == "Ridge walk")
        store.db.execute("UPDATE posts SET rendered = ? WHERE short_id = ?",
                         (f'<p>stored <b>rendering</b> <img alt="r" src="/file/{post.short_id}/0">'
                          "</p>", post.short_id))
        store.db.commit()
    page = text(client.get(f"/post/{post.short_id}"))
    assert "<p>stored <b>rendering</b>" in page and "<em>dawn</em>" not in page
    with ReaderStore.open(root) as store:
        view = feed.post_view(store.post(post.short_id), client.app.directory, store,
                              dt.datetime.now(dt.timezone.utc), dt.timezone.utc,
                              lambda path: "/desk/" + path)
    assert f'src="/desk/file/{post.short_id}/0"' in view.body and view.gallery == ()


def test_a_post_not_rendered_yet_or_too_big_is_its_escaped_text(world, client):
    """A post the fetch has not rendered yet shows its text, escaped, with a note that
    the next fetch renders it; one of more than 512 KiB of Markdown is never given to
    a parser: its page shows the start of its text, escaped, and says why."""
    root = world["root"]
    store_posts(root, "bob", world["bob"], [
        PostRow(id="n1", audience="private", date="2026-11-23T10:00:00Z", title="Fresh",
                markdown="*new* <b>bold</b>")], render=False)
    store_posts(root, "bob", world["bob"], [
        PostRow(id="n2", audience="private", date="2026-11-23T11:00:00Z", title="Huge",
                markdown="<b>" + "word " * 200_000)], render=False)
    with ReaderStore.open(root) as store:
        render_pending(store, ["bob"], cpu_seconds=0.01, budget_seconds=0)  # renders nothing
    ids = short_ids(root)
    page = text(client.get(f"/post/{ids['Fresh']}"))
    assert "not rendered yet" in page and "<pre>*new* &lt;b&gt;bold&lt;/b&gt;</pre>" in page
    with ReaderStore.open(root) as store:
        render_pending(store, ["bob"], cpu_seconds=0.01)  # any rendering would fail
    page = text(client.get(f"/post/{ids['Huge']}"))
    assert "too complex to render" in page and "<pre>&lt;b&gt;word word" in page
    assert "<b>word" not in page and len(page) < 300_000


def test_photos_of_the_friends_own_site_show_inline_other_remote_ones_stay_links(world,
                                                                               client):
    """A public post's photo on the friend's own site (their card's origin) that its
    signed feed lists (`_o2m.media`, PROTOCOL.md §1.4) is shown from the desk
    (/img/ID/N), on the timeline and in the body, found in the stored rendering; a
    photo of their site the feed does not list, and a photo of another host, stay
    links to click (THREATS.md 34, 54)."""
    root = world["root"]
    tree = ListedFile("https://carol.example/2026/plums/tree.png", "ab" * 32, 100)
    store_posts(root, "carol", world["carol"], [
        PostRow(id="c2", audience="public", date="2026-11-23T10:00:00Z", title="Plums",
                html='<p>Look <img src="https://carol.example/2026/plums/tree.png" '
                     'alt="the &quot;tree&quot;"> and <img src="https://evil.example/t.png" '
                     'alt="pixel"> and <img src="https://carol.example/2026/plums/pie.png" '
                     'alt="pie"></p>', url="https://carol.example/2026/plums/",
                media=(tree,))])
    post_id = short_ids(root)["Plums"]
    page = text(client.get(f"/post/{post_id}"))
    assert f'<img src="/img/{post_id}/0" alt="the &quot;tree&quot;">' in page
    assert 'href="https://evil.example/t.png"' in page and "evil.example/t.png\"" not in \
        page.replace('href="https://evil.example/t.png"', "")
    assert 'href="https://carol.example/2026/plums/pie.png"' in page and \
        f'src="/img/{post_id}/1"' not in page
    assert f'src="/img/{post_id}/0"' in text(client.get("/?friend=carol"))
    assert client.get(f"/img/{post_id}/1").status == 404


def test_an_attachment_shown_in_the_body_is_not_repeated_below(world, client):
    """The ridge photo that bob's Markdown shows is in the stored rendering at the
    desk's URL and not again in the gallery."""
    ridge = short_ids(world["root"])["Ridge walk"]
    page = text(client.get(f"/post/{ridge}"))
    assert page.count(f'src="/file/{ridge}/0"') == 1 and 'class="gallery"' not in page
    assert client.get(f"/file/{ridge}/0").body == PNG and RIDGE_HASH


def test_alt_texts_come_from_the_stored_rendering_not_the_markdown(world, client):
    """The alt text of a photo on the timeline and in the post's gallery is the one the
    stored rendering gives it (nh3's output, one linear scan), never a pattern run on
    the friend's Markdown (0.6 s a post for 520 KB of `![`, on every page)."""
    root = world["root"]
    ridge = short_ids(root)["Ridge walk"]
    with ReaderStore.open(root) as store:
        store.db.execute("UPDATE posts SET rendered = ?, rendered_images = '[]' "
                         "WHERE short_id = ?",
                         (f'<p><img alt="from the rendering" src="/file/{ridge}/0"></p>', ridge))
        store.db.commit()
    assert 'alt="from the rendering"' in text(client.get("/"))
    assert 'alt="the ridge at dawn"' not in text(client.get("/"))


def test_a_hostile_stored_rendering_is_scanned_in_linear_time(world, client):
    """Renderings are nh3's, but the scans of them hold whatever a store holds: a
    million characters of unclosed `<img ` or of remote-image links without an end
    (each took the scans minutes when a try ran on to the end of the text) leave the
    timeline and the post page answering."""
    root = world["root"]
    store_posts(root, "carol", world["carol"], [
        PostRow(id="y1", audience="public", date="2026-11-23T09:00:00Z", title="Odd",
                html="<p>odd</p>", url="https://carol.example/2026/odd/")], render=False)
    odd = short_ids(root)["Odd"]
    with ReaderStore.open(root) as store:
        store.db.execute("UPDATE posts SET rendered = ? WHERE short_id = ?",
                         ("<img " * 100_000 + '<a class="o2m-remote-image" href=""' * 30_000,
                          odd))
        store.db.commit()
    assert get_in_time(client, "/").status == 200
    assert get_in_time(client, f"/post/{odd}").status == 200
