"""``lsci demo``: the main job end to end on the simulated camera (see :mod:`lsci.demo`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lsci.cli.stop_signals import (
    CLOSING_THE_RECORDING,
    Stopped,
    StoppedError,
    already_stopping,
    stop_requests,
)


def _report(text: str) -> None:
    # Status lines ("\r..." without a newline) rewrite themselves on a terminal; in a log only
    # the final line of each status ("\r...\n") is kept.
    if text.startswith("\r") and not sys.stderr.isatty():
        if not text.endswith("\n"):
            return
        text = text[1:]
    sys.stderr.write(text)
    sys.stderr.flush()


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lsci-demo-output"),
    show_default=True,
    help="Folder for the recordings, figures, ROI table and summary: new or empty.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a folder that is not empty, replacing files of the demo's names.",
)
@click.option("--view", is_flag=True, help="Open the result in napari afterwards.")
def demo(out_dir: Path, overwrite: bool, view: bool) -> None:
    """Simulate a needling session, from capture to before/after comparison.

    Records dark and static-target calibrations and a skin patch whose ischemic region recovers
    after a "needling" event, through the simulated camera and the live pipeline; processes the
    recording with its calibrations; compares perfusion before and after needling; and writes
    figures, a ROI table and a summary that states the recovered factor next to the truth.
    Ctrl-C, SIGTERM or SIGHUP stop it; the recordings made until then are closed complete.
    """
    # The demo runs the whole pipeline; its modules are loaded when it runs, not for --help.
    from lsci.demo import DemoFolderNotEmptyError, run_demo

    try:
        with stop_requests(already_stopping(CLOSING_THE_RECORDING), at_once=True):
            result = run_demo(out_dir, report=_report, overwrite=overwrite)
    except Stopped as exc:
        click.echo(err=True)  # after the status line
        raise StoppedError(
            f"{exc}: the demo did not finish; the recordings made so far in {out_dir} are "
            "closed and complete up to that moment",
            exc.signum,
        ) from None
    except DemoFolderNotEmptyError as error:
        raise click.UsageError(
            f"{error.folder} is not empty: the demo would replace the files of its names "
            "there, recordings included; choose a new or empty --out, or pass --overwrite"
        ) from None
    click.echo((result.out_dir / "summary.txt").read_text())
    click.echo(f"Results in {result.out_dir.resolve()}:")
    for path in result.files:
        click.echo(f"  {path.name}")
    if view:
        from lsci.cli.view import show

        show(result.recording)
