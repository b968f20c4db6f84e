"""Reconstructed volumes: ``<Element>.tif`` (float32, ImageJ, voxel size in nm) + a JSON sidecar."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .atomic import write_atomic, write_json

SIDECAR_NAME = "reconstruction.json"


def write_volume(path: str | Path, volume: np.ndarray, voxel_size: float = 1.0) -> Path:
    """Write one ``(nz, ny, nx)`` volume as an ImageJ float32 TIFF, atomically."""
    vol = np.ascontiguousarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"{path}: a volume must be (nz, ny, nx), got shape {vol.shape}")
    return write_atomic(path, lambda p: tifffile.imwrite(
        p, vol, imagej=True, resolution=(1.0 / voxel_size, 1.0 / voxel_size),
        metadata={"spacing": float(voxel_size), "unit": "nm", "axes": "ZYX"},
    ))


def read_volume(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Read a volume written by :func:`write_volume`: ``(array, voxel size in nm or None)``."""
    with tifffile.TiffFile(path) as tif:
        vol = tif.asarray()
        ij = tif.imagej_metadata or {}
    spacing = ij.get("spacing")
    return vol, (float(spacing) if spacing is not None else None)


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for pkg in ("edxtomo", "numpy", "torch", "hyperspy", "exspy", "rosettasciio", "tifffile", "napari"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_volumes(folder: str | Path, volumes: Mapping[str, np.ndarray], voxel_size: float,
                  sidecar: Mapping[str, Any] | None = None) -> list[Path]:
    """Write every element volume and, if given, the sidecar ``reconstruction.json``.

    Volumes go first and the sidecar last, so a sidecar always describes
    complete volumes beside it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_volume(folder / f"{el}.tif", vol, voxel_size) for el, vol in volumes.items()]
    if sidecar is not None:
        data = {"versions": versions(), **dict(sidecar)}
        data.setdefault("outputs", [p.name for p in paths])
        paths.append(write_json(folder / SIDECAR_NAME, data))
    return paths
