"""The ``lsci`` command.

Each subcommand lives in its own module of this package and is registered here. lsci's own
errors (:class:`lsci.errors.LsciError`) are shown as one clear message without a traceback.
"""

from __future__ import annotations

from typing import Any

import click

from lsci._version import __version__
from lsci.errors import LsciError


class LsciGroup(click.Group):
    """A command group that turns lsci's errors into a message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LsciError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LsciGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lsci")
def main() -> None:
    """Laser speckle contrast imaging: capture, process, store and compare perfusion maps."""


def _register() -> None:
    from lsci.cli.acquire import acquire
    from lsci.cli.cameras import cameras
    from lsci.cli.demo import demo
    from lsci.cli.export import export_command
    from lsci.cli.info import info
    from lsci.cli.process import process
    from lsci.cli.study import study
    from lsci.cli.view import view

    for command in (acquire, cameras, demo, export_command, info, process, study, view):
        main.add_command(command)


_register()
