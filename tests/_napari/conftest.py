"""GUI fixtures: settings in a temporary folder, small phantom layers, real data path."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _settings_dir(tmp_path, monkeypatch):
    """Widget settings go to a per-test folder, never the user's."""
    monkeypatch.setenv("EDXTOMO_SETTINGS_DIR", str(tmp_path / "settings"))
    return tmp_path / "settings"


@pytest.fixture
def small_tilt_layers():
    """Layer data of a 20^3 core-shell phantom tilt series (-40..40 deg)."""
    from edxtomo._napari._sample_data import phantom_tilt_series

    return phantom_tilt_series(size=20)


@pytest.fixture
def add_layers():
    """``add_layers(viewer, layer_data)`` adds layer-data tuples as image layers."""

    def add(viewer, layer_data):
        for data, kwargs, _ in layer_data:
            viewer.add_image(data, **kwargs)
        return viewer

    return add
