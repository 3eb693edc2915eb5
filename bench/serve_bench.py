"""Throughput of `o2m serve` beside nginx (one worker) and plain `twistd web`, all over
TLS on this machine, serving the same build/, measured in one run with wrk.

    python bench/serve_bench.py [--seconds 10] [--connections 16] [--workers N]

Needs wrk and nginx (Debian packages wrk, nginx). Each server gets the same
self-signed P-256 certificate; files: a 2 KiB feed head (f/) and a 200 KiB object
(o/), requested over keep-alive connections. o2m runs with its security headers
and access log on (to a file), nginx with its access log to a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
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
sys.path.insert(0, str(HERE.parent))

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
    types {{ application/json json; }}
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


def wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or "Non-2xx" in out:
        sys.exit(f"wrk {url}: errors, not a measurement:\n{out}")
    return float(m.group(1))


def make_site(tmp: Path) -> Path:
    env = {**os.environ, "O2M_PASSPHRASE": "bench", "O2M_KDF": "interactive"}
    root = tmp / "site"
    subprocess.run([sys.executable, "-m", "o2m_pub", "init", str(root), "--name", "Bench",
                    "--url", "https://bench.example/"], check=True, env=env,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "o2m_pub", "build"], cwd=root, check=True, env=env,
                   capture_output=True)
    build = root / "build"
    (build / "f").mkdir(exist_ok=True)
    (build / "o").mkdir(exist_ok=True)
    (build / "f" / "head2k").write_bytes(os.urandom(2048))
    (build / "o" / "object200k").write_bytes(os.urandom(200 * 1024))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-log", action="store_true", help="run o2m without its access log")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (Debian package {tool})")

    tmp = Path(tempfile.mkdtemp(prefix="o2m-serve-bench-"))
    tmp.chmod(0o755)  # nginx's workers run as www-data
    root = make_site(tmp)
    env = {**os.environ, "O2M_PASSPHRASE": "bench"}
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        port = free_port()
        servers["o2m serve"] = (subprocess.Popen(
            [sys.executable, "-m", "o2m_pub", "serve", "--port", str(port),
             "--workers", str(args.workers), *(["--no-access-log"] if args.no_log else ["--access-log", str(tmp / "o2m-access.log")])],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port)
        wait_port(port)
        cert, key = root / "keys/tls/cert.pem", root / "keys/tls/key.pem"
        port = free_port()
        (tmp / "nginx.conf").write_text(nginx_conf(tmp, port, cert, key, root / "build"))
        servers["nginx (1 worker)"] = (subprocess.Popen(
            ["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port)
        port = free_port()
        servers["twistd web"] = (subprocess.Popen(
            [sys.executable, "-m", "twisted", "web", "--path", str(root / "build"), "--listen",
             f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port)
        for _, port in servers.values():
            wait_port(port)
        time.sleep(1)
        results: dict[str, dict[str, float]] = {}
        for name, (_, port) in servers.items():
            base = f"https://127.0.0.1:{port}"
            results[name] = {
                "2 KiB": wrk(base + "/f/head2k", args.seconds, args.connections),
                "200 KiB": wrk(base + "/o/object200k", args.seconds, args.connections),
            }
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in servers.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    nginx = results["nginx (1 worker)"]
    print(f"# {dt.date.today()}, {os.cpu_count()} CPUs, wrk -t2 -c{args.connections} "
          f"-d{args.seconds}s, keep-alive, TLS; o2m workers: {args.workers}")
    print(f"{'server':<20} {'2 KiB req/s':>12} {'x nginx':>8} {'200 KiB req/s':>14} {'x nginx':>8}")
    for name, r in results.items():
        print(f"{name:<20} {r['2 KiB']:>12,.0f} {r['2 KiB'] / nginx['2 KiB']:>8.2f} "
              f"{r['200 KiB']:>14,.0f} {r['200 KiB'] / nginx['200 KiB']:>8.2f}")


if __name__ == "__main__":
    main()
