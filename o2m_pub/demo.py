"""`o2m demo`: the whole loop on one machine, for real.

Three people, each with a site of their own in a folder of the demo: Ada (the
sample site, many posts), Sam and Mum (a few posts each). Each has a key, a
self-signed certificate whose pin is in their card, and the other two as friends;
Ada keeps Mum in a "family" group. Each site is built, served by a real
`o2m serve` on 127.0.0.1, and fetched by the others with `o2m fetch`, as friends on
three machines would.

The people and their posts are data, not code: `o2m_pub/site/samples/demo/` holds
`demo.toml` (the people, their groups, how the posts are dated) and one `content/`
tree per person, dated afresh by `site.sample_trees` each time the demo runs.

This module makes the world and runs the servers; cli/site.py prints.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from o2m_pub.errors import SiteError
from o2m_pub.site.sample_trees import date_tree, read_sample, sample_text, write_tree

DEMO_PASSPHRASE = b"demo"
DEMO_MARKER = ".o2m-demo"


@dataclass(frozen=True)
class DemoPerson:
    """One of the demo's people; their posts are the tree `samples/demo/SLUG/`."""

    slug: str
    site_name: str
    author: str
    timezone: str
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> members


@dataclass(frozen=True)
class Story:
    """`samples/demo/demo.toml`: the people, and how their posts are dated."""

    people: tuple[DemoPerson, ...]
    anchor: dt.date  # the day the posts' dates are written relative to
    seasonal: dict[str, dict[str, tuple[int, ...]]]  # slug -> tree path -> months


def parse_story(text: str) -> Story:
    """Read demo.toml's text.

    Raises:
        ValueError: a field is missing or of the wrong kind.
    """
    data = tomllib.loads(text)
    anchor = data.get("anchor")
    if not isinstance(anchor, dt.date) or isinstance(anchor, dt.datetime):
        raise ValueError("demo.toml: `anchor` must be a day, e.g. 2026-12-05")
    try:
        people = tuple(
            DemoPerson(p["slug"], p["site_name"], p["author"], p["timezone"],
                   {group: tuple(members) for group, members in p.get("groups", {}).items()})
            for p in data["people"])
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"demo.toml: each of [[people]] needs slug, site_name, author and "
                         f"timezone ({e!r})") from None
    seasonal = {slug: {path: tuple(months) for path, months in posts.items()}
                for slug, posts in data.get("seasonal", {}).items()}
    return Story(people, anchor, seasonal)


STORY = parse_story(sample_text("demo/demo.toml"))
PEOPLE = STORY.people


def demo_content(person: DemoPerson, now: dt.datetime, story: Story = STORY) -> dict[str, bytes]:
    """`person`'s posts (and bundle images) as of `now`: their tree of samples/demo/,
    dated so that it ends the day before `now` in their site's time zone."""
    today = now.astimezone(zoneinfo.ZoneInfo(person.timezone)).date()
    return date_tree(read_sample(f"demo/{person.slug}"), today, anchor=story.anchor,
                     seasonal=story.seasonal.get(person.slug, {}))


CONVERSATION_POST = "content/2026/housewarming.md"  # Ada's, for friends


def conversation_steps(ada: Path) -> list[tuple[str, ...]]:
    """The demo's conversation (PROTOCOL.md §4), as (person, o2m arguments...): Sam
    replies to Ada's housewarming post and Mum reacts to it; Ada's fetch records both
    and her build links them into the feeds of everyone who can read the post; Mum's
    fetch then reads Sam's reply from Sam's site through Ada's link (Sam addressed it to
    Ada alone: the thread, not Sam's feed, brings it), and shows the thread. Ada sees it
    on her own post first, by the id her notification names."""
    from o2m_pub.friends.identity import item_id_key
    from o2m_pub.friends.private_feeds import item_id
    from o2m_pub.protocol.canonical import b64u_encode
    from o2m_pub.reader.model import short_id_for

    key = item_id_key(ada)
    assert key is not None  # made by make_world
    post = short_id_for(b64u_encode(key), item_id(key, CONVERSATION_POST))
    return [
        ("sam", "reply", post, "--text", "Count me in! I'll bring the sourdough."),
        ("mum", "react", post, "\N{PARTY POPPER}"),
        ("sam", "build"), ("mum", "build"),
        ("ada", "fetch"), ("ada", "notifications"), ("ada", "show", post), ("ada", "build"),
        ("mum", "fetch"), ("mum", "show", post),
    ]


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
        shutil.rmtree(root / "content")  # the demo's posts, not init's hello post
        write_tree(demo_content(person, now), root / "content")
        roots[person.slug] = root

    for slug, root in roots.items():
        store = FriendStore(root)
        for other, card in cards.items():
            if other != slug:
                store.add(other, card, now=now)
    for person in PEOPLE:
        for group, members in person.groups.items():
            FriendStore(roots[person.slug]).group_add(group, list(members))
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
