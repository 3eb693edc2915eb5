"""Friends' posts made safe to show: in a browser (HTML) and in a terminal (text).

A friend's post is Markdown source (PROTOCOL.md §3.3: "a reader re-renders the Markdown
itself and never trusts HTML from a friend"). Markdown allows raw HTML, so whatever a
friend writes, or whoever holds their key, can put `<script>`, `onerror=`,
`javascript:` links or `<svg>`/`<math>` mutation-XSS payloads into it. This module is
the pure core that stands between those bytes and the reader:

1. render the Markdown here, with a fixed, small set of extensions (no `attr_list`, no
   `md_in_html`: a friend sets no attributes); raw HTML in it passes through to step 2;
2. sanitise with nh3 (ammonia): an allow-list of tags and attributes, links only to
   http, https and mailto with ``rel="noopener noreferrer nofollow"``, ids namespaced,
   images only from the post's own attachments, which point to the reader's copy
   (THREATS.md 33). A remote image becomes a link the reader clicks to load it
   (THREATS.md 34: rendering requests nothing); that rewrite runs between two nh3
   passes, so nh3 always has the last word. The reader's Content-Security-Policy is
   the backstop, not the defence.

Public posts come as HTML (`content_html` of their feed.json): they take step 2 only.

Names, titles and tags are text, never HTML: templates autoescape them (THREATS.md 36),
and :func:`display_text` first replaces the characters a contact card may not hold
(bidi controls, zero-width characters, control characters; PROTOCOL.md §2.4,
THREATS.md 39) so a name cannot reorder or hide what follows it, on a page or in a
terminal (where a control character could be an escape sequence).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

from o2m_pub.protocol.attachments import referenced_name
from o2m_pub.protocol.canonical import REFUSED_IN_NAME

# A post bigger than this is shown as plain text: Python-Markdown has inputs that take
# quadratic time, and no real post is a megabyte of Markdown.
MAX_MARKDOWN_CHARS = 512 * 1024
REPLACEMENT = "\ufffd"
MAX_PASSES = 4  # nh3 passes until the output is stable (see `sanitize_html`)
LINK_REL = "noopener noreferrer nofollow"
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
ID_PREFIX = "o2m-fn-"
REMOTE_IMAGE_CLASS = "o2m-remote-image"

# What a post may use: text structure, lists, tables, code, links, images. No forms,
# no media elements, no <svg>/<math>, no <style>, no <bdo> (it would reorder text),
# no <area>/<map> (links without a visible anchor).
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "blockquote", "br", "caption", "cite", "code", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
    "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "tr", "u", "ul", "var", "wbr",
})
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan", "scope"},
    "li": {"id"},  # footnotes (namespaced by ID_PREFIX)
    "sup": {"id"},
    "time": {"datetime"},
}
# Their content goes with them, not only the tags.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "iframe",
                                  "object", "embed", "textarea", "title", "xmp", "noembed",
                                  "noframes", "svg", "math"})


@dataclass(frozen=True)
class SafePost:
    """A friend's post body, rendered and sanitised: `html` is safe to put in a page
    unescaped; `images` are the attachment names the body shows inline."""

    html: str
    images: tuple[str, ...]


# ---------------------------------------------------------------- text


# The characters §2.4 refuses in a card's name: control characters, bidi controls,
# zero-width characters, line separators.
_SUSPECT = REFUSED_IN_NAME
# In a post's text: control characters but newline and tab (in a terminal they are
# escape sequences; Python-Markdown uses STX/ETX internally), and the bidi embeddings,
# overrides and isolates, which could reorder the lines around them. Zero-width joiners
# and marks stay: emoji sequences and several scripts need them.
_SUSPECT_IN_BODY = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def display_text(text: str) -> str:
    """`text` with every bidi control, zero-width and control character replaced by
    U+FFFD, visibly (THREATS.md 39): stripping would let "ad\u200bmin" pass as "admin".

    For names, titles and tags, on pages (before autoescaping) and in a terminal, where
    a control character could be an escape sequence."""
    return _SUSPECT.sub(REPLACEMENT, text)


def body_text(text: str) -> str:
    """A post's text with control characters (but newlines and tabs) and bidi
    overrides replaced by U+FFFD: for a terminal, and before rendering Markdown."""
    return _SUSPECT_IN_BODY.sub(REPLACEMENT, text)


def plain_excerpt(markdown_source: str, limit: int = 140) -> str:
    """The start of a post's text, for a timeline line when it has no title: Markdown
    punctuation and HTML tags dropped, whitespace collapsed, cut at a word."""
    text = markdown_source[: limit * 8]
    text = re.sub(r"```.*?(```|$)", " ", text, flags=re.S)  # code blocks
    text = re.sub(r"<(script|style)\b.*?(</\1\s*>|$)", " ", text, flags=re.S | re.I)
    text = re.sub(r"(?m)^\[\^[^\]]*\]:.*$", " ", text)  # footnote texts
    text = re.sub(r"\[\^[^\]]*\]", "", text)  # footnote marks
    text = re.sub(r"!\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)", r"\1", text)  # images: alt
    text = re.sub(r"\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)", r"\1", text)  # links: text
    text = re.sub(r"<[^>]*>", " ", text)
    text = re.sub(r"(?m)^\s{0,3}(#{1,6}|>|[-*+]|\d+[.)])\s+", "", text)
    text = re.sub(r"[*_`~]+", "", text)
    return clip(body_text(" ".join(text.split())), limit)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word, with "…" when it was cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(",;:.-") + "…"


# ---------------------------------------------------------------- Markdown


def _is_remote(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme.lower() in ("http", "https") or (not parts.scheme and bool(parts.netloc))


class _Renderer:
    """One Markdown pipeline for friends' posts, with a fixed, small set of extensions
    (no `attr_list` or `md_in_html`: a friend sets no attributes). Reused, since building
    one costs more than rendering a small post; not thread-safe (posts are rendered one
    at a time, in `render.py`'s child process, whose limits bound its cost)."""

    def __init__(self) -> None:
        import markdown  # only when a post is rendered: `o2m timeline` needs none

        self.md = markdown.Markdown(
            extensions=["tables", "footnotes", "def_list", "abbr", "sane_lists", "fenced_code"],
            extension_configs={"tables": {"use_align_attribute": True},
                               "footnotes": {"BACKLINK_TITLE": "Back to the text"}},
            output_format="html",
        )

    def render(self, source: str) -> str:
        self.md.reset()
        return self.md.convert(source)


_renderer: _Renderer | None = None


def markdown_to_html(source: str) -> str:
    """A friend's Markdown as (still untrusted) HTML: raw HTML in it passes through."""
    global _renderer
    if _renderer is None:
        _renderer = _Renderer()
    return _renderer.render(source)


# ---------------------------------------------------------------- nh3


class _RemoteImages(HTMLParser):
    """Rewrites nh3's (well-formed) output with every remote `<img>` made a link to it:
    a click loads it, rendering does not (THREATS.md 34). Its output is sanitised again."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self.links = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img" and _is_remote(values.get("src", "")):
            self.out.append(self._link(values["src"].strip(), values.get("alt", "")))
            return
        if tag == "a":
            self.links += 1
        self.out.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.links -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self.links -= 1
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def _link(self, src: str, alt: str) -> str:
        host = urlsplit(src).hostname or "?"
        label = escape(f"[image: {alt} ({host})]" if alt else f"[image from {host}]")
        if self.links > 0:  # no link inside a link: say what is there
            return f"<span>{label}</span>"
        return (f'<a class="{REMOTE_IMAGE_CLASS}" href="{escape(src)}" '
                f'title="a remote image: click to load it from its host">{label}</a>')


def _clean(html: str, local: Mapping[str, str], shown: dict[str, None],
           keep_remote_images: bool) -> tuple[str, bool]:
    """One nh3 pass; returns the clean HTML and whether a remote image was kept."""
    import nh3

    allowed_urls = frozenset(local.values())
    remote = False

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        nonlocal remote
        if (tag, attr) == ("img", "src"):
            key = referenced_name(value)  # the attachment it means (PROTOCOL.md §3.3)
            if key is not None and key in local:
                shown.setdefault(key, None)
                return local[key]
            if value in allowed_urls:
                return value
            if keep_remote_images and _is_remote(value):
                remote = True
                return value
            return None  # data:, a file the post does not have, or a remote image: gone
        if (tag, attr) == ("a", "href"):
            key = referenced_name(value)
            if key is not None and key in local:
                return local[key]
        return value

    def relative_url(url: str) -> str | None:
        if url.startswith("#") and len(url) > 1:  # a footnote: its target is namespaced
            return url if url.startswith("#" + ID_PREFIX) else "#" + ID_PREFIX + url[1:]
        return url if url in allowed_urls else None  # it would point into the reader

    clean = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=attribute_filter,
        url_schemes=set(LINK_SCHEMES),
        url_relative=relative_url,
        link_rel=LINK_REL,
        allowed_classes={"a": {REMOTE_IMAGE_CLASS}},
        id_prefix=ID_PREFIX,
        strip_comments=True,
    )
    return clean, remote


def sanitize_html(html: str, attachments: Mapping[str, str] | None = None) -> SafePost:
    """`html` from a friend with everything dangerous removed (THREATS.md 33, 34).

    nh3 runs last: a first pass makes the HTML well formed and safe; if it kept a remote
    image, the images are rewritten into links and a second nh3 pass, with remote
    images forbidden, cleans the result again. The result is cleaned once more to check
    that it is stable: sanitising it again changes nothing.

    Args:
        html: untrusted HTML (a public post's `content_html`, or the local rendering of
            a friend's Markdown).
        attachments: the post's attachment names to the reader's URLs for them; an
            `<img>` may show these and nothing else.

    Returns:
        HTML safe to insert unescaped into a reader page, and the attachments it shows.
    """
    # §3.3: a name is already decoded and normal: compared as it is, never read as a
    # URL (a file named "a%20b.png" or "what?.png" is not "a b.png" or "what")
    local = dict(attachments or {})
    shown: dict[str, None] = {}
    clean, remote = _clean(html, local, shown, keep_remote_images=True)
    if remote:
        rewriter = _RemoteImages()
        rewriter.feed(clean)
        rewriter.close()
        clean, _ = _clean("".join(rewriter.out), local, shown, keep_remote_images=False)
    # The mutation-XSS check: what a browser parses from our output must be what we
    # sanitised. Markup that does not survive its own re-parse (e.g. <p> inside <p>
    # out of a <select>) is cleaned again until it does.
    for _ in range(MAX_PASSES):
        again, _ = _clean(clean, local, shown, keep_remote_images=False)
        if again == clean:
            return SafePost(clean, tuple(shown))
        clean = again
    return SafePost(f"<pre>{escape(html)}</pre>", ())  # never seen: give up on markup


def render_post(markdown_source: str, attachments: Mapping[str, str] | None = None) -> SafePost:
    """A friend's Markdown rendered here and sanitised (PROTOCOL.md §3.3).

    Args:
        markdown_source: the post's `markdown` field, as the friend wrote it.
        attachments: each attachment's `name` (as in the post) to the URL the reader
            serves it at; images naming one are shown, other local images are not.

    Returns:
        The safe HTML and the attachment names shown inline (the reader lists the rest).
    """
    source = body_text(markdown_source)
    if len(source) > MAX_MARKDOWN_CHARS:
        return SafePost(f"<pre>{escape(source)}</pre>", ())
    return sanitize_html(markdown_to_html(source), attachments)
