"""Markdown to HTML, with highlighted code and the post's references collected.

The HTML returned keeps *markers* where the body refers to other files of `content/`
(an image of a page bundle, another post's .md); the page renderer resolves them to
real links for each page (relative) and feed (absolute). That keeps this step pure
and its result cacheable by the post's bytes alone.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import posixpath
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

import markdown
from markdown.extensions import Extension
from markdown.extensions.toc import slugify_unicode
from markdown import util as markdown_util
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import InlineProcessor, Treeprocessor

from o2m_pub.site.fences import find_fences
from o2m_pub.site.markers import MEDIA_MARK, POST_MARK

MARKUP_VERSION = f"o2m-markup-2/markdown-{markdown.__version__}"
SUMMARY_CHARS = 280


@dataclass(frozen=True)
class RenderedBody:
    """A post body rendered: the HTML (with markers) and what was learned on the way."""

    html: str
    toc: str
    summary: str
    word_count: int
    media: tuple[str, ...]  # site-relative paths of referenced files in content/
    links: tuple[str, ...]  # site-relative paths of referenced posts (.md)
    # (file, reference to it as written): how a friends-only post names its files
    # (PROTOCOL.md §3.3), in order, none twice
    media_refs: tuple[tuple[str, str], ...] = ()


# What a highlighted block's HTML depends on besides its code, its language and
# Pygments' version: the options of `_lexer` and `_formatter` and what `highlight`
# adds. Change it with them: it is part of `block_key`.
HIGHLIGHT_FORMAT = ("o2m-highlight-1;stripnl=False,ensurenl=True;cssclass=highlight,"
                    "wrapcode=True;tabindex=0")


class BlockStore(Protocol):
    """Where highlighted blocks are kept between builds (site.code_cache.CodeCache)."""

    def get(self, key: str) -> str | None: ...
    def put(self, key: str, html: str) -> None: ...


@lru_cache(maxsize=1)
def _pygments_version() -> str:
    import pygments  # the package alone: no lexer, no formatter
    return pygments.__version__


def block_key(code: str, lang: str) -> str:
    """A block's key in a `BlockStore`: everything its HTML depends on."""
    return hashlib.sha256(f"{HIGHLIGHT_FORMAT}\0{_pygments_version()}\0{lang.lower()}"
                          f"\0{code}".encode()).hexdigest()


@lru_cache(maxsize=4096)
def highlight(code: str, lang: str) -> str:
    """Highlight one code block with Pygments; cached, since the same snippet recurs
    across posts and this is the most expensive step of a build (`HIGHLIGHT_FORMAT`
    names what this adds and the options it uses: change both together)."""
    from pygments import highlight as pygments_highlight
    from pygments.util import ClassNotFound

    try:
        lexer = _lexer(lang.lower()) if lang else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        cls = f' class="language-{html_lib.escape(lang)}"' if lang else ""
        html = f'<div class="highlight"><pre><code{cls}>{html_lib.escape(code)}</code></pre></div>'
    else:
        html = pygments_highlight(code, lexer, _formatter())
    # a block wider than the page scrolls: the keyboard must reach it too (WCAG 2.1.1)
    return html.replace("<pre>", '<pre tabindex="0">', 1)


@lru_cache(maxsize=256)
def _lexer(name: str):  # noqa: ANN202 - a pygments Lexer
    from pygments.lexers import get_lexer_by_name
    return get_lexer_by_name(name, stripnl=False, ensurenl=True)


@lru_cache(maxsize=1)
def _formatter():  # noqa: ANN202 - a pygments Formatter
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter(cssclass="highlight", wrapcode=True)


