"""The demo's summary: the measured recovery next to the simulated truth, in plain text."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lsci.analysis.compare import Comparison
from lsci.analysis.similarity import SimilarityRegistration
from lsci.sim.needling import HEALTHY, ISCHEMIC

__all__ = ["AreaTruth", "DemoOutcome", "summary_text"]


@dataclass(frozen=True)
class AreaTruth:
    """The hypoperfused area measured before and after needling, and the simulated truth.

    Attributes
    ----------
    measured_before_px, measured_after_px : int
        Delineated by the comparison engine from the recorded frames: the extent its outline
        encloses (:attr:`lsci.analysis.delineation.Delineation.extent_px`).
    unmeasured_before_px : int
        Of the extent before, the pixels not measured (saturated in a frame of the window).
    true_before_px : float
        The scene's hypoperfused disk, π · radius².
    true_after_px : float
        The pixels whose true flow after the needling is still below the threshold's fraction
        of healthy skin: the crescent the needling does not reach
        (:meth:`lsci.sim.needling.NeedlingScene.persistent_mask`).
    measured_recovered_px : int
        Hypoperfused before and not after, as the comparison engine delineates them
        (:attr:`lsci.analysis.delineation.AreaComparison.recovered_px`).
    true_recovered_px : float
        The same from the true τc maps: the needled part of the disk
        (:meth:`lsci.sim.needling.NeedlingScene.recovered_mask`), of the pixels measured in
        both maps (as the engine counts).
    pixel_area_mm2 : float
        Area of one pixel on the skin.
    threshold : str
        The threshold used, in words.
    """

    measured_before_px: int
    measured_after_px: int
    unmeasured_before_px: int
    true_before_px: float
    true_after_px: float
    measured_recovered_px: int
    true_recovered_px: float
    pixel_area_mm2: float
    threshold: str

    @property
    def before_error(self) -> float:
        """Relative error of the area before: measured / true − 1."""
        return self.measured_before_px / self.true_before_px - 1.0

    @property
    def after_error(self) -> float:
        """Relative error of the area after: measured / true − 1."""
        return self.measured_after_px / self.true_after_px - 1.0

    @property
    def recovered_error(self) -> float:
        """Relative error of the recovered area: measured / true − 1."""
        return self.measured_recovered_px / self.true_recovered_px - 1.0


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
    areas : AreaTruth
        The hypoperfused area, measured and true.
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
    areas: AreaTruth


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
    areas = outcome.areas
    mm2 = areas.pixel_area_mm2

    def area(px: float) -> str:
        return f"{px * mm2:7.1f} mm² ({px:7.0f} px)"

    lines[6:6] = [
        "",
        f"Hypoperfused area, {areas.threshold}:",
        f"  before needling: measured {area(areas.measured_before_px)}   simulated truth "
        f"{area(areas.true_before_px)}   error {100 * areas.before_error:+.1f} %",
        f"    (the outline's extent; {areas.unmeasured_before_px} px of it saturated, not "
        "measured, and left out of the area in mm² lsci compare reports)",
        f"  after needling:  measured {area(areas.measured_after_px)}   simulated truth "
        f"{area(areas.true_after_px)}   error {100 * areas.after_error:+.1f} %",
        "    (the crescent the needling did not reach, still hypoperfused)",
        f"  recovered:       measured {area(areas.measured_recovered_px)}   simulated truth "
        f"{area(areas.true_recovered_px)}   error {100 * areas.recovered_error:+.1f} %",
        "    (hypoperfused before and not after, of the pixels measured in both)",
    ]
    registration = comparison.registration
    if isinstance(registration, SimilarityRegistration):
        lines.append(
            f"Registration: rotation {registration.rotation_deg:+.2f}°, scale "
            f"{registration.scale:.4f}, shift ({registration.shift_px[0]:+.2f}, "
            f"{registration.shift_px[1]:+.2f}) px, correlation {registration.correlation:.2f}"
        )
    elif registration is not None:
        lines.append(
            f"Registration: shift ({registration.shift_px[0]:+.2f}, "
            f"{registration.shift_px[1]:+.2f}) px, peak ratio {registration.peak_ratio:.1f}"
        )
    scale = comparison.scale
    if scale is not None and math.isfinite(scale.pixel_size_mm):
        lines.append(f"Scale: {scale.pixel_size_mm:g} mm/px ({scale.source})")
    lines += ["", f"Finished in {outcome.seconds:.0f} s.", ""]
    return "\n".join(lines)
