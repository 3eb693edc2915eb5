"""Friends' posts made safe (o2m_pub/reader/sanitize.py): pure tests, no browser.

The browser half (a payload that gets through would run, the CSP header) is in
tests/desk/test_desk_browser_reading.py; names and titles autoescaped in the desk's
pages in tests/desk/test_desk_reading.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from html.parser import HTMLParser
from types import MappingProxyType
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2m_pub.reader.sanitize import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    LINK_REL,
    MAX_MARKDOWN_CHARS,
    REPLACEMENT,
    body_text,
    display_text,
    plain_excerpt,
    render_post,
    sanitize_html,
)

ATTACHMENT_URL = "/file/abcdefghij/0"

# Known mutation-XSS vectors: namespace confusion between HTML, SVG and MathML, which
# broke sanitisers that parse once and serialise (ammonia CVE-2021-38193, DOMPurify's
# 2019-2020 bypasses, the <noscript> and <form> nesting tricks).
MXSS_VECTORS = [
    '<svg><p><style><img src=x onerror=alert(1)></style></p></svg>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;/mglyph&gt;'
    '&lt;img&Tab;src=1&Tab;onerror=alert(1)&gt;">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>',
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    '<math><mi><mglyph><svg><mtext><textarea><path id="</textarea><img onerror=alert(1) '
    'src=1>">',
    '<svg><style><img src=x onerror=alert(1)></style></svg>',
    '<math><style><img src=x onerror=alert(1)></style></math>',
    '<svg><foreignObject><iframe onload=alert(1)></iframe></foreignObject></svg>',
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">X</text></a></svg>',
    '<math href="javascript:alert(1)">CLICK</math>',
    '<svg><animate attributeName=href values=javascript:alert(1) /><a><text>X</text></a>',
    '<xmp><p title="</xmp><img src=x onerror=alert(1)>">',
    '<template><img src=x onerror=alert(1)></template>',
    '<select><template><style><!--</style><a rel="--></style></template></select>'
    '<img src=x onerror=alert(1)>">',
]


class _Tags(HTMLParser):
    """Every element and attribute of a fragment, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_safe(html: str, attachments: Mapping[str, str] = MappingProxyType({})) -> None:
    """Only allowed tags and attributes; no handler; links http(s)/mailto or a footnote;
    images only from the reader's own attachment URLs (the values of `attachments`, the
    mapping the post was rendered with); sanitising it again with that same mapping
    leaves it unchanged."""
    attachment_urls = frozenset(attachments.values())
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, html)
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel", "class"}, (tag, name)
            if name == "href":
                assert (urlsplit(value).scheme in ("http", "https", "mailto")
                        or value.startswith("#o2m-fn-") or value in attachment_urls), value
            if name == "src":
                assert value in attachment_urls, value
        if tag == "a" and "href" in attrs:
            assert attrs.get("rel") == LINK_REL
    assert sanitize_html(html, attachments).html == html  # stable: nothing mutates


def test_threat_33_script_tags_and_their_content_are_stripped():
    """`<script>` goes with its content, in Markdown and in a public post's HTML."""
    md = "Hello <script>document.title='pwned'</script> world\n\n<script>\nalert(1)\n</script>"
    out = render_post(md).html
    assert "<script" not in out.lower() and "pwned" not in out and "alert" not in out
    assert "Hello" in out and "world" in out
    assert sanitize_html("<p>a<script src=https://evil.example/x.js></script>b</p>").html \
        == "<p>ab</p>"


@pytest.mark.parametrize("payload", [
    '<img src=x onerror="document.title=1">',
    '<p onmouseover="alert(1)">hover</p>',
    '<body onload=alert(1)>',
    '<details open ontoggle=alert(1)>x</details>',
    '<a href="https://ok.example/" onclick="alert(1)">ok</a>',
    '<div style="background:url(javascript:alert(1))">x</div>',
])
def test_threat_33_event_handlers_and_styles_are_stripped(payload):
    """No `on…=` attribute and no `style` survive, in raw HTML inside Markdown too."""
    for out in (sanitize_html(payload).html, render_post(f"Text\n\n{payload}\n").html):
        assert_safe(out)
        assert "onerror" not in out and "style=" not in out


