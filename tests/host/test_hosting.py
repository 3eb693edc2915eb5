"""docs/HOSTING.md's configurations, proven: a real nginx and a real Caddy, started as
child processes on 127.0.0.1 with a test CA's certificate and a configuration made from
the very files HOSTING.md shows (docs/hosting/), serve a site put there by
`o2m publish`; the headers are checked per kind of path, and a friend's `o2m fetch`
reads the site while an update is being published."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from support.hosts import (
    IN_CI,
    free_port,
    make_site,
    need_program,
    o2m,
    tree,
    update_site,
    wait_for_port,
    write_post,
)

from o2m_pub.cli import main
from o2m_pub.friends.identity import own_card
from o2m_pub.host.publish.publish import publish_site
from o2m_pub.protocol.cards import card_to_text

DOCS = Path(__file__).resolve().parents[2] / "docs"
NGINX_TEMPLATE = DOCS / "hosting/nginx.conf.template"
CADDY_TEMPLATE = DOCS / "hosting/Caddyfile.template"
IMMUTABLE = "public, max-age=31536000, immutable"
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
            "media-src 'self' https:; font-src 'self'; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def fill(template: Path, values: dict[str, str]) -> str:
    """The template with its @PLACEHOLDERS@ replaced, as HOSTING.md tells users to."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, left
    return text


