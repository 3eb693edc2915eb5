"""Hostile and broken hosts (THREATS.md 24-32, 47): a small raw TLS server (socket + ssl
in a thread) serves a friend's real build, and misbehaves on the paths it is told to.
Each fault is refused for that friend alone, with its reason; the store keeps what it
had; the other friend is fetched as usual."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import trustme
from conftest import run_o2m
from support.people import PASS, Person, server_context  # noqa: F401
from support.raw_tls import RawTLSServer
from support.system import o2m_unprivileged, try_mount_tmpfs

from o2m_pub._files import TMP_PREFIX
from o2m_pub.reader.http_fetch import Limits
from o2m_pub.reader.store import ReaderStore

FAST = Limits(connect_timeout=1, read_timeout=1, deadline=2.5, workers=4)


@pytest.fixture
def hostile(tmp_path, ca):
    """Bob's friends: Ada on a raw, steerable TLS server; Carol on a normal one."""
    authority, bundle = ca
    context = server_context(authority)
    ada = Person(tmp_path, "ada", context, server_cls=RawTLSServer)
    bob = Person(tmp_path, "bob", context)
    carol = Person(tmp_path, "carol", context)
    for a, b in ((ada, bob), (bob, ada), (carol, bob), (bob, carol)):
        a.befriend(b)
    ada.post("a", "Ada first", "friends")
    carol.post("c", "Carol first", "friends")
    ada.build()
    carol.build()
    first = bob.fetch(bundle, limits=FAST)
    assert first["ada"].new == 1 and first["carol"].new == 1, first
    yield ada, bob, carol, bundle
    for p in (ada, bob, carol):
        p.server.stop()


def refetch(hostile, behaviours: dict[str, str], *, new_posts: bool = False,
            limits: Limits = FAST):
    """Set Ada's host to misbehave, fetch, and check that only Ada was refused and that
    Bob's store kept everything; returns Ada's outcome."""
    ada, bob, carol, bundle = hostile
    with ReaderStore.open(bob.root) as store:
        before = store.friend_state("ada")
    if new_posts:
        ada.post("b", "Ada second", "friends", body="![pic](pic.png)")
        (ada.root / "content/2026/pic.png").write_bytes(os.urandom(3000))
        ada.build()
    carol.post(f"c{time.monotonic_ns()}", "Carol again", "friends")
    carol.build()
    ada.server.behaviours = behaviours
    got = bob.fetch(bundle, limits=limits)
    assert got["carol"].ok and got["carol"].new == 1, got["carol"]
    assert got["ada"].status == "refused", got["ada"]
    assert {p.title for p in bob.timeline(friend="ada")} == {"Ada first"}
    with ReaderStore.open(bob.root) as store:
        after = store.friend_state("ada")
        assert (after.seq, after.head_digest, after.pages) == (
            before.seq, before.head_digest, before.pages)
        assert after.last_reason == got["ada"].reason
        # security review finding 12: the feed's name (f/<name>) is semi-secret: no
        # refusal line, and no stored last_error, shows it
        feed = before.feed_name[:8]
        assert feed not in got["ada"].detail and feed not in (after.last_error or ""), got
    return got["ada"]


def test_threat_24_a_trickling_body_is_cut_by_the_deadline(hostile):
    """A head whose body trickles in slowly is cut by the friend's deadline: a timeout."""
    got = refetch(hostile, {"f/": "trickle"})
    assert got.reason == "timeout"


def test_threat_24_trickling_headers_are_cut_by_the_deadline(hostile):
    """Response headers at one byte every 0.2 s: every read is well within the read
    timeout (5 s here), so only the friend's deadline (2.5 s) stops it: the fetcher
    hangs up while the host still has most of its 150 bytes to trickle (30 s' worth)."""
    ada = hostile[0]
    got = refetch(hostile, {"f/": "trickle-headers"},
                  limits=Limits(connect_timeout=1, read_timeout=5, deadline=2.5, workers=4))
    assert got.reason == "timeout", got
    assert ada.server.sent < 150, ada.server.sent


