"""`o2m serve`: a real Twisted TLS server on 127.0.0.1, queried with requests, raw TLS
sockets, curl and openssl (THREATS 40-45)."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest
import requests
from conftest import run_o2m
from support.hosts import IN_CI, need_program
from support.o2m_server import o2m_serve, site_with_a_friend, start_o2m_serve


# Every test of a served site runs against both of the server's request paths: its
# fast path for plain GETs and HEADs (the default), and Twisted's own parser; and both
# of its TLS transports: o2m's own (the default) and Twisted's TLS layer (docs/adr/0004).
SERVE_MODES = {"fast path": {}, "Twisted's path": {"O2M_SERVE_FAST_PATH": "0"},
               "Twisted's TLS": {"O2M_SERVE_TLS": "twisted"}}
TRANSPORTS = {"own TLS": {}, "Twisted's TLS": {"O2M_SERVE_TLS": "twisted"}}


@pytest.fixture(scope="module", params=list(SERVE_MODES))
def served_site(request, tmp_path_factory):
    """One built site with a friend (so o/, p/, f/ exist), served for the whole module,
    once with each request path, and once on Twisted's TLS layer."""
    root = site_with_a_friend(tmp_path_factory.mktemp("served") / "site", "Served")
    (root / "content" / "big.md").write_text(
        "---\ntitle: Big\ndate: 2026-05-02\naudience: public\n---\n![x](big.bin)\n")
    (root / "content" / "big.bin").write_bytes(os.urandom(3 << 20))
    build = run_o2m("build", cwd=root)
    assert build.returncode == 0, build.stderr
    with o2m_serve(root, env=SERVE_MODES[request.param]) as server:
        server.root = root
        yield server


def _listing(build: Path) -> list[tuple[str, int, int]]:
    """Every path under build/ with its size and mtime (a folder with its name alone:
    adding and removing a file in it changes its mtime)."""
    entries = []
    for path in build.rglob("*"):
        st = path.lstat()
        rel = path.relative_to(build).as_posix()
        entries.append((rel, 0, 0) if stat.S_ISDIR(st.st_mode)
                       else (rel, st.st_size, st.st_mtime_ns))
    return sorted(entries)


@pytest.fixture
def served(served_site):
    """The module's served site, for one test: a test may add files to its build/ for a
    while, but must leave it as it found it (the next tests share it)."""
    before = _listing(served_site.root / "build")
    yield served_site
    assert _listing(served_site.root / "build") == before, "the test left build/ changed"


def get(server, path: str, **kw) -> requests.Response:
    return requests.get(server.url + path.lstrip("/"), verify=server.verify, timeout=10, **kw)


