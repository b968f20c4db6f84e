"""What the load widget shows before extracting: detected angles, their source, lines.

Qt-free.  Element-map folders are answered here; spectrum images are
answered by :mod:`edxtomo.io.spectra` / :mod:`edxtomo.lines` when they
offer a detection helper.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import InputError, is_map_folder, read_angles, write_angles
from ..io.angles import find_angle_file
from .settings import settings_dir


@dataclass
class Detected:
    """Facts about the inputs, for display; any may be unknown."""

    angles: list[float] = field(default_factory=list)
    angles_source: str = "unknown until extraction"
    lines: list[str] = field(default_factory=list)
    kind: str = ""
    note: str = ""


def _optional(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def detect(paths: Sequence[str | Path]) -> Detected:
    """Detect angles (with their source) and proposed lines for ``paths``."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input chosen")
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    if len(paths) == 1 and is_map_folder(paths[0]):
        folder = paths[0]
        angle_file = find_angle_file(folder)
        elements = sorted({p.stem for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff")})
        # Lines stay empty ("all"): the folder's own element order is kept.
        out = Detected(kind=f"element maps ({', '.join(elements)})")
        if angle_file is not None:
            out.angles = [float(a) for a in read_angles(angle_file)]
            out.angles_source = f"file {angle_file.name}"
        return out
    return _detect_spectra(paths)


def _detect_spectra(paths: list[Path]) -> Detected:
    detect_angles = _optional("edxtomo.io.spectra", "detect_angles")
    describe = _optional("edxtomo.io.spectrum_files", "describe_spectrum_image")
    expand = _optional("edxtomo.io.spectrum_files", "expand_inputs")
    if detect_angles is None or describe is None or expand is None:
        return Detected(kind="spectrum images",
                        note="angles and lines are read from the files at extraction")
    files = expand(paths)
    angles, source = detect_angles(paths)
    desc = describe(files[0])
    ny, nx = desc["map_shape"]
    return Detected(angles=[float(a) for a in angles], angles_source=str(source),
                    lines=list(desc["proposed_lines"]),
                    kind=f"{len(files)} spectrum image(s) of {ny}×{nx} px, "
                         f"{desc['pixel_size_nm']:.3g} nm/px")


def parse_angles(text: str) -> list[float]:
    """``"-40, -30 -20"`` → ``[-40.0, -30.0, -20.0]`` (comma or space separated)."""
    parts = [p for p in text.replace(";", ",").replace(",", " ").split() if p]
    try:
        return [float(p) for p in parts]
    except ValueError as exc:
        raise InputError(f"tilt angles: {exc}") from None


def parse_lines(text: str) -> list[str] | None:
    """``"Fe_Ka, Si_Ka"`` → ``["Fe_Ka", "Si_Ka"]``; empty means "from the files"."""
    parts = [p.strip() for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    return parts or None


def stored_angle_file(angles: Sequence[float]) -> Path:
    """Write edited angles where they persist, so a sidecar can point at them."""
    arr = np.asarray(angles, dtype=float)
    digest = hashlib.sha1(arr.tobytes()).hexdigest()[:12]
    path = settings_dir() / "angles" / f"angles-{digest}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_angles(path, arr)
