"""`o2m init` and `o2m demo`: making a new site folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from .config import CONFIG_NAME, STATE_DIR
from .errors import SiteError
from .render import BUILTIN_THEME

GITIGNORE = f"""\
# o2m: build output, local state (decrypted friends' data, caches), secret keys, and
# the private list of friends (their cards are public; whom you know is not)
/build/
/{STATE_DIR}/
/keys/*.secret
/keys/*.key
/keys/tls/
/keys/friends/
/keys/groups.json
"""

DEMO_MARKER = ".o2m-demo"
DEMO_PASSPHRASE = b"demo"  # the demo's keys guard nothing; say so where it is printed


def local_timezone() -> str:
    """The machine's IANA time zone name, or UTC when it can't be told."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if "/" in tz and not tz.startswith("/"):
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def config_text(*, name: str, url: str, author: str, timezone: str) -> str:
    return f"""\
# o2m site settings (docs/CONFIG.md lists them all)
[site]
name = {_toml_string(name)}
author = {_toml_string(author)}
# The address where build/ is published; links in feeds and cards use it.
url = {_toml_string(url)}
description = ""
language = "en"
timezone = {_toml_string(timezone)}
# Who may read a post that names no `audience:`: public, friends, a group or friends' names.
# Private by default: only posts that say `audience: public` go on the public site.
default_audience = "friends"
posts_per_page = 10
feed_items = 20

# Groups of friends, usable as an audience:
# [groups]
# family = ["alice", "bob"]
"""


def refuse_existing_site(folder: Path) -> None:
    """init never overwrites: refuse a folder that is a site or holds site files.

    Raises:
        SiteError: naming what is in the way.
    """
    if (folder / CONFIG_NAME).exists():
        raise SiteError(f"{folder}/{CONFIG_NAME} exists: this is already an o2m site",
                        hint="run `o2m build` there, or pick an empty folder")
    clashes = [p for p in ("content", "site_templates") if (folder / p).exists()
               and any((folder / p).iterdir())]
    if clashes:
        raise SiteError(f"{folder}/{clashes[0]} already exists and is not empty",
                        hint="move it away or pick an empty folder; init never overwrites")


def init_site(folder: Path, *, name: str, url: str, author: str | None = None,
              timezone: str | None = None, now: dt.datetime) -> list[Path]:
    """Create a new site in `folder` (made if missing) and return what was created.

    Raises:
        SiteError: the folder already holds a site, or files init would overwrite.
    """
    refuse_existing_site(folder)
    from .sample import hello_post

    folder.mkdir(parents=True, exist_ok=True)
    created = []
    (folder / CONFIG_NAME).write_text(config_text(
        name=name, url=url, author=author or name, timezone=timezone or local_timezone()),
        encoding="utf-8")
    created.append(folder / CONFIG_NAME)
    post = folder / "content" / f"{now.year:04d}" / "hello-world.md"
    post.parent.mkdir(parents=True, exist_ok=True)
    post.write_text(hello_post(now), encoding="utf-8")
    created.append(post)
    shutil.copytree(str(BUILTIN_THEME), folder / "site_templates",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    created.append(folder / "site_templates")
    keys = folder / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    created.append(keys)
    gitignore = folder / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
        created.append(gitignore)
    return created


def _add_demo_friends(folder: Path, now: dt.datetime) -> None:
    """Two made-up friends with real cards, so the demo writes real encrypted feeds
    (their secret keys are thrown away: nobody can read those feeds)."""
    from nacl.public import PrivateKey
    from nacl.signing import SigningKey

    from .cards import make_card
    from .friends import FriendStore

    store = FriendStore(folder)
    for name, title in (("sam", "Sam"), ("mum", "Mum")):
        card = make_card(SigningKey.generate(), name=title, url=f"https://{name}.example/",
                         box_pk=bytes(PrivateKey.generate().public_key), tls_pin=None,
                         created=now)
        store.add(name, card, now=now)
    store.group_add("family", ["mum"])


def make_demo_site(folder: Path, *, now: dt.datetime) -> int:
    """A fresh demo site in `folder` (a previous demo there is replaced); returns the
    number of post files written.

    Raises:
        SiteError: `folder` exists and is not a demo made by o2m.
    """
    if folder.exists():
        if not (folder / DEMO_MARKER).exists():
            raise SiteError(f"{folder} exists and is not an o2m demo",
                            hint="pass another folder: `o2m demo DIR`")
        shutil.rmtree(folder)
    from .sample import write_demo_site_content

    init_site(folder, name="Ada's notebook", url="https://ada.example/", author="Ada",
              timezone="Europe/London", now=now)
    from nacl.pwhash import argon2id

    from .config import load
    from .owner import create_owner
    create_owner(folder, load(folder), DEMO_PASSPHRASE, now=now,
                 opslimit=argon2id.OPSLIMIT_INTERACTIVE, memlimit=argon2id.MEMLIMIT_INTERACTIVE)
    _add_demo_friends(folder, now)
    (folder / DEMO_MARKER).write_text("made by `o2m demo`; safe to delete\n")
    for p in (folder / "content").rglob("*.md"):
        p.unlink()
    return write_demo_site_content(folder / "content", now)
