"""W3C Webmention (https://www.w3.org/TR/webmention/; PROTOCOL.md §1.6), the network
half: discovering a target's endpoint and sending to it, and verifying a received
mention by reading its source. What to send and what was received is the site's
(`site.mentions`); the command wires the two together.

Pure parts, tested without sockets: `endpoint_from_headers` and `endpoint_from_html`
(discovery, Webmention §3.1.2), `links_in` (what a source links to, §3.2.2), and
`facts_from_mf2` (who wrote it and what kind of response it is, from its microformats).
`discover`, `send`, `verify` and `links_of` do the I/O through `public_web.request`,
with its caps and its rule on local addresses.

Microformats are parsed by mf2py and classified by mf2util in a child process with
hard limits (`_mf2_child`): a hostile page can make a parser recurse or run for seconds,
and that must not happen in the server's process (the link check before it is the
stdlib's linear HTML tokenizer, in process).
"""

from __future__ import annotations

import codecs
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Iterable
from urllib.parse import urlencode, urljoin, urlsplit

from o2m_pub.reader.public_web import Caps, WebPage, Reach, WebRefused, reach_of_url, request

SOURCE_CAPS = Caps(max_bytes=1 << 20, deadline=10.0, step_timeout=10.0)  # §1.6: 1 MiB, 10 s
TARGET_CAPS = Caps(max_bytes=1 << 20, deadline=10.0, step_timeout=10.0)
ENDPOINT_CAPS = Caps(max_bytes=64 * 1024, deadline=10.0, step_timeout=10.0)
MF2_SECONDS = 8.0  # the child's wall clock; its CPU limit is a little less
KINDS = ("reply", "like", "repost", "bookmark", "mention")
MAX_NAME_CHARS = 100
MAX_SUMMARY_CHARS = 280
MAX_URL_CHARS = 2048
_LINK_ATTRIBUTES = frozenset({"href", "src", "cite", "data", "poster"})
_HTML_TYPES = ("text/html", "application/xhtml+xml")


# ---------------------------------------------------------------- discovery (pure)


def _link_values(value: str) -> Iterable[tuple[str, str]]:
    """(URL, rel) of each link in one Link header value (RFC 8288): ``<url>; rel=...``,
    comma-separated; commas and semicolons inside quotes or angle brackets do not
    split."""
    i, n = 0, len(value)
    while i < n:
        start = value.find("<", i)
        if start < 0:
            return
        end = value.find(">", start)
        if end < 0:
            return
        url = value[start + 1:end]
        i, rel, params, quoted = end + 1, "", "", False
        while i < n and (quoted or value[i] != ","):
            if value[i] == '"':
                quoted = not quoted
            params += value[i]
            i += 1
        for param in _split_params(params):
            name, _, param_value = param.partition("=")
            if name.strip().lower() == "rel" and not rel:
                rel = param_value.strip().strip('"')
        yield url, rel
        i += 1


def _split_params(params: str) -> list[str]:
    out, current, quoted = [], "", False
    for char in params:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            out.append(current)
            current = ""
        else:
            current += char
    out.append(current)
    return [p for p in out if p.strip()]


def _is_webmention(rel: str) -> bool:
    return "webmention" in rel.lower().split()


def endpoint_from_headers(values: Iterable[str], base: str) -> str | None:
    """The first Link header link with rel ``webmention`` (every header line, in order),
    resolved against `base`; None if there is none."""
    for value in values:
        for url, rel in _link_values(value):
            if _is_webmention(rel):
                return urljoin(base, url.strip())
    return None


