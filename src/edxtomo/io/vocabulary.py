"""One vocabulary for what edxtomo reads: suffixes, the element-file name, binning, paths.

The reader, :mod:`edxtomo.io.spectrum_files`, the napari reader and the
Load dock all take these names from here, so that a file one of them
accepts is accepted by all.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError

#: Suffixes RosettaSciIO reads as EDS spectrum images.
SPECTRUM_SUFFIXES = (".bcf", ".emd", ".hspy", ".zspy", ".rpl", ".msa", ".pts", ".spd", ".spx")
#: TIFF files: element-map stacks (``<Element>.tif``) and volumes.
TIFF_SUFFIXES = (".tif", ".tiff")
#: Single-file stacks of element maps.
STACK_SUFFIXES = (*TIFF_SUFFIXES, ".hspy", ".zspy")
#: MATLAB element maps.
MAT_SUFFIXES = (".mat",)
#: Angle files looked for beside the data, in this order, then any ``*.rawtlt``/``*.tlt``.
ANGLE_FILE_NAMES = ("angles.txt", "angles.rawtlt", "angles.tlt")
ANGLE_SUFFIXES = (".rawtlt", ".tlt")
#: Records edxtomo writes beside element maps (``extract``, ``align``): read or kept, never
#: reported as files a reader skipped.
MAP_FOLDER_RECORDS = ("series.json", "alignment.json")
#: ``Ge``, ``Ge_Ka``, ``Ge_La1``: the stem of an element-map file.
ELEMENT_FILE = re.compile(r"^(?P<el>[A-Z][a-z]?)(?:_(?P<line>[A-Za-z0-9]+))?$")
#: Binning factors offered in the GUI; any integer >= 1 is accepted.
BIN_FACTORS = (1, 2, 4, 8)
_GLOB_CHARS = "*?["


def file_dialog_filter() -> str:
    """Qt file-dialog filter for spectrum images (the Load dock's browse button)."""
    return f"Spectrum images ({' '.join('*' + s for s in SPECTRUM_SUFFIXES)});;All files (*)"


def is_spectrum_file(path: str | Path) -> bool:
    """True for an existing file with a spectrum-image suffix."""
    p = Path(path)
    return p.suffix.lower() in SPECTRUM_SUFFIXES and p.is_file()


def element_of(path: str | Path) -> tuple[str, str | None] | None:
    """``(element, line or None)`` for a ``<Element>[_<Line>].tif`` file, else ``None``."""
    p = Path(path)
    if p.suffix.lower() not in TIFF_SUFFIXES:
        return None
    m = ELEMENT_FILE.match(p.stem)
    if not m:
        return None
    el = m.group("el")
    return el, (f"{el}_{m.group('line')}" if m.group("line") else None)


def check_bin(factor: object, where: str = "bin") -> int:
    """``factor`` as an int >= 1, or an :class:`InputError` saying why not."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float, str)):
        raise InputError(f"{where}: binning factor must be a whole number >= 1, got {factor!r}")
    try:
        value = int(factor)
    except ValueError:
        raise InputError(f"{where}: binning factor must be a whole number >= 1, got {factor!r}") from None
    if value != float(factor) or value < 1:
        raise InputError(f"{where}: binning factor must be a whole number >= 1, got {factor!r}")
    return value


def has_glob(item: str | Path) -> bool:
    """True when ``item`` is a shell pattern (``*.bcf``)."""
    return any(ch in str(item) for ch in _GLOB_CHARS)


def as_paths(inputs: Sequence[str | Path] | str | Path) -> list[Path]:
    """``inputs`` as a list of paths (a single path becomes a list of one)."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    return [Path(p) for p in items]


def expand_paths(inputs: Sequence[str | Path] | str | Path, suffixes: Sequence[str],
                 what: str = "files") -> list[Path]:
    """Files with ``suffixes`` from folders, globs and file names (unsorted, unique).

    Raises
    ------
    InputError
        Nothing given, a missing file, a pattern matching nothing, or a
        folder without such files.
    """
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise InputError("no input given")
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if has_glob(item) and not p.exists():
            found = [Path(f) for f in glob.glob(str(item))]
            if not found:
                raise InputError(f"{item}: the pattern matches no file")
            files += [f for f in found if f.is_file()]
        elif p.is_dir():
            found = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes]
            if not found:
                raise InputError(f"{p}: no {what} ({', '.join(suffixes)}) in the folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return list({f.absolute(): f for f in files}.values())


def folder_contents(folder: Path) -> dict[str, list[Path]]:
    """Files of ``folder`` by kind: ``maps``, ``spectra``, ``mat``, ``angles``, ``other``."""
    out: dict[str, list[Path]] = {"maps": [], "spectra": [], "mat": [], "angles": [], "other": []}
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        suffix = f.suffix.lower()
        if element_of(f):
            out["maps"].append(f)
        elif suffix in SPECTRUM_SUFFIXES:
            out["spectra"].append(f)
        elif suffix in MAT_SUFFIXES:
            out["mat"].append(f)
        elif f.name in ANGLE_FILE_NAMES or suffix in ANGLE_SUFFIXES:
            out["angles"].append(f)
        else:
            out["other"].append(f)
    return out
