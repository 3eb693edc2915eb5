"""The `o2m` command: with its modules, the only part of o2m that prints or exits.

    __init__.py   the `main` group, its global options, the dispatcher
    _common.py    output, error display, the site root, the passphrase, the time
    site.py       init, build, watch, demo
    friends.py    whoami, card, friend …, group …, key …
    hosting.py    serve, publish
    reading.py    fetch, timeline, show, notifications, reader

Every user error is an `O2MError`, shown as one line, ``o2m: error: <where>: <what>``,
with a hint below it and exit status 1; tracebacks only with ``--debug``.

The command modules import only click and light o2m modules at import time; the
heavy ones (the builder, Twisted, urllib3, PyNaCl, rich) are imported inside the
command that uses them, so `o2m --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from o2m_pub import __version__
from o2m_pub.cli import friends, hosting, reading, site
from o2m_pub.cli._common import fail
from o2m_pub.errors import O2MError


class _Group(click.Group):
    """Turns O2MError into one line (and everything else into a traceback only with --debug)."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except O2MError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            fail(e)
        except OSError as e:  # a full disk, a permission: the user's to mend, one line
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = f"{e.filename}: " if e.filename else ""
            fail(O2MError(f"{where}{e.strerror or e}",
                          hint="nothing was half-written; fix this and run the command again"))
        except KeyboardInterrupt:
            click.echo("o2m: interrupted", err=True)
            sys.exit(130)


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
    site.init, site.build, site.watch, site.demo,
    friends.whoami, friends.card, friends.friend, friends.group, friends.key,
    hosting.serve, hosting.publish,
    reading.fetch, reading.timeline, reading.show, reading.notifications, reading.reader,
):
    main.add_command(_command)
del _command
