"""Highlighted code blocks kept between builds (.o2m/highlight.db): a new process finds
a block there instead of compiling its lexer, with the same HTML byte for byte; an
entry or a file that is damaged is ignored and made again."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from o2m_pub.site import code_cache
from o2m_pub.site.build import build_site
from o2m_pub.site.markup import _highlight, highlight

CODE = "def f(x):\n    return [i * 2 for i in range(x)]  # <doubles>\n"
BODY = f"Some code:\n\n```python\n{CODE}```\n\nThe end."


@pytest.fixture(autouse=True)
def _cold_memory():
    """No block from another test in this process's memory (highlight's lru), and no
    cache in use after the test."""
    highlight.cache_clear()
    yield
    code_cache.use(None)
    highlight.cache_clear()


@pytest.fixture
def cache(tmp_path):
    """The cache at a fresh path for this test; none again (and a cold lru) after."""
    path = tmp_path / ".o2m/highlight.db"
    highlight.cache_clear()
    code_cache.use(path)
    yield path
    code_cache.use(None)
    highlight.cache_clear()


def _in_a_new_process(path: Path) -> tuple[str, bool]:
    """highlight(CODE, "python") in a fresh interpreter using the cache at `path`:
    its HTML, and whether the Python lexer was imported."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from o2m_pub.site import code_cache
        from o2m_pub.site.markup import highlight
        code_cache.use(Path({str(path)!r}))
        sys.stdout.write(highlight({CODE!r}, "python"))
        sys.stdout.write("\\0" + str("pygments.lexers.python" in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    html, imported = out.rsplit("\0", 1)
    return html, imported == "True"


def test_a_build_keeps_its_blocks_and_a_new_process_uses_them(site):
    """After a build, a new process gets the block's HTML from the cache, byte for
    byte what Pygments makes, without importing (let alone compiling) the lexer; a
    process with no cache does import it (the check can fail)."""
    site.post("2026/code.md", body=BODY)
    build_site(site.root)
    path = site.root / ".o2m/highlight.db"
    assert 1 == sqlite3.connect(path).execute("SELECT count(*) FROM blocks").fetchone()[0]
    html, imported = _in_a_new_process(path)
    assert _highlight(CODE, "python") == html
    assert not imported
    assert (_highlight(CODE, "python"), True) == _in_a_new_process(
        site.root / ".o2m/elsewhere.db")
    assert 0o600 == path.stat().st_mode & 0o777


def test_the_page_is_the_same_with_the_cache_and_without(site):
    """The post's page built from a cold cache and again with every block from the
    cache (a fresh build state, the cache kept): the same bytes."""
    site.post("2026/code.md", body=BODY + "\n\n```\nplain <text>\n```\n\n```nosuchlang\nx\n```")
    build_site(site.root)
    page = next(site.build_dir.glob("2026/*/index.html"))
    first = page.read_bytes()
    assert b'class="highlight"' in first
    (site.root / ".o2m/build.db").unlink()
    page.unlink()
    highlight.cache_clear()  # this process's memory aside: the cache on disk is read
    build_site(site.root)
    assert first == page.read_bytes()


def test_an_entry_that_fails_its_check_is_ignored_and_made_again(cache):
    """An entry whose HTML was changed behind the cache's back is not served: the block
    is highlighted again and the entry rewritten."""
    key = code_cache.key_of(CODE, "python")
    good = highlight(CODE, "python")
    code_cache.flush()
    code_cache.use(cache)  # the next build: the cache is no longer empty
    assert good == code_cache.get(key)
    db = sqlite3.connect(cache)
    db.execute("UPDATE blocks SET html='<p>forged</p>'")
    db.commit()
    assert code_cache.get(key) is None
    highlight.cache_clear()
    assert good == highlight(CODE, "python")
    code_cache.flush()
    assert good == code_cache.get(key)


def test_a_damaged_cache_file_is_replaced(tmp_path):
    """A cache file that is not a database: highlighting works, and the file is made
    anew and used."""
    path = tmp_path / ".o2m/highlight.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database at all" * 200)
    highlight.cache_clear()
    code_cache.use(path)
    try:
        assert _highlight(CODE, "python") == highlight(CODE, "python")
        code_cache.flush()
        code_cache.use(path)  # the next build
        assert _highlight(CODE, "python") == code_cache.get(code_cache.key_of(CODE, "python"))
    finally:
        code_cache.use(None)
        highlight.cache_clear()


def test_a_first_build_skips_its_lookups_and_the_next_one_reads(cache):
    """While the cache was empty when the process opened it, lookups are skipped (they
    would all miss: a first build); at the next build's start it is looked at again."""
    key = code_cache.key_of(CODE, "python")
    highlight(CODE, "python")
    code_cache.flush()
    assert code_cache.get(key) is None  # skipped: empty when opened
    code_cache.use(cache)
    assert highlight(CODE, "python") == code_cache.get(key)


def test_the_key_holds_the_language_and_the_code(cache):
    """Another language or another code is another entry: a hit is never another
    block's HTML."""
    keys = {code_cache.key_of(CODE, "python"), code_cache.key_of(CODE, "ruby"),
            code_cache.key_of(CODE + " ", "python"), code_cache.key_of(CODE, "")}
    assert 4 == len(keys)
    assert highlight(CODE, "python") != highlight(CODE, "ruby")
