"""Per-tilt intensity: holder shadowing of the detector, path length, dose drift.

Two estimates of a per-tilt gain ``g_k`` (maps are divided by it; the
geometric mean of the gains is 1, so counts keep their overall level):

``"counts"``
    The total counts of the summed element maps per tilt. A parallel
    projection of an object inside the field of view holds the same mass at
    every tilt, so what changes is gain. A lamella wider than the field of
    view also gains ~1/cos θ of real path length; this estimate removes that
    too (which then matches the finite volume the reconstruction has).
``"gains"``
    Fitted to the prediction of each tilt from the others (least-squares
    scale of the leave-one-out prediction), iterated as the predictions
    themselves change with the gains.
"""

from __future__ import annotations

import numpy as np

from .tilt_scores import best_scale, loo_predictions

NORMALISE_CHOICES = ("none", "counts", "gains")


def _unit_geomean(g: np.ndarray) -> np.ndarray:
    g = np.asarray(g, np.float64)
    if np.any(~np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"per-tilt gains must be positive, got {np.round(g, 3).tolist()}")
    return g / np.exp(np.mean(np.log(g)))


def gains_from_counts(stack: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """Per-tilt gain from the total counts of ``stack`` ``(n, ny, nx)`` (inside ``masks``).

    With masks (the pixels every tilt measured) all tilts are summed over the
    same region, so a map shifted partly out of the field does not look dimmer.
    """
    common = np.ones(stack.shape[1:], bool) if masks is None else np.all(masks, axis=0)
    totals = np.array([float(img[common].sum()) for img in stack])
    if np.any(totals <= 0):
        raise ValueError("a tilt has no counts inside the common field of view; cannot normalise by counts")
    return _unit_geomean(totals)


def gains_from_predictions(stack: np.ndarray, angles: np.ndarray, masks: np.ndarray | None = None,
                           *, rounds: int = 3, iterations: int = 30, nz: int | None = None) -> np.ndarray:
    """Per-tilt gain fitted to leave-one-out predictions (see the module docstring)."""
    g = np.ones(stack.shape[0])
    m = np.ones(stack.shape, bool) if masks is None else masks.astype(bool)
    for _ in range(rounds):
        pred = loo_predictions(stack / g[:, None, None], angles, iterations=iterations, nz=nz,
                               weights=m)
        scale = np.array([best_scale(p, y, mk) for p, y, mk in zip(pred, stack, m, strict=True)])
        g = _unit_geomean(scale)
    return g
