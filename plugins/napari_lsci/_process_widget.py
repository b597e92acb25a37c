"""Process widget: contrast and perfusion maps of a recording file or of an image layer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from superqt.utils import create_worker, ensure_main_thread

from lsci.core.models import MODELS, default_model, get_model
from lsci.core.modes import MODES, get_mode
from lsci.processing import ProcessingSettings
from lsci.processing.settings import DEFAULT_AVERAGE
from napari_lsci._processing import beta_calibrations, exposure_of, process_file, process_stack
from napari_lsci._reader import is_recording
from napari_lsci._ui import chosen_file, image_layers, notify_error, put_layers

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["ProcessWidget"]

#: β as ``lsci process`` takes it: the recording's β calibration when it has one, else 1.
RECORDED_BETA = "recording's calibration, else 1"
MANUAL_BETA = "manual value"


class ProcessWidget(Container):
    """Compute contrast and perfusion for a recording file or an image layer of raw frames.

    A layer read from a recording (its metadata names the file) is processed from the file,
    and the maps are stored beside it as a product set (the recording is only read); any
    other 3-D image layer is processed in memory. The defaults (spatial contrast, 7 × 7
    window, 8 frames per map, and the model
    :func:`lsci.core.models.default_model` chooses: 1/τc when the recording states its exposure
    time, else 1/K²) are those of ``lsci process``.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are offered and where the maps appear.

    Attributes
    ----------
    layer, file : magicgui widgets
        The source: an image layer, or a recording file (the file wins when one is chosen).
    mode, window, frames_window, average, model : magicgui widgets
        :class:`lsci.processing.ProcessingSettings` fields; the choices are the registries
        :data:`lsci.core.modes.MODES` and :data:`lsci.core.models.MODELS`.
    beta_source, beta : magicgui widgets
        β as ``lsci process`` takes it (the recording's β calibration, else 1), from a named
        calibration stored in the recording, or a value typed in (models using β).
    exposure_ms : magicgui widget
        Exposure for models that need it; 0 takes it from the recording's metadata.
    overwrite : magicgui widget
        Recompute maps stored with the same settings (other settings are kept beside them).
    run_button, progress, status : magicgui widgets
        Start, progress of the running computation, last outcome.
    worker : napari worker or None
        The computation in progress (or last run).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.layer = ComboBox(label="Frames layer", choices=self._layer_choices)
        self.file = FileEdit(label="or recording", mode="r", filter="*.h5 *.hdf5", value="")
        self.mode = ComboBox(label="Mode", choices=list(MODES), value="spatial")
        self.window = SpinBox(label="Window (px)", min=3, max=63, step=2, value=7)
        self.frames_window = SpinBox(label="Frames per window", min=2, max=10_000, value=25)
        self.average = SpinBox(label="Frames per map", min=1, max=10_000, value=DEFAULT_AVERAGE)
        self.model = ComboBox(
            label="Perfusion model", choices=list(MODELS), value=default_model(None)
        )
        self.beta_source = ComboBox(label="β from", choices=self._beta_choices)
        self.beta = FloatSpinBox(label="β", min=0.01, max=1.0, step=0.01, value=1.0)
        self.exposure_ms = FloatSpinBox(
            label="Exposure (ms, 0: recorded)", min=0.0, max=100_000.0, step=0.1, value=0.0
        )
        self.overwrite = CheckBox(text="Recompute maps stored with these settings", value=False)
        self.run_button = PushButton(text="Compute")
        self.progress = ProgressBar(label="Progress", min=0, max=1, value=0)
        self.status = Label(value="")
        self.worker: Any = None
        self._source: Path | None = None
        self.extend(
            [
                self.layer,
                self.file,
                self.mode,
                self.window,
                self.frames_window,
                self.average,
                self.model,
                self.beta_source,
                self.beta,
                self.exposure_ms,
                self.overwrite,
                self.run_button,
                self.progress,
                self.status,
            ]
        )
        for widget in (self.mode, self.model, self.beta_source):
            widget.changed.connect(self._update_enabled)
        for widget in (self.layer, self.file):
            widget.changed.connect(self._source_changed)
        self.run_button.clicked.connect(self.run)
        self._update_enabled()

    # ------------------------------------------------------------------ choices
    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in image_layers(self.viewer) if layer.ndim == 3]

    def recording_path(self) -> Path | None:
        """The recording to process: the chosen file, or the file the chosen layer came from."""
        chosen = chosen_file(self.file.value)
        if chosen is not None and chosen.is_file():
            return chosen
        layer = self.layer.value
        if (
            layer is not None
            and layer.metadata.get("lsci_path")
            and not layer.metadata.get("lsci_product")
        ):
            return Path(layer.metadata["lsci_path"])
        return None

    def _beta_choices(self, _widget: Any = None) -> list[str]:
        path = self.recording_path()
        names: list[str] = []
        if path is not None and is_recording(path):
            names = [f"calibration {name}" for name in beta_calibrations(path)]
        return [RECORDED_BETA, MANUAL_BETA, *names]

    def reset_choices(self, *_args: Any) -> None:
        """Refresh the layer list, and the defaults when the source changed with it."""
        super().reset_choices()
        self._source_changed()

    def _source_changed(self, _value: Any = None) -> None:
        self.beta_source.reset_choices()
        path = self.recording_path()
        if path != self._source:
            # A new source gets the default model for it, as `lsci process` would choose.
            self._source = path
            self.model.value = default_model(exposure_of(path) if path is not None else None)
        self._update_enabled()

    def _update_enabled(self, _value: Any = None) -> None:
        mode = get_mode(self.mode.value)
        model = get_model(self.model.value)
        self.window.enabled = mode.spatial
        self.frames_window.enabled = mode.temporal
        self.average.enabled = not mode.temporal
        self.beta_source.enabled = model.uses_beta
        self.beta.enabled = model.uses_beta and self.beta_source.value == MANUAL_BETA
        self.exposure_ms.enabled = model.needs_exposure

    # ------------------------------------------------------------------ settings
    def settings(self) -> ProcessingSettings:
        """The processing settings the widget shows.

        Raises
        ------
        ValueError
            When they are invalid, e.g. a model that needs the exposure time without one.
        """
        model = get_model(self.model.value)
        exposure_s = None
        beta: float | None = None
        path = self.recording_path()
        if model.needs_exposure:
            exposure_s = self.exposure_ms.value / 1e3 if self.exposure_ms.value > 0 else None
            if exposure_s is None and path is not None:
                exposure_s = exposure_of(path)
        if model.uses_beta and self.beta_source.value == MANUAL_BETA:
            beta = float(self.beta.value)
        elif model.uses_beta and self.beta_source.value != RECORDED_BETA and path is not None:
            name = str(self.beta_source.value).removeprefix("calibration ")
            beta = beta_calibrations(path)[name]
        return ProcessingSettings(
            mode=self.mode.value,
            window=int(self.window.value),
            frames_window=int(self.frames_window.value),
            average=int(self.average.value),
            model=self.model.value,
            exposure_s=exposure_s,
            beta=beta,
        )

    # ------------------------------------------------------------------ running
    def run(self) -> Any:
        """Start the computation in a worker thread.

        Returns
        -------
        napari worker or None
            The started worker; ``None`` when the settings or the source are invalid (the
            reason is shown as a notification).
        """
        try:
            settings = self.settings()
            path = self.recording_path()
            if path is None and self.layer.value is None:
                raise ValueError("choose a layer of raw frames or a recording file to process")
        except Exception as exc:
            notify_error(exc)
            return None
        if path is not None:
            worker = create_worker(
                process_file,
                path,
                settings,
                overwrite=bool(self.overwrite.value),
                progress=self._report_progress,
                _connect=self._connections(),
                _start_thread=False,
            )
            source = path.name
        else:
            layer = self.layer.value
            worker = create_worker(
                process_stack,
                layer.data,
                settings,
                name=layer.name,
                scale=tuple(layer.scale),
                progress=self._report_progress,
                _connect=self._connections(),
                _start_thread=False,
            )
            source = layer.name
        self.status.value = f"computing {source}…"
        self.progress.value = 0
        self.run_button.enabled = False
        self.worker = worker
        worker.start()
        return worker

    def _connections(self) -> dict[str, Any]:
        # Connecting "errored" ourselves keeps the worker from re-raising: the error is shown
        # once, as lsci's message.
        return {"returned": self._show, "errored": self._failed, "finished": self._finished}

    @ensure_main_thread
    def _report_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done

    def _show(self, layer_data: list[tuple[Any, dict[str, Any], str]]) -> None:
        layers = put_layers(self.viewer, layer_data)
        self.status.value = "added " + ", ".join(layer.name for layer in layers)

    def _failed(self, exc: BaseException) -> None:
        self.status.value = "failed: " + str(exc).splitlines()[0] if str(exc) else "failed"
        notify_error(exc)

    def _finished(self) -> None:
        self.run_button.enabled = True
