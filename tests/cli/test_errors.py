"""The dispatcher's manners (`o2m_pub.cli._Group.invoke`): what the user sees when a
command fails in a way it did not plan for. A bug is one ``o2m: internal error:`` line
(its traceback only with --debug); an OSError names the file and the system's reason
and promises nothing; a reader that goes away (`o2m timeline | head -1`) ends the
command silently; click's own usage errors and Ctrl-C keep their manners."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from click.testing import CliRunner
from conftest import run_o2m

from o2m_pub.cli import main
from o2m_pub.reader.model import FeedStateChange, FriendUpdate, PostRow
from o2m_pub.reader.store import ReaderStore

HINT = "  hint: run again with --debug for the traceback, and report it"

# A real `o2m` process with one bug planted: the friends part's `own_card` (which
# `o2m whoami` calls) raises an exception no command expects.
_WITH_A_BUG = """
import sys
import o2m_pub.friends.identity as identity

def own_card(root):
    raise RuntimeError("the card cache is on fire\\nand this second line is not shown")

identity.own_card = own_card
from o2m_pub.cli import main
main(sys.argv[1:], prog_name="o2m")
"""


def _planted_bug(monkeypatch) -> None:  # noqa: ANN001
    def own_card(root):  # noqa: ANN001, ANN202
        raise RuntimeError("the card cache is on fire\nand this second line is not shown")
    monkeypatch.setattr("o2m_pub.friends.identity.own_card", own_card)


def test_an_unexpected_exception_is_one_internal_error_line(site, monkeypatch):
    """A bug inside a command (in-process, through `main`): exit status 1, nothing on
    stdout, and on stderr exactly the line naming the exception (its first line only)
    and the hint, no traceback."""
    _planted_bug(monkeypatch)
    result = CliRunner().invoke(main, ["-C", str(site.root), "whoami"],
                                catch_exceptions=False)
    assert 1 == result.exit_code
    assert "" == result.stdout
    assert ["o2m: internal error: RuntimeError: the card cache is on fire", HINT] == \
        result.stderr.splitlines()


def test_with_debug_the_unexpected_exception_goes_on_to_its_traceback(site, monkeypatch):
    """--debug: the dispatcher lets the exception through (Python prints its traceback)
    and prints no internal-error line of its own."""
    _planted_bug(monkeypatch)
    result = CliRunner().invoke(main, ["-C", str(site.root), "--debug", "whoami"])
    assert isinstance(result.exception, RuntimeError)
    assert result.exc_info is not None and result.exc_info[2] is not None
    assert "internal error" not in result.stderr


def test_an_unexpected_exception_in_a_real_process(site):
    """The same bug in a real process: one line and exit status 1; with --debug,
    Python's traceback down to the exception, and still exit status 1."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _WITH_A_BUG, "-C", str(site.root), *args],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    plain = run("whoami")
    assert 1 == plain.returncode
    assert ["o2m: internal error: RuntimeError: the card cache is on fire", HINT] == \
        plain.stderr.splitlines()
    debug = run("--debug", "whoami")
    assert 1 == debug.returncode
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert "RuntimeError: the card cache is on fire" in debug.stderr
    assert "internal error" not in debug.stderr


def test_ctrl_c_is_one_quiet_line_and_status_130(site, monkeypatch):
    """KeyboardInterrupt is not a bug: `o2m: interrupted`, exit status 130."""
    def own_card(root):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt
    monkeypatch.setattr("o2m_pub.friends.identity.own_card", own_card)
    result = CliRunner().invoke(main, ["-C", str(site.root), "whoami"],
                                catch_exceptions=False)
    assert 130 == result.exit_code
    assert ["o2m: interrupted"] == result.stderr.splitlines()


def test_usage_errors_stay_clicks(site):
    """A bad option value is click's usage error (exit status 2, its own message), not
    an internal error: the catch-all lets click's exceptions through."""
    result = run_o2m("timeline", "--limit", "0", cwd=site.root)
    assert 2 == result.returncode
    assert "Invalid value for '-n' / '--limit'" in result.stderr
    assert "internal error" not in result.stderr


def test_an_os_error_names_the_file_and_the_reason_and_promises_nothing(site):
    """A full disk while building (O2M_FAULT, writer.py): the file and the system's
    reason on one line, and a hint that says what to do, not what was kept."""
    site.post("2026/a.md", title="A")
    result = run_o2m("build", cwd=site.root, env={"O2M_FAULT": "enospc:1"})
    assert 1 == result.returncode
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"o2m: error: {site.root / 'build'}/")
    assert error.endswith(": No space left on device")
    assert "  hint: the disk is full: make room, then run the command again" == hint


def _fill(root, n: int) -> None:  # noqa: ANN001
    """`n` posts of one friend in the site's reader store, as `o2m fetch` stores them."""
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)
    rows = [PostRow(id=f"p{i}", audience="private", date=f"2026-11-{1 + i % 28:02}T08:00:00Z",
                    title=f"Post number {i} with a title long enough to fill the line",
                    markdown="Text.", object_hash="ef" * 32) for i in range(n)]
    with ReaderStore.open(root) as store:
        store.apply_update(FriendUpdate(friend="alice", sign_pk="A" * 43, state=FeedStateChange(
            succeeded_at="2026-11-30T11:00:00Z", first_seen="2026-11-01T00:00:00Z"),
            upserts=rows), now=now)


def test_a_closed_pipe_ends_the_timeline_quietly(site):
    """`o2m timeline | head -1` on a real pipe: the reader takes one line and closes
    its end while o2m still has more to write than the pipe holds, so o2m's next
    write fails (EPIPE). o2m stops without an error line (exit status 1, as click and
    rich do) and with no "Exception ignored" from Python's flush at exit."""
    _fill(site.root, 1000)
    proc = subprocess.Popen([sys.executable, "-m", "o2m_pub", "-C", str(site.root), "timeline",
                             "--limit", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert 1 == proc.wait(timeout=60)
    assert first.startswith(b"* ") and b"alice" in first
    assert b"" == stderr


def _o2m_errors() -> dict[str, str]:
    """Every O2MError subclass of the package: class name -> module (under o2m_pub.)."""
    import importlib
    import pkgutil

    import o2m_pub
    from o2m_pub.errors import O2MError

    for module in pkgutil.walk_packages(o2m_pub.__path__, "o2m_pub."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = {}, [O2MError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("o2m_pub."):  # not a test's own subclass
            found[cls.__name__] = cls.__module__.removeprefix("o2m_pub.")
        todo += cls.__subclasses__()
    return found


def test_the_tree_drawn_in_errors_py_is_the_whole_tree():
    """errors.py's docstring names every O2MError subclass of the package, each with
    the module it lives in, and names none that is gone (the audit found the drawing
    four classes long while fifty existed: B.5)."""
    import re

    import o2m_pub.errors

    doc = o2m_pub.errors.__doc__
    tree = doc[doc.index("    O2MError "):doc.index("\nOutside the tree")]
    drawn = dict(re.findall(r"^\s{4}[│├└─\s]*(_?[A-Z]\w+)\s+([a-z0-9_.]+)\s", tree, re.M))
    assert _o2m_errors() == drawn
