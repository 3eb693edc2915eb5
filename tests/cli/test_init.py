"""`o2m init` makes a site that is complete from the first card (issue 12) and fails
cleanly (newcomer review, frictions 5 and 13), through the real command."""

from __future__ import annotations

import ipaddress

import pytest
from conftest import run_o2m
from cryptography import x509
from support.terminal import dialogue

from o2m_pub.friends.identity import load_identity, own_card
from o2m_pub.friends.passphrase_strength import passphrase_weakness
from o2m_pub.protocol.cards import card_from_text, tls_pin_from_certificate


def test_the_first_card_carries_the_pin_of_the_certificate_init_made(tmp_path):
    """init makes the TLS key and a self-signed certificate for the URL's host and
    this machine, and the very first `o2m card` carries its pin: a card handed out
    before the first `o2m serve` is complete."""
    result = run_o2m("init", "s", "--url", "https://ada.example/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "s"
    cert_pem = (root / "keys/tls/cert.pem").read_bytes()
    assert (root / "keys/tls/key.pem").stat().st_mode & 0o777 == 0o600
    names = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "ada.example" in names.get_values_for_type(x509.DNSName)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    printed = run_o2m("card", cwd=root)
    assert printed.returncode == 0, printed.stderr
    card = card_from_text(printed.stdout.strip())
    assert card.tls_pin == tls_pin_from_certificate(cert_pem)
    assert own_card(root).tls_pin == card.tls_pin


def test_own_cert_makes_no_certificate_and_no_pin(tmp_path):
    """With --own-cert the owner names a CA's certificate in [serve]: no key or
    certificate is made and the card carries no pin."""
    result = run_o2m("init", "s", "--url", "https://ada.example/", "--own-cert", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "s/keys/tls").exists()
    assert own_card(tmp_path / "s").tls_pin is None


@pytest.mark.parametrize("where", ["fresh", "empty folder", "nested"])
def test_a_refused_init_leaves_nothing_behind(tmp_path, where):
    """An init refused midway (here: an empty passphrase, found only when the keys
    are sealed) leaves no half-made site that a retry would refuse: the site is made
    aside and moved into place at the end."""
    folder = {"fresh": tmp_path / "s", "empty folder": tmp_path / "s",
              "nested": tmp_path / "a/b/s"}[where]
    if where == "empty folder":
        folder.mkdir()
    before = sorted(tmp_path.rglob("*"))
    refused = run_o2m("init", str(folder), "--url", "https://s.example/", cwd=tmp_path,
                      env={"O2M_PASSPHRASE": ""})
    assert refused.returncode == 1 and "passphrase is empty" in refused.stderr
    assert sorted(tmp_path.rglob("*")) == before
    again = run_o2m("init", str(folder), "--url", "https://s.example/", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (folder / "keys/identity.secret").is_file() and (folder / "o2m.toml").is_file()


def test_init_in_an_existing_folder_keeps_its_gitignore(tmp_path):
    """init in a folder that already has files of its own (a git checkout) moves the
    new entries in and keeps the owner's .gitignore as it is."""
    (tmp_path / "s").mkdir()
    (tmp_path / "s/.gitignore").write_text("mine\n")
    (tmp_path / "s/README").write_text("notes\n")
    assert run_o2m("init", "s", "--url", "https://s.example/", cwd=tmp_path).returncode == 0
    assert (tmp_path / "s/.gitignore").read_text() == "mine\n"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        ".gitignore", "README", "content", "keys", "o2m.toml", "site_templates"]


@pytest.mark.parametrize("url", ["x.example", "http://x.example/", "ftp://x.example/",
                                 "https://", "https://x.example/?q=1"])
def test_every_url_mistake_gets_one_wording_and_nothing_is_made(tmp_path, url):
    """One wording for the URL mistake, whichever it is (no "card field 'url'", no
    stray ":6" from the config's line), before anything is written: a usage error, exit
    status 2 as every bad value's, one line naming the option and the value, a hint."""
    result = run_o2m("init", "s", "--url", url, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (f"o2m: error: --url: {url!r} is not an https:// address where the "
                        f"site can be published")
    assert [line.strip() for line in lines[1:]] == ["hint: e.g. --url https://ada.example/ (friends fetch your feeds "
                         "there, over TLS)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["https://[fe80::1%25eth0]/", "https://[::1]junk/",
                                 "https://ada_x.example/"])
def test_a_url_no_card_may_carry_is_refused_before_anything_is_made(tmp_path, url):
    """The card's rule for its url (§2.4) decides at init too: these passed init's check
    and o2m.toml's, then signing the card failed (a review). A usage error naming the
    value and the rule broken, and nothing made."""
    result = run_o2m("init", "s", "--url", url, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"o2m: error: --url: {url!r} cannot be a card's address: ")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_url_is_a_usage_error_even_where_a_site_already_is(tmp_path):
    """The URL is checked before the folder: a bad --url in a folder that holds a site
    is still the usage error (exit 2) about --url, and the site is untouched."""
    assert run_o2m("init", "s", "--url", "https://s.example/", cwd=tmp_path).returncode == 0
    config = (tmp_path / "s" / "o2m.toml").read_bytes()
    result = run_o2m("init", "s", "--url", "http://s.example/", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("o2m: error: --url: 'http://s.example/' is not")
    assert (tmp_path / "s" / "o2m.toml").read_bytes() == config


def test_a_weak_passphrase_is_a_warning_line_in_a_script(tmp_path):
    """From $O2M_PASSPHRASE (a script), a weak passphrase is one warning line; the
    site is made."""
    result = run_o2m("init", "s", "--url", "https://s.example/", cwd=tmp_path,
                     env={"O2M_PASSPHRASE": "abc"})
    assert result.returncode == 0, result.stderr
    assert ("o2m: warning: this passphrase looks weak: it has only 3 characters"
            in result.stderr)


def test_a_weak_passphrase_is_confirmed_or_replaced_at_a_terminal(tmp_path):
    """At a terminal, a weak passphrase is warned about and must be confirmed; saying
    no asks again, and the keys are sealed with the new one."""
    strong = "plum river lantern oak"
    status, seen = dialogue(tmp_path, ["init", "s", "--name", "S", "--url", "https://s.example/",
                                       "--author", "Sam", "--description", ""], [
        ("Passphrase for your keys", "abc"), ("Repeat for confirmation", "abc"),
        ("Use it anyway?", "n"),
        ("Passphrase for your keys", strong), ("Repeat for confirmation", strong)],
        drop=("O2M_PASSPHRASE",))
    assert status == 0, seen
    assert "looks weak: it has only 3 characters" in seen
    assert load_identity(tmp_path / "s", strong.encode())


def test_the_author_is_asked_for_and_named_in_the_footer(tmp_path):
    """--author sets the name on posts and in the card: the footer reads "Ada's notes
    by Ada", not the site's name twice; without an author it names the site once."""
    assert run_o2m("init", "a", "--name", "Ada's notes", "--author", "Ada", "--url",
                   "https://ada.example/", cwd=tmp_path).returncode == 0
    assert run_o2m("init", "b", "--name", "Bea", "--url", "https://bea.example/",
                   cwd=tmp_path).returncode == 0
    for site in ("a", "b"):
        assert run_o2m("build", cwd=tmp_path / site).returncode == 0
    footer_a = (tmp_path / "a/build/index.html").read_text().rsplit('<footer', 1)[1]
    footer_b = (tmp_path / "b/build/index.html").read_text().rsplit('<footer', 1)[1]
    assert 'Ada&#39;s notes by <a class="p-name" href="index.html">Ada</a>' in footer_a
    assert 'Bea by' not in footer_b and '<a class="p-name" href="index.html">Bea</a>' in footer_b
    assert own_card(tmp_path / "a").name == "Ada"


@pytest.mark.parametrize(("passphrase", "weakness"), [
    ("abc", "it has only 3 characters"),
    ("test passphrase", "it has fewer than 3 words"),
    ("aaaaaaaaaaaaaaaaaaaa", "it repeats a few characters"),
    ("plum river lantern oak", None),
    ("Tr0ub4dor&3xyzzy", None),  # one word, but four kinds of character
])
def test_passphrase_weakness_rules(passphrase, weakness):
    """The simple rules behind the warning: length, words, variety."""
    assert passphrase_weakness(passphrase.encode()) == weakness
