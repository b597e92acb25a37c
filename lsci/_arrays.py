"""The array convention of every public lsci function, and the checks that apply it.

Exceptions
----------
TypeError
    An argument of the wrong *kind*: not an array where an array is required, a dtype outside
    the supported set (bool, complex, object or strings where numbers are expected, an integer
    type a function does not take), a non-integer where an integer is required.
ValueError
    An argument of the right kind with the wrong *shape or values*: wrong number of dimensions,
    a shape that does not match, an empty array, a value out of range or not finite, an ``out``
    array that is read-only or (where a kernel writes it directly) not C-contiguous.

Dtypes
------
Intensities (raw frames)
    uint8, uint16 (10/12/14-bit data in 16-bit containers too), float32, float64
    (:data:`INTENSITY_DTYPES`); the contrast kernels are exact for these.
Real values (contrast, indices, parameters)
    Any integer or floating dtype. float32 and float64 are used as they are, other integer
    types become float64 (:func:`as_real`). bool and complex are rejected.
Outputs
    float32 by default; a float64 ``out`` gets float64. Computations that need it run in float64
    whatever the output dtype.

``out=``
--------
``out`` is an optional NumPy array of exactly the output's shape and one of the function's
output dtypes; the function writes into it and returns it (:func:`prepare_out`). It must be
writeable; a function whose kernel writes into it directly also needs it C-contiguous and says
so. ``out`` never changes the result's values beyond the dtype's rounding.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FLOAT_DTYPES",
    "INTENSITY_DTYPES",
    "as_int",
    "as_real",
    "check_out",
    "frame_shape",
    "prepare_out",
]

#: Dtypes raw frames may have.
INTENSITY_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.uint8),
    np.dtype(np.uint16),
    np.dtype(np.float32),
    np.dtype(np.float64),
)
#: Dtypes of float outputs.
FLOAT_DTYPES: tuple[np.dtype[Any], ...] = (np.dtype(np.float32), np.dtype(np.float64))


def _names(dtypes: Sequence[np.dtype[Any]]) -> str:
    names = [str(d) for d in dtypes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def as_int(value: Any, name: str) -> int:
    """``value`` as an int; TypeError for anything that is not an integer (bool included)."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def as_real(name: str, values: npt.ArrayLike) -> npt.NDArray[np.floating[Any]]:
    """``values`` as a float32 or float64 array (other integer and float dtypes become float64).

    Raises
    ------
    TypeError
        If the dtype is not an integer or floating type (bool, complex, object, strings).
    """
    arr = np.asarray(values)
    if arr.dtype in FLOAT_DTYPES:
        return arr
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def frame_shape(shape: Any, name: str = "shape") -> tuple[int, int]:
    """``shape`` as ``(rows, cols)`` of two positive ints.

    Raises
    ------
    TypeError
        If ``shape`` is not a sequence of integers.
    ValueError
        If it does not hold exactly two of them, or one is < 1.
    """
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence | np.ndarray):
        raise TypeError(f"{name} must be two positive integers (rows, cols), got {shape!r}")
    dims = tuple(as_int(n, name) for n in shape)
    if len(dims) != 2 or min(dims) < 1:
        raise ValueError(f"{name} must be two positive integers (rows, cols), got {shape!r}")
    return dims[0], dims[1]


def check_out(
    out: Any,
    shape: tuple[int, ...],
    dtypes: Sequence[np.dtype[Any]] = FLOAT_DTYPES,
    *,
    contiguous: bool = False,
) -> None:
    """Check an ``out`` argument (None passes) against the output's shape and dtypes.

    Raises
    ------
    TypeError
        If ``out`` is not a NumPy array or its dtype is not one of ``dtypes``.
    ValueError
        If its shape is not ``shape``, it is read-only, or ``contiguous`` is asked for and it
        is not C-contiguous.
    """
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.dtype not in dtypes:
        raise TypeError(f"out must have dtype {_names(dtypes)}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    if contiguous and not out.flags.c_contiguous:
        raise ValueError("out must be a writeable C-contiguous array")


def prepare_out(
    out: Any,
    shape: tuple[int, ...],
    dtypes: Sequence[np.dtype[Any]] = FLOAT_DTYPES,
    *,
    contiguous: bool = False,
) -> np.ndarray:
    """``out`` checked by :func:`check_out`, or a new array of ``dtypes[0]`` if it is None."""
    if out is None:
        return np.empty(shape, dtypes[0])
    check_out(out, shape, dtypes, contiguous=contiguous)
    return out  # type: ignore[no-any-return]