def test_threat_24_a_hanging_handshake_times_out(hostile):
    """The host accepts the TCP connection and never answers the TLS handshake."""
    got = refetch(hostile, {"*": "no-handshake"})
    assert got.reason == "timeout"


def test_threat_24_a_hanging_connect_is_cut_by_the_deadline(hostile):
    """Ada's host never answers the SYN. The connect timeout (600 s here) would wait far
    longer than the friend's deadline (2.5 s): the deadline stops it, as a timeout, and
    Carol is fetched as usual (checked in refetch). The watchdog turns a connect that
    waits out its own timeout into a failure instead of a stuck suite."""
    server = hostile[0].server
    server.leave_connects_unanswered()
    requests_before = list(server.requests)
    outcome: dict[str, object] = {}

    def fetch() -> None:
        try:
            outcome["got"] = refetch(hostile, {}, limits=Limits(
                connect_timeout=600, read_timeout=600, deadline=2.5, workers=4))
        except BaseException as e:  # noqa: BLE001 - raised again below
            outcome["error"] = e
    watched = threading.Thread(target=fetch, daemon=True)
    watched.start()
    watched.join(90)
    assert not watched.is_alive(), "the connect was not cut by the friend's deadline"
    if "error" in outcome:
        raise outcome["error"]
    got = outcome["got"]
    assert (got.reason, got.detail) == ("timeout", "no answer in time"), got
    assert server.requests == requests_before  # no connection got as far as a request


def test_threat_25_an_endless_body_is_cut_at_the_cap(hostile):
    """A head whose body never ends is cut at the size cap: oversized."""
    got = refetch(hostile, {"f/": "endless"})
    assert got.reason == "oversized"


def test_threat_26_a_lying_content_length_does_not_get_past_the_cap(hostile):
    """A Content-Length over the cap is refused at the headers; a short one followed by a
    long body: only the announced 600 bytes are read, and they are no head (malformed)."""
    assert refetch(hostile, {"f/": "huge-length"}).reason == "oversized"
    # a short Content-Length with a long body: only the announced bytes are read, and
    # they are not a head
    assert refetch(hostile, {"f/": "lying-length"}).reason == "malformed"


def test_threat_27_gzip_bomb_bounded(hostile):
    """64 MiB of zeros gzipped, though we asked for identity: refused at its headers,
    nothing of it decoded."""
    got = refetch(hostile, {"f/": "gzip-bomb"})
    assert got.reason == "malformed" and "Content-Encoding 'gzip'" in got.detail, got


def test_threat_27_stacked_encodings_bounded(hostile):
    """Content-Encoding: gzip, gzip, ... (which we did not ask for) is refused at its
    headers, nothing decoded."""
    got = refetch(hostile, {"f/": "gzip-stack"})
    assert got.reason == "malformed" and "Content-Encoding" in got.detail, got


def test_threat_27_an_encoding_that_decodes_to_nothing_is_refused_unread(hostile):
    """We ask for `Accept-Encoding: identity`; a host that answers gzip anyway, with an
    empty member, a bad byte and then zeros without end (which a decoder turns into no
    bytes at all, so a cap on decoded bytes never trips), is refused at its headers:
    the host gets only as far as the sockets' buffers take it, not its 256 MiB."""
    ada = hostile[0]
    got = refetch(hostile, {"f/": "gzip-to-nothing"})
    assert got.reason == "malformed" and "Content-Encoding" in got.detail, got
    assert ada.server.sent < 32 << 20, ada.server.sent


@pytest.mark.parametrize("behaviour", ["redirect-loop", "redirect-http", "redirect-other-host"])
def test_threat_28_redirects_refused(hostile, behaviour):
    """A redirect (a loop, to plain HTTP, to another host) is refused, never followed."""
    got = refetch(hostile, {"f/": behaviour})
    assert got.reason == "redirect refused", got


