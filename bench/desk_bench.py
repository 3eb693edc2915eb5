#!/usr/bin/env python3
"""The desk's server time with a big store (issue 14).

    python bench/desk_bench.py [--posts 100000] [--friends 200] [--repeat 50] [--keep DIR]

Makes a site with keys and `--friends` friends (real signed cards in keys/friends/, one
group of 20), stores `--posts` of their posts in the reader's store (a third with a
title, some public, words drawn from a vocabulary of 2,000 so that searches match many
posts, the full-text index kept by its triggers), signs in once, then times
`DeskApp.handle` (routing, the session check, SQLite, the friends directory, Jinja2:
all the server does for a page, less the socket) for each measure, --repeat times, and
prints the median and the 95th percentile:

  home          GET /                      the first page of the timeline
  older         GET /?before=...           a page 50 pages deep (keyset paging)
  friend        GET /?friend=NAME          one friend's posts
  group         GET /?group=walkers        a group of 20 friends
  search-rare   GET /search?q=WORD         a word in about 0.1 % of the posts
  search-common GET /search?q=WORD         a word in about 10 % of the posts
  search-phrase GET /search?q="A B"        a two-word phrase
  search-all    GET /search?q=WORD         a word in nearly every post (the worst case:
                                           every match is sorted by date)

Targets: home < 100 ms, search < 200 ms (server time). The first request after start
(cold caches: the friends' cards read and verified, templates compiled) is reported
apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("O2M_PASSPHRASE", "bench passphrase")
os.environ.setdefault("O2M_KDF", "interactive")

from nacl.public import PrivateKey  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402

from o2m_pub.protocol.canonical import b64u_encode, utc_text  # noqa: E402
from o2m_pub.protocol.cards import make_card  # noqa: E402


def make_world(root: Path, posts: int, friends: int) -> None:
    from click.testing import CliRunner

    from o2m_pub.cli import main
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.reader.model import FriendUpdate, PostRow
    from o2m_pub.reader.store import ReaderStore

    result = CliRunner().invoke(main, ["init", str(root), "--name", "Bench", "--url",
                                       "https://bench.example/"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    store = FriendStore(root)
    cards = []
    for i in range(friends):
        card = make_card(SigningKey(i.to_bytes(2, "big") * 16), name=f"Friend {i}",
                         url=f"https://f{i}.example/",
                         box_pk=bytes(PrivateKey((i + 10_000).to_bytes(2, "big") * 16)
                                      .public_key), tls_pin=None,
                         created=now - dt.timedelta(days=1))
        store.add(f"f{i}", card, now=now)
        cards.append(card)
    store.group_add("walkers", [f"f{i}" for i in range(0, friends, friends // 20 or 1)][:20])
    rng = random.Random(14)
    vocabulary = [f"w{n}" for n in range(2000)]
    weights = [1 / (n + 1) for n in range(2000)]  # Zipf-like: a few words are everywhere
    per_friend = posts // friends
    with ReaderStore.open(root) as reader:
        for i, card in enumerate(cards):
            rows = []
            for j in range(per_friend):
                words = rng.choices(vocabulary, weights, k=rng.randint(20, 120))
                when = now - dt.timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60))
                public = j % 7 == 0
                rows.append(PostRow(
                    id=f"p{j}", audience="public" if public else "private",
                    date=utc_text(when), title=" ".join(words[:5]).title() if j % 3 == 0
                    else None, markdown=None if public else " ".join(words),
                    html=f"<p>{' '.join(words)}</p>" if public else None,
                    summary=" ".join(words[:30]) if public else None,
                    tags=(words[0],)))
            reader.apply_update(FriendUpdate(f"f{i}", b64u_encode(card.sign_pk), upserts=rows))


def word_with_share(root: Path, share: float) -> str:
    """A word found in about `share` of the posts."""
    from o2m_pub.reader.store import ReaderStore
    with ReaderStore.open(root) as reader:
        total = reader.db.execute("SELECT count(*) FROM posts").fetchone()[0]
        best, gap = "w0", 2.0
        for n in (0, 1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 120, 200, 300, 500, 800, 1200, 1900):
            word = f"w{n}"
            found = reader.db.execute("SELECT count(*) FROM post_search WHERE post_search "
                                      "MATCH ?", (f'"{word}"',)).fetchone()[0] / total
            if abs(found - share) < gap:
                best, gap = word, abs(found - share)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--friends", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="make (or reuse) the site here")
    args = parser.parse_args()

    from support.desk import Client, make_app

    base = args.keep or Path(tempfile.mkdtemp(prefix="o2m-desk-bench-"))
    root = base / "site"
    if not (root / ".o2m" / "reader.db").exists():
        started = time.perf_counter()
        make_world(root, args.posts, args.friends)
        print(f"made {args.posts:,} posts of {args.friends} friends in "
              f"{time.perf_counter() - started:.0f} s at {root}")
    rare, common = word_with_share(root, 0.001), word_with_share(root, 0.10)
    app = make_app(root)
    client = Client(app)
    assert client.sign_in(os.environ["O2M_PASSPHRASE"]).status == 303
    started = time.perf_counter()
    assert client.get("/").status == 200
    print(f"first request (cold): {1000 * (time.perf_counter() - started):.1f} ms")
    deep = None
    cursor = ""
    for _ in range(50):
        page = client.get("/" + cursor).body.decode()
        import re
        m = re.search(r'before=([^"&]+)" id="older"', page)
        if m is None:
            break
        cursor = "?before=" + m.group(1).replace("%7C", "|")
        deep = cursor
    with __import__("o2m_pub.reader.store", fromlist=["ReaderStore"]).ReaderStore.open(root) as r:
        phrase = " ".join(r.db.execute("SELECT markdown FROM posts WHERE markdown IS NOT NULL "
                                       "LIMIT 1").fetchone()[0].split()[3:5])
    measures = [("home", "/"), ("older", "/" + (deep or "")), ("friend", "/?friend=f7"),
                ("group", "/?group=walkers"), ("search-rare", f"/search?q={rare}"),
                ("search-common", f"/search?q={common}"),
                ("search-phrase", f'/search?q="{phrase}"'), ("search-all", "/search?q=w0")]
    print(f"{'measure':<14} {'median':>9} {'p95':>9}   ({args.repeat} runs; rare={rare}, "
          f"common={common})")
    for name, target in measures:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(target)
            times.append(1000 * (time.perf_counter() - started))
            assert response.status == 200, (target, response.status)
        times.sort()
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        print(f"{name:<14} {statistics.median(times):>7.1f} ms {p95:>7.1f} ms")


if __name__ == "__main__":
    main()
