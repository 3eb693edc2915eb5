"""The files a public post refers to, listed in its feed.json item (`_o2m.media`,
PROTOCOL.md §1.4), so that the feed's signature covers its photos too (THREATS.md 54):
real builds of real folders, the lists read back by the reader's own parser."""

from __future__ import annotations

import hashlib
import json

from support.system import locked, o2m_unprivileged

from o2m_pub.config import parse_config
from o2m_pub.protocol.post_limits import MAX_PUBLIC_FEED_BYTES, MAX_PUBLIC_MEDIA
from o2m_pub.protocol.public_media import ListedFile, parse_media
from o2m_pub.reader.fetch_plan import parse_public_feed
from o2m_pub.site import public_feeds, syndication

SITE = "https://test.example/"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


def items(site) -> dict[str, dict]:  # noqa: ANN001 - conftest's Site
    return {i["title"]: i for i in json.loads(site.read("feed.json"))["items"]}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_threat_54_the_feed_lists_each_file_a_post_embeds_or_links(site):
    """A post showing a photo twice (once with a fragment) and linking a PDF beside it:
    its item lists each file once, the photo first, by the absolute URL its HTML gives
    (fragment aside), with the SHA-256 and size of the published bytes; the reader's
    parser keeps the same list; a post with no file has no `media`, and atom.xml
    carries none of it."""
    site.post("2026/trip/index.md", title="Trip",
              body="[notes](notes.pdf) then ![a view](view.png#top) and ![again](./view.png)")
    site.write("content/2026/trip/view.png", PNG)
    site.write("content/2026/trip/notes.pdf", b"%PDF-1.4 notes")
    site.post("2026/plain.md", title="Plain", date="2026-03-02")
    site.o2m("build")

    trip = items(site)["Trip"]
    listed = trip["_o2m"]["media"]
    assert [{"url": f"{SITE}media/{sha(PNG)[:16]}/view.png", "sha256": sha(PNG),
             "size": len(PNG)},
            {"url": f"{SITE}media/{sha(b'%PDF-1.4 notes')[:16]}/notes.pdf",
             "sha256": sha(b"%PDF-1.4 notes"), "size": 14}] == listed
    for entry in listed:  # the bytes a reader downloads from those URLs
        published = site.build_dir / entry["url"][len(SITE):]
        assert (sha(published.read_bytes()), published.stat().st_size) == (
            entry["sha256"], entry["size"])
        assert entry["url"] in trip["content_html"]
    assert f'src="{listed[0]["url"]}#top"' in trip["content_html"]
    assert "media" not in items(site)["Plain"].get("_o2m", {})
    rows = {r.title: r for r in parse_public_feed(site.read("feed.json").encode(), SITE)}
    assert tuple(ListedFile(**e) for e in listed) == rows["Trip"].media
    assert () == rows["Plain"].media
    assert sha(PNG) not in site.read("atom.xml")


def test_threat_54_an_edited_photo_is_listed_anew_and_unchanged_files_are_not_hashed_again(
        site):
    """One photo of two is replaced: the next build lists its new hash and size (and
    signs nothing stale), while the other keeps its entry without being read: the
    build, run here with file modes enforced (as any user's), cannot read it at all,
    and still succeeds. Its hash comes from the manifest, kept by its stat."""
    site.post("2026/two/index.md", title="Two", body="![a](a.png) ![b](b.png)")
    site.write("content/2026/two/a.png", PNG + b"a")
    b = site.write("content/2026/two/b.png", PNG + b"b")
    site.o2m("build")
    before = items(site)["Two"]["_o2m"]["media"]

    site.write("content/2026/two/a.png", PNG + b"a, edited")
    with locked(b):
        result = o2m_unprivileged("build", cwd=site.root)
    assert 0 == result.returncode, result.stderr
    after = items(site)["Two"]["_o2m"]["media"]
    assert after[1] == before[1]
    assert after[0] == {"url": f"{SITE}media/{sha(PNG + b'a, edited')[:16]}/a.png",
                        "sha256": sha(PNG + b"a, edited"), "size": len(PNG) + 9}
    assert after[0]["url"] in items(site)["Two"]["content_html"]


