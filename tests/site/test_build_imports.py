"""What a build imports: the Webmention code (and html.parser with it) only for a site
that has stored mentions (approved ones on a post's page: tests/site/test_mentions.py);
Python-Markdown only when a post is rendered, not to write pages again."""

from __future__ import annotations

import subprocess
import sys

from o2m_pub.site import build as build_mod
from o2m_pub.site import mentions

_SCRIPT = (
    "import sys\n"
    "from o2m_pub.cli import main\n"
    "try:\n"
    "    main(['-C', sys.argv[1], 'build', '-q'], prog_name='o2m')\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
)


def _build_imports(root) -> set[str]:  # noqa: ANN001
    """The modules an `o2m build` of the site at `root` loaded, in a fresh process."""
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(root)], capture_output=True,
                            text=True, check=True)
    return set(result.stderr.split())


def _mention_code(loaded: set[str]) -> set[str]:
    return {m for m in loaded if "mention" in m or m == "html.parser"}


def test_the_build_names_the_mention_store_as_the_store_does():
    """The build looks for the store by its file name before importing its code: the
    same name the store uses."""
    assert mentions.DB_NAME == build_mod.MENTIONS_DB


def test_a_build_without_a_mention_store_imports_no_mention_code(site):
    """No .o2m/mentions.db: the build imports neither site.mentions nor mention_plan nor
    html.parser (the check sees them once a store exists)."""
    site.post("2026/a.md", title="A", body="Hello.")
    assert set() == _mention_code(_build_imports(site.root))
    with mentions.MentionStore(site.root):
        pass  # creates .o2m/mentions.db
    loaded = _build_imports(site.root)
    assert {"o2m_pub.site.mentions", "o2m_pub.site.mention_plan"} <= _mention_code(loaded)


def test_pages_written_again_with_no_post_rendered_import_no_markdown(site):
    """A template edited: every page is written again, their links to posts and media
    resolved from the rendered bodies' markers (`site.markers`), and no post is rendered,
    so Python-Markdown (and PyYAML) stay unloaded; a post edited loads them."""
    site.post("2026/a.md", title="A", body="Hello.")
    site.post("2026/b.md", title="B", body="See [A](a.md).")
    assert "markdown" in _build_imports(site.root)  # the first build renders both
    templates = site.root / "site_templates"
    templates.mkdir(exist_ok=True)
    (templates / "post.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>by hand</p>{{ post.html }}'
        '{% endblock %}')

    loaded = _build_imports(site.root)

    assert {"markdown", "yaml", "o2m_pub.site.markup"}.isdisjoint(loaded)
    assert "o2m_pub.site.markers" in loaded
    page = site.read("2026/b/index.html")
    assert "by hand" in page and 'href="../../2026/a/index.html"' in page
    assert "__O2M_" not in page
    site.post("2026/b.md", title="B", body="See [A](a.md) again.")
    assert "markdown" in _build_imports(site.root)
