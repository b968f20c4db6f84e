"""Event-loop latency of napari while a reconstruction streams into 3D layers.

A 10 ms QTimer records when the main thread gets to run; the gaps between its
ticks are the latency a user feels (a click, a rotation of the 3D view). The
viewer is shown, so every snapshot is also drawn. The same measurement with
no run going is the floor of this machine's display stack (Xvfb and Mesa's
software OpenGL here, a GPU on a workstation). Time spent in the streaming
code itself (copying volumes into layers) and in drawing the canvas are
reported separately.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_gui_latency.py
    ... --size 64 --seconds 20 --methods dipm-tv

``--gui-vs-cli`` instead times one and the same TV run (the phantom written
as an element-map folder) from the command line (``edxtomo reconstruct``,
in this process) and from the Reconstruct dock of the shown viewer, and
prints the ratio; the GUI should stay within 20 % of the command line.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def gaps_during(app, seconds: float) -> np.ndarray:
    """Gaps (ms) between 10 ms timer ticks over ``seconds`` of event loop."""
    from qtpy.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return np.diff(ticks) * 1000


def timed(obj, name: str, store: list[float]) -> None:
    """Wrap ``obj.name`` so each call's duration (ms) lands in ``store``."""
    func = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            store.append((time.perf_counter() - t) * 1000)

    setattr(obj, name, wrapper)


def summary(label: str, gaps: np.ndarray) -> str:
    return (f"{label:34s} median {np.median(gaps):5.1f}  p95 {np.percentile(gaps, 95):6.1f}  "
            f"p99 {np.percentile(gaps, 99):6.1f}  max {gaps.max():6.1f} ms  ({gaps.size} ticks, "
            f"{(gaps > 100).sum()} over 100 ms)")


def redraw_baseline(viewer, app, args) -> np.ndarray:
    """The peer: napari redrawing three 3D layers every 150 ms with no run and no edxtomo code.

    The volumes are the ground truth; the camera turns a little at each step
    so every step is a real redraw.
    """
    from qtpy.QtCore import QTimer

    from edxtomo.phantom import make_phantom

    ph = make_phantom("core_shell", args.size, seed=2)
    layers = [viewer.add_image(v, name=f"{e} [truth]", blending="additive", rendering="mip")
              for e, v in ph.volumes.items()]
    viewer.dims.ndisplay = 3
    timer = QTimer()
    timer.setInterval(150)

    def turn() -> None:
        a, b, c = viewer.scene.camera.angles
        viewer.scene.camera.angles = (a, b, c + 2.0)

    timer.timeout.connect(turn)
    gaps_during(app, 1.0)
    timer.start()
    gaps = gaps_during(app, args.seconds / 2)
    timer.stop()
    for layer in layers:
        viewer.layers.remove(layer)
    viewer.dims.ndisplay = 2
    return gaps


def wait_run(app, widget) -> None:
    while widget.controller.running:
        app.processEvents()
        time.sleep(0.002)


