"""Finding and opening EDS spectrum-image files with HyperSpy/RosettaSciIO (lazily).

Every reader is RosettaSciIO's; this module only decides which files make a
series, which of the signals a file holds is the spectrum image (and which
the HAADF image), and turns reader failures into errors that name the file.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamagedFileError, InputError
from .angle_sources import natural_key
from .vocabulary import SPECTRUM_SUFFIXES, expand_paths

_IMAGE_TITLES = ("HAADF", "ADF", "DF", "BF")


@dataclass
class OpenedFile:
    """The EDS spectrum image of one file (lazy) and its HAADF image, if any."""

    path: Path
    eds: Any  # exspy EDSSpectrum, lazy
    haadf: np.ndarray | None
    others: list[str]

    @property
    def map_shape(self) -> tuple[int, ...]:
        return tuple(self.eds.axes_manager.navigation_shape[::-1])

    def tilt_alpha(self) -> float | None:
        value = self.eds.metadata.get_item("Acquisition_instrument.TEM.Stage.tilt_alpha")
        return None if value is None else float(value)

    def live_time(self) -> float | None:
        for mic in ("TEM", "SEM"):
            value = self.eds.metadata.get_item(f"Acquisition_instrument.{mic}.Detector.EDS.live_time")
            if value is not None:
                return float(value)
        return None

    def pixel_size_nm(self) -> tuple[float, str]:
        """Pixel size in nm and a note on how it was found."""
        ax = self.eds.axes_manager.navigation_axes[0]
        converted = ax.convert_to_units("nm", inplace=False) if ax.units else None
        if converted is None:
            return 1.0, f"no length unit on the map axes (units {ax.units!r}): 1 nm assumed"
        return abs(float(converted[0])), f"{ax.scale:g} {ax.units} per pixel"


def expand_inputs(inputs: Sequence[str | Path] | str | Path) -> list[Path]:
    """Files of a series from folders, globs and file names, in natural name order.

    Raises
    ------
    InputError
        Nothing found, a missing file, or files of more than one format.
    """
    unique = sorted(expand_paths(inputs, SPECTRUM_SUFFIXES, "spectrum images"), key=natural_key)
    kinds: dict[str, list[str]] = {}
    for f in unique:
        kinds.setdefault(f.suffix.lower(), []).append(f.name)
    if len(kinds) > 1:
        detail = "; ".join(f"{len(v)} {k} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                           for k, v in kinds.items())
        raise InputError(f"mixed file formats in the input: {detail}. A tilt series is one format: "
                         "move the other files away or list the files to use")
    return unique


#: Exceptions RosettaSciIO's readers raise on a cut or corrupted file.
_DAMAGE = (StopIteration, EOFError, struct.error, zlib.error, OSError, IndexError, UnicodeDecodeError)


def _load(path: Path, **reader_kwargs: Any) -> list:
    import hyperspy.api as hs

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = hs.load(path, lazy=True, **reader_kwargs)
    except _DAMAGE as exc:
        raise DamagedFileError(path, f"{type(exc).__name__} in the reader: {exc}") from None
    except Exception as exc:  # readers raise anything from struct.error to KeyError
        raise InputError(f"{path}: cannot read the file ({type(exc).__name__}: {exc})") from exc
    return loaded if isinstance(loaded, list) else [loaded]


def open_spectrum_image(path: str | Path, *, cutoff_kev: float | None = None,
                        navigation_dims: tuple[int, ...] = (2,)) -> OpenedFile:
    """Open ``path`` lazily and pick its EDS spectrum image and HAADF image.

    Parameters
    ----------
    cutoff_kev
        For Bruker ``.bcf``: parse channels only up to this energy, which
        keeps memory down when the wanted lines are far below the top channel.
    navigation_dims
        Accepted navigation dimensions (2: one map; 3: a stack of tilts).
    """
    path = Path(path)
    kwargs: dict[str, Any] = {}
    if path.suffix.lower() == ".bcf" and cutoff_kev is not None:
        kwargs["cutoff_at_kV"] = float(cutoff_kev)
    signals = _load(path, **kwargs)
    eds = [s for s in signals if str(s.metadata.Signal.signal_type).startswith("EDS")
           and s.axes_manager.signal_dimension == 1
           and s.axes_manager.navigation_dimension in navigation_dims]
    described = [f"{s.metadata.General.title or '?'} {type(s).__name__} "
                 f"{tuple(s.axes_manager.navigation_shape[::-1])}|{s.axes_manager.signal_shape}"
                 for s in signals]
    if not eds:
        raise InputError(f"{path}: not an EDS spectrum image (the file holds: {'; '.join(described)})")
    if len(eds) > 1:
        raise InputError(f"{path}: holds {len(eds)} EDS spectrum images; keep one per file")
    s = eds[0]
    if s.metadata.Signal.signal_type == "EDS":
        s.set_signal_type("EDS_TEM")
    nav = tuple(s.axes_manager.navigation_shape[::-1])
    haadf = None
    for img in signals:
        title = str(img.metadata.General.title or "").upper()
        if (img.axes_manager.signal_dimension == 2 and img.axes_manager.navigation_dimension == 0
                and any(t == title or t in title.split() for t in _IMAGE_TITLES)
                and tuple(img.data.shape) == nav[-2:]):
            haadf = np.asarray(img.data, dtype=np.float32)
            if title.startswith("HAADF"):
                break
    return OpenedFile(path=path, eds=s, haadf=haadf, others=described)


def describe_spectrum_image(path: str | Path) -> dict[str, Any]:
    """What the GUI shows before extraction: shape, elements, proposed and available lines.

    Returns
    -------
    dict
        ``file, map_shape, channels, energy_range, energy_units, pixel_size_nm,
        elements, proposed_lines, available_lines ({element: [(line, keV)]}),
        tilt_alpha, live_time, has_haadf``.
    """
    from ..lines import available_lines, propose_lines

    f = open_spectrum_image(path)
    ax = f.eds.axes_manager.signal_axes[0]
    return {
        "file": str(f.path),
        "map_shape": f.map_shape,
        "channels": int(ax.size),
        "energy_range": (float(ax.low_value), float(ax.high_value)),
        "energy_units": str(ax.units),
        "pixel_size_nm": f.pixel_size_nm()[0],
        "elements": list(f.eds.metadata.get_item("Sample.elements", []) or []),
        "proposed_lines": propose_lines(f.eds),
        "available_lines": available_lines(f.eds),
        "tilt_alpha": f.tilt_alpha(),
        "live_time": f.live_time(),
        "has_haadf": f.haadf is not None,
    }


def proposed_lines(path: str | Path) -> list[str]:
    """One X-ray line per element of the file's metadata (see :func:`edxtomo.lines.propose_lines`)."""
    return describe_spectrum_image(path)["proposed_lines"]
