"""Regenerate the user-guide screenshots (run under a display, e.g. ``xvfb-run -a``).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/images/make_screenshots.py

From the real .bcf tilt series in ``../shared/data/openncem_idp_tilt10`` when
it is there (Fe, S and Si lines, binned 4x, TV), else from the sample phantom
(DIPm-TV when :mod:`edxtomo.recon.dip` imports, else TV).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from edxtomo._napari.settings import ENV_VAR
from edxtomo._napari.widgets.export_widget import ExportWidget
from edxtomo._napari.widgets.load_widget import LoadWidget
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget, usable_methods

HERE = Path(__file__).resolve().parent
REAL_SERIES = HERE.parents[2] / "shared" / "data" / "openncem_idp_tilt10"


def wait(seconds: float) -> None:
    app = QApplication.instance()
    end = time.time() + seconds
    while time.time() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    # The docks restore the user's last parameters; the screenshots show the defaults.
    os.environ.setdefault(ENV_VAR, tempfile.mkdtemp(prefix="edxtomo-shots-"))
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    load = LoadWidget(viewer)
    viewer.window.add_dock_widget(load, name="Load EDX tilt series", area="right")
    real = REAL_SERIES.is_dir()
    if real:
        load.set_inputs([str(REAL_SERIES)])
        while load.detect_worker is not None:
            wait(0.2)
        load.lines.setText("Fe_Ka, S_Ka, Si_Ka")
        load.bin.setValue(4)
        load.extract()
        while load.worker is not None:
            wait(0.2)
        viewer.dims.set_current_step(0, 4)  # the 0-degree tilt
    else:
        viewer.open_sample("edxtomo", "phantom")
        viewer.dims.set_current_step(0, 8)  # the 0-degree tilt
    wait(1.0)
    viewer.screenshot(str(HERE / "napari-tiltseries.png"), canvas_only=False)

    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec, name="Reconstruct", area="right", tabify=True)
    method = "tv" if real or "dipm-tv" not in usable_methods() else "dipm-tv"
    rec.method_box.setCurrentIndex(rec.method_box.findData(method))
    values = {"iterations": 300 if method == "tv" else 1000, "snapshot_every": 10}
    if real:
        values["nz"] = 24  # a ~200 nm FIB section: 24 voxels of 51 nm leave room around it
    rec.form.set_values(values)
    rec.start()
    # DIP on a CPU is about a second per iteration at 64³; by 250 it is past TV's quality.
    shot_at = 150 if method == "tv" else 250
    while rec.controller.record.last is None or rec.controller.record.last.iteration < shot_at:
        wait(0.2)
    viewer.reset_view(margin=0.15)
    viewer.scene.camera.angles = (0, -30, 60)  # 3D: looking obliquely at the volume
    wait(2.0)
    viewer.screenshot(str(HERE / "napari-reconstruct.png"), canvas_only=False)
    rec.stop()
    while rec.controller.running:
        wait(0.2)

    export = ExportWidget(viewer)
    viewer.window.add_dock_widget(export, name="Export", area="right", tabify=True)
    export.folder.setText(f"~/edxtomo-results/{method}")
    wait(1.0)
    viewer.screenshot(str(HERE / "napari-export.png"), canvas_only=False)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
