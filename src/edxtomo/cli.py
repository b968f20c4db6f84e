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
from .alignment.command import add_align_parser, cmd_align
from .batch.cli import add_batch_parser, cmd_batch
from .method_options import READ_OPTIONS, add_read_options
from .quantify_cli import add_quantify_parser, cmd_quantify
from .resolution_cli import add_resolution_parser, cmd_resolution

if TYPE_CHECKING:
    from .recon.control import RunControl

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    from .method_options import add_method_options
    from .phantom import PHANTOMS

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
    add_read_options(p)

    p = sub.add_parser("reconstruct", help="reconstruct per-element volumes")
    p.add_argument("inputs", nargs="*", help="element-map folder or spectrum images (default: from --config)")
    p.add_argument("--out", type=Path, required=True, help="output folder (<Element>.tif + reconstruction.json)")
    p.add_argument("--elements", nargs="+", metavar="EL", help="elements to reconstruct (default all)")
    p.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="use only these tilts")
    p.add_argument("--config", type=Path, help="re-run from a reconstruction.json sidecar")
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the interrupted run whose folder is DIR (its sidecar and checkpoint)")
    p.add_argument("--resolution", action="store_true",
                   help="afterwards, estimate the x/y/z resolution (FSC of even/odd-tilt reconstructions "
                        "with the same settings; twice the run's cost) and store it in the sidecar")
    add_method_options(p)
    add_read_options(p)

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
    from .io import OutputLock, check_output_folder, replace_folder, write_map_folder, write_volumes
    from .memory import check_simulation
    from .phantom import acquire, make_phantom, tilt_angles

    angles = tilt_angles(*args.tilt_range, args.tilt_step)
    check_simulation(args.size, len(make_phantom(args.phantom, 8).volumes), len(angles))
    check_output_folder(args.out)
    with OutputLock(args.out):
        phantom = make_phantom(args.phantom, args.size, seed=args.seed)
        series = acquire(phantom, angles, dose=args.dose, seed=args.seed)
        replace_folder(args.out, lambda d: (write_map_folder(series, d, staged=False),
                                            write_volumes(d / "ground_truth", phantom.volumes,
                                                          phantom.pixel_size)))
    print(f"wrote {series} to {args.out} (ground truth in {args.out / 'ground_truth'})")
    return 0


def _print_progress(done: int, total: int, message: str) -> None:
    print(f"  [{done}/{total}] {message}", file=sys.stderr)


def _read(inputs: list[str], opts: dict[str, Any]):
    from .runner import read_inputs

    # One typed object: validated (--bin 0 refused), unknown keys reported, "angles" is a file here.
    return read_inputs(inputs, opts, _print_progress)


def cmd_extract(args: argparse.Namespace) -> int:
    from .io import OutputLock, check_output_folder, write_map_folder

    check_output_folder(args.out, args.inputs)
    with OutputLock(args.out):
        series = _read(args.inputs, {k: getattr(args, k) for k in READ_OPTIONS})
        write_map_folder(series, args.out)
    print(f"wrote {series} to {args.out}")
    return 0


def _load_sidecar(path: Path) -> dict[str, Any]:
    from .method_options import check_sidecar

    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the sidecar ({exc})") from exc
    for warning in check_sidecar(cfg, path):
        print(f"edxtomo: warning: {warning}", file=sys.stderr)
    return cfg


