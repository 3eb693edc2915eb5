#!/usr/bin/env python3
"""The one-post edit of build_bench.py, alone, repeated, and for several versions of o2m
side by side.

    python bench/one_edit.py --site DIR/o2m [--code PATH ...] [--repeat 5] [--mode edit]
    python bench/one_edit.py --site COPY1/o2m --site COPY2/o2m --code A --code B ...

DIR is bench/gen_site.py's output (its manifest.json picks the post, as build_bench.py
does). Each run appends one sentence to that post (`--mode nochange`: touches nothing)
and times `o2m build` in a fresh process, started from the console script beside this
interpreter; the post is restored at the end. Each `--code PATH` is a folder holding an
`o2m_pub/` (e.g. `git archive COMMIT o2m_pub | tar -x -C PATH`), put first on PYTHONPATH;
`-` is the installed o2m. One `--site` per `--code` gives each version its own copy of
the site (`cp -a DIR/o2m COPY/`; `cp -r` of a symlink to DIR copies the link, and the
"copies" are then one folder, which is refused): needed when the versions keep their
build state in schemas that differ, since each would rebuild the whole site after the
other. The versions take turns, `--rounds` times, so that a change in the machine's
load falls on all of them. Prints each version's wall-clock and CPU seconds per run,
and their medians.

Bytecode is written (to a cache folder in /tmp) even when PYTHONDONTWRITEBYTECODE is
set: without it every o2m module is compiled again at each start, which no installed
o2m does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def edit_post(site: Path) -> Path:
    """The post build_bench.py edits: the middle article without footnotes."""
    items = json.loads((site.parent / "manifest.json").read_text())["items"]
    ok = [it for it in items if it["kind"] == "article" and not it["footnotes"]]
    item = ok[len(ok) // 2]
    found = [*site.glob(f"content/**/{item['slug']}.md"),
             *site.glob(f"content/**/{item['slug']}/index.md")]
    return found[0]


def run(cmd: list[str], site: Path, env: dict) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one build."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=site, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"o2m build failed:\n{result.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, action="append", required=True,
                    help="gen_site.py's DIR/o2m; once, or once per --code")
    ap.add_argument("--code", action="append", default=[],
                    help="a folder holding o2m_pub/ ('-': the installed one); repeatable")
    ap.add_argument("--repeat", type=int, default=5, help="builds per version and round")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--mode", choices=("edit", "nochange"), default="edit")
    args = ap.parse_args()
    cmd = [str(Path(sys.executable).with_name("o2m")), "build"]
    codes = args.code or ["-"]
    if len(args.site) not in (1, len(codes)):
        ap.error("give --site once, or once per --code")
    if len({s.resolve() for s in args.site}) < len(args.site):
        ap.error("two --site are one folder (a symlink copied?): give each version a copy")
    sites = [s.resolve() for s in args.site] * (len(codes) if len(args.site) == 1 else 1)
    site_of = dict(zip(codes, sites))
    posts = {site: edit_post(site) for site in sites}
    originals = {site: post.read_bytes() for site, post in posts.items()}
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in codes}
    base_env = dict(os.environ)
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    base_env["PYTHONPYCACHEPREFIX"] = "/tmp/o2m-bench-pycache"
    try:
        for _ in range(args.rounds):
            for code in codes:
                env = dict(base_env)
                if code != "-":
                    env["PYTHONPATH"] = os.pathsep.join(
                        [str(Path(code).resolve()), *filter(None, [env.get("PYTHONPATH")])])
                site, post = site_of[code], posts[site_of[code]]
                run(cmd, site, env)  # settle: the manifest and build/ as this version leaves them
                for i in range(args.repeat):
                    if args.mode == "edit":
                        post.write_bytes(originals[site] + f"\n\nThis sentence was appended "
                                         f"by the benchmark: one-edit-{i}-{time.time_ns()}.\n"
                                         .encode())
                    results[code].append(run(cmd, site, env))
    finally:
        for code in codes:  # each copy restored, and built by the version that uses it
            site = site_of[code]
            if posts[site].read_bytes() != originals[site]:
                posts[site].write_bytes(originals[site])
                env = dict(base_env)
                if code != "-":
                    env["PYTHONPATH"] = str(Path(code).resolve())
                run(cmd, site, env)
    first = sites[0]
    print(f"{args.mode}: {posts[first].relative_to(first)}, {args.repeat} x {args.rounds} "
          "builds each")
    for code, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{code}: wall {' '.join(f'{w:.3f}' for w in walls)} median "
              f"{statistics.median(walls):.3f} s; CPU median {statistics.median(cpus):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
