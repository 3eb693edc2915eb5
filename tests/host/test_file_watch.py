"""The serve cache kept valid by inotify (`host.file_watch`): what events mean (pure),
then real inotify on real folders, read by calling `doRead` where the server's reactor
would, so each test decides when the events are taken."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
import tempfile
from pathlib import Path

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
    """A file's events name the file; a folder moved, removed, replaced or given
    another mode names its tree, as does a watch that ended; a new folder, and a
    watch already given up, name nothing; a lost queue names everything."""
    folders = {1: "/b", 2: "/b/2026", 3: "/b/tags"}
    events = [(2, fw.IN_MOVED_TO, "index.html"), (2, fw.IN_MODIFY, "index.html"),
              (2, fw.IN_ATTRIB, "x.css"), (2, fw.IN_CLOSE_WRITE, "x.css"),
              (2, fw.IN_DELETE, "old.html"), (2, fw.IN_MOVED_FROM, "tmp"),
              (1, fw.IN_MOVED_FROM | fw.IN_ISDIR, "gone-away"),
              (1, fw.IN_DELETE | fw.IN_ISDIR, "gone"),
              (1, fw.IN_MOVED_TO | fw.IN_ISDIR, "moved-in"),
              (1, fw.IN_ATTRIB | fw.IN_ISDIR, "closed"),
              (1, fw.IN_CREATE | fw.IN_ISDIR, "new"),
              (3, fw.IN_ATTRIB, ""), (2, fw.IN_MOVE_SELF, ""), (2, fw.IN_IGNORED, ""),
              (9, fw.IN_MODIFY, "unknown-watch")]
    changes = interpret(events, folders)
    assert changes.files == {"/b/2026/index.html", "/b/2026/x.css", "/b/2026/old.html",
                             "/b/2026/tmp"}
    assert changes.trees == {"/b/gone-away", "/b/gone", "/b/moved-in", "/b/closed",
                             "/b/tags", "/b/2026"}
    assert not changes.everything
    assert interpret([(-1, fw.IN_Q_OVERFLOW, "")], folders).everything


def test_the_file_system_of_a_path_is_that_of_its_deepest_mount():
    mountinfo = "\n".join([
        "22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
        "30 22 0:25 / /srv/my\\040site rw shared:5 - nfs4 host:/x rw",
        "31 22 0:26 / /srv/my rw - tmpfs tmpfs rw",
        "32 22 0:27 / /home/me/.cache/fuse rw - fuse.sshfs me@h: rw"])
    assert fw.file_system_of(mountinfo, "/home/me/site/build") == "ext4"
    assert fw.file_system_of(mountinfo, "/srv/my site/build") == "nfs4"
    assert fw.file_system_of(mountinfo, "/srv/my/build") == "tmpfs"
    assert fw.file_system_of(mountinfo, "/srv/myother") == "ext4"
    assert fw.file_system_of(mountinfo, "/home/me/.cache/fuse/x") == "fuse.sshfs"
    assert "nfs4" not in fw.LOCAL_FILE_SYSTEMS and "fuse.sshfs" not in fw.LOCAL_FILE_SYSTEMS
    on_top = mountinfo + "\n40 31 0:50 / /srv/my rw - nfs4 host:/y rw"  # mounted over
    assert fw.file_system_of(on_top, "/srv/my/build") == "nfs4"


def test_a_mount_point_named_in_bytes_that_are_not_utf8_is_read(tmp_path):
    """/proc/self/mountinfo names mount points in any bytes: read as the paths are."""
    info = tmp_path / "mountinfo"
    info.write_bytes(b"22 1 252:0 / / rw - ext4 /dev/vda rw\n"
                     b"23 22 0:30 / /srv/m\xe9 rw - nfs host:/x rw\n")
    text = fw._read(str(info))
    assert fw.file_system_of(text, os.fsdecode(b"/srv/m\xe9/build")) == "nfs"
    assert fw.file_system_of(text, "/srv/other") == "ext4"


# -- real inotify

def _has_inotify() -> bool:
    watch = FolderWatch.open(os.path.realpath(tempfile.gettempdir()), lambda _changes: None)
    if watch is not None:
        watch.close()
    return watch is not None


needs_inotify = pytest.mark.skipif(not _has_inotify(), reason="no inotify here (Linux only)")


class _Told(list):
    def __call__(self, changes) -> None:
        self.append(changes)

    def files(self) -> set[str]:
        return set().union(*(c.files for c in self))

    def trees(self) -> set[str]:
        return set().union(*(c.trees for c in self))


@pytest.fixture
def build(tmp_path):
    build = tmp_path / "build"
    (build / "2026" / "a-post").mkdir(parents=True)
    (build / "2026" / "a-post" / "index.html").write_bytes(b"<p>one</p>")
    (build / "style.css").write_bytes(b"body{}")
    return build


@pytest.fixture
def watch(build):
    """A watch of `build`, read when a test calls doRead."""
    told = _Told()
    watch = FolderWatch.open(str(build), told)
    watch.told = told
    yield watch
    watch.close()


@pytest.fixture
def cache(build):
    """A cache of `build` with its watch (read at each lookup, as in the server)."""
    cache = FileCache(build, live_reload=False, max_bytes=1 << 30)
    cache.folder_watch = FolderWatch.open(cache.root, cache.changed)
    yield cache
    cache.folder_watch.close()


@needs_inotify
def test_a_folder_is_watched_with_its_parents_and_reports_each_kind_of_change(build, watch):
    root, post = str(build), str(build / "2026" / "a-post")
    assert watch.watch(post)
    assert set(watch._wd_of) == {root, str(build / "2026"), post}
    page = build / "2026" / "a-post" / "index.html"
    tmp = page.with_name(".tmp-1")
    tmp.write_bytes(b"<p>two</p>")
    os.replace(tmp, page)  # as the builder writes
    watch.doRead()
    assert str(page) in watch.told.files()
    for change in (lambda: page.write_bytes(b"<p>3</p>"),  # in place
                   lambda: os.utime(page),  # touched
                   lambda: page.unlink()):
        watch.told.clear()
        change()
        watch.doRead()
        assert watch.told.files() == {str(page)}
    os.chmod(post, 0o700)  # a folder's mode: what is below may no longer be served
    watch.doRead()
    assert post in watch.told.trees() and set(watch._wd_of) == {root, str(build / "2026")}
    watch.told.clear()
    os.rename(build / "2026", build / "2025")  # a parent moved: the tree below goes
    watch.doRead()
    assert str(build / "2026") in watch.told.trees()
    assert set(watch._wd_of) == {root}  # the moved folders are not followed
    watch.close()
    assert watch.told[-1].everything and not watch.watch(root)


@needs_inotify
def test_a_missing_folder_a_symlink_or_a_folder_outside_is_not_watched(build, tmp_path, watch):
    (build / "linked").symlink_to(build / "2026")
    assert not watch.watch(str(build / "nothing"))
    assert not watch.watch(str(build / "linked"))
    assert not watch.watch(str(tmp_path))
    assert watch.watch(str(build / "2026"))


@needs_inotify
def test_a_folder_moved_before_its_event_is_read_is_not_watched_twice(build, watch):
    """The kernel answers a folder already watched under its old path with the same
    watch: the new path is not covered until the move's event is taken."""
    assert watch.watch(str(build / "2026" / "a-post"))
    os.rename(build / "2026", build / "2027")
    assert not watch.watch(str(build / "2027" / "a-post"))
    watch.doRead()
    assert watch.watch(str(build / "2027" / "a-post"))


