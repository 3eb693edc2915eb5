"""What a build imports: the Webmention code (and html.parser with it) only for a site
that has stored mentions (approved ones on a post's page: tests/site/test_mentions.py)."""

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
    "print(' '.join(sorted(m for m in sys.modules if 'mention' in m or m == 'html.parser')),"
    " file=sys.stderr)\n"
)


def _build_imports(root) -> list[str]:  # noqa: ANN001
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(root)], capture_output=True,
                            text=True, check=True)
    return result.stderr.split()


def test_the_build_names_the_mention_store_as_the_store_does():
    """The build looks for the store by its file name before importing its code: the
    same name the store uses."""
    assert mentions.DB_NAME == build_mod.MENTIONS_DB


def test_a_build_without_a_mention_store_imports_no_mention_code(site):
    """No .o2m/mentions.db: the build imports neither site.mentions nor mention_plan nor
    html.parser (the check sees them once a store exists)."""
    site.post("2026/a.md", title="A", body="Hello.")
    assert [] == _build_imports(site.root)
    with mentions.MentionStore(site.root):
        pass  # creates .o2m/mentions.db
    loaded = _build_imports(site.root)
    assert {"o2m_pub.site.mentions", "o2m_pub.site.mention_plan"} <= set(loaded)
