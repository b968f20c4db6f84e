"""Reading tilt series and writing results.

:func:`read_series` accepts what a user has: a folder of element-map stacks
(``<Element>.tif`` + ``angles.txt``), or spectrum images (see
:mod:`edxtomo.io.spectra`).
"""

from __future__ import annotations

from ..errors import DamagedFileError, InputError, OutputError
from .angles import read_angles, write_angles
from .maps import is_map_folder, read_map_folder, write_map_folder
from .options import ReadOptions
from .outdir import OutputLock, check_output_folder, replace_folder
from .series import read_series
from .volumes import SIDECAR_NAME, read_volume, write_volume, write_volumes

__all__ = [
    "SIDECAR_NAME",
    "DamagedFileError",
    "InputError",
    "OutputError",
    "OutputLock",
    "ReadOptions",
    "check_output_folder",
    "replace_folder",
    "is_map_folder",
    "read_angles",
    "read_map_folder",
    "read_series",
    "read_volume",
    "write_angles",
    "write_map_folder",
    "write_volume",
    "write_volumes",
]