class _FencedCode(Preprocessor):
    """Fenced code blocks (``` or ~~~ with an optional language), highlighted through
    the renderer's caches and kept out of further Markdown processing. Found by
    `fences.find_fences`, as Python-Markdown's fenced_code extension finds them,
    without importing it (nor, through it, Pygments' lexers)."""

    def __init__(self, md: markdown.Markdown, owner: "MarkdownRenderer") -> None:
        super().__init__(md)
        self.owner = owner

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        out, pos = [], 0
        for block in find_fences(text):
            lang = block.lang or ""
            if block.attrs:
                classes = re.findall(r"\.([\w#.+-]+)", block.attrs)
                lang = classes[0] if classes else ""
            placeholder = self.md.htmlStash.store(self.owner.highlight(block.code, lang))
            out.append(text[pos:block.start])
            out.append(f"\n\n{placeholder}\n\n")
            pos = block.end
        if not out:
            return lines
        out.append(text[pos:])
        return "".join(out).split("\n")


# What a text must contain for each of Python-Markdown's inline patterns to match it
# (from their regular expressions), checked only when the pattern is of this class.
_INLINE_TRIGGERS = {
    "backtick": ("BacktickInlineProcessor", ("`",)),
    "escape": ("EscapeInlineProcessor", ("\\",)),
    "footnote": ("FootnoteInlineProcessor", ("[^",)),
    "reference": ("ReferenceInlineProcessor", ("[",)),
    "link": ("LinkInlineProcessor", ("[",)),
    "image_link": ("ImageInlineProcessor", ("![",)),
    "image_reference": ("ImageReferenceInlineProcessor", ("![",)),
    "short_reference": ("ShortReferenceInlineProcessor", ("[",)),
    "short_image_ref": ("ShortImageReferenceInlineProcessor", ("![",)),
    "autolink": ("AutolinkInlineProcessor", ("<",)),
    "automail": ("AutomailInlineProcessor", ("<",)),
    "linebreak": ("SubstituteTagInlineProcessor", ("  \n",)),
    "html": ("HtmlInlineProcessor", ("<",)),
    "entity": ("HtmlInlineProcessor", ("&",)),
    "em_strong": ("DelimiterProcessor", ("*", "_")),
}


class _QuickInline(InlineProcessor):
    """Python-Markdown's inline processor, which skips a pattern when the text lacks a
    string the pattern cannot match without (a link needs a "[").

    The stock processor tries every pattern on every piece of text, most in vain:
    that was the largest single cost of rendering a post. Skipping is exact: a
    pattern tried in vain leaves the text as it was and the search position back at
    0, as a skip does here; the HTML is the same, byte for byte
    (tests/site/test_markup_speed.py renders the generated bench site's posts both
    ways). A pattern not in `_INLINE_TRIGGERS`, or replaced by one of another class,
    is always tried; a Python-Markdown without the two private methods this leans on
    gets its own loop back (below)."""

    def run(self, tree: ET.Element, ancestors: list[str] | None = None) -> ET.Element:
        patterns = self.inlinePatterns
        self._triggers: list[tuple[str, ...] | None] = [None] * len(patterns)
        for name, (kind, trigger) in _INLINE_TRIGGERS.items():
            if name in patterns and type(patterns[name]).__name__ == kind:
                self._triggers[patterns.get_index_for_name(name)] = trigger
        return super().run(tree, ancestors)

    def _InlineProcessor__handleInline(self, data: str, patternIndex: int = 0) -> str:  # noqa: N802, N803
        # InlineProcessor.__handleInline, with the skip (Python-Markdown 3.x)
        if isinstance(data, markdown_util.AtomicString):
            return data
        patterns, triggers = self.inlinePatterns, self._triggers
        apply = self._InlineProcessor__applyPattern  # type: ignore[attr-defined]
        start, count = 0, len(patterns)
        while patternIndex < count:
            trigger = triggers[patternIndex]
            if trigger is not None:
                for t in trigger:  # a loop, not any(): this runs for every text node
                    if t in data:
                        break
                else:
                    patternIndex, start = patternIndex + 1, 0
                    continue
            data, matched, start = apply(patterns[patternIndex], data, patternIndex, start)
            if not matched:
                patternIndex += 1
        return data


