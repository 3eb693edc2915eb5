"""The markers a rendered body holds where it links to a media file or another post
(`markup` writes them), and their resolution into links when a page is written.

A post's body is rendered once and cached; where it links to lands only when the pages
are planned (a media file's name carries its hash, a post's path its date and slug). A
module of its own, light on imports: writing a page resolves markers without loading
Python-Markdown.
"""

from __future__ import annotations

import re
from typing import Callable
from urllib.parse import unquote

MEDIA_MARK = "__O2M_MEDIA__:"
POST_MARK = "__O2M_POST__:"
MARKER_RE = re.compile(r"__O2M_(MEDIA|POST)__:([^\"'\s<>#]*)(#[^\"'\s<>]*)?")


def resolve_markers(html: str, resolve: Callable[[str, str, str], str]) -> str:
    """Replace each marker by `resolve(kind, site_relative_path, fragment)` (kind:
    "MEDIA" or "POST")."""
    if "__O2M_" not in html:
        return html
    return MARKER_RE.sub(lambda m: resolve(m.group(1), unquote(m.group(2)), m.group(3) or ""),
                         html)