def test_a_redirect_to_a_file_url_is_refused_as_not_https(hostile):
    """Security review finding 10: a redirect to file:///etc/passwd is refused, and the
    reason says what it is (not https), not "redirected to http"."""
    got = refetch(hostile, {"f/": "redirect-file"})
    assert got.reason == "redirect refused", got
    assert got.detail == "head: redirected to file:, not https", got


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_a_server_of_tls_1_0_only_is_refused_as_tls_too_old(hostile):
    """Security review finding 10: a server that offers TLS 1.0 alone is refused (the
    fetcher wants 1.2 or later), and the reason says so, not "bad certificate"."""
    ada, bob, carol, bundle = hostile
    authority = trustme.CA()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(old)
    ada.server.context = old
    ada.server.requests.clear()
    got = refetch(hostile, {})
    assert (got.reason, got.detail) == (
        "TLS version too old", "the server offers only TLS older than 1.2"), got
    assert ada.server.requests == []


@pytest.mark.parametrize("behaviour,reason", [("404", "http error"), ("500", "http error"),
                                              ("html", "malformed")])
def test_threat_29_errors_keep_the_prior_state(hostile, behaviour, reason):
    """An HTTP error (404, 500) or an HTML page instead of a head is refused with its
    reason; Bob keeps what he had (checked in refetch)."""
    assert refetch(hostile, {"f/": behaviour}).reason == reason


CARD_ONLY = ["GET /.well-known/o2m-card.json HTTP/1.1"]


def test_threat_30_a_bad_certificate_fails_before_the_path_is_sent(hostile):
    """THREATS 30: no path of Ada's feed (a semi-secret, §3.1) is ever sent over a
    connection whose certificate fails. Since protocol 1.1 the reader then asks for her
    public card alone over an unverified connection (§3.5: a card is trusted by its
    signature), to learn of a new certificate; nothing else is asked there."""
    ada, bob, carol, bundle = hostile
    ada.server.context = server_context(trustme.CA())  # a CA Bob does not trust
    ada.server.requests.clear()
    got = refetch(hostile, {})
    assert got.reason == "bad certificate"
    assert CARD_ONLY == ada.server.requests
    # the line says why the certificate failed, and what Bob can do
    assert "(certificate verify failed" in got.detail or "unable to get" in got.detail, got
    assert "`o2m card`" in got.detail and "$O2M_CA_BUNDLE" in got.detail


def test_threat_30_a_trusted_certificate_for_another_host_name_fails_before_the_path_is_sent(
        hostile, ca):
    """THREATS 30, the host name: a certificate that Bob's CA did issue, but for another
    host (other.example, not localhost), is refused as a bad certificate that names the
    mismatch, and no path of Ada's feed is sent: only her public card is asked for, over
    the unverified connection §3.5 allows for it."""
    ada, bob, carol, bundle = hostile
    authority, _ = ca  # the CA of Bob's bundle
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("other.example").configure_cert(context)
    ada.server.context = context
    ada.server.requests.clear()
    got = refetch(hostile, {})
    assert got.reason == "bad certificate"
    assert "Hostname mismatch" in got.detail, got
    assert CARD_ONLY == ada.server.requests


def test_threat_31_a_reset_mid_object_stores_nothing_partial(hostile):
    """A connection reset in the middle of an object stores nothing of it: unreachable, and
    no object file in Bob's store."""
    ada, bob, carol, bundle = hostile
    got = refetch(hostile, {"o/": "drop"}, new_posts=True)
    assert got.reason == "unreachable"
    objects = bob.root / ".o2m/objects"
    assert not objects.exists() or not [p for p in objects.rglob("*") if p.is_file()]


