#!/usr/bin/env python3
"""`o2m fetch` against a plain download of the same files (issue 6).

    python bench/fetch_bench.py [--friends 100] [--posts 20] [--repeat 3]

Makes `--friends` authors with real keys and cards of protocol 1.1 (seq, next, feed_pk),
each publishing its card (.well-known/o2m-card.json), a feed for the reader with
`--posts` private posts (PROTOCOL.md §3: one head, one object per post) and an empty
public feed.json with its signature (feed.json.sig, §1.4), all served by nginx over TLS
(a trustme CA, named to o2m in $O2M_CA_BUNDLE) at https://localhost:PORT/uNN/. Then it
measures, best of --repeat:

  fetch-new        `o2m fetch` in a fresh process (start-up included) with every post new:
                   verify, decrypt, store (the feed secrets already cached, as after
                   the first fetch of each friend; the passphrase unlock is timed apart)
  plain-download   the same files (head, objects, feed.json of every friend) with one
                   pooled requests.Session, the same 8 threads, bodies read whole, in a
                   fresh process (start-up included, as for o2m)
  plain-urllib3    the same with one urllib3.PoolManager, the HTTP client o2m fetch
                   uses itself (for reference: the target is against plain-download)
  fetch-unchanged  `o2m fetch` again with nothing new: one 304 per file asked for (each
                   friend's card, head and feed.json.sig: three per friend)
  first-with-unlock  fetch-new with nothing cached, the Argon2id unlock included
  timeline-100k    the first timeline page of a store of 100,000 posts

Targets: fetch-new <= 1.5 x plain-download; fetch-unchanged < 1 s; timeline-100k < 100 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from serve_bench import free_port, nginx_conf, wait_port  # noqa: E402

PASSPHRASE = "bench passphrase"


def make_authors(www: Path, reader_sign_pk: bytes, reader_box_pk: bytes, port: int,
                 friends: int, posts: int) -> list:
    """Authors with cards, each with a feed of `posts` posts for the reader."""
    import nacl.public
    import nacl.signing

    from o2m_pub.protocol import feeds
    from o2m_pub.protocol.canonical import b64u_encode, canonical_json
    from o2m_pub.protocol.cards import key_commitment, make_card
    from o2m_pub.protocol.feed_signature import sign_feed

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expires = (now + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cards = []
    for n in range(friends):
        sign, box = nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate()
        feed_key, next_key = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
        url = f"https://localhost:{port}/u{n:03d}/"
        card = make_card(sign, name=f"Author {n}", url=url, box_pk=bytes(box.public_key),
                         tls_pin=None, created=now - dt.timedelta(days=1), seq=1,
                         next_digest=key_commitment(bytes(next_key.verify_key)),
                         feed_pk=bytes(feed_key.verify_key))
        cards.append(card)
        site = www / f"u{n:03d}"
        (site / "o").mkdir(parents=True)
        (site / "f").mkdir()
        (site / ".well-known").mkdir()
        (site / ".well-known/o2m-card.json").write_bytes(card.raw)
        secrets = feeds.pairwise_secrets(bytes(box), reader_box_pk, bytes(sign.verify_key),
                                         reader_sign_pk)
        items = []
        for i in range(posts):
            doc = {"v": 1, "type": "o2m-post", "date": stamp, "title": f"Post {i} of {n}",
                   "markdown": f"Post {i} by author {n}. " + "Some words of text. " * 40,
                   "tags": ["bench"]}
            data, ref = feeds.seal_object(canonical_json(doc), key=os.urandom(32),
                                          nonce=os.urandom(24))
            (site / ref.path).write_bytes(data)
            item_id = hashlib.sha256(f"{n}/{i}".encode()).digest()[:16]
            items.append(feeds.Item(b64u_encode(item_id), stamp, ref))
        head = feeds.seal_head(signing_key=sign, reader_sign_pk=reader_sign_pk, secrets=secrets,
                               seq=1, updated=stamp, expires=expires, items=items, prev=None,
                               nonce=os.urandom(24))
        (site / secrets.head_path).write_bytes(head)
        public = json.dumps({"version": "https://jsonfeed.org/version/1.1",
                             "title": f"Author {n}", "home_page_url": url,
                             "items": []}).encode()
        (site / "feed.json").write_bytes(public)
        (site / "feed.json.sig").write_bytes(sign_feed(
            feed_key, author_sign_pk=bytes(sign.verify_key), feed=public, seq=1, updated=now))
    return cards


def o2m(root: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "o2m_pub", "-C", str(root), *args], env=env,
                       capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"o2m {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return elapsed


PLAIN = """
import sys
from concurrent.futures import ThreadPoolExecutor
import requests
urls = open(sys.argv[1]).read().split()
bundle, workers = sys.argv[2], int(sys.argv[3])
session = requests.Session()
session.trust_env = False
session.mount("https://", requests.adapters.HTTPAdapter(pool_connections=10,
                                                        pool_maxsize=workers))
