"""Fenced code blocks (``` or ~~~), found the way Python-Markdown's fenced_code
extension finds them, without importing it: that module imports codehilite, which
imports Pygments' registry of lexers (about 5 ms a build), even when every block of
the post comes from the code cache and nothing is highlighted.

The rules, as that extension applies them (tests/site/test_fences.py checks this
scanner against it on many generated texts):

- An opening fence starts a line: three or more backticks or tildes (the whole run),
  then spaces, then either `{attrs}` closing the line, or an optional `.`, a language
  of word characters and `#.+-`, spaces, and an optional `hl_lines="..."` (or '...'),
  whose value may run over lines, then spaces; then the end of the line.
- The code is everything up to the first line that is the same fence again (as long,
  of the same character), then spaces, then the end of the line or of the text.
- An opening fence without such a closing line is no fence: the scan goes on at the
  next line; after a block, at the line after its closing fence.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

_HL_LINES = "hl_lines="


class Fence(NamedTuple):
    """One block: where it starts and ends in the text (the end is that of its closing
    fence and the spaces after it), its language or attribute text, and its code."""

    start: int
    end: int
    lang: str | None  # None when the block has {attrs}
    attrs: str | None  # the text between { and }, or None
    code: str  # the lines between the fences, each with its newline


def find_fences(text: str) -> Iterator[Fence]:
    """The fenced blocks of `text`, in order."""
    n = len(text)
    line = 0
    while line < n:
        fence = _fence_at(text, line)
        if fence is not None:
            yield fence
            line = fence.end + 1  # after the closing fence's newline
            continue
        newline = text.find("\n", line)
        if newline < 0:
            return
        line = newline + 1


def _fence_at(text: str, start: int) -> Fence | None:
    """The block whose opening fence starts at `start` (a line's start), if any."""
    char = text[start]
    if char != "`" and char != "~":
        return None
    n = len(text)
    i = start
    while i < n and text[i] == char:
        i += 1
    if i - start < 3:
        return None
    fence = text[start:i]
    while i < n and text[i] == " ":
        i += 1
    for lang, attrs, code_start in _openings(text, i):
        closing = _closing(text, code_start, fence)
        if closing is not None:
            code_end, end = closing
            return Fence(start, end, lang, attrs, text[code_start:code_end])
    return None


def _is_lang_char(char: str) -> bool:
    return char.isalnum() or char in "_#.+-"


def _openings(text: str, i: int) -> Iterator[tuple[str | None, str | None, int]]:
    """(lang, attrs, where the code starts) for each way the rest of an opening line,
    from `i`, can be read, in the order the extension tries them (the first one that
    has a closing fence is the block)."""
    n = len(text)
    if i < n and text[i] == "{":  # {attrs}: the line must end right after its "}"
        newline = text.find("\n", i)
        if newline > i + 1 and text[newline - 1] == "}":
            yield None, text[i + 1:newline - 1], newline + 1
        return
    first = i + 1 if i < n and text[i] == "." else i
    last = first
    while last < n and _is_lang_char(text[last]):
        last += 1
    # the longest language first; a shorter one only where hl_lines= follows it at once
    for end in range(last, first - 1, -1):
        if end == last or text.startswith(_HL_LINES, end):
            for code_start in _line_ends(text, end):
                yield text[first:end], None, code_start


def _line_ends(text: str, p: int) -> Iterator[int]:
    """Where the code may start when the language ends at `p`: after spaces, an
    optional hl_lines="..." (its value ending at each closing quote followed by spaces
    and a newline, the nearest first), then a newline."""
    n = len(text)
    while p < n and text[p] == " ":
        p += 1
    value = p + len(_HL_LINES) + 1
    if text.startswith(_HL_LINES, p) and value <= n and text[value - 1] in "\"'":
        quote = text[value - 1]
        q = text.find(quote, value)
        while q >= 0:
            r = q + 1
            while r < n and text[r] == " ":
                r += 1
            if r < n and text[r] == "\n":
                yield r + 1
            q = text.find(quote, q + 1)
    if p < n and text[p] == "\n":
        yield p + 1


def _closing(text: str, code_start: int, fence: str) -> tuple[int, int] | None:
    """(where the code ends, where the closing fence and its spaces end) for the first
    line from `code_start` on that is `fence`, then spaces, then the end of the line."""
    n = len(text)
    at = code_start - 1  # the opening line's newline: a closing fence follows a newline
    while True:
        at = text.find("\n" + fence, at)
        if at < 0:
            return None
        end = at + 1 + len(fence)
        while end < n and text[end] == " ":
            end += 1
        if end == n or text[end] == "\n":
            return at + 1, end
        at += 1
