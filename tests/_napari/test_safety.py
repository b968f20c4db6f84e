"""Bad output folders and damaged files in the docks: a clear status, nothing lost, the viewer lives."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edxtomo._napari.widgets.export_widget import ExportWidget
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def finished_run(make_napari_viewer, qtbot, small_tilt_layers, add_layers):
    viewer = make_napari_viewer()
    add_layers(viewer, small_tilt_layers)
    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec)
    rec.method_box.setCurrentIndex(rec.method_box.findData("sirt"))
    rec.form.set_values({"iterations": 6, "snapshot_every": 3})
    rec.start()
    qtbot.waitUntil(lambda: not rec.controller.running, timeout=60_000)
    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(export)
    export.refresh_layers()
    return viewer, export


@pytest.mark.parametrize("case", ["a file", "foreign files", "under a file"])
def test_export_refuses_a_bad_folder_with_the_cause_in_the_status(finished_run, tmp_path, case):
    viewer, export = finished_run
    if case == "a file":
        target = tmp_path / "notes.txt"
        target.write_text("mine")
    elif case == "foreign files":
        target = tmp_path / "thesis"
        target.mkdir()
        (target / "chapter1.docx").write_text("mine")
    else:
        (tmp_path / "plain").write_text("x")
        target = tmp_path / "plain" / "out"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    export.folder.setText(str(target))
    assert export.export() == []
    status = export.status.text()
    assert "export failed" in status and str(target.name) in status
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, nothing lost
    if case != "under a file":
        assert (target if case == "a file" else target / "chapter1.docx").read_text() == "mine"
    assert len(viewer.layers) > 0  # the viewer lives on


def test_export_replaces_its_own_earlier_result_whole(finished_run, tmp_path):
    _, export = finished_run
    export.folder.setText(str(tmp_path / "rec"))
    first = export.export()
    assert first and (tmp_path / "rec" / "reconstruction.json").is_file()
    (tmp_path / "rec" / "stale.tif").write_bytes(b"")  # a leftover of an older export
    second = export.export()
    assert {p.name for p in second} == {p.name for p in first}
    assert not (tmp_path / "rec" / "stale.tif").exists()
    side = json.loads((tmp_path / "rec" / "reconstruction.json").read_text())
    assert side["method"] == "sirt" and side["status"] == "finished"


@pytest.mark.realdata
def test_skip_damaged_files_checkbox_extracts_the_rest(make_napari_viewer, qtbot, idp, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("-20.bcf", "-10.bcf", "0.bcf", "10.bcf"):
        shutil.copy(idp / name, folder / name)
    data = (idp / "20.bcf").read_bytes()
    (folder / "20.bcf").write_bytes(data[: len(data) // 2])  # truncated copy
    viewer = make_napari_viewer()
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load.set_inputs([str(folder)])
    qtbot.waitUntil(lambda: load.detect_worker is None, timeout=120_000)
    load.lines.setText("Fe_Ka")
    load.bin.setValue(8)

    load.skip_bad.setChecked(False)
    assert load.extract() is not None
    qtbot.waitUntil(lambda: load.worker is None, timeout=180_000)
    assert "20.bcf" in load.status.text() and "extraction failed" in load.status.text()
    assert not [lyr for lyr in viewer.layers if lyr.name.endswith("[tilts]")]

    load.skip_bad.setChecked(True)
    assert load.extract() is not None
    qtbot.waitUntil(lambda: load.worker is None, timeout=180_000)
    layer = viewer.layers["Fe [tilts]"]
    meta = layer.metadata["edxtomo"]
    assert np.allclose(sorted(meta["angles"]), [-20, -10, 0, 10])
    assert meta["read_options"]["skip_bad"] is True
    assert "20.bcf" in json.dumps(meta["provenance"])
