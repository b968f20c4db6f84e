"""The Load dock's tilt → angle table, units and axis labels, status after a failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edxtomo._napari.layers import layer_meta
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo.io import write_map_folder
from edxtomo.io.angle_sources import natural_key
from edxtomo.phantom import acquire, make_phantom, tilt_angles

pytestmark = pytest.mark.gui


def _load(qtbot, viewer, inputs) -> LoadWidget:
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load.set_inputs([str(p) for p in inputs])
    qtbot.waitUntil(lambda: load.detect_worker is None, timeout=60_000)
    return load


def _run_extract(qtbot, load: LoadWidget) -> None:
    assert load.extract() is not None
    qtbot.waitUntil(lambda: load.worker is None, timeout=180_000)


def _file_angles(layer) -> dict[str, float]:
    """File name → angle of each tilt of a layer (the maps are sorted by angle)."""
    meta = layer_meta(layer)
    files = meta["provenance"]["read"]["files"]
    return {Path(f).name: a for f, a in zip(files, meta["angles"], strict=True)}


def _table(load: LoadWidget) -> list[tuple[str, str, str]]:
    t = load.angle_table
    return [tuple(t.item(r, c).text() for c in range(3)) for r in range(t.rowCount())]


@pytest.mark.realdata
def test_real_series_extract_twice_keeps_each_tilts_angle(make_napari_viewer, qtbot, idp):
    pytest.importorskip("exspy")
    viewer = make_napari_viewer()
    load = _load(qtbot, viewer, [idp])
    load.lines.setText("Fe_Ka")
    load.bin.setValue(8)
    rows = _table(load)
    # File order (natural), each row's angle is the number in its file name.
    assert len(rows) == 8 and [r[0] for r in rows] == sorted((r[0] for r in rows), key=natural_key)
    for name, angle, source in rows:
        assert float(angle) == float(Path(name).stem) and "file names" in source
    for step in ("first", "unchanged", "binning"):
        if step == "binning":
            load.bin.setValue(16)
        _run_extract(qtbot, load)
        assert "loaded" in load.status.text(), load.status.text()
        layer = viewer.layers["Fe [tilts]"]
        for name, angle in _file_angles(layer).items():
            assert angle == float(Path(name).stem), (step, name, angle)
        assert layer_meta(layer)["read_options"]["angles"] is None  # no edit, no angles file
        assert not load.table_model.edited and _table(load) == rows  # the table is unchanged
    assert layer.data.shape == (8, 16, 16)
    assert "numbers in the file names" in layer_meta(layer)["provenance"]["read"]["angles_source"]


@pytest.fixture
def map_folder(tmp_path) -> Path:
    series = acquire(make_phantom("core_shell", 16, seed=3), tilt_angles(-40, 40, 10), dose=5.0)
    write_map_folder(series, tmp_path / "maps")
    return tmp_path / "maps"


def test_an_edit_is_an_edit_and_undoable(make_napari_viewer, qtbot, map_folder):
    viewer = make_napari_viewer()
    load = _load(qtbot, viewer, [map_folder])
    detected = [float(a) for a in range(-40, 41, 10)]
    assert [float(r[1]) for r in _table(load)] == detected and not load.reset_btn.isEnabled()
    # Typing the detected value back is no edit.
    load.angle_table.item(0, 1).setText("-40")
    assert not load.table_model.edited
    load.angle_table.item(0, 1).setText("-42")
    assert _table(load)[0][2] == "edited" and _table(load)[1][2] == "file angles.txt"
    assert "edited: 1 of 9" in load.angles_source.text()
    _run_extract(qtbot, load)
    meta = layer_meta(viewer.layers["In [tilts]"])
    assert meta["angles"] == [-42.0, *detected[1:]]
    assert Path(meta["read_options"]["angles"]).is_file()
    # Extracting again keeps the edit (and the table), without a second change.
    _run_extract(qtbot, load)
    assert layer_meta(viewer.layers["In [tilts]"])["angles"] == [-42.0, *detected[1:]]
    load.reset_angles()
    _run_extract(qtbot, load)
    meta = layer_meta(viewer.layers["In [tilts]"])
    assert meta["angles"] == detected and meta["read_options"]["angles"] is None


def test_units_axis_labels_and_current_tilt(make_napari_viewer, qtbot, map_folder):
    viewer = make_napari_viewer()
    load = _load(qtbot, viewer, [map_folder])
    _run_extract(qtbot, load)
    layer = viewer.layers["In [tilts]"]
    assert [str(u) for u in layer.units] == ["nanometer"] * 3
    assert layer.axis_labels == ("tilt (deg)", "y", "x")
    assert viewer.dims.axis_labels[0] == "tilt (deg)"
    assert str(viewer.layers.units[-1]) == "nanometer"  # what the scale bar shows
    # The slider's step is one tilt; the dock names the angle shown.
    viewer.dims.set_current_step(0, 6)
    assert load.current_tilt.text().startswith("tilt 7 of 9: 20 deg")


def test_failed_extraction_is_the_last_status(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import edxtomo._napari.widgets._dock as dock

    errors: list[str] = []
    monkeypatch.setattr(dock, "show_error", errors.append)
    viewer = make_napari_viewer()
    bad = tmp_path / "folder with space" / "Nope.bcf"
    bad.parent.mkdir()
    bad.write_bytes(b"not a bcf file at all")
    load = _load(qtbot, viewer, [bad])
    _run_extract(qtbot, load)
    status = load.status.text()
    assert "extracting" not in status and "extraction failed" in status
    assert errors and errors[0] == status
    assert not errors[0].startswith(str(tmp_path))  # the cause first, the path at the end
    assert str(bad) in errors[0]
    assert len(viewer.layers) == 0 and load.progress_bar.value() == 0


def test_reader_reopens_volume_tiffs_and_reconstruction_folders(make_napari_viewer, tmp_path):
    from edxtomo._napari._reader import get_reader
    from edxtomo.io import write_volumes

    vols = {el: np.random.default_rng(k).random((5, 6, 7)).astype(np.float32)
            for k, el in enumerate(("Fe", "Si"))}
    out = tmp_path / "run1"
    write_volumes(out, vols, 12.5, {"method": "tv", "elements": ["Fe", "Si"]})
    assert get_reader(str(out)) is not None and get_reader(str(out / "Fe.tif")) is not None
    viewer = make_napari_viewer()
    viewer.open(str(out), plugin="edxtomo")
    assert [lyr.name for lyr in viewer.layers] == ["Fe [TV: run1]", "Si [TV: run1]"]
    viewer.open(str(out / "Si.tif"), plugin="edxtomo")
    for layer in viewer.layers:
        assert tuple(layer.scale) == (12.5,) * 3 and layer.axis_labels == ("z", "y", "x")
        assert str(layer.units[0]) == "nanometer"
        np.testing.assert_array_equal(layer.data, vols[layer_meta(layer)["element"]])
