"""The `o2m` group loads a command's module only when that command runs: its table of
names, modules and short helps (`o2m_pub.cli._COMMANDS`) must match the real commands."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from o2m_pub.cli import _COMMANDS, main

_MODULES = ("site", "identity", "friends", "hosting", "mentions", "reading", "conversations", "desk")


def _real_commands() -> dict[str, click.Command]:
    """Every top-level command the command modules define: each click command at module
    level that is not a subcommand of one of their groups, by its name."""
    found = {}
    for module in _MODULES:
        for value in vars(importlib.import_module(f"o2m_pub.cli.{module}")).values():
            if isinstance(value, click.Command):
                found[id(value)] = value
    inside_groups = {id(sub) for command in found.values() if isinstance(command, click.Group)
                     for sub in command.commands.values()}
    return {command.name: command for key, command in found.items() if key not in inside_groups}


def test_the_table_names_every_command_and_its_module():
    """Every command of the modules is in the table, under its own name, and the table's
    module and attribute lead to that very command: none missing, none stale."""
    real = _real_commands()
    assert sorted(real) == sorted(_COMMANDS)
    for name, (module, attribute, _short_help) in _COMMANDS.items():
        command = getattr(importlib.import_module(f"o2m_pub.cli.{module}"), attribute)
        assert command is real[name]
        assert main.get_command(click.Context(main), name) is command


def test_the_table_short_helps_are_the_commands_own():
    """Each short help in the table is shortened by click, at any width, exactly as the
    command's own docstring would be: `o2m --help` reads the same loaded or not."""
    real = _real_commands()
    for name, (_module, _attribute, short_help) in _COMMANDS.items():
        listed = click.Command(name, help=short_help)
        for limit in range(10, 240, 7):
            assert real[name].get_short_help_str(limit) == listed.get_short_help_str(limit), name


def test_help_lists_every_command_without_importing_them():
    """`o2m --help` in a fresh process lists every command with the short help a loaded
    group would show, and imports none of the command modules to do it."""
    script = (
        "import sys\n"
        "from o2m_pub.cli import main\n"
        "try:\n"
        "    main(['--help'], prog_name='o2m')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(m for m in sys.modules if m.startswith('o2m_pub.cli.')), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, env={"COLUMNS": "80", "PATH": ""})
    help_text, loaded = result.stdout, result.stderr.split()
    assert "o2m_pub.cli._common" in loaded  # (the check sees what was imported)
    assert [] == [m for m in _MODULES if f"o2m_pub.cli.{m}" in loaded]

    eager = click.Group("o2m", commands=_real_commands())
    formatter = click.HelpFormatter(width=78)
    eager.format_commands(click.Context(eager), formatter)
    assert formatter.getvalue() in help_text
    for name in _COMMANDS:
        assert f"\n  {name} " in help_text


def test_a_mistyped_command_is_told_the_closest_names_of_all():
    """`o2m biuld`: a usage error (exit 2) that names the closest commands, though none
    is loaded yet (click alone looks among the loaded ones); a name like no command
    gets no guess."""
    from click.testing import CliRunner
    for typed, guess in (("biuld", "'build'"), ("timline", "'timeline'"), ("frend", "'friend'")):
        result = CliRunner().invoke(main, [typed])
        assert 2 == result.exit_code
        assert f"No such command '{typed}'.\nDid you mean {guess}" in result.output
    result = CliRunner().invoke(main, ["xyzzy"])
    assert 2 == result.exit_code and "Did you mean" not in result.output
