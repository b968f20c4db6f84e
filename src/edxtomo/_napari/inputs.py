"""What the load widget shows before extracting: the tilts, their angles and source, lines.

Qt-free. :class:`AngleTable` is the file → angle table of the Load dock:
one row per tilt, in the order of the files (natural name order), with the
detected angle, the user's edit if any, and where each angle comes from.  Element-map folders are answered here; spectrum images are
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
    tilts: list[str] = field(default_factory=list)


#: Source shown for a row the user typed.
EDITED = "edited"


@dataclass
class AngleTable:
    """Tilt → angle rows in file order; what the table shows is what extraction uses.

    Attributes
    ----------
    tilts
        Row labels: file names (one spectrum image per tilt) or ``tilt k``.
    detected
        Detected angle per row in degrees (``None``: unknown).
    source
        Where the detected angles come from (one sentence for all rows).
    edits
        Row → angle typed by the user; a row whose edit equals its detected
        angle is not an edit.
    """

    tilts: list[str] = field(default_factory=list)
    detected: list[float | None] = field(default_factory=list)
    source: str = ""
    edits: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_detected(cls, d: Detected) -> AngleTable:
        """Rows of the detected tilts (labels ``tilt k`` when only angles are known)."""
        n = max(len(d.tilts), len(d.angles))
        tilts = list(d.tilts) or [f"tilt {k + 1}" for k in range(n)]
        tilts += [f"tilt {k + 1}" for k in range(len(tilts), n)]
        detected: list[float | None] = [float(a) for a in d.angles]
        detected += [None] * (n - len(detected))
        return cls(tilts=tilts, detected=detected, source=d.angles_source if d.angles else "")

    def __len__(self) -> int:
        return len(self.tilts)

    def set_angle(self, row: int, value: float | None) -> None:
        """Record the user's value for ``row`` (``None`` or the detected value: no edit)."""
        det = self.detected[row]
        if value is None or (det is not None and abs(float(value) - det) < 1e-9):
            self.edits.pop(row, None)
        else:
            self.edits[row] = float(value)

    def angle(self, row: int) -> float | None:
        return self.edits.get(row, self.detected[row])

    def row_source(self, row: int) -> str:
        if row in self.edits:
            return EDITED
        return self.source if self.detected[row] is not None else "unknown: type the angle"

    @property
    def edited(self) -> bool:
        return bool(self.edits)

    def angles(self) -> list[float]:
        """Angles of every row, in file order.

        Raises
        ------
        InputError
            When a row has no angle, naming the tilts.
        """
        missing = [t for k, t in enumerate(self.tilts) if self.angle(k) is None]
        if missing:
            shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
            raise InputError(f"no tilt angle for {shown}: type one per tilt in the angle table")
        return [float(a) for a in (self.angle(k) for k in range(len(self))) if a is not None]

    def summary(self) -> str:
        """One line for the dock: the source, and how many rows were edited."""
        if not self.tilts:
            return "no input read yet"
        if self.edits:
            rest = f"; the others from {self.source}" if self.source and \
                len(self.edits) < len(self) else ""
            return f"edited: {len(self.edits)} of {len(self)} tilts{rest}"
        return self.source or "unknown: type one angle per tilt"


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
            out.tilts = [f"tilt {k + 1}" for k in range(len(out.angles))]
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
    desc = describe(files[0])
    ny, nx = desc["map_shape"]
    out = Detected(lines=list(desc["proposed_lines"]), tilts=[f.name for f in files],
                   kind=f"{len(files)} spectrum image(s) of {ny}×{nx} px, "
                        f"{desc['pixel_size_nm']:.3g} nm/px")
    try:
        angles, source = detect_angles(paths)
    except InputError as exc:
        # The files are fine; only the angles are unknown: the user types them.
        out.angles_source, out.note = "unknown: type one angle per tilt", str(exc)
        return out
    out.angles, out.angles_source = [float(a) for a in angles], str(source)
    if len(angles) != len(files):  # one file holding a stack of tilts
        out.tilts = [f"{files[0].name}[{k}]" for k in range(len(angles))]
    return out


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
