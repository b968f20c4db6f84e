"""``edxtomo quantify``: composition volumes of a reconstruction folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .io import SIDECAR_NAME, InputError, read_volume, write_volumes
from .io.atomic import write_json
from .quantify import (
    UNITS,
    calibrate_k_factors,
    cliff_lorimer,
    k_factors_from_metadata,
    region_stats,
    write_stats_csv,
)

COMPOSITION_SIDECAR = "composition.json"
REGIONS_CSV = "regions.csv"


def parse_assignments(items: list[str] | None, what: str) -> dict[str, float]:
    """``["Ge=1.0", "Sb=1.3"]`` → ``{"Ge": 1.0, "Sb": 1.3}``."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"{what}: {item!r} is not ELEMENT=NUMBER (e.g. Ge=1.0)") from None
    return out


def add_quantify_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("quantify", help="composition volumes (Cliff-Lorimer) of a reconstruction")
    p.add_argument("rec_dir", type=Path, help="reconstruction folder (<Element>.tif [+ reconstruction.json])")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (<Element>.tif in percent, composition.json, regions.csv)")
    p.add_argument("--k-factors", nargs="+", metavar="EL=K",
                   help="k-factors (only ratios matter; default 1, or the sidecar's)")
    p.add_argument("--calibrate", type=Path, metavar="REGION.tif",
                   help="mask of a region of known composition (non-zero voxels)")
    p.add_argument("--composition", nargs="+", metavar="EL=AT%",
                   help="nominal composition of the --calibrate region in at.%%")
    p.add_argument("--threshold", type=float,
                   help="mask voxels whose k-weighted total counts are at or below T "
                        "(default: from the noise)")
    p.add_argument("--regions", type=Path, metavar="LABELS.tif",
                   help="integer label volume; writes mean ± std per label to regions.csv")
    p.add_argument("--unit", choices=UNITS, default="at%", help="at%% (default) or wt%%")
    return p


def read_reconstruction(rec_dir: Path) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    """Element volumes, voxel size (nm) and sidecar (``{}`` if absent) of a folder."""
    if not rec_dir.is_dir():
        raise InputError(f"{rec_dir}: not a folder (give a reconstruction folder with <Element>.tif)")
    sidecar: dict[str, Any] = {}
    side = rec_dir / SIDECAR_NAME
    if side.is_file():
        try:
            sidecar = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{side}: cannot read the sidecar ({exc})") from exc
    names = sidecar.get("elements") or sorted(p.stem for p in rec_dir.glob("*.tif"))
    volumes: dict[str, np.ndarray] = {}
    voxel: float | None = None
    for el in names:
        path = rec_dir / f"{el}.tif"
        if not path.is_file():
            raise InputError(f"{path}: missing (the sidecar lists element {el})")
        try:
            vol, size = read_volume(path)
        except Exception as exc:  # tifffile raises several types for bad files
            raise InputError(f"{path}: cannot read the volume ({exc})") from exc
        if vol.ndim != 3:
            raise InputError(f"{path}: not a volume (shape {vol.shape}, expected (nz, ny, nx))")
        if volumes and vol.shape != next(iter(volumes.values())).shape:
            raise InputError(f"{path}: shape {vol.shape} differs from the other elements'")
        volumes[el] = vol
        voxel = voxel or size
    if len(volumes) < 2:
        raise InputError(f"{rec_dir}: composition needs at least two <Element>.tif volumes, "
                         f"found {list(volumes) or 'none'}")
    voxel = voxel or float(sidecar.get("pixel_size_nm") or 1.0)
    return volumes, voxel, sidecar


def _read_labels(path: Path, shape: tuple[int, ...], what: str) -> np.ndarray:
    import tifffile

    try:
        data = tifffile.imread(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc})") from exc
    data = np.squeeze(data)
    if data.shape != shape:
        raise InputError(f"{path}: the {what} has shape {data.shape}, the volumes {shape}")
    return data


def cmd_quantify(args: argparse.Namespace) -> int:
    if args.out.resolve() == args.rec_dir.resolve():
        raise InputError(f"{args.out}: the output folder is the reconstruction folder; the "
                         "composition volumes would replace the count volumes (choose another --out)")
    volumes, voxel, sidecar = read_reconstruction(args.rec_dir)
    shape = next(iter(volumes.values())).shape
    user_k = parse_assignments(args.k_factors, "--k-factors")
    k_source = {e: "default 1" for e in volumes}
    k: dict[str, float] = {}
    meta_k = {e: v for e, v in k_factors_from_metadata(sidecar).items() if e in volumes}
    if meta_k:
        k.update(meta_k)
        k_source.update({e: f"{SIDECAR_NAME}" for e in meta_k})
    calibration = None
    if args.calibrate or args.composition:
        if not (args.calibrate and args.composition):
            raise InputError("--calibrate REGION.tif and --composition EL=AT% go together")
        region = _read_labels(args.calibrate, shape, "calibration region")
        nominal = parse_assignments(args.composition, "--composition")
        try:
            k = calibrate_k_factors(volumes, region, nominal, k_factors={**k, **user_k})
        except ValueError as exc:
            raise InputError(f"{args.calibrate}: {exc}") from exc
        k_source.update({e: "calibrated" for e in nominal})
        calibration = {"region": str(args.calibrate), "composition_at%": nominal,
                       "region_voxels": int(np.count_nonzero(region))}
    for e in user_k:
        if calibration is None or e not in calibration["composition_at%"]:
            k[e] = user_k[e]
            k_source[e] = "user"
    comp = cliff_lorimer(volumes, k, threshold=args.threshold, unit=args.unit)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [p.name for p in write_volumes(args.out, comp.volumes, voxel)]
    summary = {"format": "edxtomo-composition/1", "source": str(args.rec_dir),
               "voxel_size_nm": voxel, **comp.summary(), "k_factor_source": k_source,
               "calibration": calibration, "reconstruction_method": sidecar.get("method")}
    if args.regions:
        labels = _read_labels(args.regions, shape, "region labels")
        try:
            rows = region_stats(comp.volumes, labels)
        except ValueError as exc:
            raise InputError(f"{args.regions}: {exc}") from exc
        write_stats_csv(args.out / REGIONS_CSV, rows, comp.unit)
        summary["regions"] = {"labels": str(args.regions), "csv": REGIONS_CSV, "rows": rows}
        written.append(REGIONS_CSV)
    write_json(args.out / COMPOSITION_SIDECAR, {**summary, "outputs": written})
    means = ", ".join(f"{e} {v:.1f}" for e, v in comp.mean().items())
    print(f"wrote {', '.join(written)}, {COMPOSITION_SIDECAR} to {args.out}; mean {comp.unit}: "
          f"{means} over {int(comp.mask.sum())} of {comp.mask.size} voxels "
          f"(threshold {comp.threshold:.4g}, {comp.threshold_source})")
    return 0
