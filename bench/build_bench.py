#!/usr/bin/env python3
"""Build benchmark: o2m vs Pelican vs Hugo on the same synthetic posts.

    bash bench/setup.sh                                  # once: hugo, pelican venv, psutil
    python bench/build_bench.py --posts 10000 [--tools o2m,pelican,hugo] [--work bench/out]

Generates the sites with bench/gen_site.py (once per posts/seed; reused while
the generator version matches), then for each tool measures

  cold      output and caches cleared first (renamed into a trash folder that is
            deleted when all is measured: see bench/aside.py for why not deleted then)
              o2m:     build/ and .o2m/
              Pelican: output/ and cache/
              Hugo:    public/, resources/ and the --cacheDir
  no-change the same build command again, nothing touched
              (Pelican runs with CACHE_CONTENT=True and LOAD_CONTENT_CACHE=True in
              pelicanconf.py -- its warm-cache setup -- so this run loads the
              reader cache written by the cold build; Hugo has no persistent
              build cache, so this is a full build again)
  one-edit  one sentence appended to one post in each tree, then rebuilt
              (the post is restored afterwards; the script checks that the
              new sentence really appears in the output)

Wall time is time.perf_counter() around the subprocess. Memory is the peak of
the SUM of RSS over the whole process tree (the tool and all its descendants,
e.g. a process pool), sampled with psutil every --sample-ms (20 ms). RSS of
forked workers counts pages shared with the parent once per process, so for
pool-based tools this overstates real memory use (an upper bound).

After the cold build each tool's output is checked: exit status, number of
HTML files, how many posts got a page (by slug in the output path), and that a
post with a fenced code block came out syntax-highlighted. A tool that fails is
reported as failed (with the tail of its log) and the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
import gen_site  # noqa: E402
from aside import Trash  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover
    sys.exit("psutil is missing: run `bash bench/setup.sh` (or `pip install psutil`)")

PELICAN = BENCH / ".venv-pelican" / "bin" / "pelican"
PHASES = ("cold", "nochange", "edit")
PHASE_TITLES = {"cold": "cold s", "nochange": "no-change s", "edit": "one-edit s"}


# --------------------------------------------------------------------------
# measuring

def run_measured(cmd: list[str], cwd: Path, log: Path, sample_s: float, timeout: float,
                 env: dict | None = None) -> dict:
    """Run cmd; return rc, wall seconds and peak summed RSS of its process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    samples = 0
    stop = threading.Event()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        except OSError as e:
            out.write(f"cannot start {cmd!r}: {e}\n".encode())
            return {"rc": 127, "seconds": 0.0, "cpu_seconds": 0.0, "peak_bytes": 0, "samples": 0}
        root = psutil.Process(proc.pid)
        known: dict[int, psutil.Process] = {proc.pid: root}

        def sampler() -> None:
            nonlocal peak, samples
            while not stop.is_set():
                try:
                    kids = root.children(recursive=True)
                except psutil.Error:
                    kids = []
                total = 0
                for p in [root, *kids]:
                    # keep Process objects so pid reuse can't confuse us
                    p = known.setdefault(p.pid, p)
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, total)
                samples += 1
                stop.wait(sample_s)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            out.write(f"\n[build_bench] killed after {timeout} s timeout\n".encode())
        seconds = time.perf_counter() - t0
        stop.set()
        th.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # user+sys CPU of the tool and every descendant it waited for (pool workers included)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"rc": rc, "seconds": seconds, "cpu_seconds": cpu, "peak_bytes": peak, "samples": samples}


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# tools

class Tool:
    name = ""
    out_dir = ""
    clean: tuple[str, ...] = ()

    def __init__(self, site: Path, args):
        self.site = site
        self.args = args

    def command(self) -> list[str]:
        raise NotImplementedError

    def available(self) -> str | None:
        """None if runnable, else the reason why not."""
        return None

    def version(self) -> str:
        return "?"

    def env(self) -> dict | None:
        return None

    def source(self, item: dict) -> Path:
        return self.site / item[self.name]