if not all(hasattr(InlineProcessor, name) for name in (
        "_InlineProcessor__handleInline", "_InlineProcessor__applyPattern")):
    # a Python-Markdown whose private names changed: its own loop, unchanged (slower)
    del _QuickInline._InlineProcessor__handleInline


# What a block must contain for each of Python-Markdown's block processors to take it
# (from their regular expressions), by the processor's class: a subclass, or any other
# processor, is always asked. None: a tab's width of spaces (an indented block).
_BLOCK_TRIGGERS: dict[str, tuple[str, ...] | None] = {
    "ListIndentProcessor": None,
    "DefListIndentProcessor": None,
    "CodeBlockProcessor": None,
    "TableProcessor": ("|",),
    "HashHeaderProcessor": ("#",),
    "SetextHeaderProcessor": ("\n=", "\n-"),
    "HRProcessor": ("-", "_", "*"),
    "SaneOListProcessor": (". ",),
    "SaneUListProcessor": ("* ", "+ ", "- "),
    "DefListProcessor": (": ",),
    "BlockQuoteProcessor": (">",),
    "FootnoteBlockProcessor": ("[^",),
    "AbbrBlockprocessor": ("*[",),
    "ReferenceProcessor": ("]:",),
}


class _QuickBlocks(Preprocessor):
    """Python-Markdown's block loop (`BlockParser.parseBlocks`, public for extensions
    to call), which skips a processor when the block lacks a string the processor
    cannot take it without (a table needs a "|").

    The stock loop calls every processor's `test` on every block (several answer yes to
    any block, then search it in `run`), and rebuilds the list of processors for
    each block: that loop took about a sixth of the time to render a post. Skipping is
    exact, as `_QuickInline`'s: a processor passed over would have declined the block
    and left it as it was (tests/site/test_markup_speed.py renders generated posts and
    any mix of block kinds both ways). The processors are listed when it is made and
    again before each document (as the last preprocessor, which changes no line), in
    the registry's order; the loop runs at the stock one's depth of calls, which a
    block quote's nesting limit counts."""

    def __init__(self, md: markdown.Markdown) -> None:
        super().__init__(md)
        self.indent = " " * md.tab_length
        self.plan: list[tuple[object, tuple[str, ...] | None]] = []
        self.list_processors()
        md.parser.parseBlocks = self.parse_blocks
        md.preprocessors.register(self, "o2m_quick_blocks", 0)

    def run(self, lines: list[str]) -> list[str]:
        self.list_processors()
        return lines

    def list_processors(self) -> None:
        self.plan = []
        for processor in self.md.parser.blockprocessors:  # (sorted by priority)
            name = type(processor).__name__
            if name not in _BLOCK_TRIGGERS:
                self.plan.append((processor, None))
            else:
                self.plan.append((processor, _BLOCK_TRIGGERS[name] or (self.indent,)))

    def parse_blocks(self, parent: ET.Element, blocks: list[str]) -> None:
        plan = self.plan
        while blocks:
            for processor, trigger in plan:
                block = blocks[0]
                if trigger is not None:
                    for t in trigger:  # a loop, not any(): this runs for every block
                        if t in block:
                            break
                    else:
                        continue
                if processor.test(parent, block) and processor.run(parent, blocks) is not False:
                    break


class _References(Treeprocessor):
    """Turn references to files of content/ into markers (see the module docstring)."""

    def __init__(self, md: markdown.Markdown, owner: "MarkdownRenderer") -> None:
        super().__init__(md)
        self.owner = owner

    def run(self, root: ET.Element) -> None:
        owner = self.owner
        for el in root.iter():
            for attr in ("src", "href"):
                value = el.get(attr)
                if value:
                    new = owner.reference(value)
                    if new is not None:
                        el.set(attr, new)


_ALIGN_CLASSES = {"left": "align-left", "right": "align-right", "center": "align-center"}