def test_threat_31_a_reset_mid_attachment_stores_nothing_partial(hostile):
    """The reset hits an attachment, half-way through its body, after the post's own
    object came whole: Ada's fetch is refused as unreachable and nothing of her update
    is kept (no post and the same head: checked in refetch; no attachment file, whole or
    partial, and no spooled text). Once her host is mended, the next fetch stores the
    post and its picture, byte for byte."""
    ada, bob, carol, bundle = hostile
    built = {p.name for p in (ada.root / "build/o").iterdir()}
    ada.post("b", "Ada second", "friends", body="![pic](pic.png)")
    picture = b"\x89PNG\r\n\x1a\n" + os.urandom(300_000)
    (ada.root / "content/2026/pic.png").write_bytes(picture)
    ada.build()
    sizes = {p.name: p.stat().st_size for p in (ada.root / "build/o").iterdir()
             if p.name not in built}
    attachment = max(sizes, key=sizes.get)  # the picture; the post's object is small
    assert sizes[attachment] > 300_000 > max(v for k, v in sizes.items() if k != attachment)
    ada.server.requests.clear()
    got = refetch(hostile, {"o/" + attachment: "drop"})
    assert got.reason == "unreachable", got
    asked = [r.split()[1][len("/o/"):] for r in ada.server.requests if r.startswith("GET /o/")]
    assert attachment in asked and set(asked) - {attachment}, asked  # the post's came whole
    state = bob.root / ".o2m"
    assert [] == [p for folder in ("objects", "spool") for p in (state / folder).rglob("*")
                  if p.is_file()]

    ada.server.behaviours = {}
    again = bob.fetch(bundle, limits=FAST)
    assert again["ada"].ok and again["ada"].new == 1, again["ada"]
    assert {"Ada first", "Ada second"} == bob.titles(friend="ada")
    with ReaderStore.open(bob.root) as store:
        assert picture == store.attachments.path(attachment).read_bytes()


def test_threat_18_a_flipped_object_is_refused(hostile):
    """An object with a flipped byte fails its check: bad object, and nothing of that update
    is stored."""
    got = refetch(hostile, {"o/": "flip"}, new_posts=True)
    assert got.reason == "bad object"


def test_threat_32_one_failing_friend_does_not_stop_the_others(hostile):
    """Ada's host is down altogether; Carol is fetched (checked in refetch)."""
    ada, bob, carol, bundle = hostile
    ada.server.stop()
    got = refetch(hostile, {})
    assert got.reason == "unreachable"


def test_unreachable_for_more_than_a_day_is_a_notification(hostile):
    """A friend unreachable on two fetches more than a day apart gives one 'unreachable'
    notification."""
    ada, bob, carol, bundle = hostile
    ada.server.stop()
    now = dt.datetime.now(dt.timezone.utc)
    bob.fetch(bundle, "ada", limits=FAST, now=now)
    bob.fetch(bundle, "ada", limits=FAST, now=now + dt.timedelta(days=2))
    with ReaderStore.open(bob.root) as store:
        assert [n.kind for n in store.notifications()] .count("unreachable") == 1


def test_a_date_of_minus_0000_beside_a_last_modified_of_plus_0000_is_read(hostile):
    """A host's Date in RFC 5322's "-0000" (parsed without a time zone) and its
    Last-Modified in "+0000" (with one): compared as the UTC times both are, not
    refused as an internal error. The head an hour older than the response is a
    strong validator, kept for the next conditional request."""
    ada, bob, carol, bundle = hostile
    ada.post("b", "Ada second", "friends")
    ada.build()
    ada.server.behaviours = {"f/": "date-minus-zero"}
    got = bob.fetch(bundle, "ada", limits=FAST)["ada"]
    assert (got.status, got.new) == ("new", 1), got
    with ReaderStore.open(bob.root) as store:
        assert store.friend_state("ada").last_modified == "Mon, 30 Nov 2026 11:00:00 +0000"


# ---------------------------------------------------------------- TLS pins


def self_signed_context(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, bytes]:
    """A server context with a self-signed certificate made with cryptography, and the
    certificate's PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / f"{name}.crt").write_bytes(pem)
    (tmp_path / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
    return context, pem


def pin_ada(ada: Person, bob: Person, pem: bytes) -> None:
    """Ada's card now carries the pin of her server's key; Bob takes the new card."""
    from o2m_pub.config import load
    from o2m_pub.friends.identity import load_identity, write_own_card
    from o2m_pub.protocol.cards import tls_pin_from_certificate
    identity = load_identity(ada.root, b"test passphrase")
    write_own_card(ada.root, identity, load(ada.root),
                   now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1),
                   tls_pin=tls_pin_from_certificate(pem))
    bob.befriend(ada)


def test_a_pinned_self_signed_server_is_fetched(hostile, tmp_path):
    """The card's pin, not a CA, vouches for a self-signed server (no verify=False)."""
    ada, bob, carol, bundle = hostile
    context, pem = self_signed_context(tmp_path, "ada")
    pin_ada(ada, bob, pem)
    ada.server.context = context
    ada.post("b", "Pinned post", "friends")
    ada.build()
    got = bob.fetch(bundle, "ada", limits=FAST)["ada"]
    assert got.ok and got.new == 1, got


