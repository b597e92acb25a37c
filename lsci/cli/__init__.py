"""The ``lsci`` command.

Each subcommand lives in its own module of this package and is listed in :data:`COMMANDS`.
A subcommand's module is imported only when that subcommand is used (or ``lsci --help`` lists
the short help of all of them), so that ``lsci info`` does not wait for what ``lsci compare``
needs. lsci's own errors (:class:`lsci.errors.LsciError`) are shown as one clear message
without a traceback, and warnings as one line each.
"""

from __future__ import annotations

import importlib
import signal
import warnings
from collections.abc import Mapping
from typing import Any, TextIO

import click

from lsci._version import __version__
from lsci.cli.stop_signals import STOP_SIGNALS, StoppedError
from lsci.errors import LsciError

#: Subcommands of ``lsci``: name on the command line → ``"module:attribute"`` of its click
#: command. A new subcommand is added here.
COMMANDS: Mapping[str, str] = {
    "acquire": "lsci.cli.acquire:acquire",
    "cameras": "lsci.cli.cameras:cameras",
    "compare": "lsci.cli.compare:compare",
    "demo": "lsci.cli.demo:demo",
    "export": "lsci.cli.export:export_command",
    "import": "lsci.cli.import_cmd:import_command",
    "info": "lsci.cli.info:info",
    "process": "lsci.cli.process:process",
    "repair": "lsci.cli.repair:repair",
    "scale": "lsci.cli.scale:scale",
    "study": "lsci.cli.study:study",
    "view": "lsci.cli.view:view",
}


def load_command(target: str) -> click.Command:
    """The click command at ``target`` (``"module:attribute"``), importing its module."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class LsciGroup(click.Group):
    """A command group that loads its subcommands from :data:`COMMANDS` when they are used and
    turns lsci's errors into a message and exit status 1."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The ``lsci`` program (CliRunner calls ``main.main``, so a test process keeps its
        # handlers): once the command has ended, a stop signal changes nothing, and must
        # neither print a traceback while the interpreter exits nor replace the exit status.
        try:
            return super().__call__(*args, **kwargs)
        finally:
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            return load_command(COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke_with_warnings(ctx)
        except LsciError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            # Ctrl-C in a command without stop handlers, or while one is loading: one line
            # and the conventional status, as for the commands that handle it.
            click.echo(err=True)
            raise StoppedError("stopped by SIGINT", signal.SIGINT) from None

    def _invoke_with_warnings(self, ctx: click.Context) -> Any:
        # Imported here, not with this module: Ctrl-C while the ``lsci`` program starts then
        # comes inside click, not in a traceback; and lsci.recording loads h5py and NumPy.
        from lsci.recording.errors import RecordingWarning

        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # What lsci warns about in a file is for the user to read, once per message.
            warnings.simplefilter("default", RecordingWarning)
            return super().invoke(ctx)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as one line on standard error, without Python's file and line."""
    click.echo(f"Warning: {message}", err=True)


@click.group(cls=LsciGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lsci")
def main() -> None:
    """Laser speckle contrast imaging: capture, process, store and compare perfusion maps."""
