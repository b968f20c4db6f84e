"""How well the other tilts predict each tilt: leave-one-out SIRT and its scores.

Every tilt ``k`` is predicted by a SIRT reconstruction from all the other
tilts, reprojected at tilt ``k``. All ``n`` leave-one-out problems run at
once, as ``n`` "elements" of one projector product, with tilt ``k``'s rows
masked out of problem ``k``. With 8–20 tilts the system is underdetermined,
so a reconstruction from *all* tilts would reproduce any tilt, misaligned or
not; a left-out tilt cannot be reproduced unless it agrees with the others.

Score of a tilt: the fraction of its signal the prediction leaves
unexplained, after the best scale ``a`` and with the Poisson noise floor
removed (for counts ``y ~ Poisson(λ)``, ``E[(a·p − y)²] = (a·p − λ)² + λ``)::

    U = (Σ (a·p − y)² − Σ y) / (Σ y² − Σ y)

0 is a perfect prediction; 1 explains nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from ..projector import ParallelProjector


def loo_predictions(stack: np.ndarray, angles: np.ndarray, *, iterations: int = 30,
                    nz: int | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Predict every tilt of ``stack`` ``(n, ny, nx)`` from the others (SIRT, non-negative).

    Parameters
    ----------
    iterations
        SIRT iterations; few iterations also keep the prediction smooth.
    nz
        Volume depth (default ``nx``).
    weights
        ``(n, ny, nx)`` in [0, 1]: how much each measured pixel counts (0 for
        the zero fill that shifted maps bring in at their edges).

    Returns
    -------
    ``(n, ny, nx)`` float64 predictions in the units of ``stack``.
    """
    n, ny, nx = stack.shape
    nz = nx if nz is None else int(nz)
    proj = ParallelProjector(angles, nz, nx, dtype=torch.float32)
    b = torch.from_numpy(np.asarray(stack, np.float32))[None]  # (1, n, ny, nx)
    w = torch.ones(n, n, ny, nx) if weights is None else \
        torch.from_numpy(np.asarray(weights, np.float32))[None].repeat(n, 1, 1, 1)
    w[torch.arange(n), torch.arange(n)] = 0.0  # problem k does not see tilt k
    inv_rows = 1.0 / proj.row_sums().clamp_min(1e-6)
    inv_cols = 1.0 / proj.adjoint(w).clamp_min(1e-6)
    x = torch.zeros(n, nz, ny, nx)
    with torch.no_grad():
        for _ in range(iterations):
            x += inv_cols * proj.adjoint(w * (b - proj.forward(x)) * inv_rows)
            x.clamp_(min=0)
        full = proj.forward(x)
    return full[torch.arange(n), torch.arange(n)].numpy().astype(np.float64)


def best_scale(pred: np.ndarray, meas: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Least-squares ``a`` minimising ``Σ (a·pred − meas)²`` over ``mask``."""
    m = np.ones(pred.shape, bool) if mask is None else mask
    den = float((pred[m] ** 2).sum())
    return float((pred[m] * meas[m]).sum() / den) if den > 0 else 0.0


def unexplained_fraction(pred: np.ndarray, meas: np.ndarray, mask: np.ndarray | None = None,
                         poisson: bool = True) -> float:
    """Noise-floor-corrected unexplained fraction after the best scale (module docstring)."""
    m = np.ones(pred.shape, bool) if mask is None else mask
    p, y = pred[m].astype(np.float64), meas[m].astype(np.float64)
    a = best_scale(p, y)
    floor = y.sum() if poisson else 0.0
    signal = (y ** 2).sum() - floor
    return float(((a * p - y) ** 2).sum() - floor) / signal if signal > 0 else float("nan")


def flag_bad_tilts(scores: np.ndarray, *, factor: float = 3.0, neighbour_ratio: float = 2.5) -> list[int]:
    """Indices of tilts predicted far worse than their peers.

    Each score is compared with the median of all the other tilts through a
    robust spread: flagged when
    ``score > median + factor · max(1.4826·MAD, 0.25·median, 0.02)``. The
    floor on the spread keeps the ordinary excess of the outer tilts (they
    are extrapolations) from being flagged when all tilts agree closely; a
    flagged tilt must also score ``neighbour_ratio`` times worse than its
    worse neighbour in the series (twice that for the first and last tilt;
    two adjacent bad tilts can hide each other).
    """
    s = np.asarray(scores, np.float64)
    flagged = []
    for k in range(s.size):
        others = np.delete(s, k)
        med = float(np.median(others))
        spread = max(1.4826 * float(np.median(np.abs(others - med))), 0.25 * abs(med), 0.02)
        # Neighbours in the series share a tilt's extrapolation difficulty: the
        # outermost tilt is worse than the middle ones but not than its neighbour.
        near = max(s[max(k - 1, 0):k].tolist() + s[k + 1:k + 2].tolist())
        # The first and last tilts are extrapolated from one side only: twice the margin.
        ratio = neighbour_ratio * (2.0 if k in (0, s.size - 1) else 1.0)
        if s[k] > med + factor * spread and s[k] > ratio * near:
            flagged.append(k)
    return flagged