class O2m(Tool):
    name = "o2m"
    out_dir = "build"
    clean = ("build", ".o2m")

    def command(self):
        return shlex.split(self.args.o2m_cmd)

    def available(self):
        exe = self.command()[0]
        if shutil.which(exe) is None and not Path(exe).exists():
            return f"`{exe}` not found on PATH (install o2m, e.g. `pip install -e .`, or pass --o2m-cmd)"
        return None

    def version(self):
        exe = self.command()[0]
        v = sh([exe, "--version"])
        if v and "usage" not in v.lower() and "error" not in v.lower():
            return v.splitlines()[0]
        for dist in ("o2m", "o2m-pub", "o2m_pub"):
            try:
                from importlib.metadata import version
                return f"{dist} {version(dist)}"
            except Exception:
                pass
        rev = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        return f"git {rev}" if rev else "unknown (no commit yet)"


class Pelican(Tool):
    name = "pelican"
    out_dir = "output"
    clean = ("output", "cache")

    def command(self):
        return [str(PELICAN), "content", "-s", "pelicanconf.py", "-o", "output"]

    def available(self):
        if not PELICAN.exists():
            return f"{PELICAN} missing: run `bash bench/setup.sh`"
        return None

    def version(self):
        py = PELICAN.parent / "python"
        v = sh([str(py), "-c",
                "import pelican, markdown, pygments, sys;"
                "print(f'Pelican {pelican.__version__} (Markdown {markdown.__version__}, "
                "Pygments {pygments.__version__}, Python {sys.version.split()[0]})')"])
        return v or sh([str(PELICAN), "--version"]) or "?"


class Hugo(Tool):
    name = "hugo"
    out_dir = "public"
    clean = ("public", "resources", ".hugo_cache")

    def command(self):
        return ["hugo", "--cacheDir", str(self.site / ".hugo_cache")]

    def available(self):
        if shutil.which("hugo") is None:
            return "`hugo` not on PATH: run `bash bench/setup.sh` (Debian package hugo)"
        return None

    def version(self):
        v = sh(["hugo", "version"])
        return v.splitlines()[0] if v else "?"


TOOLS = {"o2m": O2m, "pelican": Pelican, "hugo": Hugo}


def sh(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (r.stdout or r.stderr).strip() if r.returncode == 0 else ""


# --------------------------------------------------------------------------
# output checks

HIGHLIGHT_RE = re.compile(r"<pre[^>]*>(?:(?!</pre>).){0,400}?<span class=\"[\w -]+\">", re.S)


def html_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, fs in os.walk(root) for f in fs if f.endswith(".html")]


def pages_for(files_by_slug: dict[str, list[Path]], slug: str) -> list[Path]:
    return files_by_slug.get(slug, [])


def index_by_slug(files: list[Path], root: Path, slugs: set[str]) -> dict[str, list[Path]]:
    """Map post slug -> HTML files whose output path names that slug."""
    out: dict[str, list[Path]] = {}
    for f in files:
        for part in f.relative_to(root).parts:
            stem = part[:-5] if part.endswith(".html") else part
            if stem in slugs:
                out.setdefault(stem, []).append(f)
    return out


def check_output(tool: Tool, manifest: dict) -> dict:
    root = tool.site / tool.out_dir
    files = html_files(root) if root.is_dir() else []
    items = manifest["items"]
    slugs = {it["slug"] for it in items}
    by_slug = index_by_slug(files, root, slugs)
    found = sum(1 for s in slugs if s in by_slug)
    highlighted = None
    code_items = [it for it in items if it["has_code"]][:5]
    for it in code_items:
        for f in pages_for(by_slug, it["slug"]):
            if HIGHLIGHT_RE.search(f.read_text(errors="replace")):
                highlighted = f"{f.relative_to(tool.site)}"
                break
        if highlighted:
            break
    return {"html_files": len(files), "posts_with_page": found, "highlighted_example": highlighted}


def edit_visible(tool: Tool, slug: str, marker: str) -> bool | None:
    root = tool.site / tool.out_dir
    files = html_files(root)
    cand = index_by_slug(files, root, {slug}).get(slug, [])
    for f in cand or files:
        try:
            if marker in f.read_text(errors="replace"):
                return True
        except OSError:
            pass
    return False


# --------------------------------------------------------------------------
# the benchmark

SETTLE_SECONDS = 65  # ext4 without a journal skips inodes freed in the last minute


