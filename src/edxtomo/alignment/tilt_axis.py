"""In-plane direction of the tilt axis, from the data.

A map rotated in plane by ``δ`` against the true axis puts every point's
tilt motion (perpendicular to the axis) partly along the rows, and puts the
axis at an x position that drifts along y: no single volume then explains
all tilts. The axis is the angle whose corrected stack the tilts predict
best from each other (mean leave-one-out score, :mod:`.projection_matching`):
a coarse scan over the search range, then a finer scan around the best
angle, and a parabola through the lowest three points.

The shifts travel with the angle in the raw frame
(:func:`.transforms.reframe_shifts`), so trying an angle does not also
change the translational alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .projection_matching import evaluate
from .transforms import reframe_shifts


@dataclass
class AxisSearch:
    """Angles tried (degrees) and their mean leave-one-out scores."""

    angle_deg: float
    tried: list[tuple[float, float]] = field(default_factory=list)


def _parabola_min(xs: np.ndarray, ys: np.ndarray) -> float:
    i = int(np.argmin(ys))
    if i == 0 or i == xs.size - 1:
        return float(xs[i])
    x3, y3 = xs[i - 1:i + 2], ys[i - 1:i + 2]
    c2, c1, _ = np.polyfit(x3, y3, 2)
    if c2 <= 0:
        return float(xs[i])
    return float(np.clip(-c1 / (2 * c2), x3[0], x3[-1]))


def scan(raw: np.ndarray, angles: np.ndarray, shifts: np.ndarray, alpha_ref: float,
         candidates: np.ndarray, **kw) -> list[tuple[float, float]]:
    """Mean leave-one-out score at each candidate axis angle.

    ``shifts`` belong to the axis ``alpha_ref`` and are carried to each candidate.
    """
    out = []
    for a in candidates:
        s = reframe_shifts(shifts, alpha_ref, float(a))
        out.append((float(a), evaluate(raw, angles, float(a), s, **kw).mean_score))
    return out


def estimate_tilt_axis(raw: np.ndarray, angles: np.ndarray, shifts: np.ndarray, *,
                       alpha_ref: float = 0.0, search_deg: float = 8.0, coarse_step: float = 2.0,
                       fine_step: float = 0.5, **kw) -> AxisSearch:
    """In-plane axis angle (degrees, anticlockwise from the image y axis).

    Parameters
    ----------
    raw
        Reference stack ``(n, ny, nx)`` (summed element counts, or HAADF).
    shifts
        Current shifts, belonging to the axis ``alpha_ref``.
    search_deg
        Search ``alpha_ref ± search_deg``.
    kw
        Passed to :func:`.projection_matching.evaluate` (``iterations``,
        ``nz``, ``poisson``).
    """
    coarse = np.arange(-search_deg, search_deg + 1e-9, coarse_step) + alpha_ref
    tried = scan(raw, angles, shifts, alpha_ref, coarse, **kw)
    xs, ys = np.array(tried).T
    best = float(xs[int(np.argmin(ys))])
    fine = best + np.arange(-coarse_step, coarse_step + 1e-9, fine_step)
    fine = fine[~np.isin(np.round(fine, 6), np.round(xs, 6))]
    tried += scan(raw, angles, shifts, alpha_ref, fine, **kw)
    tried.sort()
    xs, ys = np.array(tried).T
    near = np.abs(xs - best) <= coarse_step + 1e-9
    return AxisSearch(_parabola_min(xs[near], ys[near]), tried)
