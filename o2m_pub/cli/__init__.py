"""The `o2m` command: with its modules, the only part of o2m that prints or exits.

    __init__.py   the `main` group, its global options, the dispatcher
    _common.py    output, error display, the site root, the passphrase, the time
    site.py       init, build, watch, demo, move
    identity.py   whoami, card, key …
    friends.py    friend …, group …
    hosting.py    serve, publish
    mentions.py   mention … (Webmention), and its wiring for serve and publish
    reading.py    fetch, timeline, show, notifications
    conversations.py  reply, react, thread
    desk.py       desk (and its old name, reader)

The dispatcher (`_Group.invoke`) turns what a command raises into what the user sees:
an `O2MError` is one line, ``o2m: error: <where>: <what>``, with a hint below it and
exit status 1; an unexpected `OSError` (a full disk, a permission) is such a line too,
naming the file and the system's reason; anything else is a bug, shown as one
``o2m: internal error: <Type>: <message>`` line and exit status 1. With ``--debug``
each of these shows its traceback instead. Ctrl-C is ``o2m: interrupted`` and exit
status 130; a closed pipe (``o2m timeline | head -1``) ends the command silently.

A usage error (an unknown option, a missing argument, a bad option value) has exit
status 2: click's own checks show click's message; o2m's checks of a value
(`_common.BadValueError`: `--since yesterday`, `-C` naming no folder) show one
``o2m: error: --option: …`` line with a hint. An argument that is not UTF-8 text (a
Latin-1 terminal) is such an error: every text parameter of every command checks it
(`_check_utf8_everywhere`) before the command runs. A text file a command reads for
the user goes through `_common.read_text_file`, which names a file that is not UTF-8,
as posts and o2m.toml do.

The command modules are imported only when one of their commands runs (`_COMMANDS`
names each command's module and carries its short help, so `o2m --help` imports none
of them; tests/cli/test_lazy_commands.py checks the table against the commands). The
command modules themselves import only click and light o2m modules at import time; the
heavy ones (the builder, Twisted, urllib3, PyNaCl, rich) are imported inside the
command that uses them, so `o2m build` starts without loading `o2m serve`'s world.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path
from typing import Any, Callable

import click

from o2m_pub import __version__
from o2m_pub.cli._common import (
    check_utf8,
    fail,
    internal_error,
    os_error,
    quiet_broken_pipe,
)
from o2m_pub.errors import O2MError


# name: (module in o2m_pub.cli, its attribute, the short help `o2m --help` shows: the
# first sentence of the command's docstring). A new command gets a line here.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("site", "init",
        ("Create a new site: config, your keys, TLS certificate and card, a sample post, and "
         "site_templates/ for your changes to the theme.")),
    "build": ("site", "build", "Render content/ into build/, redoing only what changed."),
    "watch": ("site", "watch",
        "Build, then rebuild on every save in content/, site_templates/, o2m.toml and keys/."),
    "demo": ("site", "demo",
        "Three people, three sites, three real servers: build, serve, fetch, read."),
    "move": ("site", "move", "Move your site to NEW_URL: o2m.toml, a new card, a build."),
    "whoami": ("identity", "whoami",
        "Show your name, URL and key fingerprint (compare it aloud with friends)."),
    "card": ("identity", "card",
        "Print your contact card, to send to a friend (`o2m friend add` reads it)."),
    "friend": ("friends", "friend",
        "Your friends: invite them or add their cards; list, rename, remove."),
    "group": ("friends", "group", "Groups of friends, usable as an audience (e.g."),
    "key": ("identity", "key",
        "Your secret keys: change the passphrase, back them up, restore them."),
    "serve": ("hosting", "serve",
        "Serve build/ over HTTPS until Ctrl-C or SIGTERM (SIGHUP reloads the certificate)."),
    "publish": ("hosting", "publish",
        "Build, then copy build/ to TARGET: a folder, or an rclone remote such as host:www."),
    "mention": ("mentions", "mention",
        "Webmentions: received for your public posts, and sent for them."),
    "fetch": ("reading", "fetch",
        "Fetch friends' feeds (all, or FRIENDS): verify, decrypt, store for `o2m timeline`."),
    "timeline": ("reading", "timeline", "Your friends' posts, newest first; * marks the unread."),
    "show": ("reading", "show", "Print one post in full with its attachments, and mark it read."),
    "notifications": ("reading", "notifications",
        ("New friends' feeds, key changes, unreachable or stale friends; listed ones are "
         "marked seen.")),
    "reply": ("conversations", "reply",
        ("Reply to a post (ID as `o2m timeline` or `o2m show` gives it), a friend's or one "
         "of yours (continuing its thread): writes a post in content/replies/ with "
         "`reply_to:` filled in; `o2m build` publishes it.")),
    "react": ("conversations", "react",
        ("React to a post with one emoji (one per post: a new one replaces it); `o2m build` "
         "publishes it.")),
    "thread": ("conversations", "thread",
        "Threads: show one, or hide a reply from a thread of yours."),
    "desk": ("desk", "desk", "Your desk in the browser: read friends, write posts, add friends."),
    "reader": ("desk", "reader", "The same as `o2m desk` (its old name)."),
}


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.obj and ctx.obj.get("debug"))


def _invoke_then_flush(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:  # noqa: ANN401
    """Run the command, then flush stdout, so that a reader gone away (a closed pipe)
    shows here, where it can end the command quietly, and not at interpreter exit."""
    try:
        result = invoke(ctx)
    except SystemExit:
        sys.stdout.flush()
        raise
    sys.stdout.flush()
    return result


class _Group(click.Group):
    """The dispatcher: every exception a command raises becomes one line (see the
    module docstring); with --debug, a traceback. Its commands are loaded on first use
    (`_COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported now; None for a name o2m lacks."""
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            module, attribute, _short_help = _COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"o2m_pub.cli.{module}"), attribute)
            _accept_passphrase_file_everywhere(command)
            _check_utf8_everywhere(command)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """click's, but a name o2m lacks is compared with every command's, loaded or not
        (click looks among the loaded ones: none yet): `o2m biuld` asks "Did you mean
        'build'?"."""
        name = args[0]
        if not ctx.resilient_parsing and not name.startswith("-") \
                and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, _COMMANDS, n=3)
            if close:
                raise click.UsageError(f"No such command {name!r}.\nDid you mean "
                                       f"{' or '.join(map(repr, close))}?", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`o2m --help`'s list of commands, from `_COMMANDS` alone: click shortens each
        short help to the terminal's width just as it does a loaded command's."""
        if any(name not in self.commands for name in _COMMANDS):
            listed = click.Group(self.name, {
                name: self.commands.get(name) or click.Command(name, help=short_help)
                for name, (_module, _attribute, short_help) in _COMMANDS.items()})
            listed.format_commands(ctx, formatter)
        else:
            super().format_commands(ctx, formatter)

    def invoke(self, ctx: click.Context) -> Any:  # noqa: ANN401
        try:
            return _invoke_then_flush(super().invoke, ctx)
        except BrokenPipeError:  # before OSError: the reader of our output went away
            quiet_broken_pipe()
        except O2MError as e:
            if _debug(ctx):
                raise
            fail(e)
        except OSError as e:  # a full disk, a permission: the user's to mend, one line
            if _debug(ctx):
                raise
            fail(os_error(e))
        except KeyboardInterrupt:
            click.echo("o2m: interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own (usage errors, --help, an aborted prompt): click shows them
        except Exception as e:  # a bug: one line, and the way to its traceback
            if _debug(ctx):
                raise
            internal_error(e)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--site", type=click.Path(file_okay=False, path_type=Path),
              help="Run as if started in this site folder.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the key passphrase from this file (else $O2M_PASSPHRASE, else ask).")
@click.version_option(__version__, prog_name="o2m")
@click.pass_context
def main(ctx: click.Context, site: Path | None, debug: bool,
         passphrase_file: Path | None) -> None:
    """o2m: your posts as static files, for the public and for your friends."""
    ctx.obj = {"site": site, "debug": debug, "passphrase_file": passphrase_file}


def _remember_passphrase_file(ctx: click.Context, _param: click.Parameter,
                              value: Path | None) -> None:
    if value is not None:
        ctx.obj["passphrase_file"] = value  # the dict `main` made, shared with ctx.parent


def _accept_passphrase_file_everywhere(command: click.Command) -> None:
    """`--passphrase-file FILE` after the command too (`o2m build --passphrase-file F`),
    as the hints and the README write it: every command, and every command of a group,
    takes the global option."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_passphrase_file_everywhere(sub)
    elif not any(p.name == "passphrase_file" for p in command.params):
        command.params.append(click.Option(
            ["--passphrase-file"], type=click.Path(dir_okay=False, path_type=Path),
            expose_value=False, callback=_remember_passphrase_file,
            help="Read the key passphrase from this file (as `o2m --passphrase-file`)."))


def _check_utf8_everywhere(command: click.Command) -> None:
    """Every text parameter of every command refuses an argument that is not UTF-8 as
    a usage error naming it (`check_utf8`), before the command sees it: such text
    (Python's lone surrogates) would fail wherever it is written or printed. File
    names (click.Path) are left as the system gives them; a number or a choice that is
    not UTF-8 is refused by click's own check, which names it too."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _check_utf8_everywhere(sub)
    for param in command.params:
        if isinstance(param.type, click.Path) or getattr(param, "is_flag", False):
            continue
        param.callback = _checked(param.callback)


def _checked(callback: Callable[..., Any] | None) -> Callable[..., Any]:
    """`callback` (a parameter's, or None), after `check_utf8`."""
    def check_then_call(ctx: click.Context, param: click.Parameter,
                        value: Any) -> Any:  # noqa: ANN401
        check_utf8(ctx, param, value)
        return value if callback is None else callback(ctx, param, value)
    return check_then_call
