"""lsci: laser speckle contrast imaging.

Camera frames become speckle contrast (:mod:`lsci.core.contrast`), contrast becomes perfusion,
recordings live in HDF5, and before/after maps are compared. Drivers live in
:mod:`lsci.drivers`; the napari plugin is the separate import ``napari_lsci``.
"""

from lsci._version import __version__

__all__ = ["__version__"]
