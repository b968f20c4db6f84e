"""Full alignment of a real tilt series: axis, shifts, intensity, bad tilts.

Steps (each recorded in ``provenance["alignment"]`` and ``alignment.json``):

1. Translation: phase correlation of neighbouring tilts
   (:func:`edxtomo.align.estimate_shifts`) and centring of the tilt axis on
   the object's centre of mass.
2. Tilt-axis direction: a given angle in degrees (default 0, no rotation),
   or ``tilt_axis="auto"`` to estimate it from the parallax
   (:mod:`.tilt_axis`).
3. Projection matching (``refine`` rounds, :mod:`.projection_matching`).
4. Per-tilt intensity (``normalise``, :mod:`.tilt_intensity`).
5. Per-tilt consistency scores and flagged bad tilts (:mod:`.tilt_scores`).

All elements' maps are rotated and shifted alike, once (one interpolation).
The reference stack is the sum of the element maps, or the HAADF images
when given.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..align import estimate_shifts, tilt_axis_offsets
from ..tiltseries import TiltSeries, TiltSeriesError
from .projection_matching import evaluate, refine_shifts
from .tilt_axis import axis_spread, estimate_tilt_axis
from .tilt_intensity import NORMALISE_CHOICES, gains_from_counts, gains_from_predictions
from .tilt_scores import flag_bad_tilts
from .transforms import correct_stack, reframe_shifts, valid_masks

ALIGNMENT_FILE = "alignment.json"


#: Jackknife spread of the axis estimate above which it is reported as not determined by the
#: data. Synthetic series with a known axis: 0.6-1.5 deg (errors 0.01-0.9 deg); the real IDP
#: series: its leave-one-tilt-out estimates span -4.8..+12 deg.
AXIS_SPREAD_WARN_DEG = 2.0


@dataclass
class AlignmentSettings:
    """What :func:`align_tilt_series` does.

    Attributes
    ----------
    tilt_axis
        An angle in degrees (anticlockwise from the image y axis, see
        :mod:`.transforms`), or ``"auto"`` to estimate it. Default 0: on the
        real IDP series the estimate (-6.3 deg) predicted the left-out tilt
        better at 0 deg but worse at -40, -20 and 30 deg (docs/real-data.md),
        so a rotation is only applied when asked for.
    refine
        Projection-matching rounds (0: translation alignment only).
    normalise
        ``"none"``, ``"counts"`` or ``"gains"`` (:mod:`.tilt_intensity`).
        Default ``"counts"``: on the real IDP series it lowered the left-out
        Poisson deviance of SIRT and TV at every tilt measured
        (docs/real-data.md).
    search_deg
        Axis search range ``±search_deg`` around 0.
    sirt_iterations
        SIRT iterations of each leave-one-out prediction.
    nz
        Volume depth of those predictions (default: the map width).
    """

    tilt_axis: str | float = 0.0
    refine: int = 5
    normalise: str = "counts"
    search_deg: float = 10.0
    sirt_iterations: int = 20
    nz: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tilt_axis, str) and self.tilt_axis != "auto":
            try:
                self.tilt_axis = float(self.tilt_axis)
            except ValueError:
                raise ValueError(f"tilt axis must be 'auto' or an angle in degrees, got {self.tilt_axis!r}") \
                    from None
        if self.normalise not in NORMALISE_CHOICES:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISE_CHOICES)}, got {self.normalise!r}")
        if int(self.refine) < 0:
            raise ValueError(f"refine must be >= 0 rounds, got {self.refine}")


def align_tilt_series(series: TiltSeries, settings: AlignmentSettings | None = None,
                      reference: np.ndarray | None = None) -> TiltSeries:
    """Align ``series`` (see the module docstring); the report is in ``provenance["alignment"]``.

    Parameters
    ----------
    reference
        ``(n_angles, ny, nx)`` HAADF images to align on instead of the summed maps.
    """
    st = settings or AlignmentSettings()
    t0 = time.perf_counter()
    poisson = reference is None
    raw = series.stack().sum(axis=0) if reference is None else np.asarray(reference, np.float32)
    if raw.shape != series.shape:
        raise TiltSeriesError(f"{series.source}: reference stack {raw.shape} does not match the maps {series.shape}")
    if series.n_angles < 3:
        raise TiltSeriesError(f"{series.source}: alignment needs at least 3 tilts, got {series.n_angles}")
    angles = series.angles
    kw = {"iterations": st.sirt_iterations, "nz": st.nz, "poisson": poisson}
    shifts = estimate_shifts(raw, angles)
    shifts[:, 1] += tilt_axis_offsets(correct_stack(raw, 0.0, shifts), angles)
    report: dict[str, Any] = {"reference": "HAADF images" if reference is not None else "sum of the element maps"}
    report["scores_translation_only"] = evaluate(raw, angles, 0.0, shifts, **kw).scores.tolist()
    alpha = 0.0
    if st.tilt_axis == "auto":
        # The square root evens out Poisson noise; HAADF images are not few-count data, and
        # on them the plain estimate is the more accurate (rms 0.19 vs 0.40 deg, tilt_axis docstring).
        transform = "sqrt" if poisson else "none"
        search = estimate_tilt_axis(raw, angles, shifts, search_deg=st.search_deg, transform=transform)
        alpha = search.angle_deg
        report["tilt_axis_search"] = [[a, s] for a, s in search.tried]
        spread, left_out = axis_spread(raw, angles, shifts, search_deg=st.search_deg, transform=transform)
        report.update(tilt_axis_spread_deg=spread, tilt_axis_left_out_deg=left_out)
        if spread > AXIS_SPREAD_WARN_DEG:
            report["tilt_axis_warning"] = (
                f"the estimated tilt axis {alpha:.1f} deg moves by ±{spread:.1f} deg when one tilt is left "
                f"out ({min(left_out):.1f} to {max(left_out):.1f}): the data do not pin it down; keep "
                f"--tilt-axis 0 or give the angle")
            warnings.warn(f"{series.source}: {report['tilt_axis_warning']}", UserWarning, stacklevel=2)
    else:
        alpha = float(st.tilt_axis)
    shifts = reframe_shifts(shifts, 0.0, alpha)
    match = refine_shifts(raw, angles, alpha, shifts, rounds=int(st.refine), **kw)
    report.update(refine_rounds=match.rounds, refine_last_move_px=match.last_move_px,
                  refine_history=match.history)
    shifts = match.shifts  # the refined shifts are the ones applied and recorded
    masks = valid_masks(series.shape, alpha, shifts)
    corrected = {el: correct_stack(m, alpha, shifts) for el, m in series.maps.items()}
    gains = np.ones(series.n_angles)
    if st.normalise != "none":
        if st.normalise == "counts":
            # Raw maps: the whole field of every tilt, untouched by shifts and rotation.
            gains = gains_from_counts(series.stack().sum(axis=0))
        else:
            total = np.sum(list(corrected.values()), axis=0)
            gains = gains_from_predictions(total, angles, masks, iterations=st.sirt_iterations, nz=st.nz)
        corrected = {el: (m / gains[:, None, None]).astype(np.float32) for el, m in corrected.items()}
    scores = match.evaluation.scores
    out = series.with_maps(corrected, "align_tilt_series")
    out.provenance["alignment"] = {
        "method": "translation + tilt-axis direction + projection matching (leave-one-out SIRT)",
        "tilt_axis_deg": float(alpha),
        "tilt_axis_source": "estimated" if st.tilt_axis == "auto" else "given",
        "convention": "tilt_axis_deg anticlockwise from the image y axis (napari display); shifts (dy, dx) px "
                      "in the corrected frame: corrected(o) = raw(R(a)(o - s - c) + c)",
        "angles_deg": angles.tolist(), "shifts_px": shifts.tolist(), "pixel_size_nm": series.pixel_size,
        "normalise": st.normalise, "gains": gains.tolist(),
        "scores": [float(s) for s in scores],
        "score_meaning": "fraction of each tilt's signal its prediction from the other tilts leaves "
                         "unexplained (noise floor removed; 0 = perfect)",
        "flagged_tilts": flag_bad_tilts(scores),
        "settings": {"tilt_axis": st.tilt_axis, "refine": int(st.refine), "search_deg": st.search_deg,
                     "sirt_iterations": st.sirt_iterations, "nz": st.nz},
        "elapsed_s": time.perf_counter() - t0,
        **report,
    }
    return out


def alignment_report(series: TiltSeries) -> dict[str, Any]:
    """The alignment record of an aligned series (for ``alignment.json``)."""
    if "alignment" not in series.provenance or "tilt_axis_deg" not in series.provenance["alignment"]:
        raise TiltSeriesError(f"{series.source}: the series has not been aligned by align_tilt_series")
    return series.provenance["alignment"]


def write_alignment(folder: str | Path, series: TiltSeries) -> Path:
    """Write ``alignment.json`` of an aligned series into ``folder``."""
    from ..io.atomic import write_json

    return write_json(Path(folder) / ALIGNMENT_FILE, alignment_report(series))


def apply_alignment(series: TiltSeries, record: dict[str, Any] | str | Path) -> TiltSeries:
    """Apply a saved alignment (``alignment.json`` or its dict) to another copy of the series.

    Shifts are rescaled to this series' pixel size (e.g. found at bin 4,
    applied at bin 1); angles must match.
    """
    if not isinstance(record, dict):
        record = json.loads(Path(record).read_text(encoding="utf-8"))
    if not np.allclose(np.asarray(record["angles_deg"], float), series.angles, atol=1e-3):
        raise TiltSeriesError(f"{series.source}: the alignment was found at other tilt angles")
    alpha = float(record["tilt_axis_deg"])
    shifts = np.asarray(record["shifts_px"], float) * (float(record["pixel_size_nm"]) / series.pixel_size)
    gains = np.asarray(record.get("gains", np.ones(series.n_angles)), float)
    maps = {el: (correct_stack(m, alpha, shifts) / gains[:, None, None]).astype(np.float32)
            for el, m in series.maps.items()}
    out = series.with_maps(maps, "apply_alignment")
    out.provenance["alignment"] = {**record, "shifts_px": shifts.tolist(), "pixel_size_nm": series.pixel_size}
    return out
