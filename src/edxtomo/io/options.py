"""Read options as one typed object: the CLI, the Load dock, the reader and the sidecar share it.

The sidecar stores :meth:`ReadOptions.to_dict`; ``--config`` and the batch
manifest read it back with :meth:`ReadOptions.from_dict`, which checks every
value and reports unknown keys. ``angles_file`` is a file of angles and
``angles`` a list of values: the two are never confused (older sidecars
that stored a file under ``"angles"`` are read as ``angles_file``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import InputError
from .vocabulary import check_bin

Normalise = Literal["none", "total", "live_time", "counts", "gains"]
#: ``none``: no per-tilt normalisation; ``total``/``live_time``: per spectrum image (the
#: reader); ``counts``/``gains``: per-tilt gains estimated by the full alignment.
NORMALISE = ("none", "total", "live_time", "counts", "gains")
_ALIGNMENT_GAINS = ("counts", "gains")
_READER_NORMALISE = ("total", "live_time")
#: ``normalise`` when none is given and the full alignment runs (``tilt_axis`` or
#: ``refine`` set): on the real IDP series it lowered the left-out error of SIRT and
#: TV (docs/real-data.md). Without the full alignment nothing is normalised unless asked.
ALIGNMENT_DEFAULT_NORMALISE = "counts"
ALIGN_REFERENCES = ("auto", "haadf", "maps")


@dataclass(frozen=True)
class ReadOptions:
    """How to turn files into a tilt series.

    Parameters
    ----------
    lines
        X-ray lines (``"Fe_Ka"``) or elements to extract; ``None``: from the files.
    bin
        Count-preserving binning factor (>= 1).
    align
        Translational alignment and tilt-axis centring.
    angles_file
        A file of tilt angles (degrees, one per line).
    angles
        Tilt angles in degrees given as values.
    angle_start, angle_step
        Angles as a start and a step (degrees), both or neither.
    background
        Subtract exspy's background windows from each line.
    normalise
        Per-tilt normalisation: ``"none"``; ``"total"`` or ``"live_time"``
        (from the spectrum images, by the reader); ``"counts"`` or
        ``"gains"`` (estimated by the full alignment, which they imply).
        Not given (``None``): ``"counts"`` when the full alignment runs
        (``tilt_axis`` or ``refine`` given; :data:`ALIGNMENT_DEFAULT_NORMALISE`),
        and no normalisation otherwise (also with the translation-only
        ``align``). The alignment default is filled in on construction, so
        the options (and the sidecar written from them) say what was done.
    axes
        Axis letters of .mat / stack files (``"YXC"``).
    skip_bad
        Go on without tilts whose files are damaged; the skipped files are
        recorded in the provenance.
    align_reference
        ``"maps"`` (the summed element maps, the default: on the real
        series of docs/real-data.md shifts found on the files' HAADF images
        predicted left-out element maps worse at every tilt), ``"haadf"``, or
        ``"auto"`` (HAADF when every file has one).
    tilt_axis, refine
        Alignment: in-plane tilt-axis angle (degrees or ``"auto"``) and
        projection-matching rounds; either implies alignment.
    extra
        Further options (alignment settings added by other modules), kept
        as given and passed to the reader by name.
    """

    lines: tuple[str, ...] | None = None
    bin: int = 1
    align: bool = False
    angles_file: str | None = None
    angles: tuple[float, ...] | None = None
    angle_start: float | None = None
    angle_step: float | None = None
    background: bool = False
    normalise: Normalise | None = None
    axes: str | None = None
    skip_bad: bool = False
    align_reference: Literal["auto", "haadf", "maps"] = "maps"
    tilt_axis: str | float | None = None
    refine: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "bin", check_bin(self.bin, "read option 'bin'"))
        if self.lines is not None:
            if isinstance(self.lines, str) or not all(isinstance(x, str) and x for x in self.lines):
                raise InputError(f"read option 'lines': a list of line or element names, got {self.lines!r}")
            set_(self, "lines", tuple(self.lines) or None)
        if self.angles is not None:
            set_(self, "angles", tuple(_number(a, "angles") for a in self.angles))
        for name in ("angle_start", "angle_step"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _number(value, name))
        if (self.angle_start is None) != (self.angle_step is None):
            raise InputError("read options: give both angle_start and angle_step, or neither")
        if self.angle_step == 0:
            raise InputError("read option 'angle_step': must not be 0")
        for name in ("align", "background", "skip_bad"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"read option {name!r}: true or false, got {getattr(self, name)!r}")
        if self.normalise is not None and self.normalise not in NORMALISE:
            raise InputError(f"read option 'normalise': one of {', '.join(NORMALISE)}, got {self.normalise!r}")
        if self.align_reference not in ALIGN_REFERENCES:
            raise InputError(f"read option 'align_reference': one of {', '.join(ALIGN_REFERENCES)}, "
                             f"got {self.align_reference!r}")
        for name in ("angles_file", "axes"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                set_(self, name, str(value))
        if self.refine is not None and (isinstance(self.refine, bool) or not isinstance(self.refine, int)
                                        or self.refine < 0):
            raise InputError(f"read option 'refine': a whole number >= 0, got {self.refine!r}")
        if self.tilt_axis is not None and not (self.tilt_axis == "auto" or _is_number(self.tilt_axis)):
            raise InputError(f"read option 'tilt_axis': 'auto' or an angle in degrees, got {self.tilt_axis!r}")
        given = [n for n in ("angles_file", "angles", "angle_start") if getattr(self, n) is not None]
        if len(given) > 1:
            raise InputError(f"read options: {' and '.join(given)} both give the tilt angles; keep one")
        if self.normalise is None and self.full_alignment:
            # Resolved here, so sidecars record what was done and replay it even if the
            # default changes again (see sidecar_read_options for the ones written before).
            set_(self, "normalise", ALIGNMENT_DEFAULT_NORMALISE)
        set_(self, "extra", dict(self.extra))

    @property
    def full_alignment(self) -> bool:
        """Whether these options run :func:`edxtomo.alignment.align_tilt_series` (not only ``align``)."""
        return self.tilt_axis is not None or self.refine is not None or self.normalise in _ALIGNMENT_GAINS

    # ------------------------------------------------------------------ dicts
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "read options") -> ReadOptions:
        """Options from a sidecar / manifest / CLI dict; ``None`` values mean "default".

        Raises
        ------
        InputError
            Unknown keys (listing the known ones) or values of the wrong type.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a table of read options, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if v is not None}
        legacy = values.get("angles")
        if isinstance(legacy, str):  # older sidecars and the Load dock: a file under "angles"
            values["angles_file"] = values.pop("angles")
        extra = dict(values.pop("extra", {}) or {})
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{where}: unknown read option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known - {'extra'}))})")
        try:
            return cls(**values, extra=extra)
        except TypeError as exc:
            raise InputError(f"{where}: {exc}") from None
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples); :meth:`from_dict` reads it back."""
        out = asdict(self)
        for key in ("lines", "angles"):
            if out[key] is not None:
                out[key] = list(out[key])
        out["extra"] = dict(self.extra)
        return out

    def replace(self, **changes: Any) -> ReadOptions:
        """A copy with ``changes`` (validated)."""
        return replace(self, **changes)

    def reader_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`edxtomo.io.read_series` for these options."""
        kw: dict[str, Any] = {
            "lines": list(self.lines) if self.lines else None, "bin_factor": self.bin,
            "align": self.align, "angles_file": self.angles_file,
            "angles": list(self.angles) if self.angles is not None else None,
            "angle_start": self.angle_start, "angle_step": self.angle_step,
            "background": self.background, "normalise": self.normalise, "axes": self.axes,
            "skip_bad": self.skip_bad, "align_reference": self.align_reference,
        }
        # The reader normalises by total counts or live time only; per-tilt gains belong to
        # the alignment, which gets an explicit "none" when the reader did it or none was asked.
        kw["normalise"] = self.normalise if self.normalise in _READER_NORMALISE else None
        if self.full_alignment:
            kw["tilt_gains"] = self.normalise if self.normalise in _ALIGNMENT_GAINS else "none"
        kw.update({k: getattr(self, k) for k in ("tilt_axis", "refine") if getattr(self, k) is not None})
        kw.update(self.extra)
        return kw


def sidecar_read_options(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run sidecar's ``read_options`` as they were meant when the run was made.

    Sidecars written before ``normalise`` had a ``"none"`` value store no
    ``normalise`` (``null``) for a full alignment without per-tilt gains.
    Sidecars written since always store the value (:class:`ReadOptions`
    resolves the default), so ``null`` beside ``tilt_axis`` or ``refine``
    can only be such an older run: it is replayed as ``"none"``, as it ran,
    not with today's default. Likewise an aligned run whose sidecar names no
    ``align_reference`` ran with ``"auto"``, the default then.
    """
    out = dict(data or {})
    full = out.get("tilt_axis") is not None or out.get("refine") is not None
    if full and out.get("normalise") is None:
        out["normalise"] = "none"
    # The reference became "maps" by default; a sidecar that names none ran with "auto".
    if (full or out.get("align")) and "align_reference" not in out:
        out["align_reference"] = "auto"
    return out


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"read option {name!r}: a number of degrees, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"read option {name!r}: must be finite, got {value!r}")
    return float(value)