def prepare_sites(args) -> tuple[Path, dict]:
    base = args.work / f"sites-{args.posts}-seed{args.seed}"
    mf = base / "manifest.json"
    if mf.exists() and not args.regen:
        try:
            m = json.loads(mf.read_text())
            if (m.get("generator_version") == gen_site.GENERATOR_VERSION and m.get("posts") == args.posts
                    and m.get("seed") == args.seed and all((base / t).is_dir() for t in TOOLS)):
                print(f"reusing generated sites in {base}")
                return base, m
        except (OSError, ValueError):
            pass
    print(f"generating {args.posts} posts (seed {args.seed}) in {base} ...", flush=True)
    replaced = any((base / t).exists() for t in TOOLS)
    t0 = time.perf_counter()
    m = gen_site.generate(args.posts, base, args.seed)
    print(f"  done in {time.perf_counter() - t0:.1f} s ({m['words']} words)")
    if replaced:  # the old trees were deleted: let the file system settle (aside.py)
        print(f"  the old sites were deleted: waiting {SETTLE_SECONDS} s before timing")
        os.sync()
        time.sleep(SETTLE_SECONDS)
    return base, m


def pick_edit_post(manifest: dict) -> dict:
    items = manifest["items"]
    ok = [it for it in items if it["kind"] == "article" and not it["footnotes"]]
    return ok[len(ok) // 2] if ok else items[len(items) // 2]


def bench_tool(tool: Tool, manifest: dict, args, logs: Path, trash: Trash) -> dict:
    res: dict = {"tool": tool.name, "ok": False, "version": tool.version(), "runs": []}
    why = tool.available()
    if why:
        res["error"] = why
        print(f"[{tool.name}] SKIPPED/FAILED: {why}")
        return res
    cmd = tool.command()
    res["command"] = " ".join(shlex.quote(c) for c in cmd)
    item = pick_edit_post(manifest)
    src = tool.source(item)
    original = src.read_bytes()
    sample_s = args.sample_ms / 1000
    try:
        for rep in range(args.repeat):
            run: dict = {}
            # cold
            for d in tool.clean:
                trash.set_aside(tool.site / d)
            for phase in PHASES:
                if phase == "edit":
                    marker = f"bench-edit-{tool.name}-{rep}-{time.time_ns()}"
                    src.write_bytes(original + f"\n\nThis sentence was appended by the benchmark: {marker}.\n".encode())
                log = logs / f"{tool.name}-{phase}-{rep}.log"
                print(f"[{tool.name}] {phase} build{f' (repeat {rep + 1})' if args.repeat > 1 else ''} ...",
                      end="", flush=True)
                r = run_measured(cmd, tool.site, log, sample_s, args.timeout, tool.env())
                r["log"] = str(log)
                run[phase] = r
                print(f" {r['seconds']:.2f} s (CPU {r['cpu_seconds']:.2f} s), peak {r['peak_bytes'] / 2**20:.0f} MB, "
                      f"rc {r['rc']}", flush=True)
                if r["rc"] != 0:
                    res["error"] = f"{phase} build exited {r['rc']}; log tail:\n{tail(log)}"
                    print(f"[{tool.name}] FAILED ({phase} build, exit {r['rc']}). Last lines of {log}:")
                    print("    " + tail(log).replace("\n", "\n    "))
                    res["runs"].append(run)
                    return res
                if phase == "cold" and rep == 0:
                    chk = check_output(tool, manifest)
                    res["check"] = chk
                    print(f"[{tool.name}] output check: {chk['html_files']} HTML files, "
                          f"{chk['posts_with_page']}/{manifest['posts']} posts have a page, "
                          f"highlighted code: {chk['highlighted_example'] or 'NOT FOUND'}")
                    problems = []
                    if chk["html_files"] < manifest["posts"]:
                        problems.append(f"only {chk['html_files']} HTML files for {manifest['posts']} posts")
                    if chk["posts_with_page"] < manifest["posts"]:
                        problems.append(f"only {chk['posts_with_page']}/{manifest['posts']} posts found by slug "
                                        "in output paths")
                    if not chk["highlighted_example"]:
                        problems.append("no syntax-highlighted code block found in the first posts with code")
                    res["warnings"] = problems
                    for p in problems:
                        print(f"[{tool.name}] WARNING: {p}")
                    if chk["html_files"] == 0:
                        res["error"] = "cold build exited 0 but wrote no HTML"
                        res["runs"].append(run)
                        return res
                if phase == "edit":
                    vis = edit_visible(tool, item["slug"], marker)
                    r["edit_visible"] = vis
                    if not vis:
                        print(f"[{tool.name}] WARNING: the edited sentence is NOT in the rebuilt output")
                        res.setdefault("warnings", []).append("one-edit rebuild did not show the edit")
            res["runs"].append(run)
    finally:
        src.write_bytes(original)
    res["ok"] = True
    res["edited_post"] = str(src.relative_to(tool.site))
    for phase in PHASES:
        res[phase] = statistics.median(r[phase]["seconds"] for r in res["runs"])
        res[f"{phase}_min"] = min(r[phase]["seconds"] for r in res["runs"])
        res[f"{phase}_cpu"] = statistics.median(r[phase]["cpu_seconds"] for r in res["runs"])
        res[f"{phase}_peak_mb"] = max(r[phase]["peak_bytes"] for r in res["runs"]) / 2**20
    res["peak_mb"] = res["cold_peak_mb"]
    return res


# --------------------------------------------------------------------------
# reporting

def fmt_s(x) -> str:
    if x is None:
        return "—"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    osname = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": osname,
        "python": platform.python_version(),
    }


