"""Element-map stacks on disk: ``<Element>.tif`` (or ``<Element>_<Line>.tif``) + ``angles.txt``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import tifffile

from ..tiltseries import TiltSeries, TiltSeriesError
from .angles import InputError, find_angle_file, read_angles, write_angles
from .atomic import write_atomic, write_json

_NAME = re.compile(r"^(?P<el>[A-Z][a-z]?)(?:_(?P<line>[A-Za-z0-9]+))?$")
TIFF_SUFFIXES = (".tif", ".tiff")


def is_map_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``<Element>.tif`` stacks."""
    folder = Path(folder)
    return folder.is_dir() and any(
        p.suffix.lower() in TIFF_SUFFIXES and _NAME.match(p.stem) for p in folder.iterdir()
    )


def _pixel_size_from_tiff(tif: tifffile.TiffFile) -> float | None:
    ij = tif.imagej_metadata or {}
    page = tif.pages[0]
    tag = page.tags.get("XResolution")
    unit = str(ij.get("unit", "")).lower()
    if tag is None:
        return None
    num, den = tag.value
    if num == 0:
        return None
    size = den / num
    if unit in ("nm", "nanometer", "nanometers"):
        return float(size)
    if unit in ("um", "micron", "µm", "\\u00B5m"):
        return float(size * 1000)
    return None


def read_map_folder(folder: str | Path, angles_file: str | Path | None = None,
                    pixel_size: float | None = None) -> TiltSeries:
    """Read a folder of element-map stacks into a :class:`TiltSeries`.

    Each ``<Element>.tif`` is ``(n_angles, ny, nx)``; angles come from
    ``angles_file`` or the folder's ``angles.txt``/``*.rawtlt``/``*.tlt``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
    maps: dict[str, np.ndarray] = {}
    lines: dict[str, str] = {}
    sizes: list[float] = []
    for path in files:
        m = _NAME.match(path.stem)
        if not m:
            continue
        el = m.group("el")
        if el in maps:
            raise InputError(f"{path}: a second stack for element {el} in {folder}")
        try:
            with tifffile.TiffFile(path) as tif:
                data = tif.asarray()
                ps = _pixel_size_from_tiff(tif)
        except Exception as exc:  # tifffile raises many types for damaged files
            raise InputError(f"{path}: cannot read as TIFF ({exc})") from exc
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise InputError(f"{path}: expected a stack (n_angles, ny, nx), got shape {data.shape}")
        maps[el] = data.astype(np.float32)
        if m.group("line"):
            lines[el] = f"{el}_{m.group('line')}"
        if ps:
            sizes.append(ps)
    if not maps:
        raise InputError(f"{folder}: no element-map stacks named <Element>.tif")
    order_file = folder / "series.json"
    if order_file.is_file():
        # Keep the element order of the run that wrote the folder.
        import json

        try:
            order = [e for e in json.loads(order_file.read_text())["elements"] if e in maps]
            maps = {e: maps[e] for e in order + [e for e in maps if e not in order]}
        except (ValueError, KeyError, TypeError):
            pass
    afile = Path(angles_file) if angles_file else find_angle_file(folder)
    if afile is None:
        raise InputError(f"{folder}: no angles.txt (or .rawtlt/.tlt) beside the maps; pass --angles FILE")
    angles = read_angles(afile)
    try:
        return TiltSeries(
            maps=maps, angles=angles,
            pixel_size=pixel_size or (sizes[0] if sizes else 1.0),
            lines=lines,
            provenance={"read": {"folder": str(folder), "angles_file": str(afile),
                                 "files": [p.name for p in files]}},
            source=str(folder),
        )
    except TiltSeriesError as exc:
        raise InputError(str(exc)) from exc


def write_map_folder(series: TiltSeries, folder: str | Path, extra: dict | None = None) -> list[Path]:
    """Write ``<Element>.tif`` stacks, ``angles.txt`` and ``series.json`` (all atomic)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for el, stack in series.maps.items():
        path = folder / f"{el}.tif"
        write_atomic(path, lambda p, s=stack: tifffile.imwrite(
            p, s.astype(np.float32), imagej=True,
            resolution=(1.0 / series.pixel_size, 1.0 / series.pixel_size),
            metadata={"unit": "nm", "axes": "ZYX", "Labels": [f"{a:g} deg" for a in series.angles]},
        ), )
        written.append(path)
    written.append(write_angles(folder / "angles.txt", series.angles))
    written.append(write_json(folder / "series.json", {
        "elements": series.elements, "lines": series.lines, "angles": series.angles,
        "pixel_size_nm": series.pixel_size, "shape": series.shape,
        "provenance": series.provenance, **(extra or {}),
    }))
    return written
