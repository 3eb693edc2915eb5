"""The signed public feed (`protocol/feed_signature.py`, PROTOCOL.md §1.4): a
`feed.json.sig` whose fields break §2.1 is refused even when its signature verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from nacl.signing import SigningKey

from o2m_pub.protocol.canonical import b64u_encode, canonical_json
from o2m_pub.protocol.feed_signature import (
    SIG_CONTEXT,
    FeedSignatureError,
    open_feed_signature,
    sign_feed,
)

AUTHOR, FEED_KEY = SigningKey(bytes([1]) * 32), SigningKey(bytes([3]) * 32)
FEED = b'{"items":[]}'


def _signed_with_updated(updated: str) -> bytes:
    doc = {"author": b64u_encode(bytes(AUTHOR.verify_key)),
           "feed_pk": b64u_encode(bytes(FEED_KEY.verify_key)), "path": "feed.json",
           "seq": 1, "sha256": "00" * 32, "size": 1, "type": "o2m-feed-sig",
           "updated": updated, "v": 1}
    sig = FEED_KEY.sign(SIG_CONTEXT + canonical_json(doc)).signature
    return canonical_json({**doc, "sig": b64u_encode(sig)})


def _open(data: bytes):  # noqa: ANN202
    return open_feed_signature(data, feed_pk=bytes(FEED_KEY.verify_key),
                               author_sign_pk=bytes(AUTHOR.verify_key))


def test_a_signature_reads_back_its_time():
    """What sign_feed writes opens, with its `updated` as §2.1 writes it."""
    data = sign_feed(FEED_KEY, author_sign_pk=bytes(AUTHOR.verify_key), feed=FEED, seq=4,
                     updated=dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.timezone.utc))
    assert ("2026-11-24T10:30:00Z", 4) == (_open(data).updated, _open(data).seq)
    assert _open(_signed_with_updated("2028-02-29T00:00:00Z")).updated == "2028-02-29T00:00:00Z"


@pytest.mark.parametrize("updated", ["2026-13-45T99:99:99Z", "2026-02-31T10:00:00Z",
                                     "2027-02-29T00:00:00Z", "2026-11-24T23:59:60Z"])
def test_a_signature_updated_at_a_time_that_does_not_exist_is_refused(updated):
    """§2.1: `updated` is an RFC 3339 time, a real one: a month 13, 31 February, 29
    February of a common year or a leap second have its shape but name no time."""
    with pytest.raises(FeedSignatureError, match="updated must be a time"):
        _open(_signed_with_updated(updated))
