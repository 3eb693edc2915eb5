"""What every command module of `o2m_pub.cli` shares: output and error display, the
site root, the passphrase, the time, the build's progress bar.

The only place, with the command modules, that prints or exits. Light on purpose:
click and o2m's config and errors at import; rich, PyNaCl and the key file code only
when a function needs them (`o2m --help` stays fast).

Error display (STYLE.md §4): one line ``o2m: error: <where>: <what>``, a hint below
it, exit status 1. An unexpected exception (a bug) is one ``o2m: internal error:``
line; its traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator, NoReturn

import click

from o2m_pub.config import find_site_root
from o2m_pub.errors import O2MError, Problem, SiteError

# -- output ------------------------------------------------------------------------


def out(text: str = "") -> None:
    click.echo(text)


@lru_cache(maxsize=1)
def stderr_console():  # noqa: ANN201 - rich.console.Console, imported only when needed
    from rich.console import Console
    return Console(stderr=True, highlight=False, soft_wrap=True)


def error_line(text: str, hint: str | None, *, label: str = "error") -> None:
    """`o2m: error: ...` and its hint; user text is escaped (it may hold [brackets])."""
    from rich.markup import escape
    stderr_console().print(f"[bold red]o2m: {label}:[/] {escape(text)}", emoji=False)
    if hint:
        stderr_console().print(f"  [dim]hint: {escape(hint)}[/]", emoji=False)


def warn(text: str) -> None:
    from rich.markup import escape
    stderr_console().print(f"[yellow]o2m: warning:[/] {escape(text)}", emoji=False)


def fail(e: O2MError) -> NoReturn:
    where = e.where
    error_line(f"{where + ': ' if where else ''}{e}", e.hint)
    sys.exit(1)


def report_problem(p: Problem) -> None:
    error_line(str(p), p.hint)


# -- errors that are not O2MErrors -------------------------------------------------

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: make room, then run the command again",
    errno.EDQUOT: "your disk quota is used up: make room, then run the command again",
    errno.EACCES: "check who may read and write there, then run the command again",
    errno.EPERM: "check who may read and write there, then run the command again",
    errno.EROFS: "that file system is read-only: use another place, or remount it",
    errno.ENOENT: "check the path, then run the command again",
    errno.ENAMETOOLONG: "that name is too long for a file name; check what was passed",
}


def os_error(e: OSError) -> O2MError:
    """An OSError the command did not expect (a full disk, a permission) as one line:
    the file it is about and the operating system's reason, nothing more (whether a
    file was left half-written depends on the command; this line does not promise)."""
    where = f"{e.filename}" if e.filename is not None else None
    if where is not None and e.filename2 is not None:
        where += f" -> {e.filename2}"
    reason = e.strerror or str(e) or e.__class__.__name__
    return O2MError(reason, path=where,
                    hint=_OS_HINTS.get(e.errno, "fix the cause, then run the command again"))


def internal_error(e: BaseException) -> NoReturn:
    """A bug: one line naming the exception, a hint to rerun with --debug, exit 1."""
    lines = str(e).strip().splitlines()
    text = f"{e.__class__.__name__}: {lines[0]}" if lines else e.__class__.__name__
    error_line(text[:300], "run again with --debug for the traceback, and report it",
               label="internal error")
    sys.exit(1)


def quiet_broken_pipe() -> NoReturn:
    """The reader of our output went away (`o2m timeline | head -1`): stop without a
    word. Whatever is still buffered for stdout goes to /dev/null, so that Python's
    flush at exit does not complain either (as the Python docs advise for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a test's capture): nothing to drop
        pass
    sys.exit(1)


# -- text from outside: arguments and files ------------------------------------------

_UTF8_HINT = ("o2m takes UTF-8 text: set your terminal to UTF-8 (e.g. export "
              "LANG=C.UTF-8) and type it again")


def _shown(text: str) -> str:
    """Text holding undecodable bytes (lone surrogates, as Python decodes them from
    argv), with each such byte as \\xNN: printable, and naming the bytes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _not_utf8(value: object) -> str | None:
    """The first string in `value` (a string, or a tuple of them) that is not UTF-8."""
    for text in (value if isinstance(value, tuple) else (value,)):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return text
    return None


class BadValueError(click.BadParameter):
    """An option's or an argument's value that cannot be used (`--since yesterday`): a
    usage error, exit status 2 as click's own are (`--page 0`), shown as o2m shows its
    errors: one line naming the option, and a hint."""

    def __init__(self, where: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, param_hint=where)
        self.where, self.hint = where, hint

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        error_line(f"{self.where}: {self.message}", self.hint)


class ArgumentNotUTF8Error(BadValueError):
    """A command-line argument that is not UTF-8 text (Python hands such bytes over as
    lone surrogates, which no file, database or page can hold)."""

    def __init__(self, param: click.Parameter, text: str) -> None:
        where = (" / ".join(param.opts) if isinstance(param, click.Option)
                 else param.human_readable_name)
        super().__init__(where, f"'{_shown(text)}' is not UTF-8 text", _UTF8_HINT)


def check_utf8(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """Refuse an argument that is not UTF-8 (`o2m reply ID --text $'caf\\xe9'`), naming
    its option, before any command uses it. The dispatcher calls it for every text
    parameter of every command; a file name (click.Path) is the system's to judge, and
    may hold any bytes.

    Raises:
        ArgumentNotUTF8Error: the value, or one of its values, is not UTF-8.
    """
    bad = _not_utf8(value)
    if bad is not None:
        raise ArgumentNotUTF8Error(param, bad)


def read_text_file(path: Path) -> str:
    """A text file the user names (`o2m reply --file`), as text: UTF-8, a byte order
    mark dropped, as posts and o2m.toml are read.

    Raises:
        O2MError: the file is not UTF-8 text (naming the file and the line), or cannot
            be read (OSError, which the dispatcher shows as one line).
    """
    return decode_text(path.read_bytes(), str(path))


_SAVE_AS_UTF8 = ("save the file as UTF-8 (most editors offer it under \"Save as\" or "
                 "\"Encoding\"), or convert it: iconv -f WINDOWS-1252 -t UTF-8")


def decode_text(data: bytes, where: str, hint: str = _SAVE_AS_UTF8) -> str:
    """`data` as text: UTF-8, a byte order mark dropped.

    Raises:
        O2MError: not UTF-8 text, naming `where` and the line of the first bad byte.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise O2MError("not UTF-8 text", path=f"{where}:{line}", hint=hint) from None


# -- the build's progress bar -------------------------------------------------------


class RichProgress:
    """The builder's progress protocol on a rich progress bar (only on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=stderr_console(), transient=True)
        self.task = None

    def start(self, label: str, total: int) -> None:
        if total < 200:
            self.task = None
            return
        if self.task is None and not self.bar.live.is_started:
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar.live.is_started:
            self.bar.stop()


# -- the site, the passphrase, the time ---------------------------------------------


def site_root(ctx: click.Context) -> Path:
    """The site the command works on: the nearest o2m.toml at or above -C's folder (else
    the current one).

    Raises:
        BadValueError: -C names no folder (a usage error: exit status 2).
        SiteError: no o2m.toml there or above.
    """
    given = ctx.obj.get("site")
    if given is not None and not given.is_dir():
        raise BadValueError("-C", f"{given}: no such folder",
                            hint="check the path; `o2m init DIR` makes a new site")
    start = given or Path.cwd()
    root = find_site_root(start)
    if root is None:
        raise SiteError(f"no o2m.toml in {start} or above: not an o2m site",
                        hint="run `o2m init` to make one, or pass -C SITE_DIR")
    return root


PASSPHRASE_TRIES = 3  # at a terminal, as sudo and ssh give

# Each passphrase's variable and the option that names a file for it instead: what the
# hint says when there is no terminal to ask at. --passphrase-file is the key's own
# passphrase only; keys/next.secret's (O2M_NEXT_PASSPHRASE) has no option.
PASSPHRASE_FILE_OPTIONS = {
    "O2M_PASSPHRASE": "--passphrase-file",
    "O2M_NEW_PASSPHRASE": "--new-passphrase-file",
    "O2M_EXPORT_PASSPHRASE": "--export-passphrase-file",
    "O2M_NEXT_PASSPHRASE": None,
}


def read_passphrase(ctx: click.Context, prompt: str = "Passphrase", *, new: bool = False,
                    file_option: Path | None = None,
                    env_name: str = "O2M_PASSPHRASE") -> bytes:
    """A passphrase from a file, the environment, or (on a terminal only) a prompt."""
    return obtain_passphrase(ctx, prompt, new=new, file_option=file_option,
                            env_name=env_name)[0]


def obtain_passphrase(ctx: click.Context, prompt: str, *, new: bool = False,
                     file_option: Path | None = None,
                     env_name: str = "O2M_PASSPHRASE") -> tuple[bytes, bool]:
    """(the passphrase, whether a person typed it). The time spent at the prompt is
    added to ctx.obj["prompt_seconds"], so a build's time does not count it."""
    import time

    from o2m_pub.friends.identity import passphrase_from_env_or_file
    from o2m_pub.protocol.keyfile import PassphraseError

    # --passphrase-file is the key's own passphrase: never a backup's or a new one's
    source = file_option if file_option is not None or env_name != "O2M_PASSPHRASE" \
        else ctx.obj.get("passphrase_file")
    env = {"O2M_PASSPHRASE": os.environ[env_name]} if env_name in os.environ else {}
    value = passphrase_from_env_or_file(env, source)
    if value is not None:
        return value, False
    if not sys.stdin.isatty():
        option = PASSPHRASE_FILE_OPTIONS[env_name]
        raise PassphraseError(f"{prompt.lower()} needed, and stdin is not a terminal",
                              hint=f"set {env_name}" + (f" or pass {option} FILE" if option
                                                         else ""))
    started = time.monotonic()
    try:
        return click.prompt(prompt, hide_input=True, confirmation_prompt=new).encode(), True
    finally:
        ctx.obj["prompt_seconds"] = ctx.obj.get("prompt_seconds", 0.0) + (
            time.monotonic() - started)


