"""MATLAB ``.mat`` element-map tilt series (read with :func:`scipy.io.loadmat`).

Two layouts: one file per tilt holding ``(ny, nx, n_channels)`` (as in the
published quantum-dot data of Han et al. 2021, variable ``input``), or one
file holding the whole stack. ``.mat`` files record neither channel names nor
angles: give the element names in channel order, and the angles (a file, or a
start and a step) unless an angles file lies beside the data.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..tiltseries import TiltSeries
from .angle_sources import natural_key, resolve_angles
from .stacks import channel_names, infer_axes, to_acyx


def mat_files(inputs: Sequence[str | Path] | str | Path) -> list[Path]:
    """``.mat`` files from folders, globs and names, in natural name order."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if any(ch in str(item) for ch in "*?["):
            files += [Path(f) for f in glob.glob(str(item)) if f.lower().endswith(".mat")]
        elif p.is_dir():
            files += [f for f in p.iterdir() if f.suffix.lower() == ".mat"]
        elif p.suffix.lower() == ".mat" and p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: not a .mat file or a folder of them")
    if not files:
        raise InputError(f"{', '.join(map(str, items))}: no .mat files")
    return sorted(set(files), key=natural_key)


def load_mat_array(path: str | Path, variable: str | None = None) -> tuple[np.ndarray, str]:
    """The numeric array of a ``.mat`` file: ``variable``, or the only array with ``ndim >= 2``."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        content = loadmat(path)
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise InputError(f"{path}: MATLAB v7.3 (HDF5) file; save it with -v7 or read it with h5py "
                         "and write a TIFF stack") from exc
    except Exception as exc:
        raise InputError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
    arrays = {k: v for k, v in content.items() if not k.startswith("__")
              and isinstance(v, np.ndarray) and v.ndim >= 2 and np.issubdtype(v.dtype, np.number)}
    if variable is not None:
        if variable not in arrays:
            raise InputError(f"{path}: no numeric array {variable!r} (has {', '.join(arrays) or 'none'})")
        return arrays[variable], variable
    if len(arrays) != 1:
        raise InputError(f"{path}: {len(arrays)} numeric arrays ({', '.join(arrays) or 'none'}); "
                         "name the one to read")
    name = next(iter(arrays))
    return arrays[name], name


def read_mat_series(
    inputs: Sequence[str | Path] | str | Path,
    *,
    elements: Sequence[str] | None = None,
    axes: str | None = None,
    variable: str | None = None,
    angles: Sequence[float] | None = None,
    angles_file: str | Path | None = None,
    angle_start: float | None = None,
    angle_step: float | None = None,
    pixel_size: float | None = None,
) -> TiltSeries:
    """Read ``.mat`` element maps into a :class:`TiltSeries`.

    Parameters
    ----------
    inputs
        A folder, a glob or files: one file per tilt, or one file with the stack.
    elements
        Channel names in order (``["Se", "S", "Zn"]``); default ``ch0, ch1, ...``.
    axes
        Axis letters of each stored array (``"YXC"`` per tilt, ``"ACYX"`` for
        a stack; see :mod:`edxtomo.io.stacks`); default inferred from the shape.
    variable
        Name of the array in the files when there is more than one.
    angles, angles_file, angle_start, angle_step
        Tilt angles in degrees; files are taken in natural name order.
    """
    files = mat_files(inputs)
    per_tilt = len(files) > 1
    arrays, var = [], None
    for f in files:
        data, var = load_mat_array(f, variable)
        if arrays and data.shape != arrays[0].shape:
            raise InputError(f"{f}: array {var} has shape {data.shape} but {files[0].name} has "
                             f"{arrays[0].shape}; all tilts must have one shape")
        arrays.append(data)
    how_axes = "given by the user" if axes else "inferred from the shape"
    if per_tilt:
        axes = axes or infer_axes(arrays[0].shape, has_angle_axis=False)
        acyx = np.concatenate([to_acyx(a, axes) for a in arrays])
    else:
        axes = axes or infer_axes(arrays[0].shape)
        acyx = to_acyx(arrays[0], axes)
    els, lines, how_names = channel_names(acyx.shape[1], elements, None, str(files[0].parent))
    values, source = resolve_angles(files, n=acyx.shape[0], angles=angles, angles_file=angles_file,
                                    angle_start=angle_start, angle_step=angle_step)
    prov = {"read": {"kind": "MATLAB element maps", "files": [str(f) for f in files],
                     "variable": var, "axes": axes, "axes_source": how_axes,
                     "channels": els, "channel_names": how_names, "angles_source": source,
                     "angle_order": "natural order of the file names" if per_tilt else "stack order"}}
    return TiltSeries(maps={el: acyx[:, i] for i, el in enumerate(els)}, angles=values,
                      pixel_size=pixel_size or 1.0, lines=lines, provenance=prov,
                      source=str(files[0].parent if per_tilt else files[0]))
