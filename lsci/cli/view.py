"""``lsci view FILE``: a recording in napari, with lsci's widgets docked."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from lsci.recording import open_recording

__all__ = ["DOCKED_WIDGETS", "open_viewer", "view"]

#: Widgets of the napari_lsci plugin docked next to the recording, by display name: the bedside
#: workspace with its companions (napari_lsci._bedside).
DOCKED_WIDGETS = (
    "lsci: bedside",
    "Acquire",
    "Process",
    "Compare before/after",
    "Events",
    "ROI traces",
)

_INSTALL_HINT = 'install the napari extra: pip install "lsci[napari]"'


def _display_problem() -> str | None:
    """Why no window can be shown, or None when a display is available."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display: napari needs a graphical session, and neither DISPLAY nor WAYLAND_DISPLAY "
        "is set. Run it on the desktop, over ssh -X, or under xvfb-run"
    )


def open_viewer(path: str | Path | None, viewer: Any = None) -> dict[str, Any]:
    """Open a recording through the plugin's reader in the bedside layout.

    The window fills the screen; the bedside dock, Acquire, Process, Compare and Events are
    tabs on the right, the ROI traces below the image; the recording opens at its first
    frame, its slider in seconds.

    Parameters
    ----------
    path : str or pathlib.Path or None
        The recording; None opens the layout to acquire.
    viewer : napari.viewer.Viewer, optional
        The viewer to use; a new one by default.

    Returns
    -------
    dict
        ``"viewer"`` and each docked widget by display name.
    """
    import napari

    # The plugin's layout (napari_lsci is not type-checked with lsci).
    bedside: Any = importlib.import_module("napari_lsci._bedside")
    title = "lsci" if path is None else f"lsci — {Path(path).name}"
    viewer = napari.Viewer(title=title) if viewer is None else viewer
    if path is not None:
        viewer.open(str(path), plugin="lsci")
    # In micrometres on the skin when the recording states its optics, else in pixels.
    _scale_bar(viewer).visible = True
    opened: dict[str, Any] = bedside.open_bedside(viewer)
    if path is not None:
        bedside.recording_time_axis(viewer, path)
    return opened


def _scale_bar(viewer: Any) -> Any:
    """The viewer's scale bar overlay (napari >= 0.9 keeps it among the canvas overlays)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar


def show(path: Path | None) -> None:
    """Open napari on the recording ``path`` (or to acquire) until its window is closed.

    Raises
    ------
    click.ClickException
        When napari cannot be imported or no display is available.
    """
    try:
        import napari
    except ImportError as exc:
        raise click.ClickException(f"napari cannot be imported ({exc}): {_INSTALL_HINT}") from None
    problem = _display_problem()
    if problem is not None:
        raise click.ClickException(problem)
    open_viewer(path)
    napari.run()


@click.command()
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def view(file: Path | None) -> None:
    """The bedside workspace in napari: acquire live, or show the recording FILE.

    Raw frames, stored maps, events, live acquisition with its calibrated perfusion,
    hypoperfused area and ROI traces, the before/after comparison and its export.
    """
    # Checked first: a file that is not a recording gets lsci's message, not napari's.
    if file is not None:
        open_recording(file).close()
    show(file)