class _Tables(Treeprocessor):
    """Markdown tables made fit for the pages' CSP and for the keyboard: a column's
    alignment becomes a class (``align-right``; the CSP allows no ``style=``, and
    ``align=`` is obsolete and loses to the theme's CSS), and each table sits in a
    focusable, labelled region that scrolls sideways (a table that stays a table)."""

    def run(self, root: ET.Element) -> None:
        for parent in list(root.iter()):
            for i, child in enumerate(list(parent)):
                if child.tag == "table" and parent.get("class") != "table-wrap":
                    self._classes(child)
                    parent[i] = self._wrap(child)

    @staticmethod
    def _classes(table: ET.Element) -> None:
        for cell in table.iter():
            align = cell.attrib.pop("align", None) if cell.tag in ("th", "td") else None
            if align in _ALIGN_CLASSES:
                cell.set("class", " ".join(filter(None, (cell.get("class"),
                                                         _ALIGN_CLASSES[align]))))

    @staticmethod
    def _wrap(table: ET.Element) -> ET.Element:
        heads = [" ".join("".join(th.itertext()).split()) for th in table.iter("th")]
        label = ", ".join(h for h in heads if h)
        label = f"Table: {label[:80]}{'…' if len(label) > 80 else ''}" if label else "Table"
        wrap = ET.Element("div", {"class": "table-wrap", "role": "region",
                                  "aria-label": label, "tabindex": "0"})
        wrap.tail, table.tail = table.tail, None
        wrap.append(table)
        return wrap


_FIRST_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
_CODE_OPEN, _CODE_CLOSE = '<div class="highlight">', "</div>"
_WORD = re.compile(r"\w+")
# Characters that are not word characters and that most posts' text has: the
# permalinks' ¶, the footnotes' ↩, no-break spaces and typography. Each becomes a
# space (which leaves every word as it was), so most texts become ASCII, whose words
# are counted by bytes.translate and split: a quarter of the time of \w+.
_COMMON_NOT_WORD = "\u00b6\u21a9\u00a0\u2018\u2019\u201c\u201d\u2013\u2014\u2026"
# every byte but an ASCII letter, digit or "_" (the ASCII \w) becomes a space (a table
# has 256 entries; only ASCII text is translated, so the upper half is never used)
_ASCII_SPACES = bytes(c if chr(c).isalnum() or c == 0x5F else 0x20 for c in range(128)) \
    + b" " * 128
_BLOCK_TAG = re.compile(r"</?(?:p|div|li|h\d|br|tr|td|th|dt|dd|blockquote|pre|ul|ol|table|hr)\b[^>]*>")
_TAG = re.compile(r"<[^>]+>")


def plain_text(html: str) -> str:
    """The text of an HTML fragment, whitespace collapsed (block tags separate words,
    inline tags don't: "para<em>graph</em>" is one word)."""
    return " ".join(html_lib.unescape(_TAG.sub("", _BLOCK_TAG.sub(" ", html))).split())


def _summary_and_words(html: str) -> tuple[str, int]:
    """The first paragraph's text, clipped; and the words outside code blocks, counted
    as in `plain_text` (without its whitespace collapsed, which no count needs)."""
    first = _FIRST_PARAGRAPH.search(html)
    summary = _clip(plain_text(first.group(1))) if first else ""
    text = html_lib.unescape(_TAG.sub("", _BLOCK_TAG.sub(" ", _without_code_blocks(html))))
    return summary, _count_words(text)


def _count_words(text: str) -> int:
    """The runs of word characters (\\w+) in `text`, counted by bytes where the text
    allows (`_COMMON_NOT_WORD`): the regular expression was half of this step."""
    for char in _COMMON_NOT_WORD:
        if char in text:
            text = text.replace(char, " ")
    if text.isascii():
        return len(text.encode("ascii").translate(_ASCII_SPACES).split())
    return len(_WORD.findall(text))


