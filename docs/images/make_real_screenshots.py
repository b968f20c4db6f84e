"""Regenerate the real-series walkthrough images ``docs/images/real-*.png`` (docs/real-data.md).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/images/make_real_screenshots.py

Needs the real .bcf tilt series in ``../shared/data/openncem_idp_tilt10``
(Fe_Ka, Si_Ka, Mg_Ka, binned 4x). Three steps, each reusable on its own with
``--steps``:

``compute``
    ``edxtomo align`` (the command line's own entry point: refine 5, counts
    normalisation) into ``CACHE/idp-aligned``, then SIRT, TV and DIPm-TV on
    that folder through :func:`edxtomo.recon.reconstruct` (nz 32, CPU, one
    torch thread), saved as ``CACHE/<method>.npz`` with the run's facts in
    ``CACHE/<method>.json``. Cached: a rerun only computes what is missing
    (``--force`` recomputes). DIPm-TV runs a fixed budget of
    ``--dip-iterations`` at lean widths and returns its best held-out iterate.
``figures``
    ``real-orthoslices.png`` (matplotlib: xy, xz, yz through the centre per
    element, methods as rows), ``real-zprofiles.png`` (each element summed
    over y and x against depth; the spread in depth is printed) and
    ``real-3d.png`` (napari's 3D view of the three element layers,
    attenuated MIP, obliquely and along the tilt axis, methods as rows).
``gui``
    The napari steps, driven through the docks' own widgets: the Load dock
    with the files and the angle table, the extracted line maps, the
    alignment result (per-tilt scores, axis), the Reconstruct dock during and
    after a TV run, and its 3D per-element view.

The docks restore the user's last parameters; a temporary settings folder
makes the screenshots show the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script: this folder is on sys.path, so the screenshot helpers are shared.
from make_screenshots import wait  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data" / "openncem_idp_tilt10"
LINES = ("Fe_Ka", "Si_Ka", "Mg_Ka")
BIN = 4
NZ = 32
#: The reconstructions compared on the real series: (method, label, parameters).
METHODS = (
    ("sirt", "SIRT", {"iterations": 100}),
    ("tv", "TV", {"iterations": 300}),
    ("dipm-tv", "DIPm-TV", {"widths": (8, 16, 32), "skip_widths": (2, 4, 8)}),
)
#: Largest PNG written (bytes); bigger images are downscaled until they fit.
MAX_PNG_BYTES = 300_000
#: napari camera (Euler angles, degrees) of the 3D views: obliquely, so the depth z shows.
CAMERA_ANGLES = (-70.0, -25.0, 100.0)
#: napari camera looking along y, the tilt axis (z vertical, x across).
ALONG_AXIS_ANGLES = (0.0, 0.0, 90.0)


# ----------------------------------------------------------------- compute
def aligned_folder(cache: Path, force: bool) -> Path:
    """``edxtomo align`` on the real series, as in the walkthrough (cached)."""
    out = cache / "idp-aligned"
    if (out / "alignment.json").is_file() and not force:
        return out
    from edxtomo.cli import main as edxtomo_main

    # The summed element maps, as benchmarks/bench_real.py aligns (the default would take the HAADF images).
    argv = ["align", str(DATA), "--lines", *LINES, "--bin", str(BIN), "--refine", "5",
            "--align-reference", "maps", "--out", str(out)]
    print("edxtomo " + " ".join(argv), flush=True)
    if edxtomo_main(argv) != 0:
        raise SystemExit("edxtomo align failed")
    return out


def read_aligned(folder: Path):
    import warnings

    from edxtomo.io import read_map_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ignored alignment.json": the maps are aligned already
        return read_map_folder(folder)


def compute(cache: Path, dip_iterations: int, force: bool) -> None:
    """Align, then reconstruct with each method; volumes and run facts cached under ``cache``."""
    import torch

    from edxtomo.recon import reconstruct, run_to_end

    torch.set_num_threads(1)
    series = read_aligned(aligned_folder(cache, force))
    for method, label, params in METHODS:
        npz, info_file = cache / f"{method}.npz", cache / f"{method}.json"
        if npz.is_file() and info_file.is_file() and not force:
            continue
        params = dict(params, nz=NZ, device="cpu")
        if method == "dipm-tv":
            params["iterations"] = dip_iterations
        print(f"{label}: {params}", flush=True)
        t0 = time.perf_counter()
        last = run_to_end(reconstruct(series, method, **params))
        elapsed = time.perf_counter() - t0
        info = {"method": method, "label": label,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                "iterations_done": int(last.iteration), "stopped": str(last.stopped),
                "elapsed_s": elapsed, "losses": {k: float(v) for k, v in last.losses.items()},
                "info": {k: v for k, v in last.info.items() if isinstance(v, (int, float, str, dict, list))},
                "elements": list(series.elements), "pixel_size_nm": series.pixel_size}
        tmp = npz.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **{el: v.astype(np.float32) for el, v in last.volumes.items()})
        tmp.replace(npz)
        info_file.write_text(json.dumps(info, indent=1, default=str))
        print(f"{label}: {last.iteration} iterations in {elapsed:.0f} s ({last.stopped})", flush=True)


def load_volumes(cache: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for method, _, _ in METHODS:
        with np.load(cache / f"{method}.npz") as f:
            out[method] = {k: f[k] for k in f.files}
    return out


def run_facts(cache: Path) -> dict[str, dict]:
    return {m: json.loads((cache / f"{m}.json").read_text()) for m, _, _ in METHODS}


# ----------------------------------------------------------------- figures
def orthoview(volume: np.ndarray, gap: int = 2) -> np.ndarray:
    """xy (top left), yz (right, z across) and xz (below, z down) through the centre, one image.

    The gaps and the unused corner are NaN (drawn as the background).
    """
    nz, ny, nx = volume.shape
    zc, yc, xc = nz // 2, ny // 2, nx // 2
    out = np.full((ny + gap + nz, nx + gap + nz), np.nan, np.float32)
    out[:ny, :nx] = volume[zc]
    out[:ny, nx + gap:] = volume[:, :, xc].T
    out[ny + gap:, :nx] = volume[:, yc, :]
    return out


def orthoslice_figure(cache: Path, path: Path) -> None:
    """Methods as rows, elements as columns; each panel xy / yz / xz through the volume centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volumes, facts = load_volumes(cache), run_facts(cache)
    elements = facts["sirt"]["elements"]
    ps = float(facts["sirt"]["pixel_size_nm"])
    fig, axes = plt.subplots(len(METHODS), len(elements), figsize=(9.0, 9.3),
                             gridspec_kw={"wspace": 0.04, "hspace": 0.1})
    fig.subplots_adjust(top=0.95, bottom=0.03, left=0.07, right=0.99)
    cmap = matplotlib.colormaps["inferno"].copy()
    cmap.set_bad("white")
    for r, (method, label, _) in enumerate(METHODS):
        for c, el in enumerate(elements):
            vol = volumes[method][el]
            ax = axes[r, c]
            # Each volume from 0 to its own 99.8th percentile: the shapes, not the scales, compare.
            ax.imshow(orthoview(vol), cmap=cmap, vmin=0.0, vmax=float(np.percentile(vol, 99.8)),
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if r == 0:
                ax.set_title(el, fontsize=12)
            if c == 0:
                it = facts[method]["iterations_done"]
                ax.set_ylabel(f"{label}\n({it} iterations)", fontsize=11)
            nz, ny, nx = vol.shape
            if r == 0 and c == 0:
                bar = 1000.0 / ps  # 1 um
                ax.plot([3, 3 + bar], [ny - 4, ny - 4], color="white", lw=2.5)
                ax.text(3 + bar / 2, ny - 7, "1 µm", color="white", ha="center", va="bottom", fontsize=8)
                for text, (x, y) in (("xy", (2, 2)), ("yz", (nx + 3, 2)), ("xz", (2, ny + 3))):
                    ax.text(x, y, text, color="white", ha="left", va="top", fontsize=8,
                            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0})
    fig.suptitle("Real IDP series (8 tilts −40…30°, bin 4, 52 nm voxels): slices through the centre",
                 fontsize=11, y=0.99)
    fig.text(0.5, 0.005, "xy at z = nz/2; yz at x = nx/2 (z across); xz at y = ny/2 (z down). "
             "Tilt axis along y: the missing wedge elongates features along z in xz.",
             ha="center", fontsize=8.5)
    save_figure(fig, path)


