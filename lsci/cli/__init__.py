"""The ``lsci`` command.

Each subcommand lives in its own module of this package and is registered here. lsci's own
errors (:class:`lsci.errors.LsciError`) are shown as one clear message without a traceback,
and warnings as one line each.
"""

from __future__ import annotations

import warnings
from typing import Any, TextIO

import click

from lsci._version import __version__
from lsci.errors import LsciError
from lsci.recording.errors import RecordingWarning


class LsciGroup(click.Group):
    """A command group that turns lsci's errors into a message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # What lsci warns about in a file is for the user to read, once per message.
            warnings.simplefilter("default", RecordingWarning)
            try:
                return super().invoke(ctx)
            except LsciError as exc:
                raise click.ClickException(str(exc)) from exc


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


def _register() -> None:
    from lsci.cli.acquire import acquire
    from lsci.cli.cameras import cameras
    from lsci.cli.compare import compare
    from lsci.cli.demo import demo
    from lsci.cli.export import export_command
    from lsci.cli.import_cmd import import_command
    from lsci.cli.info import info
    from lsci.cli.process import process
    from lsci.cli.repair import repair
    from lsci.cli.scale import scale
    from lsci.cli.study import study
    from lsci.cli.view import view

    for command in (
        acquire,
        cameras,
        compare,
        demo,
        export_command,
        import_command,
        info,
        process,
        repair,
        scale,
        study,
        view,
    ):
        main.add_command(command)


_register()