@needs_inotify
def test_lost_events_forget_every_watch(build, watch):
    """Past the kernel's queue, events are lost (IN_Q_OVERFLOW), possibly a folder's
    end: every watch is given up, and made again as files are cached again."""
    assert watch.watch(str(build / "2026" / "a-post"))
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        queue = int(f.read())
    pages = [build / "2026" / "a-post" / "index.html", build / "style.css"]
    for i in range(queue + 2):  # two files in turn: the kernel merges repeats
        os.utime(pages[i % 2])
    watch.doRead()
    assert any(changes.everything for changes in watch.told) and watch._wd_of == {}
    assert watch.watch(str(build / "2026" / "a-post"))


@needs_inotify
def test_a_cached_page_is_served_without_a_stat_and_fresh_after_a_change(build, cache,
                                                                         monkeypatch):
    """A hit on a watched entry looks at no file; a change made before the next
    lookup is taken by that lookup, with no reactor turning."""
    entry = cache.lookup(b"/2026/a-post/", False)
    assert entry.watched and entry.body == b"<p>one</p>"
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *a, **k: stats.append(a) or real_stat(*a, **k))
    assert cache.lookup(b"/2026/a-post/", False) is entry and stats == []
    monkeypatch.undo()
    page = build / "2026" / "a-post" / "index.html"
    page.with_name("t").write_bytes(b"<p>two</p>")
    os.replace(page.with_name("t"), page)
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
        with contextlib.ExitStack() as stack:
            if watched:
                cache.folder_watch = FolderWatch.open(cache.root, cache.changed)
                stack.callback(cache.folder_watch.close)
            assert cache.lookup(b"/2026/a-post/", False).body == b"<p>one</p>"
            rewrite_unseen()
            expected = b"<p>ONE</p>" if watched else b"<p>one</p>"
            assert cache.lookup(b"/2026/a-post/", False).body == expected


