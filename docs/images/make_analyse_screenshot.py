"""Regenerate docs/images/napari-analyse.png (run under a display, e.g. ``xvfb-run -a``).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/images/make_analyse_screenshot.py

A TV reconstruction of the 48^3 memory-cell phantom (+-40 deg), its
composition in at.% with the true k-factors, region statistics of the GST
layer and the TiN, and a line profile across the Ge-rich grains.
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np

# Run as a script: this folder is on sys.path, so the screenshot helpers are shared.
from make_screenshots import wait  # noqa: E402

from edxtomo._napari.layers import META_KEY
from edxtomo._napari.widgets.analyse_widget import AnalyseWidget
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import reconstruct, run_to_end

HERE = Path(__file__).resolve().parent
SIZE = 48


def main() -> int:
    phantom = make_phantom("memory_cell", SIZE, seed=1)
    series = acquire(phantom, tilt_angles(-40, 40, 5), dose=10.0, seed=1)
    volumes = run_to_end(reconstruct(series, "tv", iterations=300, device="cpu")).volumes
    k = {e: len(series.angles) * float(phantom.volumes[e].sum()) / float(series.maps[e].sum())
         for e in phantom.elements}
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    for el, vol in volumes.items():
        viewer.add_image(vol, name=f"{el} [TV]", visible=True, metadata={META_KEY: {
            "kind": "volume", "element": el, "pixel_size_nm": series.pixel_size}})
    labels = np.where(phantom.volumes["Ti"] > 0, 2, np.where(phantom.volumes["Te"] > 0, 1, 0))
    viewer.add_labels(labels.astype(np.int32), name="regions", opacity=0.0)
    dock = AnalyseWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Analyse")
    dock.set_k_factors({e: v / k["Ge"] for e, v in k.items()})
    dock.labels_box.setCurrentText("regions")
    dock.compute()
    dock.update_stats()
    for layer in viewer.layers:
        layer.visible = layer.name in ("Ge [at%]", "Te [at%]")
    z = SIZE // 2
    viewer.dims.set_point(0, z)
    viewer.add_shapes([np.array([[z, SIZE * 0.38, 4.0], [z, SIZE * 0.38, SIZE - 5.0]])],
                      shape_type="line", edge_color="yellow", edge_width=0.6, name="profile")
    dock.profile()
    viewer.reset_view()
    wait(1.0)
    out = HERE / "napari-analyse.png"
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"wrote {out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
