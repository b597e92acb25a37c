"""The main job end to end, on the simulated camera: a needling session from capture to comparison.

:func:`run_demo` does what a user at a speckle rig does, with the simulated speckle camera
(:class:`lsci.drivers.simulated.SimulatedCamera`) in place of a real one, through the same code:

1. record a dark frame (laser off) and a static target (for β) through the live pipeline;
2. record a skin patch with an ischemic region: a baseline, a "needling" procedure marked by
   events, and a recovery during which the patch's flow rises by a known factor;
3. process the recording with its calibrations (dark subtraction, β): spatial contrast and the
   inverse correlation time 1/τc from the speckle visibility equation;
4. compare the windows before and after needling: registration, ratio and percent-change maps,
   ROI statistics of the ischemic patch against healthy skin;
5. write the figures, the ROI table and a summary that sets the measured recovery next to the
   simulated truth.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lsci.acquisition import AcquisitionPipeline, LiveSettings, PipelineStats, recording_metadata
from lsci.analysis.compare import Comparison, compare_before_after
from lsci.analysis.compare_recordings import compare_events
from lsci.analysis.time_windows import frame_times_s
from lsci.calibration import BetaCalibration, DarkFrame, calibrate_beta
from lsci.drivers.simulated import SimulatedCamera, SpeckleScene
from lsci.processing import ProcessingSettings, process_recording
from lsci.recording import RecordingWriter, open_recording, store_calibration
from lsci.sim.speckle import skin_reflectance_map
from lsci.viz.figures import comparison_figure, map_figure, maps_figure, timecourse_figure

__all__ = ["DemoResult", "DemoSettings", "run_demo"]

Report = Callable[[str], None]

ISCHEMIC = "ischemic patch"
HEALTHY = "healthy skin"


@dataclass(frozen=True)
class DemoSettings:
    """The simulated session. Times in seconds since the start of the main recording.

    Attributes
    ----------
    shape : tuple of int
        Sensor size in pixels.
    frame_rate_hz, exposure_s
        Camera settings.
    baseline_tau_c_s
        τc of healthy skin; the ischemic patch has ``ischemic_factor`` times longer τc.
    ischemic_factor, recovery_factor
        Flow in the patch is 1/ischemic_factor of healthy skin at first, and is multiplied by
        ``recovery_factor`` at ``recovery_s`` (the truth the demo must recover).
    needling_start_s, needling_end_s, recovery_s, duration_s
        The session's timeline.
    window_s
        Length of the before and after windows compared.
    calibration_s
        Length of the dark and static-target recordings.
    window
        Spatial contrast window in pixels.
    maps_per_s
        Perfusion maps per second (frames are averaged to this rate).
    """

    shape: tuple[int, int] = (256, 256)
    frame_rate_hz: float = 30.0
    exposure_s: float = 0.005
    baseline_tau_c_s: float = 1e-3
    ischemic_factor: float = 5.0
    recovery_factor: float = 3.0
    needling_start_s: float = 9.0
    needling_end_s: float = 12.0
    recovery_s: float = 10.5
    duration_s: float = 21.0
    window_s: float = 8.0
    calibration_s: float = 1.5
    window: int = 7
    maps_per_s: float = 5.0


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` produced."""

    out_dir: Path
    recording: Path
    files: tuple[Path, ...]
    comparison: Comparison
    true_factor: float
    measured_factor: float
    measured_factor_sfi: float
    seconds: float

    @property
    def error(self) -> float:
        """Relative error of the measured recovery factor (1/τc)."""
        return self.measured_factor / self.true_factor - 1


def _scene(settings: DemoSettings, kind: str) -> SpeckleScene:
    """What the camera sees: the skin session, the laser switched off, or a static target."""
    # Skin as a camera sees it: fine texture (pores, hair) beside the vessel and the beam profile.
    # It is what registers the before and after images; a smooth field would be refused.
    # Its spatial variance adds to K² (Kim et al. 2023), so it is kept faint.
    if kind == "dark":  # laser off
        return SpeckleScene(np.full(settings.shape, 1.0), illumination=0.0)
    if kind == "static":  # an even teflon block under the same beam: nothing moves
        block = skin_reflectance_map(settings.shape, texture=0.0, vessel=False)
        return SpeckleScene(np.full(settings.shape, 1e9), illumination=block)
    skin = skin_reflectance_map(settings.shape, texture=0.1, texture_px=3.0, rng=7)
    session = SpeckleScene.skin(
        settings.shape,
        baseline_tau_c_s=settings.baseline_tau_c_s,
        ischemic_factor=settings.ischemic_factor,
        needling_time_s=settings.recovery_s,
        recovery_factor=settings.recovery_factor,
    )
    return SpeckleScene(session.tau_c_at(0.0), illumination=skin, changes=session.changes)


