"""Planning a build: from the posts and what the last build recorded, the pages the
site consists of and the change digest of each. Pure: no files, no clock.

A page's digest hashes everything its bytes depend on (template fingerprint, site
settings, the digests of the posts it shows, its pager); a page whose digest is
unchanged is not rendered again (a digest, not a signature: nothing here is signed).
Pages are numbered from the oldest posts, so a new post changes the home page and at
most two numbered pages.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from o2m_pub.errors import Problem
from o2m_pub.site.model import PostRecord, TagView, tag_view

if TYPE_CHECKING:  # (mentions' code is imported only for a site that has some)
    from o2m_pub.site.mention_plan import MentionView


ARCHIVE_POSTS_PER_YEAR = 100  # the archive lists each year's newest; its year page has all


@dataclass(frozen=True)
class Pager:
    """Where a list page sits. `total` is set on the newest (home) page only: were it on
    every page, each new page of posts would rewrite all the older ones."""

    number: int
    total: int | None
    newer: str | None
    older: str | None


@dataclass
class Page:
    """One output page to (maybe) render."""

    path: str  # output file, e.g. "2026/trip/index.html"
    template: str
    page_dir: str  # e.g. "2026/trip/"
    digest: str  # changes whenever anything the page's bytes depend on changes
    context: dict[str, Any] = field(default_factory=dict)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(*parts: object) -> str:
    """A change digest of `parts` (their str() joined): equal parts, equal digest."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


def resolve_collisions(records: Sequence[PostRecord],
                       held: Callable[[PostRecord], bool] | None = None
                       ) -> tuple[list[PostRecord], list[Problem]]:
    """Two posts at one permalink: the one that held it in the last build keeps it
    (`held`), so a new post never takes an address already published, and its pages and
    tags stay; among posts none of which held it, the first by source path. Each other
    one fails, at its own `slug:` or `date:` line, naming the post that keeps it.

    Returns:
        The kept posts oldest first, and a problem for each post left out.
    """
    owner: dict[str, PostRecord] = {}
    contested: dict[str, list[PostRecord]] = {}
    for r in records:
        first = owner.setdefault(r.path, r)
        if first is not r:
            contested.setdefault(r.path, [first]).append(r)
    problems = []
    for path, claimants in contested.items():
        holders = [r for r in claimants if held is not None and held(r)] or claimants
        keep = owner[path] = min(holders, key=attrgetter("source"))
        problems += [Problem(r.source, r.lines.get("slug", r.lines.get("date", 1)),
                             f"permalink /{path} is already used by {keep.source}",
                             hint="give this post another `slug:` (a post's address is the "
                                  "year of its date and its slug, the file's name unless "
                                  "`slug:` sets it)")
                     for r in claimants if r is not keep]
    problems.sort(key=attrgetter("path"))
    return sorted(owner.values(), key=attrgetter("utc", "path")), problems


def _chunks(posts: list[PostRecord], size: int) -> list[list[PostRecord]]:
    return [posts[i:i + size] for i in range(0, len(posts), size)] or [[]]


def list_pages(posts: list[PostRecord], base: str, per_page: int, template: str,
               fingerprint: str, tag: TagView | None = None,
               media: dict[str, str] | None = None) -> list[Page]:
    """The home page (or a tag's page) and its older pages.

    `posts` is oldest first. Page k (1-based) holds posts [(k-1)n, kn) and lives at
    `{base}page/k/`; the page at `base` shows the newest n posts, and its "older" link
    goes to the newest numbered page not wholly shown on it."""
    chunks = _chunks(posts, per_page)
    total = len(chunks)
    last_numbered = total - 1  # the newest chunk is always wholly on the home page

    def numbered(k: int) -> str:
        return f"{base}page/{k}/"

    home = Pager(total, total, None, numbered(last_numbered) if last_numbered else None)
    media = media or {}
    pages = [_list_page(base, template, posts[-per_page:], home, fingerprint, tag, media,
                        is_home=base == "")]
    # numbered pages see their tag without its count, for the reason given in Pager
    older_tag = tag and TagView(tag.name, tag.slug, tag.path, None)
    for k in range(1, last_numbered + 1):
        pager = Pager(k, None, numbered(k + 1) if k < last_numbered else base,
                      numbered(k - 1) if k > 1 else None)
        pages.append(_list_page(numbered(k), template, chunks[k - 1], pager, fingerprint,
                                older_tag, media, is_home=False))
    return pages


def _list_page(page_dir: str, template: str, posts: list[PostRecord], pager: Pager,
               fingerprint: str, tag: TagView | None, media: dict[str, str], *,
               is_home: bool) -> Page:
    newest_first = posts[::-1]
    digest = digest_of(fingerprint, pager.number, pager.total, pager.newer, pager.older,
                       tag and (tag.name, tag.count), is_home,
                       *(p.list_digest for p in newest_first),
                       *(media.get(m) for p in newest_first if not p.title for m in p.media))
    context: dict[str, Any] = {"posts": newest_first, "pager": pager, "is_home": is_home}
    if tag is not None:
        context["tag"] = tag
    return Page(f"{page_dir}index.html", template, page_dir, digest, context)


def tag_index(posts: list[PostRecord]) -> dict[str, tuple[str, list[PostRecord]]]:
    """Tag slug -> (name as the newest post spells it, posts oldest first). Tags that
    slug alike ("Travel", "travel") are one tag."""
    by_tag: dict[str, tuple[str, list[PostRecord]]] = {}
    for p in posts:
        for t in p.tags:
            slug = tag_view(t).slug
            tagged = by_tag[slug][1] if slug in by_tag else []
            by_tag[slug] = (t, tagged)
            tagged.append(p)
    return by_tag