@pytest.mark.parametrize("href", [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
    "jav&#x09;ascript:alert(1)", "java\nscript:alert(1)", "&#106;avascript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "file:///etc/passwd",
    "/file/someotherpost/0", "../../admin", "//evil.example/",
])
def test_threat_33_javascript_data_and_local_links_are_stripped(href):
    """Links keep only http, https and mailto (and in-post footnotes); a relative link
    would point into the reader, so it goes too. Markdown links and raw HTML alike."""
    raw = sanitize_html(f'<a href="{href}">x</a>').html
    assert raw == f'<a rel="{LINK_REL}">x</a>'
    assert_safe(render_post(f"[x]({href})").html)


def test_threat_33_links_open_with_noopener_noreferrer_nofollow():
    """A friend's `rel` and `target` are replaced by ours."""
    out = sanitize_html('<a href="https://ok.example/" rel="opener" target="_blank">ok</a>').html
    assert out == f'<a href="https://ok.example/" rel="{LINK_REL}">ok</a>'
    out = render_post("[mail](mailto:ada@example.org) <https://auto.example/>").html
    assert f'href="mailto:ada@example.org" rel="{LINK_REL}"' in out
    assert f'href="https://auto.example/" rel="{LINK_REL}"' in out


@pytest.mark.parametrize("vector", MXSS_VECTORS)
def test_threat_33_svg_and_math_mxss_vectors_are_neutralised(vector):
    """Known mXSS vectors leave no svg, math, style or handler, and the result parses
    the same again (no mutation between parse and serialise)."""
    for out in (sanitize_html(vector).html, render_post(vector).html):
        assert_safe(out)
        lowered = out.lower()
        assert "<svg" not in lowered and "<math" not in lowered and "<style" not in lowered
        assert sanitize_html(out).html == out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([
    "<svg>", "</svg>", "<math>", "<mtext>", "<mglyph>", "<style>", "</style>", "<p>", "</p>",
    "<table>", "<img src=x onerror=alert(1)>", "<a href='javascript:alert(1)'>", "</a>",
    "<noscript>", "</noscript>", "<textarea>", '"', "'", "<!--", "-->", "<", ">", "x",
    "<form>", "</form>", "<select>", "<template>", "<iframe>", "&lt;", "<script>", "</math>",
    "![i](https://evil.example/i.png)", "[l](javascript:x)", "\n\n", "![a](photo.jpg)",
    '<img src="photo.jpg">', "[f](./photo.jpg)",
]), max_size=14))
def test_threat_33_random_tag_soup_never_yields_a_handler(parts):
    """Any mix of the usual mXSS ingredients comes out safe and stable, with and without
    attachments the post may show."""
    soup = "".join(parts)
    attachments = {"photo.jpg": ATTACHMENT_URL}
    assert_safe(sanitize_html(soup).html)
    assert_safe(render_post(soup).html)
    assert_safe(sanitize_html(soup, attachments).html, attachments)
    assert_safe(render_post(soup, attachments).html, attachments)


@pytest.mark.parametrize("source", [
    "![tracker](https://evil.example/pixel.png)",
    '<img src="https://evil.example/pixel.png" alt="tracker">',
    "<img src=//evil.example/pixel.png>",
    '<img src="x" srcset="https://evil.example/pixel.png 2x">',
    '<picture><source srcset="https://evil.example/p.png"><img src="x"></picture>',
    '<video poster="https://evil.example/p.png" src="https://evil.example/v.mp4"></video>',
    '<audio src="https://evil.example/a.mp3" autoplay></audio>',
    '<input type="image" src="https://evil.example/p.png">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<link rel="prefetch" href="https://evil.example/x">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="https://evil.example/">',
    '<table background="https://evil.example/p.png"><tr><td>x</td></tr></table>',
    '<p style="background-image:url(https://evil.example/p.png)">x</p>',
    '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/e">',
    '<iframe src="https://evil.example/"></iframe>',
    '<svg><image href="https://evil.example/p.png"/></svg>',
    "![x](data:image/png;base64,iVBORw0KGgo=)",
])
def test_threat_34_a_remote_image_causes_no_request(source):
    """Nothing that a browser would load by itself is left: no src, srcset, poster,
    background, stylesheet, base or refresh pointing anywhere but the reader."""
    out = render_post(source).html
    assert_safe(out)
    for tag, attrs in elements(out):
        for name in ("src", "srcset", "poster", "background", "style", "data"):
            assert name not in attrs or attrs[name] == ATTACHMENT_URL, (tag, attrs)


