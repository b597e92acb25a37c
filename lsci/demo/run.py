"""Run the demo: the five steps from capture to the summary, each a small function."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lsci.analysis.compare import Comparison
from lsci.analysis.compare_recordings import (
    RecordingComparison,
    SessionTimeCourse,
    compare_events,
    comparison_with_rois,
    session_time_course,
)
from lsci.analysis.scale import save_scale
from lsci.analysis.time_windows import (
    frame_times_s,
)
from lsci.calibration import BetaCalibration, DarkFrame, calibrate_beta
from lsci.demo.session import Report, record_needling_session, record_simulated
from lsci.demo.summary import AreaTruth, DemoOutcome, summary_text
from lsci.drivers.simulated import SpeckleScene
from lsci.errors import LsciError
from lsci.processing import ProcessingSettings, process_recording
from lsci.recording import open_recording, store_calibration
from lsci.recording.atomic import atomic_write
from lsci.sim.needling import HEALTHY, ISCHEMIC, NEEDLING_END, NEEDLING_START, NeedlingScene
from lsci.sim.speckle import skin_reflectance_map
from lsci.viz.display import CONTRAST_UNIT, RAW_UNIT, colormap_of, display_limits
from lsci.viz.figures import comparison_figure, map_figure, maps_figure, timecourse_figure
from lsci.viz.report import comparison_report

__all__ = ["DemoFolderNotEmptyError", "DemoResult", "DemoSettings", "run_demo"]

_SCENE = NeedlingScene(
    shape=(256, 256),
    baseline_tau_c_s=1e-3,
    ischemic_factor=5.0,
    recovery_factor=4.0,
    needling_start_s=9.0,
    needling_end_s=12.0,
)


@dataclass(frozen=True)
class DemoSettings:
    """The simulated session and how it is filmed and processed.

    Attributes
    ----------
    scene : NeedlingScene
        The session: skin, ischemic disk, its recovery and the needling events (times in
        seconds since the start of the main recording).
    frame_rate_hz, exposure_s
        Camera settings.
    duration_s
        Length of the main recording.
    window_s
        Length of the before and after windows compared.
    calibration_s
        Length of the dark and static-target recordings.
    window
        Spatial contrast window in pixels.
    maps_per_s
        Perfusion maps per second (frames are averaged to this rate).
    pixel_size_mm
        Pixel size on the skin: the demo stores it with the recording as if it had been
        measured on a ruler across the field (``lsci scale``), so areas are in mm².
    """

    scene: NeedlingScene = field(default=_SCENE)
    frame_rate_hz: float = 30.0
    exposure_s: float = 0.005
    duration_s: float = 21.0
    window_s: float = 8.0
    calibration_s: float = 1.5
    window: int = 7
    maps_per_s: float = 5.0
    pixel_size_mm: float = 0.1

    @property
    def average(self) -> int:
        """Frames averaged into one map."""
        return max(1, round(self.frame_rate_hz / self.maps_per_s))


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced.

    ``true_factor`` is the recovery of the ischemic patch computed from the simulator's true τc
    maps (:meth:`lsci.sim.needling.NeedlingScene.true_recovery`); the measured factors come from
    the recorded frames alone. ``areas`` holds the hypoperfused area before and after, measured
    and true (:class:`lsci.demo.summary.AreaTruth`).
    """

    out_dir: Path
    recording: Path
    files: tuple[Path, ...]
    comparison: Comparison
    true_factor: float
    measured_factor: float
    measured_factor_sfi: float
    seconds: float
    areas: AreaTruth

    @property
    def error(self) -> float:
        """Relative error of the measured recovery factor (1/τc)."""
        return self.measured_factor / self.true_factor - 1


@dataclass(frozen=True)
class _Calibration:
    dark_path: Path
    static_path: Path
    dark: DarkFrame
    beta: BetaCalibration