def _merge_config(args: argparse.Namespace) -> tuple[list[str], str, dict, dict, Any]:
    """Command-line values win over the sidecar's; the sidecar's over the defaults."""
    from .method_options import config_params, method_params_from_args

    if args.resume:
        from .runner import resume_source

        args.resume = resume_source(args.resume)
    source = args.resume / "reconstruction.json" if args.resume else args.config
    cfg: dict[str, Any] = _load_sidecar(source) if source else {}
    inputs = args.inputs or cfg.get("input") or []
    if not inputs:
        raise ValueError("no input: give an element-map folder or spectrum images (or --config)")
    method = args.method or cfg.get("method") or "dipm-tv"
    params = config_params(cfg, method, source) if cfg and method == cfg.get("method") else {}
    params.update(method_params_from_args(args))
    if args.time_limit is not None or cfg.get("time_limit_s") is not None:
        params["time_limit"] = args.time_limit if args.time_limit is not None else cfg["time_limit_s"]
    from .io.options import sidecar_read_options

    ropts = sidecar_read_options(cfg.get("read_options"))  # older sidecars replayed as they ran
    for name in READ_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            ropts[name] = value
    select = {"elements": args.elements or (cfg.get("elements") if cfg else None),
              "tilt_range": args.tilt_range or cfg.get("tilt_range"),
              # The exact tilts of the run repeated (some may have been dropped in napari),
              # unless the command line chooses tilts or angles anew.
              "tilts": cfg.get("angles") if cfg and not args.tilt_range and not args.angles else None}
    return [str(i) for i in inputs], method, params, ropts, select


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from .recon.control import RunControl
    from .recon.registry import parse_duration
    from .recon.status import RunStatus
    from .runner import clean_params, load_checkpoint, prepare_record, run

    inputs, method, params, ropts, select = _merge_config(args)
    time_limit = parse_duration(params.pop("time_limit", None))
    params = clean_params(method, params)
    resume = load_checkpoint(args.resume) if args.resume else None
    from .io import OutputLock, check_output_folder

    check_output_folder(args.out, inputs, resume=args.resume)  # before any reading or computing
    lock = OutputLock(args.out)
    lock.acquire()  # released at exit; the runner takes it again (re-entrant)
    record = prepare_record(inputs, method, params, ropts, select["elements"], select["tilt_range"],
                            time_limit, resume, progress=_print_progress, tilts=select["tilts"])
    series = record.series
    budget = f"; time limit {time_limit:g} s" if time_limit else ""
    resumed = f"; resuming after iteration {resume['iteration']}" if resume else ""
    print(f"{method} on {series}; missing wedge {series.missing_wedge:g} deg{budget}{resumed}",
          file=sys.stderr)
    control = RunControl()
    bar = _progress_bar(params.get("iterations"), control)
    try:
        with _first_ctrl_c_stops(control):
            run(record, args.out, on_snapshot=bar.update, control=control)
    except KeyboardInterrupt:
        bar.close()
        kept = (f"kept the volumes of iteration {record.last.iteration} in {args.out}" if record.last
                else f"nothing to keep yet (no iteration finished); {args.out} is unchanged")
        print(f"interrupted: {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    bar.close()
    last = record.last
    if record.status == RunStatus.FAILED:
        return _fail(f"{method} failed: {record.error}; kept the last finite volumes "
                     f"(iteration {last.iteration}) in {args.out}", EXIT_FAILED)
    if record.status == RunStatus.STOPPED:
        print(f"stopped: kept the volumes of iteration {last.iteration} in {args.out} "
              f"(continue with: edxtomo reconstruct --resume {args.out} --out {args.out})"
              if last.state else f"stopped: kept the volumes of iteration {last.iteration} in {args.out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {', '.join(series.elements)} volumes ({last.iteration} iterations, "
          f"{last.elapsed_s:.1f} s{', ' + last.stopped if last.stopped else ''}) to {args.out}")
    for note in last.notes():
        print(note)
    if args.resolution:
        from .resolution_cli import attach, resolution_of_run

        print("estimating the resolution from the even and the odd tilts…", file=sys.stderr)
        extra = {"time_limit": time_limit} if time_limit else {}
        data = resolution_of_run(series, method, {**params, **extra}, inputs)
        attach(args.out, data)
        print(f"resolution ({data['criterion']}): x {data['x_nm']:.3g} nm, y {data['y_nm']:.3g} nm, "
              f"z {data['z_nm']:.3g} nm (stored in {args.out / 'reconstruction.json'})")
    return 0


@contextlib.contextmanager
def _first_ctrl_c_stops(control: RunControl) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM/SIGHUP): finish the current iteration and write it; a second aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        control.request_stop()
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after this iteration and writing the volumes "
              "(Ctrl-C again to abort)", file=sys.stderr)

    # SIGTERM and SIGHUP are what `timeout`, batch schedulers and closed terminals send.
    signals = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
               if s is not None]
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
            budget = self._control.seconds_to_limit() if self._control is not None else None
            if budget is not None:
                # The run ends at the budget, whatever the iteration count says.
                self._bar.set_description_str(f"budget left {int(budget) // 60}:{int(budget) % 60:02d}",
                                              refresh=False)
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
    import warnings

    from .devices import DeviceError
    from .io import InputError
    from .tiltseries import TiltSeriesError

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"edxtomo: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return COMMANDS[args.command](args)
    except (InputError, TiltSeriesError, DeviceError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        from .io.outdir import release_all

        release_all()


if __name__ == "__main__":
    sys.exit(main())
