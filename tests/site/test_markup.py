"""Markdown rendering (pure): features, typography, references."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.site.markers import resolve_markers
from o2m_pub.site.markup import MarkdownRenderer, highlight, smarten

md = MarkdownRenderer()


def test_typography():
    """Quotes, apostrophes (also in '90s), en and em dashes and ellipses become their
    typographic forms."""
    assert smarten('"Hi," she said -- it\'s the \'90s... ok --- yes') == \
        "“Hi,” she said – it’s the ’90s… ok — yes"


def test_code_is_left_alone():
    """Neither inline code nor a code block gets curly quotes or dashes; the block's
    quotes are escaped as the highlighter writes them."""
    html = md.render('Use `"x" -- y` and\n\n```\n"a" -- b...\n```\n', "content/a.md").html
    assert '<code>"x" -- y</code>' in html  # inline
    assert '<pre tabindex="0"><code>&quot;a&quot; -- b...\n</code></pre>' in html  # fenced


@given(st.text(alphabet="ab '\"-.\n", max_size=40))
def test_smarten_only_replaces_punctuation(text):
    """Typography changes punctuation only: with quotes, dashes and dots removed, the text
    is the same."""
    out = smarten(text)
    strip = str.maketrans("", "", "'\"-.\u2018\u2019\u201c\u201d\u2013\u2014\u2026")
    assert out.translate(strip) == text.translate(strip)


def test_highlight_unknown_language_is_escaped_plain_text():
    """A code block in an unknown language is escaped plain text, never markup."""
    out = highlight("<script>", "no-such-language")
    assert "&lt;script&gt;" in out and "<script>" not in out


def test_summary_words_and_toc():
    """The summary is the first paragraph as text; the word count leaves code out; headings
    make the table of contents."""
    r = md.render("First *para*graph.\n\n## One\n\ntext\n\n## Two\n\n```python\nx = 1\n```\n",
                  "content/a.md")
    assert r.summary == "First paragraph."
    assert r.word_count == 5  # First paragraph One text Two: code is not counted
    assert 'href="#one"' in r.toc and 'href="#two"' in r.toc


def test_references_become_markers_and_resolve():
    """Local media and links to other posts become markers the build resolves (with their
    fragment); external links and in-page anchors stay as written."""
    r = md.render("![i](img/a b.png) [p](../other.md#x) [w](https://w.example/) [h](#top)",
                  "content/2026/post.md")
    assert r.media == ("content/2026/img/a b.png",)
    assert r.links == ("content/other.md",)
    out = resolve_markers(r.html, lambda kind, path, frag: f"{kind}:{path}{frag}")
    assert 'src="MEDIA:content/2026/img/a b.png"' in out
    assert 'href="POST:content/other.md#x"' in out
    assert 'href="https://w.example/"' in out and 'href="#top"' in out


def test_references_outside_content_are_left_alone():
    """A reference leading out of content/ or absolute is neither media nor a link of the
    site: it stays as written."""
    r = md.render("![x](../../../etc/passwd) [y](/abs.png)", "content/a.md")
    assert r.media == () and "etc/passwd" in r.html


def test_table_alignment_needs_no_inline_style():
    """The pages' Content-Security-Policy forbids inline style (docs/CONFIG.md [serve]),
    and the obsolete align= loses to the theme's CSS (newcomer review 19, clients
    review fix 4): a column's alignment is a class the theme styles."""
    html = MarkdownRenderer().render("| a | b |\n|:-:|--:|\n| 1 | 2 |\n", "p.md").html
    assert '<td class="align-center">1</td>' in html and '<td class="align-right">2</td>' in html
    assert "style=" not in html and "align=" not in html


def test_wide_tables_and_code_scroll_within_reach_of_the_keyboard():
    """A code block and a table wider than the page scroll sideways; the keyboard
    reaches them (clients review fix 5, axe scrollable-region-focusable): <pre> takes
    the focus, and a table sits in a labelled, focusable region (not display:block,
    which can cost a table its semantics)."""
    html = MarkdownRenderer().render("| Day | km |\n|---|--:|\n| Mon | 12 |\n\n"
                                     "```python\nx = 1\n```\n\n```\nplain\n```\n", "p.md").html
    assert html.startswith('<div aria-label="Table: Day, km" class="table-wrap" role="region" '
                           'tabindex="0"><table>')
    assert html.count('<pre tabindex="0">') == 2


def test_raw_html_is_escaped_when_the_site_turns_it_off():
    """[site] raw_html = false (security review finding 13): raw HTML in a post, block
    or inline, becomes text (`<script>` shows as itself); Markdown still renders."""
    source = ('Hi <script>alert(1)</script> **bold** <img src=x onerror="alert(2)">\n\n'
              "<div onclick=\"alert(3)\">\n<script>alert(4)</script>\n</div>\n\n"
              "<!-- a comment -->\n\n[link](https://w.example/)\n")
    html = MarkdownRenderer(raw_html=False).render(source, "content/a.md").html
    assert "<script" not in html and "<img" not in html and "<div" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;div onclick=" in html and "&lt;!" in html and "<!--" not in html
    assert "<strong>bold</strong>" in html and 'href="https://w.example/"' in html
    raw = MarkdownRenderer().render(source, "content/a.md").html
    assert "<script>alert(1)</script>" in raw  # the default passes it through