def one(url):
    with session.get(url, verify=bundle, timeout=30, stream=True) as r:
        r.raise_for_status()
        return len(r.content)
with ThreadPoolExecutor(workers) as pool:
    assert sum(pool.map(one, urls)) > 0
"""

PLAIN_URLLIB3 = """
import sys
from concurrent.futures import ThreadPoolExecutor
import urllib3
urls = open(sys.argv[1]).read().split()
bundle, workers = sys.argv[2], int(sys.argv[3])
manager = urllib3.PoolManager(num_pools=10, maxsize=workers, ca_certs=bundle,
                              cert_reqs="CERT_REQUIRED", retries=False)
def one(url):
    r = manager.urlopen("GET", url, timeout=30, preload_content=False, redirect=False)
    assert r.status == 200, r.status
    n = len(r.read())
    r.release_conn()
    return n
with ThreadPoolExecutor(workers) as pool:
    assert sum(pool.map(one, urls)) > 0
"""


def plain_download(urls: list[str], bundle: str, workers: int, script: str = PLAIN) -> float:
    """The same files with one pooled requests.Session (or `script`) and `workers`
    threads, in a fresh process like `o2m fetch` (start-up included on both sides)."""
    listing = Path(bundle).with_name("urls.txt")
    listing.write_text("\n".join(urls))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, str(listing), bundle, str(workers)],
                   check=True)
    return time.perf_counter() - start


def reset_posts(root: Path) -> None:
    """Forget the stored posts and heads, keep the cached feed secrets."""
    db = sqlite3.connect(root / ".o2m/reader.db")
    db.execute("DELETE FROM posts")
    db.execute("DELETE FROM post_tags")
    db.execute("UPDATE friend_state SET seq = NULL, head_digest = NULL, head_signed = NULL, "
               "etag = NULL, last_modified = NULL, pub_etag = NULL, pub_last_modified = NULL, "
               "pages = '[]', sig_etag = NULL, sig_last_modified = NULL, pub_seq = NULL, "
               "pub_sha256 = NULL")
    db.commit()
    db.close()
    shutil.rmtree(root / ".o2m/objects", ignore_errors=True)


def timeline_first_page(count: int = 100_000) -> float:
    """Seconds for the first timeline page (20 posts) of a store of `count` posts from
    100 friends, best of 5, the store opened afresh each time."""
    from o2m_pub.reader.model import FriendUpdate, PostRow
    from o2m_pub.reader.store import ReaderStore
    tmp = Path(tempfile.mkdtemp(prefix="o2m-timeline-bench-"))
    with ReaderStore.open(tmp) as store:
        for f in range(100):
            rows = [PostRow(id=f"{f}-{i}", audience="private", title=f"Post {i}",
                            markdown="Some words. " * 50, tags=("bench",),
                            date=f"20{10 + i % 16}-{i % 12 + 1:02d}-{i % 28 + 1:02d}T10:00:00Z")
                    for i in range(count // 100)]
            store.apply_update(FriendUpdate(f"f{f:03d}", f"key{f}", upserts=rows))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        with ReaderStore.open(tmp) as store:
            assert len(store.timeline(limit=20)) == 20
        times.append(time.perf_counter() - start)
    shutil.rmtree(tmp, ignore_errors=True)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--friends", type=int, default=100)
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8, help="threads, for both sides")
    args = ap.parse_args()
    if not shutil.which("nginx"):
        sys.exit("nginx is not installed (Debian package nginx)")
    import trustme

    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import own_card

    tmp = Path(tempfile.mkdtemp(prefix="o2m-fetch-bench-"))
    tmp.chmod(0o755)
    env = {**os.environ, "O2M_PASSPHRASE": PASSPHRASE}
    env.pop("O2M_KDF", None)  # the production Argon2id limits
    root = tmp / "reader"
    subprocess.run([sys.executable, "-m", "o2m_pub", "init", str(root), "--name", "Reader",
                    "--url", "https://reader.example/"], env=env, check=True,
                   capture_output=True)
    me = own_card(root)
    port = free_port()
    www = tmp / "www"
    cards = make_authors(www, me.sign_pk, me.box_pk, port, args.friends, args.posts)
    store = FriendStore(root, own_sign_pk=me.sign_pk)
    now = dt.datetime.now(dt.timezone.utc)
    for n, card in enumerate(cards):
        store.add(f"a{n:03d}", card, now=now)
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    bundle = str(tmp / "ca.pem")
    ca.cert_pem.write_to_path(bundle)
    env["O2M_CA_BUNDLE"] = bundle
    (tmp / "nginx.conf").write_text(nginx_conf(tmp, port, tmp / "cert.pem", tmp / "key.pem",
                                               www, workers=2, access_log=False))
    nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                              "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(2)  # the files' mtimes must be older than a second (strong validators)
        urls = [c.url + p.relative_to(www / c.url.rstrip("/").rsplit("/", 1)[1]).as_posix()
                for c in cards for p in sorted((www / c.url.rstrip("/").rsplit("/", 1)[1])
                                               .rglob("*")) if p.is_file()]
        first = o2m(root, env, "fetch", "-q")  # derives and caches the feed secrets
        results: dict[str, list[float]] = {"fetch-new": [], "plain-download": [],
                                           "plain-urllib3": [], "fetch-unchanged": []}
        for _ in range(args.repeat):
            reset_posts(root)
            fetch = ("fetch", "-q", "--workers", str(args.workers))
            results["fetch-new"].append(o2m(root, env, *fetch))
            results["fetch-unchanged"].append(o2m(root, env, *fetch))
            results["plain-download"].append(plain_download(urls, bundle, args.workers))
            results["plain-urllib3"].append(plain_download(urls, bundle, args.workers,
                                                           PLAIN_URLLIB3))
        posts = sqlite3.connect(root / ".o2m/reader.db").execute(
            "SELECT count(*) FROM posts").fetchone()[0]
        assert posts == args.friends * args.posts, posts
    finally:
        nginx.terminate()
        nginx.wait()
    best = {k: min(v) for k, v in results.items()}
    print(f"# {dt.date.today()}, {os.cpu_count()} CPUs, {args.friends} friends x "
          f"{args.posts} posts, {len(urls)} files, nginx over TLS, best of {args.repeat}")
    print(f"{'fetch-new':<18} {best['fetch-new']:7.2f} s  "
          f"({best['fetch-new'] / best['plain-download']:.2f} x plain-download)")
    print(f"{'plain-download':<18} {best['plain-download']:7.2f} s  "
          f"({len(urls) / best['plain-download']:,.0f} files/s)")
    print(f"{'plain-urllib3':<18} {best['plain-urllib3']:7.2f} s  "
          f"({best['fetch-new'] / best['plain-urllib3']:.2f} x for fetch-new)")
    print(f"{'fetch-unchanged':<18} {best['fetch-unchanged']:7.2f} s")
    print(f"{'first-with-unlock':<18} {first:7.2f} s")
    print(f"{'timeline-100k':<18} {timeline_first_page() * 1000:7.1f} ms  (first page of "
          "100,000 stored posts, store opened included)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