def zprofile_figure(cache: Path, path: Path) -> None:
    """Each element's density summed over (y, x) against depth z, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volumes, facts = load_volumes(cache), run_facts(cache)
    elements = facts["sirt"]["elements"]
    ps = float(facts["sirt"]["pixel_size_nm"])
    fig, axes = plt.subplots(1, len(elements), figsize=(9.0, 2.8), sharey=True)
    for c, el in enumerate(elements):
        ax = axes[c]
        for method, label, _ in METHODS:
            prof = volumes[method][el].sum(axis=(1, 2))
            # How far the signal spreads in depth: a ~200 nm lamella is ~4 voxels of 52 nm.
            print(f"{label:8s} {el}: {int(np.sum(prof >= 0.5 * prof.max()))} of {prof.size} voxels "
                  f"above half the peak of the z profile; its lowest {prof.min() / prof.max():.2f} "
                  "of the peak")
            z = (np.arange(prof.size) - prof.size / 2 + 0.5) * ps / 1000.0
            ax.plot(z, prof / prof.max(), label=label)
        ax.set_title(el, fontsize=11)
        ax.set_xlabel("z (µm, 0 = volume centre)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Σ over y, x (max = 1)")
    axes[-1].legend(fontsize=8, loc="lower center")
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png", bbox_inches="tight", facecolor="white")
    plt.close(fig)
    buf.seek(0)
    save_png(np.asarray(Image.open(buf).convert("RGB")), path)


def lit_box(images: list[np.ndarray], margin: int = 6) -> tuple[slice, slice]:
    """The bounding box of the non-black pixels of all ``images``, plus ``margin``.

    The images are first cut to their common size about their centres (the
    camera's centre), in place.
    """
    h = min(img.shape[0] for img in images)
    w = min(img.shape[1] for img in images)
    for k, img in enumerate(images):
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        images[k] = img[y0:y0 + h, x0:x0 + w]
    lit = np.argwhere(np.any([img[..., :3].max(axis=-1) > 8 for img in images], axis=0))
    if not len(lit):
        return slice(None), slice(None)
    (y0, x0), (y1, x1) = lit.min(axis=0), lit.max(axis=0)
    return slice(max(y0 - margin, 0), y1 + margin + 1), slice(max(x0 - margin, 0), x1 + margin + 1)


def render_3d(cache: Path, settings_dir: str, path: Path) -> None:
    """napari's 3D view of the three element volumes per method (attenuated MIP).

    Methods as rows; an oblique view and a view along the tilt axis (y),
    where the missing wedge stretches features along z, as columns.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edxtomo._napari.streaming import VolumeStreamer

    volumes, facts = load_volumes(cache), run_facts(cache)
    elements = facts["sirt"]["elements"]
    viewer = new_viewer(settings_dir)
    viewer.window._qt_window.resize(1000, 900)
    qt_viewer = viewer.window._qt_viewer
    qt_viewer.dockLayerList.setVisible(False)  # the canvas alone, as wide as the window
    qt_viewer.dockLayerControls.setVisible(False)
    rows = []
    for method, label, _ in METHODS:
        for layer in viewer.layers:
            layer.visible = False
        # The layers as the Reconstruct dock adds them (colours, rendering, contrast).
        streamer = VolumeStreamer(viewer, method, elements, facts[method]["pixel_size_nm"], {})
        for el in elements:
            streamer.layer_for(el, volumes[method][el])
        viewer.dims.ndisplay = 3
        views = []
        for angles in (CAMERA_ANGLES, ALONG_AXIS_ANGLES):
            viewer.reset_view()
            viewer.scene.camera.angles = angles
            wait(1.5)
            views.append(viewer.screenshot(canvas_only=True, flash=False))
            print(f"{label}: 3D view {angles}, canvas {views[-1].shape[1]}x{views[-1].shape[0]}")
        rows.append((label, facts[method]["iterations_done"], views))
    viewer.close()
    # One crop per view for all methods: the same camera, the same scale in every row.
    for k in range(2):
        same = [views[k] for _, _, views in rows]
        box = lit_box(same)
        for (_, _, views), img in zip(rows, same, strict=True):
            views[k] = img[box]
    heights = [views[0].shape[0] for _, _, views in rows]
    widths = [rows[0][2][k].shape[1] for k in range(2)]
    scale = 8.0 / sum(widths)
    fig, axes = plt.subplots(len(rows), 2, figsize=(8.6, scale * sum(heights) * 1.1 + 0.6),
                             gridspec_kw={"width_ratios": widths, "height_ratios": heights,
                                          "wspace": 0.03, "hspace": 0.08})
    for r, (label, it, views) in enumerate(rows):
        for k, img in enumerate(views):
            ax = axes[r, k]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(("oblique view", "along the tilt axis y (x across, z up–down)")[k],
                             fontsize=10)
        axes[r, 0].set_ylabel(f"{label}\n({it} iterations)", fontsize=10)
    save_figure(fig, path, dpi=100)


# ------------------------------------------------------------------ images
def save_png(image: np.ndarray, path: Path, width: int | None = None) -> Path:
    """Write ``image`` (RGB(A) uint8) as an optimised PNG under :data:`MAX_PNG_BYTES`.

    Full colour when it fits; else a 256-colour palette (dithered, so the 3D
    renders do not band), downscaled in steps until the file fits.
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    if width is not None and img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    tmp = path.with_suffix(".tmp.png")
    while True:
        img.save(tmp, optimize=True)
        if tmp.stat().st_size > MAX_PNG_BYTES:
            img.quantize(256, method=Image.Quantize.MEDIANCUT,
                         dither=Image.Dither.FLOYDSTEINBERG).save(tmp, optimize=True)
        if tmp.stat().st_size <= MAX_PNG_BYTES or img.width < 400:
            tmp.replace(path)
            print(f"wrote {path} ({img.width}x{img.height}, {path.stat().st_size // 1000} kB)")
            return path
        img = img.resize((int(img.width * 0.85), int(img.height * 0.85)), Image.LANCZOS)


def wait_until(condition, what: str, timeout: float = 600.0) -> None:
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise SystemExit(f"timed out waiting for {what}")
        wait(0.2)


def close_notifications(viewer) -> None:
    """Close napari's toast notifications: they would cover the canvas in the screenshots."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    wait(0.3)


def shot(viewer, name: str, width: int = 1200) -> None:
    close_notifications(viewer)
    wait(0.5)
    save_png(viewer.screenshot(canvas_only=False, flash=False), HERE / name, width)


def new_viewer(settings_dir: str):
    import napari

    from edxtomo._napari.settings import ENV_VAR

    os.environ[ENV_VAR] = settings_dir
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    return viewer


def add_dock(viewer, widget, name: str, width: int = 600, tabify: bool = False):
    from qtpy.QtCore import Qt

    dock = viewer.window.add_dock_widget(widget, name=name, area="right", tabify=tabify)
    wait(0.3)
    viewer.window._qt_window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    return dock


def show_oblique(viewer, zoom: float = 0.75) -> None:
    """Fit the view, turn the camera to :data:`CAMERA_ANGLES` and scale the fit by ``zoom``.

    The fit is for the view along z; the turned box is wider, hence 0.75.
    """
    viewer.reset_view()
    viewer.scene.camera.angles = CAMERA_ANGLES
    viewer.scene.camera.zoom *= zoom


def gui_steps(settings_dir: str) -> None:
    """The napari walkthrough, through the Load and Reconstruct docks' own widgets."""
    from edxtomo._napari.widgets.load_widget import LoadWidget
    from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget

    viewer = new_viewer(settings_dir)
    load = LoadWidget(viewer)
    load_dock = add_dock(viewer, load, "Load EDX tilt series")
    # Step 1: the folder, the detected angles, the lines, binning and the alignment choices.
    load.set_inputs([str(DATA)])
    wait_until(lambda: load.detect_worker is None and len(load.table_model), "the file headers")
    load.lines.setText(", ".join(LINES))
    load.bin.setValue(BIN)
    # Tilt axis (0) and per-tilt intensity (element-map counts with an alignment) at their defaults.
    load.alignment.set_mode("matching", rounds=5)
    wait(0.5)
    shot(viewer, "real-load.png")

    # Step 2: extraction (with the alignment) and the line maps, one grid panel per element.
    load.extract()
    wait_until(lambda: load.worker is None, "the extraction")
    viewer.dims.set_current_step(0, 4)  # the 0-degree tilt
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (2, 2)
    for layer in viewer.layers:  # each panel shows one element in its own colour
        layer.blending = "translucent"
    viewer.reset_view()
    shot(viewer, "real-maps.png")

    # Step 3: the alignment result at the bottom of the Load dock.
    bar = load.scroll.verticalScrollBar()
    bar.setValue(bar.maximum())
    wait(0.5)
    shot(viewer, "real-alignment.png")
    viewer.canvas.grid.enabled = False
    for layer in viewer.layers:
        layer.blending = "additive"

    # Step 4: the Reconstruct dock, TV at its defaults with a 32-voxel depth.
    rec = ReconstructWidget(viewer)
    rec_dock = add_dock(viewer, rec, "Reconstruct", tabify=True)
    load_dock.hide()
    rec.method_box.setCurrentIndex(rec.method_box.findData("tv"))
    rec.form.set_values({"nz": NZ, "iterations": 300, "snapshot_every": 10})
    rec.start()
    wait_until(lambda: rec.controller.record is not None and rec.controller.record.last is not None
               and rec.controller.record.last.iteration >= 120, "TV iteration 120")
    show_oblique(viewer)
    shot(viewer, "real-reconstruct-running.png")
    wait_until(lambda: not rec.controller.running, "the end of the TV run")
    bar = rec.scroll.verticalScrollBar()
    bar.setValue(bar.maximum())
    show_oblique(viewer)
    shot(viewer, "real-reconstruct-done.png")

    # Step 5: one element per panel in 3D, the canvas as wide as the window.
    rec_dock.hide()
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (1, 3)
    show_oblique(viewer, zoom=1.5)  # reset_view fits the whole grid, not each panel
    shot(viewer, "real-3d-elements.png")
    viewer.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", nargs="+", choices=("compute", "figures", "gui"),
                    default=["compute", "figures", "gui"])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "edxtomo-real-shots",
                    help="folder of the aligned maps and the cached reconstructions")
    ap.add_argument("--dip-iterations", type=int, default=1500,
                    help="DIPm-TV iterations (about 0.25 s each at lean widths on one core)")
    ap.add_argument("--force", action="store_true", help="recompute the cached alignment and volumes")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} not found: the real series is needed for these images", file=sys.stderr)
        return 1
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args.cache.mkdir(parents=True, exist_ok=True)
    if "compute" in args.steps:
        compute(args.cache, args.dip_iterations, args.force)
    settings_dir = tempfile.mkdtemp(prefix="edxtomo-shots-")
    if "figures" in args.steps:
        orthoslice_figure(args.cache, HERE / "real-orthoslices.png")
        zprofile_figure(args.cache, HERE / "real-zprofiles.png")
        render_3d(args.cache, settings_dir, HERE / "real-3d.png")
    if "gui" in args.steps:
        gui_steps(settings_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
