"""npe2 writers: 3D image layers to ImageJ TIFF with the voxel size in nm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import write_volume
from .layers import META_KEY


def _voxel_size(meta: dict[str, Any]) -> float:
    info = (meta.get("metadata") or {}).get(META_KEY) or {}
    if "pixel_size_nm" in info:
        return float(info["pixel_size_nm"])
    scale = meta.get("scale")
    return float(scale[-1]) if scale is not None else 1.0


def write_single_volume(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one ``(nz, ny, nx)`` layer to ``path`` (a ``.tif``)."""
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"{meta.get('name', 'layer')}: only 3D volumes are written, got {arr.ndim}D")
    return [str(write_volume(path, arr, _voxel_size(meta)))]


def write_volume_folder(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write each 3D image layer to ``path/<layer name>.tif``."""
    folder = Path(path)
    written = []
    for data, meta, _ in layer_data:
        if np.ndim(data) != 3:
            continue
        name = str(meta.get("name", "volume")).replace("/", "_")
        written += write_single_volume(str(folder / f"{name}.tif"), data, meta)
    return written
