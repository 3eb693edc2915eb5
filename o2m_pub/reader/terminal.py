"""A friend's public post (HTML, from their feed.json) as Markdown, for `o2m show` to
render in a terminal as it renders a private post's Markdown: code blocks verbatim,
tables as tables, images named, not shown.

Pure: untrusted HTML in, Markdown text out. Nothing of the HTML is ever rendered as
HTML: its text is escaped as Markdown text, links keep only their address (shown, not
made clickable, by the caller), scripts and styles are dropped with their content.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_DEPTH = 64  # deeper nesting is flattened: a hostile post cannot exhaust the stack
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "source", "wbr", "area",
                   "base", "col", "embed", "param", "track"})
_DROPPED = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg",
                      "math", "head", "title", "textarea", "select"})
_BLOCKS = frozenset({"p", "div", "section", "article", "main", "header", "footer", "aside",
                     "nav", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "ul",
                     "ol", "li", "blockquote", "pre", "table", "hr", "dl", "dt", "dd",
                     "details", "summary"})
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_LINE_START_SPECIAL = re.compile(r"^(\s*)(#|>|[-+]\s|\d+[.)]\s)")


class _Node:
    __slots__ = ("tag", "attrs", "children")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[_Node | str] = []


class _Tree(HTMLParser):
    """A forgiving tree of the HTML: an end tag closes up to its start tag, if open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("root", {})
        self.stack = [self.root]
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.dropping or tag in _DROPPED:
            self.dropping += tag not in _VOID
            return
        node = _Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID and len(self.stack) < MAX_DEPTH:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if self.dropping:
            self.dropping -= 1
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.stack[-1].children.append(data)


def html_to_markdown(html: str) -> str:
    """Untrusted HTML as Markdown text of the same structure.

    Args:
        html: a public post's `content_html` (or any HTML).

    Returns:
        Markdown: paragraphs, headings, lists, quotes, fenced code (text verbatim),
        pipe tables (with their columns' alignment), "[image: ALT]" for an image.
    """
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return _blocks(tree.root.children).strip() + "\n"


def _text(node: _Node | str) -> str:
    if isinstance(node, str):
        return node
    return "".join(_text(c) for c in node.children)


def _escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _inline(nodes: list[_Node | str]) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(_escape(" ".join(node.split()) if node.strip() else
                               (" " if node else "")))
            if node[:1].isspace() and node.strip():
                out[-1] = " " + out[-1]
            if node[-1:].isspace() and node.strip():
                out[-1] += " "
            continue
        inner = _inline(node.children)
        tag = node.tag
        if tag == "br":
            out.append("  \n")
        elif tag == "img":
            alt = " ".join(node.attrs.get("alt", "").split())
            out.append(_escape(f"[image: {alt}]" if alt else "[image]"))
        elif tag == "a" and {"headerlink", "footnote-backref"} & set(
                node.attrs.get("class", "").split()):
            continue  # a heading's ¶, a footnote's ↩: page furniture
        elif tag == "sup" and inner.strip():
            out.append(_escape(f"[{' '.join(_text(node).split())}]"))
        elif tag == "a":
            href = node.attrs.get("href", "")
            out.append(f"[{inner}](<{href}>)" if inner.strip() and href.startswith(
                ("https://", "http://", "mailto:")) and ">" not in href else inner)
        elif tag in ("em", "i") and inner.strip():
            out.append(f"*{inner.strip()}*")
        elif tag in ("strong", "b") and inner.strip():
            out.append(f"**{inner.strip()}**")
        elif tag in ("del", "s") and inner.strip():
            out.append(f"~~{inner.strip()}~~")
        elif tag in ("code", "kbd", "samp"):
            code = _text(node).replace("\n", " ")
            ticks = "`" * (max((len(m) for m in re.findall(r"`+", code)), default=0) + 1)
            out.append(f"{ticks} {code} {ticks}" if code.strip() else "")
        elif tag in _BLOCKS:  # a block inside inline context: its text
            out.append(" " + " ".join(_blocks([node]).split()) + " ")
        else:
            out.append(inner)
    return "".join(out)


def _paragraph(nodes: list[_Node | str]) -> str:
    text = " ".join(_inline(nodes).split(" ")).strip()
    text = re.sub(r"[ \t]{2,}(?!\n)", " ", text)
    return _LINE_START_SPECIAL.sub(r"\1\\\2", text, count=1)


def _blocks(nodes: list[_Node | str]) -> str:
    parts: list[str] = []
    run: list[_Node | str] = []

    def flush() -> None:
        if run:
            text = _paragraph(run)
            if text:
                parts.append(text)
            run.clear()

    for node in nodes:
        if isinstance(node, str) or node.tag not in _BLOCKS:
            run.append(node)
            continue
        flush()
        block = _block(node)
        if block.strip():
            parts.append(block.rstrip("\n"))
    flush()
    return "\n\n".join(parts)


def _block(node: _Node) -> str:
    tag = node.tag
    if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return "#" * int(tag[1]) + " " + " ".join(_inline(node.children).split())
    if tag == "pre":
        code = _text(node).rstrip("\n")
        fence = "~~~" if "```" in code else "```"
        return f"{fence}\n{code}\n{fence}"
    if tag in ("ul", "ol"):
        return _list(node)
    if tag == "blockquote":
        inner = _blocks(node.children)
        return "\n".join(f"> {line}" if line else ">" for line in inner.splitlines())
    if tag == "table":
        return _table(node)
    if tag == "hr":
        return "---"
    if tag == "dt":
        return f"**{' '.join(_inline(node.children).split())}**"
    if tag == "dd":
        return ": " + " ".join(_blocks(node.children).split())
    return _blocks(node.children)


def _list(node: _Node) -> str:
    ordered = node.tag == "ol"
    try:
        number = int(node.attrs.get("start", "1"))
    except ValueError:
        number = 1
    lines = []
    for item in (c for c in node.children if isinstance(c, _Node) and c.tag == "li"):
        marker = f"{number}. " if ordered else "- "
        number += 1
        body = _blocks(item.children) or " "
        pad = " " * len(marker)
        for i, line in enumerate(body.splitlines()):
            lines.append((marker if i == 0 else pad if line else "") + line)
    return "\n".join(lines)


def _cells(row: _Node) -> list[_Node]:
    return [c for c in row.children if isinstance(c, _Node) and c.tag in ("th", "td")]


def _table(node: _Node) -> str:
    rows: list[_Node] = []
    stack = [node]
    while stack:  # rows in document order, inside thead/tbody/tfoot or not
        current = stack.pop(0)
        for child in current.children:
            if isinstance(child, _Node):
                if child.tag == "tr":
                    rows.append(child)
                elif child.tag in ("thead", "tbody", "tfoot"):
                    stack.append(child)
    rows = [r for r in rows if _cells(r)]
    if not rows:
        return ""
    width = max(len(_cells(r)) for r in rows)

    def text(cell: _Node) -> str:
        return " ".join(_inline(cell.children).split()) or " "

    def align(cell: _Node) -> str:
        value = cell.attrs.get("align", "")
        for cls in cell.attrs.get("class", "").split():
            value = cls.removeprefix("align-") if cls.startswith("align-") else value
        return {"right": "--:", "center": ":-:", "left": ":--"}.get(value, "---")

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells + [" "] * (width - len(cells))) + " |"

    head, body = rows[0], rows[1:]
    out = [line([text(c) for c in _cells(head)]),
           line([align(c) for c in _cells(head)] or ["---"])]
    out += [line([text(c) for c in _cells(r)]) for r in body]
    return "\n".join(out)
