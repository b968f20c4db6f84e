"""``edxtomo demo`` / ``make demo``: the main job on the built-in phantom."""

from __future__ import annotations

import sys
from pathlib import Path

from .io import write_volumes
from .metrics import compare
from .phantom import acquire, make_phantom, tilt_angles
from .recon import available_methods
from .runner import RunRecord, clean_params, run

DEMO_DOSE = 5.0
DEMO_DIP_ITERATIONS = 600


def _methods(iterations: int | None) -> list[tuple[str, dict]]:
    # 600 DIPm-TV iterations at 32³ take 2-3 minutes on two CPU cores and already
    # pass TV (docs/benchmarks-quality.md); a GPU runs the full default.
    plan = [("sirt", {"iterations": 100}), ("tv", {"iterations": 300}),
            ("dipm-tv", {"iterations": iterations or DEMO_DIP_ITERATIONS})]
    return [(m, p) for m, p in plan if m in available_methods()]


def run_headless(out: Path, size: int = 32, iterations: int | None = None) -> int:
    """Simulate, reconstruct with every method, write TIFFs, a PNG and a table."""
    from .preview import save_orthoslices

    phantom = make_phantom("core_shell", size)
    series = acquire(phantom, tilt_angles(-40, 40, 5), dose=DEMO_DOSE)
    print(f"phantom: {series}, dose {DEMO_DOSE:g} counts/px, missing wedge {series.missing_wedge:g} deg")
    write_volumes(out / "ground_truth", phantom.volumes, phantom.pixel_size)
    rows = {"truth": phantom.volumes}
    table = []
    for method, params in _methods(iterations):
        record = RunRecord(method=method, params=clean_params(method, params), series=series,
                           inputs=["phantom:core_shell"])
        run(record, out / method)
        last = record.last
        scores = compare(last.volumes, phantom.volumes)["mean"]
        table.append((method, last.iteration, last.elapsed_s, scores["psnr"], scores["ssim"]))
        rows[method] = last.volumes
        print(f"  {method:8s} {last.iteration:5d} it {last.elapsed_s:7.1f} s  "
              f"PSNR {scores['psnr']:.2f} dB  SSIM {scores['ssim']:.3f}", flush=True)
    png = save_orthoslices(out / "preview.png", rows,
                           title=f"core-shell phantom, tilts -40..40 step 5, dose {DEMO_DOSE:g}")
    print(f"wrote volumes to {out}/<method>/<Element>.tif and {png}")
    return 0


def run_demo(out: Path, headless: bool, size: int = 32, iterations: int | None = None) -> int:
    """Headless: :func:`run_headless`. With a display: napari with the plugin and sample open."""
    if headless:
        return run_headless(Path(out), size=size, iterations=iterations)
    try:
        import napari
    except ImportError as exc:  # pragma: no cover - napari is a dependency
        print(f"napari is not available ({exc}); running headless", file=sys.stderr)
        return run_headless(Path(out), size=size, iterations=iterations)
    open_demo_viewer(napari.Viewer(title="edxtomo demo"))
    napari.run()
    return 0


def open_demo_viewer(viewer):
    """Load the phantom sample into ``viewer`` and dock the plugin's widgets."""
    viewer.open_sample("edxtomo", "phantom")
    for widget in ("Load EDX tilt series", "Reconstruct", "Export"):
        try:
            viewer.window.add_plugin_dock_widget("edxtomo", widget)
        except (KeyError, ValueError) as exc:
            print(f"could not open the {widget!r} widget: {exc}", file=sys.stderr)
    return viewer
