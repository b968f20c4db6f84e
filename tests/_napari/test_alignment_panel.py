"""Alignment in the docks: options as read options, the tilt axis and per-tilt table after
extraction, flagged tilts dropped from a run (issue 13, items 1 and 4).

The series is a phantom projected, rotated in plane by a known tilt-axis angle,
moved by drifting shifts and given Poisson noise, with one planted bad tilt
(half the object gone, as after beam damage).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

from edxtomo._napari.layers import layer_meta, series_for_run
from edxtomo._napari.widgets._dock import input_widgets
from edxtomo._napari.widgets.alignment_panel import FLAGGED_COLOUR
from edxtomo._napari.widgets.export_widget import ExportWidget
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget
from edxtomo.alignment.transforms import uncorrect_image
from edxtomo.io import SIDECAR_NAME, ReadOptions, write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.tiltseries import TiltSeries

pytestmark = pytest.mark.gui

AXIS_DEG = 3.0
BAD = 5  # index of the planted bad tilt: -15 deg in -40..40


def _misaligned_folder(folder: Path, seed: int = 2) -> tuple[Path, float]:
    """Map folder of a rotated, drifting, noisy series with a bad tilt; returns (folder, bad angle)."""
    # A 40-px object: smaller ones move too little between tilts for the axis estimate
    # (docs/real-data.md); 17 tilts at 56 x 56 px align in a few seconds.
    clean = acquire(make_phantom("core_shell", 40, seed=2), tilt_angles(-40, 40, 5), dose=None)
    rng = np.random.default_rng(seed)
    n = clean.n_angles
    shifts = np.clip(np.cumsum(rng.normal(0, 1.0, (n, 2)), axis=0), -4, 4)
    shifts -= shifts.mean(axis=0)
    maps = {}
    for el, m in clean.maps.items():
        m = np.pad(m, ((0, 0), (8, 8), (8, 8)))
        m[BAD, :, : m.shape[2] // 2] = 0
        raw = np.stack([uncorrect_image(m[k], AXIS_DEG, shifts[k]) for k in range(n)])
        scale = 10.0 / raw[raw > 0.01 * raw.max()].mean()
        maps[el] = rng.poisson(np.clip(raw, 0, None) * scale).astype(np.float32)
    write_map_folder(TiltSeries(maps, clean.angles, source="synthetic"), folder)
    return folder, float(clean.angles[BAD])


@pytest.fixture(scope="module")
def misaligned(tmp_path_factory) -> tuple[Path, float]:
    return _misaligned_folder(tmp_path_factory.mktemp("misaligned") / "maps")


def _extract(qtbot, viewer, inputs, mode: str, tilt_axis: str = "auto", rounds: int | None = None,
             **fields) -> LoadWidget:
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    load.set_inputs([str(p) for p in inputs])
    qtbot.waitUntil(lambda: load.detect_worker is None, timeout=60_000)
    load.alignment.set_mode(mode, rounds)
    load.alignment.tilt_axis.setText(tilt_axis)
    for name, value in fields.items():
        getattr(load, name).setValue(value)
    assert load.extract() is not None, load.status.text()
    qtbot.waitUntil(lambda: load.worker is None, timeout=180_000)
    assert load.status.text().startswith("loaded"), load.status.text()
    return load


def _run_sirt(qtbot, viewer) -> ReconstructWidget:
    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec)
    rec.method_box.setCurrentIndex(rec.method_box.findData("sirt"))
    rec.form.set_values({"iterations": 6, "snapshot_every": 3})
    return rec


def test_alignment_options_are_read_options_with_tooltips(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    opts = load.read_options()
    assert (opts["align"], opts["tilt_axis"], opts["refine"], opts["normalise"]) == (False, None, None, "none")

    al = load.alignment
    al.set_mode("matching", rounds=3)
    al.tilt_axis.setText("2.5")
    al.normalise.setCurrentIndex(al.normalise.findData("gains"))
    opts = load.read_options()
    assert (opts["align"], opts["tilt_axis"], opts["refine"], opts["normalise"]) == (True, 2.5, 3, "gains")
    checked = ReadOptions.from_dict(opts)  # what the sidecar and --config replay
    assert checked.tilt_axis == 2.5 and checked.refine == 3 and checked.normalise == "gains"
    al.set_mode("translation")
    al.tilt_axis.setText("auto")
    assert load.read_options()["tilt_axis"] == "auto" and load.read_options()["refine"] == 0

    # Gains from the element maps need an alignment: leaving alignment off drops that choice.
    al.set_mode("none")
    assert al.normalise.currentData() == "none" and not al.rounds.isEnabled() and not al.tilt_axis.isEnabled()
    assert not al.normalise.model().item(al.normalise.findData("counts")).isEnabled()

    # A tilt axis that is neither 'auto' nor an angle is refused in the status, nothing read.
    al.set_mode("translation")
    al.tilt_axis.setText("three")
    load.paths.setText(str(Path.cwd()))
    assert load.extract() is None
    assert "tilt axis 'three'" in load.status.text() and "extraction failed" in load.status.text()

    # The choices come back in the next session.
    al.tilt_axis.setText("-1.5")
    al.set_mode("matching", rounds=4)
    load.settings_changed()
    again = LoadWidget(viewer)
    assert again.alignment.mode_key == "matching" and again.alignment.rounds.value() == 4
    assert again.alignment.tilt_axis.text() == "-1.5"

    # Every input of both docks explains itself.
    rec = ReconstructWidget(viewer)
    for dock in (load, rec):
        missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
                   for w in input_widgets(dock) if not w.toolTip().strip()]
        assert not missing, f"{type(dock).__name__}: no tooltip on {missing}"
    for w in (al.mode, al.rounds, al.tilt_axis, al.use_estimate, al.normalise, load.alignment_result.table,
              rec.drop_tilts.drop_flagged, rec.drop_tilts.tilt_list):
        assert w.toolTip().strip()


def test_extraction_shows_axis_and_table_and_flagged_tilt_is_dropped(make_napari_viewer, qtbot,
                                                                       misaligned, tmp_path):
    folder, bad_angle = misaligned
    viewer = make_napari_viewer()
    load = _extract(qtbot, viewer, [folder], "translation")
    rec_meta = layer_meta(viewer.layers[0])["provenance"]["alignment"]
    n = len(rec_meta["angles_deg"])

    # The estimated tilt axis, shown beside the override field (which stays 'auto').
    assert rec_meta["tilt_axis_source"] == "estimated"
    estimate = rec_meta["tilt_axis_deg"]
    assert abs(estimate - AXIS_DEG) < 1.0
    spread = rec_meta["tilt_axis_spread_deg"]
    assert load.alignment.estimate.text() == f"estimated {estimate:.2f}° ± {spread:.1f}°"
    assert "left out" in load.alignment.estimate.toolTip()
    assert load.alignment.tilt_axis.text() == "auto"
    assert f"tilt axis {estimate:.2f} deg (estimated)" in load.alignment_result.summary.text()

    # One row per tilt: angle, score, flagged, dy, dx; the planted bad tilt flagged and highlighted.
    table = load.alignment_result.table
    assert not load.alignment_result.isHidden() and table.rowCount() == n
    assert [table.horizontalHeaderItem(c).text() for c in range(5)] == \
        ["angle (deg)", "score", "flagged", "dy (px)", "dx (px)"]
    for k in range(n):
        assert float(table.item(k, 0).text()) == pytest.approx(rec_meta["angles_deg"][k])
        assert float(table.item(k, 1).text()) == pytest.approx(rec_meta["scores"][k], abs=1e-3)
        assert float(table.item(k, 3).text()) == pytest.approx(rec_meta["shifts_px"][k][0], abs=0.01)
        assert float(table.item(k, 4).text()) == pytest.approx(rec_meta["shifts_px"][k][1], abs=0.01)
    assert rec_meta["flagged_tilts"] == [BAD]
    assert table.flagged_angles() == [bad_angle]
    assert table.item(BAD, 2).text() == "yes" and table.item(BAD - 1, 2).text() == "no"
    assert table.item(BAD, 1).background().color() == FLAGGED_COLOUR
    assert table.item(BAD - 1, 1).background().style() == Qt.BrushStyle.NoBrush

    # Reconstruct dock: the flagged tilt listed; dropping it leaves it out of the run.
    rec = _run_sirt(qtbot, viewer)
    drops = rec.drop_tilts
    assert drops.flagged_angles() == [bad_angle] and drops.drop_flagged.isEnabled()
    assert drops.tilt_list.count() == n and "flagged" in drops.tilt_list.item(BAD).text()
    assert drops.dropped_angles() == []
    drops.drop_flagged.setChecked(True)
    assert drops.dropped_angles() == [bad_angle]
    assert f"{n - 1} of {n} tilts" in rec.tilt_label.text()
    assert f"dropped {bad_angle:g} deg" in rec.tilt_label.text()
    rec.start()
    qtbot.waitUntil(lambda: not rec.controller.running, timeout=120_000)
    record = rec.controller.record
    assert record.series.n_angles == n - 1 and bad_angle not in record.series.angles.tolist()
    side = record.sidecar()
    assert side["angles"] == [a for a in rec_meta["angles_deg"] if a != bad_angle]
    assert side["provenance"]["dropped_tilts"]["angles_deg"] == [bad_angle]
    assert side["read_options"]["align"] is True and side["read_options"]["tilt_axis"] == "auto"

    # Export writes the same tilt selection; the Analyse dock's series lacks the tilt too.
    vol = next(lyr for lyr in viewer.layers if layer_meta(lyr).get("kind") == "volume")
    run = layer_meta(vol)["run"]
    assert bad_angle not in series_for_run(run, list(viewer.layers)).angles.tolist()
    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(export)
    export.folder.setText(str(tmp_path / "out"))
    export.export()
    written = json.loads((tmp_path / "out" / SIDECAR_NAME).read_text())
    assert bad_angle not in written["angles"] and len(written["angles"]) == n - 1

    # Un-ticking brings the tilt back.
    drops.drop_flagged.setChecked(False)
    assert drops.dropped_angles() == [] and "dropped" not in rec.tilt_label.text()

    # 'Keep' fixes the axis at the estimate, as an override in the read options.
    load.alignment.use_estimate.click()
    assert load.read_options()["tilt_axis"] == pytest.approx(estimate, abs=0.006)


def test_overriding_the_axis_is_recorded(make_napari_viewer, qtbot, misaligned):
    folder, _ = misaligned
    viewer = make_napari_viewer()
    load = _extract(qtbot, viewer, [folder], "matching", tilt_axis="3", rounds=1)
    meta = layer_meta(viewer.layers[0])
    assert meta["read_options"]["tilt_axis"] == 3.0 and meta["read_options"]["refine"] == 1
    rec_meta = meta["provenance"]["alignment"]
    assert rec_meta["tilt_axis_deg"] == 3.0 and rec_meta["tilt_axis_source"] == "given"
    assert load.alignment.estimate.text() == "given 3.00°" and not load.alignment.use_estimate.isEnabled()
    assert "tilt axis 3.00 deg (given)" in load.alignment_result.summary.text()

    rec = _run_sirt(qtbot, viewer)
    rec.start()
    qtbot.waitUntil(lambda: not rec.controller.running, timeout=120_000)
    side = rec.controller.record.sidecar()
    replay = ReadOptions.from_dict(side["read_options"])
    assert replay.tilt_axis == 3.0 and replay.refine == 1 and replay.align
    # Nothing dropped: every tilt in the run, no drop recorded.
    assert len(side["angles"]) == len(rec_meta["angles_deg"]) and "dropped_tilts" not in side["provenance"]


@pytest.mark.realdata
def test_real_series_alignment_table(make_napari_viewer, qtbot, idp):
    viewer = make_napari_viewer()
    load = _extract(qtbot, viewer, [idp], "translation", tilt_axis="0", bin=4)
    table = load.alignment_result.table
    angles = layer_meta(viewer.layers[0])["angles"]
    assert table.rowCount() == len(angles) >= 8
    assert all(table.item(k, 1).text() for k in range(table.rowCount()))
    assert load.alignment.estimate.text() == "given 0.00°"
    rec = ReconstructWidget(viewer)
    assert rec.drop_tilts.tilt_list.count() == len(angles)