@needs_inotify
def test_a_folder_moved_away_or_a_new_gz_drops_what_it_held(build, cache):
    assert cache.lookup(b"/2026/a-post/", False) is not None
    style = cache.lookup(b"/style.css", False)
    assert cache.gzip_variant(style) is None  # too small to gain: tried once
    (build / "style.css.gz").write_bytes(b"x")
    os.rename(build / "2026", build / "old")
    cache.folder_watch.sync()
    assert cache._entries == {} and cache._bytes == 0  # the .gz: its file asked again
    assert cache.lookup(b"/2026/a-post/", False) is None
    os.rename(build / "old", build / "2026")
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
def test_a_file_with_another_name_is_checked_by_stat(build, cache):
    """A change through a hard link's other name is reported in that name's folder
    only: such a file is checked on each request."""
    page = build / "2026" / "a-post" / "index.html"
    (build / "elsewhere").mkdir()
    os.link(page, build / "elsewhere" / "same.html")
    entry = cache.lookup(b"/2026/a-post/", False)
    assert entry.body == b"<p>one</p>" and not entry.watched
    with open(build / "elsewhere" / "same.html", "r+b") as f:
        f.write(b"<p>two, longer</p>")
    assert cache.lookup(b"/2026/a-post/", False).body == b"<p>two, longer</p>"


@needs_inotify
def test_past_the_watch_limit_files_are_checked_by_stat(build, cache, monkeypatch):
    """When the system has no watch left, the watch says so once and the folders it
    could not watch keep the stat per request."""
    told: list[str] = []
    cache.folder_watch.report = told.append
    assert cache.lookup(b"/style.css", False).watched
    libc = fw._libc()
    monkeypatch.setattr(fw, "_libc", lambda: _NoWatchLeft(libc))
    entry = cache.lookup(b"/2026/a-post/", False)
    assert not entry.watched and len(told) == 1 and "max_user_watches" in told[0]
    cache.lookup(b"/2026/a-post/index.html", True)
    assert len(told) == 1


@needs_inotify
def test_a_worker_watches_no_more_folders_than_its_share(build, cache):
    """Each worker takes at most its share of the user's watches (`o2m watch` and the
    user's other programs need theirs): past it, files are checked by stat, and the
    server says so once."""
    told: list[str] = []
    cache.folder_watch.report = told.append
    limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    assert cache.folder_watch.budget == limit // fw.WATCH_SHARE
    cache.folder_watch.budget = 2
    assert cache.lookup(b"/style.css", False).watched
    assert not cache.lookup(b"/2026/a-post/", False).watched  # would need two more
    assert not cache.lookup(b"/2026/a-post/index.html", True).watched
    assert len(told) == 1 and "share" in told[0]


@needs_inotify
def test_a_folder_above_build_moved_drops_everything(tmp_path):
    """build/ moves with any folder above it, without an event of its own: the folders
    above it are watched for that, and it drops every entry and watch."""
    site = tmp_path / "site"
    (site / "build" / "d").mkdir(parents=True)
    (site / "build" / "d" / "p.html").write_bytes(b"old")
    cache = FileCache(site / "build", live_reload=False, max_bytes=1 << 30)
    cache.folder_watch = FolderWatch.open(cache.root, cache.changed)
    try:
        assert cache.lookup(b"/d/p.html", False).watched
        os.rename(site, tmp_path / "site.old")
        (site / "build" / "d").mkdir(parents=True)
        (site / "build" / "d" / "p.html").write_bytes(b"new")
        assert cache.lookup(b"/d/p.html", False).body == b"new"
        assert cache.lookup(b"/d/p.html", False).watched  # watched again, the new one
    finally:
        cache.folder_watch.close()


def test_a_build_on_a_network_file_system_is_not_watched(build, monkeypatch):
    """Changes another host makes to an NFS or SMB share, or a FUSE file system's, make
    no event here: such a build/ keeps the stat per request."""
    monkeypatch.setattr(fw, "_read", lambda path: (
        "22 1 0:40 / / rw - nfs4 host:/export rw\n" if path.endswith("mountinfo") else "8192"))
    assert FolderWatch.open(str(build), _Told()) is None


class _NoWatchLeft:
    """libc as the kernel answers past fs.inotify.max_user_watches (ENOSPC)."""

    def __init__(self, libc) -> None:
        self._libc = libc

    def inotify_add_watch(self, fd, path, mask) -> int:
        ctypes.set_errno(errno.ENOSPC)
        return -1

    def __getattr__(self, name):
        return getattr(self._libc, name)
