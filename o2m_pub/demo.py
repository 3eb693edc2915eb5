"""`o2m demo`: the whole loop on one machine, for real.

Three people, each with a site of their own in a folder of the demo: Ada (the
sample site, many posts), Sam and Mum (a few posts each). Each has a key, a
self-signed certificate whose pin is in their card, and the other two as friends;
Ada keeps Mum in a "family" group. Each site is built, served by a real
`o2m serve` on 127.0.0.1, and fetched by the others with `o2m fetch`, as friends on
three machines would.

This module makes the world and runs the servers; cli/site.py prints.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from o2m_pub.errors import SiteError

DEMO_PASSPHRASE = b"demo"
DEMO_MARKER = ".o2m-demo"


@dataclass(frozen=True)
class Person:
    slug: str
    site_name: str
    author: str
    timezone: str


PEOPLE = (
    Person("ada", "Ada's notebook", "Ada", "Europe/London"),
    Person("sam", "Sam's workshop", "Sam", "Europe/Berlin"),
    Person("mum", "Mum's kitchen", "Mum", "Europe/London"),
)

# Sam's and Mum's posts: (days ago, file name, audience, title, body).
_FRIEND_POSTS = {
    "sam": [
        (9, "new-bench.md", "public", "A new workbench",
         "Finally built the bench from the offcuts pile. Dovetails are *almost* tight."),
        (4, "sourdough-tips.md", "friends", "For Ada: sourdough tips",
         "Ada, since you asked: feed the starter twice a day for a week before baking, "
         "and keep it somewhere warm. Only friends see this one."),
        (1, "saturday.md", "friends", None,
         "Anyone up for a walk on Saturday? Thinking of the Ridgeway again."),
    ],
    "mum": [
        (12, "plum-jam.md", "public", "Plum jam",
         "Eight jars this year. The recipe is the one from your gran's card box."),
        (2, "sunday-lunch.md", "friends", "Sunday lunch",
         "Lunch at ours on Sunday, one o'clock. Bring the bread, Ada!"),
    ],
}


def _post_text(title: str | None, date: dt.datetime, audience: str, body: str) -> str:
    head = ["---"]
    if title:
        head.append(f"title: {json.dumps(title)}")  # JSON strings are YAML strings
    head += [f"date: {date.isoformat(timespec='seconds')}", f"audience: {audience}", "---"]
    return "\n".join(head) + "\n\n" + body + "\n"


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (each site's URL names its port before it serves)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_world(folder: Path, *, now: dt.datetime, ports: list[int]) -> dict[str, Path]:
    """Three befriended sites under `folder` (a previous demo there is replaced);
    returns each person's site folder by slug.

    Raises:
        SiteError: `folder` exists and is not a demo made by o2m.
    """
    from nacl.pwhash import argon2id

    from o2m_pub.config import load
    from o2m_pub.friends.friend_store import FriendStore
    from o2m_pub.friends.identity import create_owner, write_own_card
    from o2m_pub.host.tls import ensure_self_signed
    from o2m_pub.site.sample import write_demo_site_content
    from o2m_pub.site.scaffold import init_site

    if folder.exists():
        if not (folder / DEMO_MARKER).exists():
            raise SiteError(f"{folder} exists and is not an o2m demo",
                            hint="pass another folder: `o2m demo DIR`")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / DEMO_MARKER).write_text("made by `o2m demo`; safe to delete\n")
    roots: dict[str, Path] = {}
    cards = {}
    for person, port in zip(PEOPLE, ports):
        root = folder / person.slug
        init_site(root, name=person.site_name, url=f"https://127.0.0.1:{port}/",
                  author=person.author, timezone=person.timezone, now=now)
        identity, _ = create_owner(root, load(root), DEMO_PASSPHRASE, now=now,
                                   opslimit=argon2id.OPSLIMIT_INTERACTIVE,
                                   memlimit=argon2id.MEMLIMIT_INTERACTIVE)
        pair, _ = ensure_self_signed(root, ["127.0.0.1"], now)
        cards[person.slug] = write_own_card(root, identity, load(root), now=now,
                                            tls_pin=pair.pin)
        for p in (root / "content").rglob("*.md"):
            p.unlink()
        roots[person.slug] = root

    write_demo_site_content(roots["ada"] / "content", now)
    for slug, posts in _FRIEND_POSTS.items():
        for days, name, audience, title, body in posts:
            date = (now - dt.timedelta(days=days)).replace(microsecond=0)
            (roots[slug] / "content" / name).write_text(_post_text(title, date, audience, body),
                                                        encoding="utf-8")
    for slug, root in roots.items():
        store = FriendStore(root)
        for other, card in cards.items():
            if other != slug:
                store.add(other, card, now=now)
    FriendStore(roots["ada"]).group_add("family", ["mum"])
    return roots


@dataclass
class DemoServer:
    slug: str
    process: subprocess.Popen
    url: str


def start_servers(roots: dict[str, Path], ports: list[int],
                  deadline: float = 60) -> list[DemoServer]:
    """One real `o2m serve` per site, each in its own process; returns once all listen."""
    env = {**os.environ, "O2M_PASSPHRASE": DEMO_PASSPHRASE.decode(), "PYTHONUNBUFFERED": "1"}
    started = []
    for (slug, root), port in zip(roots.items(), ports):
        process = subprocess.Popen(
            [sys.executable, "-m", "o2m_pub", "-C", str(root), "serve", "--port", str(port),
             "--workers", "1", "--no-access-log"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=env)
        started.append((slug, process))
    servers = []
    end = time.monotonic() + deadline
    try:
        for slug, process in started:
            lines = []
            while time.monotonic() < end:
                line = process.stdout.readline()
                if not line:
                    raise SiteError(f"the demo's server for {slug} did not start: "
                                    + "".join(lines).strip())
                lines.append(line)
                m = re.search(r"serving .* at (https://\S+)", line)
                if m:
                    servers.append(DemoServer(slug, process, m.group(1)))
                    break
    except BaseException:
        stop_servers([DemoServer(slug, p, "") for slug, p in started])
        raise
    return servers


def stop_servers(servers: list[DemoServer]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
        if server.process.stdout:
            server.process.stdout.close()


def o2m_command(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI for one of the demo's people (their passphrase is the demo's)."""
    env = {**os.environ, "O2M_PASSPHRASE": DEMO_PASSPHRASE.decode(), "PYTHONUNBUFFERED": "1",
           "COLUMNS": os.environ.get("COLUMNS", "100")}
    return subprocess.run([sys.executable, "-m", "o2m_pub", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          timeout=300)
