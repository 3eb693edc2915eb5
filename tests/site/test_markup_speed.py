"""The quick inline processor (markup._QuickInline) and the quick word count change the
speed of rendering a post, never its result: the same posts rendered with it and with
Python-Markdown's own inline processor give the same bytes, and words are counted as the
regular expressions counted them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown.treeprocessors import InlineProcessor

from o2m_pub.site.markup import MarkdownRenderer

BENCH = Path(__file__).resolve().parents[2] / "bench"

_TRICKY = [
    "People *useful* are. Build [through write](https://docs.example/x) of *more*",
    "[a](b.md) then **strong** and _em_ and `code` and \\*escaped\\* and &amp; &copy;",
    "![img](pic.png) ![ref][r] [ref][r] [r] and <https://x.example> <me@x.example>\n\n"
    "[r]: https://r.example",
    "line  \nbreak, <span>html</span> <!-- c --> a < b & c > d",
    "note[^1] and [^2]\n\n[^1]: one *em*\n[^2]: two",
    "*a [b *c* d](e) f* and __x__ ***y*** _under_score_ snake_case_name",
    "| a | b |\n|---|--:|\n| *x* | [y](z) |",
    "Term\n: definition with `code`\n\n*[HTML]: Hyper Text\n\nHTML here",
    "# Title {#id .cls}\n\ntext {: .x }",
    "`` a ` b `` and ``` x ``` and \\` and \\\\`y`",
]


def _stock(raw_html: bool = True) -> MarkdownRenderer:
    """A renderer with Python-Markdown's own inline processor and block loop."""
    renderer = MarkdownRenderer(raw_html=raw_html)
    renderer.md.treeprocessors.register(InlineProcessor(renderer.md), "inline", 20)
    del renderer.md.parser.parseBlocks  # the class's loop again
    renderer.md.preprocessors.deregister("o2m_quick_blocks")
    return renderer


def _bodies(tmp_path: Path) -> list[tuple[str, str]]:
    sys.path.insert(0, str(BENCH))
    try:
        import gen_site
    finally:
        sys.path.remove(str(BENCH))
    gen_site.generate(400, tmp_path, seed=3, hugo_pagination="pager")
    out = []
    for path in sorted((tmp_path / "o2m" / "content").rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        body = text.split("---", 2)[2] if text.startswith("---") else text
        out.append((body, path.relative_to(tmp_path / "o2m").as_posix()))
    return out


@pytest.mark.parametrize("raw_html", [True, False])
def test_quick_inline_and_blocks_render_the_same_html(tmp_path, raw_html):
    """Every post of a generated site (links, emphasis, code, tables, footnotes) and
    hand-written corner cases: the same RenderedBody either way, raw HTML on or off."""
    quick = MarkdownRenderer(raw_html=raw_html)
    assert type(quick.md.treeprocessors["inline"]).__name__ == "_QuickInline"
    assert quick.md.parser.parseBlocks.__qualname__ == "_QuickBlocks.parse_blocks"
    stock = _stock(raw_html)
    posts = [(text, "content/x.md") for text in _TRICKY + _TRICKY_BLOCKS] + _bodies(tmp_path)
    for body, source in posts:
        assert stock.render(body, source) == quick.render(body, source), source


# Lines of each kind a block processor takes, and near misses of them
_BLOCK_LINES = ["# Head", "## Head ##", "#no space", "Title", "=====", "-----", "--", "***",
                "* * *", "___", "- item", "* item", "+ item", "-item", "1. one", "2.two",
                "10. ten", "> quote", ">quote", "    code", "        deeper", "  - nested",
                "| a | b |", "|---|:--|", "a | b", "--|--", "Term", ": definition",
                ":no", "[^1]: a note", "[^x]:", "*[HTML]: Hyper Text", "*[X]:", "[r]: https://r.x",
                '[r2]: <https://r.x> "T"', "[not]: ", "text with *em* and [link](u)", "a: b",
                "x | y", "\\# escaped", "<div>html</div>", '<div markdown="1">*md*</div>',
                "```", "~~~ python", "", "", ""]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_BLOCK_LINES), max_size=14), st.booleans())