def _without_code_blocks(html: str) -> str:
    """`html` with each highlighted block, up to the first ``</div>`` after its start,
    replaced by a space (`highlight` makes them; str.find, not a regex: several times
    faster over a block's many spans)."""
    start = html.find(_CODE_OPEN)
    if start < 0:
        return html
    out, pos = [], 0
    while start >= 0:
        end = html.find(_CODE_CLOSE, start + len(_CODE_OPEN))
        if end < 0:
            break
        out += (html[pos:start], " ")
        pos = end + len(_CODE_CLOSE)
        start = html.find(_CODE_OPEN, pos)
    out.append(html[pos:])
    return "".join(out)


def _clip(text: str) -> str:
    if len(text) <= SUMMARY_CHARS:
        return text
    cut = text[:SUMMARY_CHARS].rsplit(" ", 1)[0].rstrip(",;:.-–—")
    return cut + "…"


_PUNCT = re.compile(r"---|--|\.\.\.|[\"']")
_OPENING_CONTEXT = frozenset(" \t\n\r([{\u2013\u2014/-")
_NO_TYPOGRAPHY = frozenset({"code", "pre", "kbd", "samp", "script", "style", "math"})


def smarten(text: str, after_element: bool = False, before_element: bool = False) -> str:
    """Typographic quotes, dashes and ellipses ("SmartyPants" rules) for one run of text.

    One compiled regex over the finished text is several times faster than the
    `smarty` extension's dozen inline patterns, which doubled the time to render a
    post (docs/adr/0002-fast-typography.md). `after_element` and `before_element` say
    the text touches an inline element at its start or end (so a quote there is next
    to a word, not to a space)."""
    if not text or ('"' not in text and "'" not in text and "--" not in text
                    and "..." not in text):
        return text

    def sub(m: re.Match[str]) -> str:
        token, i = m.group(), m.start()
        if token == "---":
            return "\u2014"
        if token == "--":
            return "\u2013"
        if token == "...":
            return "\u2026"
        before = text[i - 1] if i else ("x" if after_element else " ")
        after = text[i + 1] if i + 1 < len(text) else ("x" if before_element else " ")
        opening = before in _OPENING_CONTEXT and not after.isspace()
        if token == '"':
            return "\u201c" if opening else "\u201d"
        if before.isalnum() and after.isalnum():
            return "\u2019"  # it's, don't
        if opening and after.isdigit():
            return "\u2019"  # '90s
        return "\u2018" if opening else "\u2019"

    return _PUNCT.sub(sub, text)


class _Typography(Treeprocessor):
    """Applies `smarten` to every text node outside code."""

    def run(self, root: ET.Element) -> None:
        self._walk(root)

    def _walk(self, el: ET.Element, followed: bool = False) -> None:
        children = list(el)
        if el.tag not in _NO_TYPOGRAPHY:
            if el.text:
                el.text = smarten(el.text, before_element=bool(children))
            for i, child in enumerate(children):
                self._walk(child, followed=i + 1 < len(children))
        if el.tail:
            el.tail = smarten(el.tail, after_element=True, before_element=followed)


class _O2MExtension(Extension):
    def __init__(self, owner: "MarkdownRenderer") -> None:
        super().__init__()
        self.owner = owner

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Markdown's API
        md.preprocessors.register(_FencedCode(md, self.owner), "o2m_fenced_code", 25)
        md.treeprocessors.register(_QuickInline(md), "inline", 20)  # the stock one's place
        md.treeprocessors.register(_Typography(md), "o2m_typography", 15)
        md.treeprocessors.register(_References(md, self.owner), "o2m_references", 1)
        md.treeprocessors.register(_Tables(md), "o2m_tables", 2)


