"""Spectrum-image tilt series -> element line maps in a :class:`TiltSeries`.

Files are opened lazily and one at a time, so a series of large spectrum
images never has to fit in memory: of each file only the line maps (and the
HAADF image, for alignment) are kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DamagedFileError, InputError
from ..lines import LineError, LineWindow, extract_line_maps, line_windows, resolve_lines
from ..tiltseries import TiltSeries
from .angle_sources import resolve_angles
from .damage import check_container
from .isolated import IsolatedReader
from .spectrum_files import OpenedFile, expand_inputs, open_spectrum_image

Progress = Callable[[int, int, str], None]
Normalise = Literal["total", "live_time"] | None
#: Energy above the highest window kept when a Bruker file is parsed (keV).
_CUTOFF_MARGIN_KEV = 0.5


def _tilts(files: list[Path]) -> Iterator[tuple[str, Path, OpenedFile | None, Any, Any]]:
    """Yield ``(label, path, opened, eds, haadf)`` per tilt; a single file may hold a stack."""
    if len(files) == 1:
        f = open_spectrum_image(files[0], navigation_dims=(2, 3))
        if f.eds.axes_manager.navigation_dimension == 3:
            n = f.eds.axes_manager.navigation_shape[2]
            for i in range(n):
                yield f"{files[0].name}[{i}]", files[0], f, f.eds.inav[:, :, i], None
            return
        yield files[0].name, files[0], f, f.eds, f.haadf
        return
    for path in files:
        yield path.name, path, None, None, None


def _stack_axis_angles(f: OpenedFile) -> np.ndarray | None:
    ax = f.eds.axes_manager.navigation_axes[2]
    if str(ax.units).lower() in ("deg", "degree", "degrees", "°"):
        return np.asarray(ax.axis, dtype=np.float64)
    return None


def detect_angles(inputs: Sequence[str | Path] | str | Path, **user: Any) -> tuple[np.ndarray, str]:
    """Tilt angles of spectrum-image files, in natural file-name order, and their source.

    ``user`` may hold ``angles``, ``angles_file``, ``angle_start``,
    ``angle_step`` (see :func:`edxtomo.io.angle_sources.resolve_angles`).
    Each file's metadata is read (lazily) for its stage tilt.
    """
    files = expand_inputs(inputs)
    if len(files) == 1:
        f = open_spectrum_image(files[0], navigation_dims=(2, 3))
        if f.eds.axes_manager.navigation_dimension == 3:
            n = f.eds.axes_manager.navigation_shape[2]
            axis = _stack_axis_angles(f)
            if axis is not None and not any(v is not None for v in user.values()):
                return axis, f"tilt axis of the stack in {files[0]}"
            return resolve_angles(files, n=n, **user)
        return resolve_angles(files, metadata=[f.tilt_alpha()], **user)
    tilts = [open_spectrum_image(p).tilt_alpha() for p in files]
    return resolve_angles(files, metadata=tilts, **user)


def _read_tilt(path: Path, lines: Sequence[str] | None, chosen: list[str] | None,
               integration_windows: float | Mapping[str, Sequence[float]],
               background: bool | Mapping[str, Sequence[float]], normalise: Normalise,
               cutoff: float | None) -> tuple[dict[str, Any], list[str], list[LineWindow], float | None]:
    """Open one spectrum image and extract its line maps (run in a child process)."""
    opened = open_spectrum_image(path, cutoff_kev=cutoff)
    eds, haadf = opened.eds, opened.haadf
    try:
        first = chosen is None
        if chosen is None:
            chosen = resolve_lines(eds, lines)
        windows = line_windows(eds, chosen, integration_windows=integration_windows,
                               background=background)
    except LineError as exc:
        raise InputError(f"{path}: {exc}") from exc
    if first:
        _warn_unlisted(path, eds, chosen)
    if normalise != "total" and eds.axes_manager.signal_axes[0].units == "keV":
        ends = [max(w.integration[1], *(w.background or (0,))) for w in windows]
        cutoff = max(ends) + _CUTOFF_MARGIN_KEV
    maps, total, clipped = extract_line_maps(eds, windows, with_total=normalise == "total")
    live = opened.live_time()
    if normalise == "live_time" and not live:
        raise InputError(f"{path}: no live time in the metadata; normalise by 'total' counts instead")
    row = {"file": path.name, "path": path, "shape": tuple(eds.axes_manager.navigation_shape[::-1]),
           "maps": maps, "total": total, "live_time": live, "tilt_alpha": opened.tilt_alpha(),
           "haadf": haadf, "pixel": opened.pixel_size_nm(), "clipped": clipped,
           "windows": [w.as_dict() for w in windows]}
    return row, chosen, windows, cutoff


def _warn_unlisted(path: Path, eds: Any, chosen: Sequence[str]) -> None:
    listed = set(eds.metadata.get_item("Sample.elements", []) or [])
    unlisted = [ln for ln in chosen if listed and ln.split("_")[0] not in listed]
    if unlisted:
        warnings.warn(f"{path}: the file does not list the element(s) of {', '.join(unlisted)} "
                      f"(it lists {', '.join(sorted(listed))}); their maps may be background only",
                      UserWarning, stacklevel=2)


def load_spectrum_series(
    inputs: Sequence[str | Path] | str | Path,
    *,
    angles_file: str | Path | None = None,
    angles: Sequence[float] | None = None,
    angle_start: float | None = None,
    angle_step: float | None = None,
    lines: Sequence[str] | None = None,
    integration_windows: float | Mapping[str, Sequence[float]] = 2.0,
    background: bool | Mapping[str, Sequence[float]] = False,
    normalise: Normalise = None,
    bin_factor: int = 1,
    progress: Progress | None = None,
    skip_bad: bool = False,
    isolate: bool = True,
) -> tuple[TiltSeries, np.ndarray | None]:
    """Like :func:`read_spectrum_series`, also returning the HAADF stack (or ``None``).

    The HAADF stack ``(n_angles, ny, nx)`` is sorted and binned like the maps;
    it is ``None`` unless every file holds a HAADF image. Every file's
    container is checked first (:func:`edxtomo.io.damage.check_container`)
    and, with ``isolate``, each file of a multi-file series is parsed in a
    child process so that a reader crash is reported as a damaged file.
    With ``skip_bad``, damaged files are left out and listed in
    ``provenance["read"]["skipped"]``.
    """
    files = expand_inputs(inputs)
    if len(files) == 1:
        check_container(files[0])
        return _load_single_file(files, lines=lines, integration_windows=integration_windows,
                                 background=background, normalise=normalise, bin_factor=bin_factor,
                                 progress=progress, user=dict(angles_file=angles_file, angles=angles,
                                                              angle_start=angle_start,
                                                              angle_step=angle_step))
    user = dict(angles_file=angles_file, angles=angles, angle_start=angle_start, angle_step=angle_step)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    chosen: list[str] | None = None
    windows0: list[LineWindow] | None = None
    cutoff = None
    reader = IsolatedReader() if isolate else None
    try:
        for k, path in enumerate(files):
            args = (path, lines, chosen, integration_windows, background, normalise, cutoff)
            try:
                check_container(path)
                row, chosen, windows, cutoff = (reader.call(path, _read_tilt, *args) if reader
                                                else _read_tilt(*args))
            except DamagedFileError as exc:
                if not skip_bad:
                    raise
                skipped.append({"file": str(path), "reason": exc.detail})
                warnings.warn(f"skipped {exc}", UserWarning, stacklevel=2)
                continue
            if rows and row["shape"] != rows[0]["shape"]:
                shape, first = row["shape"], rows[0]
                raise InputError(f"{path}: maps are {shape[0]}x{shape[1]} px but {first['file']} has "
                                 f"{first['shape'][0]}x{first['shape'][1]}; all tilts must have one shape")
            windows0 = windows0 or windows
            rows.append(row)
            if progress is not None:
                progress(k + 1, len(files), f"{path.name}: {', '.join(w.line for w in windows)}")
    finally:
        if reader is not None:
            reader.close()
    if len(rows) < 2:
        raise InputError(f"{files[0].parent}: {len(rows)} readable tilt(s) of {len(files)} files "
                         f"({len(skipped)} damaged); a tilt series needs at least 2")
    assert chosen is not None and windows0 is not None
    if skipped:
        # Explicit angles were given for every file: keep those of the files read.
        user = _drop_skipped_angles(user, files, skipped)
    return _assemble([r["path"] for r in rows], rows, chosen, windows0, None, user,
                     normalise=normalise, bin_factor=bin_factor,
                     settings={"integration_windows": integration_windows,
                               "background": bool(background), "skipped": skipped})


def _drop_skipped_angles(user: dict[str, Any], files: list[Path],
                         skipped: list[dict[str, str]]) -> dict[str, Any]:
    from .angles import read_angles

    values = user.get("angles")
    if user.get("angles_file") is not None:
        values = read_angles(user["angles_file"])
    elif user.get("angle_start") is not None:
        from .angle_sources import angles_from_start_step

        values = angles_from_start_step(len(files), user["angle_start"], user["angle_step"])
    if values is None:
        return user  # angles from metadata or names: per file, so nothing to drop
    if len(values) != len(files):
        raise InputError(f"{len(values)} angles given for {len(files)} files")
    bad = {s["file"] for s in skipped}
    kept = [float(a) for a, f in zip(values, files, strict=True) if str(f) not in bad]
    return {"angles": kept, "angles_file": None, "angle_start": None, "angle_step": None}


def _load_single_file(files: list[Path], *, lines: Sequence[str] | None,
                      integration_windows: float | Mapping[str, Sequence[float]],
                      background: bool | Mapping[str, Sequence[float]], normalise: Normalise,
                      bin_factor: int, progress: Progress | None, user: dict[str, Any],
                      ) -> tuple[TiltSeries, np.ndarray | None]:
    """One file: a stack of spectrum images (one per tilt), or a single tilt (refused later)."""
    rows: list[dict[str, Any]] = []
    chosen: list[str] | None = None
    windows0: list[LineWindow] | None = None
    stack_file: OpenedFile | None = None
    n_total = 1
    for k, (label, path, opened, eds, haadf) in enumerate(_tilts(files)):
        if eds is not opened.eds:
            stack_file, n_total = opened, opened.eds.axes_manager.navigation_shape[2]
        try:
            if chosen is None:
                chosen = resolve_lines(eds, lines)
                _warn_unlisted(path, eds, chosen)
            windows = line_windows(eds, chosen, integration_windows=integration_windows,
                                   background=background)
        except LineError as exc:
            raise InputError(f"{path}: {exc}") from exc
        windows0 = windows0 or windows
        maps, total, clipped = extract_line_maps(eds, windows, with_total=normalise == "total")
        live = opened.live_time()
        if normalise == "live_time" and not live:
            raise InputError(f"{path}: no live time in the metadata; normalise by 'total' counts instead")
        rows.append({"file": label, "path": path, "shape": tuple(eds.axes_manager.navigation_shape[::-1]),
                     "maps": maps, "total": total, "live_time": live, "tilt_alpha": opened.tilt_alpha(),
                     "haadf": haadf, "pixel": opened.pixel_size_nm(), "clipped": clipped,
                     "windows": [w.as_dict() for w in windows]})
        if progress is not None:
            progress(k + 1, n_total, f"{label}: {', '.join(w.line for w in windows)}")
    assert chosen is not None and windows0 is not None
    return _assemble(files, rows, chosen, windows0, stack_file, user,
                     normalise=normalise, bin_factor=bin_factor,
                     settings={"integration_windows": integration_windows,
                               "background": bool(background), "skipped": []})


def _assemble(files: list[Path], rows: list[dict[str, Any]], chosen: list[str],
              windows0: list[LineWindow], stack_file: OpenedFile | None, user: dict[str, Any], *,
              normalise: Normalise, bin_factor: int, settings: dict[str, Any],
              ) -> tuple[TiltSeries, np.ndarray | None]:
    explicit = any(v is not None for v in user.values())
    if stack_file is not None and not explicit and (ax := _stack_axis_angles(stack_file)) is not None:
        values, source = ax, f"tilt axis of the stack in {files[0]}"
    else:
        values, source = resolve_angles(files, metadata=None if stack_file else
                                        [r["tilt_alpha"] for r in rows], n=len(rows), **user)
    labels = [r["file"] for r in rows]
    seen: dict[float, str] = {}
    for a, label in zip(values, labels, strict=True):
        if a in seen:
            raise InputError(f"{seen[a]} and {label} are both at {a:g} deg ({source}); "
                             "remove one or give the angles explicitly")
        seen[float(a)] = label
    order = np.argsort(values, kind="stable")
    rows = [rows[i] for i in order]
    values = np.asarray(values)[order]
    elements = [w.element for w in windows0]
    maps = {el: np.stack([r["maps"][el] for r in rows]) for el in elements}
    scale = None
    if normalise is not None:
        key = "total" if normalise == "total" else "live_time"
        per_tilt = np.array([r[key] for r in rows], dtype=np.float64)
        if np.any(per_tilt <= 0):
            raise InputError(f"cannot normalise by {normalise}: a tilt has {normalise} 0")
        # Rescale to the mean, so values stay on the scale of counts.
        scale = per_tilt.mean() / per_tilt
        maps = {el: (m * scale[:, None, None].astype(np.float32)) for el, m in maps.items()}
    sizes = [r["pixel"][0] for r in rows]
    pixel_size = float(np.median(sizes))
    if max(sizes) > 1.01 * min(sizes):
        raise InputError(f"pixel sizes differ between files ({min(sizes):g}..{max(sizes):g} nm); "
                         "a tilt series needs one magnification")
    provenance = {"read": {
        "kind": "spectrum images", "reader": "hyperspy/rosettasciio (lazy)",
        "files": [str(r["path"]) for r in rows] if stack_file is None else [str(files[0])],
        "tilts": [r["file"] for r in rows],
        "angles_source": source, "lines": chosen,
        "windows": [w.as_dict() for w in windows0],
        "windows_per_file_differ": any(r["windows"] != rows[0]["windows"] for r in rows),
        "energy_units": "keV", **settings,
        "normalise": normalise, "normalise_scale": None if scale is None else scale.tolist(),
        "clipped_negative_pixels": int(sum(r["clipped"] for r in rows)),
        "pixel_size": rows[0]["pixel"][1],
        "tilt_alpha_metadata": [r["tilt_alpha"] for r in rows],
    }}
    series = TiltSeries(maps=maps, angles=values, pixel_size=pixel_size,
                        lines={w.element: w.line for w in windows0}, provenance=provenance,
                        source=str(files[0].parent if len(files) > 1 else files[0]))
    haadf = None
    if all(r["haadf"] is not None for r in rows):
        haadf = np.stack([r["haadf"] for r in rows]).astype(np.float32)
    if bin_factor != 1:
        series = series.bin(bin_factor)
        if haadf is not None:
            haadf = _bin(haadf, bin_factor)
    return series, haadf


def _bin(stack: np.ndarray, f: int) -> np.ndarray:
    n, ny, nx = stack.shape
    by, bx = ny // f, nx // f
    return stack[:, : by * f, : bx * f].reshape(n, by, f, bx, f).sum(axis=(2, 4)).astype(np.float32)


def read_spectrum_series(inputs: Sequence[str | Path] | str | Path, **kwargs: Any) -> TiltSeries:
    """Read a tilt series of EDS spectrum images into element line maps.

    Parameters
    ----------
    inputs
        A folder, a glob, a list of files (one spectrum image per tilt; any
        format RosettaSciIO reads: .bcf, .emd, .hspy, .zspy, .rpl, .pts,
        .spd, ...), or one file holding a stack of spectrum images.
    angles_file, angles, angle_start, angle_step
        Explicit tilt angles (degrees), overriding metadata and file names;
        see :func:`edxtomo.io.angle_sources.resolve_angles` for the order.
    lines
        X-ray lines (``"Fe_Ka"``) or elements (``"Fe"``); default: one line
        per element of the metadata.
    integration_windows
        Window width in units of the line FWHM (exspy's default 2), or
        explicit ``{line: (low, high)}`` energies.
    background
        Subtract exspy's background-window estimate (``True``) or explicit
        ``{line: (l0, l1, r0, r1)}`` windows; negatives are clipped at zero.
    normalise
        ``None``, ``"total"`` (total counts of each spectrum image) or
        ``"live_time"``; maps are rescaled to the series mean.
    bin_factor
        Count-preserving binning of the maps.
    progress
        ``progress(done, total, message)`` after each file.

    Returns
    -------
    TiltSeries
        Maps sorted by angle; provenance ``["read"]`` records files, lines,
        windows and the angle source.
    """
    return load_spectrum_series(inputs, **kwargs)[0]
