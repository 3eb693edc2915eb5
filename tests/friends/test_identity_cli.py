"""Identity, cards, friends and groups through the real `o2m` command."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from conftest import run_o2m
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from o2m_pub.friends.qr import qr_png, qr_svg, qr_terminal
from o2m_pub.protocol.cards import card_from_any, card_to_text, make_card
from o2m_pub.protocol.keyfile import fingerprint


@pytest.fixture
def ada(tmp_path):
    root = tmp_path / "ada"
    r = run_o2m("init", str(root), "--name", "Ada", "--url", "https://ada.example/", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return root


def a_card(n: int = 1, name: str = "Bob", url: str = "https://bob.example/"):
    return make_card(SigningKey(bytes([n]) * 32), name=name, url=url,
                     box_pk=bytes(PrivateKey(bytes([n + 50]) * 32).public_key), tls_pin=None,
                     created=dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))


def test_init_makes_sealed_keys_and_a_published_card(ada):
    """init seals the identity in keys/ (file 0600, folder 0700) and signs a card that the
    build publishes byte for byte under .well-known/; no secret key material reaches build/."""
    secret = ada / "keys/identity.secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (ada / "keys").stat().st_mode & 0o777 == 0o700
    assert run_o2m("build", cwd=ada).returncode == 0
    published = (ada / "build/.well-known/o2m-card.json").read_bytes()
    assert published == (ada / "keys/card.json").read_bytes()
    card = card_from_any(published)
    assert (card.name, card.url) == ("Ada", "https://ada.example/")
    for path in (ada / "build").rglob("*"):
        assert b"o2m-secret" not in (path.read_bytes() if path.is_file() else b"")


def test_init_without_a_passphrase_and_no_terminal_writes_nothing(tmp_path):
    """With an empty passphrase and no terminal to ask for one, init fails in one line and
    leaves nothing behind (the site is made aside and moved into place only at the end);
    with a passphrase, init needs nothing from PATH."""
    r = run_o2m("init", "s", "--url", "https://s.example/", cwd=tmp_path,
                env={"O2M_PASSPHRASE": ""})
    assert r.returncode == 1 and "Traceback" not in r.stderr and "passphrase" in r.stderr
    assert not (tmp_path / "s").exists()
    r = run_o2m("init", "t", "--url", "https://t.example/", cwd=tmp_path,
                env={"O2M_PASSPHRASE": "x", "PATH": "/usr/bin"})
    assert r.returncode == 0


def test_whoami_shows_a_fingerprint_to_compare_aloud(ada):
    """whoami prints the name and the fingerprint of the keys in the card: six groups of
    five digits, easy to read aloud."""
    r = run_o2m("whoami", cwd=ada)
    assert r.returncode == 0
    card = card_from_any((ada / "keys/card.json").read_bytes())
    fp = fingerprint(card.sign_pk, card.box_pk)
    assert f"fingerprint: {fp}" in r.stdout and "Ada" in r.stdout
    assert len(fp.split()) == 6 and all(len(g) == 5 and g.isdigit() for g in fp.split())


def test_wrong_passphrase_is_one_line_and_changes_nothing(ada):
    """`key passwd` with a wrong passphrase: one error line with a hint, exit 1, and the key
    file is unchanged."""
    before = (ada / "keys/identity.secret").read_bytes()
    r = run_o2m("key", "passwd", cwd=ada, env={"O2M_PASSPHRASE": "wrong",
                                              "O2M_NEW_PASSPHRASE": "new one"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("o2m: error:") and "hint:" in r.stderr
    assert (ada / "keys/identity.secret").read_bytes() == before


def test_passwd_keeps_the_keys(ada):
    """`key passwd` re-seals the same keys under the new passphrase: the fingerprint stays,
    the old passphrase no longer unlocks, the new one does."""
    fp = run_o2m("whoami", cwd=ada).stdout
    r = run_o2m("key", "passwd", cwd=ada, env={"O2M_NEW_PASSPHRASE": "brand new"})
    assert r.returncode == 0, r.stderr
    assert run_o2m("whoami", cwd=ada).stdout == fp
    assert run_o2m("card", "--renew", cwd=ada).returncode == 1  # old passphrase fails now
    assert run_o2m("card", "--renew", cwd=ada, env={"O2M_PASSPHRASE": "brand new"}).returncode == 0


def test_export_and_import_carry_the_identity(ada, tmp_path):
    """key export writes a private (0600) backup under its own passphrase; import refuses to
    overwrite another identity unless --replace, then carries the same keys (the same
    fingerprint)."""
    backup = tmp_path / "ada.backup"
    r = run_o2m("key", "export", str(backup), cwd=ada, env={"O2M_EXPORT_PASSPHRASE": "bk"})
    assert r.returncode == 0, r.stderr
    assert backup.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other"
    assert run_o2m("init", str(other), "--url", "https://other.example/",
                   cwd=tmp_path).returncode == 0
    refused = run_o2m("key", "import", str(backup), cwd=other, env={"O2M_EXPORT_PASSPHRASE": "bk"})
    assert refused.returncode == 1 and "already has an identity" in refused.stderr
    r = run_o2m("key", "import", str(backup), "--replace", cwd=other,
                env={"O2M_EXPORT_PASSPHRASE": "bk"})
    assert r.returncode == 0, r.stderr
    assert run_o2m("whoami", cwd=other).stdout.split("fingerprint:")[1] == \
        run_o2m("whoami", cwd=ada).stdout.split("fingerprint:")[1]


def test_card_text_json_and_qr(ada, tmp_path):
    """`o2m card` prints the card as text, as JSON, and as the QR code of that text in
    the terminal, and writes it as PNG and SVG images."""
    text = run_o2m("card", cwd=ada).stdout.strip()
    assert text.startswith("o2m1:") and card_from_any(text).name == "Ada"
    assert card_from_any(run_o2m("card", "--json", cwd=ada).stdout.strip()).name == "Ada"
    r = run_o2m("card", "--png", str(tmp_path / "c.png"), "--svg", str(tmp_path / "c.svg"),
                "--qr", cwd=ada)
    assert r.returncode == 0, r.stderr
    assert r.stdout == qr_terminal(text) + "\n"
    assert (tmp_path / "c.png").read_bytes() == qr_png(text)
    assert (tmp_path / "c.svg").read_bytes() == qr_svg(text)
    assert ET.fromstring((tmp_path / "c.svg").read_bytes()).tag.endswith("svg")


def test_friend_add_needs_a_fingerprint_check_without_a_terminal(ada):
    """Without a terminal to confirm, friend add needs --fingerprint (or --yes); a
    fingerprint that does not match the card is refused; the right one adds the friend."""
    text = card_to_text(a_card())
    r = run_o2m("friend", "add", "bob", text, cwd=ada)
    assert r.returncode == 1 and "fingerprint" in r.stderr
    r = run_o2m("friend", "add", "bob", text, "--fingerprint", "00000 00000 00000 00000 00000 00000",
                cwd=ada)
    assert r.returncode == 1 and "not the one given" in r.stderr
    card = a_card()
    r = run_o2m("friend", "add", "bob", text, "--fingerprint",
                fingerprint(card.sign_pk, card.box_pk), cwd=ada)
    assert r.returncode == 0, r.stderr
    assert "bob" in run_o2m("friend", "list", cwd=ada).stdout


def test_bad_cards_are_one_line_and_store_nothing(ada):
    """A card with a flipped character, cut short, with bad base64 or an unknown prefix is
    one error line, and no friend file is written."""
    card = card_to_text(a_card())
    flipped = card[:20] + ("A" if card[20] != "A" else "B") + card[21:]
    for bad in (flipped, card[:-30], "o2m1:!!!", "o2m9:abc"):
        r = run_o2m("friend", "add", "bob", bad, "--yes", cwd=ada)
        assert r.returncode == 1 and "Traceback" not in r.stderr, bad
        assert r.stderr.startswith("o2m: error:")
    assert not (ada / "keys/friends").exists() or not list((ada / "keys/friends").iterdir())


def test_duplicate_name_and_same_key_under_another_name(ada):
    """A second friend under a name already taken is refused, and so are the same keys under
    another name (the message names the friend who has them)."""
    assert run_o2m("friend", "add", "bob", card_to_text(a_card()), "--yes", cwd=ada).returncode == 0
    r = run_o2m("friend", "add", "bob", card_to_text(a_card(2, "Zed", "https://zed.example/")),
                "--yes", cwd=ada)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = run_o2m("friend", "add", "robert", card_to_text(a_card()), "--yes", cwd=ada)
    assert r.returncode == 1 and "bob" in r.stderr
    assert [p.name for p in (ada / "keys/friends").iterdir()] == ["bob.json"]


def test_key_change_is_refused_until_accepted(ada):
    """New keys for a friend (same name and URL) are refused until --accept-key-change."""
    assert run_o2m("friend", "add", "bob", card_to_text(a_card()), "--yes", cwd=ada).returncode == 0
    new_keys = card_to_text(a_card(7))  # same name and URL, new keys
    r = run_o2m("friend", "add", "bob", new_keys, "--yes", cwd=ada)
    assert r.returncode == 1 and "accept-key-change" in r.stderr
    r = run_o2m("friend", "add", "bob", new_keys, "--yes", "--accept-key-change", cwd=ada)
    assert r.returncode == 0, r.stderr


def test_friend_show_rename_remove_and_groups(ada):
    """friend show lists the groups; rename carries the friend into their groups; a group of
    an unknown friend is refused in one line; remove leaves no friends."""
    assert run_o2m("friend", "add", "bob", card_to_text(a_card()), "--yes", cwd=ada).returncode == 0
    assert run_o2m("group", "add", "family", "bob", cwd=ada).returncode == 0
    assert "family" in run_o2m("friend", "show", "bob", cwd=ada).stdout
    assert run_o2m("friend", "rename", "bob", "robert", cwd=ada).returncode == 0
    assert "robert" in run_o2m("group", "list", cwd=ada).stdout
    r = run_o2m("group", "add", "family", "nobody", cwd=ada)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert run_o2m("friend", "remove", "robert", cwd=ada).returncode == 0
    assert "no friends yet" in run_o2m("friend", "list", cwd=ada).stdout


def test_unknown_audience_name_fails_that_post_with_its_line(ada):
    """An audience naming no friend or group fails that post, with its file and line."""
    (ada / "content/2026").mkdir(parents=True, exist_ok=True)
    (ada / "content/2026/x.md").write_text("---\ntitle: X\ndate: 2026-01-01\naudience: bobb\n---\n")
    r = run_o2m("build", cwd=ada)
    assert r.returncode == 1 and "content/2026/x.md:4: unknown audience 'bobb'" in r.stderr


def test_friend_add_by_url_fetches_the_published_card_and_insists_on_the_fingerprint(
        ada, tmp_path, https_folder):
    """Bob's site (a real HTTPS server) publishes his card at the well-known path."""
    url, www, bundle = https_folder
    card = a_card(url=url.replace("localhost", "bob.example"))
    (www / ".well-known").mkdir()
    (www / ".well-known/o2m-card.json").write_bytes(card.raw)
    env = {"O2M_CA_BUNDLE": str(bundle)}
    r = run_o2m("friend", "add", "bob", url, "--yes", cwd=ada, env=env)
    assert r.returncode == 1 and "fingerprint" in r.stderr  # --yes is not enough by URL
    r = run_o2m("friend", "add", "bob", url, "--fingerprint",
                fingerprint(card.sign_pk, card.box_pk), cwd=ada, env=env)
    assert r.returncode == 0, r.stderr
    r = run_o2m("friend", "add", "zed", url + "nothing-here/", "--fingerprint", "1", cwd=ada,
                env=env)
    assert r.returncode == 1 and "HTTP 404" in r.stderr
    r = run_o2m("friend", "add", "zed", url, "--fingerprint", "1", cwd=ada)  # untrusted CA
    assert r.returncode == 1 and "cannot fetch" in r.stderr and "Traceback" not in r.stderr


def test_damaged_public_key_file_is_one_line(ada):
    """A damaged keys/identity.pub.json is one error line naming it, no traceback."""
    assert run_o2m("friend", "add", "bob", card_to_text(a_card()), "--yes", cwd=ada).returncode == 0
    (ada / "keys/identity.pub.json").write_text("{not json")
    r = run_o2m("build", cwd=ada)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "keys/identity.pub.json" in r.stderr and "damaged" in r.stderr
