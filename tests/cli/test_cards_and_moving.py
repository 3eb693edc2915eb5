"""The owner's commands of issue 12: `o2m card --renew`, the card `o2m build` renews by
itself, `o2m move`, `o2m key export` of the next key, and an old `o2m serve` that
redirects after a move ([serve] moved_to). Real sites made by `o2m init`, the real CLI
(newcomer review friction points 1, 2, 3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from o2m_pub.cli import main
from o2m_pub.friends.identity import NEXT_KEY_FILE, load_next_key, own_card
from o2m_pub.host.tls import CERT_NAME, TLS_DIR, ensure_self_signed
from o2m_pub.protocol.cards import card_to_text, key_commitment, parse_card
from o2m_pub.protocol.feed_signature import check_feed, open_feed_signature

PW = b"test passphrase"  # conftest sets it in O2M_PASSPHRASE


def cli(*args: str, ok: bool = True, env: dict[str, str] | None = None):  # noqa: ANN201
    result = CliRunner(env=env).invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def ada(tmp_path: Path) -> Path:
    root = tmp_path / "ada"
    cli("init", str(root), "--name", "Ada's notes", "--url", "https://ada.example/",
        "--author", "Ada")
    (root / "o2m.toml").write_text((root / "o2m.toml").read_text().replace(
        'url = "https://ada.example/"', 'url = "https://ada.example/"  # my site'))
    return root


def published_card(root: Path):  # noqa: ANN201
    return parse_card((root / "build/.well-known/o2m-card.json").read_bytes())


def test_card_renew_gives_a_higher_seq_and_build_publishes_it(ada):
    """`o2m card --renew` signs a new card (a higher seq, the same commitment to the
    next key); `o2m build` publishes it at the well-known path."""
    first = own_card(ada)
    out = cli("-C", str(ada), "card", "--renew")
    renewed = own_card(ada)
    assert renewed.seq > first.seq and renewed.next == first.next
    assert card_to_text(renewed) in out.stdout and "card renewed" in out.stderr
    cli("-C", str(ada), "build")
    assert renewed == published_card(ada)


def test_build_renews_a_card_whose_url_or_name_changed(ada):
    """A new url or author in o2m.toml: `o2m build` signs a new card first (it says so),
    so friends take it on their next fetch; nothing changed: no new card."""
    cli("-C", str(ada), "build")
    unchanged = own_card(ada)
    cli("-C", str(ada), "build")
    assert unchanged == own_card(ada)
    text = (ada / "o2m.toml").read_text().replace("https://ada.example/",
                                                  "https://ada.example:8553/")
    (ada / "o2m.toml").write_text(text.replace('author = "Ada"', 'author = "Ada L."'))
    result = cli("-C", str(ada), "build")
    assert "signed a new card for a new name, a new URL" in result.stderr
    card = own_card(ada)
    assert (card.url, card.name) == ("https://ada.example:8553/", "Ada L.")
    assert card.seq > unchanged.seq and card == published_card(ada)


def test_without_a_passphrase_build_warns_that_the_card_is_out_of_date(ada):
    """No terminal and no $O2M_PASSPHRASE: the card cannot be signed; `o2m build` says
    so in one line and builds the rest (a public-only build needs no passphrase, and
    still signs feed.json with keys/feed.key)."""
    text = (ada / "o2m.toml").read_text().replace("https://ada.example/", "https://b.example/")
    (ada / "o2m.toml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "O2M_PASSPHRASE"}
    result = CliRunner(env={**env, "O2M_PASSPHRASE": None}).invoke(
        main, ["-C", str(ada), "build"], catch_exceptions=False)
    assert 0 == result.exit_code, result.output
    assert "your card is out of date (a new URL)" in result.stderr
    card = own_card(ada)
    assert card.url == "https://ada.example/"
    signature = open_feed_signature((ada / "build/feed.json.sig").read_bytes(),
                                    feed_pk=card.feed_pk, author_sign_pk=card.sign_pk)
    check_feed(signature, (ada / "build/feed.json").read_bytes())


def _pinned(root: Path):  # noqa: ANN202 - host.tls.KeyPair
    """A self-signed certificate in keys/tls/ and its pin in the card, as the first
    `o2m serve` leaves them."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import load_identity, write_own_card
    pair, _ = ensure_self_signed(root, ["ada.example"], own_card(root).created_at)
    write_own_card(root, load_identity(root, PW), load(root), now=own_card(root).created_at,
                   tls_pin=pair.pin, passphrase=PW)
    assert own_card(root).tls_pin == pair.pin
    return pair


def test_a_served_certificate_takes_the_pin_out_of_the_card(ada, ca):
    """Newcomer friction 1: a card carrying the self-signed pin; the owner names a CA's
    certificate in [serve] cert/key, and the next `o2m build` (or `o2m card --renew`)
    signs a card without the pin, as docs/CONFIG.md says."""
    pair = _pinned(ada)
    cli("-C", str(ada), "card", "--renew")
    assert own_card(ada).tls_pin == pair.pin  # still served self-signed: the pin stays
    authority, _ = ca
    cert = authority.issue_cert("ada.example")
    cert.cert_chain_pems[0].write_to_path(str(ada / "cert.pem"))
    cert.private_key_pem.write_to_path(str(ada / "key.pem"))
    with open(ada / "o2m.toml", "a") as f:
        f.write('\n[serve]\ncert = "cert.pem"\nkey = "key.pem"\n')
    result = cli("-C", str(ada), "build")
    assert "a new certificate" in result.stderr
    assert own_card(ada).tls_pin is None and published_card(ada).tls_pin is None