class _EscapeRawHTML(Extension):
    """Raw HTML is shown as text (`[site] raw_html = false`): without the preprocessor
    that stashes HTML blocks (md_in_html's, which replaces the core one under the same
    name) and the inline pattern that passes tags through, Python-Markdown escapes
    `<` and `&` like any other text. Autolinks (`<https://…>`) and entities stay."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Markdown's API
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


class MarkdownRenderer:
    """One reusable Markdown pipeline (building it costs more than a small post).

    With `raw_html` false, raw HTML in a post is escaped (docs/CONFIG.md: for hosts that
    are not `o2m serve`, which have no Content-Security-Policy to stop a `<script>`).
    With a `code_cache`, highlighted code blocks are looked for there first and kept
    there (the build gives it one: `site.code_cache`)."""

    def __init__(self, raw_html: bool = True, code_cache: BlockStore | None = None) -> None:
        self.raw_html = raw_html
        self.code_cache = code_cache
        # The extensions as objects, not names: a name makes Python-Markdown look
        # through every installed package's entry points (importlib.metadata), 10-25 ms
        # of a one-post build in a fresh process.
        from markdown.extensions.abbr import AbbrExtension
        from markdown.extensions.attr_list import AttrListExtension
        from markdown.extensions.def_list import DefListExtension
        from markdown.extensions.footnotes import FootnoteExtension
        from markdown.extensions.md_in_html import MarkdownInHtmlExtension
        from markdown.extensions.sane_lists import SaneListExtension
        from markdown.extensions.tables import TableExtension
        from markdown.extensions.toc import TocExtension

        self.md = markdown.Markdown(
            extensions=[
                _O2MExtension(self),
                # align="..." rather than style="...", made a class by _Tables: the
                # pages' CSP allows no inline style
                TableExtension(use_align_attribute=True),
                FootnoteExtension(BACKLINK_TITLE="Back to the text"),
                AttrListExtension(), DefListExtension(), AbbrExtension(), SaneListExtension(),
                MarkdownInHtmlExtension(),
                TocExtension(permalink="¶", permalink_title="Link to this section",
                             slugify=slugify_unicode, toc_depth="2-4"),
            ],
            output_format="html",
        )
        if not raw_html:  # after md_in_html, whose preprocessor it removes
            _EscapeRawHTML().extendMarkdown(self.md)
        _QuickBlocks(self.md)
        self._source_dir = ""
        self._media: dict[str, dict[str, None]] = {}  # file -> its references as written
        self._links: dict[str, None] = {}

    def highlight(self, code: str, lang: str) -> str:
        """A code block highlighted: from this process's memory, else from the code
        cache, else made by Pygments (and kept in both)."""
        store = self.code_cache
        if store is None:
            return highlight(code, lang)
        key = block_key(code, lang)
        html = store.get(key)
        if html is None:
            html = highlight(code, lang)
            store.put(key, html)
        return html

    def render(self, body: str, source: str) -> RenderedBody:
        """Render one post's Markdown body; `source` is its site-relative path."""
        self.md.reset()
        self._source_dir = posixpath.dirname(source)
        self._media, self._links = {}, {}
        html = self.md.convert(body)
        tokens = getattr(self.md, "toc_tokens", [])
        toc = self.md.toc if _count_tokens(tokens) >= 2 else ""
        summary, words = _summary_and_words(html)
        return RenderedBody(html=html, toc=toc, summary=summary, word_count=words,
                        media=tuple(self._media), links=tuple(self._links),
                        media_refs=tuple((target, written) for target, refs in
                                         self._media.items() for written in refs))

    def reference(self, url: str) -> str | None:
        """A marker for a relative reference into content/, or None to leave it alone."""
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path or parts.path.startswith("/"):
            return None
        target = posixpath.normpath(posixpath.join(self._source_dir, unquote(parts.path)))
        if not target.startswith("content/") or "\x00" in target:
            return None
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        if target.endswith(".md"):
            self._links[target] = None
            return f"{POST_MARK}{quote(target)}{fragment}"
        self._media.setdefault(target, {})[url] = None
        return f"{MEDIA_MARK}{quote(target)}{fragment}"


def _count_tokens(tokens: list[dict]) -> int:
    return sum(1 + _count_tokens(t.get("children", [])) for t in tokens)
