"""Acquisition pipeline: frames lost between camera and file, and the highest lossless rate.

Targets (issue: live pipeline), each from one run on this machine, recording to a temporary
file while computing live spatial K (w=7, at most 20 maps/s):

- viky.cti (the simulated GenTL producer of the genicam package) at 200 frames/s, 800×800
  Mono8, for 30 s (8 s with ``--quick``): no frame lost between what the producer delivered and
  what the file holds. Frames the producer numbered but never delivered (camera-side drops)
  are reported beside it.
- The simulated camera in replay mode at 1024×1024 Mono8: the frame rate is stepped up until
  frames are dropped (camera or pipeline) or the achieved rate falls below 90 % of the
  request; the highest achieved rate without loss is reported, goal 200 frames/s.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.report import Report, Row, Target
from bench.timing import Bandwidth
from lsci.acquisition import AcquisitionPipeline, LiveSettings, PipelineSummary, recording_metadata
from lsci.drivers.base import Camera, Roi
from lsci.recording import RecordingWriter

SUITE = "pipeline"
VIKY_RATE_HZ = 200.0
SIM_RATES_HZ = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0)
# Stepping stops at the first rate with a lost frame or below this fraction of the request.
REACHED = 0.9
# Transport buffers of both cameras: 0.3 s at 200 frames/s to ride out stalls of the host.
TRANSPORT_BUFFERS = 64


def record(camera: Camera, folder: Path, seconds: float) -> PipelineSummary:
    """Record ``seconds`` from an open camera with live K; the file is deleted afterwards."""
    path = folder / "bench.h5"
    writer = RecordingWriter(
        path,
        recording_metadata(camera),
        frame_shape=camera.frame_shape,
        dtype=camera.frame_dtype,
        overwrite=True,
    )
    pipeline = AcquisitionPipeline(camera, writer, live=LiveSettings())
    pipeline.start()
    time.sleep(seconds)
    summary = pipeline.stop()
    path.unlink()
    return summary


def _row(case: str, summary: PipelineSummary) -> Row:
    s = summary.stats
    return Row(
        SUITE,
        case,
        "record + live K",
        1e3 / summary.mean_frame_rate_hz if summary.mean_frame_rate_hz else float("nan"),
        per_second=summary.mean_frame_rate_hz,
        note=(
            f"received {s.frames_received}, recorded {s.frames_recorded}, dropped camera "
            f"{s.frames_dropped_camera} pipeline {s.frames_dropped_pipeline}, "
            f"{s.live_maps} live maps"
        ),
    )


def _viky(report: Report, folder: Path, seconds: float) -> None:
    try:
        import genicam

        from lsci.drivers.genicam import GenICamCamera
    except ImportError as error:
        report.extra["pipeline_viky"] = f"skipped: {error}"
        return
    producer = os.path.join(os.path.dirname(genicam.__file__), "viky.cti")
    with GenICamCamera(0, producer=producer, num_buffers=TRANSPORT_BUFFERS) as camera:
        camera.set("roi", Roi(0, 0, 800, 800))
        camera.set("frame_rate_hz", VIKY_RATE_HZ)
        summary = record(camera, folder, seconds)
        delivered = camera.stats().frames_read
    s = summary.stats
    report.rows.append(_row(f"viky 800² Mono8 {VIKY_RATE_HZ:g} fps {seconds:g} s", summary))
    report.extra["pipeline_viky"] = {
        "frames_delivered": delivered,
        "frames_recorded": s.frames_recorded,
        "camera_side_drops": s.frames_dropped_camera,
        "pipeline_drops": s.frames_dropped_pipeline,
        "mean_fps": summary.mean_frame_rate_hz,
    }
    report.targets.append(
        Target(
            f"viky 800² {VIKY_RATE_HZ:g} fps: delivered − recorded frames",
            delivered - s.frames_recorded,
            0,
            higher_is_better=False,
        )
    )


def _simulated(report: Report, folder: Path, seconds: float) -> None:
    from lsci.drivers.simulated import SimulatedCamera, SpeckleScene

    scene = SpeckleScene.skin((1024, 1024), needling_time_s=None)
    best = 0.0
    steps = []
    with SimulatedCamera(scene, mode="replay", buffer_frames=TRANSPORT_BUFFERS) as camera:
        camera.set("exposure_s", 0.001)
        for rate in SIM_RATES_HZ:
            camera.set("frame_rate_hz", rate)
            summary = record(camera, folder, seconds)
            s = summary.stats
            lossless = s.frames_dropped_camera == 0 and s.frames_dropped_pipeline == 0
            report.rows.append(_row(f"simulated 1024² Mono8 replay {rate:g} fps", summary))
            steps.append(
                {
                    "requested_fps": rate,
                    "mean_fps": summary.mean_frame_rate_hz,
                    "camera_drops": s.frames_dropped_camera,
                    "pipeline_drops": s.frames_dropped_pipeline,
                }
            )
            # A rate counts when no frame was lost and the camera kept (nearly) to it.
            if not lossless or summary.mean_frame_rate_hz < REACHED * rate:
                break
            best = rate
    report.extra["pipeline_simulated_steps"] = steps
    report.targets.append(
        Target("simulated 1024² u8 replay: highest lossless requested rate (frames/s)", best, 200)
    )


def run(report: Report, bandwidth: Bandwidth, *, quick: bool = False) -> None:
    """Measure both cases and append the rows and targets to ``report``."""
    with tempfile.TemporaryDirectory(prefix="lsci-bench-") as tmp:
        folder = Path(tmp)
        _viky(report, folder, 8.0 if quick else 30.0)
        _simulated(report, folder, 2.0 if quick else 4.0)