def test_threat_34_a_remote_image_becomes_a_click_to_load_link():
    """The reader sees that an image is there and where it would come from; a click
    loads it (in Markdown, in raw HTML, and in a public post's HTML)."""
    out = render_post("Look: ![the ridge](https://pics.example/ridge.jpg)").html
    assert out == (f'<p>Look: <a class="o2m-remote-image" href="https://pics.example/ridge.jpg"'
                   f' title="a remote image: click to load it from its host" rel="{LINK_REL}">'
                   "[image: the ridge (pics.example)]</a></p>")
    public = sanitize_html('<p><img src="https://pics.example/a.jpg?x=1&amp;y=2"></p>').html
    assert 'href="https://pics.example/a.jpg?x=1&amp;y=2"' in public
    assert "[image from pics.example]" in public and "<img" not in public
    linked = render_post("[![alt](https://pics.example/a.jpg)](https://site.example/)").html
    assert linked.count("<a ") == 1 and "[image: alt (pics.example)]" in linked


def test_images_attached_to_the_post_are_served_by_the_reader():
    """An image naming one of the post's attachments points to the reader's copy, in any
    spelling of the same relative path; the shown ones are reported."""
    urls = {"photo.jpg": ATTACHMENT_URL, "my pics/b w.png": "/file/abcdefghij/1"}
    md = ("![a](photo.jpg) ![b](./photo.jpg) ![c](my%20pics/b%20w.png) "
          '<img src="photo.jpg" alt="raw"> [download](photo.jpg)')
    post = render_post(md, urls)
    assert post.html.count(f'src="{ATTACHMENT_URL}"') == 3
    assert 'src="/file/abcdefghij/1"' in post.html
    assert f'href="{ATTACHMENT_URL}"' in post.html
    assert set(post.images) == {"photo.jpg", "my pics/b w.png"}
    assert_safe(post.html, urls)


def test_an_image_the_post_does_not_have_is_not_shown():
    """Local paths that are not attachments of this post (another post's file, a path
    outside, an absolute path) lose their src; the alt text stays."""
    post = render_post("![a](nope.png) ![b](/etc/passwd) ![c](../x/photo.jpg) "
                       '<img src="/file/otherpost1/0" alt="d">', {"photo.jpg": ATTACHMENT_URL})
    assert "src=" not in post.html and post.images == ()
    assert 'alt="a"' in post.html and 'alt="d"' in post.html


def test_a_local_image_with_a_query_or_fragment_shows_its_attachment():
    """`photo.jpg?v=2` and `photo.jpg#top` are the file `photo.jpg` (PROTOCOL.md §3.3):
    the build publishes them as that file, and the reader shows it."""
    post = render_post("![a](photo.jpg?v=2) ![b](./photo.jpg#top) [c](photo.jpg?dl=1)",
                       {"photo.jpg": ATTACHMENT_URL})
    assert post.html.count(f'src="{ATTACHMENT_URL}"') == 2
    assert f'href="{ATTACHMENT_URL}"' in post.html and post.images == ("photo.jpg",)


def test_attachment_names_are_matched_as_written_never_decoded():
    """A name is already decoded text (§3.3): a file named `a%20b.png`, `what?.png`,
    `#1.png` or `note:1.png` is shown for the reference that percent-encodes it, and is
    not taken for `a b.png`, `what` or a URL of the scheme "note"; names of another
    folder (`../bread/x.png`) match as they are."""
    urls = {name: f"/file/abcdefghij/{i}" for i, name in enumerate(
        ["a%20b.png", "what?.png", "#1.png", "note:1.png", "../bread/x.png", "a b.png"])}
    post = render_post("![1](a%2520b.png) ![2](what%3F.png) ![3](%231.png) "
                       "![4](note%3A1.png) ![5](../bread/x.png) ![6](a%20b.png)", urls)
    shown = re.findall(r'alt="(\d)" src="([^"]*)"', post.html)
    assert [(str(i + 1), f"/file/abcdefghij/{i}") for i in range(6)] == shown
    assert set(urls) == set(post.images)


