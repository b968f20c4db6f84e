"""Shared fixtures: small phantoms and the location of the real test data."""

from __future__ import annotations

from pathlib import Path

import pytest

from edxtomo.phantom import acquire, make_phantom, tilt_angles

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real EDX test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_phantom():
    return make_phantom("core_shell", 24, seed=1)


@pytest.fixture(scope="session")
def small_series(small_phantom):
    return acquire(small_phantom, tilt_angles(-40, 40, 5), dose=5.0, seed=1)
