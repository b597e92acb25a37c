"""The main job end to end, on the simulated camera: a needling session from capture to comparison.

:func:`run_demo` does what a user at a speckle rig does, with the simulated speckle camera
(:class:`lsci.drivers.simulated.SimulatedCamera`) in place of a real one, through the same code:

1. record a dark frame (laser off) and a static target (for β) through the live pipeline;
2. record a skin patch with an ischemic region (:class:`lsci.sim.needling.NeedlingScene`): a
   baseline, a "needling" procedure marked by events, and a recovery during which the flow of
   the needled part of the patch rises by a known factor while a crescent the needling does not
   reach stays occluded;
3. process the recording with its calibrations (dark subtraction, β): spatial contrast and the
   inverse correlation time 1/τc from the speckle visibility equation;
4. compare the windows before and after needling: registration, ratio and percent-change maps,
   ROI statistics of the ischemic patch against healthy skin;
5. write the figures, the ROI table and a summary that sets the measured recovery next to the
   truth computed from the simulator's τc maps.

Modules: :mod:`lsci.demo.session` records a simulated needling session (in real time through
the live pipeline, or frame by frame for tests and sample data), :mod:`lsci.demo.run` runs the
five steps, :mod:`lsci.demo.summary` writes the summary.
"""

from lsci.demo.run import DemoFolderNotEmptyError, DemoResult, DemoSettings, run_demo
from lsci.sim.needling import HEALTHY, ISCHEMIC

__all__ = [
    "HEALTHY",
    "ISCHEMIC",
    "DemoFolderNotEmptyError",
    "DemoResult",
    "DemoSettings",
    "run_demo",
]