def passphrase_hint(env_name: str) -> str:
    """What a wrong passphrase's hint says for the passphrase read from `env_name`."""
    option = PASSPHRASE_FILE_OPTIONS[env_name]
    return f"check the passphrase; {env_name}{f' or {option}' if option else ''} if scripted"


@contextmanager
def wrong_passphrase_for(what: str, env_name: str) -> Iterator[None]:
    """A wrong passphrase, in the block, named as the passphrase of `what` (a backup,
    keys/next.secret), with the hint for its own variable and option: the key file
    code's hint names the key's own ($O2M_PASSPHRASE, --passphrase-file)."""
    from o2m_pub.protocol.keyfile import WrongPassphraseError
    try:
        yield
    except WrongPassphraseError:
        raise WrongPassphraseError(f"wrong passphrase for {what} (or the file was altered)",
                                   hint=passphrase_hint(env_name)) from None


def unlock_identity(ctx: click.Context, root: Path, prompt: str = "Passphrase"):  # noqa: ANN201
    """The site's identity (`identity.Identity`), unlocked with a passphrase from a
    file, the environment or a prompt; a mistyped one at the prompt gets
    PASSPHRASE_TRIES tries in all.

    Raises:
        WrongPassphraseError: the last try was wrong, or the passphrase came from a
            file or the environment (nobody there to try again).
    """
    return unlock_with_passphrase(ctx, root, prompt)[0]


