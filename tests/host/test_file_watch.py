"""The serve cache kept valid by inotify (`host.file_watch`): what events mean (pure),
then real inotify on real folders, read by calling `doRead` where the server's reactor
would, so each test decides when the events are taken."""

from __future__ import annotations

import os
import struct

import pytest

from o2m_pub.host import file_watch as fw
from o2m_pub.host.file_cache import FileCache
from o2m_pub.host.file_watch import FolderWatch, interpret, parse_events


# -- what the events mean


def test_events_are_parsed_with_their_padded_names():
    def event(wd: int, mask: int, name: bytes = b"") -> bytes:
        padded = name + b"\0" * (-len(name) % 16 or (16 if name else 0))
        return struct.pack("iIII", wd, mask, 0, len(padded)) + padded

    data = event(1, fw.IN_MODIFY, b"index.html") + event(2, fw.IN_DELETE_SELF) + \
        event(-1, fw.IN_Q_OVERFLOW) + event(3, fw.IN_MOVED_TO, "café".encode())
    assert parse_events(data) == [(1, fw.IN_MODIFY, "index.html"), (2, fw.IN_DELETE_SELF, ""),
                                  (-1, fw.IN_Q_OVERFLOW, ""), (3, fw.IN_MOVED_TO, "café")]


def test_what_each_event_makes_stale():
    """A file's events name the file; a folder moved, removed or replaced names its
    tree, as does a watch that ended; a lost queue names everything; the folder's own
    stat, a new folder and a watch already given up name nothing."""
    folders = {1: "/b", 2: "/b/2026"}
    events = [(2, fw.IN_MOVED_TO, "index.html"), (2, fw.IN_MODIFY, "index.html"),
              (2, fw.IN_ATTRIB, "x.css"), (2, fw.IN_CLOSE_WRITE, "x.css"),
              (2, fw.IN_DELETE, "old.html"), (2, fw.IN_MOVED_FROM, "tmp"),
              (1, fw.IN_MOVED_FROM | fw.IN_ISDIR, "tags"),
              (1, fw.IN_DELETE | fw.IN_ISDIR, "gone"),
              (1, fw.IN_MOVED_TO | fw.IN_ISDIR, "moved-in"),
              (1, fw.IN_CREATE | fw.IN_ISDIR, "new"),
              (1, fw.IN_ATTRIB | fw.IN_ISDIR, ""),
              (2, fw.IN_MOVE_SELF, ""), (2, fw.IN_IGNORED, ""),
              (9, fw.IN_MODIFY, "unknown-watch"), (-1, fw.IN_Q_OVERFLOW, "")]
    assert interpret(events, folders) == [
        ("file", "/b/2026/index.html"), ("file", "/b/2026/index.html"),
        ("file", "/b/2026/x.css"), ("file", "/b/2026/x.css"),
        ("file", "/b/2026/old.html"), ("file", "/b/2026/tmp"),
        ("tree", "/b/tags"), ("tree", "/b/gone"), ("tree", "/b/moved-in"),
        ("tree", "/b/2026"), ("tree", "/b/2026"), ("all", "")]


# -- real inotify

def _has_inotify() -> bool:
    watch = FolderWatch.open(lambda *_: None)
    if watch is not None:
        watch.close()
    return watch is not None


needs_inotify = pytest.mark.skipif(not _has_inotify(), reason="no inotify here (Linux only)")


class _Told(list):
    def __call__(self, kind: str, path: str) -> None:
        self.append((kind, path))


@pytest.fixture
def build(tmp_path):
    build = tmp_path / "build"
    (build / "2026" / "a-post").mkdir(parents=True)
    (build / "2026" / "a-post" / "index.html").write_bytes(b"<p>one</p>")
    (build / "style.css").write_bytes(b"body{}")
    return build


@pytest.fixture
def cache(build):
    """A cache of `build` with its watch, read when a test calls doRead."""
    cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
    cache.watch = FolderWatch.open(cache.changed)
    yield cache
    cache.watch.close()


@needs_inotify
def test_a_folder_is_watched_with_its_parents_and_reports_each_kind_of_change(build):
    told = _Told()
    watch = FolderWatch.open(told)
    root, post = str(build), str(build / "2026" / "a-post")
    assert watch.watch(post, root)
    assert set(watch._wd_of) == {root, str(build / "2026"), post}
    page = build / "2026" / "a-post" / "index.html"
    tmp = page.with_name(".tmp-1")
    tmp.write_bytes(b"<p>two</p>")
    os.replace(tmp, page)  # as the builder writes
    watch.doRead()
    assert ("file", str(page)) in told
    for change in (lambda: page.write_bytes(b"<p>3</p>"),  # in place
                   lambda: os.utime(page),  # touched
                   lambda: page.unlink()):
        told.clear()
        change()
        watch.doRead()
        assert ("file", str(page)) in told
    told.clear()
    os.rename(build / "2026", build / "2025")  # a parent moved: the tree below goes
    watch.doRead()
    assert ("tree", str(build / "2026")) in told
    assert set(watch._wd_of) == {root}  # the moved folders are not followed
    watch.close()
    assert told[-1] == ("all", "") and not watch.watch(root, root)


