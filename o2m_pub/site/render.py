"""Jinja2 pages of the public site (docs/THEMING.md is the templates' contract).

Templates come from the site's `site_templates/`, falling back to the built-in theme,
so an override is one file. Each page kind gets a fingerprint of every template it
can reach, so a template edit re-renders exactly the pages that use it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import jinja2
from jinja2 import meta

from o2m_pub.config import SiteConfig

BUILTIN_THEME = resources.files("o2m_pub.site") / "theme"
PAGE_TEMPLATES = ("post.html", "index.html", "tag.html", "tags.html", "archive.html",
                  "archive_year.html", "404.html")


def theme_dirs(site_templates: Path) -> list[str]:
    return [str(site_templates), str(BUILTIN_THEME)]


def _datefmt(value: dt.datetime, fmt: str = "%-d %B %Y") -> str:
    return value.strftime(fmt)


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="seconds")


def make_environment(site_templates: Path, cache_dir: Path | None = None) -> jinja2.Environment:
    """The site's Jinja2 environment; with `cache_dir`, compiled templates are kept
    there between builds (compiling them costs more than a one-post rebuild)."""
    cache = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = jinja2.FileSystemBytecodeCache(str(cache_dir))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(theme_dirs(site_templates)), bytecode_cache=cache,
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["datefmt"] = _datefmt
    env.filters["iso"] = _iso
    return env


def template_fingerprints(env: jinja2.Environment) -> dict[str, str]:
    """For each page template, a hash of its source and of every template it extends,
    includes or imports (transitively)."""
    sources: dict[str, str] = {}
    refs: dict[str, set[str]] = {}

    def visit(name: str) -> None:
        if name in sources:
            return
        source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        sources[name] = source
        refs[name] = {r for r in meta.find_referenced_templates(env.parse(source, name, filename))
                      if r}
        for r in refs[name]:
            visit(r)

    out = {}
    for page in PAGE_TEMPLATES:
        visit(page)
        seen, todo = set(), [page]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(refs[name])
        h = hashlib.sha256()
        for name in sorted(seen):
            h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
        out[page] = h.hexdigest()[:32]
    return out


def linker(page_dir: str, *, root: str | None = None) -> Callable[[str], str]:
    """`link(path)` for a page in `page_dir` ("" for the site root, "2026/trip/" for a
    post): relative links, naming index.html for folders (docs/THEMING.md). With `root`
    (the 404 page, served at any path) links are root-relative instead."""
    prefix = root if root is not None else "../" * page_dir.count("/")

    def link(path: str) -> str:
        if path == "" or path.endswith("/"):
            return f"{prefix}{path}index.html"
        return f"{prefix}{path}"

    return link


def webmention_endpoint(config: SiteConfig) -> str:
    """The Webmention endpoint every page names (PROTOCOL.md §1.6): the external one
    of ``webmention_endpoint``, else `o2m serve`'s at the site's own address; "" when
    the site takes none."""
    if not config.webmention:
        return ""
    return config.webmention_endpoint or config.url + ".well-known/webmention"


class PageRenderer:
    """Renders pages from prepared context; one per build."""

    def __init__(self, env: jinja2.Environment, config: SiteConfig,
                 asset_versions: dict[str, str], profile: dict[str, str] | None = None) -> None:
        self.env, self.config, self.assets = env, config, asset_versions
        self.site = {
            "name": config.name, "author": config.author, "description": config.description,
            "url": config.url, "language": config.language, "timezone": config.timezone,
            # the author's picture (its path under the site) and bio, from the card
            # (PROTOCOL.md §2.4): the desk's profile page and `o2m card --renew` set them
            "avatar": "", "bio": "", **(profile or {}),
        }
        self.site["webmention"] = webmention_endpoint(config)

    def render(self, template: str, page_dir: str, canonical: str | None, *,
               root: str | None = None, **context: Any) -> str:
        link = linker(page_dir, root=root)

        def asset(name: str) -> str:
            version = self.assets.get(name)
            if version is None:
                raise jinja2.TemplateError(f"asset({name!r}): no such file in static/")
            return f"{link('static/' + name)}?v={version}"

        return self.env.get_template(template).render(
            site=self.site, link=link, asset=asset, canonical=canonical, **context)
