"""``make demo`` with a display: napari opens with the phantom and the plugin's docks."""

import pytest

from edxtomo.demo import open_demo_viewer

pytestmark = pytest.mark.gui


def test_demo_viewer_has_sample_and_widgets(make_napari_viewer):
    viewer = open_demo_viewer(make_napari_viewer())
    assert len(viewer.layers) >= 3
    assert all(layer.data.ndim == 3 for layer in viewer.layers)
    docks = set(viewer.window.dock_widgets)
    for name in ("Load EDX tilt series", "Reconstruct", "Export"):
        assert any(name in d for d in docks), (name, docks)
