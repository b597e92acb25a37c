"""The ``lsci`` command."""

import click

from lsci._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lsci")
def main() -> None:
    """Laser speckle contrast imaging: capture, process, store and compare perfusion maps."""