def test_quick_blocks_parse_any_mix_of_blocks_as_python_markdown(lines, raw_html):
    """Any mix of headings, rules, lists, quotes, code, tables, definitions, footnotes,
    abbreviations and references (and near misses of each): the same RenderedBody as with
    Python-Markdown's own block loop."""
    body = "\n".join(lines)
    assert _RENDERERS[raw_html][0].render(body, "content/x.md") == \
        _RENDERERS[raw_html][1].render(body, "content/x.md")


_RENDERERS = {raw: (_stock(raw), MarkdownRenderer(raw_html=raw)) for raw in (True, False)}


def _called_from_depth(depth: int, call):  # noqa: ANN001, ANN202
    return call() if depth == 0 else _called_from_depth(depth - 1, call)


def test_quick_blocks_nest_quotes_as_deep_as_python_markdown_from_any_depth():
    """Python-Markdown stops nesting block quotes near the recursion limit: the quick
    loop runs at the stock loop's depth of calls, so a quote of 600 levels is cut at the
    same level whatever the caller's depth (a wrapper one frame deeper cut it one level
    sooner from some depths)."""
    stock, quick = _RENDERERS[True]
    body = ">" * 600 + " deep"
    for depth in range(6):
        expected = _called_from_depth(depth, lambda: stock.render(body, "content/x.md"))
        assert _called_from_depth(depth, lambda: quick.render(body, "content/x.md")) \
            == expected, depth


def test_quick_blocks_parse_a_chunk_before_any_document():
    """An extension may call the parser before any document was converted: the quick
    loop has its list of processors from the start (it looped forever on an empty one)."""
    import xml.etree.ElementTree as ET

    parent = ET.Element("div")
    MarkdownRenderer().md.parser.parseChunk(parent, "x\n\n# h")
    assert ET.tostring(parent) == b"<div><p>x</p><h1>h</h1></div>"
_TRICKY_BLOCKS = [
    "Term\n: def\n\n    indented\n\n- a\n\n    more\n- b\n\n> q\n> > nested\n\n---",
    "1. one\n2. two\n\n    code in item\n\n* x\n\nSetext\n---\n\n| a |\n|---|\n| 1 |",
    "[^n]: note\n    more note\n\n*[ABBR]: x\n\nABBR [r]\n\n[r]: https://x.example 'T'",
]


def _words_as_before(html: str) -> tuple[str, int]:
    """`markup._summary_and_words` as it was, all regular expressions: the reference."""
    import re

    from o2m_pub.site.markup import _FIRST_PARAGRAPH, _clip, plain_text
    first = _FIRST_PARAGRAPH.search(html)
    summary = _clip(plain_text(first.group(1))) if first else ""
    without_code = re.sub(r'<div class="highlight">.*?</div>', " ", html, flags=re.S)
    return summary, len(re.findall(r"\w+", plain_text(without_code)))


_PIECES = ['<div class="highlight">', "</div>", "<p>", "</p>", "<em>", "</em>", "<br>",
           "<li>", "word", "café", "caf&#233;", "&amp;", "’", "“", "—", "snake_case", "42",
           " ", "\n", "\t", "don't", "日本語", "<span>x</span>", "<", "¶", "↩", "\xa0",
           "&nbsp;", "…", "–", "‘", "”", "x\u0301", "\x0b", "Ⅻ", "²"]


@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_words_and_summary_are_counted_as_before(pieces):
    """The faster summary and word count (str.find for the code blocks, no whitespace
    collapsed, ASCII text counted by the ASCII pattern) give what the regular
    expressions gave, for any mix of code blocks, tags, entities and scripts."""
    from o2m_pub.site.markup import _summary_and_words
    html = "".join(pieces)
    assert _summary_and_words(html) == _words_as_before(html)


def test_the_characters_made_spaces_before_counting_are_not_word_characters():
    """Making them spaces can then neither join two words nor split one."""
    import re

    from o2m_pub.site.markup import _COMMON_NOT_WORD
    assert not any(re.fullmatch(r"\w", char) for char in _COMMON_NOT_WORD)


def test_words_and_summary_of_real_posts_are_counted_as_before(tmp_path):
    """The same on every rendered post of a generated site (code blocks, typography)."""
    from o2m_pub.site.markup import _summary_and_words
    renderer = MarkdownRenderer()
    for body, source in _bodies(tmp_path)[:150]:
        html = renderer.render(body, source).html
        assert _summary_and_words(html) == _words_as_before(html)
