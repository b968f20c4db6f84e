"""The Load dock's per-tilt intensity: counts by default with an alignment mode, none without,
and an explicit 'none' that reaches the extracted series (as ``--normalise`` on the command line).

The series is a small phantom at 9 tilts with known per-tilt gains (+-20 %) and
Poisson noise, written as a map folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edxtomo._napari.layers import layer_meta
from edxtomo._napari.widgets.alignment_panel import NORMALISE
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo.io import ReadOptions, write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.tiltseries import TiltSeries

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def gains_folder(tmp_path_factory) -> tuple[Path, np.ndarray]:
    clean = acquire(make_phantom("core_shell", 20, seed=2), tilt_angles(-40, 40, 10), dose=None)
    rng = np.random.default_rng(5)
    gains = rng.uniform(0.8, 1.2, clean.n_angles)
    maps = {}
    for el, m in clean.maps.items():
        m = np.pad(m, ((0, 0), (6, 6), (6, 6))) * gains[:, None, None]
        maps[el] = rng.poisson(m * 10.0 / m[m > 0.01 * m.max()].mean()).astype(np.float32)
    folder = tmp_path_factory.mktemp("gains") / "maps"
    write_map_folder(TiltSeries(maps, clean.angles, source="synthetic"), folder)
    return folder, gains / np.exp(np.log(gains).mean())


def _load(viewer) -> LoadWidget:
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load)
    return load


def _extract(qtbot, load: LoadWidget, folder: Path) -> dict:
    load.set_inputs([str(folder)])
    qtbot.waitUntil(lambda: load.detect_worker is None, timeout=60_000)
    assert load.extract() is not None, load.status.text()
    qtbot.waitUntil(lambda: load.worker is None, timeout=180_000)
    assert load.status.text().startswith("loaded"), load.status.text()
    return layer_meta(load.viewer.layers[0])


def test_dock_default_follows_the_alignment_mode_and_none_is_kept(make_napari_viewer):
    viewer = make_napari_viewer()
    load = _load(viewer)
    al = load.alignment
    # Every choice is offered and says what it does.
    assert [al.normalise.itemData(k) for k in range(al.normalise.count())] == [v for v, _, _ in NORMALISE]
    assert "none" in [v for v, _, _ in NORMALISE]
    for k in range(al.normalise.count()):
        assert al.normalise.itemData(k, 3).strip()  # Qt.ToolTipRole
    assert "Default" in al.normalise.toolTip() and "none" in al.normalise.toolTip()

    # No alignment: nothing normalised, as before. An alignment mode: counts, as on the command line.
    assert al.normalise.currentData() == "none" and load.read_options()["normalise"] == "none"
    al.set_mode("translation")
    assert al.normalise.currentData() == "counts" and load.read_options()["normalise"] == "counts"
    al.set_mode("matching", rounds=2)
    assert load.read_options()["normalise"] == "counts"
    assert ReadOptions.from_dict(load.read_options()).normalise == "counts"
    al.set_mode("none")
    assert load.read_options()["normalise"] == "none"

    # 'none' chosen with an alignment is kept through mode changes and into the next session.
    al.set_mode("matching")
    al.set_normalise("none")
    al.set_mode("translation")
    opts = load.read_options()
    assert opts["normalise"] == "none" and opts["align"] is True
    assert ReadOptions.from_dict(opts).normalise == "none"
    load.settings_changed()
    again = _load(viewer)
    assert again.alignment.mode_key == "translation" and again.alignment.normalise.currentData() == "none"

    # A reader normalisation chosen without an alignment stays when an alignment is switched on.
    again.alignment.set_mode("none")
    again.alignment.set_normalise("total")
    again.alignment.set_mode("matching")
    assert again.read_options()["normalise"] == "total"
    # Older settings stored "" for none: they follow the mode's default (counts with alignment).
    from edxtomo._napari.widgets.alignment_panel import AlignmentOptions

    old = AlignmentOptions({"align_mode": "matching", "normalise": ""})
    assert old.normalise.currentData() == "counts" and old.settings()["normalise"] == ""


def test_default_counts_and_none_reach_the_extracted_series(make_napari_viewer, qtbot, gains_folder):
    folder, planted = gains_folder
    viewer = make_napari_viewer()
    load = _load(viewer)
    load.alignment.set_mode("translation")
    load.alignment.tilt_axis.setText("0")
    meta = _extract(qtbot, load, folder)
    rec = meta["provenance"]["alignment"]
    assert meta["read_options"]["normalise"] == "counts" and rec["normalise"] == "counts"
    np.testing.assert_allclose(rec["gains"], planted, rtol=0.05)
    name = viewer.layers[0].name
    counts_data, counts_gains = np.asarray(viewer.layers[name].data), np.asarray(rec["gains"])
    # The per-tilt table shows the gains divided out.
    table = load.alignment_result.table
    assert [float(table.item(k, 5).text()) for k in range(table.rowCount())] == \
        pytest.approx(rec["gains"], abs=1e-3)

    load.alignment.set_normalise("none")
    meta = _extract(qtbot, load, folder)
    rec = meta["provenance"]["alignment"]
    assert meta["read_options"]["normalise"] == "none" and rec["normalise"] == "none"
    assert set(rec["gains"]) == {1.0}
    none_data = np.asarray(viewer.layers[name].data)
    # Same shifts, so the two extractions differ by the gains alone.
    np.testing.assert_allclose(counts_data * counts_gains[:, None, None], none_data, rtol=1e-4, atol=1e-4)
