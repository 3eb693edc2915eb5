"""`o2m init` and `o2m demo`: making a new site folder.

The new site's first post is `samples/init/hello-world.md`, dated now.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from o2m_pub.config import CONFIG_NAME, STATE_DIR
from o2m_pub.errors import SiteError
from o2m_pub.site.render import BUILTIN_THEME
from o2m_pub.site.sample_trees import date_now, read_sample, write_tree

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
    folder.mkdir(parents=True, exist_ok=True)
    created = []
    (folder / CONFIG_NAME).write_text(config_text(
        name=name, url=url, author=author or name, timezone=timezone or local_timezone()),
        encoding="utf-8")
    created.append(folder / CONFIG_NAME)
    created += write_tree(date_now(read_sample("init"), now), folder / "content")
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


