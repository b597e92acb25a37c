"""The ``lsci`` command's top level."""

from click.testing import CliRunner

import lsci
from lsci.cli import main


def test_version_matches_package() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert lsci.__version__ in result.output
