"""npe2 reader: element-map folders and spectrum-image tilt series → one layer per element."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..io import InputError, is_map_folder, read_series
from .layers import LayerDataTuple, series_to_layer_data

#: Spectrum-image formats HyperSpy/RosettaSciIO read.
SPECTRUM_SUFFIXES = (".bcf", ".emd", ".hspy", ".spx", ".msa")

PathOrPaths = str | list[str]


def _is_spectrum_file(path: Path) -> bool:
    return path.suffix.lower() in SPECTRUM_SUFFIXES and path.is_file()


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
        return read_tilt_series if _claims(paths) else None
    except OSError:
        return None


def read_tilt_series(path: PathOrPaths) -> list[LayerDataTuple]:
    """Read a tilt series with :func:`edxtomo.io.read_series`."""
    inputs = [path] if isinstance(path, str) else list(path)
    try:
        series = read_series(inputs)
    except ImportError as exc:
        # Spectrum-image support is optional (HyperSpy); say what is missing.
        raise InputError(f"{inputs[0]}: cannot read spectrum images here ({exc})") from exc
    options = {"lines": None, "bin": 1, "align": False, "angles": None}
    return series_to_layer_data(series, inputs=[str(p) for p in inputs], read_options=options)
