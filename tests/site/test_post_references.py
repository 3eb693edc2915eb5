"""How a post writes its references to files (`RenderedBody.media_refs`, learnt as the body
renders), for naming a friends-only post's files (PROTOCOL.md §3.3), and the name a
reader derives from a reference is the file the build took for it."""

from __future__ import annotations

import posixpath
from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.protocol.attachments import referenced_name
from o2m_pub.site.markers import MEDIA_MARK
from o2m_pub.site.markup import MarkdownRenderer

POST = "content/2026/notes/today.md"


def references(body: str, raw_html: bool = True) -> dict[str, list[str]]:
    """Each file the body refers to -> its references as written, in order."""
    found: dict[str, list[str]] = {}
    for target, written in MarkdownRenderer(raw_html).render(body, POST).media_refs:
        found.setdefault(target, []).append(written)
    return found


def test_each_file_gets_its_references_as_written_and_nothing_else():
    """Images, links and reference definitions to files of content/, each way of writing
    one file kept in order; links to posts, remote URLs, anchors, code and files outside
    content/ are not files of the post; the same files as the build's rendering finds."""
    body = ("![a](../bread/starter.png) ![b](x.png) [c](./x.png?v=2) ![d][r]\n\n"
            "[e](other.md) ![f](https://example.org/y.png) [g](#top) ![h](../../../secret.png)"
            " `![i](code.png)`\n\n    ![j](indented.png)\n\n```\n![k](fenced.png)\n```\n\n"
            "[r]: ../bread/rye.png\n")
    found = references(body)
    assert {"content/2026/bread/starter.png": ["../bread/starter.png"],
            "content/2026/notes/x.png": ["x.png", "./x.png?v=2"],
            "content/2026/bread/rye.png": ["../bread/rye.png"]} == found
    assert list(MarkdownRenderer().render(body, POST).media) == list(found)


def test_raw_html_is_parsed_as_the_site_says():
    """With `raw_html = false` the build escapes HTML, so an image inside an HTML block
    is Markdown again: its references are learnt as the build parses it."""
    body = "<div>\n![a](x.png)\n</div>\n"
    assert {} == references(body, raw_html=True)
    assert {"content/2026/notes/x.png": ["x.png"]} == references(body, raw_html=False)


_SEGMENTS = st.sampled_from(["..", ".", "", "notes", "2026", "content", "bread", "a b",
                             "100%", "what?", "#1", "note:1", "café", "x.png", "%20"])


@given(st.lists(_SEGMENTS, min_size=1, max_size=7), st.booleans())
def test_the_name_a_reader_derives_is_the_file_the_build_took(segments, encode):
    """For every reference the build takes as a file of content/, the name the reader
    derives from that reference alone, put in the post's folder, is that file: the
    writer may name the file by it and the reader finds it."""
    renderer = MarkdownRenderer()
    renderer.render("", POST)
    reference = "/".join(segments)
    if encode:
        reference = quote(reference)
    marker = renderer.reference(reference)
    if marker is None or not marker.startswith(MEDIA_MARK):
        return
    target = unquote(marker[len(MEDIA_MARK):].partition("#")[0])
    name = referenced_name(reference)
    assert name is not None
    assert target == posixpath.normpath(posixpath.join(posixpath.dirname(POST), name))