def table_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.get("ok"):
            rows.append([r["tool"], fmt_s(r["cold"]), fmt_s(r["nochange"]), fmt_s(r["edit"]),
                         f"{r['peak_mb']:.0f}", fmt_s(r["cold_cpu"])])
        else:
            rows.append([r["tool"], "failed", "—", "—", "—", "—"])
    return rows


def ratios(results: list[dict]) -> list[str]:
    by = {r["tool"]: r for r in results if r.get("ok")}
    out = []
    o = by.get("o2m")
    if not o:
        return out
    if "pelican" in by:
        p = by["pelican"]
        out.append("o2m vs Pelican (Pelican time / o2m time, higher = o2m faster): " + ", ".join(
            f"{PHASE_TITLES[ph][:-2]} {p[ph] / o[ph]:.2f}×" for ph in PHASES)
            + f"; peak memory o2m/Pelican {o['peak_mb'] / p['peak_mb']:.2f}×")
    if "hugo" in by:
        h = by["hugo"]
        out.append("o2m vs Hugo (o2m time / Hugo time, lower = better): " + ", ".join(
            f"{PHASE_TITLES[ph][:-2]} {o[ph] / h[ph]:.2f}×" for ph in PHASES)
            + f"; peak memory o2m/Hugo {o['peak_mb'] / h['peak_mb']:.2f}×")
    return out


def targets(results: list[dict], posts: int) -> list[str]:
    by = {r["tool"]: r for r in results if r.get("ok")}
    o = by.get("o2m")
    if not o:
        return []
    note = "" if posts == 10000 else f" (targets are for 10,000 posts; this run had {posts})"
    t = [f"Targets{note}:"]

    def line(ok: bool, text: str) -> str:
        return f"- [{'x' if ok else ' '}] {text}"

    if "pelican" in by:
        x = by["pelican"]["cold"] / o["cold"]
        t.append(line(x >= 4, f"cold build ≥4× faster than Pelican: {x:.2f}×"))
    if "hugo" in by:
        x = o["cold"] / by["hugo"]["cold"]
        t.append(line(x <= 0.8, f"cold build ≤0.8× Hugo's time (issue 16): {x:.2f}×"))
    t.append(line(o["nochange"] < 1, f"no-change rebuild < 1 s: {o['nochange']:.2f} s"))
    t.append(line(o["edit"] < 0.3, f"one-edit rebuild < 0.3 s (issue 16): {o['edit']:.2f} s"))
    t.append(line(o["peak_mb"] < 300, f"peak memory (cold build, process tree RSS) < 300 MB: {o['peak_mb']:.0f} MB"))
    return t