def test_threat_30_a_wrong_pin_fails_before_the_path_is_sent(hostile, tmp_path):
    """A server key that is not the one pinned in the friend's card fails before any request
    line (so the path) is sent, and the reason names the pin."""
    ada, bob, carol, bundle = hostile
    _, pinned_pem = self_signed_context(tmp_path, "pinned")
    pin_ada(ada, bob, pinned_pem)
    ada.server.context, _ = self_signed_context(tmp_path, "other")  # another key
    ada.server.requests.clear()
    got = refetch(hostile, {})
    assert got.reason == "bad certificate" and "pin" in got.detail
    assert "`o2m card`" in got.detail  # the way forward: their card as it is now
    # no path of her feed was ever sent: her public card alone, unverified (§3.5)
    assert CARD_ONLY == ada.server.requests


def befriend_on_the_same_origin(bob: Person, url: str, tls_pin: bytes | None) -> None:
    """Give Bob a friend Mallory whose card claims a site at `url`, on the origin of
    another friend's site, pinning `tls_pin`: her friend file is written directly, as
    `o2m friend add` stored such cards before it refused them (review finding 4)."""
    import nacl.public
    import nacl.signing

    from o2m_pub.friends.friend_store import Friend, friend_to_json
    from o2m_pub.protocol.cards import make_card
    card = make_card(nacl.signing.SigningKey.generate(), name="Mallory", url=url,
                     box_pk=bytes(nacl.public.PrivateKey.generate().public_key),
                     tls_pin=tls_pin,
                     created=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
    (bob.root / "keys/friends/mallory.json").write_bytes(
        friend_to_json(Friend("mallory", card, "2026-11-01T00:00:00Z")))


def test_threat_30_two_friends_on_one_origin_keep_their_own_pins(hostile, tmp_path):
    """Ada's card pins her self-signed server; Mallory's card claims a site on Ada's
    origin and pins another key. Each pin vouches only for its own friend: Ada is
    fetched as usual, Mallory is refused for her pin (the last pin read used to
    replace Ada's for the whole origin)."""
    from o2m_pub.protocol.cards import tls_pin_from_certificate
    ada, bob, carol, bundle = hostile
    context, pem = self_signed_context(tmp_path, "ada")
    pin_ada(ada, bob, pem)
    ada.server.context = context
    _, other = self_signed_context(tmp_path, "mallory")
    befriend_on_the_same_origin(bob, ada.server.url + "m/", tls_pin_from_certificate(other))
    ada.post("b", "Pinned post", "friends")
    ada.build()
    got = bob.fetch(bundle, limits=FAST)
    assert got["ada"].ok and got["ada"].new == 1, got["ada"]
    assert (got["mallory"].reason, "pin" in got["mallory"].detail) == ("bad certificate", True)
    assert got["carol"].ok


def test_threat_30_another_friends_pin_on_the_same_origin_does_not_vouch_for_this_friend(
        hostile, tmp_path):
    """Ada's card has no pin: her site is checked by CAs. Someone serving her origin
    with a self-signed key of their own (Mallory, on the path) gives Bob a card for a
    site on that origin pinning that key. Ada's fetch still wants a CA's word: it is
    refused as a bad certificate, and not one of Ada's feed paths reaches that server
    (only Mallory's own, under /m/, and Ada's public card, which the reader asks for
    over an unverified connection to learn of a new certificate, §3.5)."""
    from o2m_pub.protocol.cards import tls_pin_from_certificate
    ada, bob, carol, bundle = hostile
    context, pem = self_signed_context(tmp_path, "mallory")
    befriend_on_the_same_origin(bob, ada.server.url + "m/", tls_pin_from_certificate(pem))
    ada.server.context = context
    ada.server.requests.clear()
    got = refetch(hostile, {})
    assert got.reason == "bad certificate" and "pin" not in got.detail, got
    paths = [line.split(" ")[1] for line in ada.server.requests]
    assert all(p.startswith("/m/") or p == "/.well-known/o2m-card.json" for p in paths), paths


# ---------------------------------------------------------------- crash safety


def test_threat_47_kill_9_mid_commit_stores_all_or_nothing(hostile):
    """`o2m fetch` killed by SIGKILL inside its first friend's transaction (after that
    friend's posts were written, before the state and COMMIT): the store has all of
    the update or none of it; the next fetch stores it whole."""
    ada, bob, carol, bundle = hostile
    ada.post("b", "Ada second", "friends")
    carol.post("d", "Carol second", "friends")
    ada.build()
    carol.build()
    db = bob.root / ".o2m/reader.db"

    def snapshot():
        con = sqlite3.connect(db)
        try:
            return (con.execute("SELECT friend, seq, head_digest FROM friend_state "
                                "ORDER BY friend").fetchall(),
                    con.execute("SELECT friend, title FROM posts ORDER BY friend, title"
                                ).fetchall())
        finally:
            con.close()

    before = snapshot()
    r = run_o2m("fetch", cwd=bob.root, env={"O2M_CA_BUNDLE": bundle,
                                             "O2M_FETCH_FAULT": "kill-in-commit:2"})
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stdout, r.stderr)
    states, posts = snapshot()
    # one friend's update committed whole, the other's not at all
    changed = [s for s in states if s not in before[0]]
    assert len(changed) == 1
    done = changed[0][0]
    assert {t for f, t in posts if f != done} == {t for f, t in before[1] if f != done}
    assert len([t for f, t in posts if f == done]) == 2
    r = run_o2m("fetch", cwd=bob.root, env={"O2M_CA_BUNDLE": bundle})
    assert r.returncode == 0, r.stdout + r.stderr
    assert {t for _, t in snapshot()[1]} == {"Ada first", "Ada second", "Carol first",
                                             "Carol second"}