def test_card_renew_no_pin_and_then_renewals_keep_no_pin(ada):
    """A site moved to a static host with a CA's certificate: --no-pin takes the pin
    out, and later renewals keep it out (keys/tls/ is still there)."""
    pair = _pinned(ada)
    cli("-C", str(ada), "card", "--renew")
    assert own_card(ada).tls_pin == pair.pin
    cli("-C", str(ada), "card", "--renew", "--no-pin")
    assert own_card(ada).tls_pin is None
    cli("-C", str(ada), "card", "--renew")
    assert own_card(ada).tls_pin is None and (ada / TLS_DIR / CERT_NAME).exists()


def test_card_renew_sets_a_picture_and_a_bio_that_the_build_publishes(ada, tmp_path):
    """--avatar copies a PNG to keys/avatar and names it in the card (path, SHA-256,
    type); the build publishes it there; --bio adds the text; both stay on renewal."""
    picture = tmp_path / "me.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"pixels" * 10)
    cli("-C", str(ada), "card", "--renew", "--avatar", str(picture), "--bio", "Walks.")
    card = own_card(ada)
    assert (card.avatar.media_type, card.bio) == ("image/png", "Walks.")
    cli("-C", str(ada), "card", "--renew")
    assert own_card(ada).avatar == card.avatar and own_card(ada).bio == "Walks."
    cli("-C", str(ada), "build")
    assert picture.read_bytes() == (ada / "build" / card.avatar.path).read_bytes()
    not_a_picture = tmp_path / "x.svg"
    not_a_picture.write_text("<svg/>")
    result = cli("-C", str(ada), "card", "--renew", "--avatar", str(not_a_picture), ok=False)
    assert 1 == result.exit_code and "not a PNG, JPEG or WebP" in result.output


def test_move_rewrites_the_url_renews_the_card_and_says_what_to_publish(ada):
    """`o2m move NEW_URL`: o2m.toml's url (its comment kept), a new card at the new URL,
    a build whose pages and feeds name it, and the steps: publish to the new host and
    once more to the old one."""
    cli("-C", str(ada), "build")
    before = own_card(ada)
    result = cli("-C", str(ada), "move", "https://ada.example:8553/notes")
    assert 'url = "https://ada.example:8553/notes/"  # my site' in (ada / "o2m.toml").read_text()
    card = own_card(ada)
    assert card.url == "https://ada.example:8553/notes/" and card.seq > before.seq
    assert card == published_card(ada)
    feed = json.loads((ada / "build/feed.json").read_text())
    assert feed["home_page_url"] == "https://ada.example:8553/notes/"
    assert "once more to the old host (https://ada.example/)" in result.output
    assert "moved_to" in result.output


@pytest.mark.parametrize("url,message,status", [
    ("http://ada.example/", "NEW_URL: http://ada.example/: ", 2),  # a usage error
    ("https://ada.example/", "already at", 1)])
def test_move_refuses_what_no_card_may_say_and_changes_nothing(ada, url, message, status):
    before = ((ada / "o2m.toml").read_bytes(), own_card(ada))
    result = cli("-C", str(ada), "move", url, ok=False)
    assert status == result.exit_code and message in result.output
    assert before == ((ada / "o2m.toml").read_bytes(), own_card(ada))


def test_public_posts_keep_their_id_across_a_move(ada):
    """§1.4: a public item's `_o2m.id` is made from the site's first key and the post's
    source, not from its URL: the same after `o2m move`."""
    (ada / "content/2026").mkdir(parents=True, exist_ok=True)
    (ada / "content/2026/open.md").write_text("---\ntitle: Open\ndate: 2026-03-01\n"
                                              "audience: public\n---\nHi.\n")
    cli("-C", str(ada), "build")

    def ids() -> dict[str, str]:
        feed = json.loads((ada / "build/feed.json").read_text())
        return {i["title"]: i["_o2m"]["id"] for i in feed["items"] if "title" in i}

    before = ids()
    assert before["Open"]
    cli("-C", str(ada), "move", "https://elsewhere.example/")
    assert before == ids()


def test_key_export_writes_the_next_key_and_import_restores_it(ada, tmp_path):
    """The next key is part of a backup (a rotation needs it): `o2m key export FILE`
    also writes FILE.next; `o2m key import` of FILE reads it back, so the card restored
    keeps its commitment."""
    commitment = own_card(ada).next
    backup = tmp_path / "backup.key"
    cli("-C", str(ada), "key", "export", str(backup), env={"O2M_EXPORT_PASSPHRASE": "bk"})
    assert backup.with_name("backup.key.next").exists()
    (ada / NEXT_KEY_FILE).unlink()
    cli("-C", str(ada), "key", "import", str(backup), "--replace",
        env={"O2M_EXPORT_PASSPHRASE": "bk"})
    assert key_commitment(load_next_key(ada, PW).sign_pk) == commitment == own_card(ada).next


def test_an_old_o2m_serve_redirects_all_but_the_card_to_where_the_site_moved(ada):
    """[serve] moved_to: every path is a 301 to the same path at the new URL, but the
    card (and the rotations list), which friends' fetchers read to follow the move."""
    from support.o2m_server import o2m_serve
    cli("-C", str(ada), "build")
    with open(ada / "o2m.toml", "a") as f:
        f.write('\n[serve]\nmoved_to = "https://new.example/notes/"\n')
    with o2m_serve(ada) as server:
        get = lambda path: requests.get(server.url + path, verify=server.verify,  # noqa: E731
                                        allow_redirects=False, timeout=10)
        r = get("2026/hello/?x=1")
        assert 301 == r.status_code
        assert "https://new.example/notes/2026/hello/?x=1" == r.headers["Location"]
        assert "https://new.example/notes/" == get("").headers["Location"]
        card = get(".well-known/o2m-card.json")
        assert 200 == card.status_code
        assert (ada / "build/.well-known/o2m-card.json").read_bytes() == card.content
