"""The demo's summary: the measured recovery next to the simulated truth, in plain text."""

from __future__ import annotations

from dataclasses import dataclass

from lsci.analysis.compare import Comparison
from lsci.sim.needling import HEALTHY, ISCHEMIC

__all__ = ["DemoOutcome", "summary_text"]


@dataclass(frozen=True)
class DemoOutcome:
    """What the summary reports.

    Attributes
    ----------
    comparison : Comparison
        Before/after comparison of 1/τc (absolute units), with the ROI rows.
    measured_sfi : float
        Recovery of the ischemic patch measured with 1/K² instead of 1/τc.
    true_recovery : dict of str to float
        Recovery of each region from the simulator's true τc maps.
    beta : float
        Coherence factor β from the static target.
    before_s, after_s : tuple of float
        The windows compared, seconds since the start of the recording.
    seconds : float
        Run time of the demo.
    """

    comparison: Comparison
    measured_sfi: float
    true_recovery: dict[str, float]
    beta: float
    before_s: tuple[float, float]
    after_s: tuple[float, float]
    seconds: float


def summary_text(outcome: DemoOutcome) -> str:
    """The summary as text, one fact per line, ending with a newline."""
    comparison = outcome.comparison
    patch, healthy = comparison.roi(ISCHEMIC), comparison.roi(HEALTHY)
    truth = outcome.true_recovery[ISCHEMIC]
    error = 100 * (patch.ratio / truth - 1)
    before, after = outcome.before_s, outcome.after_s
    lines = [
        "lsci demo: simulated needling session",
        "",
        "Recovery of perfusion in the ischemic patch (after / before needling, 1/τc):",
        f"  measured {patch.ratio:.3f}   simulated truth {truth:.3f}   error {error:+.1f} %",
        f"  relative to healthy skin: {patch.relative_ratio:.3f} "
        f"(healthy skin itself: {healthy.ratio:.3f}, truth {outcome.true_recovery[HEALTHY]:.3f})",
        f"  with 1/K² instead of 1/τc: {outcome.measured_sfi:.3f} "
        "(1/K² is not proportional to flow when T ≈ τc)",
        "",
        f"Windows compared: before {before[0]:.1f}–{before[1]:.1f} s, "
        f"after {after[0]:.1f}–{after[1]:.1f} s",
        f"Calibration: β = {outcome.beta:.3f} on the static target, dark frame subtracted",
    ]
    shift = comparison.registration
    if shift is not None:
        lines.append(
            f"Registration: shift ({shift.shift_px[0]:+.2f}, {shift.shift_px[1]:+.2f}) px, "
            f"peak ratio {shift.peak_ratio:.1f}"
        )
    lines += ["", f"Finished in {outcome.seconds:.0f} s.", ""]
    return "\n".join(lines)
