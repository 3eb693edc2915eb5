"""The serve cache's own rules, on real files: its size from the site's, the gzip
variant made once and only when asked for (read from the builder's ``.gz`` when it
is current), every byte it holds counted against its bound."""

from __future__ import annotations

import gzip
import os

from o2m_pub.host.file_cache import MIN_CACHE, SMALL_FILE, FileCache, cache_budget


def _site(root, pages: int = 3, size: int = 4000):
    build = root / "build"
    (build / "posts").mkdir(parents=True)
    for i in range(pages):
        (build / "posts" / f"p{i}.html").write_bytes(b"<p>%d</p>" % i + b"word " * (size // 5))
    (build / ".o2m-tmp").mkdir()
    (build / ".o2m-tmp" / "x").write_bytes(b"x" * 10_000)  # dot-folders do not count
    (build / "big.bin").write_bytes(b"\0" * (SMALL_FILE + 1))  # streamed: does not count
    return build


def test_budget_fits_the_site_within_the_memory_share(tmp_path):
    """Enough for every small file and its gzip (1.5 times their bytes) plus each
    entry's overhead; never under MIN_CACHE; all workers together at most a quarter
    of the available memory."""
    build = _site(tmp_path, pages=3)
    assert cache_budget(build, 2, available=1 << 40) == MIN_CACHE  # a small site
    for i in range(100):  # 100 MiB of pages, sparse (sizes are what counts)
        with open(build / "posts" / f"big{i}.html", "wb") as f:
            f.truncate(SMALL_FILE)
    need = sum(f.stat().st_size * 3 // 2 + FileCache.ENTRY_COST
               for f in (build / "posts").iterdir())
    assert cache_budget(build, 2, available=1 << 40) == need
    assert cache_budget(build, 2, available=1 << 30) == max(MIN_CACHE, (1 << 30) // 8)
    assert cache_budget(build, 1, available=1 << 29) == (1 << 29) // 4


def _hits(cache, path: bytes):
    entry = cache.lookup(path, False)
    assert entry is not None and not isinstance(entry, str)
    return entry


def test_gzip_is_made_once_when_asked_and_counted(tmp_path):
    """A page's entry has no gzip until one is asked for; then it is the page's gzip,
    kept, and charged to the cache (whose count equals what its entries hold)."""
    build = _site(tmp_path)
    cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
    entry = _hits(cache, b"/posts/p0.html")
    assert entry.compressible and entry.gzipped is None
    before = cache._bytes
    body, headers = cache.gzip_variant(entry)
    assert gzip.decompress(body) == (build / "posts/p0.html").read_bytes()
    assert headers.getRawHeaders(b"content-encoding") == [b"gzip"]
    assert headers.getRawHeaders(b"content-length") == [b"%d" % len(body)]
    assert headers.getRawHeaders(b"accept-ranges") is None
    assert headers.wire is not None and b"Content-Encoding: gzip\r\n" in headers.wire
    assert cache._bytes == before + len(body)
    assert cache.gzip_variant(entry)[0] is body
    assert cache._bytes == sum(cache._cost(e) for e in cache._entries.values())


def test_the_builders_gz_is_used_only_when_current(tmp_path):
    """A ``.gz`` beside the page, at least as new as the page, is what is sent; one
    older than the page (left from a previous build) is not."""
    build = _site(tmp_path)
    page = build / "posts" / "p1.html"
    marker = gzip.compress(b"the builder's own gzip " * 40)
    (build / "posts" / "p1.html.gz").write_bytes(marker)
    st = page.stat()
    os.utime(build / "posts" / "p1.html.gz", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
    assert cache.gzip_variant(_hits(cache, b"/posts/p1.html"))[0] == marker
    os.utime(build / "posts" / "p1.html.gz", ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
    body, _ = cache.gzip_variant(_hits(cache, b"/posts/p1.html"))
    assert gzip.decompress(body) == page.read_bytes()


def test_the_bound_holds_with_gzip_variants(tmp_path):
    """Past its bound the cache drops its oldest entries, gzip variants counted."""
    build = _site(tmp_path, pages=20)
    cache = FileCache(build, live_reload=False, max_bytes=5 * (4000 + FileCache.ENTRY_COST))
    for i in range(20):
        cache.gzip_variant(_hits(cache, b"/posts/p%d.html" % i))
        assert cache._bytes <= cache.max_bytes
        assert cache._bytes == sum(cache._cost(e) for e in cache._entries.values())
    assert ("posts/p19.html", False) in cache._entries
    assert ("posts/p0.html", False) not in cache._entries
