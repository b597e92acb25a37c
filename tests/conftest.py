"""Fixtures shared by the whole suite."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from numba.core.dispatcher import Dispatcher

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"

# Numba compiles a kernel on its first call, which can take seconds: no per-example deadline.
settings.register_profile(
    "lsci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("lsci"), max_examples=40)
settings.load_profile("ci" if os.environ.get("CI") else "lsci")

_compile = Dispatcher.compile


@functools.wraps(_compile)
def _compile_untraced(self: Dispatcher, sig: Any) -> Any:
    """Compile a numba kernel with this thread's trace function (coverage's) suspended.

    numba's compiler is Python: traced by coverage, a cold compile takes about half as long
    again, and a fresh clone compiles some 80 kernels. What it compiles is machine code that
    coverage cannot see (the kernel modules are omitted from the report), and every frame
    entered here returns before tracing resumes, so no measured line is lost.
    """
    tracer = sys.gettrace()
    sys.settrace(None)
    try:
        return _compile(self, sig)
    finally:
        sys.settrace(tracer)


Dispatcher.compile = _compile_untraced  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (``../shared/data``); skips the test when it is absent."""
    folder = SHARED_DIR / "data"
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder} (only present beside a CI checkout)")
    return folder
