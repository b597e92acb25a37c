"""The ``lsci`` command's top level."""

import subprocess
import sys

import click
from click.testing import CliRunner

import lsci
from lsci.cli import COMMANDS, main


def test_version_matches_package() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert lsci.__version__ in result.output


def test_help_lists_every_registered_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1].splitlines()
    assert sorted(line.split()[0] for line in listed if line.strip()) == sorted(COMMANDS)


def test_every_registered_command_resolves_to_its_click_command() -> None:
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        # The name click shows in the command's usage is the one it is called by.
        assert command.name == name


def test_a_subcommand_loads_only_its_own_module() -> None:
    # A fresh interpreter: the test process has long imported everything.
    script = (
        "import sys\n"
        "from lsci.cli import main\n"
        "assert main(['info', '--help'], 'lsci', standalone_mode=False) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(run.stdout.split())
    assert "Usage: lsci info" in run.stdout
    # The stop-signal module is shared by the group itself (Ctrl-C while a command loads).
    expected = {"lsci.cli", "lsci.cli.stop_signals", "lsci.cli.info"}
    assert {name for name in loaded if name.startswith("lsci.cli")} == expected
    assert "scipy.signal" not in loaded
