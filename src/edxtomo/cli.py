"""The ``edxtomo`` command: simulate, extract, reconstruct, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .alignment.command import ALIGN_NORMALISE, add_align_parser, add_alignment_options, cmd_align
from .batch.cli import add_batch_parser, cmd_batch
from .quantify_cli import add_quantify_parser, cmd_quantify
from .resolution_cli import add_resolution_parser, cmd_resolution

if TYPE_CHECKING:
    from .recon.control import RunControl

EXIT_INPUT = 2
READ_OPTIONS = ("lines", "bin", "align", "angles", "angle_start", "angle_step", "background",
                "normalise", "axes", "tilt_axis", "refine")
EXIT_INTERRUPTED = 130


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lines", nargs="+", metavar="LINE", help="X-ray lines (Ge_Ka Te_La ...) or elements")
    p.add_argument("--bin", type=int, default=None, metavar="B", help="count-preserving binning (1, 2, 4, 8)")
    p.add_argument("--align", action="store_true", default=None, help="align the tilt series first")
    p.add_argument("--angles", metavar="FILE", help="tilt angles in degrees, one per line")
    p.add_argument("--angle-start", type=float, metavar="DEG",
                   help="first tilt angle, with --angle-step, when files carry no angles")
    p.add_argument("--angle-step", type=float, metavar="DEG", help="tilt step in degrees")
    p.add_argument("--background", action="store_true", default=None,
                   help="subtract exspy's background windows from each line")
    p.add_argument("--normalise", choices=("total", "live_time", *ALIGN_NORMALISE), default=None,
                   help="per-tilt normalisation of the maps (detector shadowing): total spectrum counts, "
                        "live time, element-map counts or gains fitted to the other tilts (the last two "
                        "with the alignment)")
    add_alignment_options(p)
    p.add_argument("--axes", help="axis order of .mat/.tif stacks, e.g. YXC (default inferred)")


def build_parser() -> argparse.ArgumentParser:
    from .phantom import PHANTOMS
    from .recon import available_methods

    parser = argparse.ArgumentParser(
        prog="edxtomo",
        description="Limited-angle STEM-EDX tomography: per-element volumes by DIPm-TV, TV or SIRT.",
    )
    parser.add_argument("--version", action="version", version=f"edxtomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write a synthetic EDX tilt series of a phantom")
    p.add_argument("out", type=Path, help="output folder (<Element>.tif, angles.txt, ground_truth/)")
    p.add_argument("--phantom", default="core_shell", choices=sorted(PHANTOMS))
    p.add_argument("--size", type=int, default=64, help="volume edge in voxels (default 64)")
    p.add_argument("--tilt-range", type=float, nargs=2, default=(-40.0, 40.0), metavar=("MIN", "MAX"))
    p.add_argument("--tilt-step", type=float, default=5.0, metavar="S")
    p.add_argument("--dose", type=float, default=5.0, help="mean counts per pixel in the sample (default 5)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("extract", help="extract element maps from spectrum images")
    p.add_argument("inputs", nargs="+", help="spectrum-image files or a folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    _add_read_options(p)

    p = sub.add_parser("reconstruct", help="reconstruct per-element volumes")
    p.add_argument("inputs", nargs="*", help="element-map folder or spectrum images (default: from --config)")
    p.add_argument("--out", type=Path, required=True, help="output folder (<Element>.tif + reconstruction.json)")
    p.add_argument("--method", choices=available_methods(), default=None, help="default dipm-tv")
    p.add_argument("--elements", nargs="+", metavar="EL", help="elements to reconstruct (default all)")
    p.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="use only these tilts")
    p.add_argument("--tv-weight", type=float, help="dimensionless TV weight")
    p.add_argument("--iterations", type=int)
    p.add_argument("--lr", type=float, help="learning rate (DIP methods)")
    p.add_argument("--device", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--seed", type=int)
    p.add_argument("--nz", type=int, help="volume depth along the beam (default: the map width)")
    p.add_argument("--snapshot-every", type=int, help="iterations between checkpoints/progress updates")
    p.add_argument("--config", type=Path, help="re-run from a reconstruction.json sidecar")
    _add_read_options(p)

    add_batch_parser(sub)
    add_quantify_parser(sub)
    add_resolution_parser(sub)
    add_align_parser(sub)

    p = sub.add_parser("demo", help="reconstruct the built-in phantom (napari when a display exists)")
    p.add_argument("--out", type=Path, default=Path("demo-output"))
    p.add_argument("--headless", action="store_true", help="never open napari")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--iterations", type=int, default=None, help="DIPm-TV iterations")
    return parser


def _fail(message: str, code: int = EXIT_INPUT) -> int:
    print(f"edxtomo: error: {message}", file=sys.stderr)
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    from .io import write_map_folder, write_volumes
    from .phantom import acquire, make_phantom, tilt_angles

    phantom = make_phantom(args.phantom, args.size, seed=args.seed)
    series = acquire(phantom, tilt_angles(*args.tilt_range, args.tilt_step), dose=args.dose, seed=args.seed)
    write_map_folder(series, args.out)
    write_volumes(args.out / "ground_truth", phantom.volumes, phantom.pixel_size)
    print(f"wrote {series} to {args.out} (ground truth in {args.out / 'ground_truth'})")
    return 0


def _read(inputs: list[str], opts: dict[str, Any]):
    from .io import read_series

    def progress(done: int, total: int, message: str) -> None:
        print(f"  [{done}/{total}] {message}", file=sys.stderr)

    extra = {k: opts[k] for k in ("angle_start", "angle_step", "normalise", "axes")
             if opts.get(k) is not None}
    if opts.get("background"):
        extra["background"] = True
    if extra.get("normalise") in ALIGN_NORMALISE:  # per-tilt gains belong to the alignment
        extra["tilt_gains"] = extra.pop("normalise")
    extra.update({k: opts[k] for k in ("tilt_axis", "refine") if opts.get(k) is not None})
    return read_series(inputs, angles_file=opts.get("angles"), lines=opts.get("lines"),
                       bin_factor=opts.get("bin") or 1, align=bool(opts.get("align")),
                       progress=progress, **extra)


def cmd_extract(args: argparse.Namespace) -> int:
    from .io import write_map_folder

    series = _read(args.inputs, {k: getattr(args, k) for k in READ_OPTIONS})
    write_map_folder(series, args.out)
    print(f"wrote {series} to {args.out}")
    return 0


def _merge_config(args: argparse.Namespace) -> tuple[list[str], str, dict, dict, Any]:
    """Command-line values win over the sidecar's; the sidecar's over the defaults."""
    cfg: dict[str, Any] = {}
    if args.config:
        try:
            cfg = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{args.config}: cannot read the sidecar ({exc})") from exc
        if "method" not in cfg or "params" not in cfg:
            raise ValueError(f"{args.config}: not a reconstruction sidecar (no 'method'/'params')")
    inputs = args.inputs or cfg.get("input") or []
    if not inputs:
        raise ValueError("no input: give an element-map folder or spectrum images (or --config)")
    method = args.method or cfg.get("method") or "dipm-tv"
    params = dict(cfg.get("params", {})) if method == cfg.get("method") else {}
    for name in ("tv_weight", "iterations", "lr", "device", "seed", "nz", "snapshot_every"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    ropts = dict(cfg.get("read_options", {}))
    for name in READ_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            ropts[name] = value
    select = {"elements": args.elements or (cfg.get("elements") if cfg else None),
              "tilt_range": args.tilt_range or cfg.get("tilt_range")}
    return [str(i) for i in inputs], method, params, ropts, select


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .recon.control import RunControl
    from .runner import RunRecord, clean_params, run

    inputs, method, params, ropts, select = _merge_config(args)
    params = clean_params(method, params)
    series = _read(inputs, ropts)
    if select["elements"]:
        series = series.select_elements(select["elements"])
    if select["tilt_range"]:
        series = series.select_tilt_range(*select["tilt_range"])
    record = RunRecord(method=method, params=params, series=series, inputs=inputs,
                       read_options=ropts, tilt_range=tuple(select["tilt_range"] or ()) or None)
    print(f"{method} on {series}; missing wedge {series.missing_wedge:g} deg", file=sys.stderr)
    control = RunControl()
    bar = _progress_bar(params.get("iterations"), control)
    try:
        with _first_ctrl_c_stops(control):
            run(record, args.out, on_snapshot=bar.update, control=control)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: kept the volumes of iteration {record.last.iteration if record.last else 0} "
              f"in {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    bar.close()
    if control.stop_requested:
        print(f"stopped: kept the volumes of iteration {record.last.iteration} in {args.out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    last = record.last
    print(f"wrote {', '.join(series.elements)} volumes ({last.iteration} iterations, "
          f"{last.elapsed_s:.1f} s{', ' + last.stopped if last.stopped else ''}) to {args.out}")
    return 0


@contextlib.contextmanager
def _first_ctrl_c_stops(control: RunControl) -> Iterator[None]:
    """First Ctrl-C: finish the current iteration and write it; a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        control.request_stop()
        print("\nstopping after this iteration and writing the volumes (Ctrl-C again to abort)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _progress_bar:
    """tqdm bar: iterations from the run's control every half second, losses from snapshots."""

    def __init__(self, total: int | None, control: RunControl | None = None) -> None:
        from tqdm import tqdm

        # Logs (not a terminal) get a line every 10 s instead of a redraw per snapshot.
        tty = sys.stderr.isatty()
        self._bar = tqdm(total=total, unit="it", file=sys.stderr, dynamic_ncols=tty,
                         mininterval=0.2 if tty else 10.0)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._control = control
        if control is not None:
            threading.Thread(target=self._follow, daemon=True, name="edxtomo-progress").start()

    def _follow(self) -> None:
        while not self._done.wait(0.5):
            self._advance(self._control.iteration, self._control.total)

    def _advance(self, iteration: int, total: int) -> None:
        with self._lock:
            if self._done.is_set():
                return
            if total:
                self._bar.total = total
            if iteration > self._bar.n:
                self._bar.update(iteration - self._bar.n)

    def update(self, snap) -> None:
        self._bar.set_postfix({k: f"{v:.4g}" for k, v in snap.losses.items()}, refresh=False)
        self._advance(snap.iteration, snap.total)

    def close(self) -> None:
        with self._lock:
            self._done.set()
            self._bar.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    headless = args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return run_demo(args.out, headless=headless, size=args.size, iterations=args.iterations)


COMMANDS = {"simulate": cmd_simulate, "extract": cmd_extract, "reconstruct": cmd_reconstruct,
            "demo": cmd_demo, "batch": cmd_batch,
            "quantify": cmd_quantify, "resolution": cmd_resolution,
            "align": cmd_align}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edxtomo`` console script."""
    args = build_parser().parse_args(argv)
    from .devices import DeviceError
    from .io import InputError
    from .tiltseries import TiltSeriesError

    try:
        return COMMANDS[args.command](args)
    except (InputError, TiltSeriesError, DeviceError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
