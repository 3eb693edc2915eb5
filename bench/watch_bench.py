#!/usr/bin/env python3
"""Save-to-published benchmark (issue 5): how long from saving a post to its page and
the affected heads being published, with the watcher running on a 10,000-post site.

    python bench/watch_bench.py [--posts 10000] [--friends 100] [--saves 20]
                                [--via serve|watch] [--debounce 100] [--work bench/out]

The site is bench/gen_site.py's (generated if missing) with every second post
`audience: friends` and 100 friends with real cards (as bench/private_bench.py), keys
sealed with the production Argon2id limits. It starts, in its own process, either

  serve   `o2m serve --watch --port 0` (default): the page and the public feeds are
          fetched over HTTPS with requests, trusting the server's own pinned
          self-signed certificate (keys/tls/cert.pem);
  watch   `o2m watch`: everything is checked on disk.

and waits for the first (cold) build. Then two series of --saves saves each, one save
at a time (the next once the previous build's line is printed and a second has passed):

  public   the newest public post: timed until its page and feed.json and atom.xml
           carry the new text (served, or on disk with --via watch);
  friends  the newest friends-only post (no public page): timed until every friend's
           feed head (build/f/*, 100 files) has been replaced on disk;
           with --via serve each head is then fetched once over HTTPS and compared
           with the file (untimed: the server stats a file on every request, so a head
           on disk is the head it serves).

Each save rewrites the whole file (as an editor does) with one new sentence. The time
is from just before the write to the first poll (every 2 ms, on disk) that sees
everything published, then, with --via serve, until HTTPS serves the page and feeds
with the edit (polling over HTTPS all along would load the very process that builds). Reported: median, p90, min and max per series.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from private_bench import PASSPHRASE, make_friends, make_half_private  # noqa: E402

POLL = 0.002
DEADLINE = 60.0
_LISTENING = re.compile(r"serving .* at (https://\S+)")


def prepare(args) -> Path:
    """The half-private site with friends, built once (reused while --reuse)."""
    sites = args.work / f"sites-{args.posts}-seed1"
    if not (sites / "o2m").exists():
        subprocess.run([sys.executable, str(BENCH / "gen_site.py"), "--posts", str(args.posts),
                        "--out", str(sites)], check=True)
    root = args.work / f"watch-{args.posts}-{args.friends}"
    if args.reuse and (root / "build" / "index.html").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(sites / "o2m", root)
    make_half_private(root)
    from o2m_pub.config import load
    from o2m_pub.friends.identity import create_owner
    create_owner(root, load(root), PASSPHRASE.encode(), now=dt.datetime.now(dt.timezone.utc))
    make_friends(root, args.friends)
    return root


def newest(root: Path, audience: str) -> Path:
    """The newest post with this audience (its edit changes the feeds too)."""
    best = None
    for path in (root / "content").rglob("*.md"):
        head = path.read_text(encoding="utf-8")[:600]
        date = re.search(r"^date: (.+)$", head, re.M)
        if date and re.search(rf"^audience: {audience}$", head, re.M):
            if best is None or date.group(1) > best[0]:
                best = (date.group(1), path)
    assert best is not None, f"no {audience} post"
    return best[1]


def page_rel(root: Path, post: Path) -> str:
    from o2m_pub.config import load
    from o2m_pub.site.content import parse_post
    parsed = parse_post(post.read_bytes(), post.relative_to(root).as_posix(),
                        tz=load(root).tz, default_audience=("public",))
    return f"{parsed.path}index.html"


class Watcher:
    """`o2m serve --watch` or `o2m watch` in its own process; its lines in a queue."""

    def __init__(self, root: Path, via: str, debounce: int, workers: int | None) -> None:
        env = {**os.environ, "O2M_PASSPHRASE": PASSPHRASE, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "o2m_pub", "-C", str(root)]
        if via == "serve":
            cmd += ["serve", "--watch", "--port", "0", "--no-access-log"]
            if workers:
                cmd += ["--workers", str(workers)]
        else:
            cmd += ["watch", "--debounce", str(debounce)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # ended

    def next_line(self, timeout: float = DEADLINE * 10) -> str:
        line = self.lines.get(timeout=timeout)
        if line == "" and self.process.poll() is not None:
            sys.exit(f"the watcher ended (exit {self.process.returncode})")
        return line

    def wait_for_first_build(self) -> None:
        while True:
            line = self.next_line()
            print(f"  | {line}", flush=True)
            m = _LISTENING.search(line)
            if m:
                self.url = m.group(1)
            if "watching for changes" in line:
                return
            if "error" in line and "o2m:" in line and "warning" not in line:
                sys.exit("the first build failed")

    def drain_build_line(self) -> str:
        """The line of the build that just published (skipping anything else)."""
        while True:
            line = self.next_line()
            if re.match(r"\d\d:\d\d:\d\d ", line):
                return line

    def stop(self) -> None:
        import signal
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def head_stamps(build: Path) -> dict[Path, tuple[int, int]]:
    out = {}
    for p in (build / "f").rglob("*"):
        if p.is_file():
            st = p.stat()
            out[p] = (st.st_ino, st.st_mtime_ns)
    return out


def series(root: Path, watcher: Watcher, post: Path, kind: str, saves: int,
           session) -> list[float]:  # noqa: ANN001
    build = root / "build"
    original = post.read_text(encoding="utf-8")
    rel = page_rel(root, post)
    times = []
    try:
        for i in range(saves):
            marker = f"Bench marker {kind} {i} {time.time_ns()}"
            text = original.rstrip("\n") + f"\n\n{marker}.\n"
            if kind == "public":
                checks = [rel, "feed.json", "atom.xml"]
                before = None
            else:
                checks = []
                before = head_stamps(build)
            t0 = time.perf_counter()
            post.write_text(text, encoding="utf-8")
            end = t0 + DEADLINE
            pending = list(checks)
            while True:  # on disk first (cheap to poll, and it does not load the server)
                pending = [c for c in pending if marker not in fetch(build, c, None, watcher)]
                heads_done = before is None or all(
                    stamp != before.get(p) for p, stamp in head_stamps(build).items())
                if not pending and heads_done:
                    break
                if time.perf_counter() > end:
                    sys.exit(f"save {i} of the {kind} post was not published in {DEADLINE} s")
                time.sleep(POLL)
            pending = list(checks) if session is not None else []
            while pending:  # then served: the clock stops when HTTPS serves all of it
                pending = [c for c in pending if marker not in fetch(build, c, session, watcher)]
                if time.perf_counter() > end:
                    sys.exit(f"save {i} of the {kind} post was not served in {DEADLINE} s")
            times.append(time.perf_counter() - t0)
            line = watcher.drain_build_line()
            if before is not None and session is not None:
                check_heads_served(build, session, watcher)
            print(f"  {kind} save {i + 1:2d}: {times[-1] * 1000:6.0f} ms   | {line}", flush=True)
            time.sleep(1.0)
    finally:
        post.write_text(original, encoding="utf-8")
        watcher.drain_build_line()
    return times


def fetch(build: Path, rel: str, session, watcher: Watcher) -> str:  # noqa: ANN001
    if session is None:
        try:
            return (build / rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
    r = session.get(watcher.url + rel, timeout=10)
    return r.text if r.status_code == 200 else ""


def check_heads_served(build: Path, session, watcher: Watcher) -> None:  # noqa: ANN001
    for p in (build / "f").rglob("*"):
        if p.is_file():
            served = session.get(watcher.url + p.relative_to(build).as_posix(), timeout=10)
            if served.content != p.read_bytes():
                sys.exit(f"{p}: the server does not serve the head on disk")


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, max(0, round(0.9 * len(ms)) - 1))]
    return {"median": statistics.median(ms), "p90": p90, "min": ms[0], "max": ms[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--friends", type=int, default=100)
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--via", choices=["serve", "watch"], default="serve")
    ap.add_argument("--debounce", type=int, default=100, help="ms (o2m watch's default)")
    ap.add_argument("--workers", type=int, help="o2m serve --workers (default: its own)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the site built by the last run (skips the cold build)")
    ap.add_argument("--work", type=Path, default=BENCH / "out")
    args = ap.parse_args()
    if args.via == "serve" and args.debounce != 100:
        sys.exit("--debounce applies to --via watch (serve --watch uses the default)")

    root = prepare(args)
    print(f"site: {root} (starting `o2m {'serve --watch' if args.via == 'serve' else 'watch'}`;"
          " the first build may be cold)", flush=True)
    watcher = Watcher(root, args.via, args.debounce, args.workers)
    session = None
    try:
        t0 = time.perf_counter()
        watcher.wait_for_first_build()
        print(f"  first build and start: {time.perf_counter() - t0:.1f} s", flush=True)
        if args.via == "serve":
            import requests
            session = requests.Session()
            session.trust_env = False
            session.verify = str(root / "keys" / "tls" / "cert.pem")  # the pinned self-signed
        results = {}
        for kind, audience in (("public", "public"), ("friends", "friends")):
            post = newest(root, audience)
            print(f"{kind}: {post.relative_to(root)}", flush=True)
            results[kind] = summary(series(root, watcher, post, kind, args.saves, session))
    finally:
        watcher.stop()
    where = ("served by `o2m serve --watch` (HTTPS, pinned certificate)" if args.via == "serve"
             else "on disk, `o2m watch`")
    print()
    print(f"Save-to-published, {args.posts:,} posts (half friends-only), {args.friends} friends,"
          f" {args.saves} saves each, {where}; {dt.date.today()}, nproc {os.cpu_count()}")
    print()
    print("| post edited | published when | median ms | p90 ms | min ms | max ms |")
    print("|---|---|---:|---:|---:|---:|")
    what = {"public": "its page, feed.json and atom.xml carry the edit",
            "friends": f"all {args.friends} friends' heads replaced"}
    for kind, r in results.items():
        print(f"| newest {kind} | {what[kind]} | {r['median']:.0f} | {r['p90']:.0f} | "
              f"{r['min']:.0f} | {r['max']:.0f} |")


if __name__ == "__main__":
    main()
