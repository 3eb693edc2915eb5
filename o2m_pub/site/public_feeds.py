"""The public feeds in a build (PROTOCOL.md §1.4): feed.json, atom.xml, the sitemap and
robots.txt, and feed.json's signature. `_Build` in build.py makes a `PublicFeeds` in its
phase E, after every page is in place, and before friends' heads (§1.5).

Each file is rewritten only when what it is made from changed (its digest); the
syndication code and the signing key are loaded only when something is written.

Each item lists the files of the site its HTML refers to (`_o2m.media`, §1.4: URL,
SHA-256, size), so that readers show only the photos the author published (THREATS.md
54). Their hashes are the build's own, kept per file in the manifest (`build._Files`):
a file is hashed again only when its size or time changed, never for a feed.
"""

from __future__ import annotations

import datetime as dt
import html as html_mod
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from o2m_pub.config import SiteConfig
from o2m_pub.site.model import PostRecord
from o2m_pub.site.outputs import Outputs
from o2m_pub.site.plan import digest_of

if TYPE_CHECKING:
    from o2m_pub.protocol.cards import Card
    from o2m_pub.protocol.public_media import ListedFile
    from o2m_pub.site.manifest import FileState, Manifest
    from o2m_pub.site.pages import Views
    from o2m_pub.site.syndication import FittedFeeds

# 2: items carry their stable id (`_o2m.id`, §1.4), and their HTML no ¶ permalinks, its
# links absolute (feed_html); 3: fitted to a reader's caps (`syndication.fit_feeds`);
# 4: items list the site's files their HTML refers to (`_o2m.media`, §1.4), so the
# first build after an upgrade writes feed.json (and signs it) again
FEED_VERSION = "feeds-4"
FEED_SIG = "feed.json.sig"
SIGNATURE_VERSION = "feed-sig-1"


def id_key(root: Path) -> bytes:
    """What post ids are made from (§3.4): the site's first key; none without keys."""
    if not (root / "keys").is_dir():
        return b""
    from o2m_pub.friends.identity import item_id_key
    return item_id_key(root) or b""


def post_id(key: bytes, post: PostRecord) -> str | None:
    """A public post's stable id (`_o2m.id`, §1.4): its item id (§3.4)."""
    if not key:
        return None
    from o2m_pub.friends.private_feeds import item_id
    return item_id(key, post.source)


_IMG_SRC = re.compile(r'<img\b[^>]*?\ssrc="([^"]*)"')  # in the HTML the build made


def listed_media(record: PostRecord, html: str, media: dict[str, tuple[str, "FileState"]],
                 site_url: str) -> tuple[tuple[ListedFile, ...], str | None]:
    """The files of the site a post's HTML refers to, as its item lists them (§1.4
    `_o2m.media`): each published file of the post once, by its absolute URL (as the
    HTML gives it), SHA-256 and size, those it shows as images first, at most
    `MAX_PUBLIC_MEDIA` of them; and a warning when some were left out (readers show
    those as links).

    Args:
        record: the post.
        html: its HTML, links absolute (`Views.absolute_html`).
        media: source path -> (output path, state) of each file the build publishes.
        site_url: the site's URL, ending in "/".
    """
    from o2m_pub.protocol.post_limits import MAX_PUBLIC_MEDIA  # (when feed.json is written)
    from o2m_pub.protocol.public_media import ListedFile
    files = [ListedFile(site_url + media[ref][0], media[ref][1].sha, media[ref][1].size)
             for ref in dict.fromkeys(record.media) if ref in media]
    if not files:
        return (), None
    images = {html_mod.unescape(src).split("#", 1)[0] for src in _IMG_SRC.findall(html)}
    files.sort(key=lambda f: f.url not in images)  # (a stable sort: else in their order)
    if len(files) <= MAX_PUBLIC_MEDIA:
        return tuple(files), None
    return tuple(files[:MAX_PUBLIC_MEDIA]), (
        f"{record.source}: refers to {len(files):,} files of the site; feed.json lists "
        f"{MAX_PUBLIC_MEDIA} of them, its images first (PROTOCOL.md §1.4): readers show "
        "the others as links")


