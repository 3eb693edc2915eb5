"""The web reader's landmarks (clients review fix 10, axe `landmark-unique`): each
<nav> has its own label, and no empty one is drawn."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import unquote

from support.data import BOB_PK

from o2m_pub.reader.model import FriendUpdate, PostRow
from o2m_pub.reader.store import ReaderStore
from o2m_pub.reader.web import ReaderApp


def _navs(html: str) -> list[tuple[str, str]]:
    """(opening tag, content) of every <nav> of a page."""
    return re.findall(r"(<nav\b[^>]*>)(.*?)</nav>", html, re.S)


def test_every_nav_is_labelled_uniquely_and_none_is_empty(site):
    """The timeline (both pages), a friend's page and the notifications: every <nav>
    has an aria-label of its own and at least one link."""
    with ReaderStore.open(site.root) as store:
        store.apply_update(FriendUpdate("bob", BOB_PK, upserts=[
            PostRow(id=f"p{i}", audience="private", date=f"2026-11-{i + 1:02d}T00:00:00Z",
                    title=f"Post {i}", markdown="text") for i in range(25)]))
        app = ReaderApp(store, dt.timezone.utc)
        app.bound_to("127.0.0.1", 8080)

        def page(path: str, query: dict[str, str] | None = None) -> str:
            response = app.handle("GET", path, query or {}, {}, {"host": "127.0.0.1:8080"})
            assert response.status == 200, path
            return response.body.decode()

        paged = page("/")  # 25 posts: two pages
        assert [tag for tag, _ in _navs(paged)] == ['<nav aria-label="Reader">',
                                                    '<nav class="pages" aria-label="Pages">']
        cursor = re.search(r'href="\?before=([^"]+)" id="older"', paged).group(1)
        for html in (paged, page("/", {"before": unquote(cursor)}), page("/friend/bob"),
                     page("/notifications")):
            navs = _navs(html)
            labels = [re.search(r'aria-label="([^"]+)"', tag) for tag, _ in navs]
            assert all(labels), navs
            assert len({m.group(1) for m in labels}) == len(labels)
            assert all(re.search(r"<a\b", content) for _, content in navs), navs
