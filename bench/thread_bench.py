#!/usr/bin/env python3
"""Conversations (issue 13): a thread of many replies from many friends.

    python bench/thread_bench.py [--replies 500] [--repliers 50] [--repeat 3]

Ada (`o2m init`, 50 friends with real keys, plus Cyd) has one post for friends. Her
repliers' replies are real reply objects and signed statements (PROTOCOL.md §4.2), each
published under the replier's own site, https://localhost:PORT/fNN/o/HASH; Ada's store
holds them as her fetch records them, and her build links them in the item of her post
(§4.4). All sites are served by one stdlib HTTPS server (a trustme CA). It measures:

  op-build-one-reply  Ada's build after one more reply (export of links + `build_site`),
                      in-process: seconds, and what it wrote (files, bytes)
  reader-fetch        Cyd's first fetch of Ada (fresh store): head, post, and every
                      linked reply fetched from its replier's site and checked (§4.5)
  plain-download      the same files (Ada's head and post, every linked reply object)
                      with one urllib3.PoolManager, one after the other as o2m does
  show-thread         the thread of Ada's post from Cyd's store (thread_store.thread and
                      the reactions), in-process; and `o2m show` in a fresh process

Targets: reader-fetch <= 1.5 x plain-download; show-thread < 100 ms from the store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PASSPHRASE = "bench passphrase"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path):  # noqa: ANN201 - (server, port, CA bundle path)
    import trustme
    ca = trustme.CA()
    bundle = folder.parent / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(folder)))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1], str(bundle)


def o2m(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "o2m_pub", *args], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "O2M_PASSPHRASE": PASSPHRASE,
                                                   "O2M_KDF": "interactive"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=500)
    parser.add_argument("--repliers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import nacl.public
    import nacl.signing

    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import load_identity, own_card
    from o2m_pub.protocol import feeds
    from o2m_pub.protocol.canonical import b64u_encode, canonical_json
    from o2m_pub.protocol.cards import make_card
    from o2m_pub.protocol.conversation import PostRef, sign_reply
    from o2m_pub.reader import thread_store
    from o2m_pub.reader.fetch_run import export_links
    from o2m_pub.reader.http_fetch import Limits, run_fetch
    from o2m_pub.reader.model import ThreadRow
    from o2m_pub.reader.store import ReaderStore
    from o2m_pub.site.build import build_site

    base = Path(tempfile.mkdtemp(prefix="o2m-thread-bench-"))
    www = base / "www"
    www.mkdir()
    server, port, bundle = serve(www)
    os.environ["O2M_CA_BUNDLE"] = bundle
    site = f"https://localhost:{port}/"
    ada, cyd = www / "ada", base / "cyd"
    o2m("init", str(ada), "--name", "Ada", "--url", site + "ada/build/", "--own-cert")
    o2m("init", str(cyd), "--name", "Cyd", "--url", site + "cyd/", "--own-cert")
    for p in (ada / "content").rglob("*.md"):
        p.unlink()
    (ada / "content" / "hello.md").write_text(
        "---\ntitle: Hello\ndate: 2026-11-20\naudience: friends\n---\nWhat do you think?\n")
    now = dt.datetime.now(dt.timezone.utc)
    store = FriendStore(ada)
    keys = []
    for i in range(args.repliers):
        sign, box = nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate()
        card = make_card(sign, name=f"Friend {i}", url=f"{site}f{i:02d}/",
                         box_pk=bytes(box.public_key), tls_pin=None, created=now)
        store.add(f"f{i:02d}", card, now=now)
        keys.append(sign)
    store.add("cyd", own_card(cyd), now=now)
    FriendStore(cyd).add("ada", own_card(ada), now=now)
    identity = load_identity(ada, PASSPHRASE.encode())
    unlock = lambda: identity  # noqa: E731
    build_site(ada, unlock=unlock)
    from o2m_pub.friends.private_feeds import item_id
    post = PostRef(b64u_encode(identity.sign_pk),
                   item_id(identity.sign_pk, "content/hello.md"))

    def reply(n: int) -> ThreadRow:
        i = n % args.repliers
        doc = {"v": 1, "type": "o2m-post", "date": "2026-11-21T10:00:00Z",
               "markdown": f"Reply {n}: " + "words " * 40, "reply_to": post.text}
        data, ref = feeds.seal_object(canonical_json(doc), key=os.urandom(32),
                                      nonce=os.urandom(24))
        folder = www / f"f{i:02d}" / "o"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ref.hash).write_bytes(data)
        rid = b64u_encode(n.to_bytes(16, "big"))
        date = (dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc)
                + dt.timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        statement = sign_reply(signing_key=keys[i], post_id=rid, date=date,
                               object_hash=ref.hash, object_size=ref.size, to=post,
                               thread=post, url=f"{site}f{i:02d}/")
        return ThreadRow(b64u_encode(bytes(keys[i].verify_key)), rid, "reply", post.text,
                         date, thread_ref=post.text, statement=b64u_encode(statement),
                         key=b64u_encode(ref.key), url=f"{site}f{i:02d}/",
                         object_hash=ref.hash, via_post=None)

    def record(rows: list[ThreadRow]) -> None:
        with ReaderStore.open(ada) as reader:
            reader.own_key = post.author
            for row in rows:
                thread_store._insert(reader.db, f"f{int(row.url.rsplit('/', 2)[-2][1:]):02d}",
                                     [row])
            export_links(ada, reader, FriendStore(ada).list())

    record([reply(n) for n in range(args.replies)])
    build_site(ada, unlock=unlock)
    links = len(next(iter(__import__("json").loads(
        (ada / ".o2m" / "conversations.json").read_text())["posts"].values()))["replies"])
    print(f"thread: {args.replies} replies from {args.repliers} friends; the OP's item "
          f"links the newest {links} (its 256 KiB cap)")

    # op-build-one-reply
    times, written = [], []
    for k in range(args.repeat):
        row = reply(args.replies + k)
        t0 = time.perf_counter()
        record([row])
        report = build_site(ada, unlock=unlock)
        times.append(time.perf_counter() - t0)
        paths = report.changed_paths
        size = sum((ada / "build" / p).stat().st_size for p in paths
                   if (ada / "build" / p).is_file())
        written.append((len(paths), size, report.heads))
    files, size, heads = written[-1]
    print(f"op-build-one-reply: median {statistics.median(times) * 1000:.0f} ms "
          f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)}); wrote {files} files, "
          f"{size:,} bytes ({heads} heads signed, the rest dummies and pages)")

    # reader-fetch, plain-download
    fetch_times, plain_times = [], []
    for _ in range(args.repeat):
        for leftover in (cyd / ".o2m").glob("reader.db*"):
            leftover.unlink()
        t0 = time.perf_counter()
        out = run_fetch(cyd, (), unlock=lambda: load_identity(cyd, PASSPHRASE.encode()),
                        now=dt.datetime.now(dt.timezone.utc),
                        limits=Limits(deadline=600), ca_bundle=bundle)
        fetch_times.append(time.perf_counter() - t0)
        assert out[0].ok, out[0]
        paths = [p for p in (ada / "build" / "f").iterdir()] + \
            list((ada / "build" / "o").iterdir())
        import urllib3
        pool = urllib3.PoolManager(ca_certs=bundle)
        with ReaderStore.open(cyd) as reader:
            urls = [f"{r[0]}o/{r[1]}" for r in reader.db.execute(
                "SELECT url, object_hash FROM thread_items WHERE kind = 'reply'")]
        t0 = time.perf_counter()
        for p in paths:
            pool.request("GET", site + "ada/build/" + str(p.relative_to(ada / "build"))).data
        for url in urls:
            pool.request("GET", url).data
        plain_times.append(time.perf_counter() - t0)
    with ReaderStore.open(cyd) as reader:
        ok = reader.db.execute("SELECT count(*) FROM thread_items WHERE status = 'ok' "
                               "AND kind = 'reply'").fetchone()[0]
    print(f"reader-fetch: median {statistics.median(fetch_times):.2f} s ({ok} replies "
          f"checked and stored; unlock with the interactive KDF included)")
    print(f"plain-download: median {statistics.median(plain_times):.2f} s "
          f"({len(urls)} reply objects and Ada's {len(paths)} feed files)")
    print(f"ratio: {statistics.median(fetch_times) / statistics.median(plain_times):.2f}x")

    # show-thread
    with ReaderStore.open(cyd) as reader:
        show = []
        for _ in range(max(5, args.repeat)):
            t0 = time.perf_counter()
            replies, _ = thread_store.thread(reader.db, post.text)
            thread_store.reactions(reader.db, [post.text, *(r.ref for r in replies)])
            show.append(time.perf_counter() - t0)
        (short,) = [p.short_id for p in reader.timeline()]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "o2m_pub", "-C", str(cyd), "show", short],
                   check=True, stdout=subprocess.DEVNULL)
    cli = time.perf_counter() - t0
    print(f"show-thread: median {statistics.median(show) * 1000:.1f} ms from the store "
          f"({len(replies)} replies); `o2m show` process {cli * 1000:.0f} ms")
    server.shutdown()


if __name__ == "__main__":
    main()