def _fp(fingerprints: dict[str, str], site_fingerprint: str, template: str) -> str:
    return digest_of(fingerprints[template], site_fingerprint)


def post_pages(posts: list[PostRecord], indexes: Iterable[int] | None = None, *,
               fingerprints: dict[str, str], site_fingerprint: str,
               link_targets: dict[str, str], media: dict[str, str],
               mentions: Mapping[str, tuple[MentionView, ...]] | None = None) -> list[Page]:
    """The pages of `posts[i]` for each i in `indexes` (all when None).

    Args:
        posts: the public posts, oldest first, permalinks unique.
        fingerprints: template name -> fingerprint (render.template_fingerprints).
        site_fingerprint: changes with any setting or asset that shows on every page.
        link_targets: source -> permalink path of every post, for links between posts.
        media: source -> output path (content-hashed) of every file posts refer to.
        mentions: post path -> its approved Webmentions (PROTOCOL.md §1.6), shown on
            its page (and so in its digest).
    """
    post_fp = _fp(fingerprints, site_fingerprint, "post.html")
    mentions = mentions or {}
    if mentions:
        from o2m_pub.site.mention_plan import views_digest
    pages = []
    for i in range(len(posts)) if indexes is None else indexes:
        p = posts[i]
        newer = posts[i + 1] if i + 1 < len(posts) else None
        older = posts[i - 1] if i > 0 else None
        shown = mentions.get(p.path, ())
        digest = digest_of(post_fp, p.digest,
                           newer and (newer.display_title, newer.path),
                           older and (older.display_title, older.path),
                           *(link_targets.get(s) for s in p.links),
                           *(media.get(m) for m in p.media),
                           *((views_digest(shown),) if shown else ()))
        pages.append(Page(f"{p.path}index.html", "post.html", p.path, digest,
                          {"post": p, "newer": newer, "older": older, "mentions": shown}))
    return pages


def index_fingerprint(posts: list[PostRecord], *, per_page: int,
                      fingerprints: dict[str, str], site_fingerprint: str,
                      media: dict[str, str]) -> str:
    """Everything the index pages depend on, and everything a post page shows of other
    posts (its neighbours, the posts it links to) or of files (its media): while this is
    unchanged, the index pages need no planning and only changed posts need their page."""
    return digest_of(per_page, site_fingerprint, sorted(fingerprints.items()),
                     *(p.source + p.list_digest for p in posts),
                     *(media.get(m) for p in posts for m in p.media))


def index_pages(posts: list[PostRecord], *, per_page: int, fingerprints: dict[str, str],
                site_fingerprint: str, media: dict[str, str] | None = None) -> list[Page]:
    """The home page and its older pages, tag pages, archives and the 404 page."""
    def fp(template: str) -> str:
        return _fp(fingerprints, site_fingerprint, template)

    pages = list_pages(posts, "", per_page, "index.html", fp("index.html"), media=media)
    tags = tag_index(posts)
    views: list[TagView] = []
    for slug, (name, tagged) in sorted(tags.items()):
        view = TagView(name=name, slug=slug, path=f"tags/{slug}/", count=len(tagged))
        views.append(view)
        pages += list_pages(tagged, view.path, per_page, "tag.html", fp("tag.html"), view,
                            media)
    views.sort(key=lambda v: v.name.casefold())
    pages.append(Page("tags/index.html", "tags.html", "tags/",
                      digest_of(fp("tags.html"), *((v.name, v.count) for v in views)),
                      {"tags": views}))

    by_year: dict[int, list[PostRecord]] = defaultdict(list)
    for p in posts:
        by_year[int(p.path[:4])].append(p)
    years = [{"year": y, "count": len(by_year[y]), "path": f"archive/{y}/"}
             for y in sorted(by_year, reverse=True)]
    listed = {y["year"]: by_year[y["year"]][::-1][:ARCHIVE_POSTS_PER_YEAR] for y in years}
    pages.append(Page("archive/index.html", "archive.html", "archive/",
                      digest_of(fp("archive.html"), years,
                                *(p.list_digest for y in years for p in listed[y["year"]])),
                      {"archive_years": [{**y, "posts": listed[y["year"]]} for y in years]}))
    year_fp = fp("archive_year.html")
    for y in years:
        year_posts = by_year[y["year"]][::-1]
        pages.append(Page(f"archive/{y['year']}/index.html", "archive_year.html",
                          f"archive/{y['year']}/",
                          digest_of(year_fp, years, *(p.list_digest for p in year_posts)),
                          {"year": y["year"], "year_posts": year_posts, "years": years}))
    pages.append(Page("404.html", "404.html", "", digest_of(fp("404.html")), {}))
    return pages


def plan_pages(posts: list[PostRecord], *, per_page: int, fingerprints: dict[str, str],
               site_fingerprint: str, link_targets: dict[str, str],
               media: dict[str, str] | None = None,
               mentions: Mapping[str, tuple[MentionView, ...]] | None = None) -> list[Page]:
    """Every HTML page of the public site: one page per post, in the order of `posts`,
    then the index pages (`index_pages`). The build plans this way whenever the index
    fingerprint changed."""
    return (post_pages(posts, fingerprints=fingerprints, site_fingerprint=site_fingerprint,
                       link_targets=link_targets, media=media or {}, mentions=mentions)
            + index_pages(posts, per_page=per_page, fingerprints=fingerprints,
                          site_fingerprint=site_fingerprint, media=media))
