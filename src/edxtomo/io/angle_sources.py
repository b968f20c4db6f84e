"""Where the tilt angles of a series of files come from.

Sources, in the order they are tried by :func:`resolve_angles`:

1. explicit angles from the user (an array, an angles file, or a start and a
   step): they override everything;
2. the stage tilt ``Acquisition_instrument.TEM.Stage.tilt_alpha`` of each
   file, but only when it differs between files (many instruments write 0
   for every tilt);
3. a number in the file names (``-35.bcf``, ``tilt_+10deg.emd``,
   ``TS_012_-40.0.hspy``);
4. an angles file (``angles.txt``, ``*.rawtlt``, ``*.tlt``) beside the files.

Angles are degrees. The source used is returned as a sentence so that it can
be shown in the GUI and recorded in provenance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .angles import InputError, find_angle_file, read_angles

# A number not glued to a preceding letter-digit run: "-35", "+10", "012", "40.5".
# A "-" counts as a sign unless it follows a digit ("12-40" is a range or a
# separator; its "40" is then read unsigned).
_NUMBER = re.compile(r"(?<![\d.])(?P<sign>(?<!\d)[+-])?(?P<int>\d+)(?P<frac>\.\d+)?(?P<deg>\s*(?:deg|°))?",
                     re.IGNORECASE)


def natural_key(path: str | Path) -> list:
    """Sort key that orders ``a2`` before ``a10`` (file order for angle lists)."""
    parts = re.split(r"(\d+)", Path(path).name)
    return [int(p) if p.isdigit() else p.lower() for p in parts]


def _tokens(name: str) -> list[tuple[float, bool, bool]]:
    """Numbers in a file stem: ``(value, angle_like, index_like)``.

    ``angle_like``: signed, decimal or followed by ``deg``; ``index_like``:
    an unsigned integer written with leading zeros (``012``, ``0091``).
    """
    out = []
    for m in _NUMBER.finditer(name):
        text = (m.group("sign") or "") + m.group("int") + (m.group("frac") or "")
        angle_like = bool(m.group("sign") or m.group("frac") or m.group("deg"))
        index_like = not m.group("sign") and len(m.group("int")) > 1 and m.group("int")[0] == "0"
        out.append((float(text), angle_like, index_like))
    return out


def angle_from_name(name: str | Path) -> float | None:
    """The angle a single file name states, or ``None`` (see :func:`angles_from_names`)."""
    found = angles_from_names([name])
    return None if found is None else float(found[0])


def angles_from_names(paths: Sequence[str | Path]) -> np.ndarray | None:
    """Tilt angles read from numbers in the file names, or ``None``.

    Every name is split into numbers; a number position (counted from the
    end of the name, so that prefixes of different length do not matter)
    qualifies when it exists in every name, lies strictly within ±90, and
    is not the same in all files. Zero-padded unsigned integers (``012``) are
    acquisition indices, not angles. Among the qualifying positions, one
    whose numbers look like angles (a sign, a decimal point, ``deg``) wins,
    and then the last one: ``TS_012_-40.0.hspy`` gives -40.

    With a single file there is nothing to compare, so only an angle-like
    number (``-35.bcf``, ``tilt_+10deg.emd``) or a lone plain number counts.
    """
    stems = [Path(p).stem for p in paths]
    tokens = [_tokens(s) for s in stems]
    if not tokens or any(not t for t in tokens):
        return None
    depth = min(len(t) for t in tokens)
    candidates = []
    for k in range(1, depth + 1):
        column = [t[-k] for t in tokens]
        values = np.array([c[0] for c in column])
        if np.any(np.abs(values) >= 90) or any(c[2] for c in column):
            continue
        # Constant numbers (a session id) are no angles; repeated ones may be,
        # and are reported as two files at one angle by the caller.
        angle_like = any(c[1] for c in column)
        if len(paths) > 1 and np.unique(values).size == 1 and not angle_like:
            continue
        if len(paths) == 1 and not angle_like and len(tokens[0]) > 1:
            continue
        candidates.append((angle_like, -k, values))
    if not candidates:
        return None
    # Prefer angle-like numbers, then the last position in the name.
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return candidates[0][2].astype(np.float64)


def angles_from_start_step(n: int, start: float, step: float) -> np.ndarray:
    """``n`` angles ``start, start + step, ...`` in degrees."""
    if step == 0:
        raise InputError("angle step must not be 0")
    return start + step * np.arange(n, dtype=np.float64)


def metadata_angles_usable(values: Sequence[float | None]) -> bool:
    """True when per-file stage tilts exist, are finite and all differ."""
    if len(values) < 2 or any(v is None for v in values):
        return False
    arr = np.asarray(values, dtype=float)
    return bool(np.all(np.isfinite(arr)) and np.unique(arr).size == arr.size)


def resolve_angles(
    paths: Sequence[str | Path],
    *,
    metadata: Sequence[float | None] | None = None,
    angles: Sequence[float] | None = None,
    angles_file: str | Path | None = None,
    angle_start: float | None = None,
    angle_step: float | None = None,
    n: int | None = None,
) -> tuple[np.ndarray, str]:
    """One angle per file (or per tilt of a stack) and a sentence saying where it came from.

    Parameters
    ----------
    paths
        The files, in the order the returned angles refer to.
    metadata
        Stage tilt read from each file's metadata (``None`` where missing).
    angles, angles_file, angle_start, angle_step
        Explicit angles from the user; any of them overrides what the files say.
    n
        Number of tilts when it differs from ``len(paths)`` (a stack in one file).

    Raises
    ------
    InputError
        When no source gives one angle per tilt, or the counts disagree.
    """
    n = len(paths) if n is None else int(n)
    where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files in {Path(paths[0]).parent}"

    def check(values: np.ndarray, source: str) -> tuple[np.ndarray, str]:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size != n:
            raise InputError(f"{where}: {source} gives {values.size} angles for {n} tilts")
        return values, source

    if angles is not None:
        return check(np.asarray(angles, dtype=float), "angles given by the user")
    if angles_file is not None:
        return check(read_angles(angles_file), f"angles file {angles_file}")
    if angle_start is not None or angle_step is not None:
        if angle_start is None or angle_step is None:
            raise InputError(f"{where}: give both an angle start and an angle step")
        return check(angles_from_start_step(n, angle_start, angle_step),
                     f"start {angle_start:g} deg and step {angle_step:g} deg given by the user")
    if metadata is not None and n == len(paths) and metadata_angles_usable(metadata):
        return check(np.asarray(metadata, dtype=float),
                     "stage tilt (tilt_alpha) in the file metadata")
    if n == len(paths) and len(paths) > 1:
        named = angles_from_names(paths)
        if named is not None:
            note = ""
            if metadata is not None and all(v is not None for v in metadata):
                note = f" (the metadata tilt_alpha is {_describe(metadata)} for every file)"
            return check(named, "numbers in the file names" + note)
    folders = {Path(p).parent for p in paths}
    for folder in sorted(folders):
        afile = find_angle_file(folder) if folder.is_dir() else None
        if afile is not None:
            return check(read_angles(afile), f"angles file {afile} beside the data")
    if n == 1 and len(paths) == 1 and (single := angle_from_name(paths[0])) is not None:
        return check(np.array([single]), "number in the file name")
    hint = ("the metadata tilt_alpha is the same for every file, " if metadata is not None
            and all(v is not None for v in metadata) and len(metadata) > 1 else "")
    raise InputError(
        f"{where}: cannot tell the tilt angles ({hint}no angle in the file names, no "
        "angles.txt/.rawtlt/.tlt beside them). Give an angles file (one angle in degrees per "
        "line, in the natural order of the file names), or a start angle and a step."
    )


def _describe(values: Sequence[float | None]) -> str:
    uniq = sorted({float(v) for v in values if v is not None})
    return f"{uniq[0]:g}" if len(uniq) == 1 else "not distinct"
