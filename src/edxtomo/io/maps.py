"""Element-map stacks on disk: ``<Element>.tif`` (or ``<Element>_<Line>.tif``) + ``angles.txt``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import tifffile

from ..errors import DamagedFileError, InputError
from ..tiltseries import COUNTS_ORIGIN, TiltSeries
from .angles import find_angle_file, read_angles, write_angles
from .atomic import write_atomic, write_json
from .damage import check_tiff
from .outdir import replace_folder
from .vocabulary import MAP_FOLDER_RECORDS, TIFF_SUFFIXES, element_of, folder_contents

__all__ = ["TIFF_SUFFIXES", "is_map_folder", "read_map_folder", "write_map_folder"]


def is_map_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``<Element>.tif`` stacks."""
    folder = Path(folder)
    return folder.is_dir() and any(element_of(p) for p in folder.iterdir())


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


def _read_tiff_stack(path: Path) -> tuple[np.ndarray, float | None]:
    try:
        with tifffile.TiffFile(path) as tif:
            check_tiff(tif, path)
            data = tif.asarray()
            ps = _pixel_size_from_tiff(tif)
    except DamagedFileError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: cannot read as TIFF; the file is damaged or not a TIFF ({exc})") from exc
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a stack (n_angles, ny, nx), got shape {data.shape}")
    return data, ps


def _listed_elements(folder: Path) -> list[str] | None:
    """The elements ``series.json`` lists, or ``None`` when there is no usable one."""
    order_file = folder / "series.json"
    if not order_file.is_file():
        return None
    try:
        listed = json.loads(order_file.read_text(encoding="utf-8"))["elements"]
    except (OSError, ValueError, KeyError, TypeError):
        warnings.warn(f"{order_file}: unreadable; reading every <Element>.tif in the folder",
                      UserWarning, stacklevel=3)
        return None
    if not isinstance(listed, list) or not all(isinstance(e, str) for e in listed):
        return None
    return listed


def read_map_folder(folder: str | Path, angles_file: str | Path | None = None,
                    pixel_size: float | None = None) -> TiltSeries:
    """Read a folder of element-map stacks into a :class:`TiltSeries`.

    Each ``<Element>.tif`` is ``(n_angles, ny, nx)``; angles come from
    ``angles_file`` or the folder's ``angles.txt``/``*.rawtlt``/``*.tlt``.
    When the folder has a ``series.json`` (written with the maps), exactly
    the elements it lists are read, in its order; otherwise every
    ``<Element>.tif``. Files not read are named in a warning and in
    ``provenance["read"]["ignored"]``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    contents = folder_contents(folder)
    by_element: dict[str, list[Path]] = {}
    for path in contents["maps"]:
        by_element.setdefault(element_of(path)[0], []).append(path)  # type: ignore[index]
    listed = _listed_elements(folder)
    if listed is not None:
        missing = [e for e in listed if e not in by_element]
        if missing:
            raise InputError(f"{folder / 'series.json'}: lists {', '.join(missing)} but the folder has no "
                             f"{', '.join(e + '.tif' for e in missing)}")
        wanted = listed
    else:
        wanted = list(by_element)
    maps: dict[str, np.ndarray] = {}
    lines: dict[str, str] = {}
    sizes: list[float] = []
    used: list[Path] = []
    for el in wanted:
        if len(by_element[el]) > 1:
            raise InputError(f"{by_element[el][1]}: a second stack for element {el} in {folder} "
                             f"(also {by_element[el][0].name})")
        path = by_element[el][0]
        data, ps = _read_tiff_stack(path)
        maps[el] = data.astype(np.float32)
        line = element_of(path)[1]  # type: ignore[index]
        if line:
            lines[el] = line
        if ps:
            sizes.append(ps)
        used.append(path)
    if not maps:
        raise InputError(f"{folder}: no element-map stacks named <Element>.tif")
    afile = Path(angles_file) if angles_file else find_angle_file(folder)
    if afile is None:
        raise InputError(f"{folder}: no angles.txt (or .rawtlt/.tlt) beside the maps; pass --angles FILE")
    angles = read_angles(afile)
    ignored = [p.name for kind in ("maps", "spectra", "mat", "other") for p in contents[kind]
               if p not in used and p.name not in MAP_FOLDER_RECORDS]
    if ignored:
        why = "not listed in series.json" if listed is not None else "not element maps"
        warnings.warn(f"{folder}: read {', '.join(p.name for p in used)}; ignored {', '.join(ignored)} "
                      f"({why}; give files as inputs to read them)", UserWarning, stacklevel=2)
    provenance: dict = {"read": {"folder": str(folder), "angles_file": str(afile),
                                 "files": [p.name for p in used], "ignored": ignored,
                                 "element_list": "series.json" if listed is not None else "folder"}}
    if _counts_origin(folder):
        provenance[COUNTS_ORIGIN] = True  # aligned counts: still counts for the Poisson likelihood
    return TiltSeries(
        maps=maps, angles=angles,
        pixel_size=pixel_size or (sizes[0] if sizes else 1.0),
        lines=lines,
        provenance=provenance,
        source=str(folder),
    )


def _counts_origin(folder: Path) -> bool:
    """Whether ``series.json`` says the maps were derived from counts (e.g. aligned counts)."""
    try:
        meta = json.loads((folder / "series.json").read_text(encoding="utf-8"))
        return bool(meta.get("provenance", {}).get(COUNTS_ORIGIN))
    except (OSError, ValueError, AttributeError):
        return False


def write_map_folder(series: TiltSeries, folder: str | Path, extra: dict | None = None,
                     *, staged: bool = True) -> list[Path]:
    """Write ``<Element>.tif`` stacks, ``angles.txt`` and ``series.json``.

    With ``staged`` (default) the files are written into a fresh folder
    beside ``folder`` and swapped in when complete
    (:func:`edxtomo.io.outdir.replace_folder`): ``folder`` never holds maps
    of two runs, and keeps its old contents until the new ones are whole.
    """
    folder = Path(folder)
    if staged:
        written = replace_folder(folder, lambda stage: write_map_folder(series, stage, extra,
                                                                         staged=False))
        return [folder / p.name for p in written]
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
