"""`reply_to:` and `thread:` written by hand (PROTOCOL.md §4.1, §4.2): a post reference or
an https URL; `thread:` only with a reference, and left out when it equals `reply_to`."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from o2m_pub.errors import PostError
from o2m_pub.site.content import parse_post

UTC = dt.timezone.utc
AUTHOR = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
REF = f"o2m:{AUTHOR}/AAECAwQFBgcICQoLDA0ODw"
ROOT = f"o2m:{AUTHOR}/EBESExQVFhcYGRobHB0eHw"


def _parse(front: str):  # noqa: ANN202
    data = f"---\ndate: 2026-11-25\n{front}\n---\nHello.\n".encode()
    return parse_post(data, "content/r.md", tz=UTC, default_audience=("friends",))


def test_a_reference_and_its_thread_are_read():
    """A nested reply names the post it answers and its thread's root."""
    post = _parse(f"reply_to: {REF}\nthread: {ROOT}")
    assert (post.reply_to, post.thread) == (REF, ROOT)
    assert _parse(f"reply_to: {REF}\nthread: {REF}").thread is None  # a direct reply
    assert _parse("reply_to: https://bob.example/2026/trip/").reply_to.startswith("https://")


@pytest.mark.parametrize("front, field", [
    ("reply_to: o2m:short/id", "reply_to"),
    (f"reply_to: {REF}x", "reply_to"),
    ("reply_to: http://bob.example/", "reply_to"),
    (f"thread: {ROOT}", "thread"),
    (f"reply_to: https://bob.example/\nthread: {ROOT}", "thread"),
    (f"reply_to: {REF}\nthread: https://x.example/", "thread"),
])
def test_a_bad_reference_names_its_line(front, field):
    """Bad input: a malformed reference, or a thread without a reference to answer, is
    refused with the field's line and how to mend it."""
    with pytest.raises(PostError) as e:
        _parse(front)
    assert f"`{field}`" in str(e.value) and "o2m reply" in (e.value.hint or "")


def test_a_public_reply_to_a_friends_only_post_names_no_address_on_its_pages(site):
    """A public post answering a friend's post that is not public (`reply_to:` its o2m:
    reference) said "In reply to <a href="o2m:…">" on the public site: a link no visitor
    can open, naming the friend's key and the post's id. The pages say it is a reply,
    with neither (the post answered may be public on the friend's site, so they do not
    say it is for friends); an https reply_to is still linked (microformats' u-in-reply-to), and
    feed.json keeps the reference for o2m readers (§1.4)."""
    site.post("2026/answer.md", title="Answer", audience="public", reply_to=REF)
    site.post("2026/other.md", title="Other", audience="public",
              reply_to="https://bob.example/2026/trip/")
    site.o2m("build")
    linked = 'class="u-in-reply-to" href="https://bob.example/2026/trip/"'
    for page in ("2026/answer/index.html", "index.html"):
        html = site.read(page)
        assert "In reply to a post not linked here" in html
        assert "o2m:" not in html and AUTHOR not in html
    assert linked in site.read("2026/other/index.html") and linked in site.read("index.html")
    items = {i["title"]: i for i in json.loads(site.read("feed.json"))["items"]}
    assert items["Answer"]["_o2m"]["reply_to"] == REF
