"""`o2m init` and `o2m demo`: making a new site folder.

The new site's first post is `samples/init/hello-world.md`, dated now. `o2m init`
makes the site aside (`built_aside`) and moves it into place only once everything is
there, so a refused or interrupted init leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from o2m_pub.config import CONFIG_NAME, STATE_DIR
from o2m_pub.errors import SiteError
from o2m_pub.site.render import BUILTIN_THEME
from o2m_pub.site.sample_trees import date_now, read_sample, write_tree

THEME_README = """\
# Your theme

Your site is built with o2m's own theme. To change a page, put a template of the same
name in this folder: o2m uses it instead of its own, and keeps using its own for every
other file (later versions of o2m improve those).

Start from a copy of o2m's file. For this installation, they are in:

    {theme}

Pages: post.html, index.html, tag.html, tags.html, archive.html, archive_year.html and
404.html, all extending base.html; _macros.html and _mentions.html hold pieces they
share. Files in static/ (the stylesheet, the icon) are published under static/; one put
in a static/ folder here replaces o2m's file of the same name. docs/THEMING.md in o2m's
source says what each template is given and what readers and clients rely on.
"""

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


def config_text(*, name: str, url: str, author: str, timezone: str,
                description: str = "") -> str:
    return f"""\
# o2m site settings (docs/CONFIG.md lists them all)
[site]
name = {_toml_string(name)}
author = {_toml_string(author)}
# The address where build/ is published; links in feeds and cards use it.
url = {_toml_string(url)}
# One line about the site, for search engines and feed readers (the pages' meta description).
description = {_toml_string(description)}
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
    clashes = [p for p in ("content", "site_templates", "keys") if (folder / p).exists()
               and (not (folder / p).is_dir() or any((folder / p).iterdir()))]
    if clashes:
        raise SiteError(f"{folder}/{clashes[0]} already exists and is not empty",
                        hint="move it away or pick an empty folder; init never overwrites")


def check_site_url(url: str) -> str:
    """The URL given to `o2m init --url`, with its trailing slash; the one wording for
    every mistake in it (the card needs https://, the config an absolute address).

    Raises:
        SiteError: not an absolute https:// address of a host.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (parts is None or parts.scheme != "https" or not parts.hostname or parts.query
            or parts.fragment or parts.username or any(c.isspace() for c in text)):
        raise SiteError(f"{url!r} is not an https:// address where the site can be "
                        "published",
                        hint="e.g. --url https://ada.example/ (friends fetch your feeds "
                             "there, over TLS)")
    text = text if text.endswith("/") else text + "/"
    from o2m_pub.protocol.cards import InvalidCardFieldError, check_card_url
    try:  # the card's rule (§2.4) decides what the check above does not name
        check_card_url(text)
    except InvalidCardFieldError as e:
        raise SiteError(f"{url!r} cannot be a card's address: {e.reason}",
                        hint="e.g. --url https://ada.example/ (friends fetch your feeds "
                             "there, over TLS)") from None
    return text


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def built_aside(folder: Path) -> Iterator[Path]:
    """A fresh, empty folder to make a new site in, moved to `folder` when the block
    ends without an error, and removed (with any parent folders made for it) when it
    does not: a refused or interrupted `o2m init` leaves nothing behind.

    A `folder` that does not exist yet is made aside in its parent and renamed into
    place in one step; in an existing (empty enough) folder, each new entry is renamed
    in, and an existing `.gitignore` is kept.
    """
    folder = folder.absolute()
    made_parents = [p for p in folder.parents if not p.exists()]
    if folder.exists():
        work = Path(tempfile.mkdtemp(prefix=".o2m-init-", dir=folder))
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.o2m-init-", dir=folder.parent))
    try:
        yield work
        if work.parent == folder:
            for entry in sorted(work.iterdir()):
                target = folder / entry.name
                if entry.name == ".gitignore" and target.exists():
                    continue  # the owner's own: kept as it is
                os.rename(entry, target)  # (an empty folder there is replaced)
            shutil.rmtree(work)
        else:
            os.chmod(work, 0o777 & ~_umask())  # mkdtemp made it 0700
            os.rename(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for parent in made_parents:  # the ones made for it, innermost first
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise


def init_site(folder: Path, *, name: str, url: str, author: str | None = None,
              timezone: str | None = None, description: str = "",
              now: dt.datetime) -> list[Path]:
    """Create a new site in `folder` (made if missing) and return what was created.

    Raises:
        SiteError: the folder already holds a site, or files init would overwrite.
    """
    refuse_existing_site(folder)
    folder.mkdir(parents=True, exist_ok=True)
    created = []
    (folder / CONFIG_NAME).write_text(config_text(
        name=name, url=url, author=author or name, timezone=timezone or local_timezone(),
        description=description), encoding="utf-8")
    created.append(folder / CONFIG_NAME)
    created += write_tree(date_now(read_sample("init"), now), folder / "content")
    # the theme's own files stay in o2m: a copy here would override every one of them,
    # and no later fix of the built-in theme would reach the site (newcomer review 20)
    templates = folder / "site_templates"
    templates.mkdir(exist_ok=True)
    (templates / "README.md").write_text(THEME_README.format(theme=BUILTIN_THEME),
                                         encoding="utf-8")
    created.append(templates)
    keys = folder / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    created.append(keys)
    gitignore = folder / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
        created.append(gitignore)
    return created


