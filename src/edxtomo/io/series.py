"""One entry point from whatever the user has on disk to a :class:`TiltSeries`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..tiltseries import TiltSeries
from .angles import InputError
from .maps import is_map_folder, read_map_folder


def read_series(
    inputs: Sequence[str | Path] | str | Path,
    *,
    angles_file: str | Path | None = None,
    lines: Sequence[str] | None = None,
    bin_factor: int = 1,
    align: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> TiltSeries:
    """Read element maps or spectrum images into a tilt series.

    Parameters
    ----------
    inputs
        A folder of ``<Element>.tif`` stacks with an angle file, or spectrum
        images (files, a folder or a glob).
    angles_file
        Angles in degrees, one per line; overrides any other source.
    lines
        X-ray lines to extract from spectrum images (``["Ge_Ka", ...]``).
    bin_factor
        Count-preserving binning.
    align
        Translational alignment + tilt-axis centring (same shifts for all elements).
    progress
        ``progress(done, total, message)`` for long steps.
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input given")
    for p in paths:
        if not p.exists() and not any(ch in str(p) for ch in "*?["):
            raise InputError(f"{p}: no such file or folder")
    if len(paths) == 1 and is_map_folder(paths[0]):
        series = read_map_folder(paths[0], angles_file=angles_file)
        if lines:
            wanted = [ln.split("_")[0] for ln in lines]
            series = series.select_elements(wanted)
    else:
        from .spectra import read_spectrum_series

        series = read_spectrum_series(paths, angles_file=angles_file, lines=lines, progress=progress)
    if bin_factor != 1:
        series = series.bin(bin_factor)
    if align:
        from ..align import align_series

        series = align_series(series)
    return series
