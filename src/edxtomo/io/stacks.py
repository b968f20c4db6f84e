"""Element-map stacks in one file: multi-page / multi-channel TIFF, or a HyperSpy .hspy/.zspy.

Axis letters: ``A`` tilt angle, ``C`` channel (element), ``Y`` rows
(parallel to the tilt axis), ``X`` columns. The order is read from the file
(ImageJ/OME axes, HyperSpy axes), given by the user (``axes="ACYX"``), or
inferred from the shape; the order used is stated in the provenance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamagedFileError, InputError
from ..tiltseries import TiltSeries
from .angle_sources import resolve_angles
from .damage import check_tiff
from .vocabulary import ELEMENT_FILE as _ELEMENT
from .vocabulary import STACK_SUFFIXES

_DEG = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:deg|°)?\s*$", re.IGNORECASE)


def infer_axes(shape: Sequence[int], *, has_angle_axis: bool = True) -> str:
    """A plausible axis order for an array of ``shape`` (see module docstring).

    Channels are the smallest axis of at most 16 (elements are few); the tilt
    axis is the leading non-channel axis, as in ``(n_angles, ny, nx)``.
    """
    shape = tuple(int(s) for s in shape)
    spatial = "YX"
    if not has_angle_axis:
        if len(shape) == 2:
            return spatial
        if len(shape) == 3:
            small = int(np.argmin(shape))
            if shape[small] <= 16 and sorted(shape)[0] < sorted(shape)[1]:
                return "CYX" if small == 0 else "YXC" if small == 2 else "YCX"
        raise InputError(f"cannot infer the axes of an array of shape {shape}; give them, e.g. 'YXC'")
    if len(shape) == 3:
        return "AYX"
    if len(shape) == 4:
        if shape[0] <= 16 and shape[0] < shape[1]:
            return "CAYX"
        if shape[1] <= 16 and shape[1] <= shape[0]:
            return "ACYX"
        if shape[3] <= 16:
            return "YXCA" if shape[2] > shape[3] else "YXAC"
    raise InputError(f"cannot infer the axes of a stack of shape {shape}; give them, e.g. 'ACYX'")


def to_acyx(data: np.ndarray, axes: str) -> np.ndarray:
    """Reorder ``data`` with axis letters ``axes`` to ``(A, C, Y, X)`` (missing axes get size 1)."""
    axes = axes.upper()
    if len(axes) != data.ndim or set(axes) - set("ACYX") or len(set(axes)) != len(axes):
        raise InputError(f"axes {axes!r} do not describe an array of shape {data.shape} "
                         "(letters A tilt, C channel, Y, X; each once)")
    for letter in "ACYX":
        if letter not in axes:
            data, axes = data[np.newaxis], letter + axes
    return np.transpose(data, [axes.index(letter) for letter in "ACYX"])


def channel_names(n: int, elements: Sequence[str] | None, fallback: Sequence[str] | None = None,
                  where: str = "") -> tuple[list[str], dict[str, str], str]:
    """Element names (and lines) for ``n`` channels, and how they were named."""
    names = list(elements) if elements else list(fallback or [])
    how = "given by the user" if elements else "read from the file" if fallback else "unnamed"
    if not names:
        names = [f"ch{i}" for i in range(n)]
    if len(names) != n:
        raise InputError(f"{where}: {len(names)} element names ({', '.join(names)}) for {n} channels")
    els, lines = [], {}
    for name in names:
        m = _ELEMENT.match(name)
        el = m.group("el") if m else name
        if m and m.group("line"):
            lines[el] = f"{el}_{m.group('line')}"
        els.append(el)
    return els, lines, how


def _labels_to_angles(labels: Any, n: int) -> np.ndarray | None:
    if not isinstance(labels, (list, tuple)) or len(labels) < n:
        return None
    found = [_DEG.match(str(s)) for s in labels[:n]]
    if not all(found):
        return None
    values = np.array([float(m.group(1)) for m in found])  # type: ignore[union-attr]
    return values if np.unique(values).size == n else None


_Read = tuple[np.ndarray, str | None, np.ndarray | None, list[str] | None, float | None]


def _read_tiff(path: Path) -> _Read:
    import tifffile

    from .maps import _pixel_size_from_tiff

    try:
        with tifffile.TiffFile(path) as tif:
            check_tiff(tif, path)
            series = tif.series[0]
            data, file_axes = series.asarray(), series.axes
            ij = tif.imagej_metadata or {}
            size = _pixel_size_from_tiff(tif)
    except DamagedFileError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: cannot read as TIFF; the file is damaged or not a TIFF ({exc})") from exc
    axes = None
    if file_axes and len(file_axes) == data.ndim and not set(file_axes) <= set("QIYX"):
        mapped = "".join("A" if a in "ZTIQ" else a for a in file_axes.replace("S", "C"))
        axes = mapped if sorted(mapped) == sorted(set(mapped)) and set(mapped) <= set("ACYX") else None
    return data, axes, _labels_to_angles(ij.get("Labels"), data.shape[0]), None, size


def _read_hspy(path: Path) -> _Read:
    import hyperspy.api as hs

    try:
        s = hs.load(path)
    except Exception as exc:
        raise InputError(f"{path}: cannot read the file ({type(exc).__name__}: {exc})") from exc
    if isinstance(s, list) or s.axes_manager.signal_dimension != 2:
        raise InputError(f"{path}: expected one stack of 2D maps (a Signal2D with navigation axes)")
    nav = s.axes_manager.navigation_axes  # hyperspy order: fastest first
    letters, angles = [], None
    for ax in nav[::-1]:
        is_angle = str(ax.units).lower() in ("deg", "degree", "degrees", "°") or "tilt" in str(ax.name).lower()
        letters.append("A" if is_angle else "C")
        if is_angle:
            angles = np.asarray(ax.axis, dtype=np.float64)
    axes = "".join(letters) + "YX" if len(set(letters)) == len(letters) else None
    names = s.metadata.get_item("Sample.elements")
    x = s.axes_manager.signal_axes[0]
    conv = x.convert_to_units("nm", inplace=False) if x.units else None
    return (np.asarray(s.data), axes, angles, list(names) if names else None,
            abs(float(conv[0])) if conv else None)


def read_stack(path: str | Path, *, elements: Sequence[str] | None = None, axes: str | None = None,
               angles: Sequence[float] | None = None, angles_file: str | Path | None = None,
               angle_start: float | None = None, angle_step: float | None = None,
               pixel_size: float | None = None) -> TiltSeries:
    """Read a single-file stack of element maps.

    Parameters
    ----------
    elements
        Names of the channels in order (``["Se", "S", "Zn"]`` or lines
        ``["Se_Ka", ...]``); for a single-channel file, default is the file
        name when it is an element (``Ge.tif``, ``Ge_La.tif``).
    axes
        Axis letters of the stored array, e.g. ``"ACYX"``; default: from the
        file, else inferred (:func:`infer_axes`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        data, file_axes, file_angles, names, size = _read_tiff(path)
    elif suffix in (".hspy", ".zspy"):
        data, file_axes, file_angles, names, size = _read_hspy(path)
    else:
        raise InputError(f"{path}: not a map stack ({', '.join(STACK_SUFFIXES)})")
    how_axes = "given by the user" if axes else "read from the file" if file_axes else "inferred from the shape"
    axes = axes or file_axes or infer_axes(data.shape)
    acyx = to_acyx(np.asarray(data), axes)
    n_angles, n_ch = acyx.shape[:2]
    if names is None and n_ch == 1 and _ELEMENT.match(path.stem):
        names = [path.stem]
    els, lines, how_names = channel_names(n_ch, elements, names, str(path))
    explicit = {"angles": angles, "angles_file": angles_file, "angle_start": angle_start,
                "angle_step": angle_step}
    if file_angles is not None and file_angles.size == n_angles and all(v is None for v in explicit.values()):
        values, source = file_angles, f"tilt labels stored in {path.name}"
    else:
        values, source = resolve_angles([path], n=n_angles, **explicit)
    prov = {"read": {"kind": "map stack", "file": str(path), "axes": axes, "axes_source": how_axes,
                     "channels": els, "channel_names": how_names, "angles_source": source}}
    return TiltSeries(maps={el: acyx[:, i] for i, el in enumerate(els)}, angles=values,
                      pixel_size=pixel_size or size or 1.0, lines=lines, provenance=prov,
                      source=str(path))