def raw_request(server, request: bytes) -> bytes:
    """Exact bytes on the wire (no client normalising the path), over TLS."""
    ctx = ssl.create_default_context(cafile=server.verify)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def raw_status(server, path: bytes) -> int:
    answer = raw_request(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return int(answer.split(b" ", 2)[1])


def curl(server, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """curl (in CI a missing one fails, elsewhere skips), printing the status code."""
    need_program("curl", "curl")
    return subprocess.run(["curl", "-sS", "--path-as-is", "--cacert", server.verify,
                           "-o", "/dev/null", "-w", "%{http_code}", *args, server.url.rstrip("/") + path],
                          capture_output=True, text=True, timeout=30)


def test_pinned_certificate_and_card(served):
    """With no certificate configured, serve makes a self-signed one, keeps its key private
    (no group or other access), prints its pin, and puts that pin in the card it publishes; the
    site is served over it."""
    from o2m_pub.host.tls import tls_pin_from_certificate
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.protocol.cards import parse_card

    pin = tls_pin_from_certificate(Path(served.verify).read_bytes())
    assert served.pin == "sha256/" + b64u_encode(pin)
    card = parse_card((served.root / "keys" / "card.json").read_bytes())
    assert card.tls_pin == pin
    assert (served.root / "keys" / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    r = get(served, "/")
    assert r.status_code == 200 and "<html" in r.text


def test_threat_40_directory_gives_404_and_redirect_is_escaped(served):
    """A folder is never listed (404 unless a page lives there), and the redirect from /dir
    to /dir/ carries the path %-escaped, never as HTML a browser would run."""
    assert get(served, "/tags/").status_code == 200  # a page lives there
    assert get(served, "/o/").status_code == 404  # no listing of objects
    assert get(served, "/f/").status_code == 404
    assert get(served, "/2026/").status_code == 404  # a folder with no page
    odd = served.root / "build" / 'x"<b>'
    odd.mkdir()
    (odd / "index.html").write_text("odd")
    try:
        answer = raw_request(served, b"GET /x%22%3Cb%3E HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        shutil.rmtree(odd)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 301")
    page = raw_request(served, b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in page.partition(b"\r\n\r\n")[0]
    assert b"\r\nLocation: /x%22%3Cb%3E/\r\n" in head
    assert b"<b>" not in body and b'"<' not in body
    r = get(served, "/tags", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "/tags/"


@pytest.mark.parametrize("path", [
    b"/../o2m.toml", b"/..%2Fo2m.toml", b"/%2e%2e/o2m.toml", b"/static/..%2F..%2Fo2m.toml",
    b"/index.html%00", b"/%00", b"/%C0%AE%C0%AE/o2m.toml", b"/%c0%af", b"/static\\..\\index.html",
    b"/static%5C..%5Cindex.html", b"//etc/passwd", b"/./index.html", b"/static/%2e/style.css",
])
def test_threat_41_traversal_and_odd_encodings_are_404(served, path):
    """THREATS 41: each is a 404 (not a 400, not a file), with the very page any
    missing file gets."""
    missing = raw_request(served, b"GET /no-such-page HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
    answer = raw_request(served, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]
    assert answer.partition(b"\r\n\r\n")[2] == missing.partition(b"\r\n\r\n")[2]


def test_threat_41_curl_path_as_is(served):
    """The same through curl, which sends the path as given (--path-as-is)."""
    for path in ("/../../../etc/passwd", "/..%2f..%2fo2m.toml", "/%2e%2e/%2e%2e/o2m.toml"):
        assert curl(served, path).stdout == "404", path


def test_threat_42_symlinks_out_and_dotfiles_are_404(served, tmp_path):
    """A symlink leading out of build/ (to a file or a folder), a dotfile anywhere and the
    state folder are 404; the card under .well-known/ is served."""
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    build = served.root / "build"
    (build / "leak.txt").symlink_to(outside)
    (build / "leakdir").symlink_to(tmp_path)
    (build / ".hidden").write_text("x")
    (build / "static" / ".env").write_text("x")
    try:
        assert get(served, "/leak.txt").status_code == 404
        assert get(served, "/leakdir/secret.txt").status_code == 404
        assert raw_status(served, b"/.hidden") == 404
        assert raw_status(served, b"/static/.env") == 404
        assert raw_status(served, b"/.o2m/build.db") == 404
        assert raw_status(served, b"/.well-known/../.hidden") == 404
        card = get(served, "/.well-known/o2m-card.json")
        assert card.status_code == 200 and card.headers["Content-Type"] == "application/json"
    finally:
        for name in ("leak.txt", "leakdir", ".hidden", "static/.env"):
            (build / name).unlink()


def test_threat_43_script_files_are_never_executed(served, tmp_path):
    """Files Twisted would run as code (.rpy, .cgi, .epy) are sent as opaque bytes, and
    nothing they hold runs."""
    build = served.root / "build"
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    for name in ("index.rpy", "run.cgi", "page.epy"):
        (build / name).write_text(code)
    try:
        for name in ("index.rpy", "run.cgi", "page.epy"):
            r = get(served, name)
            assert r.status_code == 200 and r.text == code
            assert r.headers["Content-Type"] == "application/octet-stream"
        assert not marker.exists()
    finally:
        for name in ("index.rpy", "run.cgi", "page.epy"):
            (build / name).unlink()


@pytest.mark.parametrize("target", [b"xfeed.json", b"xindex.html", b"*", b"?index.html",
                                    b"https://served.example/feed.json", b"feed.json"])
def test_only_origin_form_request_targets_are_answered(served, target):
    """Security review finding 8: a request target that is not a path starting with
    "/" (RFC 9112 origin-form) is 400, also once the file it would name is in the
    server's cache (its fast path once took `xfeed.json` for `/feed.json`)."""
    for path in ("/feed.json", "/", "/index.html"):
        assert get(served, path).status_code == 200  # in the cache now
    assert raw_status(served, target) == 400


def test_threat_44_security_headers_and_no_html_sniffing(served):
    """Pages carry HSTS, a script-free CSP, nosniff, no-referrer and no Twisted banner; a
    file without a known extension is application/octet-stream (never sniffed as HTML);
    feeds and styles get their own types."""
    page = get(served, "/index.html")
    h = page.headers
    assert h["Strict-Transport-Security"].startswith("max-age=")
    assert "default-src 'none'" in h["Content-Security-Policy"]
    assert "script-src" not in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Cache-Control"] == "no-cache"
    assert "Twisted" not in h.get("Server", "")
    (served.root / "build" / "README").write_text("<script>alert(1)</script>")
    try:
        r = get(served, "/README")
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        (served.root / "build" / "README").unlink()
    kinds = {"feed.json": "application/feed+json", "atom.xml": "application/atom+xml",
             "sitemap.xml": "application/xml", "static/style.css": "text/css; charset=utf-8"}
    for path, ctype in kinds.items():
        assert get(served, path).headers["Content-Type"] == ctype, path


def _one(build: Path, folder: str) -> str:
    return next(p for p in (build / folder).iterdir() if p.is_file()).relative_to(build).as_posix()


def test_caching_policy_by_kind_and_no_compression_of_ciphertext(served):
    """Content-addressed files are immutable and never compressed; heads and pages
    revalidate; a versioned theme file is immutable; public pages are gzipped."""
    build = served.root / "build"
    made_p = not (build / "p").exists()
    (build / "p").mkdir(exist_ok=True)  # archive pages appear only with a long history
    (build / "p" / ("ab" * 32)).write_bytes(os.urandom(4096))
    try:
        for folder in ("o", "p", "media"):
            path = _one(build, folder) if folder != "media" else next(
                p for p in (build / "media").rglob("*")
                if p.is_file()).relative_to(build).as_posix()
            r = get(served, path, headers={"Accept-Encoding": "gzip"})
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable", path
            assert "Content-Encoding" not in r.headers
        head = _one(build, "f")
        r = get(served, head, headers={"Accept-Encoding": "gzip"})
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert "Content-Encoding" not in r.headers
        assert r.content == (build / head).read_bytes()
        css = get(served, "static/style.css?v=1")
        assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        page = get(served, "index.html", headers={"Accept-Encoding": "gzip"}, stream=True)
        assert page.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(page.raw.read()) == (build / "index.html").read_bytes()
    finally:
        (build / "p" / ("ab" * 32)).unlink()
        if made_p:
            (build / "p").rmdir()


def test_conditional_range_and_head(served):
    """ETag and Last-Modified give 304s (If-None-Match wins); ranges give 206 with
    Content-Range, a suffix range and 416 past the end; a large file streams whole; HEAD has
    the length and no body; POST is 405."""
    first = get(served, "/index.html")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = get(served, "/index.html", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert get(served, "/index.html", headers={"If-Modified-Since": modified}).status_code == 304
    assert get(served, "/index.html", headers={"If-None-Match": '"other"',
                                               "If-Modified-Since": modified}).status_code == 200
    media = next(p for p in (served.root / "build" / "media").rglob("*.bin"))
    rel = media.relative_to(served.root / "build").as_posix()
    data = media.read_bytes()
    part = get(served, rel, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert get(served, rel, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert get(served, rel, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    whole = get(served, rel)
    assert whole.content == data  # a large file, streamed from disk
    head = requests.head(served.url + rel, verify=served.verify, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(data))
    assert requests.post(served.url + "index.html", verify=served.verify,
                         timeout=10).status_code == 405


def test_a_file_changed_on_disk_is_served_fresh(served):
    """A file replaced by rename (as the builder writes), rewritten in place, or under a
    folder moved away and back, is served as it is now by the next request, and a
    deleted one is a 404: the file system tells the cache (inotify, `file_watch`), or
    where it cannot, the cache checks the disk."""
    build = served.root / "build"
    (build / "fresh" / "deeper").mkdir(parents=True)
    page = build / "fresh" / "deeper" / "page.txt"
    page.write_text("one")
    try:
        assert get(served, "fresh/deeper/page.txt").text == "one"
        tmp = page.with_name("page.tmp")
        tmp.write_text("two!")
        os.replace(tmp, page)
        assert get(served, "fresh/deeper/page.txt").text == "two!"
        page.write_text("three")
        assert get(served, "fresh/deeper/page.txt").text == "three"
        os.rename(build / "fresh", build / "fresh-away")
        assert get(served, "fresh/deeper/page.txt").status_code == 404
        os.rename(build / "fresh-away", build / "fresh")
        assert get(served, "fresh/deeper/page.txt").text == "three"
        page.unlink()
        assert get(served, "fresh/deeper/page.txt").status_code == 404
    finally:
        shutil.rmtree(build / "fresh", ignore_errors=True)
        shutil.rmtree(build / "fresh-away", ignore_errors=True)


def test_tls_1_1_refused_and_modern_tls_and_h2_offered(served):
    """A TLS 1.1 client is refused (by Python's ssl and by openssl s_client); a modern
    client gets TLS 1.2 or 1.3 and HTTP/2 by ALPN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    if shutil.which("openssl"):
        s_client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{served.port}",
                                   "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                                  input="", capture_output=True, text=True, timeout=30)
        assert s_client.returncode != 0
    modern = ssl.create_default_context(cafile=served.verify)
    modern.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        with modern.wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() == "h2"  # the h2 package is a test dependency


def _need_curl_with_http2() -> None:
    """curl with HTTP/2 (Debian's has it): in CI a missing one fails, elsewhere skips."""
    need_program("curl", "curl")
    features = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    if "HTTP2" not in features:
        message = "this curl has no HTTP/2 (Debian's curl package has)"
        if IN_CI:
            pytest.fail(message + "; CI must install it (.ci/system-packages)")
        pytest.skip(message)


def test_http2_request_is_answered(served):
    """An HTTP/2 client (curl --http2, negotiated by ALPN) gets the page."""
    _need_curl_with_http2()
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", served.verify, "-o", "/dev/null",
                        "-w", "%{http_version} %{http_code}", served.url + "index.html"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "2 200", r.stderr


@pytest.mark.parametrize("path", list(SERVE_MODES))
def test_threat_45_slowloris_and_idle_connections_time_out(tmp_path, path):
    """1000 idle connections and one client trickling its request head a byte at a time are
    all closed by the timeouts, while other clients are still answered, on either request
    path (the fast path holds a head that is not yet whole; Twisted's parser, one too long)
    and either TLS transport."""
    root = _small_site(tmp_path)
    import resource
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limits[1], 4096), limits[1]))
    try:
        with o2m_serve(root, "--request-timeout", "1", "--idle-timeout", "1",
                       env=SERVE_MODES[path]) as server:
            idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30)
                    for _ in range(1000)]
            # Slowloris: a TLS client sends its request head one byte at a time, forever.
            ctx = ssl.create_default_context(cafile=server.verify)
            slow = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=30),
                                   server_hostname="127.0.0.1")
            stop = threading.Event()
            closed = threading.Event()

            def trickle() -> None:
                try:
                    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 10_000:
                        if stop.is_set():
                            return
                        slow.send(bytes([byte]))
                        time.sleep(0.2)
                except OSError:
                    closed.set()
            t = threading.Thread(target=trickle, daemon=True)
            t.start()
            # The server still answers others meanwhile.
            assert requests.get(server.url, verify=server.verify, timeout=10).status_code == 200
            deadline = time.monotonic() + 60
            for sock in idle:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    assert sock.recv(1) == b""
                except ConnectionResetError:
                    pass
                sock.close()
            assert closed.wait(60), "the slowloris connection was never closed"
            stop.set()
            slow.close()
            assert requests.get(server.url, verify=server.verify, timeout=10).status_code == 200
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)  # not for the rest of the run


def _small_site(tmp_path: Path, *extra: str) -> Path:
    root = tmp_path / "small"
    assert run_o2m("init", str(root), "--name", "Small", "--url", "https://small.example/",
                   cwd=tmp_path).returncode == 0
    assert run_o2m("build", cwd=root).returncode == 0
    return root


def test_access_log_combined_format_and_without_addresses(tmp_path):
    """--access-log writes the combined log format with quotes in headers escaped;
    --no-client-addresses writes '-' instead of the address."""
    root = _small_site(tmp_path)
    log = tmp_path / "access.log"
    with o2m_serve(root, "--access-log", str(log)) as server:
        for _ in range(2):  # (the second time, the Referer and User-Agent read before)
            requests.get(server.url + "index.html?x=1", verify=server.verify, timeout=10,
                         headers={"User-Agent": 'agent "quoted"',
                                  "Referer": "https://r.example/"})
    lines = log.read_text().splitlines()[-2:]
    for line in lines:
        assert line.startswith("127.0.0.1 - - [")
        assert '"GET /index.html?x=1 HTTP/1.1" 200 ' in line
        assert '"https://r.example/"' in line and 'agent \\"quoted\\"' in line
    log.unlink()
    with o2m_serve(root, "--access-log", str(log), "--no-client-addresses") as server:
        requests.get(server.url, verify=server.verify, timeout=10)
    line = log.read_text().splitlines()[-1]
    assert line.startswith("- - - [") and "127.0.0.1" not in line


@pytest.mark.parametrize("tls", list(TRANSPORTS))
def test_sigterm_finishes_in_flight_download_and_exits_0(tmp_path, tls):
    """SIGTERM lets a download under way finish whole, then the server exits 0 and takes no
    new connection."""
    root = _small_site(tmp_path)
    data = os.urandom(40 << 20)
    (root / "build" / "large.bin").write_bytes(data)
    server = start_o2m_serve(root, env=TRANSPORTS[tls])
    try:
        r = requests.get(server.url + "large.bin", verify=server.verify, timeout=30, stream=True)
        first = r.raw.read(1 << 20)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        rest = r.raw.read()
        assert first + rest == data
        assert server.process.wait(timeout=30) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, verify=server.verify, timeout=5)


@pytest.mark.parametrize("tls", list(TRANSPORTS))
def test_sighup_reloads_certificate_without_dropping_connections(tmp_path, tls):
    """SIGHUP makes the server read its certificate again (new connections see the new
    one); a keep-alive connection from before still works."""
    import trustme  # a test dependency (pyproject's [test]): never skipped

    root = _small_site(tmp_path)
    ca = trustme.CA()
    cert_path, key_path = root / "keys" / "server.pem", root / "keys" / "server.key"

    def install(names: list[str]) -> None:
        cert = ca.issue_cert(*names)
        cert.private_key_pem.write_to_path(str(key_path))
        cert.cert_chain_pems[0].write_to_path(str(cert_path))

    install(["127.0.0.1", "first.example"])
    with open(root / "o2m.toml", "a") as f:
        f.write('\n[serve]\ncert = "keys/server.pem"\nkey = "keys/server.key"\n')
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with o2m_serve(root, env=TRANSPORTS[tls]) as server:
        assert server.pin is None  # a CA-issued certificate: no pin
        session = requests.Session()
        assert session.get(server.url, verify=str(bundle), timeout=10).status_code == 200
        install(["127.0.0.1", "second.example"])
        server.process.send_signal(signal.SIGHUP)

        def names_seen() -> bytes:
            ctx = ssl.create_default_context(cafile=str(bundle))
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                    return repr(tls.getpeercert()["subjectAltName"]).encode()
        deadline = time.monotonic() + 30
        while b"second.example" not in names_seen():
            assert time.monotonic() < deadline, "certificate not reloaded"
            time.sleep(0.2)
        # The keep-alive connection from before still works.
        assert session.get(server.url, verify=str(bundle), timeout=10).status_code == 200


def test_plain_http_port_only_redirects_to_the_configured_site(tmp_path):
    """The plain-HTTP port answers every request with a redirect to the same path on
    the site's own address, as o2m.toml's [site] url names it, whatever Host the
    request names (security review finding 9: `Host: evil.example`, or 300 characters
    of one, were copied into Location)."""
    root = _small_site(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    with o2m_serve(root, "--http-port", str(http_port)):
        for host in (f"127.0.0.1:{http_port}", "evil.example", "a" * 300 + ".example", None):
            r = requests.get(f"http://127.0.0.1:{http_port}/tags/index.html?a=%3Cx%3E",
                             allow_redirects=False, timeout=10,
                             headers={} if host is None else {"Host": host})
            assert r.status_code == 301
            assert r.headers["Location"] == "https://small.example/tags/index.html?a=%3Cx%3E"


@pytest.mark.parametrize("tls", list(TRANSPORTS))
def test_two_workers_share_the_port(tmp_path, tls):
    """Two worker processes serve one port, and the server stops cleanly (exit 0)."""
    root = _small_site(tmp_path)
    with o2m_serve(root, "--workers", "2", env=TRANSPORTS[tls]) as server:
        for _ in range(20):
            assert requests.get(server.url, verify=server.verify, timeout=10).status_code == 200
        assert server.stop() == 0


def test_port_in_use_is_one_clear_line(tmp_path):
    """A port already in use is one error line naming it, exit 1, no traceback."""
    root = _small_site(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_o2m("serve", "--port", str(port), cwd=root, timeout=60)
    assert r.returncode == 1
    assert f"o2m: error: 127.0.0.1:{port} is already in use" in r.stderr
    assert "Traceback" not in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_listens_on_the_port_of_site_url(tmp_path):
    """Newcomer trial: after `o2m init --url https://127.0.0.1:PORT/`, `o2m serve` with
    no --port and no [serve] port listens on PORT, where the card sends friends (it
    listened on 8443, and friends got "unreachable")."""
    port = _free_port()
    root = tmp_path / "local"
    assert run_o2m("init", str(root), "--name", "L", "--url", f"https://127.0.0.1:{port}/",
                   cwd=tmp_path).returncode == 0
    assert run_o2m("build", cwd=root).returncode == 0
    server = start_o2m_serve(root, port=None)
    try:
        assert f"https://127.0.0.1:{port}/" == server.url
        page = requests.get(server.url, verify=server.verify, timeout=10)
        assert 200 == page.status_code and "L" in page.text
    finally:
        assert server.stop() == 0


def test_serve_port_is_the_serve_tables_then_site_urls():
    """Without --port: [serve] port, then the port site.url names; with neither (or 443,
    which only root may take), 8443."""
    from o2m_pub.config import parse_config, serve_port

    def port(url: str, table: str = "") -> int:
        return serve_port(parse_config(f'[site]\nname = "x"\nurl = "{url}"\n{table}'.encode()))

    assert 45361 == port("https://127.0.0.1:45361/")
    assert 9000 == port("https://127.0.0.1:45361/", "[serve]\nport = 9000\n")
    assert 8443 == port("https://ada.example/")
    assert 8443 == port("https://ada.example:443/")


def test_unreadable_or_wrong_key_is_one_clear_line(tmp_path):
    """A configured certificate that is missing, or a file that is not a PEM certificate, is
    one error line, exit 1, no traceback."""
    root = _small_site(tmp_path)
    with open(root / "o2m.toml", "a") as f:
        f.write('\n[serve]\ncert = "keys/missing.pem"\nkey = "keys/missing.key"\n')
    r = run_o2m("serve", "--port", "0", cwd=root, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "keys/missing.pem: cannot read the certificate" in r.stderr
    (root / "keys" / "missing.pem").write_text("not a certificate")
    (root / "keys" / "missing.key").write_text("not a key")
    r = run_o2m("serve", "--port", "0", cwd=root, timeout=60)
    assert r.returncode == 1 and "not a PEM certificate" in r.stderr


def test_nothing_built_is_one_clear_line(tmp_path):
    """Serving a site never built says build/ has nothing to serve and points to `o2m
    build`."""
    root = tmp_path / "fresh"
    assert run_o2m("init", str(root), "--name", "F", "--url", "https://f.example/",
                   cwd=tmp_path).returncode == 0
    r = run_o2m("serve", "--port", "0", cwd=root, timeout=60)
    assert r.returncode == 1 and "build/: nothing to serve" in r.stderr
    assert "o2m build" in r.stderr


def test_serve_watch_rebuilds_and_reloads_open_pages(tmp_path):
    """serve --watch injects the live-reload script (allowed by its CSP), rebuilds on a new
    post, tells open pages to reload over the event stream, and serves the new post."""
    root = _small_site(tmp_path)
    with o2m_serve(root, "--watch") as server:
        page = requests.get(server.url + "index.html", verify=server.verify, timeout=10)
        assert '<script src="/_o2m/live.js" defer></script>' in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        script = requests.get(server.url + "_o2m/live.js", verify=server.verify, timeout=10)
        assert "EventSource" in script.text
        events = requests.get(server.url + "_o2m/live", verify=server.verify, stream=True,
                              timeout=60)
        assert events.headers["Content-Type"] == "text/event-stream"
        lines = events.iter_lines()
        assert next(lines) == b"retry: 1000"
        (root / "content" / "fresh.md").write_text(
            "---\ntitle: Fresh off the editor\ndate: 2026-06-01\naudience: public\n---\nNew.\n")
        for line in lines:  # blocks until the watcher's build lands
            if line == b"data: reload":
                break
        deadline = time.monotonic() + 60
        while "Fresh off the editor" not in requests.get(
                server.url, verify=server.verify, timeout=10).text:
            assert time.monotonic() < deadline, "the new post was never served"
            time.sleep(0.2)
        events.close()
        assert server.stop() == 0


@pytest.mark.parametrize("tls", list(TRANSPORTS))
def test_slow_readers_get_the_whole_answer(tmp_path, tls):
    """A connection is idle only once the answer is delivered, not handed to the
    kernel: a client reading 4 MiB at about 1 MB/s is not cut off by 1 s timeouts."""
    root = _small_site(tmp_path)
    data = os.urandom(4 << 20)
    (root / "build" / "slow.bin").write_bytes(data)
    with o2m_serve(root, "--request-timeout", "1", "--idle-timeout", "1",
                   env=TRANSPORTS[tls]) as server:
        r = requests.get(server.url + "slow.bin", verify=server.verify, stream=True, timeout=30)
        got = bytearray()
        for chunk in r.iter_content(64 * 1024):
            got += chunk
            time.sleep(0.06)
        assert bytes(got) == data


@pytest.mark.parametrize("tls", list(TRANSPORTS))
def test_http2_connections_are_counted_and_not_cut_by_the_request_deadline(tmp_path, tls):
    """More HTTP/2 connections than the cap, one after another, are all served (each
    is let go when it closes), and a slow HTTP/2 download outlives the 1 s request
    deadline."""
    _need_curl_with_http2()
    root = _small_site(tmp_path)
    data = os.urandom(3 << 20)
    (root / "build" / "big.bin").write_bytes(data)
    with o2m_serve(root, "--max-connections", "5", "--request-timeout", "1",
                   "--idle-timeout", "1", env=TRANSPORTS[tls]) as server:
        def h2(path: str, *extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["curl", "-sS", "--http2", "--cacert", server.verify,
                                   "-o", str(tmp_path / "out"), "-w", "%{http_version} %{http_code}",
                                   *extra, server.url + path],
                                  capture_output=True, text=True, timeout=60)
        for _ in range(12):  # more connections than the cap, one after another
            assert h2("index.html").stdout == "2 200"
        slow = h2("big.bin", "--limit-rate", "1M")  # about 3 s, over a 1 s request deadline
        assert slow.stdout == "2 200", slow.stderr
        assert (tmp_path / "out").read_bytes() == data


def test_file_cache_has_one_entry_per_file_however_it_is_spelled(tmp_path):
    """%-spellings of one path share an entry, and entries are charged a fixed cost,
    so a flood of distinct paths cannot grow the cache without bound."""
    from o2m_pub.host.file_cache import FileCache

    build = tmp_path / "build"
    (build / "tags").mkdir(parents=True)
    (build / "tags" / "index.html").write_text("<p>tags</p>" * 100)
    (build / "big.bin").write_bytes(os.urandom(2 << 20))
    cache = FileCache(build, live_reload=False, max_bytes=64 * FileCache.ENTRY_COST)
    spellings = [b"/tags/", b"/tags/index.html", b"/%74ags/", b"/t%61gs/index.html",
                 b"/tags/%69ndex.html", b"/%74%61%67%73/"]
    entries = {id(cache.lookup(raw, False)) for raw in spellings}
    assert len(entries) == 1 and len(cache._entries) == 1
    for i in range(500):  # many large (streamed, uncached) files under odd spellings
        assert cache.lookup(b"/big.bin" if i % 2 else b"/b%69g.bin", False) is not None
        cache.lookup(b"/missing-%d" % i, False)
    assert cache._bytes <= cache.max_bytes
