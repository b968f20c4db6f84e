"""What a user sees around a run: 3D defaults, export on defaults, time estimates, help texts."""

from __future__ import annotations

import numpy as np
import pytest

from edxtomo._napari.layers import layer_meta
from edxtomo._napari.widgets._dock import input_widgets
from edxtomo._napari.widgets.export_widget import ExportWidget
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def docks(make_napari_viewer, add_layers, small_tilt_layers):
    viewer = make_napari_viewer()
    add_layers(viewer, small_tilt_layers)
    rec = ReconstructWidget(viewer)
    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(rec)
    viewer.window.add_dock_widget(export)
    return viewer, rec, export


def _run(qtbot, rec, method, **params):
    rec.method_box.setCurrentIndex(rec.method_box.findData(method))
    rec.form.set_values(params)
    rec.start()
    assert rec.controller.running
    qtbot.waitUntil(lambda: not rec.controller.running, timeout=60_000)
    return rec.controller.record


def test_two_runs_export_on_defaults_and_reopen(docks, qtbot, tmp_path):
    viewer, rec, export = docks
    _run(qtbot, rec, "tv", iterations=6, snapshot_every=3)
    second = _run(qtbot, rec, "sirt", iterations=6, snapshot_every=3)
    # One run visible at a time; the legend names the visible elements.
    assert all(not viewer.layers[f"{e} [TV]"].visible for e in second.series.elements)
    assert all(viewer.layers[f"{e} [SIRT]"].visible for e in second.series.elements)
    assert all(e in rec.legend.text() for e in second.series.elements)
    layer = viewer.layers["In [SIRT]"]
    assert layer.rendering == "attenuated_mip" and layer.axis_labels == ("z", "y", "x")
    assert [str(u) for u in layer.units] == ["nanometer"] * 3
    assert viewer.dims.axis_labels[0] == "z"
    lo, hi = layer.contrast_limits
    assert 0 <= lo < hi <= float(layer.data.max()) * 1.25 * 1.001
    # Export on its defaults: the latest run only.
    export.folder.setText(str(tmp_path / "out"))
    paths = export.export()
    assert {p.name for p in paths} == {"In.tif", "Se.tif", "S.tif", "reconstruction.json"}
    for p in paths:
        assert str(p) in export.status.text()
    # The written volume reopens through the plugin with its voxel size.
    viewer.open(str(tmp_path / "out" / "In.tif"), plugin="edxtomo")
    back = viewer.layers[-1]
    ps = layer_meta(layer)["pixel_size_nm"]
    np.testing.assert_allclose(back.scale, (ps, ps, ps), rtol=1e-6)
    np.testing.assert_array_equal(back.data, second.last.volumes["In"])


def test_export_error_goes_to_status_and_toast(docks, qtbot, tmp_path, monkeypatch):
    import edxtomo._napari.widgets._dock as dock

    errors: list[str] = []
    monkeypatch.setattr(dock, "show_error", errors.append)
    viewer, rec, export = docks
    _run(qtbot, rec, "tv", iterations=4, snapshot_every=2)
    _run(qtbot, rec, "sirt", iterations=4, snapshot_every=2)
    for i in range(export.layer_list.count()):  # tick both runs: the same element twice
        export.layer_list.item(i).setCheckState(export.layer_list.item(0).checkState().Checked)
    export.folder.setText(str(tmp_path / "out"))
    assert export.export() == []
    assert errors and errors[0].startswith("two ticked layers are element")
    assert export.status.text() == errors[0]


def test_volume_shape_shown_before_start(docks):
    viewer, rec, _ = docks
    rec.method_box.setCurrentIndex(rec.method_box.findData("tv"))
    ps = layer_meta(viewer.layers["In [tilts]"])["pixel_size_nm"]
    assert f"volume 20 x 20 x 20 voxels (z, y, x) = {20 * ps:.4g}" in rec.shape_label.text()
    if "nz" in rec.form.values():
        rec.form.set_values({"nz": 8})
        assert rec.shape_label.text().startswith("volume 8 x 20 x 20")


def test_estimate_shown_then_cleared_by_stop(docks, qtbot):
    viewer, rec, _ = docks
    rec.method_box.setCurrentIndex(rec.method_box.findData("tv"))
    rec.form.set_values({"iterations": 1_000_000, "snapshot_every": 50})
    rec.start()
    assert rec.estimate.text() == "timing the first iterations…"
    qtbot.waitUntil(lambda: "per iteration" in rec.estimate.text(), timeout=60_000)
    assert "left" in rec.progress_bar.text() and "iteration" in rec.status.text()
    # A million TV iterations is far beyond a few minutes on a CPU: a warning says so.
    if not any(c.startswith("cuda") for c in getattr(rec.form.device, "choices", ())):
        assert "long run" in rec.estimate.text()
    rec.stop()
    assert "left" not in rec.progress_bar.text() and "per iteration" not in rec.estimate.text()
    qtbot.waitUntil(lambda: not rec.controller.running, timeout=60_000)
    assert "left" not in rec.progress_bar.text()
    assert rec.estimate.text().startswith("took")


def test_every_input_has_a_tooltip_and_docks_scroll(make_napari_viewer, add_layers,
                                                    small_tilt_layers):
    viewer = make_napari_viewer()
    add_layers(viewer, small_tilt_layers)
    docks = [LoadWidget(viewer), ReconstructWidget(viewer), ExportWidget(viewer)]
    for dock in docks:
        viewer.window.add_dock_widget(dock)
        assert len(dock.about.text()) > 40 and dock.whatsThis()
        widgets = input_widgets(dock)
        assert len(widgets) >= 3
        missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
                   for w in widgets if not w.toolTip().strip()]
        assert not missing, f"{type(dock).__name__}: no tooltip on {missing}"
        # Content scrolls instead of pushing the dock past a 1000-px screen.
        assert dock.minimumSizeHint().height() < 600


def test_docks_open_wide_enough_for_their_inputs(make_napari_viewer, add_layers, small_tilt_layers,
                                                 qtbot):
    """At napari's default dock width no input is cut off behind a horizontal scrollbar."""
    viewer = make_napari_viewer(show=True)
    add_layers(viewer, small_tilt_layers)
    for dock in (LoadWidget(viewer), ReconstructWidget(viewer), ExportWidget(viewer)):
        viewer.window.add_dock_widget(dock, area="right")
        qtbot.wait(300)  # let the main window lay the dock out
        hbar = dock.scroll.horizontalScrollBar()
        assert hbar.maximum() == 0, f"{type(dock).__name__}: {hbar.maximum()} px cut off"
