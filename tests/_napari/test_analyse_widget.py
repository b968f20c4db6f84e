"""The Analyse dock in a real viewer: calibration, composition layers, region table, profile."""

from __future__ import annotations

import numpy as np
import pytest

from edxtomo._napari.layers import META_KEY, RunRef, layer_meta, series_to_layer_data
from edxtomo._napari.widgets.analyse_widget import AnalyseWidget
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.quantify import region_stats, stats_csv
from edxtomo.runner import RunRecord

pytestmark = pytest.mark.gui

SENSITIVITY = {"Ge": 40.0, "Sb": 25.0, "Te": 32.0, "Ti": 10.0}
VOXEL = 2.0


@pytest.fixture
def cell():
    """A 16^3 memory cell as count volumes (truth x per-element sensitivity) and its labels."""
    phantom = make_phantom("memory_cell", 16, seed=2)
    gst = phantom.volumes["Te"] > 0
    matrix = gst & (phantom.volumes["Ge"] == 0.25)
    labels = np.where(phantom.volumes["Ti"] > 0, 2, np.where(matrix, 1, 0)).astype(np.int32)
    return phantom, labels


def _add_volumes(viewer, phantom, run=None):
    for el, vol in phantom.volumes.items():
        meta = {"kind": "volume", "element": el, "pixel_size_nm": VOXEL}
        if run is not None:
            meta["run"] = run
        viewer.add_image(vol * SENSITIVITY[el], name=f"{el} [TV]", scale=(VOXEL,) * 3,
                         metadata={META_KEY: meta})


def test_calibrate_compute_stats_and_profile(make_napari_viewer, qtbot, cell, tmp_path):
    phantom, labels = cell
    viewer = make_napari_viewer(show=True)
    _add_volumes(viewer, phantom)
    viewer.add_labels(labels, name="regions", scale=(VOXEL,) * 3)
    dock = AnalyseWidget(viewer)
    viewer.window.add_dock_widget(dock)
    assert [dock.k_table.item(i, 0).text() for i in range(4)] == ["Ge", "Sb", "Te", "Ti"]

    # Calibration from label 1 (the GST matrix) recovers the simulated ratios.
    dock.labels_box.setCurrentText("regions")
    dock.label_value.setValue(1)
    dock.nominal.setText("Ge=25 Sb=25 Te=55")
    k = dock.calibrate()
    assert k["Sb"] == pytest.approx(SENSITIVITY["Ge"] / SENSITIVITY["Sb"], rel=1e-4)
    assert float(dock.k_table.item(1, 1).text()) == pytest.approx(k["Sb"], rel=1e-4)
    # Hiding the volumes and adding a layer keeps the elements and the calibrated values.
    for lyr in viewer.layers:
        lyr.visible = False
    viewer.add_points(np.zeros((1, 3)), name="marker")
    assert dock.k_factors() == pytest.approx(k, rel=1e-5)
    for lyr in viewer.layers:
        lyr.visible = True

    comp = dock.compute()
    matrix = labels == 1
    te = viewer.layers["Te [at%]"]
    np.testing.assert_allclose(te.data[matrix], 55 / 1.05, rtol=1e-4)
    assert np.isnan(te.data[~comp.mask]).all() and np.isfinite(te.data[comp.mask]).all()
    assert tuple(te.contrast_limits) == (0.0, 100.0) and tuple(te.scale) == (VOXEL,) * 3
    assert layer_meta(te)["k_factors"]["Sb"] == pytest.approx(k["Sb"])
    assert dock.legend.count() == 8 and "at%" in dock.legend.itemAt(0).widget().text()
    # A second compute updates the layers in place.
    dock.compute()
    assert sum(lyr.name.endswith("[at%]") for lyr in viewer.layers) == 4

    rows = dock.update_stats()
    assert rows == region_stats(comp.volumes, labels)
    assert dock.stats_table.rowCount() == 2
    header = [dock.stats_table.horizontalHeaderItem(j).text()
              for j in range(dock.stats_table.columnCount())]
    assert header[:3] == ["label", "voxels", "masked"]
    assert float(dock.stats_table.item(1, header.index("Ti_mean")).text()) == pytest.approx(100.0)
    from qtpy.QtWidgets import QApplication

    copied = dock.copy_stats()
    assert QApplication.clipboard().text() == copied and "\t" in copied
    path = dock.export_csv(str(tmp_path / "regions.csv"))
    assert (tmp_path / "regions.csv").read_text() == stats_csv(rows) and path

    # A line across the lamella along x, in world coordinates (nm).
    z, y = 8 * VOXEL, 6 * VOXEL
    viewer.add_shapes([np.array([[z, y, 0.0], [z, y, 15 * VOXEL]])], shape_type="line",
                      name="profile")
    lines = dock.profile()
    assert set(lines) == {"Ge", "Sb", "Te", "Ti"}
    dist, ge = lines["Ge"]
    assert dist[-1] == pytest.approx(15 * VOXEL)
    expected = comp.volumes["Ge"][8, 6, :]
    np.testing.assert_allclose(ge, expected, rtol=1e-5, equal_nan=True)
    assert set(dock.plot.lines) == set(lines) and dock.plot.unit == "at%"
    pixels = dock.plot.grab().toImage()  # paints the profile (NaN gaps included)
    assert pixels.width() > 0

    dock.k_table.item(0, 1).setText("abc")
    viewer.add_points(np.zeros((1, 3)), name="another")  # a refresh keeps the typed text
    assert dock.compute() is None and "k-factor of Ge: 'abc' is not a number" in dock.status.text()


