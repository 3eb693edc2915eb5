"""How a post's Markdown writes each reference to a file of content/, for naming the
files of a friends-only post as its Markdown refers to them (PROTOCOL.md §3.3).

One file may be written several ways (`x.png`, `./x.png`, `../notes/x.png` from
notes/); a friend's reader knows only what is written, so each way becomes a name.
The references are found by the build's own Markdown pipeline (`markup`), so exactly
the references the build turned into files are found. A module of its own: it imports
Python-Markdown, which a build that seals no post never needs.
"""

from __future__ import annotations

from urllib.parse import unquote

from o2m_pub.site.markers import MEDIA_MARK
from o2m_pub.site.markup import MarkdownRenderer


class ReferenceFinder(MarkdownRenderer):
    """The build's Markdown pipeline, noting each reference to a file as written. Code
    blocks are not highlighted: they refer to nothing."""

    def __init__(self, raw_html: bool = True) -> None:
        super().__init__(raw_html=raw_html)
        self._written: dict[str, dict[str, None]] = {}

    def highlight(self, code: str, lang: str) -> str:
        return ""

    def reference(self, url: str) -> str | None:
        marker = super().reference(url)
        if marker is not None and marker.startswith(MEDIA_MARK):
            target = unquote(marker[len(MEDIA_MARK):].partition("#")[0])
            self._written.setdefault(target, {})[url] = None
        return marker

    def references(self, body: str, source: str) -> dict[str, list[str]]:
        """Each file the body refers to (a site-relative path, as `Rendered.media`
        names it) -> its references, as written, in order, none twice.

        Args:
            body: the post's Markdown, without its front matter.
            source: the post's site-relative path (`content/...`).
        """
        self._written = {}
        self.render(body, source)
        return {target: list(urls) for target, urls in self._written.items()}