def _acquire(
    path: Path,
    scene: SpeckleScene,
    settings: DemoSettings,
    duration_s: float,
    report: Report,
    *,
    marks: Sequence[tuple[float, str]] = (),
    seed: int = 0,
) -> None:
    """Record ``duration_s`` of the simulated camera through the live pipeline."""
    with SimulatedCamera(scene, seed=seed) as camera:
        camera.set("pixel_format", "Mono12")
        camera.set("exposure_s", settings.exposure_s)
        camera.set("frame_rate_hz", settings.frame_rate_hz)
        writer = RecordingWriter(
            path,
            recording_metadata(camera, notes=f"lsci demo: {path.stem}"),
            frame_shape=camera.frame_shape,
            dtype=camera.frame_dtype,
            overwrite=True,
        )
        live = LiveSettings(window=settings.window, model="inverse_k2", max_rate_hz=5.0)
        pipeline = AcquisitionPipeline(camera, writer, live=live)

        def status(stats: PipelineStats) -> None:
            dropped = stats.frames_dropped_camera + stats.frames_dropped_pipeline
            report(
                f"\r  {path.name}: {stats.frames_recorded} frames recorded, "
                f"{stats.frame_rate_hz:5.1f} fps, {dropped} dropped, {stats.live_maps} live maps"
            )

        pipeline.events.stats_updated.connect(status)
        pipeline.start()
        start = time.monotonic()
        pending = sorted(marks)
        done = threading.Event()
        while not done.wait(0.02):
            elapsed = time.monotonic() - start
            while pending and elapsed >= pending[0][0]:
                pipeline.mark_event(pending.pop(0)[1])
            if elapsed >= duration_s:
                done.set()
        summary = pipeline.stop()
        stats = summary.stats
        dropped = stats.frames_dropped_camera + stats.frames_dropped_pipeline
        report(
            f"\r  {path.name}: {stats.frames_recorded} frames in {summary.duration_s:.1f} s "
            f"({summary.mean_frame_rate_hz:.1f} fps), {dropped} dropped\n"
        )


def _disk(shape: tuple[int, int], radius: float) -> npt.NDArray[np.bool_]:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return np.hypot(rows - (shape[0] - 1) / 2, cols - (shape[1] - 1) / 2) <= radius


def _regions(shape: tuple[int, int]) -> dict[str, npt.NDArray[np.bool_]]:
    """The ischemic patch (inside its soft edge) and healthy skin away from it and the vessel."""
    healthy = np.zeros(shape, bool)
    rows, cols = shape
    healthy[int(0.68 * rows) : int(0.9 * rows), int(0.08 * cols) : int(0.3 * cols)] = True
    return {ISCHEMIC: _disk(shape, 0.6 * min(shape) / 5), HEALTHY: healthy}


def _map_times(
    recording_times_s: npt.NDArray[np.float64], average: int, n_maps: int
) -> npt.NDArray[np.float64]:
    """Time of each map: the mean time of the frames averaged into it."""
    used = recording_times_s[: n_maps * average].reshape(n_maps, average)
    times: npt.NDArray[np.float64] = used.mean(axis=1)
    return times