class _Scan(HTMLParser):
    """One pass over a page: the first ``<link>`` or ``<a>`` with rel webmention and an
    href, the first ``<base href>``, and every URL an attribute links to. Comments and
    escaped text are not elements, so they never count (webmention.rocks 13, 14)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.endpoint: str | None = None
        self.base: str | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values: dict[str, str] = {}
        for name, value in attrs:
            if value is not None and name not in values:
                values[name] = value
        if tag == "base" and self.base is None and "href" in values:
            self.base = values["href"].strip()
        if (self.endpoint is None and tag in ("link", "a") and "href" in values
                and _is_webmention(values.get("rel", ""))):
            self.endpoint = values["href"].strip()
        for name in _LINK_ATTRIBUTES & values.keys():
            if values[name].strip():
                self.links.append(values[name].strip())

    handle_startendtag = handle_starttag


def _scan(html: str) -> _Scan:
    scan = _Scan()
    try:
        scan.feed(html)
        scan.close()
    except (AssertionError, ValueError):  # a tokenizer hiccup: what was found stands
        pass
    return scan


def endpoint_from_html(html: str, base: str) -> str | None:
    """The first ``<link>`` or ``<a>`` element with rel ``webmention`` and an href, in
    document order, resolved against `base`; an empty href is `base` itself."""
    found = _scan(html).endpoint
    return None if found is None else urljoin(base, found)


def text_of(page: WebPage) -> str:
    """A page's body as text: its declared charset (the header's), else UTF-8; bytes
    that do not decode become U+FFFD (they cannot be part of a matching URL anyway)."""
    charset = ""
    for part in page.header("content-type").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return page.body.decode(charset or "utf-8", errors="replace")


def discover_in(page: WebPage) -> str | None:
    """The endpoint a fetched target names (Webmention §3.1.2): the Link header first,
    then the first ``<link>``/``<a>`` of an HTML body; relative URLs resolved against
    the target's final URL (after redirects). Only http(s) endpoints count."""
    endpoint = endpoint_from_headers(page.headers.get("link", []), page.url)
    if endpoint is None and page.media_type in _HTML_TYPES:
        endpoint = endpoint_from_html(text_of(page), page.url)
    if endpoint is None or urlsplit(endpoint).scheme.lower() not in ("http", "https"):
        return None
    return endpoint.split("#", 1)[0]


# ---------------------------------------------------------------- what a source links to (pure)


def links_in(page: WebPage) -> frozenset[str] | None:
    """Every URL `page` links to, resolved: in HTML, each href, src, cite, data and
    poster attribute (against the page's ``<base href>``, else its final URL); in plain
    text or JSON, each http(s) URL written out. None for a type that cannot link."""
    media = page.media_type
    text = text_of(page)
    if media in _HTML_TYPES or media == "":
        scan = _scan(text)
        base = urljoin(page.url, scan.base) if scan.base else page.url
        return frozenset(urljoin(base, link) for link in scan.links)
    if media == "text/plain" or media == "application/json" or media.endswith("+json"):
        if media != "text/plain":
            try:
                text = " ".join(_strings(json.loads(text)))
            except ValueError:
                return frozenset()
        return frozenset(re.findall(r"https?://[^\s\"'<>]+", text))
    return None


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# ---------------------------------------------------------------- who and what (mf2)


@dataclass(frozen=True)
class MentionFacts:
    """What a verified source says of itself (from its microformats, all optional but
    the kind): shown to the owner; of it, only the author's name, the kind and the date
    reach a public page."""

    kind: str = "mention"  # one of KINDS
    author_name: str = ""
    author_url: str = ""
    author_photo: str = ""  # kept for the owner, never put on a page (no remote images)
    summary: str = ""
    published: str = ""  # ISO 8601, as the source gives it


def _clean_text(value: object, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _clean_url(value: object) -> str:
    if isinstance(value, dict):  # mf2py 2 gives an image with alt text as {value, alt}
        value = value.get("value")
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS or any(
            c.isspace() or not c.isprintable() for c in value):
        return ""
    return value if urlsplit(value).scheme.lower() in ("http", "https") else ""


def facts_from_mf2(comment: dict | None) -> MentionFacts:
    """`MentionFacts` from what mf2util's ``interpret_comment`` made of a source (None:
    no usable microformats, a plain mention)."""
    if not isinstance(comment, dict):
        return MentionFacts()
    types = comment.get("comment_type") or []
    kind = "mention"
    for candidate in ("reply", "like", "repost", "bookmark"):
        if candidate in types:
            kind = candidate
            break
    if kind == "mention" and "rsvp" in types:
        kind = "reply"
    author = comment.get("author") if isinstance(comment.get("author"), dict) else {}
    summary = comment.get("summary") or comment.get("content-plain") or comment.get("name")
    published = comment.get("published-str") or ""
    return MentionFacts(kind=kind, author_name=_clean_text(author.get("name"), MAX_NAME_CHARS),
                        author_url=_clean_url(author.get("url")),
                        author_photo=_clean_url(author.get("photo")),
                        summary=_clean_text(summary, MAX_SUMMARY_CHARS),
                        published=_clean_text(published, 40))


def read_mf2(html: str, url: str, target: str) -> MentionFacts:
    """The source's facts, parsed in a child process with a CPU, memory and time limit;
    a plain mention when it cannot say (the link was verified already)."""
    job = json.dumps({"html": html, "url": url, "target": target}).encode()
    try:
        done = subprocess.run([sys.executable, "-m", "o2m_pub.reader._mf2_child"], input=job,
                              capture_output=True, timeout=MF2_SECONDS, check=False)
        comment = json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, OSError, ValueError):
        comment = None
    return facts_from_mf2(comment)


