"""The Reconstruct dock's TV-weight sweep: a real batch on a real LocalCluster, opened as layers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edxtomo._napari._sample_data import phantom_tilt_series
from edxtomo._napari.layers import layer_meta
from edxtomo._napari.widgets._dock import input_widgets
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget
from edxtomo.batch import load_manifest, run_task
from edxtomo.batch.from_setup import MANIFEST_NAME, SERIES_FOLDER
from edxtomo.io import read_series, read_volume

pytestmark = pytest.mark.gui

TINY_DIP = {"iterations": 10, "widths": [4, 8], "skip_widths": [2, 2], "eval_every": 5,
            "snapshot_every": 5}


def _dock(viewer, add_layers, method, **params):
    add_layers(viewer, phantom_tilt_series(size=16))
    dock = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.method_box.setCurrentIndex(dock.method_box.findData(method))
    dock.form.set_values(params)
    return dock


def _run(qtbot, panel, timeout=120_000):
    with qtbot.waitSignal(panel.finished, timeout=timeout):
        panel.run_btn.click()
    assert not panel.running and panel.run_btn.isEnabled()
    return panel.result


def _table(panel):
    return [[panel.table.item(i, j).text() for j in range(panel.table.columnCount())]
            for i in range(panel.table.rowCount())]


def test_sweep_runs_as_a_batch_and_opens_layers(make_napari_viewer, add_layers, qtbot, tmp_path):
    """DIPm-TV over two TV weights on a local cluster: the batch's results, best shown alone."""
    viewer = make_napari_viewer()
    dock = _dock(viewer, add_layers, "dipm-tv", **TINY_DIP)
    dock.tilt_min.setValue(-35.0)  # a narrower range travels as the tasks' tilt range
    panel = dock.sweep
    missing = [type(w).__name__ for w in input_widgets(panel) if not w.toolTip().strip()]
    assert not missing
    out = tmp_path / "sweep"
    panel.weights.setText("0.01 0.2")
    panel.out_edit.setText(str(out))
    panel.workers.setValue(1)
    result = _run(qtbot, panel)

    names = ["dipm-tv-tv_weight=0.01", "dipm-tv-tv_weight=0.2"]
    assert [r["task"] for r in result.rows] == names
    assert all(r["status"] == "finished" for r in result.rows), result.rows
    assert panel.progress_bar.value() == 2 and not result.interrupted
    # Ordinary batch tasks: the manifest under the output folder, run here by the
    # batch's own task function, gives the same volumes.
    tasks = load_manifest(out / MANIFEST_NAME)
    assert [t.name for t in tasks] == names and tasks[0].tilt_range == (-35.0, 40.0)
    assert tasks[0].inputs == (str((out / SERIES_FOLDER).resolve()),)
    assert read_series([out / SERIES_FOLDER]).n_angles == 17
    ref = tmp_path / "ref"
    for t in tasks:
        assert run_task(t, str(ref))["status"] == "finished"
        side = json.loads((out / t.name / "reconstruction.json").read_text())
        assert side["params"]["tv_weight"] == t.params["tv_weight"]
        for el in side["elements"]:
            np.testing.assert_allclose(read_volume(out / t.name / f"{el}.tif")[0],
                                       read_volume(ref / t.name / f"{el}.tif")[0],
                                       rtol=1e-4, atol=1e-6)
    # The summary: the batch's files, and the dock's table with the best marked.
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        best = [r["task"] for r in csv.DictReader(fh) if r["best_in_sweep"] == "yes"]
    assert len(best) == 1
    rows = {r[0]: r for r in _table(panel)}
    assert set(rows) == set(names)
    assert [n for n, r in rows.items() if r[4] == "best"] == best
    assert all(r[1] == "finished" and float(r[2]) > 0 and float(r[3]) > 0 for r in rows.values())
    # Layers named by task; only the best held-out task's are visible.
    elements = json.loads((out / names[0] / "reconstruction.json").read_text())["elements"]
    for t in tasks:
        label = f"DIPm-TV tv_weight={t.params['tv_weight']:g}"
        for el in elements:
            layer = viewer.layers[f"{el} [{label}]"]
            assert layer.visible == (t.name == best[0])
            assert layer_meta(layer)["batch_task"] == t.name
            np.testing.assert_array_equal(layer.data, read_volume(out / t.name / f"{el}.tif")[0])
    assert "2 of 2 task(s) finished" in panel.status.text()
    assert not any(p.name.startswith(".") for p in out.iterdir())

    # A method without a TV weight is refused before anything is written.
    dock.method_box.setCurrentIndex(dock.method_box.findData("sirt"))
    panel.out_edit.setText(str(tmp_path / "sirt"))
    panel.run_btn.click()
    assert not panel.running and not (tmp_path / "sirt").exists()
    assert "TV weight" in dock.status.text()


def test_cancel_keeps_finished_tasks(make_napari_viewer, add_layers, qtbot, tmp_path):
    """Cancel after the first task: it is kept and opened; the others are not finished."""
    viewer = make_napari_viewer()
    # Each task runs until its 8 s budget is spent (status "time limit", a result that stands).
    dock = _dock(viewer, add_layers, "tv", iterations=1_000_000, snapshot_every=1000)
    dock.form.set_values({"time_limit": "8s"})
    panel = dock.sweep
    out = tmp_path / "sweep"
    panel.weights.setText("0.01 0.02 0.05")
    panel.out_edit.setText(str(out))
    panel.workers.setValue(1)
    with qtbot.waitSignal(panel.finished, timeout=120_000):
        panel.run_btn.click()
        qtbot.waitUntil(lambda: panel.progress_bar.value() >= 1, timeout=100_000)
        panel.cancel_btn.click()
    result = panel.result
    assert result.interrupted
    done = [r["task"] for r in result.rows if r["status"] == "time limit"]
    assert done and result.not_finished and len(done) + len(result.not_finished) == 3
    # Finished folders are complete; nothing half-written is left.
    for name in done:
        assert (out / name / "reconstruction.json").is_file()
    assert not any(p.name.startswith(".") for p in out.iterdir())
    # Only the finished tasks are opened, the first of them visible (TV holds no tilts out).
    opened = [lyr for lyr in viewer.layers if "batch_task" in layer_meta(lyr)]
    assert {layer_meta(lyr)["batch_task"] for lyr in opened} == set(done)
    assert [lyr.visible for lyr in opened].count(True) == len(opened) // len(done)
    assert all(lyr.visible == (layer_meta(lyr)["batch_task"] == done[0]) for lyr in opened)
    table = {r[0]: r[1] for r in _table(panel)}
    assert all(table[n] == "not finished" for n in result.not_finished)
    assert "cancelled" in panel.status.text()
