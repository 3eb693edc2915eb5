"""Throughput of `o2m serve` beside nginx (and, on request, plain `twistd web`), all over
TLS on this machine, serving the same build/, measured in one run with wrk.

    python bench/serve_bench.py [--mode files|mix|all|memory] [--seconds 10] [--connections 64]
                                [--workers N] [--posts 10000] [--site DIR] [--twistd]
                                [--both-tls]

Two loads, each given to every server in turn:

- ``files``: one 2 KiB feed head (f/) and one 200 KiB object (o/), each requested
  over and over on keep-alive connections (the best case: one cached file);
- ``mix``: every file of a generated site's build/ (`bench/gen_site.py` --posts N,
  then `o2m build`; 10,000 posts make about 14,000 files, 230 MB), in one shuffled
  order (seed 1), each wrk thread starting at its own place in it: a whole site's
  working set, as crawlers and readers spread over the archive make it.

nginx gets as many workers as o2m (`--workers`, one per core by default). After each
server's runs, each of its worker processes' memory is read from /proc (VmRSS now,
VmHWM its peak), and the servers' CPU time per request (all its workers' user and
system time over the measured run, divided by the requests: on a machine shared with
other work it moves much less than requests a second). Needs wrk and nginx (Debian packages wrk, nginx). The servers share
one self-signed P-256 certificate; o2m runs with its security headers and access log
on (to a file), nginx with its access log to a file. `--site DIR` reuses a site made
before (the o2m folder of `gen_site.py`, built or not); else it is generated in a
temporary folder (about 40 s for 10,000 posts). o2m runs on its own TLS transport (the
default); `--both-tls` measures it on Twisted's TLS layer too, in the same run (or set
O2M_SERVE_TLS=twisted for the whole run).

``memory`` measures o2m alone, in this process, with no sockets: the server's site,
channel and Twisted's TLS layer (o2m's own transport needs a socket: it is not in this
figure), fed by an OpenSSL client over memory BIOs, for the
2 KiB head, the 200 KiB object and the mix (with `--site`; all but the files over
1 MiB, which are streamed by a producer that needs a reactor), as microseconds of the
server's own work per request. No kernel, no wrk on the same cores: the figure to
compare two versions of the code (`PYTHONPATH=OTHER python bench/serve_bench.py
--mode memory` runs OTHER's o2m_pub).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: --mode memory may run other code


def nginx_conf(tmp: Path, port: int, cert: Path, key: Path, root: Path, *, workers: int = 1,
               access_log: bool = True) -> str:
    """An nginx configuration serving `root` over TLS on 127.0.0.1:`port`, as a child
    process keeping everything under `tmp` (shared by the benchmarks that need nginx)."""
    log = f"{tmp}/nginx-access.log" if access_log else "off"
    return f"""
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {log};
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    sendfile on; tcp_nopush on; keepalive_requests 100000;
    types {{ application/json json; text/html html; text/css css; application/xml xml; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
        add_header Strict-Transport-Security "max-age=63072000" always;
        add_header X-Content-Type-Options nosniff always;
        add_header Content-Security-Policy "default-src 'none'" always;
        add_header Referrer-Policy no-referrer always;
        location /o/ {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float = 20) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(url: str, seconds: int, connections: int, script: Path | None = None,
        ) -> tuple[float, int]:
    """(requests a second, requests) of one wrk run; any error ends the benchmark."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if not m or not n or "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"wrk {url}: errors, not a measurement:\n{out}")
    return float(m.group(1)), int(n.group(1))


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def make_small_site(tmp: Path) -> Path:
    """A fresh site (`o2m init`, built) with the two test files in build/."""
    env = {**os.environ, "O2M_PASSPHRASE": "bench", "O2M_KDF": "interactive"}
    root = tmp / "site"
    subprocess.run([sys.executable, "-m", "o2m_pub", "init", str(root), "--name", "Bench",
                    "--url", "https://bench.example/"], check=True, env=env,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "o2m_pub", "build"], cwd=root, check=True, env=env,
                   capture_output=True)
    return root


def add_test_files(root: Path) -> None:
    build = root / "build"
    (build / "f").mkdir(exist_ok=True)
    (build / "o").mkdir(exist_ok=True)
    (build / "f" / "head2k").write_bytes(os.urandom(2048))
    (build / "o" / "object200k").write_bytes(os.urandom(200 * 1024))


def make_big_site(tmp: Path, posts: int, given: Path | None) -> Path:
    """The o2m site of `gen_site.py` with `posts` posts, built."""
    env = {**os.environ, "O2M_PASSPHRASE": "bench", "O2M_KDF": "interactive"}
    if given is None:
        import gen_site  # bench/
        print(f"generating {posts} posts ...", flush=True)
        gen_site.generate(posts, tmp / "sites", 1)
        root = tmp / "sites" / "o2m"
    else:
        root = given.resolve()
    if not (root / "build" / "index.html").exists():
        print("building them ...", flush=True)
        subprocess.run([sys.executable, "-m", "o2m_pub", "build"], cwd=root, check=True,
                       env=env, capture_output=True)
    return root


def site_paths(build: Path) -> list[str]:
    """Every file under build/ as a URL path (no dot-folders), in a shuffled order."""
    paths = []
    for folder, dirs, files in os.walk(build):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(folder, build)
        for name in sorted(files):
            if not name.startswith("."):
                path = name if rel == "." else f"{rel}/{name}"
                paths.append("/" + path.removesuffix("index.html"))
    random.Random(1).shuffle(paths)
    return paths


def mix_script(tmp: Path, paths: list[str]) -> Path:
    """A wrk Lua script that walks `paths` in order, each thread from its own start."""
    lines = ",\n".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    script = tmp / "mix.lua"
    script.write_text(f"""
local paths = {{
{lines}
}}
local threads = 0
setup = function(thread)
  thread:set("index", threads)
  threads = threads + 1
end
local i = 0
init = function(args)
  i = math.floor((index or 0) * #paths / 2)
end
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
""")
    return script


def process_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process, in bytes."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()]


def workers_of(proc: subprocess.Popen, which: str) -> list[int]:
    """o2m's first worker is the process started, the others its children; nginx's
    workers are its master's children."""
    return {"self": [proc.pid], "children": children(proc.pid),
            "self+children": [proc.pid, *children(proc.pid)]}[which]


def memory_of(proc: subprocess.Popen, which: str) -> list[tuple[int, int]]:
    """Each worker's (VmRSS, VmHWM)."""
    return [process_memory(pid) for pid in workers_of(proc, which)]


def start_servers(args, tmp: Path, root: Path) -> dict[str, tuple[subprocess.Popen, int, str]]:
    """Name -> (process, port, whose memory to report: 'self+children' or 'children')."""
    env = {**os.environ, "O2M_PASSPHRASE": "bench"}
    servers: dict[str, tuple[subprocess.Popen, int, str]] = {}
    port = free_port()
    log = ["--no-access-log"] if args.no_log else ["--access-log", str(tmp / "o2m-access.log")]
    servers["o2m serve"] = (subprocess.Popen(
        [sys.executable, "-m", "o2m_pub", "serve", "--port", str(port),
         "--workers", str(args.workers), *log],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port,
        "self+children")
    wait_port(port)  # o2m serve makes the certificate the others use, when there is none
    if args.both_tls:  # the same o2m on Twisted's TLS layer, measured in the same run
        port = free_port()
        servers["o2m, Twisted TLS"] = (subprocess.Popen(
            [sys.executable, "-m", "o2m_pub", "serve", "--port", str(port),
             "--workers", str(args.workers), *log],
            cwd=root, env={**env, "O2M_SERVE_TLS": "twisted"}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL), port, "self+children")
    cert, key = root / "keys/tls/cert.pem", root / "keys/tls/key.pem"
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_conf(tmp, port, cert, key, root / "build",
                                               workers=args.workers))
    servers[f"nginx ({args.workers} w)"] = (subprocess.Popen(
        ["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, "children")
    if args.twistd:
        port = free_port()
        servers["twistd web"] = (subprocess.Popen(
            [sys.executable, "-m", "twisted", "web", "--path", str(root / "build"), "--listen",
             f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port, "self")
    for _, port, _ in servers.values():
        wait_port(port)
    time.sleep(1)
    return servers


def memory_run(root: Path, paths: list[str], requests: int) -> float:
    """Microseconds of the server's own work per request, through real TLS in memory:
    o2m's site, channel and TLS layer (Twisted's, as `o2m serve` makes them) fed by an
    OpenSSL client over memory BIOs, keep-alive, `paths` in turn; no sockets, no
    kernel, no wrk on the same cores. The median of five batches."""
    import io
    import itertools

    from OpenSSL import SSL
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from o2m_pub.host.file_cache import FileCache
    from o2m_pub.host.serve import O2MSite, ReloadableTLS, ServeOptions, StaticSite
    from o2m_pub.host.tls import load_pair

    clock = Clock()
    cache = FileCache(root / "build", live_reload=False, max_bytes=1 << 30)
    site = O2MSite(StaticSite(cache, None), ServeOptions(access_log=io.StringIO()), clock)
    tls = ReloadableTLS(load_pair(root / "keys/tls/cert.pem", root / "keys/tls/key.pem"),
                        [b"http/1.1"])
    server = TLSMemoryBIOFactory(tls, False, site, clock=clock).buildProtocol(
        IPv4Address("TCP", "127.0.0.1", 1))
    wire = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
    wire.setTcpNoDelay = lambda on: None
    server.makeConnection(wire)
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_alpn_protos([b"http/1.1"])
    client = SSL.Connection(context, None)
    client.set_connect_state()

    def to_client() -> None:
        clock.advance(0)
        if wire.value():
            client.bio_write(wire.value())
            wire.clear()

    def take_all() -> None:
        while True:
            try:
                client.recv(1 << 20)
            except SSL.WantReadError:
                return

    for _ in range(20):
        try:
            client.do_handshake()
            break
        except SSL.WantReadError:
            try:
                server.dataReceived(client.bio_read(1 << 20))
            except SSL.WantReadError:
                pass
            to_client()
    heads = itertools.cycle([b"GET " + p.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n"
                             for p in paths])

    def batch(count: int) -> float:
        spent = 0.0
        for _ in range(count):
            client.send(next(heads))
            sealed = client.bio_read(1 << 20)
            start = time.perf_counter()
            server.dataReceived(sealed)
            clock.advance(0)  # what waits for the reactor's next turn
            spent += time.perf_counter() - start
            to_client()
            take_all()
            if len(site._log_lines) > 10_000:
                site._log_lines.clear()
        return spent / count * 1e6

    batch(min(len(paths), 20_000) + 200)  # every file in the cache, as after a warm-up
    return sorted(batch(max(1, requests // 5)) for _ in range(5))[2]



def memory_mode(args) -> None:  # noqa: ANN001 - argparse's namespace
    """`--mode memory`: each load through `memory_run`, printed as µs a request."""
    import o2m_pub
    tmp = Path(tempfile.mkdtemp(prefix="o2m-serve-bench-"))
    try:
        root = make_small_site(tmp)
        add_test_files(root)
        loads = [("2 KiB", root, ["/f/head2k"]), ("200 KiB", root, ["/o/object200k"])]
        if args.site is not None:
            big = make_big_site(tmp, args.posts, args.site)
            build = big / "build"
            cached = [p for p in site_paths(build)  # a streamed file needs a reactor
                      if p.endswith("/") or (build / p.lstrip("/")).stat().st_size <= 1 << 20]
            loads.append(("site mix", big, cached))
        print(f"# {dt.datetime.now():%Y-%m-%d %H:%M}, load {os.getloadavg()[0]:.1f}; "
              f"o2m_pub from {Path(o2m_pub.__file__).parent}")
        for label, site_root, paths in loads:
            count = 20_000 if label != "200 KiB" else 4_000
            print(f"  {label:<9} {memory_run(site_root, paths, count):6.1f} µs of the "
                  f"server's own work a request (median of 5 batches)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("files", "mix", "all", "memory"), default="all")
    ap.add_argument("--seconds", type=int, default=10, help="per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="o2m's and nginx's worker processes")
    ap.add_argument("--posts", type=int, default=10000, help="the mix's site")
    ap.add_argument("--site", type=Path, help="reuse this gen_site.py o2m site for the mix")
    ap.add_argument("--warmup", type=int, default=5,
                    help="seconds of the mix before the measured run (0: none)")
    ap.add_argument("--twistd", action="store_true", help="also measure `twistd web`")
    ap.add_argument("--no-log", action="store_true", help="run o2m without its access log")
    ap.add_argument("--both-tls", action="store_true",
                    help="also measure o2m on Twisted's TLS layer (O2M_SERVE_TLS=twisted)")
    args = ap.parse_args()
    if args.mode == "memory":
        memory_mode(args)
        return
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (Debian package {tool})")

    tmp = Path(tempfile.mkdtemp(prefix="o2m-serve-bench-"))
    tmp.chmod(0o755)  # nginx's workers run as www-data
    modes = ["files", "mix"] if args.mode == "all" else [args.mode]
    results: dict[str, dict[str, float]] = {}
    memory: dict[str, list[tuple[int, int]]] = {}
    cpu: dict[str, dict[str, float]] = {}
    try:
        for mode in modes:
            if mode == "files":
                root = make_small_site(tmp)
                add_test_files(root)
                loads = [("2 KiB", "/f/head2k", None, 0), ("200 KiB", "/o/object200k", None, 0)]
            else:
                root = make_big_site(tmp, args.posts, args.site)
                paths = site_paths(root / "build")
                size = sum((root / "build" / p.lstrip("/")).stat().st_size if not p.endswith("/")
                           else (root / "build" / p.lstrip("/") / "index.html").stat().st_size
                           for p in paths)
                print(f"site mix: {len(paths):,} files, {size / 2**20:.0f} MiB", flush=True)
                loads = [("site mix", "/", mix_script(tmp, paths), args.warmup)]
            servers = start_servers(args, tmp, root)
            try:
                for name, (proc, port, which) in servers.items():
                    base = f"https://127.0.0.1:{port}"
                    for label, path, script, warmup in loads:
                        if warmup:
                            wrk(base + path, warmup, args.connections, script)  # fills caches
                        pids = workers_of(proc, which)
                        before = cpu_seconds(pids)
                        rate, count = wrk(base + path, args.seconds, args.connections, script)
                        used = (cpu_seconds(pids) - before) / count * 1e6
                        results.setdefault(name, {})[label] = rate
                        cpu.setdefault(name, {})[label] = used
                        print(f"  {name:<16} {label:<9} {rate:>10,.0f} req/s, "
                              f"{used:.0f} µs of CPU a request", flush=True)
                    if mode == "mix":
                        memory[name] = memory_of(proc, which)
            finally:
                for proc, _, _ in servers.values():
                    proc.send_signal(signal.SIGTERM)
                for proc, _, _ in servers.values():
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    nginx = results[f"nginx ({args.workers} w)"]
    labels = [label for label in ("2 KiB", "200 KiB", "site mix") if label in nginx]
    print(f"# {dt.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; wrk -t2 -c{args.connections} -d{args.seconds}s, "
          f"keep-alive, TLS; {args.workers} workers each")
    print(f"{'server':<18}" + "".join(f" {label + ' req/s':>16} {'x nginx':>8}" for label in labels))
    for name, r in results.items():
        print(f"{name:<18}" + "".join(f" {r[label]:>16,.0f} {r[label] / nginx[label]:>8.2f}"
                                      for label in labels))
    print("server CPU time per request (all workers; less sensitive to other load than "
          "req/s):")
    for name, r in cpu.items():
        print(f"  {name:<16}" + "".join(f" {label} {r[label]:.0f} µs" for label in labels))
    for name, mem in memory.items():
        print(f"{name} memory after the mix, per process (RSS / peak): " + ", ".join(
            f"{rss / 2**20:.0f} / {hwm / 2**20:.0f} MiB" for rss, hwm in mem))


if __name__ == "__main__":
    main()
