"""The planner (pure): pages, pagination and change digests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from o2m_pub.site.model import PostRecord
from o2m_pub.site.plan import list_pages, plan_pages, resolve_collisions

FPS = {t: "fp" for t in ("post.html", "index.html", "tag.html", "tags.html", "archive.html",
                         "archive_year.html", "404.html")}


def record(i: int, *, title: str | None = None, tags: tuple[str, ...] = (), slug: str | None = None,
           source: str | None = None) -> PostRecord:
    date = f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}+00:00"
    slug = slug or f"p{i}"
    return PostRecord(source=source or f"content/p{i}.md", title=title or f"P{i}", date=date,
                      updated=None, tags=tags, summary="s", slug=slug, path=f"2026/{slug}/",
                      draft=False, audience=("public",), reply_to=None, word_count=1,
                      render_key=f"k{i}", utc=date)


@given(n=st.integers(0, 60), per_page=st.integers(1, 7))
def test_every_post_is_listed_once_on_numbered_pages_or_home(n, per_page):
    """For any number of posts and page size: the home page shows the newest, every post is
    listed exactly once on the numbered pages or the home page, and every pager link leads
    to a page that exists."""
    posts = [record(i) for i in range(n)]
    pages = list_pages(posts, "", per_page, "index.html", "fp")
    home, numbered = pages[0], pages[1:]
    assert [p.source for p in home.context["posts"]] == [p.source for p in posts[::-1][:per_page]]
    listed = [p.source for page in numbered for p in page.context["posts"]]
    assert len(listed) == len(set(listed))
    assert set(listed) | {p.source for p in home.context["posts"]} == {p.source for p in posts}
    for page in numbered:  # every pager link points at a page that exists
        for target in (page.context["pager"].newer, page.context["pager"].older):
            assert target is None or any(p.page_dir == target for p in pages)


@settings(max_examples=40)
@given(n=st.integers(0, 50), per_page=st.integers(1, 6))
def test_adding_a_post_changes_at_most_three_list_pages(n, per_page):
    """Numbering from the oldest keeps old pages stable (DESIGN.md property 6): the home
    page, a new numbered page, and the one before it (its "newer" link)."""
    posts = [record(i) for i in range(n)]
    before = {p.path: p.digest for p in list_pages(posts, "", per_page, "index.html", "fp")}
    after = {p.path: p.digest for p in list_pages(posts + [record(n)], "", per_page,
                                                  "index.html", "fp")}
    changed = {path for path, digest in after.items() if before.get(path) != digest}
    assert len(changed) <= 3


def test_collisions_fail_all_but_the_first_by_source():
    """Posts claiming one permalink: the first by source path keeps it, whatever the order
    they come in; each other one is a problem at its own file."""
    a = record(1, slug="same", source="content/a.md")
    b = record(2, slug="same", source="content/b.md")
    kept, problems = resolve_collisions([b, a])
    assert kept == [a]
    assert len(problems) == 1 and problems[0].path == "content/b.md"


def test_the_post_that_held_a_permalink_keeps_it_and_the_newcomer_is_blamed():
    """A new post claiming a published post's permalink fails, whatever the source paths'
    order; the problem is at the newcomer's date line, names the holder, and hints at
    `slug:`."""
    old = record(1, slug="same", source="content/2026/same.md")
    new = record(2, slug="same", source="content/2025/same.md")
    new.lines["date"] = 3
    kept, (problem,) = resolve_collisions([old, new], held=lambda r: r is old)
    assert [old] == kept
    assert ("content/2025/same.md:3: permalink /2026/same/ is already used by "
            "content/2026/same.md") == str(problem)
    assert "`slug:`" in problem.hint


def test_post_page_digest_follows_its_neighbours():
    """A renamed post changes the digests of its own page and of its neighbours' (which link
    to it by title), not of unrelated pages."""
    posts = [record(i) for i in range(3)]
    digests = {p.path: p.digest for p in plan_pages(posts, per_page=10, fingerprints=FPS,
                                                    site_fingerprint="s", link_targets={})}
    renamed = [posts[0], record(1, title="Renamed"), posts[2]]
    after = {p.path: p.digest for p in plan_pages(renamed, per_page=10, fingerprints=FPS,
                                                  site_fingerprint="s", link_targets={})}
    changed = {path for path in after if after[path] != digests[path]}
    assert {"2026/p0/index.html", "2026/p1/index.html", "2026/p2/index.html"} <= changed
    assert "404.html" not in changed and "tags/index.html" not in changed


def test_tags_that_slug_alike_are_one_tag():
    """Tags that differ only in case are one tag page, named as the newest post spells it."""
    posts = [record(0, tags=("Travel",)), record(1, tags=("travel",))]
    pages = plan_pages(posts, per_page=10, fingerprints=FPS, site_fingerprint="s",
                       link_targets={})
    tag_pages = [p for p in pages if p.template == "tag.html"]
    assert [p.path for p in tag_pages] == ["tags/travel/index.html"]
    assert tag_pages[0].context["tag"].name == "travel"  # as the newest post spells it
