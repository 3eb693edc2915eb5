"""The owner's own posts found by the ids their readers see (PROTOCOL.md §3.4, §4.1), for
the owner's side of a conversation: `o2m show ID`, `o2m thread show ID` and the desk find
one of the owner's posts by the short id a notification or a friend gives
(`reader.model.short_id_for` of the owner's key and the item id), or by the reference a
reply names (`o2m:<owner's key>/<item id>`).

An item id is made from the post's path alone (`friends.private_feeds.item_id`), so
posts are found with no build and no passphrase: a scan of content/ (stats only, as a
build's) gives every id, and only the post found is read and parsed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from o2m_pub.errors import O2MError
from o2m_pub.friends.private_feeds import item_id
from o2m_pub.protocol.canonical import b64u_encode
from o2m_pub.site.content import parse_post
from o2m_pub.site.scan import scan_sources


@dataclass(frozen=True)
class OwnPostInfo:
    """One of the owner's posts, as the owner's views of its thread show it."""

    source: str  # "content/2026/garden/index.md"
    id: str  # its item id (§3.4)
    ref: str  # its reference's text, o2m:<owner's key>/<id> (§4.1)
    short_id: str  # as the owner's friends see it
    title: str | None
    date: dt.datetime | None  # None: the post has a problem the build would refuse
    audience: tuple[str, ...]
    draft: bool
    body: str  # its Markdown as written
    reply_to: str | None
    thread: str | None  # a nested reply's thread root
    problem: str | None = None  # why the build would refuse it

    @property
    def path(self) -> str:
        """Below content/, as the desk's Posts page names it."""
        return self.source.split("/", 1)[1]

    @property
    def thread_root(self) -> str:
        """The reference of the thread it is part of: its own, or for a reply of the
        owner's, the thread it answers in (§4.2)."""
        if self.thread:
            return self.thread
        if self.reply_to and self.reply_to.startswith("o2m:"):
            return self.reply_to
        return self.ref


ShortId = Callable[[str, str], str]  # (author key, item id) -> short id: the reader's


class OwnPosts:
    """The owner's posts of one site, found by id. The scan of content/ is made once,
    when first needed: make one for each command or page.

    Args:
        short_id: how readers make a short id (`reader.model.short_id_for`).
    """

    def __init__(self, root: Path, *, sign_pk: bytes, id_key: bytes, tz: dt.tzinfo,
                 default_audience: tuple[str, ...], short_id: ShortId) -> None:
        self.root = root
        self.short_id = short_id
        self.key = b64u_encode(sign_pk)
        self.id_key = id_key
        self.tz = tz
        self.default_audience = default_audience
        self._ids: dict[str, str] | None = None  # item id -> source

    @classmethod
    def of_site(cls, root: Path, short_id: ShortId) -> "OwnPosts | None":
        """The site's own posts; None for a site without an identity (no post of it can
        have a thread) or whose o2m.toml cannot be read."""
        from o2m_pub.config import load
        from o2m_pub.friends.identity import item_id_key, own_sign_pk
        try:
            sign_pk = own_sign_pk(root)
            config = load(root)
        except O2MError:
            return None
        return cls(root, sign_pk=sign_pk, id_key=item_id_key(root) or sign_pk,
                   tz=config.tz, default_audience=config.default_audience,
                   short_id=short_id)

    def ids(self) -> dict[str, str]:
        """Item id -> source, of every post under content/."""
        if self._ids is None:
            found, _ = scan_sources(self.root)
            self._ids = {item_id(self.id_key, source): source for source in found}
        return self._ids

    def ref_of(self, source: str) -> tuple[str, str]:
        """(reference text, short id) of the post at `source` ("content/…")."""
        post_id = item_id(self.id_key, source)
        return f"o2m:{self.key}/{post_id}", self.short_id(self.key, post_id)

    def matching(self, prefix: str) -> list[str]:
        """The item ids whose short id starts with `prefix`."""
        return [i for i in self.ids() if self.short_id(self.key, i).startswith(prefix)]

    def find(self, prefix: str) -> OwnPostInfo | None:
        """The post whose short id is `prefix` or starts with it (a prefix must name
        one post alone)."""
        found = self.matching(prefix)
        return self.by_id(found[0]) if len(found) == 1 else None

    def by_ref(self, ref: str) -> OwnPostInfo | None:
        """The post a reference names, when it is one of the owner's."""
        head = f"o2m:{self.key}/"
        return self.by_id(ref[len(head):]) if ref.startswith(head) else None

    def title_of(self, post_id: str) -> str | None:
        """Its title, or the start of a note's text ("" when that is empty); None:
        no post of the owner's has this id."""
        post = self.by_id(post_id)
        if post is None:
            return None
        if post.title and post.title.strip():
            return " ".join(post.title.split())
        return " ".join(post.body.split())[:80]

    def replies_in(self, root: str) -> list[OwnPostInfo]:
        """The owner's own replies in the thread rooted at `root` (a reference's text):
        their posts whose `thread`, or `reply_to` when they have none, names it (§4.2),
        but drafts and posts the build would refuse (neither is published). Their own
        thread view shows them: no friend's feed brings the owner's replies to their own
        posts back to them. Every post is read, but only those holding `root`'s text are
        parsed."""
        needle = root.encode("utf-8")
        found = []
        for post_id, source in self.ids().items():
            try:
                data = (self.root / source).read_bytes()
            except OSError:
                continue
            if needle not in data:
                continue
            post = self._info(post_id, source, data)
            if (post is not None and post.problem is None and not post.draft
                    and post.ref != root and post.thread_root == root):
                found.append(post)
        return found

    def by_id(self, post_id: str) -> OwnPostInfo | None:
        source = self.ids().get(post_id)
        if source is None:
            return None
        try:
            data = (self.root / source).read_bytes()
        except OSError:
            return None
        return self._info(post_id, source, data)

    def _info(self, post_id: str, source: str, data: bytes) -> OwnPostInfo:
        """The post at `source`, whose bytes are `data`, as the owner's views show it."""
        ref = f"o2m:{self.key}/{post_id}"
        short = self.short_id(self.key, post_id)
        try:
            post = parse_post(data, source, tz=self.tz, default_audience=self.default_audience)
        except O2MError as e:
            return OwnPostInfo(source, post_id, ref, short, None, None, (), False,
                               data.decode("utf-8", "replace"), None, None, problem=str(e))
        return OwnPostInfo(source, post_id, ref, short, post.title, post.date, post.audience,
                           post.draft, post.body, post.reply_to, post.thread)
