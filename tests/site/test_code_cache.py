"""Highlighted code blocks kept between builds (.o2m/highlight.db): a new process finds
a block there instead of compiling its lexer, with the same HTML byte for byte; an
entry or a file that is damaged is ignored and made again; the file stays within its
budget."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from o2m_pub.site.build import build_site
from o2m_pub.site.code_cache import CodeCache, prune
from o2m_pub.site.markup import MarkdownRenderer, block_key, highlight

_highlight = highlight.__wrapped__  # Pygments' own output, past this process's lru

CODE = "def f(x):\n    return [i * 2 for i in range(x)]  # <doubles>\n"
BODY = f"Some code:\n\n```python\n{CODE}```\n\nThe end."


@pytest.fixture(autouse=True)
def _cold_memory():
    """No block from another test in this process's memory (highlight's lru)."""
    highlight.cache_clear()
    yield
    highlight.cache_clear()


@pytest.fixture
def cache(tmp_path):
    """A store at a fresh path."""
    return CodeCache(tmp_path / ".o2m/highlight.db")


def _in_a_new_process(path: Path) -> tuple[str, bool]:
    """highlight(CODE, "python") in a fresh interpreter using the cache at `path`:
    its HTML, and whether the Python lexer was imported."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from o2m_pub.site.code_cache import CodeCache
        from o2m_pub.site.markup import MarkdownRenderer
        renderer = MarkdownRenderer(code_cache=CodeCache(Path({str(path)!r})))
        sys.stdout.write(renderer.highlight({CODE!r}, "python"))
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
    """An entry whose HTML was changed behind the store's back is not served: the block
    is highlighted again and the entry rewritten."""
    key = block_key(CODE, "python")
    good = MarkdownRenderer(code_cache=cache).highlight(CODE, "python")
    cache.flush()
    cache.next_build()  # the store is no longer empty
    assert good == cache.get(key)
    db = sqlite3.connect(cache.path)
    db.execute("UPDATE blocks SET html='<p>forged</p>'")
    db.commit()
    assert cache.get(key) is None
    highlight.cache_clear()
    assert good == MarkdownRenderer(code_cache=cache).highlight(CODE, "python")
    cache.flush()
    assert good == cache.get(key)


def test_a_damaged_cache_file_is_replaced(tmp_path):
    """A cache file that is not a database: highlighting works, and the file is made
    anew and used."""
    path = tmp_path / ".o2m/highlight.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not a database at all" * 200)
    store = CodeCache(path)
    assert _highlight(CODE, "python") == MarkdownRenderer(code_cache=store).highlight(
        CODE, "python")
    store.flush()
    store.next_build()
    assert _highlight(CODE, "python") == store.get(block_key(CODE, "python"))


def test_a_store_that_cannot_be_opened_is_off_and_highlighting_works(tmp_path):
    """A state folder that is a file: the store turns itself off for the process and
    every block is still highlighted."""
    (tmp_path / ".o2m").write_text("not a folder")
    store = CodeCache(tmp_path / ".o2m/highlight.db")
    renderer = MarkdownRenderer(code_cache=store)
    assert _highlight(CODE, "python") == renderer.highlight(CODE, "python")
    store.flush()
    assert store.get(block_key(CODE, "python")) is None


def test_a_first_build_skips_its_lookups_and_the_next_one_reads(cache):
    """While the store was empty when the process opened it, lookups are skipped (they
    would all miss: a first build); at the next build's start it is looked at again."""
    key = block_key(CODE, "python")
    MarkdownRenderer(code_cache=cache).highlight(CODE, "python")
    cache.flush()
    assert cache.get(key) is None  # skipped: empty when opened
    cache.next_build()
    assert highlight(CODE, "python") == cache.get(key)


def test_the_key_holds_the_language_and_the_code():
    """Another language or another code is another entry: a hit is never another
    block's HTML; the language's case is not (the lexer's lookup ignores it)."""
    keys = {block_key(CODE, "python"), block_key(CODE, "ruby"),
            block_key(CODE + " ", "python"), block_key(CODE, "")}
    assert 4 == len(keys)
    assert block_key(CODE, "Python") == block_key(CODE, "python")
    assert highlight(CODE, "python") != highlight(CODE, "ruby")


def test_prune_keeps_the_newest_blocks_within_half_the_budget(cache):
    """Over budget, the store keeps the newest entries that fit in half of it and gives
    the space back; under budget, nothing is touched."""
    for i in range(60):
        cache.put(f"k{i:02}", f"<pre>{i:02}</pre>" + "x" * 4000)
    cache.flush()
    assert 0 == prune(cache.path, max_bytes=10 * 1024 * 1024)
    assert 60 == sqlite3.connect(cache.path).execute("SELECT count(*) FROM blocks").fetchone()[0]
    dropped = prune(cache.path, max_bytes=100_000)
    keys = [k for (k,) in sqlite3.connect(cache.path).execute(
        "SELECT key FROM blocks ORDER BY key")]
    assert 60 == dropped + len(keys)
    assert [f"k{i:02}" for i in range(60 - len(keys), 60)] == keys  # the newest
    assert 5 <= len(keys) <= 12  # about 50,000 bytes of 4,100-byte entries
    assert cache.path.stat().st_size <= 100_000
    cache.next_build()
    assert cache.get("k59").startswith("<pre>59</pre>")  # a store in use reads on


def test_a_build_prunes_a_store_over_budget(site, monkeypatch):
    """A build that finds the store over its budget brings it back within it (the
    blocks of posts since edited would otherwise stay for ever)."""
    from o2m_pub.site import code_cache
    site.post("2026/code.md", body=BODY)
    path = site.root / ".o2m/highlight.db"
    store = CodeCache(path)
    for i in range(100):
        store.put(f"old{i}", "y" * 4000)
    store.flush()
    monkeypatch.setattr(code_cache, "MAX_BYTES", 120_000)
    build_site(site.root, jobs=1)
    assert path.stat().st_size <= 120_000
    count = sqlite3.connect(path).execute("SELECT count(*) FROM blocks").fetchone()[0]
    assert count < 101


def test_prune_leaves_a_store_another_process_holds_busy(cache):
    """A store locked by another process (a build, `o2m watch`) is not pruned now, and
    not dropped: it is pruned at a later build."""
    for i in range(40):
        cache.put(f"k{i:02}", "z" * 4000)
    cache.flush()
    other = sqlite3.connect(cache.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert 0 == prune(cache.path, max_bytes=50_000)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert cache.path.exists()
    assert 40 == sqlite3.connect(cache.path).execute("SELECT count(*) FROM blocks").fetchone()[0]
    assert prune(cache.path, max_bytes=50_000) > 0
