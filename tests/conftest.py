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


def _dataset(root: Path, name: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        pytest.skip(f"real data set {name} not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def idp(shared_data) -> Path:
    """The real 8-tilt Bruker .bcf series (interplanetary dust particle)."""
    return _dataset(shared_data, "openncem_idp_tilt10")


@pytest.fixture(scope="session")
def qd(shared_data) -> Path:
    """The real quantum-dot element-map series in MATLAB .mat files."""
    return _dataset(shared_data, "bispl_qd1")