# ---------------------------------------------------------------- receiving: verification


@dataclass(frozen=True)
class Verification:
    """The outcome of reading a source (Webmention §3.2.2). `outcome` is "verified"
    (with `facts`), "no link" (a 200 that does not link to the target), "gone" (404 or
    410: the mention was deleted) or "refused" (anything else: the detail says why)."""

    outcome: str
    detail: str = ""
    facts: MentionFacts | None = None
    reason: str = ""


def verify(source: str, target: str, *, floor: Reach,
           caps: Caps = SOURCE_CAPS) -> Verification:
    """Fetch `source` (redirects followed, `floor` kept on every hop, `caps` on all of
    it) and check that it links to `target` exactly (an href or src equal to it once
    resolved); then read its microformats."""
    try:
        page = request(source, floor=floor, caps=caps,
                       accept="text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5")
    except WebRefused as e:
        return Verification("refused", e.detail, reason=e.reason)
    if page.status in (404, 410):
        return Verification("gone", f"the source answered HTTP {page.status}", reason="gone")
    if page.status != 200:
        return Verification("refused", f"the source answered HTTP {page.status}",
                            reason="http")
    links = links_in(page)
    if links is None:
        return Verification("refused", f"a source of type {page.media_type[:60]!r} cannot "
                            "link", reason="type")
    if target not in links:
        return Verification("no link", "the source does not link to the target",
                            reason="no link")
    if page.media_type in _HTML_TYPES or page.media_type == "":
        facts = read_mf2(text_of(page), page.url, target)
    else:
        facts = MentionFacts()
    return Verification("verified", "", facts)


# ---------------------------------------------------------------- sending


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one mention: "sent" (the endpoint answered 2xx), "no
    endpoint" (the target names none), "refused" (the endpoint said 4xx, or o2m would
    not send there: an address nearer than the target's) or "failed" (unreachable, 5xx:
    worth trying again)."""

    outcome: str
    detail: str = ""
    endpoint: str = ""
    status: int | None = None


def discover(target: str, floor: Reach) -> str | None:
    """The endpoint of `target`, fetched with `TARGET_CAPS` (Webmention §3.1.2); None
    when it names none or does not answer 2xx.

    Raises:
        WebRefused: the target could not be fetched.
    """
    page = request(target, floor=floor, caps=TARGET_CAPS)
    return discover_in(page) if 200 <= page.status < 300 else None


def send(source: str, target: str) -> Delivery:
    """Discover `target`'s endpoint and POST ``source`` and ``target`` to it
    (Webmention §3.1.3), the endpoint's own query string kept. The endpoint may not be
    nearer than the target: a public page whose endpoint is a private or loopback
    address is not sent to."""
    try:
        floor = reach_of_url(target)
        endpoint = discover(target, floor)
    except WebRefused as e:
        outcome = "refused" if e.reason in ("private address", "bad url") else "failed"
        return Delivery(outcome, f"the target: {e.detail}")
    if endpoint is None:
        return Delivery("no endpoint", "the target names no Webmention endpoint")
    form = urlencode({"source": source, "target": target}).encode()
    try:
        answer = request(endpoint, floor=floor, caps=ENDPOINT_CAPS, method="POST", form=form)
    except WebRefused as e:
        outcome = "refused" if e.reason in ("private address", "bad url") else "failed"
        return Delivery(outcome, f"the endpoint: {e.detail}", endpoint)
    if 200 <= answer.status < 300:
        return Delivery("sent", f"HTTP {answer.status}", endpoint, answer.status)
    outcome = "refused" if 400 <= answer.status < 500 and answer.status != 429 else "failed"
    return Delivery(outcome, f"the endpoint answered HTTP {answer.status}", endpoint,
                    answer.status)


def links_of(url: str) -> tuple[int, frozenset[str]]:
    """Status and links of one of the owner's own pages, to check it is live before
    telling anyone about it (any address: it is the owner's own site).

    Raises:
        WebRefused: it could not be fetched.
    """
    page = request(url, floor=Reach.LOOPBACK, caps=SOURCE_CAPS, follow=True)
    return page.status, (links_in(page) or frozenset()) if page.status == 200 else frozenset()


__all__ = ["Delivery", "MentionFacts", "Verification", "discover", "discover_in",
           "endpoint_from_headers", "endpoint_from_html", "facts_from_mf2", "links_in",
           "links_of", "read_mf2", "send", "verify"]