def markdown_report(results, args, machine, manifest, cmdline) -> str:
    today = dt.date.today().isoformat()
    kinds: dict[str, int] = {}
    for it in manifest["items"]:
        kinds[it["kind"]] = kinds.get(it["kind"], 0) + 1
    lines = [
        f"### Build benchmark: {args.posts:,} posts ({today})",
        "",
        f"Command: `{cmdline}`",
        "",
        f"Posts: {manifest['posts']:,} ({', '.join(f'{v:,} {k}s' for k, v in sorted(kinds.items()))}; "
        f"{manifest['words']:,} words; seed {manifest['seed']}), generated by `bench/gen_site.py`.",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['mem_gb']} GiB RAM, {machine['os']}, "
        f"Python {machine['python']}.",
        "",
        "Versions:",
    ]
    for r in results:
        lines.append(f"- {r['tool']}: {r.get('version', '?')}")
    lines += [
        "",
        "| tool | cold s | no-change s | one-edit s | peak MB | cold CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table_rows(results):
        lines.append("| " + " | ".join(row) + " |")
    rat = ratios(results)
    if rat:
        lines.append("")
        lines += [f"- {x}" for x in rat]
    tg = targets(results, args.posts)
    if tg:
        lines.append("")
        lines += tg
    fails = [r for r in results if not r.get("ok")]
    for r in fails:
        first = (r.get("error") or "failed").splitlines()[0]
        lines.append(f"\n{r['tool']} failed: {first}")
    lines += [
        "",
        "cold = output and caches cleared first, set aside and deleted after all runs (o2m `build/` + `.o2m/`; Pelican `output/` + `cache/`; "
        "Hugo `public/` + `resources/` + cache dir). no-change = the same command again (Pelican with "
        "`CACHE_CONTENT = True`, `LOAD_CONTENT_CACHE = True`, reader-level cache checked by mtime; Hugo "
        "rebuilds everything). one-edit = one sentence appended to one post, then rebuilt. "
        f"Times are wall-clock ({'median of ' + str(args.repeat) + ' runs' if args.repeat > 1 else 'one run'}). "
        f"peak MB = peak during the cold build of the summed RSS of the tool's whole process tree, "
        f"sampled every {args.sample_ms:g} ms (shared pages of forked workers count once per process). "
        "cold CPU s = user+sys CPU time of the whole process tree during the cold build (on 2 cores, "
        "wall time below CPU time means the tool used both). "
        "Pelican: default theme, codehilite + extra + toc, feeds on, pagination 20; Hugo: minimal layouts "
        "(baseof/single/list/index), tags taxonomy, Chroma highlighting with classes, default RSS outputs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build benchmark: o2m vs Pelican vs Hugo",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--tools", default="o2m,pelican,hugo", help="comma-separated subset of o2m,pelican,hugo")
    ap.add_argument("--work", type=Path, default=BENCH / "out", help="where sites, logs and results go")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="run every phase this many times, report the median")
    ap.add_argument("--regen", action="store_true", help="regenerate the sites even if present")
    # The console script beside this interpreter, not a PATH lookup: version-manager
    # shims (pyenv) add 0.1-0.2 s of their own to every run, which is not o2m's time.
    script = Path(sys.executable).with_name("o2m")
    default_cmd = f"{shlex.quote(str(script))} build" if script.exists() else "o2m build"
    ap.add_argument("--o2m-cmd", default=default_cmd,
                    help="o2m build command, run in the site root (default: %(default)s)")
    ap.add_argument("--sample-ms", type=float, default=20.0, help="RSS sampling period")
    ap.add_argument("--timeout", type=float, default=3600, help="per-build timeout in seconds")
    args = ap.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        ap.error(f"unknown tool(s): {', '.join(bad)}")
    args.work = args.work.resolve()
    cmdline = "python bench/build_bench.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    base, manifest = prepare_sites(args)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = args.work / "logs" / f"{args.posts}-{stamp}"
    machine = machine_info()
    results = []
    with Trash(args.work / "trash") as trash:
        for name in tools:
            tool = TOOLS[name](base / name, args)
            results.append(bench_tool(tool, manifest, args, logs, trash))

    print()
    head = ["tool", "cold s", "no-change s", "one-edit s", "peak MB", "cold CPU s"]
    rows = table_rows(results)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()
    for x in ratios(results):
        print(x)
    for x in targets(results, args.posts):
        print(x)
    for r in results:
        if not r.get("ok"):
            print(f"\n{r['tool']} FAILED: {r.get('error', '?')}")

    md = markdown_report(results, args, machine, manifest, cmdline)
    out_json = args.work / f"results-{args.posts}-{stamp}.json"
    out_md = args.work / f"results-{args.posts}-{stamp}.md"
    out_json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine,
                                    "results": results, "cmdline": cmdline}, indent=1))
    out_md.write_text(md)
    print("\n---- Markdown for docs/BENCHMARKS.md ----\n")
    print(md)
    print(f"(also written to {out_md} and {out_json}; build logs in {logs})")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
