"""Load → reconstruct → export → read back → re-run from the sidecar; settings persist."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edxtomo._napari.layers import layer_meta
from edxtomo._napari.widgets.export_widget import ExportWidget
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget
from edxtomo.io import SIDECAR_NAME, read_volume, write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles

pytestmark = pytest.mark.gui

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def map_folder(tmp_path) -> Path:
    series = acquire(make_phantom("core_shell", 16, seed=3), tilt_angles(-40, 40, 10), dose=5.0)
    write_map_folder(series, tmp_path / "maps")
    return tmp_path / "maps"


def _extract(qtbot, viewer, inputs, **options) -> LoadWidget:
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load.set_inputs([str(p) for p in inputs])
    qtbot.waitUntil(lambda: load.detect_worker is None, timeout=60_000)
    for name, value in options.items():
        if name == "angles":
            load.set_angles(value)
        elif isinstance(value, str):
            getattr(load, name).setText(value)
        else:
            getattr(load, name).setValue(value)
    worker = load.extract()
    assert worker is not None
    qtbot.waitUntil(lambda: load.worker is None, timeout=120_000)
    return load


def test_load_reconstruct_export_rerun(make_napari_viewer, qtbot, map_folder, tmp_path):
    viewer = make_napari_viewer()
    load = _extract(qtbot, viewer, [map_folder])
    assert "file angles.txt" in load.angles_source.text()
    assert load.angle_table.rowCount() == 9 and load.angle_table.item(0, 2).text() == "file angles.txt"
    assert [lyr.name for lyr in viewer.layers] == ["In [tilts]", "Se [tilts]", "S [tilts]"]

    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec)
    rec.method_box.setCurrentIndex(rec.method_box.findData("tv"))
    rec.form.set_values({"iterations": 12, "snapshot_every": 4, "tv_weight": 0.05})
    rec.tilt_min.setValue(-30)
    assert "8 of 9 tilts" in rec.tilt_label.text() and "missing wedge 110" in rec.tilt_label.text()
    rec.start()
    qtbot.waitUntil(lambda: not rec.controller.running, timeout=60_000)

    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(export)
    out = tmp_path / "out"
    export.folder.setText(str(out))
    paths = export.export()
    assert {p.name for p in paths} == {"In.tif", "Se.tif", "S.tif", SIDECAR_NAME}
    for el in ("In", "Se", "S"):
        vol, voxel = read_volume(out / f"{el}.tif")
        np.testing.assert_array_equal(vol, viewer.layers[f"{el} [TV]"].data)
        assert voxel == pytest.approx(layer_meta(viewer.layers[f"{el} [TV]"])["pixel_size_nm"])
    side = json.loads((out / SIDECAR_NAME).read_text())
    for key in ("method", "params", "angles", "elements", "tilt_range", "input", "pixel_size_nm",
                "loss_history", "versions"):
        assert key in side, key
    assert side["method"] == "tv" and side["params"]["iterations"] == 12
    assert side["angles"] == [float(a) for a in range(-30, 41, 10)]
    assert side["input"] == [str(map_folder)]
    assert len(side["loss_history"]) == 3

    # The command line repeats the run from the sidecar alone.
    from edxtomo.cli import main

    again = tmp_path / "again"
    assert main(["reconstruct", "--config", str(out / SIDECAR_NAME), "--out", str(again)]) == 0
    for el in ("In", "Se", "S"):
        np.testing.assert_allclose(read_volume(again / f"{el}.tif")[0],
                                   read_volume(out / f"{el}.tif")[0], rtol=1e-4, atol=1e-5)


def test_edited_angles_reach_the_layers(make_napari_viewer, qtbot, map_folder):
    viewer = make_napari_viewer()
    edited = [float(a) for a in range(-44, 37, 10)]
    load = _extract(qtbot, viewer, [map_folder], angles=edited, bin=2)
    assert load.table_model.edited and "edited: 9 of 9" in load.angles_source.text()
    meta = layer_meta(viewer.layers["In [tilts]"])
    assert meta["angles"] == [float(a) for a in range(-44, 37, 10)]
    assert Path(meta["read_options"]["angles"]).is_file()  # so --config can reuse them
    assert viewer.layers["In [tilts]"].data.shape == (9, 8, 8)


def test_bad_input_is_reported(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import edxtomo._napari.widgets._dock as dock

    errors: list[str] = []
    monkeypatch.setattr(dock, "show_error", errors.append)
    viewer = make_napari_viewer()
    bad = tmp_path / "Nope.bcf"
    bad.write_bytes(b"not a bcf file at all")
    _extract(qtbot, viewer, [bad])
    assert errors and len(viewer.layers) == 0


def test_settings_persist(make_napari_viewer, small_tilt_layers, add_layers):
    viewer = make_napari_viewer()
    add_layers(viewer, small_tilt_layers)
    first = ReconstructWidget(viewer)
    first.method_box.setCurrentIndex(first.method_box.findData("sirt"))
    first.form.set_values({"iterations": 77})
    load = LoadWidget(viewer)
    load.lines.setText("Fe_Ka, Si_Ka")
    load.bin.setValue(4)
    load.settings_changed()
    first.deleteLater()
    load.deleteLater()

    again = ReconstructWidget(viewer)
    assert again.method == "sirt" and again.form.values()["iterations"] == 77
    load2 = LoadWidget(viewer)
    assert load2.lines.text() == "Fe_Ka, Si_Ka" and load2.bin.value() == 4
    again.deleteLater()
    load2.deleteLater()


def _bcf_folder() -> Path:
    folder = SHARED_DATA / "openncem_idp_tilt10"
    if not folder.is_dir():
        pytest.skip(f"real .bcf tilt series not found at {folder}")
    try:
        import edxtomo.io.spectra  # noqa: F401
    except ImportError:
        pytest.skip("read_series does not read spectrum images yet (no edxtomo.io.spectra)")
    return folder


@pytest.mark.realdata
def test_extract_real_bcf_series(make_napari_viewer, qtbot):
    folder = _bcf_folder()
    viewer = make_napari_viewer()
    load = _extract(qtbot, viewer, [folder], lines="Fe_Ka, Si_Ka", bin=4)
    assert "name" in load.angles_source.text().lower()  # the angle is only in the file names
    assert {"Fe [tilts]", "Si [tilts]"} <= {lyr.name for lyr in viewer.layers}
    meta = layer_meta(viewer.layers["Fe [tilts]"])
    assert sorted(meta["angles"]) == [-40, -30, -20, -10, 0, 10, 20, 30]
    assert viewer.layers["Fe [tilts]"].data.shape == (8, 64, 64)
