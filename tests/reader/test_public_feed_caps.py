"""A friend's public feed.json against the reader's caps (PROTOCOL.md §1.4: 4 MiB, 1,000
items, 1 MiB of `content_html`, 4,096 characters of title and summary): what passes them
is refused whole, with a line that names the cap broken. Real signatures by real keys,
the fetch plan driven through its `get`, as `o2m fetch` drives it."""

from __future__ import annotations

import datetime as dt
import json

import nacl.signing
import pytest

from o2m_pub.protocol.feed_signature import sign_feed
from o2m_pub.protocol.post_limits import MAX_PUBLIC_FEED_BYTES
from o2m_pub.reader import fetch_plan as fp
from o2m_pub.reader.model import Reason

AUTHOR = nacl.signing.SigningKey(bytes([1]) * 32)
FEED_KEY = nacl.signing.SigningKey(bytes([2]) * 32)
SITE = "https://ada.example/"


def feed_of(size: int) -> bytes:
    """A valid JSON Feed of exactly `size` bytes: five posts, the newest padded (each
    `content_html` within its own cap of 1 MiB)."""
    def doc(pad: int) -> bytes:
        items = [{"id": SITE + f"2026/p{i}/", "url": SITE + f"2026/p{i}/", "title": f"P{i}",
                  "content_html": "<p>" + "w" * min(pad, 1_000_000) + "</p>",
                  "date_published": "2026-11-24T10:00:00+00:00",
                  "_o2m": {"id": "ABCDE"[i] + "AECAwQFBgcICQoLDA0ODw"}} for i in range(5)]
        items[0]["content_html"] = "<p>" + "w" * (pad - 4 * min(pad, 1_000_000)) + "</p>"
        return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Ada",
                           "items": items}).encode()
    return doc(size - len(doc(0)))


class Host:
    """Ada's site as a reader's `get` sees it: feed.json and its signature, every request
    recorded, the cap enforced as http_fetch enforces it."""

    def __init__(self, feed: bytes, *, signed_size: int | None = None) -> None:
        signed = feed[:signed_size] if signed_size is not None else feed
        sig = sign_feed(FEED_KEY, author_sign_pk=bytes(AUTHOR.verify_key), feed=signed, seq=1,
                        updated=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
        self.files = {"feed.json": feed, "feed.json.sig": sig}
        self.asked: list[str] = []

    def __call__(self, path: str, *, cap: int, etag: str | None = None,
                 last_modified: str | None = None) -> fp.Download:
        self.asked.append(path)
        body = self.files[path]
        if len(body) > cap:
            raise fp.Refused(Reason.OVERSIZED, f"{path}: over the cap of {cap:,} bytes")
        return fp.Download(200, body)


def read_public(host: Host) -> fp.Outcome:
    keys = fp.FriendKeys("ada", bytes(AUTHOR.verify_key), bytes(32), bytes(32), None, SITE,
                         feed_pk=bytes(FEED_KEY.verify_key))
    out = fp.Outcome("ada", "unchanged")
    fp._public(keys, None, {}, host, out, fp.FriendUpdate("ada", keys.sign_pk_text))
    return out


def test_a_signed_feed_of_exactly_the_cap_is_read():
    """4 MiB exactly is within §1.4's cap."""
    out = read_public(Host(feed_of(MAX_PUBLIC_FEED_BYTES)))
    assert (None, 5) == (out.public_error, out.new)


@pytest.mark.parametrize("over", [1, 800_000])
def test_a_signed_feed_over_the_cap_is_refused_as_oversized_without_downloading_it(over):
    """The signature says feed.json has more bytes than §1.4's cap: refused as oversized,
    naming the cap, before feed.json is asked for. (The line said "larger than the N
    bytes signed" of a feed of exactly the N bytes signed: audit t8.)"""
    size = MAX_PUBLIC_FEED_BYTES + over
    host = Host(feed_of(size))
    out = read_public(host)
    assert (f"oversized: public feed.json: {size:,} bytes signed, over the 4,194,304 bytes "
            "a reader takes (PROTOCOL.md §1.4)") == out.public_error
    assert ["feed.json.sig"] == host.asked


def test_a_feed_longer_than_its_signature_says_is_a_mismatch():
    """Within the cap, a host serving more bytes than were signed is what the signature
    line says it is (asked twice: a publish may have been under way, §1.4)."""
    feed = feed_of(10_000)
    host = Host(feed + b" " * 10, signed_size=len(feed))
    out = read_public(host)
    assert ("public feed: signature does not match: feed.json is larger than the "
            f"{len(feed):,} bytes signed") == out.public_error
