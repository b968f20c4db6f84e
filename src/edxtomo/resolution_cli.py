"""``edxtomo resolution``: x, y, z resolution of a method on a tilt series."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .io import SIDECAR_NAME, InputError
from .io.atomic import write_json
from .method_options import READ_OPTIONS, add_method_options, add_read_options
from .resolution import CRITERIA, DEFAULT_CONE_DEG, estimate_resolution

RESOLUTION_JSON = "resolution.json"


def parse_param(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it is (numbers, true/false), else text."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--param: {item!r} is not KEY=VALUE (e.g. lr=0.005)")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def add_resolution_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("resolution",
                       help="x/y/z resolution by directional FSC of even/odd tilt reconstructions")
    p.add_argument("inputs", nargs="+", help="element-map folder or spectrum images")
    p.add_argument("--out", type=Path, required=True, help="output folder (resolution.json)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the method given as text (repeatable; same as its option)")
    p.add_argument("--criterion", choices=CRITERIA, default="half-bit",
                   help="FSC threshold (default half-bit)")
    p.add_argument("--cone", type=float, default=DEFAULT_CONE_DEG, metavar="DEG",
                   help=f"half-angle of the direction cone about each axis (default {DEFAULT_CONE_DEG:g})")
    p.add_argument("--elements", nargs="+", metavar="EL", help="elements to use (default all)")
    p.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"))
    add_method_options(p, default_method=None)
    add_read_options(p)
    p.add_argument("--attach-to", type=Path, metavar="REC_DIR",
                   help="also store the result under 'resolution' in REC_DIR/reconstruction.json")
    return p


def cmd_resolution(args: argparse.Namespace) -> int:
    from .method_options import method_params_from_args
    from .runner import clean_params, read_inputs

    if not args.method:
        raise ValueError("resolution: choose the reconstruction method with --method (sirt, tv, dipm-tv, ...)")
    params: dict[str, Any] = dict(parse_param(item) for item in args.param)
    params.update(method_params_from_args(args))
    params = clean_params(args.method, params)
    if args.time_limit:
        params["time_limit"] = args.time_limit  # per half; reconstruct() applies it
    series = read_inputs(args.inputs, {k: getattr(args, k) for k in READ_OPTIONS
                                       if getattr(args, k, None) is not None})
    if args.elements:
        series = series.select_elements(args.elements)
    if args.tilt_range:
        series = series.select_tilt_range(*args.tilt_range)
    print(f"{args.method} on the even and the odd tilts of {series}", file=sys.stderr)
    est = estimate_resolution(series, args.method, criterion=args.criterion,
                              cone_deg=args.cone, **params)
    data = {**est.to_json(), "input": [str(i) for i in args.inputs],
            "angles": [float(a) for a in series.angles], "elements": series.elements,
            "voxel_size_nm": series.pixel_size}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / RESOLUTION_JSON, data)
    if args.attach_to:
        attach(args.attach_to, data)
    nyq = f" ({', '.join(est.at_nyquist)} at the Nyquist limit)" if est.at_nyquist else ""
    print(f"resolution ({args.criterion}): x {est.x_nm:.3g} nm, y {est.y_nm:.3g} nm, "
          f"z {est.z_nm:.3g} nm; z/x {est.anisotropy:.2f}{nyq} -> {args.out / RESOLUTION_JSON}")
    return 0


def resolution_of_run(series: Any, method: str, params: dict[str, Any], inputs: list[str],
                      criterion: str = "half-bit") -> dict[str, Any]:
    """The resolution record of a run (``reconstruct --resolution``): both tilt halves with its settings."""
    est = estimate_resolution(series, method, criterion=criterion, **params)
    return {**est.to_json(), "input": inputs, "angles": [float(a) for a in series.angles],
            "elements": series.elements, "voxel_size_nm": series.pixel_size}


def attach(rec_dir: Path, data: dict[str, Any]) -> Path:
    """Add ``data`` (without its FSC curves) to a reconstruction's sidecar, atomically."""
    side = Path(rec_dir) / SIDECAR_NAME
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: cannot read the reconstruction sidecar ({exc})") from exc
    sidecar["resolution"] = {k: v for k, v in data.items() if k != "fsc"}
    return write_json(side, sidecar)
