"""A simulated needling session: ischemic skin whose perfusion recovers by a known factor.

:class:`NeedlingScene` is the one description of the session that the demo, the napari sample
data and the tests simulate. It holds the scene (a skin patch with a vessel and a hypoperfused
disk), the timeline (a needling procedure between two events; the flow in the needled part of
the disk rises during it, a crescent the needling does not reach stays occluded) and the ground
truth a measurement is checked against: the true τc maps before and after, the disk's centre
and radius in pixels, the recovered and the persistent parts of the disk, and the regions where
the true recovery is known.

:func:`simulate_needling` films a scene with :class:`~lsci.sim.speckle.SpeckleSimulator` as
fast as the simulator runs (no real-time camera, no storage): the frames a recording of the
session holds. Everything here is arrays; recordings are written above this layer.

Flow is proportional to 1/τc (Boas & Dunn 2010), so the true recovery of a region is the ratio
of its mean 1/τc after and before the needling, and the truly hypoperfused pixels are those
whose 1/τc is below a fraction of healthy skin's (:meth:`NeedlingScene.true_hypoperfused`).

:func:`realistic_skin_scene` is the same session in the regime of real skin: τc between about
20 and 200 µs and light from static scatterers (a static fraction 1 − ρ, the model of
Parthasarathy et al. 2008), where the simple perfusion indices are off (docs/physics.md).

References
----------
.. [1] D. A. Boas and A. K. Dunn, "Laser speckle contrast imaging in biomedical optics",
   J. Biomed. Opt. 15, 011109 (2010).
.. [2] A. B. Parthasarathy, W. J. Tom, A. Gopal, X. Zhang and A. K. Dunn, "Robust flow
   measurement with multi-exposure speckle imaging", Opt. Express 16, 1975–1989 (2008).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from lsci._arrays import frame_shape
from lsci.sim.speckle import SpeckleSimulator, skin_flow_map, skin_reflectance_map, soft_disk

__all__ = [
    "HEALTHY",
    "ISCHEMIC",
    "NEEDLING_END",
    "NEEDLING_START",
    "NeedlingFrames",
    "NeedlingScene",
    "realistic_skin_scene",
    "simulate_needling",
]

#: Names of the two regions whose true recovery the scene knows.
ISCHEMIC: Final = "ischemic patch"
HEALTHY: Final = "healthy skin"
#: Labels of the events that bracket the needling.
NEEDLING_START: Final = "needling start"
NEEDLING_END: Final = "needling end"

# Fractions of the disk's radius. Its raised-cosine edge is a quarter of the radius wide, so
# its flat core ends at 7/8 of the radius.
_EDGE_FRACTION: Final = 0.25
# The needled part: a disk whose centre lies a quarter of the radius left of the hypoperfused
# disk's, with 0.85 of its radius (to the middle of an edge as wide as the disk's). It covers
# the disk's centre and left side; the crescent it leaves on the right, 0.4 of the radius wide
# at the widest, is what the needling does not reach. Its edges are soft like the disk's, so
# the area below any threshold between the two flows is well defined: no sliver of the map
# sits at a level near the threshold.
_NEEDLED_OFFSET: Final = 0.25
_NEEDLED_RADIUS: Final = 0.85
# The ischemic region of interest: half the radius around the needled centre, inside the flat
# part of the needled disk (out to 0.85 - 0.125 = 0.725) and of the hypoperfused disk
# (0.25 + 0.5 = 0.75 < 7/8 from its centre).
_ROI_FRACTION: Final = 0.5
# Healthy skin: a rectangle in the lower left, away from the disk and from the vessel that
# skin_flow_map draws across the upper third, as fractions of (rows, columns).
_HEALTHY_ROWS: Final = (0.68, 0.9)
_HEALTHY_COLS: Final = (0.08, 0.3)

# The camera of simulate_needling: 12 bits, speckle grain of 3 pixels, mean level near 1/10
# of full scale (the bright tail of slow speckle is not clipped) and no black level, so the
# frames need no dark-frame calibration to give unbiased contrast.
_BIT_DEPTH: Final = 12
_GRAIN_PX: Final = 3.0
_GAIN_ADU_PER_E: Final = 0.2
_DARK_OFFSET_ADU: Final = 0.0


@dataclass(frozen=True)
class NeedlingScene:
    """A skin patch with a hypoperfused disk whose flow recovers where it was needled.

    Times are in seconds since the start of the session, lengths in pixels.

    Attributes
    ----------
    shape : tuple of int
        Sensor size (rows, columns).
    baseline_tau_c_s : float
        τc of healthy skin, > 0.
    ischemic_factor : float
        τc in the disk over the healthy τc before the needling, > 0 (> 1: less flow).
    recovery_factor : float
        The flow in the needled part of the disk is multiplied by this at :attr:`recovery_s`,
        > 0. With the defaults it rises from 1/5 to 4/5 of healthy skin's, well above the
        half-way threshold of :func:`lsci.analysis.delineation.delineate_hypoperfusion`.
    needling_start_s, needling_end_s : float
        Times of the ``"needling start"`` and ``"needling end"`` events. The flow recovers
        half way between them (:attr:`recovery_s`).
    seed : int
        The tissue: seeds the flow heterogeneity and the reflectance texture.
    static_fraction : float
        Fraction 1 − ρ of the light from static scatterers, in [0, 1) (Parthasarathy et al.
        2008); 0 by default (all light from moving scatterers). :func:`simulate_needling`
        films it; the camera scene of :mod:`lsci.drivers.simulated` does not.
    vessel_factor : float
        τc on the vessel's axis over the healthy τc, > 0 (:func:`skin_flow_map`).

    Raises
    ------
    TypeError
        If ``shape`` is not two integers.
    ValueError
        If a parameter is outside its range; the message names it.

    Notes
    -----
    τc before the needling is :func:`~lsci.sim.speckle.skin_flow_map` with a disk of radius
    ``min(shape) / 5`` at the centre of the sensor (raised-cosine edge a quarter of the radius
    wide), a vessel and a faint flow heterogeneity. The needling reaches a disk of 0.85 times
    the radius centred a quarter of the radius left of the disk's centre (same soft edge,
    :attr:`needled_center_px`): at :attr:`recovery_s` the flow there is multiplied by
    ``recovery_factor ** weight`` (:meth:`recovery_weight`: the product of the two disks'
    weights), the way :class:`lsci.drivers.simulated.SpeckleScene` scripts a flow change. So
    the needled part of the disk is hypoperfused by ``ischemic_factor / recovery_factor``
    afterwards, with the disk's own soft edge, and the crescent on the right
    (:meth:`persistent_mask`) by ``ischemic_factor`` still.

    Examples
    --------
    >>> from lsci.sim.needling import HEALTHY, ISCHEMIC, NeedlingScene
    >>> scene = NeedlingScene(shape=(64, 64))
    >>> round(scene.true_recovery(ISCHEMIC), 6), round(scene.true_recovery(HEALTHY), 6)
    (4.0, 1.0)
    """

    shape: tuple[int, int] = (128, 128)
    baseline_tau_c_s: float = 1e-3
    ischemic_factor: float = 5.0
    recovery_factor: float = 4.0
    needling_start_s: float = 9.0
    needling_end_s: float = 12.0
    seed: int = 0
    static_fraction: float = 0.0
    vessel_factor: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", frame_shape(self.shape))
        if not (math.isfinite(self.static_fraction) and 0.0 <= self.static_fraction < 1.0):
            raise ValueError(f"static_fraction={self.static_fraction!r} must lie in [0, 1)")
        for name in ("baseline_tau_c_s", "ischemic_factor", "recovery_factor", "vessel_factor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a finite number > 0")
        if not 0 <= self.needling_start_s <= self.needling_end_s < math.inf:
            raise ValueError(
                f"needling_start_s={self.needling_start_s!r} and needling_end_s="
                f"{self.needling_end_s!r} must satisfy 0 <= start <= end < inf"
            )

    # -- geometry and timeline ---------------------------------------------------------

    @property
    def center_px(self) -> tuple[float, float]:
        """(row, column) of the disk's centre: the centre of the sensor."""
        return (self.shape[0] - 1) / 2.0, (self.shape[1] - 1) / 2.0

    @property
    def radius_px(self) -> float:
        """Radius of the hypoperfused disk (to the middle of its soft edge)."""
        return min(self.shape) / 5.0

    @property
    def edge_px(self) -> float:
        """Width of the raised-cosine edges of the disk and of its needled part."""
        return _EDGE_FRACTION * self.radius_px

    @property
    def needled_center_px(self) -> tuple[float, float]:
        """(row, column) of the needled part's centre: left of the disk's."""
        row, col = self.center_px
        return row, col - _NEEDLED_OFFSET * self.radius_px

    @property
    def needled_radius_px(self) -> float:
        """Radius of the needled part (to the middle of its soft edge)."""
        return _NEEDLED_RADIUS * self.radius_px

    @property
    def recovery_s(self) -> float:
        """When the needled part's flow recovers: half way through the needling."""
        return 0.5 * (self.needling_start_s + self.needling_end_s)

    @property
    def events(self) -> tuple[tuple[float, str], ...]:
        """``(time_s, label)`` of the events that bracket the needling."""
        return (self.needling_start_s, NEEDLING_START), (self.needling_end_s, NEEDLING_END)

    def _distance_px(self, center: tuple[float, float]) -> NDArray[np.float64]:
        rows, cols = np.ogrid[: self.shape[0], : self.shape[1]]
        distance: NDArray[np.float64] = np.hypot(rows - center[0], cols - center[1])
        return distance

    @property
    def disk_area_px(self) -> float:
        """Area of the hypoperfused disk, π · radius², pixels."""
        return math.pi * self.radius_px**2

    def recovery_weight(self) -> NDArray[np.float64]:
        """How much each pixel recovers at :attr:`recovery_s`, in [0, 1].

        The flow is multiplied by ``recovery_factor ** weight``. The weight is the product of
        the hypoperfused disk's and the needled part's raised-cosine profiles: 1 where both
        are flat, 0 outside either, so healthy skin never changes and the needled part ends
        up hypoperfused by ``ischemic_factor / recovery_factor`` with the disk's soft edge.
        """
        disk = soft_disk(self.shape, self.center_px, self.radius_px, self.edge_px)
        needled = soft_disk(self.shape, self.needled_center_px, self.needled_radius_px,
                            self.edge_px)  # fmt: skip
        weight: NDArray[np.float64] = disk * needled
        return weight

    def regions(self) -> dict[str, NDArray[np.bool_]]:
        """Regions of interest whose true recovery is known (:data:`ISCHEMIC`, :data:`HEALTHY`).

        The ischemic region is a disk of half the radius around the needled part's centre,
        where both the disk and the needled part are flat: its flow rises by exactly
        ``recovery_factor``. Healthy skin is a rectangle away from the disk and the vessel.
        """
        rows, cols = self.shape
        healthy = np.zeros(self.shape, dtype=bool)
        healthy[
            int(_HEALTHY_ROWS[0] * rows) : int(_HEALTHY_ROWS[1] * rows),
            int(_HEALTHY_COLS[0] * cols) : int(_HEALTHY_COLS[1] * cols),
        ] = True
        ischemic = self._distance_px(self.needled_center_px) <= _ROI_FRACTION * self.radius_px
        return {ISCHEMIC: ischemic, HEALTHY: healthy}

    # -- what the camera sees ----------------------------------------------------------

    def tau_c_before(self) -> NDArray[np.float64]:
        """True τc map (seconds) before the recovery."""
        return skin_flow_map(
            self.shape,
            baseline_tau_c_s=self.baseline_tau_c_s,
            ischemic_center=self.center_px,
            ischemic_radius_px=self.radius_px,
            ischemic_factor=self.ischemic_factor,
            edge_px=self.edge_px,
            vessel_factor=self.vessel_factor,
            rng=self.seed,
        )

    def tau_c_after(self) -> NDArray[np.float64]:
        """True τc map (seconds) after the recovery."""
        after: NDArray[np.float64] = (
            self.tau_c_before() / self.recovery_factor ** self.recovery_weight()
        )
        return after

    def tau_c_at(self, time_s: float) -> NDArray[np.float64]:
        """True τc map (seconds) ``time_s`` after the start of the session."""
        return self.tau_c_after() if time_s >= self.recovery_s else self.tau_c_before()

    def illumination(self) -> NDArray[np.float64]:
        """Relative mean intensity of the laser-lit skin (mean 1).

        A faint fine texture (pores, hair) as on real skin: it is what registers the before
        and after images (a smooth field would be refused), and it is kept faint because its
        spatial variance adds to K² (Kim et al. 2023).
        """
        return skin_reflectance_map(self.shape, texture=0.1, texture_px=3.0, rng=self.seed + 1)

    # -- ground truth ------------------------------------------------------------------

    def true_hypoperfused(self, time_s: float, fraction: float = 0.5) -> NDArray[np.bool_]:
        """Pixels whose true flow is below ``fraction`` of healthy skin's at ``time_s``.

        Parameters
        ----------
        time_s : float
            Seconds since the start of the session.
        fraction : float
            Of the median true 1/τc over the :data:`HEALTHY` region, 0 < fraction <= 1.

        Returns
        -------
        (M, N) ndarray of bool
            The truth a delineation of the hypoperfused area at that time is checked against
            (pixel by pixel, without cleaning of small regions): before the needling the disk,
            after it the crescent the needling does not reach (:meth:`persistent_mask`). The
            levels lie far from the
            default threshold (1/5 of healthy skin's flow in the occluded parts, 4/5 in the
            recovered one), so this area moves little with ``fraction``.
        """
        return self._below(self.tau_c_at(time_s), fraction)

    def _below(self, tau_c_s: NDArray[np.float64], fraction: float) -> NDArray[np.bool_]:
        """Pixels whose 1/τc is below ``fraction`` of its median over healthy skin."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction={fraction!r} must lie in (0, 1]")
        rate = 1.0 / tau_c_s
        level = float(np.median(rate[self.regions()[HEALTHY]]))
        below: NDArray[np.bool_] = rate < fraction * level
        return below

    def recovered_mask(self, fraction: float = 0.5) -> NDArray[np.bool_]:
        """The region that truly recovered: hypoperfused before the needling, not after.

        The needled part of the disk, to where its soft edge crosses the threshold
        (:meth:`true_hypoperfused` with the same ``fraction``): the truth of
        :attr:`lsci.analysis.delineation.AreaComparison.recovered`.
        """
        before, after = self._true_before_after(fraction)
        recovered: NDArray[np.bool_] = before & ~after
        return recovered

    def persistent_mask(self, fraction: float = 0.5) -> NDArray[np.bool_]:
        """The region truly still hypoperfused: hypoperfused before the needling and after.

        The crescent on the disk's right that the needling does not reach, where the flow stays
        ``1 / ischemic_factor`` of healthy skin's (:meth:`true_hypoperfused` with the same
        ``fraction``): the truth of :attr:`lsci.analysis.delineation.AreaComparison.persistent`.
        The needling raises the flow everywhere it acts, so this is all that is hypoperfused
        after it.
        """
        before, after = self._true_before_after(fraction)
        persistent: NDArray[np.bool_] = before & after
        return persistent

    def _true_before_after(self, fraction: float) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        return self._below(self.tau_c_before(), fraction), self._below(self.tau_c_after(), fraction)

    def true_recovery(self, region: str | NDArray[np.bool_]) -> float:
        """True recovery of a region: its mean flow (1/τc) after over before.

        Parameters
        ----------
        region : str or (M, N) bool array
            A name from :meth:`regions` or a mask of :attr:`shape`.

        Returns
        -------
        float
            The ratio a perfect measurement of the region's mean perfusion would give.
        """
        mask = self.regions()[region] if isinstance(region, str) else np.asarray(region, bool)
        before = float(np.mean(1.0 / self.tau_c_before()[mask]))
        after = float(np.mean(1.0 / self.tau_c_after()[mask]))
        return after / before


@dataclass(frozen=True)
class NeedlingFrames:
    """Raw frames of a simulated session and when each exposure started.

    Attributes
    ----------
    times_s : (T,) float64 array
        Start of each exposure, seconds since the start of the session.
    frames : (T, M, N) uint16 array
        12-bit raw frames (no black level).
    exposure_s : float
        Exposure time of every frame.
    """

    times_s: NDArray[np.float64]
    frames: NDArray[np.uint16]
    exposure_s: float

    @property
    def bit_depth(self) -> int:
        """ADC bit depth of the frames."""
        return _BIT_DEPTH

    def split(self, time_s: float) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
        """The frames that started before ``time_s`` and the rest."""
        index = int(np.searchsorted(self.times_s, time_s, side="left"))
        return self.frames[:index], self.frames[index:]


def simulate_needling(
    scene: NeedlingScene,
    n_frames: int,
    *,
    frame_interval_s: float,
    exposure_s: float,
    seed: int = 0,
) -> NeedlingFrames:
    """Film a needling session frame by frame, as fast as the simulator runs.

    One simulated camera looks at one tissue (texture, illumination, speckle field) and only
    the flow changes, at the scene's recovery time, as when the same patch is filmed before
    and after treatment.

    Parameters
    ----------
    scene : NeedlingScene
        What is filmed.
    n_frames : int
        Number of frames, >= 0; frame ``i`` starts at ``i * frame_interval_s``.
    frame_interval_s : float
        Time between the starts of consecutive exposures, >= ``exposure_s``.
    exposure_s : float
        Exposure time, > 0.
    seed : int
        Seed of the speckle and the camera noise.

    Returns
    -------
    NeedlingFrames
        The frames and their times.

    Raises
    ------
    ValueError
        If ``n_frames`` < 0 or the timing is invalid.

    Examples
    --------
    >>> from lsci.sim.needling import NeedlingScene, simulate_needling
    >>> scene = NeedlingScene(shape=(32, 32), needling_start_s=0.1, needling_end_s=0.2)
    >>> session = simulate_needling(scene, 4, frame_interval_s=0.1, exposure_s=5e-3)
    >>> [len(part) for part in session.split(scene.recovery_s)]
    [2, 2]
    """
    if n_frames < 0:
        raise ValueError(f"n_frames={n_frames!r} must be >= 0")
    camera = SpeckleSimulator(
        scene.shape,
        tau_c_s=scene.tau_c_before(),
        exposure_s=exposure_s,
        frame_interval_s=frame_interval_s,
        illumination=scene.illumination(),
        grain_px=_GRAIN_PX,
        static_fraction=scene.static_fraction,
        gain_adu_per_e=_GAIN_ADU_PER_E,
        dark_offset_adu=_DARK_OFFSET_ADU,
        bit_depth=_BIT_DEPTH,
        seed=seed,
    )
    times = np.arange(n_frames, dtype=np.float64) * frame_interval_s
    recovered = np.searchsorted(times, scene.recovery_s, side="left")
    frames = np.empty((n_frames, *scene.shape), dtype=np.uint16)
    for index, frame in enumerate(frames):
        if index == recovered:
            camera.set_tau_c(scene.tau_c_after())
        camera.next_frame(out=frame)
    return NeedlingFrames(times, frames, float(exposure_s))


def realistic_skin_scene(
    shape: tuple[int, int] = (128, 128),
    *,
    static_fraction: float = 0.3,
    needling_start_s: float = 9.0,
    needling_end_s: float = 12.0,
    seed: int = 0,
) -> NeedlingScene:
    """The needling session in the regime of real skin: fast decorrelation and static light.

    Healthy skin has τc = 60 µs, the hypoperfused disk 3 times longer (180 µs, a third of
    the flow), the vessel 0.4 times (24 µs), and the tissue's flow heterogeneity spreads them
    by about 15 %: τc from about 20 to 200 µs. The needling doubles the flow of the needled
    part of the disk (τc 90 µs, two thirds of healthy skin). A fraction ``static_fraction`` of
    the light comes from static scatterers (epidermis, collagen, bone); 0.3 (ρ = 0.7) is this
    regime's assumption, not a measured value: pass the value of a multi-exposure fit of the
    tissue at hand (:func:`lsci.core.mesi.fit_mesi`).

    Parameters
    ----------
    shape : tuple of int
        Sensor size.
    static_fraction : float
        1 − ρ, in [0, 1).
    needling_start_s, needling_end_s : float
        The events.
    seed : int
        The tissue.

    Returns
    -------
    NeedlingScene

    Examples
    --------
    >>> scene = realistic_skin_scene()
    >>> tau = scene.tau_c_before()
    >>> bool(15e-6 < tau.min() and tau.max() < 260e-6)
    True
    """
    return NeedlingScene(
        shape=shape,
        baseline_tau_c_s=60e-6,
        ischemic_factor=3.0,
        recovery_factor=2.0,
        needling_start_s=needling_start_s,
        needling_end_s=needling_end_s,
        seed=seed,
        static_fraction=static_fraction,
        vessel_factor=0.4,
    )
