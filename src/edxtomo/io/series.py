"""One entry point from whatever the user has on disk to a :class:`TiltSeries`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError
from ..tiltseries import TiltSeries
from .maps import is_map_folder, read_map_folder
from .options import ReadOptions
from .vocabulary import MAT_SUFFIXES, SPECTRUM_SUFFIXES, TIFF_SUFFIXES, folder_contents, has_glob


def input_kind(inputs: Sequence[str | Path] | str | Path) -> str:
    """``"map_folder"``, ``"mat"``, ``"stack"`` or ``"spectra"``: how :func:`read_series` reads ``inputs``."""
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input given")
    for p in paths:
        if not p.exists() and not has_glob(p):
            raise InputError(f"{p}: no such file or folder")
    if len(paths) == 1 and is_map_folder(paths[0]):
        return "map_folder"
    suffixes = {p.suffix.lower() for p in paths}
    if len(paths) == 1 and paths[0].is_dir():
        suffixes = {f.suffix.lower() for f in paths[0].iterdir() if f.is_file()}
        if set(MAT_SUFFIXES) & suffixes and not suffixes & set(SPECTRUM_SUFFIXES):
            return "mat"
        return "spectra"
    if suffixes <= set(MAT_SUFFIXES):
        return "mat"
    if len(paths) == 1 and suffixes <= set(TIFF_SUFFIXES):
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
    align_reference: Literal["auto", "haadf", "maps"] = "maps",
    skip_bad: bool = False,
    min_tilts: int = 1,
    options: ReadOptions | None = None,
    tilt_axis: str | float | None = None,
    refine: int | None = None,
    tilt_gains: Literal["none", "counts", "gains"] | None = None,
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
        elements), on the summed maps (``align_reference="maps"``), or on
        the HAADF images (``"haadf"``; ``"auto"``: when every file has one).
    progress
        ``progress(done, total, message)`` for long steps.
    elements, axes
        Channel names and axis letters of .mat and stack files.
    integration_windows, background, normalise
        Line extraction settings, see :func:`edxtomo.io.spectra.read_spectrum_series`.
    skip_bad
        Go on without spectrum images that are damaged or truncated; they
        are listed in ``provenance["read"]["skipped"]``.
    min_tilts
        Refuse a series of fewer tilts (the command line and the napari
        reader ask for 2: one tilt is no tomography).
    options
        A :class:`~edxtomo.io.options.ReadOptions`; its values replace the
        keyword arguments above.
    tilt_axis, refine, tilt_gains
        Full alignment (:func:`edxtomo.alignment.align_tilt_series`) instead
        of the translational one when any is given: in-plane tilt-axis angle
        (``"auto"`` or degrees), projection-matching rounds, per-tilt gains
        (``"none"``, ``"counts"`` or ``"gains"``; not given: ``"counts"``,
        or none when ``normalise`` already normalised each tilt).

    Raises
    ------
    InputError
        Missing, unreadable, damaged or inconsistent inputs (the message
        names the file); :class:`~edxtomo.errors.DamagedFileError` for a
        damaged or truncated file.
    """
    if options is not None:
        return read_series(inputs, progress=progress, elements=elements, min_tilts=min_tilts,
                           integration_windows=integration_windows, **options.reader_kwargs())
    if isinstance(bin_factor, bool) or int(bin_factor) != bin_factor or bin_factor < 1:
        raise InputError(f"binning factor must be a whole number >= 1, got {bin_factor!r}")
    kind = input_kind(inputs)
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    user = {"angles": angles, "angles_file": angles_file, "angle_start": angle_start,
            "angle_step": angle_step}
    haadf: np.ndarray | None = None
    if kind in ("spectra", "mat") and len(paths) == 1 and Path(paths[0]).is_dir():
        _report_ignored(Path(paths[0]), kind)
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
            normalise=normalise, progress=progress, skip_bad=skip_bad, **user)
    if bin_factor != 1:
        series = series.bin(bin_factor)
        if haadf is not None:
            from .spectra import _bin

            haadf = _bin(haadf, bin_factor)
    full = tilt_axis is not None or refine is not None or tilt_gains is not None
    if full or align:
        if align_reference == "haadf" and haadf is None:
            raise InputError("alignment on HAADF images asked for, but not every file has one")
        # HAADF images, when every file has one, carry far more counts than the element maps.
        reference = haadf if align_reference in ("auto", "haadf") else None
    if full:
        from ..alignment.command import settings_from
        from ..alignment.pipeline import align_tilt_series

        gains = tilt_gains if tilt_gains is not None else ("none" if normalise else None)
        series = align_tilt_series(series, settings_from(tilt_axis, refine, gains), reference=reference)
    elif align:
        from ..align import align_series

        series = align_series(series, reference=reference)
    if series.n_angles < min_tilts:
        raise InputError(f"{series.source}: {series.n_angles} tilt(s); a tilt series needs at least "
                         f"{min_tilts} (give all the files of the series, or their folder)")
    return series


def _report_ignored(folder: Path, kind: str) -> None:
    """Say which files of a mixed folder are read and which are not."""
    contents = folder_contents(folder)
    read_kind = {"map_folder": "maps", "spectra": "spectra", "mat": "mat"}[kind]
    others = [p.name for k in ("maps", "spectra", "mat") if k != read_kind for p in contents[k]]
    if others:
        what = {"maps": "element maps", "spectra": "spectrum images", "mat": "MATLAB maps"}[read_kind]
        warnings.warn(f"{folder}: reading the {what} ({len(contents[read_kind])} file(s)); ignored "
                      f"{', '.join(others[:6])}{', ...' if len(others) > 6 else ''} (give files "
                      "as inputs to read those instead)", UserWarning, stacklevel=3)