def unlock_with_passphrase(ctx: click.Context, root: Path,
                           prompt: str = "Passphrase"):  # noqa: ANN201 - (Identity, bytes)
    """`unlock_identity`, and the passphrase that opened it (to re-seal with it)."""
    from o2m_pub.friends.identity import load_identity
    from o2m_pub.protocol.keyfile import WrongPassphraseError

    for attempt in range(1, PASSPHRASE_TRIES + 1):
        passphrase, typed = obtain_passphrase(ctx, prompt)
        try:
            return load_identity(root, passphrase), passphrase
        except WrongPassphraseError:
            if not typed or attempt == PASSPHRASE_TRIES:
                raise
            click.echo("Wrong passphrase, try again.", err=True)
    raise AssertionError("unreachable")  # pragma: no cover


def kdf_limits(strength: str) -> dict[str, int]:
    from nacl.pwhash import argon2id
    name = strength.upper()
    return {"opslimit": getattr(argon2id, f"OPSLIMIT_{name}"),
            "memlimit": getattr(argon2id, f"MEMLIMIT_{name}")}


KDF_OPTION = click.option(
    "--kdf", "kdf", type=click.Choice(["interactive", "moderate", "sensitive"]),
    default=lambda: os.environ.get("O2M_KDF", "moderate"), show_default="moderate, or $O2M_KDF",
    help="Argon2id strength for sealing the key (moderate: about 0.5 s to unlock).")


def local_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).astimezone()


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
