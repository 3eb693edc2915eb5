"""The `o2m` command: with its modules, the only part of o2m that prints or exits.

    __init__.py   the `main` group, its global options, the dispatcher
    _common.py    output, error display, the site root, the passphrase, the time
    site.py       init, build, watch, demo, move
    friends.py    whoami, card, friend …, group …, key …
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

The command modules import only click and light o2m modules at import time; the
heavy ones (the builder, Twisted, urllib3, PyNaCl, rich) are imported inside the
command that uses them, so `o2m --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click

from o2m_pub import __version__
from o2m_pub.cli import conversations, desk, friends, hosting, mentions, reading, site
from o2m_pub.cli._common import fail, internal_error, os_error, quiet_broken_pipe
from o2m_pub.errors import O2MError


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
    module docstring); with --debug, a traceback."""

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


for _command in (
    site.init, site.build, site.watch, site.demo, site.move,
    friends.whoami, friends.card, friends.friend, friends.group, friends.key,
    hosting.serve, hosting.publish, mentions.mention,
    reading.fetch, reading.timeline, reading.show, reading.notifications,
    conversations.reply, conversations.react, conversations.thread,
    desk.desk, desk.reader,
):
    main.add_command(_command)
del _command


def _remember_passphrase_file(ctx: click.Context, _param: click.Parameter,
                              value: Path | None) -> None:
    if value is not None:
        ctx.obj["passphrase_file"] = value  # the dict `main` made, shared with ctx.parent


def _accept_passphrase_file_everywhere(group: click.Group) -> None:
    """`--passphrase-file FILE` after the command too (`o2m build --passphrase-file F`),
    as the hints and the README write it: every command takes the global option."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_passphrase_file_everywhere(command)
        elif not any(p.name == "passphrase_file" for p in command.params):
            command.params.append(click.Option(
                ["--passphrase-file"], type=click.Path(dir_okay=False, path_type=Path),
                expose_value=False, callback=_remember_passphrase_file,
                help="Read the key passphrase from this file (as `o2m --passphrase-file`)."))


_accept_passphrase_file_everywhere(main)