def test_threat_54_the_first_build_after_the_upgrade_lists_the_files(site, monkeypatch):
    """A feed.json written before items listed their files (the feed version of then,
    no lists) is written again by the first build of this version, though no post
    changed: FEED_VERSION is part of the feed's digest."""
    site.post("2026/trip/index.md", title="Trip", body="![a view](view.png)")
    site.write("content/2026/trip/view.png", PNG)
    with monkeypatch.context() as old:
        old.setattr(public_feeds, "FEED_VERSION", "feeds-3")
        old.setattr(public_feeds, "listed_media", lambda *a: ((), None))
        site.o2m("build")
    assert "media" not in items(site)["Trip"].get("_o2m", {})
    site.o2m("build")
    assert sha(PNG) == items(site)["Trip"]["_o2m"]["media"][0]["sha256"]


def test_a_post_of_more_than_64_files_lists_64_its_images_first(site):
    """§1.4's cap, as §3.3's on attachments: 70 linked files and one image, the image
    listed first and 63 of the links after it, with a warning that says the rest are
    links at readers; the list is one the reader keeps whole."""
    links = " ".join(f"[f{i}](f{i}.txt)" for i in range(70))
    site.post("2026/many/index.md", title="Many", body=links + "\n\n![last](last.png)")
    for i in range(70):
        site.write(f"content/2026/many/f{i}.txt", f"file {i}")
    site.write("content/2026/many/last.png", PNG)
    result = site.o2m("build")
    listed = items(site)["Many"]["_o2m"]["media"]
    assert MAX_PUBLIC_MEDIA == 64 == len(listed)
    assert listed[0]["url"].endswith("/last.png")
    assert [e["url"].rsplit("/", 1)[1] for e in listed[1:]] == [f"f{i}.txt" for i in range(63)]
    assert ("content/2026/many/index.md: refers to 71 files of the site; feed.json lists 64 "
            "of them, its images first (PROTOCOL.md §1.4): readers show the others as links"
            ) in result.output
    assert 64 == len(parse_media(listed, SITE))


class _Record:
    """What the feeds read of a post (a stand-in for the site's PostRecord)."""

    def __init__(self, n: int) -> None:
        self.source, self.title, self.summary = f"content/p{n}.md", f"P{n}", f"S{n}"
        self.date, self.updated = "2026-03-01T10:00:00+00:00", None
        self.tags, self.reply_to = (), None


def test_the_lists_count_toward_the_feeds_4_mib():
    """fit_feeds measures items with their lists: 400 posts of 64 listed files each
    (about 11 MB of lists) make a feed.json within 4 MiB, its oldest posts left out
    with the warning, and each item kept with its whole list."""
    config = parse_config(b'[site]\nname = "T"\nauthor = "T"\nurl = "https://test.example/"\n')
    entries = [syndication.FeedEntry(
        _Record(n), f"{SITE}2026/p{n}/", "<p>x</p>", None,  # type: ignore[arg-type]
        tuple(ListedFile(f"{SITE}media/{n:04d}{i:012d}/photo-{i}.jpg", f"{n * 64 + i:064x}",
                         1000 + i) for i in range(64))) for n in range(400)]
    fitted = syndication.fit_feeds(config, entries)
    assert len(fitted.json) <= MAX_PUBLIC_FEED_BYTES
    kept = json.loads(fitted.json)["items"]
    assert 0 < len(kept) < 400 and all(len(i["_o2m"]["media"]) == 64 for i in kept)
    assert any("leave out the" in w for w in fitted.warnings)
    assert len(kept) == len(parse_public_feed(fitted.json, SITE))


def test_a_post_given_as_a_link_lists_no_files():
    """A post too long for a feed goes as its summary and a link (§1.4): that HTML
    refers to none of its files, so its item lists none."""
    config = parse_config(b'[site]\nname = "T"\nauthor = "T"\nurl = "https://test.example/"\n')
    photo = ListedFile(f"{SITE}media/0000000000000000/p.png", "0" * 64, 1)
    long = "<p>" + "x" * (1 << 20) + "</p>"
    fitted = syndication.fit_feeds(config, [syndication.FeedEntry(
        _Record(0), f"{SITE}2026/p0/", long, None, (photo,))])  # type: ignore[arg-type]
    [item] = json.loads(fitted.json)["items"]
    assert "Read it on the site" in item["content_html"] and "_o2m" not in item