def test_masked_voxels_are_transparent(make_napari_viewer):
    # Left half of the volume has no signal (masked, NaN), the right half is Ge50Te50.
    vol = np.zeros((4, 20, 20), np.float32)
    vol[:, :, 10:] = 10.0
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.ones((4, 20, 20), np.float32), name="backdrop", colormap="green",
                     contrast_limits=(0, 2))
    for el in ("Ge", "Te"):
        viewer.add_image(vol, name=f"{el} [TV]", metadata={META_KEY: {"kind": "volume", "element": el}})
    viewer.layers["backdrop"].metadata = {META_KEY: {"kind": "tiltseries"}}  # not an element
    dock = AnalyseWidget(viewer)
    comp = dock.compute()
    assert np.isnan(comp.volumes["Te"][:, :, :10]).all()
    for lyr in viewer.layers:
        lyr.visible = lyr.name in ("backdrop", "Te [at%]")
    viewer.reset_view()
    img = viewer.screenshot(canvas_only=True, flash=False)
    h, w = img.shape[:2]
    masked, quantified = img[h // 2, w // 2 - w // 8, :3], img[h // 2, w // 2 + w // 8, :3]
    np.testing.assert_allclose(masked, [0, 128, 0], atol=3)  # only the backdrop shows
    # Te (second element: green, additive) at 50 % of its 0-100 colour bar adds ~64.
    assert quantified[1] > masked[1] + 40


def test_resolution_of_the_run_is_shown(make_napari_viewer, qtbot):
    phantom = make_phantom("core_shell", 16, seed=1)
    series = acquire(phantom, tilt_angles(-40, 40, 5), dose=10.0, seed=1)
    series.provenance["k_factors"] = {"Se_Ka": 1.25}  # as a reader might record them
    record = RunRecord(method="sirt", params={"iterations": 10, "device": "cpu"}, series=series)
    # Volume layers carry the run's sidecar; the tilt series comes from its layers.
    run = RunRef(record.method, record.params, record.sidecar())
    viewer = make_napari_viewer()
    for data, kwargs, _ in series_to_layer_data(series):
        viewer.add_image(data, **kwargs)
    for el, vol in phantom.volumes.items():
        viewer.add_image(vol, name=f"{el} [SIRT]", metadata={META_KEY: {
            "kind": "volume", "element": el, "run": run, "pixel_size_nm": series.pixel_size}})
    dock = AnalyseWidget(viewer)
    assert dock.k_factors() == {"In": 1.0, "Se": 1.25, "S": 1.0}
    worker = dock.estimate_resolution()
    assert worker is not None and not dock.resolution_btn.isEnabled()
    qtbot.waitUntil(lambda: dock.resolution_worker is None, timeout=120_000)
    text = dock.resolution_label.text()
    assert text.startswith("Resolution (half-bit)") and "z/x" in text
    res = layer_meta(viewer.layers["In [SIRT]"])["resolution"]
    assert res["z_nm"] >= res["x_nm"] and res["method"] == "sirt"


def test_clear_errors_without_volumes(make_napari_viewer):
    viewer = make_napari_viewer()
    dock = AnalyseWidget(viewer)
    assert dock.compute() is None and "at least two element volumes" in dock.status.text()
    assert dock.profile() == {} and "Shapes layer" in dock.status.text()
    assert dock.estimate_resolution() is None and "no reconstruction run" in dock.status.text()
