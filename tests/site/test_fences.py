"""The fence scanner (`site/fences.py`) finds the blocks Python-Markdown's fenced_code
extension finds, with the same language, attributes and code, on chosen edge cases and
on many generated texts; and rendering no longer imports that extension."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown.extensions.fenced_code import FencedBlockPreprocessor

from o2m_pub.site.fences import find_fences

_REFERENCE = FencedBlockPreprocessor.FENCED_BLOCK_RE


def _reference(text: str) -> list[tuple]:
    return [(m.start(), m.end(), m.group("lang"), m.group("attrs"), m.group("code"))
            for m in _REFERENCE.finditer(text)]


def _ours(text: str) -> list[tuple]:
    return [tuple(f) for f in find_fences(text)]


EDGE_CASES = [
    "```\ncode\n```",
    "```python\nprint(1)\n```\n",
    "~~~ .py\nx\n~~~   \nafter",
    "````\n```\n````\n",
    "```\n````\n```",
    "```{.python #id hl_lines='1'}\nx\n```",
    "```{.python} \nx\n```",  # a space after }: no fence
    "```{}\nx\n```",
    "``` python hl_lines=\"1 2\"\nx\n```",
    "```hl_lines=\"1\"\nx\n```",
    "```pythonhl_lines='2'\nx\n```",
    "```python hl_lines=\"1\n2\"\nx\n```",  # the value runs over a line
    "```python hl_lines=\"1\" x\"\ny\n```",
    "```python foo\nx\n```",
    "```\n```",
    "```\n\n```",
    "``\nx\n``",
    "text ```\nx\n```",
    "```\nno end",
    "```a\n```b\n```\n~~~\n~~~",
    "~~~\n```\n~~~\n```\n",
    "```.\nx\n```",
    "```..c++\nx\n```",
    "```c#\nx\n```\n\n```f-.+\ny\n```",
    "```é٣\nx\n```",
    "```\nx\n```\n```\ny\n```",
    "\n```\nx\n```",
    "```\nx\n``` trailing\n```",
    "```   \nx\n```",
]


def test_edge_cases_as_the_extension_reads_them():
    """Fence lengths and kinds, {attrs} (and a space after them), languages with a dot
    and symbols, hl_lines in both quotes and over a line, unclosed fences, fences that
    are not at a line's start: each read as the extension reads it."""
    for text in EDGE_CASES:
        assert _reference(text) == _ours(text), text
    assert any(_ours(text) for text in EDGE_CASES) and not _ours("```{.python} \nx\n```")


_PIECES = st.sampled_from(["`", "~", "```", "~~~", "````", " ", "  ", "\n", "\n", "{", "}",
                           ".", "#", "+", "-", "_", "=", '"', "'", "a", "py", "h",
                           "hl_lines=", 'hl_lines="1"', "é", "٣", "x y", "\t"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_generated_texts_as_the_extension_reads_them(text):
    """Any text made of the characters and words that matter to fences: the same
    blocks, at the same places, with the same groups."""
    assert _reference(text) == _ours(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_the_extension_reads_it(text):
    """Arbitrary text (mostly no fence at all): the same answer."""
    assert _reference(text) == _ours(text)


def test_rendering_does_not_import_the_fenced_code_extension():
    """A post with a fenced block renders without importing fenced_code (nor, through
    it, codehilite)."""
    script = (
        "import sys\n"
        "from o2m_pub.site.markup import MarkdownRenderer\n"
        "html = MarkdownRenderer(True).render('```text\\nhi\\n```\\n', 'content/a.md').html\n"
        "assert 'hi' in html, html\n"
        "print(' '.join(m for m in sys.modules if m.startswith('markdown.extensions')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "markdown.extensions.toc" in loaded  # (the check sees the extensions)
    assert [] == [m for m in loaded if m.endswith(("fenced_code", "codehilite"))]
