"""The desk's pages: Jinja2 templates in `theme/`, autoescaped, strict about undefined
values. Every value is escaped except a body already cleaned by nh3 (passed as
`markupsafe.Markup`). The stylesheet and the one script are files of `theme/`, served
by the desk itself (CSP: style-src and script-src 'self')."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

THEME_DIR = Path(__file__).parent / "theme"
STATIC = {"desk.css": "text/css; charset=utf-8", "desk.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}


@lru_cache(maxsize=1)
def _environment():  # noqa: ANN202 - jinja2.Environment, made on first use
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(THEME_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    env.filters["query"] = lambda pairs: urlencode([(k, v) for k, v in pairs if v])
    return env


def render(template: str, **context: Any) -> bytes:
    """One page as UTF-8 bytes."""
    return _environment().get_template(template).render(**context).encode()


@lru_cache(maxsize=None)
def static_file(name: str) -> bytes | None:
    """A file of the theme the desk serves to everyone (it holds no data)."""
    if name not in STATIC:
        return None
    return (THEME_DIR / name).read_bytes()