def test_hosting_md_shows_the_tested_configurations_verbatim():
    """docs/HOSTING.md quotes the nginx and Caddy templates these tests run, byte for byte."""
    doc = (DOCS / "HOSTING.md").read_text()
    for template in (NGINX_TEMPLATE, CADDY_TEMPLATE):
        assert template.read_text().rstrip("\n") in doc, template.name


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A test CA and a certificate for localhost: (cert chain, key, CA bundle) paths."""
    import trustme
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain, key, bundle = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return str(chain), str(key), str(bundle)


class Host:
    """A web server serving `root` at `url` (https://localhost:PORT/)."""

    def __init__(self, name: str, root: Path, port: int, proc: subprocess.Popen, log: Path,
                 http_port: int | None = None) -> None:
        self.name, self.root, self.port, self.proc, self.log = name, root, port, proc, log
        self.url = f"https://localhost:{port}/"
        self.http_port = http_port

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(tmp_path: Path, tls) -> Host:  # noqa: ANN001
    """nginx as a child process (not a service), from HOSTING.md's template."""
    nginx = need_program("nginx", "nginx")
    chain, key, _ = tls
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    root = tmp_path / "www"
    root.mkdir()
    port, http_port = free_port(), free_port()
    site = fill(NGINX_TEMPLATE, {"LISTEN": f"127.0.0.1:{port}",
                                 "HTTP_LISTEN": f"127.0.0.1:{http_port}",
                                 "SERVER_NAME": "localhost", "ROOT": str(root),
                                 "CERT": chain, "KEY": key})
    (prefix / "site.conf").write_text(site)
    mime = "/etc/nginx/mime.types"
    temp_paths = "".join(f"    {kind}_temp_path {prefix / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # What Debian's /etc/nginx/nginx.conf provides around a site (workers run as root
    # here only because the test's folders are private to root).
    (prefix / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\nerror_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        + (f"    include {mime};\n" if os.path.exists(mime) else "")
        + "    default_type application/octet-stream;\n"
        f"    access_log {prefix / 'access.log'};\n" + temp_paths
        + f"    include {prefix / 'site.conf'};\n}}\n")
    log = prefix / "error.log"
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(log),
         "-g", f"daemon off; pid {prefix / 'nginx.pid'};"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    host = Host("nginx", root, port, proc, log, http_port)
    try:
        wait_for_port(port, proc, log)
    except AssertionError:
        host.stop()
        raise
    return host


def start_caddy(tmp_path: Path, tls) -> Host:  # noqa: ANN001
    """Caddy as a child process, from HOSTING.md's site block (with test-only global
    options: no admin endpoint, no port-80 redirect listener, state in the test folder)."""
    caddy = need_program("caddy", "caddy")
    chain, key, _ = tls
    home = tmp_path / "caddy"
    home.mkdir()
    root = tmp_path / "www"
    root.mkdir()
    port = free_port()
    site = fill(CADDY_TEMPLATE, {"SITE_ADDRESS": f"https://localhost:{port}",
                                 "ROOT": str(root), "CERT": chain, "KEY": key})
    config = home / "Caddyfile"
    config.write_text("{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tauto_https disable_redirects\n"
                      f"\tstorage file_system {home / 'data'}\n}}\n\n" + site)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config")}
    check = subprocess.run([caddy, "validate", "--config", str(config), "--adapter",
                            "caddyfile"], capture_output=True, text=True, env=env, timeout=60)
    assert check.returncode == 0, check.stderr[-2000:]
    log = home / "caddy.log"
    proc = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"), env=env)
    host = Host("caddy", root, port, proc, log)
    try:
        wait_for_port(port, proc, log)
    except AssertionError as e:
        host.stop()
        if IN_CI:  # CI installs caddy: one that validates but does not run is a regression
            pytest.fail(f"caddy validated the documented Caddyfile but did not run: {e}")
        pytest.skip(f"caddy cannot run here: {e}")
    return host


@pytest.fixture(params=["nginx", "caddy"])
def host(request, tmp_path, tls):
    server = (start_nginx if request.param == "nginx" else start_caddy)(tmp_path, tls)
    yield server
    server.stop()


@pytest.fixture
def http(tls):
    session = requests.Session()
    session.trust_env = False
    session.verify = tls[2]
    yield session
    session.close()


def _get(http, host: Host, path: str, **kw) -> requests.Response:  # noqa: ANN001, ANN003
    return http.get(host.url + path.lstrip("/"), allow_redirects=False, timeout=10, **kw)


def test_published_site_is_served_with_the_documented_headers(tmp_path, host, http):
    """A site published into nginx's or Caddy's root (from HOSTING.md's configuration) gets
    the documented headers for each kind of file (pages, objects, heads, media, theme files,
    feeds, the card); no listing and no dotfile (the site's 404 page instead); plain HTTP
    only redirects; an updated head is served fresh, with new validators."""
    root, _, _ = make_site(tmp_path, url=host.url)
    (root / "content/2026/pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    write_post(root, "pic", "Picture", body="![p](pic.svg)", date="2026-11-04")
    o2m(root, "build")
    o2m(root, "publish", str(host.root))
    (host.root / ".secret").write_text("not for the web")
    built = tree(root / "build")
    obj = next(p for p in built if p.startswith("o/"))
    head = next(p for p in built if p.startswith("f/"))
    media = next(p for p in built if p.startswith("media/"))
    style = next(p for p in built if p.startswith("static/") and p.endswith(".css"))

    def check(path: str, status: int, ctype: str | None, cache: str | None, csp: str | None,
              gzip: bool | None = None) -> requests.Response:
        r = _get(http, host, path, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == status, (path, r.status_code)
        if ctype is not None:
            assert r.headers["Content-Type"] == ctype, (path, r.headers)
        if cache is not None:
            assert r.headers["Cache-Control"] == cache, (path, r.headers)
        if csp is not None:
            assert r.headers["Content-Security-Policy"] == csp, (path, r.headers)
        if gzip is not None:
            assert (r.headers.get("Content-Encoding") == "gzip") is gzip, (path, r.headers)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Strict-Transport-Security"] == "max-age=63072000"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["X-Frame-Options"] == "DENY"
        return r

    home = check("/", 200, "text/html; charset=utf-8", "no-cache", PAGE_CSP, gzip=True)
    assert home.text == built["index.html"].decode()
    check("/2026/hello/", 200, "text/html; charset=utf-8", "no-cache", PAGE_CSP)
    moved = check("/2026/hello", 301 if host.name == "nginx" else 308, None, None, None)
    assert moved.headers["Location"].endswith("/2026/hello/")
    for path in (obj, head):
        r = check(path, 200, "application/octet-stream",
                  IMMUTABLE if path == obj else "no-cache", DATA_CSP, gzip=False)
        assert r.content == built[path]
    check(media, 200, "image/svg+xml", IMMUTABLE, DATA_CSP)
    check(f"{style}?v=0123456789", 200, "text/css; charset=utf-8", IMMUTABLE, DATA_CSP)
    check(style, 200, "text/css; charset=utf-8", "no-cache", DATA_CSP)
    check("/feed.json", 200, "application/feed+json", "no-cache", DATA_CSP)
    check("/atom.xml", 200, "application/atom+xml", "no-cache", DATA_CSP)
    check("/sitemap.xml", 200, "application/xml; charset=utf-8", "no-cache", DATA_CSP)
    card = check("/.well-known/o2m-card.json", 200, "application/json", "no-cache", DATA_CSP)
    assert card.content == built[".well-known/o2m-card.json"]
    # no listing, no redirect that shows a folder exists, no dotfiles (THREATS 40, 42)
    name = head.split("/")[1]
    for path in ("/f/", "/f", "/o/", "/media/", "/.secret", "/.well-known/",
                 "/nothing-here"):
        r = check(path, 404, "text/html; charset=utf-8", "no-cache", PAGE_CSP)
        assert name not in r.text and "Location" not in r.headers
    if host.http_port is not None:  # plain HTTP only redirects
        r = http.get(f"http://127.0.0.1:{host.http_port}/index.html", allow_redirects=False,
                     timeout=10)
        assert r.status_code == 301 and r.headers["Location"].startswith("https://")

    # an update: the head changes in place (same padded size); its validators change too
    old_etag = _get(http, host, head).headers["ETag"]
    update_site(root)
    o2m(root, "publish", str(host.root))
    fresh = _get(http, host, head, headers={"If-None-Match": old_etag})
    assert fresh.status_code == 200 and fresh.content == (root / "build" / head).read_bytes()
    assert "Third post" in _get(http, host, "/").text


def _friend_site(tmp_path: Path, ada_card) -> Path:  # noqa: ANN001
    """Bob: a site of his own, who has added Ada."""
    bob = tmp_path / "bob"
    result = CliRunner().invoke(main, ["init", str(bob), "--name", "Bob", "--url",
                                       "https://robert.example/"])
    assert result.exit_code == 0, result.output
    o2m(bob, "friend", "add", "ada", card_to_text(ada_card), "--yes")
    return bob


def _fetch(bob: Path, bundle: str):  # noqa: ANN202 - click Result
    return CliRunner(env={"O2M_CA_BUNDLE": bundle}).invoke(main, ["-C", str(bob), "fetch"],
                                                           catch_exceptions=False)


def _titles(bob: Path) -> set[str]:
    from o2m_pub.reader.store import ReaderStore
    with ReaderStore.open(bob) as store:
        return {p.title for p in store.timeline(limit=1000)}


def test_a_friend_fetches_the_hosted_site_while_an_update_is_published(tmp_path, host, tls):
    """Bob's `o2m fetch` reads Ada's site from the server; then Ada publishes an update,
    and Bob fetches at the start of every step of it: each time he finds a whole,
    verifiable site (the old heads until the new ones land), never a refusal."""
    ada, _, ada_card = make_site(tmp_path, url=host.url)
    bob = _friend_site(tmp_path, ada_card)
    o2m(ada, "friend", "add", "robert", card_to_text(own_card(bob)), "--yes")
    o2m(ada, "build")
    publish_site(ada, str(host.root))
    first = _fetch(bob, tls[2])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("ada") and "refused" not in first.output
    assert {"Only for friends"} <= _titles(bob)

    update_site(ada)
    seen = []

    class FetchAtEachStep:
        def batch(self, batch) -> None:  # noqa: ANN001
            result = _fetch(bob, tls[2])
            seen.append((batch.phase, result.exit_code, result.output.strip()))

        def advance(self, files: int, size: int) -> None:
            pass

    publish_site(ada, str(host.root), progress=FetchAtEachStep())
    assert [phase for phase, _, _ in seen][-1] == "heads"
    for phase, code, output in seen:
        assert code == 0 and "refused" not in output, (phase, output)
    assert "Second secret" not in _titles(bob)  # the new head was not there yet
    last = _fetch(bob, tls[2])
    assert last.exit_code == 0, last.output
    assert {"Only for friends", "Second secret"} <= _titles(bob)


def test_an_invitation_ends_with_a_reply_text_when_the_site_is_on_nginx(tmp_path, tls):
    """Ada publishes to a plain folder behind nginx (HOSTING.md's configuration), which
    has no inbox: Bob's `o2m friend accept` tries to deliver, says why it could not and
    prints the o2m1r: reply; Ada's `o2m friend accept REPLY` adds him under the
    invitation's name; after her build and publish, Bob's `o2m fetch` reads her
    friends-only post (PROTOCOL.md §2.7)."""
    host = start_nginx(tmp_path, tls)
    try:
        ada, _, _ = make_site(tmp_path, url=host.url)
        publish_site(ada, str(host.root))
        invitation = o2m(ada, "friend", "invite", "robert").stdout.strip()
        bob = tmp_path / "bob"
        made = CliRunner().invoke(main, ["init", str(bob), "--name", "Bob", "--url",
                                         "https://robert.example/"])
        assert made.exit_code == 0, made.output
        accepted = CliRunner(env={"O2M_CA_BUNDLE": tls[2]}).invoke(
            main, ["-C", str(bob), "friend", "accept", invitation])
        assert accepted.exit_code == 0, accepted.output
        assert "could not deliver your answer to Ada's site: the site answered HTTP" in \
            accepted.stderr
        reply = accepted.stdout.strip()
        assert reply.startswith("o2m1r:")
        finished = o2m(ada, "friend", "accept", reply)
        assert finished.stdout.startswith("robert accepted your invitation: added robert: Bob")
        o2m(ada, "build")
        publish_site(ada, str(host.root))
        fetched = _fetch(bob, tls[2])
        assert fetched.exit_code == 0, fetched.output
        assert "Only for friends" in _titles(bob)
    finally:
        host.stop()
