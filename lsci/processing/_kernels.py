"""Numba kernels of the processing layer (arithmetic only; callers validate and allocate)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit


@njit(cache=True, nogil=True)
def count_not_finite(values: npt.NDArray[np.floating[Any]]) -> int:
    """NaN and ±inf among 1-D ``values``, counted in one pass that allocates nothing and
    leaves the GIL to the threads reading and writing meanwhile."""
    count = 0
    for i in range(values.shape[0]):
        count += not np.isfinite(values[i])
    return count