def gui_vs_cli(args) -> None:
    """Wall time of one TV run: ``edxtomo reconstruct`` against the napari dock, same process."""
    import tempfile
    from pathlib import Path

    import napari

    from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget
    from edxtomo.cli import main as cli_main
    from edxtomo.io import write_map_folder
    from edxtomo.phantom import acquire, make_phantom, tilt_angles

    tmp = Path(tempfile.mkdtemp(prefix="edxtomo-gui-vs-cli-"))
    series = acquire(make_phantom("core_shell", args.size, seed=2), tilt_angles(-40, 40, 5),
                     dose=5.0, seed=0)
    write_map_folder(series, tmp / "maps")
    its, every = args.iterations, args.snapshot_every or 20
    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    viewer.open(str(tmp / "maps"), plugin="edxtomo")
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.method_box.setCurrentIndex(widget.method_box.findData("tv"))
    gaps_during(app, 1.0)
    cli_s, gui_s = [], []
    for k in range(args.repeats):  # alternate, so a busy neighbour hurts both alike
        t = time.perf_counter()
        cli_main(["reconstruct", str(tmp / "maps"), "--out", str(tmp / f"cli{k}"), "--method", "tv",
                  "--iterations", str(its), "--device", "cpu"])
        cli_s.append(time.perf_counter() - t)
        widget.form.set_values({"iterations": its, "snapshot_every": every, "device": "cpu"})
        t = time.perf_counter()
        widget.start()
        wait_run(app, widget)
        gui_s.append(time.perf_counter() - t)
        assert widget.controller.record.last.iteration == its
    cli, gui = float(np.median(cli_s)), float(np.median(gui_s))
    print(f"napari {napari.__version__}, TV {its} iterations on a {args.size}³ phantom, 17 tilts, "
          f"3 elements, snapshot every {every}, viewer shown, median of {args.repeats}")
    print(f"command line {cli:6.2f} s   ({', '.join(f'{x:.2f}' for x in cli_s)})")
    print(f"napari dock  {gui:6.2f} s   ({', '.join(f'{x:.2f}' for x in gui_s)})")
    print(f"GUI / CLI    {gui / cli:6.2f}   (goal <= 1.20)")
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--methods", nargs="+", default=["tv", "dipm-tv"])
    parser.add_argument("--profile", action="store_true",
                        help="print the main thread's top functions during each run")
    parser.add_argument("--snapshot-every", type=int, default=None,
                        help="default: 1 for SIRT/TV (the worst case), 5 for DIP")
    parser.add_argument("--gui-vs-cli", action="store_true",
                        help="time one TV run from the command line and from the dock")
    parser.add_argument("--iterations", type=int, default=300, help="--gui-vs-cli: TV iterations")
    parser.add_argument("--repeats", type=int, default=3, help="--gui-vs-cli: runs of each")
    args = parser.parse_args()
    if args.gui_vs_cli:
        gui_vs_cli(args)
        return

    import napari

    from edxtomo._napari._sample_data import phantom_tilt_series
    from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget

    viewer = napari.Viewer(show=True)
    app = napari.qt.get_qapp()
    for data, kwargs, _ in phantom_tilt_series(size=args.size):
        viewer.add_image(data, **kwargs)
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    canvas = viewer.window._qt_viewer.canvas
    draws: list[float] = []
    t_draw = [0.0]
    canvas._scene_canvas.events.draw.connect(lambda e: t_draw.__setitem__(0, time.perf_counter()),
                                             position="first")
    canvas._scene_canvas.events.draw.connect(
        lambda e: draws.append((time.perf_counter() - t_draw[0]) * 1000), position="last")
    shows: list[float] = []
    timed(widget.controller, "_show", shows)

    gaps_during(app, 1.0)  # let the window settle
    print(f"napari {napari.__version__}, {args.size}³ phantom, 3 elements, viewer shown")
    print(summary("idle (no run)", gaps_during(app, args.seconds / 2)))
    print(summary("napari alone: 3D redraw every 150 ms", redraw_baseline(viewer, app, args)))
    for method in args.methods:
        every = args.snapshot_every or (5 if method.startswith("dip") else 1)
        widget.method_box.setCurrentIndex(widget.method_box.findData(method))
        widget.form.set_values({"iterations": 100_000, "snapshot_every": every})
        draws.clear()
        shows.clear()
        widget.start()
        # Measure the steady state: after the layers exist and the first 3D draw is done.
        while widget.controller._streamer is None or widget.controller._streamer.applied < 2:
            app.processEvents()
            time.sleep(0.005)
        gaps_during(app, 1.0)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            gaps = prof.runcall(gaps_during, app, args.seconds)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        else:
            gaps = gaps_during(app, args.seconds)
        widget.stop()
        while widget.controller.running:
            app.processEvents()
            time.sleep(0.005)
        rec = widget.controller.record
        print(summary(f"{method} (snapshot every {every})", gaps))
        print(f"{'':34s} {len(shows)} snapshots shown of {len(rec.history)} received; "
              f"streaming {np.median(shows):.1f} ms median / {max(shows):.1f} max; "
              f"canvas draw {np.median(draws):.1f} ms median / {max(draws):.1f} max "
              f"({len(draws)} draws)")
    viewer.close()


if __name__ == "__main__":
    main()