_Map = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class _Analysis:
    """Step 4's results: maps, their times, the windows and the comparisons."""

    result: RecordingComparison
    comparison: Comparison
    comparison_sfi: Comparison
    rate_maps: tuple[_Map, _Map]
    sfi_maps: tuple[_Map, _Map]
    intensity: tuple[_Map, _Map]
    rate: npt.NDArray[np.floating]
    contrast: npt.NDArray[np.floating]
    times_s: npt.NDArray[np.float64]
    events: list[tuple[float, str]]
    windows: tuple[tuple[float, float], tuple[float, float]]
    raw_frame: npt.NDArray[np.integer]


def _calibration_scene(shape: tuple[int, int], kind: str) -> SpeckleScene:
    """The laser switched off (``"dark"``) or an even teflon block under the beam (``"static"``)."""
    if kind == "dark":
        return SpeckleScene(np.full(shape, 1.0), illumination=0.0)
    block = skin_reflectance_map(shape, texture=0.0, vessel=False)
    return SpeckleScene(np.full(shape, 1e9), illumination=block)


def _calibrate(out: Path, settings: DemoSettings, report: Report) -> _Calibration:
    """Step 1: record the dark and static-target recordings and fit the calibrations."""
    paths = {"dark": out / "dark.h5", "static": out / "static_target.h5"}
    for seed, (kind, path) in enumerate(paths.items()):
        record_simulated(
            path,
            _calibration_scene(settings.scene.shape, kind),
            settings.calibration_s,
            exposure_s=settings.exposure_s,
            frame_rate_hz=settings.frame_rate_hz,
            window=settings.window,
            seed=seed,
            report=report,
        )
    with open_recording(paths["dark"]) as rec:
        dark = DarkFrame.from_frames(rec.frames[:], exposure_s=settings.exposure_s)
    with open_recording(paths["static"]) as rec:
        beta = calibrate_beta(
            rec.frames[:], window=settings.window, dark=dark, exposure_s=settings.exposure_s
        )
    report(f"  dark level {float(np.mean(dark.mean)):.1f} ADU; β = {beta.beta:.3f}\n")
    return _Calibration(paths["dark"], paths["static"], dark, beta)


def _record(out: Path, settings: DemoSettings, calibration: _Calibration, report: Report) -> Path:
    """Step 2: film the needling session and store the calibrations with it."""
    session = record_needling_session(
        out / "needling_session.h5",
        settings.scene,
        settings.duration_s,
        exposure_s=settings.exposure_s,
        frame_rate_hz=settings.frame_rate_hz,
        window=settings.window,
        seed=2,
        report=report,
    )
    store_calibration(session, calibration.dark, overwrite=True)
    store_calibration(session, calibration.beta, overwrite=True)
    # The scale, as a ruler laid across the field would give it: two marks one field apart.
    width = settings.scene.shape[1]
    save_scale(session, (0.0, 0.0), (0.0, width - 1.0), (width - 1) * settings.pixel_size_mm)
    return session


def _processing(settings: DemoSettings) -> ProcessingSettings:
    """Spatial contrast and 1/τc, the settings of every map the demo shows."""
    return ProcessingSettings(
        mode="spatial",
        window=settings.window,
        average=settings.average,
        model="inverse_tau",
        exposure_s=settings.exposure_s,
    )


def _process(session: Path, settings: DemoSettings, report: Report) -> None:
    """Step 3: spatial contrast and 1/τc with the stored calibrations."""
    result = process_recording(session, _processing(settings), overwrite=True)
    report(f"  {result.maps} maps from {result.frames_read} frames in {result.seconds:.1f} s\n")


def _map_times(
    recording_times_s: npt.NDArray[np.float64], average: int, n_maps: int
) -> npt.NDArray[np.float64]:
    """Time of each map: the mean time of the frames averaged into it."""
    used = recording_times_s[: n_maps * average].reshape(n_maps, average)
    times: npt.NDArray[np.float64] = used.mean(axis=1)
    return times


