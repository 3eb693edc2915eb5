"""Cold builds of one site by two versions of o2m, alternated: the paired comparison
that stays meaningful on a machine shared with other work (CPU time moves much less
than wall-clock time there).

    mkdir /tmp/base && git archive <commit> o2m_pub | tar -x -C /tmp/base
    python bench/paired_build.py --site DIR --before /tmp/base [--rounds 2]

DIR is an o2m site, e.g. the `o2m` folder that `bench/gen_site.py --posts 10000` writes.
Each build runs in a fresh process (`python -m o2m_pub build --timings`) after `build/`
and `.o2m/` are set aside (renamed into `trash-paired/` beside DIR, deleted at the end:
`aside.py` says why); "before" runs with PYTHONPATH set to the folder holding the
other `o2m_pub`, "after" with this checkout's. Prints wall-clock and CPU seconds (the
process and its workers) and the sources and pages phases of each build.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from aside import Trash


def cold_build(site: Path, pythonpath: str | None,
               trash: Trash) -> tuple[float, float, dict[str, str]]:
    for folder in ("build", ".o2m"):
        trash.set_aside(site / folder)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "o2m_pub", "build", "--timings"], cwd=site,
                          env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    phases = dict(re.findall(r"^\s+(sources|pages)\s+([\d.]+) ms", done.stdout + done.stderr,
                             re.M))
    return wall, cpu, phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, required=True)
    ap.add_argument("--before", required=True, help="folder holding the other o2m_pub")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with Trash(args.site.resolve().parent / "trash-paired") as trash:
        order = [("before", args.before), ("after", None)]
        for round_ in range(args.rounds):  # alternated: neither always builds first
            for name, path in order if round_ % 2 == 0 else order[::-1]:
                wall, cpu, phases = cold_build(args.site, path, trash)
                print(f"{name:<7} wall {wall:6.2f} s  CPU {cpu:6.2f} s  sources "
                      f"{phases.get('sources', '?')} ms  pages {phases.get('pages', '?')} ms  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