def _ada_in_the_store(bob) -> tuple:  # noqa: ANN001 - a support.people.Person
    """What Bob's store holds of Ada (her head, what is held against her, her posts),
    and whether the database is whole."""
    con = sqlite3.connect(bob.root / ".o2m/reader.db")
    try:
        return (con.execute("PRAGMA integrity_check").fetchone()[0],
                con.execute("SELECT seq, head_digest, last_reason, last_error, failing_since "
                            "FROM friend_state WHERE friend = 'ada'").fetchone(),
                sorted(t for (t,) in con.execute(
                    "SELECT title FROM posts WHERE friend = 'ada'")))
    finally:
        con.close()


def _leftovers(state: Path) -> list[str]:
    """Files a stopped fetch must not leave: attachments, spooled texts, temporaries."""
    return sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file() and (
        p.name.startswith(TMP_PREFIX) or p.relative_to(state).parts[0] in ("objects", "spool")))


def test_threat_48_a_full_disk_during_fetch_is_a_local_error_and_stores_nothing_partial(
        hostile, tmp_path):
    """Bob's .o2m/ on a real, small file system (a 2 MiB tmpfs; needs root with mount
    rights, else skips) that fills up while `o2m fetch` writes Ada's update: where her
    picture is cached, where her long text is spooled, and in the store's own commit.
    Each time: exit 1 and one line naming the file and the full disk, with the hint to
    make room; nothing is held against Ada (no refusal line, no reason
    stored: it is not her fault); nothing of her update is stored, and no file of it
    is left; the database is whole. With room again, the next fetch stores it all."""
    ada, bob, carol, bundle = hostile
    state = bob.root / ".o2m"
    saved = tmp_path / "saved-state"
    state.rename(saved)
    if not try_mount_tmpfs(state, "2m"):
        state.rmdir()
        saved.rename(state)
        pytest.skip("cannot mount a small tmpfs here (needs root with mount rights)")
    try:
        shutil.copytree(saved, state, dirs_exist_ok=True)
        before = _ada_in_the_store(bob)
        assert before[0] == "ok" and before[1][2:] == (None, None, None)
        filler = state / "filler"

        def fetch_on_a_full_disk(room: int, names: str) -> None:
            """Fill the disk but `room` bytes, fetch, then free it and check."""
            if room:
                with open(filler, "wb") as f:
                    f.write(b"\0" * max(0, shutil.disk_usage(state).free - room))
            try:
                r = run_o2m("fetch", cwd=bob.root, env={"O2M_CA_BUNDLE": bundle})
            finally:
                filler.unlink(missing_ok=True)
            assert r.returncode == 1, r.stdout + r.stderr
            assert "No space left on device" in r.stderr or "disk is full" in r.stderr, r.stderr
            assert f"o2m: error: .o2m/{names}" in r.stderr, r.stderr
            hint = r.stderr.partition("hint: ")[2]
            assert "free space" in hint or "disk has room" in hint, r.stderr
            assert "Traceback" not in r.stderr and "internal error" not in r.stderr
            assert "ada" not in r.stdout, r.stdout  # no refusal line of hers
            assert before == _ada_in_the_store(bob)
            assert [] == _leftovers(state)

        # her picture is larger than the whole disk
        (ada.root / "content/2026/big.png").write_bytes(b"\x89PNG" + os.urandom(3_000_000))
        ada.post("big", "Big picture", "friends", body="![p](big.png)")
        ada.build()
        fetch_on_a_full_disk(0, "objects/")

        # her long text is spooled (above SPOOL_CHARS), on a disk with 150 kB left
        for name in ("big.png", "big.md"):
            (ada.root / "content/2026" / name).unlink()
        ada.post("many", "Many words", "friends", body="word " * 200_000)
        ada.build()
        fetch_on_a_full_disk(150_000, "spool/")

        # a shorter text (not spooled) fills the disk in the store's own transaction
        (ada.root / "content/2026/many.md").unlink()
        ada.post("some", "Some words", "friends", body="word " * 12_000)
        ada.build()
        fetch_on_a_full_disk(40_000, "reader.db")

        remount = subprocess.run(["mount", "-o", "remount,size=16m", str(state)],
                                 capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        r = run_o2m("fetch", cwd=bob.root, env={"O2M_CA_BUNDLE": bundle})
        assert r.returncode == 0, r.stdout + r.stderr
        integrity, head, titles = _ada_in_the_store(bob)
        assert ("ok", ["Ada first", "Some words"]) == (integrity, titles)
        assert head[0] > before[1][0] and head[2:] == (None, None, None)
    finally:
        subprocess.run(["umount", str(state)], check=False)


def test_threat_48_a_cache_folder_we_may_not_write_is_a_local_error(hostile):
    """Bob's attachment cache (.o2m/objects/) made read-only, and `o2m fetch` run
    without root's power over file modes: the error names the folder and the reason
    (permission denied), and Ada, whose picture could not be cached, is not refused for
    it: nothing is held against her and nothing of her update is stored. Writable
    again, the next fetch stores it."""
    ada, bob, carol, bundle = hostile
    before = _ada_in_the_store(bob)
    ada.post("b", "Ada second", "friends", body="![pic](pic.png)")
    (ada.root / "content/2026/pic.png").write_bytes(b"\x89PNG" + os.urandom(3000))
    ada.build()
    objects = bob.root / ".o2m/objects"
    objects.mkdir(mode=0o500, exist_ok=True)
    objects.chmod(0o500)
    try:
        r = o2m_unprivileged("fetch", cwd=bob.root, env={"O2M_CA_BUNDLE": bundle})
    finally:
        objects.chmod(0o700)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "o2m: error: .o2m/objects/" in r.stderr and "Permission denied" in r.stderr
    assert "Traceback" not in r.stderr and "ada" not in r.stdout, r.stdout + r.stderr
    assert before == _ada_in_the_store(bob)
    assert bob.fetch(bundle, limits=FAST)["ada"].new == 1
    assert {"Ada first", "Ada second"} == bob.titles(friend="ada")
