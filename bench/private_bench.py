#!/usr/bin/env python3
"""Private-feed benchmark (issue 4): what per-friend encrypted feeds cost the build.

    python bench/private_bench.py [--posts 10000] [--friends 100] [--repeat 1]
    python bench/private_bench.py --posts 200 --friends 10000   # THREATS.md 55 at scale

On the synthetic site of bench/gen_site.py (generated if missing), it measures, with
the real `o2m` CLI in a fresh process each time:

  all-public   the posts as generated (all public): the public-only build
  half-private every second post `audience: friends`, 100 friends, cold build (objects,
               100 heads, archive pages, Argon2id unlock included)
  no-friends   the same half-private posts with no friends (no feeds at all)
  add-one      one new post for ONE friend on the half-private site: the time (and the
               build's own phases, from `o2m build --timings`), and how many objects and
               heads were written. Every head is rewritten and dummies pad their count to
               a power of two (THREATS.md 55): 1 object and every file in f/ (128 for 100
               friends; 16,384 for 10,000, of which 6,384 dummies).

Keys are sealed with the production default (Argon2id MODERATE), so the unlock that a
feed-signing build needs is part of the time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from build_bench import run_measured  # noqa: E402

PASSPHRASE = "bench passphrase"


def make_friends(root: Path, count: int) -> None:
    """`count` friends with real cards, added through the friend store (above 1,000
    friends, written as the store writes them: `add` reads every friend to check the new
    one, which makes 10,000 adds take hours, and these cards are all distinct)."""
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey

    from o2m_pub.friends.friend_store import Friend, FriendStore
    from o2m_pub.protocol.canonical import utc_text
    from o2m_pub.protocol.cards import make_card

    now = dt.datetime.now(dt.timezone.utc)
    store = FriendStore(root)
    for i in range(count):
        card = make_card(SigningKey.generate(), name=f"Friend {i}", url=f"https://f{i}.example/",
                         box_pk=bytes(PrivateKey.generate().public_key), tls_pin=None,
                         created=now)
        if count <= 1000:
            store.add(f"f{i:05d}", card, now=now)
        else:
            store._write(Friend(name=f"f{i:05d}", card=card, added=utc_text(now)))


def make_half_private(root: Path) -> int:
    count = 0
    for i, path in enumerate(sorted((root / "content").rglob("*.md"))):
        if i % 2:
            text = path.read_text()
            path.write_text(text.replace("audience: public", "audience: friends", 1))
            count += 1
    return count


def o2m_build_cmd() -> list[str]:
    script = Path(sys.executable).with_name("o2m")
    return [str(script), "build"] if script.exists() else [sys.executable, "-m", "o2m_pub", "build"]


def timed_build(root: Path, env: dict, log: Path) -> dict:
    for d in ("build", ".o2m"):
        shutil.rmtree(root / d, ignore_errors=True)
    cmd = o2m_build_cmd()
    result = run_measured(cmd, root, log, 0.02, 3600, env=env)
    if result["rc"] != 0:
        sys.exit(f"build failed in {root}: see {log}")
    return result


def _phase(line: str) -> tuple[str, float]:
    """One line of `o2m build --timings`: "  feeds    123.4 ms" -> ("feeds", 123.4)."""
    name, ms = line.strip()[:-len(" ms")].rsplit(None, 1)
    return name.strip(), float(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--friends", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work", type=Path, default=BENCH / "out")
    args = ap.parse_args()
    sites = args.work / f"sites-{args.posts}-seed1"
    if not (sites / "o2m").exists():
        subprocess.run([sys.executable, str(BENCH / "gen_site.py"), "--posts", str(args.posts),
                        "--out", str(sites)], check=True)
    env = {**os.environ, "O2M_PASSPHRASE": PASSPHRASE, "O2M_KDF": "moderate"}
    work = args.work / f"private-{args.posts}"
    shutil.rmtree(work, ignore_errors=True)
    runs: dict[str, list[float]] = {"all-public": [], "half-private": [], "no-friends": []}

    public = work / "public"
    shutil.copytree(sites / "o2m", public)
    half = work / "half"
    shutil.copytree(sites / "o2m", half)
    private_posts = make_half_private(half)
    bare = work / "bare"
    shutil.copytree(half, bare)
    from o2m_pub.config import load
    from o2m_pub.friends.identity import create_owner
    for root in (public, half, bare):  # an identity for each, so only friends differ
        create_owner(root, load(root), PASSPHRASE.encode(), now=dt.datetime.now(dt.timezone.utc))
    make_friends(half, args.friends)

    peaks = {}
    for _ in range(args.repeat):
        for label, root in (("all-public", public), ("half-private", half), ("no-friends", bare)):
            r = timed_build(root, env, work / f"{label}.log")
            runs[label].append(r["seconds"])
            peaks[label] = max(peaks.get(label, 0), r["peak_bytes"])

    new = half / "content" / "2026" / "bench-new-private-post.md"
    new.parent.mkdir(parents=True, exist_ok=True)
    before = {p: p.stat().st_mtime_ns for p in (half / "build").rglob("*") if p.is_file()}
    new.write_text("---\ntitle: New for one friend\ndate: 2026-11-24\naudience: f00000\n---\n"
                   "A new post that one friend among all may read.\n")
    t0 = time.perf_counter()
    done = subprocess.run(o2m_build_cmd() + ["--timings"], cwd=half, env=env, check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    add_seconds = time.perf_counter() - t0
    phases = dict(_phase(line) for line in done.stderr.splitlines() if line.endswith(" ms"))
    after = {p: p.stat().st_mtime_ns for p in (half / "build").rglob("*") if p.is_file()}
    changed = [p.relative_to(half / "build").as_posix() for p in after if before.get(p) != after[p]]
    objects = sum(1 for c in changed if c.startswith("o/"))
    heads = sum(1 for c in changed if c.startswith("f/"))
    pages = sum(1 for c in changed if c.startswith("p/"))
    all_heads = sum(1 for p in after if p.relative_to(half / "build").as_posix().startswith("f/"))

    med = {k: statistics.median(v) for k, v in runs.items()}
    overhead = med["half-private"] / med["all-public"] - 1
    lines = [
        f"### Private feeds: {args.posts:,} posts, {private_posts:,} private, "
        f"{args.friends} friends ({dt.date.today()})",
        "",
        f"Command: `python bench/private_bench.py --posts {args.posts} --friends {args.friends}"
        f" --repeat {args.repeat}` (median of {args.repeat}; nproc {os.cpu_count()})",
        "",
        "| build | seconds | peak MB |",
        "|---|---:|---:|",
        *(f"| {k} | {med[k]:.2f} | {peaks[k] / 2**20:.0f} |" for k in runs),
        "",
        f"Half-private with {args.friends} friends vs all public: {overhead:+.0%} "
        "(target: at most +50%).",
        f"Adding one post for one friend of {args.friends:,}: {add_seconds:.2f} s, "
        f"{objects} object, {heads:,} of {all_heads:,} heads rewritten ({args.friends:,} "
        f"real, {all_heads - args.friends:,} dummies), {pages} archive pages, "
        f"{len(changed):,} files in all.",
        "Phases of that build (ms): " + ", ".join(f"{k} {v:,.0f}" for k, v in phases.items()),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
