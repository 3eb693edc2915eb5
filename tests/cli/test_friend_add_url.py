"""`o2m friend add NAME https://…` fetches the card through the reader's hardened
fetcher (`http_fetch.fetch_card_bytes`): a wall-clock deadline over the whole fetch
(security review finding 4), and a self-signed site answered with what to do instead
(newcomer review friction 6). Real TLS servers on 127.0.0.1, the real command."""

from __future__ import annotations

from conftest import CONFIG, run_o2m
from support.o2m_server import o2m_serve
from support.people import server_context
from support.raw_tls import RawTLSServer


def test_a_host_that_trickles_its_headers_is_cut_off_at_the_deadline(site, tmp_path, ca):
    """The host sends its status line, then one header byte every 0.2 s (30 s' worth):
    each read is quick, so only the deadline (--timeout 2) stops the fetch. One error
    line and its hint, exit status 1, and the host still had most of its bytes to
    send when o2m hung up."""
    authority, bundle = ca
    server = RawTLSServer(tmp_path / "www", server_context(authority))
    server.behaviours[".well-known/"] = "trickle-headers"
    try:
        result = run_o2m("friend", "add", "bob", server.url, "--fingerprint", "1",
                         "--timeout", "2", cwd=site.root, env={"O2M_CA_BUNDLE": bundle})
    finally:
        server.stop()
    assert 1 == result.returncode
    assert [f"o2m: error: {server.url}.well-known/o2m-card.json: cannot fetch the card: "
            "no whole answer within 2 s",
            "  hint: check the address, or ask your friend for their card as o2m1:… text"] \
        == result.stderr.splitlines()
    assert ["GET /.well-known/o2m-card.json HTTP/1.1"] == server.requests
    assert server.sent < 150, server.sent


def test_a_self_signed_site_says_to_ask_for_the_card_text(site, tmp_path):
    """A site served by `o2m serve` with its self-signed certificate: no CA vouches for
    it, and the card that pins it is what is being fetched, so the error says to ask
    for the o2m1:… text instead."""
    site.post("2026/a.md", title="A")
    site.o2m("build")
    me = tmp_path / "me"
    me.mkdir()
    (me / "o2m.toml").write_text(CONFIG, encoding="utf-8")
    with o2m_serve(site.root) as server:
        result = run_o2m("friend", "add", "sam", server.url, "--fingerprint", "1", cwd=me)
    assert 1 == result.returncode
    error, hint = result.stderr.splitlines()
    assert (f"o2m: error: {server.url}.well-known/o2m-card.json: this site uses a "
            "self-signed certificate: ask them for their o2m1:… card text") == error
    assert "`o2m card`" in hint


def test_a_certificate_from_an_unknown_ca_is_not_called_self_signed(site, tmp_path, ca):
    """A certificate issued by a CA o2m does not trust is refused as not valid, with the
    reason OpenSSL gives and the way to name a private CA."""
    authority, _ = ca
    www = tmp_path / "www"
    (www / ".well-known").mkdir(parents=True)
    (www / ".well-known/o2m-card.json").write_text("{}")
    server = RawTLSServer(www, server_context(authority))
    try:
        result = run_o2m("friend", "add", "bob", server.url, "--fingerprint", "1",
                         cwd=site.root)
    finally:
        server.stop()
    assert 1 == result.returncode
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"o2m: error: {server.url}.well-known/o2m-card.json: cannot "
                            "fetch the card: the site's certificate is not valid (")
    assert "self-signed" not in error and "O2M_CA_BUNDLE" in hint
