"""Alignment of real tilt series: tilt-axis direction, projection matching,
per-tilt intensity and per-tilt consistency scores.

>>> aligned = align_tilt_series(series, AlignmentSettings(tilt_axis="auto", refine=5))  # doctest: +SKIP
>>> aligned.provenance["alignment"]["tilt_axis_deg"]  # doctest: +SKIP
"""

from .pipeline import (
    ALIGNMENT_FILE,
    AlignmentSettings,
    align_tilt_series,
    alignment_report,
    apply_alignment,
    write_alignment,
)
from .tilt_intensity import NORMALISE_CHOICES
from .tilt_scores import flag_bad_tilts, loo_predictions, unexplained_fraction

__all__ = [
    "ALIGNMENT_FILE",
    "NORMALISE_CHOICES",
    "AlignmentSettings",
    "align_tilt_series",
    "alignment_report",
    "apply_alignment",
    "flag_bad_tilts",
    "loo_predictions",
    "unexplained_fraction",
    "write_alignment",
]