def test_footnotes_tables_and_code_render_with_namespaced_ids():
    """The Markdown a friend may use works; ids cannot collide with the page's."""
    out = render_post("Note[^1].\n\n[^1]: Here.\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n"
                      "```\n<b>not bold</b>\n```\n").html
    assert 'id="o2m-fn-fn:1"' in out and 'href="#o2m-fn-fn:1"' in out
    assert '<th align="left">a</th>' in out and '<td align="right">2</td>' in out
    assert "&lt;b&gt;not bold&lt;/b&gt;" in out


def test_a_huge_post_is_shown_as_escaped_text():
    """Beyond the cap, Markdown is not run at all (some inputs take quadratic time)."""
    md = "<script>x</script>" + "a" * MAX_MARKDOWN_CHARS
    out = render_post(md).html
    assert out.startswith("<pre>&lt;script&gt;") and out.endswith("</pre>")


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u061c",
                                  "\u2028", "\x1b", "\x00", "\x9b"])
def test_threat_39_bidi_zero_width_and_control_characters_in_names_are_neutralised(char):
    """Each becomes a visible U+FFFD: "ad<ZWSP>min" does not pass as "admin", and a
    right-to-left override cannot flip what follows the name."""
    assert display_text(f"ad{char}min") == f"ad{REPLACEMENT}min"
    assert display_text("Ada Lovelace, Ἀριστοτέλης, 李白") == "Ada Lovelace, Ἀριστοτέλης, 李白"


def _refused_by_the_spec(ch: str) -> bool:
    """PROTOCOL.md §2.4's list, written out independently of the code's one regex:
    category Cc, U+061C, U+200B-U+200F, U+2028-U+202E, U+2060-U+2069, U+FEFF."""
    o = ord(ch)
    return (unicodedata.category(ch) == "Cc" or o in (0x061C, 0xFEFF)
            or 0x200B <= o <= 0x200F or 0x2028 <= o <= 0x202E or 0x2060 <= o <= 0x2069)


def test_threat_39_display_text_refuses_what_cards_refuse():
    """The characters a contact card's name may not hold (PROTOCOL.md §2.4), over all of
    Unicode, are the ones shown neutralised, and cards refuse exactly those too."""
    from o2m_pub.protocol.canonical import REFUSED_IN_NAME

    for o in range(0x110000):
        if 0xD800 <= o <= 0xDFFF:
            continue
        ch = chr(o)
        assert (display_text(ch) != ch) == _refused_by_the_spec(ch), hex(o)
        assert bool(REFUSED_IN_NAME.match(ch)) == _refused_by_the_spec(ch), hex(o)


def test_body_text_keeps_what_writing_needs_and_drops_terminal_escapes():
    """Newlines, tabs, emoji joiners and Persian ZWNJ stay; escapes and overrides go."""
    assert body_text("a\n\tb 👩\u200d💻 می\u200cخواهم") == "a\n\tb 👩\u200d💻 می\u200cخواهم"
    assert body_text("x\x1b[2Jy\u202ez\x07") == f"x{REPLACEMENT}[2Jy{REPLACEMENT}z{REPLACEMENT}"


def test_plain_excerpt_is_the_start_of_the_text():
    """Markdown and HTML markup go, whitespace collapses, the cut is at a word."""
    md = ("# Hi <script>alert(1)</script>\n\nSee [this](https://x.example/a_(b)) and "
          "**that** ![pic](p.png).[^1]\n\n[^1]: A note.\n- one\n- two")
    assert plain_excerpt(md) == "Hi See this and that pic. one two"
    assert plain_excerpt("word " * 100, limit=22) == "word word word word…"
