"""Tilt-angle files: ``angles.txt``, IMOD ``.rawtlt``/``.tlt``: one angle (degrees) per line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import write_atomic
from .vocabulary import ANGLE_FILE_NAMES, ANGLE_SUFFIXES

__all__ = ["ANGLE_FILE_NAMES", "ANGLE_SUFFIXES", "InputError", "find_angle_file", "read_angles",
           "write_angles"]


def read_angles(path: str | Path) -> np.ndarray:
    """Read one angle in degrees per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: angles file not found")
    values = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            values.append(float(text.split()[0].replace(",", ".")))
        except ValueError:
            raise InputError(f"{path}, line {n}: {line.strip()!r} is not an angle in degrees") from None
    if not values:
        raise InputError(f"{path}: no angles in the file")
    return np.asarray(values, dtype=np.float64)


def write_angles(path: str | Path, angles: np.ndarray) -> Path:
    """Write one angle per line (atomic)."""
    text = "".join(f"{a:.6g}\n" for a in np.asarray(angles, dtype=float).ravel())
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def find_angle_file(folder: str | Path) -> Path | None:
    """The angle file in ``folder``: ``angles.txt`` first, else a single ``*.rawtlt``/``*.tlt``."""
    folder = Path(folder)
    for name in ANGLE_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in ANGLE_SUFFIXES)
    if len(found) > 1:
        raise InputError(
            f"{folder}: several angle files ({', '.join(p.name for p in found)}); pass one with --angles"
        )
    return found[0] if found else None
