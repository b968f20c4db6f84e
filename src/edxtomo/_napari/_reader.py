"""npe2 reader: tilt series → one layer per element; reconstructions → one volume per element.

Claimed inputs: an element-map folder or spectrum-image files (tilt series,
axes tilt/y/x); a reconstruction folder (``<Element>.tif`` beside
``reconstruction.json``, as Export and ``edxtomo reconstruct`` write it) and
single volume TIFFs written by edxtomo (ImageJ, with the voxel size), which
open as volumes in nm.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tifffile

from ..io import SIDECAR_NAME, InputError, is_map_folder, read_series, read_volume
from ..io.vocabulary import SPECTRUM_SUFFIXES  # noqa: F401  (one list for every reader)
from .layers import (
    META_KEY,
    UNITS,
    VOLUME_ATTENUATION,
    VOLUME_AXIS_LABELS,
    VOLUME_RENDERING,
    LayerDataTuple,
    colormap_for,
    method_label,
    robust_contrast,
    series_to_layer_data,
)

PathOrPaths = str | list[str]


def _is_spectrum_file(path: Path) -> bool:
    return path.suffix.lower() in SPECTRUM_SUFFIXES and path.is_file()


def is_reconstruction_folder(path: Path) -> bool:
    """A folder with ``reconstruction.json`` (the volumes are its ``<Element>.tif``)."""
    return path.is_dir() and (path / SIDECAR_NAME).is_file()


def is_volume_tiff(path: Path) -> bool:
    """A 3D ImageJ TIFF with a voxel spacing, as :func:`edxtomo.io.write_volume` writes."""
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            ij = tif.imagej_metadata or {}
            return "spacing" in ij and len(tif.series[0].shape) == 3
    except (OSError, ValueError, tifffile.TiffFileError):
        return False


def _claims(paths: list[Path]) -> bool:
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        return is_map_folder(folder) or any(_is_spectrum_file(p) for p in folder.iterdir())
    return bool(paths) and all(_is_spectrum_file(p) for p in paths)


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerDataTuple]] | None:
    """Return :func:`read_tilt_series` when ``path`` looks like an EDX tilt series, else None.

    A lone spectrum-image file is claimed too: it is a one-tilt series, which
    the reader reports as an error with the reason rather than opening it
    silently as something else.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str) else path)]
    try:
        if len(paths) == 1 and is_reconstruction_folder(paths[0]):
            return read_reconstruction
        if paths and all(is_volume_tiff(p) for p in paths):
            return read_volumes
        return read_tilt_series if _claims(paths) else None
    except OSError:
        return None


def _volume_layer(volume: Any, voxel: float, element: str, name: str, index: int,
                  extra: dict[str, Any]) -> LayerDataTuple:
    meta = {"kind": "volume", "element": element, "pixel_size_nm": voxel, **extra}
    kwargs = {"name": name, "colormap": colormap_for(index), "blending": "additive",
              "rendering": VOLUME_RENDERING, "attenuation": VOLUME_ATTENUATION,
              "scale": (voxel, voxel, voxel), "units": UNITS, "axis_labels": VOLUME_AXIS_LABELS,
              "contrast_limits": robust_contrast(volume), "metadata": {META_KEY: meta}}
    return volume, kwargs, "image"


def read_volumes(path: PathOrPaths) -> list[LayerDataTuple]:
    """Volume TIFFs written by edxtomo: one layer each, scaled to the voxel size in nm."""
    paths = [Path(p) for p in ([path] if isinstance(path, str) else path)]
    out = []
    for k, p in enumerate(paths):
        volume, voxel = read_volume(p)
        out.append(_volume_layer(volume, float(voxel or 1.0), p.stem, p.stem, k,
                                 {"file": str(p)}))
    return out


def read_reconstruction(path: PathOrPaths) -> list[LayerDataTuple]:
    """A reconstruction folder: each element's volume, named ``Fe [TV: folder]``.

    The sidecar's content is kept in the layer metadata (``"sidecar"``).
    """
    folder = Path(path if isinstance(path, str) else path[0])
    try:
        side = json.loads((folder / SIDECAR_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the run record ({exc}): {folder / SIDECAR_NAME}") from exc
    elements = list(side.get("elements") or [])
    files = [folder / f"{el}.tif" for el in elements if (folder / f"{el}.tif").is_file()]
    if not files:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff")
                       and p.stem != "checkpoint")
    if not files:
        raise InputError(f"no <Element>.tif volumes beside {SIDECAR_NAME}: {folder}")
    label = method_label(str(side.get("method", "volume")))
    out = []
    for k, p in enumerate(files):
        volume, voxel = read_volume(p)
        voxel = float(voxel or side.get("pixel_size_nm") or 1.0)
        out.append(_volume_layer(volume, voxel, p.stem, f"{p.stem} [{label}: {folder.name}]", k,
                                 {"method": side.get("method"), "file": str(p), "sidecar": side}))
    return out


def read_tilt_series(path: PathOrPaths) -> list[LayerDataTuple]:
    """Read a tilt series with :func:`edxtomo.io.read_series`."""
    inputs = [path] if isinstance(path, str) else list(path)
    try:
        series = read_series(inputs, min_tilts=2)
    except ImportError as exc:
        # Spectrum-image support is optional (HyperSpy); say what is missing.
        raise InputError(f"{inputs[0]}: cannot read spectrum images here ({exc})") from exc
    options = {"lines": None, "bin": 1, "align": False, "angles": None}
    return series_to_layer_data(series, inputs=[str(p) for p in inputs], read_options=options)
