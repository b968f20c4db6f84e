"""One entry point from whatever the user has on disk to a :class:`TiltSeries`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..tiltseries import TiltSeries
from .angles import InputError
from .maps import is_map_folder, read_map_folder

_MAP_STACK_SUFFIXES = (".tif", ".tiff")


def input_kind(inputs: Sequence[str | Path] | str | Path) -> str:
    """``"map_folder"``, ``"mat"``, ``"stack"`` or ``"spectra"``: how :func:`read_series` reads ``inputs``."""
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input given")
    for p in paths:
        if not p.exists() and not any(ch in str(p) for ch in "*?["):
            raise InputError(f"{p}: no such file or folder")
    if len(paths) == 1 and is_map_folder(paths[0]):
        return "map_folder"
    suffixes = {p.suffix.lower() for p in paths}
    if len(paths) == 1 and paths[0].is_dir():
        suffixes = {f.suffix.lower() for f in paths[0].iterdir() if f.is_file()}
        if ".mat" in suffixes and not suffixes & {".bcf", ".emd", ".hspy", ".zspy", ".rpl", ".pts", ".spd"}:
            return "mat"
        return "spectra"
    if suffixes == {".mat"}:
        return "mat"
    if len(paths) == 1 and suffixes <= set(_MAP_STACK_SUFFIXES):
        return "stack"
    if len(paths) == 1 and suffixes <= {".hspy", ".zspy"} and _is_map_stack(paths[0]):
        return "stack"
    return "spectra"


def _is_map_stack(path: Path) -> bool:
    import hyperspy.api as hs

    try:
        s = hs.load(path, lazy=True)
    except Exception:
        return False  # let the spectrum reader report the failure, naming the file
    return not isinstance(s, list) and s.axes_manager.signal_dimension == 2


def read_series(
    inputs: Sequence[str | Path] | str | Path,
    *,
    angles_file: str | Path | None = None,
    lines: Sequence[str] | None = None,
    bin_factor: int = 1,
    align: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    angles: Sequence[float] | None = None,
    angle_start: float | None = None,
    angle_step: float | None = None,
    elements: Sequence[str] | None = None,
    axes: str | None = None,
    integration_windows: float | Mapping[str, Sequence[float]] = 2.0,
    background: bool | Mapping[str, Sequence[float]] = False,
    normalise: Literal["total", "live_time"] | None = None,
    align_reference: Literal["auto", "haadf", "maps"] = "auto",
) -> TiltSeries:
    """Read element maps or spectrum images into a tilt series.

    Parameters
    ----------
    inputs
        A folder of ``<Element>.tif`` stacks with an angle file; spectrum
        images (files, a folder or a glob; see
        :func:`edxtomo.io.spectra.read_spectrum_series`); one multi-page or
        multi-channel TIFF / .hspy map stack; or MATLAB ``.mat`` maps.
    angles_file, angles, angle_start, angle_step
        Angles in degrees; any of them overrides what the files say.
    lines
        X-ray lines to extract from spectrum images (``["Ge_Ka", ...]``);
        for map folders the elements to keep; for .mat and stack files the
        channel names in order (unless ``elements`` is given).
    bin_factor
        Count-preserving binning.
    align
        Translational alignment + tilt-axis centring (same shifts for all
        elements), on the HAADF images when every file has one
        (``align_reference="auto"``), else on the summed maps.
    progress
        ``progress(done, total, message)`` for long steps.
    elements, axes
        Channel names and axis letters of .mat and stack files.
    integration_windows, background, normalise
        Line extraction settings, see :func:`edxtomo.io.spectra.read_spectrum_series`.
    """
    kind = input_kind(inputs)
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    user = {"angles": angles, "angles_file": angles_file, "angle_start": angle_start,
            "angle_step": angle_step}
    haadf: np.ndarray | None = None
    if kind == "map_folder":
        series = read_map_folder(paths[0], angles_file=angles_file)
        if angles is not None or angle_start is not None:
            raise InputError(f"{paths[0]}: map folders take their angles from a file; use angles_file")
        if lines:
            series = series.select_elements([ln.split("_")[0] for ln in lines])
    elif kind == "mat":
        from .mat import read_mat_series

        series = read_mat_series(paths, elements=elements or lines, axes=axes, **user)
    elif kind == "stack":
        from .stacks import read_stack

        series = read_stack(paths[0], elements=elements or lines, axes=axes, **user)
    else:
        from .spectra import load_spectrum_series

        series, haadf = load_spectrum_series(
            paths, lines=lines, integration_windows=integration_windows, background=background,
            normalise=normalise, progress=progress, **user)
    if bin_factor != 1:
        series = series.bin(bin_factor)
        if haadf is not None:
            from .spectra import _bin

            haadf = _bin(haadf, bin_factor)
    if align:
        from ..align import align_series

        if align_reference == "haadf" and haadf is None:
            raise InputError("alignment on HAADF images asked for, but not every file has one")
        reference = haadf if align_reference in ("auto", "haadf") else None
        series = align_series(series, reference=reference)
    return series
