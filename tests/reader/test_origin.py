"""One origin rule, `cards.site_origin`, for the two places that ask "the same site?": a
friend's TLS pin (`o2m friend add` refuses two pins for one origin, PROTOCOL.md §2.4)
and a redirect while fetching (followed only within the friend's origin, THREATS.md 28).
A default port written out is the same origin as none, for both."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import nacl.public
import nacl.signing
import pytest

from o2m_pub.friends.friend_store import FriendStore, SameOriginOtherPinError
from o2m_pub.protocol.cards import Card, make_card, site_origin
from o2m_pub.reader.fetch_plan import Reason, Refused
from o2m_pub.reader.http_fetch import _redirect_target

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone.utc)


def pinned(seed: int, name: str, url: str, pin: bytes) -> Card:
    """A real signed card with keys from `seed`, pinning `pin`."""
    box = bytes(nacl.public.PrivateKey(bytes([100 + seed]) * 32).public_key)
    return make_card(nacl.signing.SigningKey(bytes([seed]) * 32), name=name, url=url,
                     box_pk=box, tls_pin=pin, created=NOW)


@pytest.mark.parametrize("url,origin", [
    ("https://host.example/", ("https", "host.example", 443)),
    ("https://host.example:443/a/", ("https", "host.example", 443)),
    ("HTTPS://Host.Example/a/", ("https", "host.example", 443)),
    ("https://host.example:8443/", ("https", "host.example", 8443)),
    ("https://[::1]:443/", ("https", "::1", 443)),
    ("http://host.example/", ("http", "host.example", 80)),
])
def test_an_origin_is_scheme_host_and_port_with_the_default_port_filled_in(url, origin):
    """Lowercased scheme and host, and the scheme's default port when none is written."""
    assert site_origin(url) == origin


@pytest.mark.parametrize("first,second", [
    ("https://host.example/alice/", "https://host.example:443/mallory/"),
    ("https://host.example:443/alice/", "https://host.example/mallory/"),
])
def test_the_pin_rule_takes_a_written_default_port_for_the_same_origin(tmp_path: Path,
                                                                       first, second):
    """A card at `https://host.example:443/…` that pins another key than a friend's card
    at `https://host.example/…` claims the same TLS key's host: refused, whichever of
    the two spellings came first."""
    (tmp_path / "o2m.toml").write_text("[site]\n", encoding="utf-8")
    store = FriendStore(tmp_path)
    store.add("alice", pinned(1, "Alice", first, b"\1" * 32), now=NOW)
    with pytest.raises(SameOriginOtherPinError):
        store.add("mallory", pinned(4, "Mallory", second, b"\2" * 32), now=NOW)
    assert [f.name for f in store.list()] == ["alice"]


@pytest.mark.parametrize("site,location,target", [
    ("https://host.example/alice/", "https://host.example:443/alice/f/moved",
     "https://host.example:443/alice/f/moved"),
    ("https://host.example:443/alice/", "https://host.example/alice/f/moved",
     "https://host.example/alice/f/moved"),
    ("https://host.example/alice/", "HTTPS://HOST.EXAMPLE/alice/f/moved",
     "https://HOST.EXAMPLE/alice/f/moved"),
    ("https://host.example:443/alice/", "moved", "https://host.example:443/alice/f/moved"),
])
def test_the_redirect_rule_takes_a_written_default_port_for_the_same_origin(site, location,
                                                                            target):
    """A redirect between two spellings of the friend's origin is followed (their raw
    host:port texts differ; comparing those refused it as another host)."""
    url = site + "f/name"
    assert _redirect_target(url, location, site_origin(site), {url}, "name") == target


@pytest.mark.parametrize("location,detail", [
    ("https://host.example:8443/alice/f/x", "another host"),
    ("https://other.example/alice/f/x", "another host"),
    ("https://host.example:99999/alice/f/x", "another host"),
    ("http://host.example/alice/f/x", "http"),
    ("/alice/f/name", "loop"),
])
def test_a_redirect_elsewhere_or_in_a_loop_is_refused(location, detail):
    """Another port or host, a port that is no port, plain http, or a URL already
    visited: refused as REDIRECT, saying which."""
    site = "https://host.example/alice/"
    url = site + "f/name"
    with pytest.raises(Refused) as e:
        _redirect_target(url, location, site_origin(site), {url}, "name")
    assert e.value.reason == Reason.REDIRECT and detail in e.value.detail