@needs_inotify
def test_a_missing_folder_a_symlink_or_a_folder_outside_is_not_watched(build, tmp_path):
    watch = FolderWatch.open(_Told())
    (build / "linked").symlink_to(build / "2026")
    assert not watch.watch(str(build / "nothing"), str(build))
    assert not watch.watch(str(build / "linked"), str(build))
    assert not watch.watch(str(tmp_path), str(build))
    assert watch.watch(str(build / "2026"), str(build))
    watch.close()


@needs_inotify
def test_the_cache_trusts_a_watched_entry_until_the_watch_says_it_changed(build, cache):
    """No look at the disk per hit: a page replaced is served from memory until the
    events are read (the server reads them on its loop's next turn), then afresh."""
    entry = cache.lookup(b"/2026/a-post/", False)
    assert entry.watched and entry.body == b"<p>one</p>"
    page = build / "2026" / "a-post" / "index.html"
    page.with_name("t").write_bytes(b"<p>two</p>")
    os.replace(page.with_name("t"), page)
    assert cache.lookup(b"/2026/a-post/", False) is entry  # not read yet
    cache.watch.doRead()
    assert cache.lookup(b"/2026/a-post/", False).body == b"<p>two</p>"


@needs_inotify
def test_a_change_no_stat_can_see_is_seen(build):
    """Rewritten in place with the same size, and its mtime set back: size, mtime and
    inode are what they were, so the stat check keeps the old bytes; the watch does
    not."""
    page = build / "2026" / "a-post" / "index.html"

    def rewrite_unseen() -> None:
        st = page.stat()
        with open(page, "r+b") as f:
            f.write(b"<p>ONE</p>")
        os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns))

    for watched in (False, True):
        page.write_bytes(b"<p>one</p>")
        cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
        if watched:
            cache.watch = FolderWatch.open(cache.changed)
        assert cache.lookup(b"/2026/a-post/", False).body == b"<p>one</p>"
        rewrite_unseen()
        if watched:
            cache.watch.doRead()
        expected = b"<p>ONE</p>" if watched else b"<p>one</p>"
        assert cache.lookup(b"/2026/a-post/", False).body == expected
        if watched:
            cache.watch.close()


@needs_inotify
def test_a_folder_moved_away_or_a_new_gz_drops_what_it_held(build, cache):
    assert cache.lookup(b"/2026/a-post/", False) is not None
    style = cache.lookup(b"/style.css", False)
    assert cache.gzip_variant(style) is None  # too small to gain: tried once
    (build / "style.css.gz").write_bytes(b"x")
    os.rename(build / "2026", build / "old")
    cache.watch.doRead()
    assert cache.lookup(b"/2026/a-post/", False) is None
    assert ("style.css", False) not in cache._entries  # its .gz changed: asked again
    assert cache._bytes == 0
    os.rename(build / "old", build / "2026")
    cache.watch.doRead()
    assert cache.lookup(b"/2026/a-post/", False).watched  # watched again, at its path


@needs_inotify
def test_an_entry_through_a_symlink_inside_build_is_checked_by_stat(build, cache):
    """A symlink's target is not watched: its file is checked on each request."""
    (build / "latest").symlink_to(build / "2026" / "a-post")
    entry = cache.lookup(b"/latest/", False)
    assert entry.body == b"<p>one</p>" and not entry.watched
    page = build / "2026" / "a-post" / "index.html"
    page.with_name("t").write_bytes(b"<p>new!</p>")
    os.replace(page.with_name("t"), page)
    assert cache.lookup(b"/latest/", False).body == b"<p>new!</p>"  # no event read


@needs_inotify
def test_past_the_watch_limit_files_are_checked_by_stat(build, monkeypatch):
    """When the system has no watch left, the watch says so once and the folders it
    could not watch keep the stat per request."""
    told: list[str] = []
    cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
    cache.watch = FolderWatch.open(cache.changed, report=told.append)
    assert cache.lookup(b"/style.css", False).watched
    libc = fw._libc()
    monkeypatch.setattr(fw, "_libc", lambda: _NoWatchLeft(libc))
    entry = cache.lookup(b"/2026/a-post/", False)
    assert not entry.watched and len(told) == 1 and "max_user_watches" in told[0]
    cache.lookup(b"/2026/a-post/index.html", True)
    assert len(told) == 1
    cache.watch.close()


class _NoWatchLeft:
    """libc as the kernel answers past fs.inotify.max_user_watches (ENOSPC)."""

    def __init__(self, libc) -> None:
        self._libc = libc

    def inotify_add_watch(self, fd, path, mask) -> int:
        import ctypes
        import errno
        ctypes.set_errno(errno.ENOSPC)
        return -1

    def __getattr__(self, name):
        return getattr(self._libc, name)
