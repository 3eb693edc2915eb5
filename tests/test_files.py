"""The shared file primitives (_files.py) and the fault hooks (_faults.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from o2m_pub._files import (
    TMP_PREFIX,
    create_temporary,
    sync_filesystem,
    temporary_name,
    write_file,
)


def test_temporary_names_are_fresh_dotfiles_beside_the_target(tmp_path):
    """Two writers (or a file a crash left) never meet on one temporary name, and every
    part of o2m can tell the name for litter."""
    target = tmp_path / "index.html"
    names = {temporary_name(target) for _ in range(100)}
    assert 100 == len(names)
    assert all(n.parent == tmp_path and n.name.startswith(TMP_PREFIX)
               and n.name.endswith(".index.html") for n in names)


def test_write_file_replaces_whole_with_the_exact_mode(tmp_path):
    """The new version is renamed over the old (a new inode), with exactly the mode
    asked for whatever the umask, and nothing else is left in the folder."""
    target = tmp_path / "key.json"
    write_file(target, b"old", 0o600)
    inode = target.stat().st_ino
    old = os.umask(0)
    try:
        write_file(target, b"new", 0o600, sync=False)
    finally:
        os.umask(old)
    assert (b"new", 0o600) == (target.read_bytes(), target.stat().st_mode & 0o777)
    assert target.stat().st_ino != inode
    assert ["key.json"] == os.listdir(tmp_path)


def test_a_failed_write_file_keeps_the_old_file_and_no_temporary(tmp_path):
    """The rename fails (the target is a folder): the error is raised, and the folder
    holds what it held before."""
    (tmp_path / "page").mkdir()
    (tmp_path / "page/x").write_bytes(b"kept")
    with pytest.raises(OSError):
        write_file(tmp_path / "page", b"new")
    assert ["page"] == os.listdir(tmp_path)
    assert b"kept" == (tmp_path / "page/x").read_bytes()


def test_create_temporary_is_exclusive_and_exactly_the_mode(tmp_path):
    """The staging file of a folder publish: a new file (never an existing one), mode
    exactly as asked under any umask."""
    old = os.umask(0o077)
    try:
        tmp, fd = create_temporary(tmp_path / "a.html", 0o644)
    finally:
        os.umask(old)
    os.close(fd)
    assert tmp.name.startswith(TMP_PREFIX) and tmp.stat().st_mode & 0o777 == 0o644


def test_sync_filesystem_reports_a_folder_that_is_not_there(tmp_path):
    """A sync of a folder that vanished is an OSError for the caller to report, not a
    silent success."""
    sync_filesystem(tmp_path)  # the ordinary case: no error
    with pytest.raises(OSError):
        sync_filesystem(tmp_path / "gone")


def _run_hooks(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def test_the_fetch_commit_hook_kills_at_the_nth_pass_reading_the_environment_late():
    """O2M_FETCH_FAULT=kill-in-commit:2, set after the module was imported: the first
    pass goes on, the second dies by SIGKILL."""
    r = _run_hooks("import os, sys\n"
                   "from o2m_pub import _faults\n"
                   "os.environ['O2M_FETCH_FAULT'] = 'kill-in-commit:2'\n"
                   "for n in (1, 2, 3):\n"
                   "    _faults.in_fetch_commit()\n"
                   "    print(n, flush=True)\n")
    assert (-9, "1\n") == (r.returncode, r.stdout)


def test_the_write_hook_kills_before_the_nth_write():
    """O2M_FAULT=kill:3: two writes pass, the process dies before the third."""
    r = _run_hooks("from o2m_pub import _faults\n"
                   "for n in (1, 2, 3):\n"
                   "    _faults.before_write('x')\n"
                   "    print(n, flush=True)\n", O2M_FAULT="kill:3")
    assert (-9, "1\n2\n") == (r.returncode, r.stdout)


@pytest.mark.parametrize("value", ["", "kill", "kill:x", "explode:1", "kill-in-commit:1"])
def test_the_write_hook_ignores_what_it_does_not_know(value):
    """An unset, malformed or foreign value plans no fault (kill-in-commit belongs to
    O2M_FETCH_FAULT, not O2M_FAULT)."""
    r = _run_hooks("from o2m_pub import _faults\n"
                   "for n in range(5):\n"
                   "    _faults.before_write('x')\n"
                   "print('done')\n", O2M_FAULT=value)
    assert (0, "done\n") == (r.returncode, r.stdout)


def test_fault_hooks_are_not_read_at_import(monkeypatch):
    """Importing the modules that hold hooks plans nothing: the variable is read at the
    first pass, so a test may set it after the import (the audit's A.6 finding)."""
    from o2m_pub import _faults
    _faults.reset()
    import o2m_pub.host.publish.folder  # noqa: F401 - imported for the check
    import o2m_pub.reader.store  # noqa: F401
    import o2m_pub.site.writer  # noqa: F401
    assert {} == _faults._plans
    monkeypatch.setenv("O2M_FAULT", "enospc:1")
    try:
        with pytest.raises(OSError, match="No space left"):
            _faults.before_write(str(Path("x")))
    finally:
        _faults.reset()