def _analyse(session: Path, settings: DemoSettings) -> _Analysis:
    """Step 4: mean maps in the windows around the events, compared with ROI statistics."""
    regions = settings.scene.regions()
    # The comparison engine, as `lsci compare` and napari run it: 1/τc (registered), and 1/K²
    # on the same windows for the comparison of perfusion expressions.
    compared, compared_sfi = (
        compare_events(
            session,
            NEEDLING_START,
            NEEDLING_END,
            window_s=settings.window_s,
            settings=dataclasses.replace(_processing(settings), model=model),
            rois=regions,
            reference=HEALTHY,
            register=model == "inverse_tau",
        )
        for model in ("inverse_tau", "inverse_k2")
    )
    with open_recording(session) as rec:
        contrast = rec.product("contrast")[...]
        rate = rec.product("perfusion")[...]
        times = _map_times(frame_times_s(rec), settings.average, len(rate))
        events = [(e.time_s, e.label) for e in rec.events if e.label.startswith("needling")]
        raw_frame = rec.frames[0]
    return _Analysis(
        result=compared,
        comparison=compared.comparison,
        comparison_sfi=compared_sfi.comparison,
        rate_maps=(compared.before.perfusion, compared.after.perfusion),
        sfi_maps=(compared_sfi.before.perfusion, compared_sfi.after.perfusion),
        intensity=(compared.before.intensity, compared.after.intensity),
        rate=rate,
        contrast=contrast,
        times_s=times,
        events=events,
        windows=(compared.before.window_s, compared.after.window_s),
        raw_frame=raw_frame,
    )


def _write_outputs(
    out: Path, settings: DemoSettings, analysis: _Analysis
) -> tuple[list[Path], SessionTimeCourse]:
    """Step 5: the figures, the ROI table, the area time course and the report, in units of
    healthy skin at baseline."""
    regions = settings.scene.regions()
    unit = analysis.comparison.roi(HEALTHY).before_mean
    unit_sfi = analysis.comparison_sfi.roi(HEALTHY).before_mean
    before, after = (m / unit for m in (analysis.comparison.before, analysis.comparison.after))
    # The engine's registered maps in units of healthy skin: the table is recomputed on them;
    # the areas, thresholds being fractions of healthy skin, do not change.
    scaled, _ = comparison_with_rois(
        dataclasses.replace(analysis.comparison, before=before, after=after), regions, HEALTHY
    )
    label = "perfusion (1/τc, healthy skin = 1)"
    course = session_time_course(
        analysis.rate / unit, analysis.times_s, regions, reference=HEALTHY,
        scale=analysis.comparison.scale, unit="healthy skin = 1",
    )  # fmt: skip
    files = [
        comparison_figure(scaled, out / "comparison.png", masks=regions, label=label,
                          title="Ischemic skin before and after needling (simulated)"),
        timecourse_figure(analysis.times_s, course.means, out / "timecourse.png", label=label,
                          events=analysis.events, area=course.area),
        maps_figure(
            [
                (before, "1/τc (visibility equation)", "healthy skin = 1"),
                (analysis.sfi_maps[0] / unit_sfi, "1/K² (speckle flow index)", "healthy skin = 1"),
            ],
            out / "perfusion_models.png",
        ),
        map_figure(analysis.raw_frame, out / "raw_frame.png", title="Raw speckle frame",
                   label=RAW_UNIT, cmap=colormap_of("raw"),
                   limits=display_limits("raw", analysis.raw_frame)),
        map_figure(analysis.contrast[0], out / "contrast.png", label=CONTRAST_UNIT,
                   title=f"Spatial contrast K ({settings.window}×{settings.window})",
                   cmap=colormap_of("contrast"),
                   limits=display_limits("contrast", analysis.contrast[0])),
    ]  # fmt: skip
    with atomic_write(out / "roi_table.csv", overwrite=True) as temporary:
        scaled.to_csv(temporary)
    with atomic_write(out / "area_timecourse.csv", overwrite=True) as temporary:
        temporary.write_text(course.to_csv(), encoding="utf-8")
    with atomic_write(out / "report.pdf", overwrite=True) as temporary:
        comparison_report(
            analysis.result, temporary, title="Ischemic skin before and after needling (simulated)"
        )
    return [*files, out / "roi_table.csv", out / "area_timecourse.csv", out / "report.pdf"], course