def run_demo(
    out_dir: str | Path,
    *,
    settings: DemoSettings | None = None,
    report: Report = print,
) -> DemoResult:
    """Run the simulated needling session and write its results into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created; files of an earlier demo run are replaced).
    settings : DemoSettings, optional
        The simulated session; default :class:`DemoSettings()`.
    report : callable
        Receives progress text (lines end with a newline; status updates start with ``\\r``).

    Returns
    -------
    DemoResult
        The files written and the measured against the true recovery factor.
    """
    settings = DemoSettings() if settings is None else settings
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    report("1/5 Calibration recordings (laser off; static target)\n")
    dark_path, static_path = out / "dark.h5", out / "static_target.h5"
    _acquire(dark_path, _scene(settings, "dark"), settings, settings.calibration_s, report)
    _acquire(
        static_path, _scene(settings, "static"), settings, settings.calibration_s, report, seed=1
    )
    with open_recording(dark_path) as rec:
        dark = DarkFrame.from_frames(rec.frames[:], exposure_s=settings.exposure_s)
    with open_recording(static_path) as rec:
        beta = calibrate_beta(
            rec.frames[:], window=settings.window, dark=dark, exposure_s=settings.exposure_s
        )
    report(f"  dark level {float(np.mean(dark.mean)):.1f} ADU; β = {beta.beta:.3f}\n")

    report("2/5 Needling session through the live pipeline\n")
    session = out / "needling_session.h5"
    marks = [
        (settings.needling_start_s, "needling start"),
        (settings.needling_end_s, "needling end"),
    ]
    _acquire(
        session,
        _scene(settings, "session"),
        settings,
        settings.duration_s,
        report,
        marks=marks,
        seed=2,
    )
    store_calibration(session, dark)
    store_calibration(session, beta)

    report("3/5 Processing with the calibrations: spatial K, 1/τc\n")
    average = max(1, round(settings.frame_rate_hz / settings.maps_per_s))
    processing = ProcessingSettings(
        mode="spatial",
        window=settings.window,
        average=average,
        model="inverse_tau",
        exposure_s=settings.exposure_s,
    )
    result = process_recording(session, processing, overwrite=True)
    report(f"  {result.maps} maps from {result.frames_read} frames in {result.seconds:.1f} s\n")

    report("4/5 Before/after comparison\n")
    regions = _regions(settings.shape)
    compared, compared_sfi = (
        compare_events(
            session,
            "needling start",
            "needling end",
            window_s=settings.window_s,
            settings=dataclasses.replace(processing, model=model),
            rois=regions,
            reference=HEALTHY,
            register=model == "inverse_tau",
        )
        for model in ("inverse_tau", "inverse_k2")
    )
    comparison, comparison_sfi = compared.comparison, compared_sfi.comparison
    before_w, after_w = compared.before.window_s, compared.after.window_s
    rate_maps = [compared.before.perfusion, compared.after.perfusion]
    sfi_maps = [compared_sfi.before.perfusion, compared_sfi.after.perfusion]
    intensity = [compared.before.intensity, compared.after.intensity]
    with open_recording(session) as rec:
        contrast = rec.derived["contrast"][...]
        rate = rec.derived["perfusion"][...]
        times = _map_times(frame_times_s(rec), average, len(rate))
        events = [(e.time_s, e.label) for e in rec.events if e.label.startswith("needling")]
        raw_frame = rec.frames[0]
    # τc-based perfusion in units of healthy skin at baseline, and 1/K² in the same units.
    unit = comparison.roi(HEALTHY).before_mean
    unit_sfi = comparison_sfi.roi(HEALTHY).before_mean

    report("5/5 Figures, table and summary\n")
    label = "perfusion (1/τc, healthy skin = 1)"
    scaled = compare_before_after(
        rate_maps[0] / unit,
        rate_maps[1] / unit,
        regions,
        reference=HEALTHY,
        before_intensity=intensity[0],
        after_intensity=intensity[1],
    )
    files = [
        comparison_figure(
            scaled,
            out / "comparison.png",
            masks=regions,
            label=label,
            title="Ischemic skin before and after needling (simulated)",
        ),
        timecourse_figure(
            times,
            {name: np.nanmean(rate[:, mask], axis=1) / unit for name, mask in regions.items()},
            out / "timecourse.png",
            label=label,
            events=events,
        ),
        maps_figure(
            [
                (rate_maps[0] / unit, "1/τc (visibility equation)", "healthy skin = 1"),
                (sfi_maps[0] / unit_sfi, "1/K² (speckle flow index)", "healthy skin = 1"),
            ],
            out / "perfusion_models.png",
        ),
        map_figure(
            raw_frame, out / "raw_frame.png", title="Raw speckle frame", label="ADU", cmap="gray"
        ),
        map_figure(
            contrast[0],
            out / "contrast.png",
            title=f"Spatial contrast K ({settings.window}×{settings.window})",
            label="K",
        ),
    ]
    scaled.to_csv(out / "roi_table.csv")
    files.append(out / "roi_table.csv")
    measured = comparison.roi(ISCHEMIC).ratio
    measured_sfi = comparison_sfi.roi(ISCHEMIC).ratio
    seconds = time.perf_counter() - began
    summary = out / "summary.txt"
    summary.write_text(
        _summary(settings, comparison, measured, measured_sfi, beta, seconds, before_w, after_w)
    )
    files.append(summary)
    return DemoResult(
        out,
        session,
        (dark_path, static_path, session, *files),
        comparison,
        settings.recovery_factor,
        measured,
        measured_sfi,
        seconds,
    )


def _summary(
    settings: DemoSettings,
    comparison: Comparison,
    measured: float,
    measured_sfi: float,
    beta: BetaCalibration,
    seconds: float,
    before_w: tuple[float, float],
    after_w: tuple[float, float],
) -> str:
    truth = settings.recovery_factor
    patch, healthy = comparison.roi(ISCHEMIC), comparison.roi(HEALTHY)
    shift = comparison.registration
    error = 100 * (measured / truth - 1)
    lines = [
        "lsci demo: simulated needling session",
        "",
        "Recovery of perfusion in the ischemic patch (after / before needling, 1/τc):",
        f"  measured {measured:.3f}   simulated truth {truth:.3f}   error {error:+.1f} %",
        f"  relative to healthy skin: {patch.relative_ratio:.3f} "
        f"(healthy skin itself: {healthy.ratio:.3f}, truth 1)",
        f"  with 1/K² instead of 1/τc: {measured_sfi:.3f} "
        "(1/K² is not proportional to flow when T ≈ τc)",
        "",
        f"Windows compared: before {before_w[0]:.1f}–{before_w[1]:.1f} s, "
        f"after {after_w[0]:.1f}–{after_w[1]:.1f} s",
        f"Calibration: β = {beta.beta:.3f} on the static target, dark frame subtracted",
    ]
    if shift is not None:
        lines.append(
            f"Registration: shift ({shift.shift_px[0]:+.2f}, {shift.shift_px[1]:+.2f}) px, "
            f"peak ratio {shift.peak_ratio:.1f}"
        )
    lines += ["", f"Finished in {seconds:.0f} s.", ""]
    return "\n".join(lines)
