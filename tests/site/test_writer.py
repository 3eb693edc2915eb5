"""Atomic, contained writes (site/writer.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from o2m_pub.site.writer import AtomicWriter, OutsideOutputError, safe_relative


# Path segments an attacker would try, beside plain names: a path made of these reaches
# "..", ".", empty segments, backslashes and NUL in nearly every example, which random
# text (st.text) practically never does.
_SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b", "\\", "\x00", "%2e%2e", "..\\a", "a\\..",
                     "a\x00", ".a", "a..", "...", " ", "~"]),
    st.text(max_size=6))
_PATHS = st.builds(lambda lead, segs: lead + "/".join(segs),
                   st.sampled_from(["", "/"]), st.lists(_SEGMENTS, min_size=1, max_size=6))


@given(_PATHS)
def test_no_accepted_path_escapes_the_output_folder(path):
    """Whatever the path, an accepted one stays inside (compare Pelican's prefix bug),
    on its own and read with backslashes as separators, and is returned unchanged."""
    try:
        rel = safe_relative(path)
    except OutsideOutputError:
        return
    assert rel == path
    assert "\x00" not in rel and "\\" not in rel
    root = "/srv/out"
    for form in (rel, rel.replace("\\", "/")):
        full = os.path.normpath(os.path.join(root, form))
        assert full.startswith(root + "/")


@given(_PATHS)
def test_a_path_with_a_dot_empty_or_parent_segment_is_refused(path):
    """safe_relative alone (not the writer's realpath check behind it) refuses every
    path with a "..", "." or empty segment, an absolute path, a NUL or a backslash; and
    accepts every other one: "%2e%2e" is a plain file name on disk."""
    segments = path.split("/")
    bad = (any(s in ("", ".", "..") for s in segments)
           or any("\x00" in s or "\\" in s for s in segments))
    if bad:
        with pytest.raises(OutsideOutputError):
            safe_relative(path)
    else:
        assert safe_relative(path) == path


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a\x00b", "a\\..\\b", "",
                                  "a//b", "./a", "a/.", "a/", ".."])
def test_bad_paths_are_refused_by_the_rule_alone(path):
    """The rule itself refuses these, before any file-system check."""
    with pytest.raises(OutsideOutputError):
        safe_relative(path)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a\x00b", "a\\..\\b", "",
                                  "a//b", "./a"])
def test_bad_paths_are_refused(tmp_path, path):
    """The writer refuses them too, and writes nothing."""
    with pytest.raises(OutsideOutputError):
        AtomicWriter(tmp_path / "out").write(path, b"x")
    assert list((tmp_path / "out").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_through_a_symlinked_folder_is_refused(tmp_path):
    """A write through a symlink planted in the output folder is refused, and nothing lands
    where it points."""
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tmp_path, out / "link")
    with pytest.raises(OutsideOutputError):
        AtomicWriter(out).write("link/evil.html", b"x")
    assert not (tmp_path / "evil.html").exists()


def test_a_symlink_deeper_down_or_to_inside_is_judged_by_where_it_leads(tmp_path):
    """A symlink planted below a folder the writer made is refused too; one that leads
    to a folder inside the output is written through; a file where a folder goes
    fails the write."""
    out = tmp_path / "out"
    writer = AtomicWriter(out)
    writer.write("2026/a/index.html", b"a")
    os.symlink(tmp_path, out / "2026" / "link")
    with pytest.raises(OutsideOutputError):
        writer.write("2026/link/deeper/evil.html", b"x")
    assert not (tmp_path / "deeper").exists()
    os.symlink(out / "2026" / "a", out / "inside")
    writer.write("inside/b.html", b"b")
    assert (out / "2026" / "a" / "b.html").read_bytes() == b"b"
    (out / "file").write_bytes(b"")
    with pytest.raises(FileExistsError):
        writer.write("file/c.html", b"c")


def test_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    """A write replaces the file by rename (a new inode, never half written) and leaves no
    temporary file."""
    w = AtomicWriter(tmp_path)
    w.write("a/b.html", b"one")
    inode = (tmp_path / "a/b.html").stat().st_ino
    w.write("a/b.html", b"two")
    assert (tmp_path / "a/b.html").read_bytes() == b"two"
    assert (tmp_path / "a/b.html").stat().st_ino != inode  # renamed over, not rewritten
    assert os.listdir(tmp_path / "a") == ["b.html"]


def test_delete_removes_empty_folders(tmp_path):
    """Deleting a folder's last file removes the folders left empty, never the output folder
    itself."""
    w = AtomicWriter(tmp_path)
    w.write("x/y/z.html", b"1")
    w.delete("x/y/z.html")
    assert not (tmp_path / "x").exists() and tmp_path.exists()


def test_writers_of_one_path_at_once_never_share_a_temporary(tmp_path):
    """Four threads write one page at the same moment, twenty times over: each write
    has a temporary file of its own, so none fails and the page is always one of the
    four whole versions (a temporary named by the process id alone was shared by the
    threads, so one rename could take another's half-written file, or find it gone)."""
    import threading
    writer = AtomicWriter(tmp_path)
    versions = [os.urandom(1 << 19) for _ in range(4)]
    errors: list[BaseException] = []
    for round_ in range(20):
        start = threading.Barrier(4)

        def write(data: bytes, path: str = f"r{round_}/index.html") -> None:
            start.wait()
            try:
                writer.write(path, data)
            except BaseException as e:  # noqa: BLE001 - collected for the assert
                errors.append(e)
        threads = [threading.Thread(target=write, args=(v,)) for v in versions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (tmp_path / f"r{round_}/index.html").read_bytes() in versions
        assert os.listdir(tmp_path / f"r{round_}") == ["index.html"]
    assert errors == []


def test_outputs_are_readable_by_the_web_server_whatever_the_umask(tmp_path):
    """build/ is served: every file is 0644, also under a umask of 077."""
    old = os.umask(0o077)
    try:
        AtomicWriter(tmp_path).write("a/index.html", b"<p>hi</p>")
    finally:
        os.umask(old)
    assert 0o644 == (tmp_path / "a/index.html").stat().st_mode & 0o777


def test_an_injected_full_disk_fails_the_write_and_keeps_the_old_file(tmp_path, monkeypatch):
    """O2M_FAULT=enospc:N, set after o2m was imported (it is read at the first write):
    the N-th write of the process raises ENOSPC, the file it was replacing is intact,
    and no temporary file is left."""
    import errno

    from o2m_pub import _faults
    writer = AtomicWriter(tmp_path)
    writer.write("a.html", b"old")
    monkeypatch.setenv("O2M_FAULT", "enospc:2")
    _faults.reset()
    try:
        writer.write("b.html", b"first write of the plan")
        with pytest.raises(OSError) as e:
            writer.write("a.html", b"new")
        writer.write("a.html", b"newer")  # only the N-th write fails
    finally:
        _faults.reset()
    assert errno.ENOSPC == e.value.errno
    assert b"newer" == (tmp_path / "a.html").read_bytes()
    assert ["a.html", "b.html"] == sorted(os.listdir(tmp_path))


def test_remove_stale_temporaries_removes_only_temporaries(tmp_path):
    """After a killed build: the temporaries it left (any name under TMP_PREFIX) go,
    the pages stay."""
    from o2m_pub._files import temporary_name
    writer = AtomicWriter(tmp_path)
    writer.write("a/index.html", b"page")
    temporary_name(tmp_path / "a/index.html").write_bytes(b"half")
    assert 1 == writer.remove_stale_temporaries()
    assert ["index.html"] == os.listdir(tmp_path / "a")


def test_a_barrier_after_a_few_writes_syncs_those_files_and_their_folders(tmp_path):
    """A phase that changed a few files syncs each of them and each folder that gained
    or lost an entry (a new folder's parent too), not the whole file system."""
    root = tmp_path / "out"
    root.mkdir()
    (root / "old").mkdir()
    (root / "old/gone.html").write_text("x")
    writer = AtomicWriter(root)

    writer.write("a/b/page.html", b"page")
    writer.write("index.html", b"home")
    writer.delete("old/gone.html")
    writer.barrier()

    files, folders = writer.last_sync
    assert [root / "a/b/page.html", root / "index.html"] == files
    assert {root / "a/b", root / "a", root, root / "old"} == set(folders)
    assert not (root / "old").exists()  # (emptied: removed, and its parent synced)

    writer.barrier()  # nothing since: nothing to sync
    assert (files, folders) == writer.last_sync


def test_a_barrier_after_many_writes_or_a_workers_syncs_the_file_system(tmp_path):
    """Past `SYNC_EACH_MAX` files, after writes by other processes (workers), and for
    an output folder the writer made: one sync of the whole file system."""
    from o2m_pub.site import writer as writer_mod

    fresh = AtomicWriter(tmp_path / "new")  # made now: its parents' entries too
    fresh.write("index.html", b"x")
    fresh.barrier()
    assert fresh.last_sync is None
    fresh.write("index.html", b"y")  # the next phase: one by one again
    fresh.barrier()
    assert fresh.last_sync is not None

    many = AtomicWriter(tmp_path / "new")
    for n in range(writer_mod.SYNC_EACH_MAX * 2 + 1):
        many.write(f"p{n}.html", b"x")
    many.barrier()
    assert many.last_sync is None

    workers = AtomicWriter(tmp_path / "new")
    workers.write("index.html", b"z")
    workers.mark_dirty()
    workers.barrier()
    assert workers.last_sync is None