@dataclass
class PublicFeeds:
    """What the public feeds are made from, and where they go.

    `card` is the site's own contact card (None without keys): its `feed_pk` names the
    key feed.json is signed with. `warnings` is the build report's list."""

    root: Path
    out_dir: Path
    config: SiteConfig
    outputs: Outputs
    views: "Views"
    manifest: "Manifest"
    card: "Card | None"
    drafts: bool
    now: dt.datetime
    warnings: list[str]

    def write(self, posts: list[PostRecord], index_fp: str) -> None:
        """feed.json (then its signature), atom.xml, sitemap.xml and robots.txt.

        Args:
            posts: the public posts, oldest first.
            index_fp: the index pages' fingerprint, which covers every post's path and
                dates and the site's URL: all the sitemap is made from.
        """
        config, views = self.config, self.views
        newest = posts[::-1][:config.feed_items]
        key = id_key(self.root)
        files = views.media  # each file's output path, and its hash and size for `media`
        feed_digest = digest_of(FEED_VERSION, config.fingerprint, key.hex(),
                                *(p.digest for p in newest), *(
                                    (files[m][0], files[m][1].sha, files[m][1].size)
                                    if m in files else "" for p in newest for m in p.media))
        made: dict[str, bytes] = {}
        fitted: list["FittedFeeds"] = []  # made once, by the first of the two feeds

        def feed(kind: str) -> Callable[[], bytes]:
            def make() -> bytes:
                from o2m_pub.site import syndication  # imported only when a feed is written
                if kind == "sitemap":
                    return syndication.sitemap([(config.url, None)] + [
                        (config.url + p.path, p.updated or p.date) for p in posts])
                if kind == "robots":
                    return syndication.robots_txt(config)
                if not fitted:  # PROTOCOL.md §1.4: within what a reader takes
                    entries = []
                    for p in newest:
                        html = views.absolute_html(p)
                        listed, warning = listed_media(p, html, files, config.url)
                        if warning:
                            self.warnings.append(warning)
                        entries.append(syndication.FeedEntry(
                            p, config.url + p.path, html, post_id(key, p), listed))
                    fitted.append(syndication.fit_feeds(config, entries))
                    self.warnings.extend(fitted[0].warnings)
                made[kind] = (fitted[0].json if kind == "json"
                              else syndication.atom(config, fitted[0].entries))
                return made[kind]
            return make

        self.outputs.emit("feed.json", feed_digest, feed("json"))
        self.sign(made.get("json"))
        self.outputs.emit("atom.xml", feed_digest, feed("atom"))
        self.outputs.emit("sitemap.xml", digest_of(FEED_VERSION, index_fp), feed("sitemap"))
        self.outputs.emit("robots.txt", digest_of(FEED_VERSION, config.url), feed("robots"))

    def sign(self, data: bytes | None) -> None:
        """feed.json.sig (§1.4), signed by keys/feed.key, the key the card names in
        `feed_pk` (no passphrase: a public-only build signs too); written when feed.json
        or the key changed. A card without `feed_pk` (o2m 1.0) gets none.

        Args:
            data: feed.json's bytes when this build wrote it; None when it was kept.
        """
        card = self.card
        if card is None or card.feed_pk is None or self.drafts:
            return
        from o2m_pub.friends.identity import load_feed_key
        key = load_feed_key(self.root)
        if key is None or bytes(key.verify_key) != card.feed_pk:
            self.warnings.append("keys/feed.key is not the public-feed key your card names; "
                                 "feed.json is not signed: run `o2m card --renew`")
            return
        feed = self.outputs.new["feed.json"]
        digest = digest_of(SIGNATURE_VERSION, feed.sha, card.raw.hex())
        if not self.outputs.needs(FEED_SIG, digest):
            self.outputs.keep(FEED_SIG)
            return
        if data is None:  # feed.json kept as it was: sign its bytes on disk
            data = (self.out_dir / "feed.json").read_bytes()
        from o2m_pub.protocol.feed_signature import sign_feed
        seq = max(int(self.manifest.get("feed_sig_seq") or 0) + 1, int(self.now.timestamp()))
        self.manifest.set("feed_sig_seq", str(seq))  # before it is published (as seq_floor)
        self.outputs.put(FEED_SIG, digest, sign_feed(key, author_sign_pk=card.sign_pk,
                                                     feed=data, seq=seq, updated=self.now))
