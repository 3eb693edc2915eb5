"""Public posts keep their identity when their author moves (PROTOCOL.md §1.4): a
signed public feed keys them by `_o2m.id`, and the copies that earlier moves left in a
reader's store under their old permalinks are merged into one (newcomer review,
friction point 3). Real JSON Feeds parsed by the fetch plan, a real SQLite store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from o2m_pub.reader.fetch_plan import parse_public_feed
from o2m_pub.reader.model import FriendUpdate
from o2m_pub.reader.store import ReaderStore

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
POST_ID = "AAECAwQFBgcICQoLDA0ODw"


def feed(site: str, *, with_id: bool = True, title: str = "Hello") -> bytes:
    """A friend's feed.json at `site`: one post, its links absolute, as o2m writes it."""
    item = {"id": site + "2026/hello/", "url": site + "2026/hello/", "title": title,
            "content_html": f'<p>Hi. <a href="{site}2026/older/">before</a></p>',
            "date_published": "2026-03-01T10:00:00+01:00"}
    if with_id:
        item["_o2m"] = {"id": POST_ID}
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [item]}).encode()


def store_feed(store: ReaderStore, data: bytes, site: str, *, signed: bool = True,
               as_before: bool = False) -> None:
    """Parse and store a feed; `as_before`: as an o2m of before 1.1 stored it (its rows
    knew no path after the site URL, so nothing was merged)."""
    rows = parse_public_feed(data, site, signed=signed)
    if as_before:
        rows = [dataclasses.replace(r, site_path=None) for r in rows]
    store.apply_update(FriendUpdate("ada", "KEY", upserts=rows), now=NOW)


def test_copies_left_by_earlier_moves_are_merged_into_the_post_with_an_id(tmp_path):
    """Ada moved twice under o2m 1.0 (no ids): Bob's store holds her post three times,
    one per permalink, the first one read. Her first signed feed with ids merges them
    into one post, which keeps the oldest copy's short id and read mark (its text is
    the same but for her own site's address)."""
    with ReaderStore.open(tmp_path) as store:
        sites = ["https://ada.example:8443/", "https://ada.example:8553/",
                 "https://ada.example:8663/"]
        for site in sites:
            store_feed(store, feed(site, with_id=False), site, signed=False, as_before=True)
        copies = store.timeline()
        assert 3 == len(copies)
        first = next(p for p in copies if p.url.startswith(sites[0]))
        store.mark_read([first.short_id])
        store_feed(store, feed("https://ada.example/"), "https://ada.example/")
        [merged] = store.timeline()
        assert (POST_ID, "https://ada.example/2026/hello/") == (merged.id, merged.url)
        assert first.short_id == merged.short_id and merged.read


def test_an_unsigned_feed_that_moves_is_merged_too(tmp_path):
    """A friend of o2m 1.0 (no ids) who moves: this reader merges the new permalink's
    copy into the one it had (same path after the site URL, same date)."""
    with ReaderStore.open(tmp_path) as store:
        for site in ("https://ada.example:8443/", "https://ada.example:8553/"):
            store_feed(store, feed(site, with_id=False), site, signed=False)
        [post] = store.timeline()
        assert "https://ada.example:8553/2026/hello/" == post.url


def test_a_post_with_an_id_stays_one_post_across_a_move(tmp_path):
    """Keyed by its id, a post seen at a new address is updated in place (same short id,
    still read), never stored twice; a real edit of its text makes it unread again."""
    with ReaderStore.open(tmp_path) as store:
        store_feed(store, feed("https://ada.example/"), "https://ada.example/")
        [before] = store.timeline()
        store.mark_read([before.short_id])
        store_feed(store, feed("https://new.example/"), "https://new.example/")
        [after] = store.timeline()
        assert (before.short_id, True) == (after.short_id, after.read)
        assert after.url == "https://new.example/2026/hello/"
        store_feed(store, feed("https://new.example/", title="Hello again"),
                   "https://new.example/")
        [edited] = store.timeline()
        assert (before.short_id, False) == (edited.short_id, edited.read)


def test_an_unsigned_feed_may_not_name_ids(tmp_path):
    """A feed read without a signature (a friend of o2m 1.0) is keyed by permalink even
    if it carries `_o2m.id`: an id could otherwise overwrite another post of theirs."""
    rows = parse_public_feed(feed("https://ada.example/"), "https://ada.example/",
                             signed=False)
    assert ["https://ada.example/2026/hello/"] == [r.id for r in rows]
    rows = parse_public_feed(feed("https://ada.example/"), "https://ada.example/", signed=True)
    assert [POST_ID] == [r.id for r in rows]
