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


def test_the_scan_names_the_key_files_as_the_identity_code_does():
    """`scan.has_card` and `scan.has_identity` look for the files the identity code
    reads, by the same names."""
    from o2m_pub import config
    from o2m_pub.friends import identity
    from o2m_pub.site import scan

    assert config.CARD_FILE == scan.CARD_FILE
    assert identity.PENDING_FILE == scan.KEYS_PENDING_FILE
    assert identity.CARD_STATE_FILE == scan.CARD_STATE_FILE
    assert identity.PUBLIC_FILE == scan.PUBLIC_KEY_FILE


_CARD_SCRIPT = (
    "import sys\n"
    "from o2m_pub.cli import main\n"
    "try:\n"
    "    main(['-C', sys.argv[1], 'build', '-q'], prog_name='o2m')\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "print(' '.join(sorted(m for m in sys.modules if m.startswith(('nacl', 'o2m_pub.friends'))"
    " or m == 'o2m_pub.cli.friends')), file=sys.stderr)\n"
)


def _card_imports(root) -> set[str]:  # noqa: ANN001
    result = subprocess.run([sys.executable, "-c", _CARD_SCRIPT, str(root)],
                            capture_output=True, text=True, check=True)
    return set(result.stderr.split())


def test_a_site_with_keys_but_no_identity_imports_no_card_code(site, tmp_path):
    """A public site with keys/ but no card and no identity (keys/tls/ alone, as
    `o2m serve` leaves it) imports neither the card code nor PyNaCl to build; a site
    made by `o2m init` does, and finishes a change of keys/ a crash left half done."""
    site.post("2026/a.md", title="A", body="Hello.", audience="public")
    (site.root / "keys/tls").mkdir(parents=True)
    assert set() == _card_imports(site.root)
    assert "Hello." in site.read("2026/a/index.html")

    (site.root / "keys/.replace.pending").write_text("[]")
    assert "o2m_pub.friends.identity" in _card_imports(site.root)
    assert not (site.root / "keys/.replace.pending").exists()  # finished by the build

    from click.testing import CliRunner

    from o2m_pub.cli import main
    ada = tmp_path / "ada"
    assert 0 == CliRunner().invoke(main, ["init", str(ada), "--name", "Ada", "--url",
                                          "https://ada.example/"]).exit_code
    assert {"o2m_pub.friends.identity", "nacl.signing"} <= _card_imports(ada)
