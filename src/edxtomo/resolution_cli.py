"""``edxtomo resolution``: x, y, z resolution of a method on a tilt series."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .io import SIDECAR_NAME, InputError
from .io.atomic import write_json
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
    p.add_argument("--method", required=True, help="reconstruction method (sirt, tv, dipm-tv, ...)")
    p.add_argument("--iterations", type=int)
    p.add_argument("--tv-weight", type=float)
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    p.add_argument("--seed", type=int)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other parameter of the method (repeatable)")
    p.add_argument("--criterion", choices=CRITERIA, default="half-bit",
                   help="FSC threshold (default half-bit)")
    p.add_argument("--cone", type=float, default=DEFAULT_CONE_DEG, metavar="DEG",
                   help=f"half-angle of the direction cone about each axis (default {DEFAULT_CONE_DEG:g})")
    p.add_argument("--elements", nargs="+", metavar="EL", help="elements to use (default all)")
    p.add_argument("--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--angles", metavar="FILE", help="tilt angles in degrees, one per line")
    p.add_argument("--angle-start", type=float, metavar="DEG",
                   help="first tilt angle, with --angle-step, when the files carry no angles")
    p.add_argument("--angle-step", type=float, metavar="DEG", help="tilt step in degrees")
    p.add_argument("--lines", nargs="+", metavar="LINE", help="X-ray lines for spectrum images")
    p.add_argument("--bin", type=int, default=1, metavar="B", help="count-preserving binning")
    p.add_argument("--attach-to", type=Path, metavar="REC_DIR",
                   help="also store the result under 'resolution' in REC_DIR/reconstruction.json")
    return p


def cmd_resolution(args: argparse.Namespace) -> int:
    from .io import read_series
    from .runner import clean_params

    params: dict[str, Any] = dict(parse_param(item) for item in args.param)
    for name in ("iterations", "tv_weight", "device", "seed"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    params = clean_params(args.method, params)
    series = read_series(args.inputs, angles_file=args.angles, bin_factor=args.bin,
                         angle_start=args.angle_start, angle_step=args.angle_step,
                         lines=args.lines)
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


def attach(rec_dir: Path, data: dict[str, Any]) -> Path:
    """Add ``data`` (without its FSC curves) to a reconstruction's sidecar, atomically."""
    side = Path(rec_dir) / SIDECAR_NAME
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{side}: cannot read the reconstruction sidecar ({exc})") from exc
    sidecar["resolution"] = {k: v for k, v in data.items() if k != "fsc"}
    return write_json(side, sidecar)