def _area_truth(settings: DemoSettings, comparison: Comparison) -> AreaTruth:
    """The measured hypoperfused areas next to the scene's truth."""
    scene = settings.scene
    areas = comparison.areas
    assert areas is not None  # the comparison has a healthy reference
    fraction = comparison.area_settings.fraction
    # Saturated pixels are measured in neither map: the engine's recovered region leaves them
    # out, and so does its truth here.
    measured = np.isfinite(comparison.before) & np.isfinite(comparison.after)
    return AreaTruth(
        measured_before_px=areas.before.extent_px,
        measured_after_px=areas.after.extent_px,
        unmeasured_before_px=areas.before.excluded_inside_px,
        true_before_px=scene.disk_area_px,
        true_after_px=float(np.count_nonzero(scene.persistent_mask(fraction))),
        measured_recovered_px=areas.recovered_px,
        true_recovered_px=float(np.count_nonzero(scene.recovered_mask(fraction) & measured)),
        pixel_area_mm2=settings.pixel_size_mm**2,
        threshold=areas.before.threshold.description,
    )


class DemoFolderNotEmptyError(LsciError):
    """The demo's output folder holds files, and replacing them was not allowed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        super().__init__(
            f"{folder} is not empty: the demo would replace the files of its names there, "
            "recordings included; choose a new or empty folder, or pass overwrite=True"
        )


def run_demo(
    out_dir: str | Path,
    *,
    settings: DemoSettings | None = None,
    report: Report = print,
    overwrite: bool = False,
) -> DemoResult:
    """Run the simulated needling session and write its results into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder: new or empty (created when missing), unless ``overwrite``.
    settings : DemoSettings, optional
        The simulated session; default :class:`DemoSettings()`.
    report : callable
        Receives progress text (lines end with a newline; status updates start with ``\\r``).
    overwrite : bool
        Write into a folder that is not empty, replacing the files of the demo's names (those
        of an earlier run).

    Returns
    -------
    DemoResult
        The files written and the measured against the true recovery factor.

    Raises
    ------
    DemoFolderNotEmptyError
        When ``out_dir`` holds files and ``overwrite`` is false: nothing is written.
    """
    settings = DemoSettings() if settings is None else settings
    out = Path(out_dir)
    # Recordings are raw data: never replaced unless asked, whoever wrote them.
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DemoFolderNotEmptyError(out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    report("1/5 Calibration recordings (laser off; static target)\n")
    calibration = _calibrate(out, settings, report)
    report("2/5 Needling session through the live pipeline\n")
    session = _record(out, settings, calibration, report)
    report("3/5 Processing with the calibrations: spatial K, 1/τc\n")
    _process(session, settings, report)
    report("4/5 Before/after comparison\n")
    analysis = _analyse(session, settings)
    report("5/5 Figures, table, report and summary\n")
    files, _ = _write_outputs(out, settings, analysis)
    scene = settings.scene
    areas = _area_truth(settings, analysis.comparison)
    outcome = DemoOutcome(
        comparison=analysis.comparison,
        measured_sfi=analysis.comparison_sfi.roi(ISCHEMIC).ratio,
        true_recovery={name: scene.true_recovery(name) for name in (ISCHEMIC, HEALTHY)},
        beta=calibration.beta.beta,
        before_s=analysis.windows[0],
        after_s=analysis.windows[1],
        seconds=time.perf_counter() - began,
        areas=areas,
    )
    summary = out / "summary.txt"
    with atomic_write(summary, overwrite=True) as temporary:
        temporary.write_text(summary_text(outcome), encoding="utf-8")
    return DemoResult(
        out,
        session,
        (calibration.dark_path, calibration.static_path, session, *files, summary),
        analysis.comparison,
        outcome.true_recovery[ISCHEMIC],
        analysis.comparison.roi(ISCHEMIC).ratio,
        outcome.measured_sfi,
        outcome.seconds,
        areas,
    )
