"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = PROJECT_ROOT.parent / "shared"

# Numba compiles a kernel on its first call, which can take seconds: no per-example deadline.
settings.register_profile(
    "lsci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("lsci"), max_examples=40)
settings.load_profile("ci" if os.environ.get("CI") else "lsci")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (``../shared/data``); skips the test when it is absent."""
    folder = SHARED_DIR / "data"
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder} (only present beside a CI checkout)")
    return folder
