"""Held-out validation: which iterate to keep and when to stop.

A deep image prior first fits the structure shared by all tilts and only later
the noise of each one. Data the network never sees tell the two phases
apart: their prediction error falls while the reconstruction improves and
rises once it starts fitting noise. The iterate with the lowest held-out error
is kept, and a run can stop when that error has not improved for a while.

The held-out data are whole tilts (:func:`split_tilts`) or, on a series too
short to spare a tilt, a fraction of every tilt's counts (:func:`thin_counts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def split_tilts(n_angles: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, heldout)`` holding out every ``every``-th tilt.

    The extreme tilts are never held out: they carry the widest view of the
    missing wedge, and predicting them would be an extrapolation. With
    ``every`` 0 (or too few tilts to spare one) nothing is held out.
    """
    every = int(every)
    if every < 0:
        raise ValueError(f"heldout must be 0 (off) or hold out every k-th tilt with k >= 2, got {every}")
    if every == 1:
        raise ValueError("heldout=1 would hold out every tilt: use k >= 2, or 0 to disable")
    idx = np.arange(n_angles)
    if every == 0 or n_angles < 4:
        return idx, idx[:0]
    # Centre the held-out pattern so it is symmetric for symmetric tilt schemes.
    offset = (n_angles - 1) // 2 % every
    held = idx[(idx % every == offset) & (idx > 0) & (idx < n_angles - 1)]
    return np.setdiff1d(idx, held), held


def thin_counts(counts: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split counts into two independent Poisson parts: ``(fitted, held)``, ``held`` ≈ ``fraction``.

    Binomial thinning: if ``k ~ Poisson(λ)`` and ``h ~ Binomial(k, f)`` then ``h`` and
    ``k − h`` are independent, ``Poisson(f·λ)`` and ``Poisson((1 − f)·λ)``. The held part
    validates a fit to the other on every tilt and every pixel, so no view is lost to
    validation. Counts that alignment interpolated or per-tilt normalisation rescaled are
    first rounded at random to whole numbers (unbiased); their two parts are then
    independent only approximately.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction of the counts must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    counts = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    whole = np.floor(counts)
    whole += rng.random(counts.shape) < counts - whole
    held = rng.binomial(whole.astype(np.int64), fraction).astype(np.float64)
    return whole - held, held


@dataclass
class BestIterate:
    """Keeps, per channel, the volume with the lowest validation error seen so far.

    Each element's held-out error depends on that element's channel only, so
    every element keeps its own best iterate: late iterations often still
    sharpen a strong element while a weak, noisy one already starts fitting
    noise, and a single summed error would force one compromise on both.

    ``update`` takes either one error for the whole volume or one per channel
    (first axis of the volume). ``patience`` counts iterations since the last
    improvement of any channel; ``None`` or 0 never stops early. ``min_delta``
    is the relative improvement that counts.
    """

    patience: int | None = None
    min_delta: float = 1e-4
    best_errors: np.ndarray | None = None
    best_iterations: np.ndarray | None = None
    best_volume: torch.Tensor | None = None
    history: list[tuple[int, tuple[float, ...]]] = field(default_factory=list)

    @property
    def best_error(self) -> float:
        """Summed error of the kept volume (``inf`` before the first update)."""
        return float("inf") if self.best_errors is None else float(self.best_errors.sum())

    @property
    def best_iteration(self) -> int:
        """The latest iteration at which any channel improved (0 before the first update)."""
        return 0 if self.best_iterations is None else int(self.best_iterations.max())

    def update(self, iteration: int, error: float | np.ndarray, volume: torch.Tensor) -> bool:
        """Record the error(s) at ``iteration``; return True if any channel improved."""
        errors = np.atleast_1d(np.asarray(error, dtype=np.float64)).ravel()
        self.history.append((int(iteration), tuple(float(e) for e in errors)))
        if self.best_volume is None:
            if errors.size > 1 and volume.shape[0] != errors.size:
                raise ValueError(f"{errors.size} errors for a volume with {volume.shape[0]} channels")
            self.best_errors = errors.copy()
            self.best_iterations = np.full(errors.size, int(iteration))
            self.best_volume = volume.detach().clone()
            return True
        better = errors < self.best_errors * (1.0 - self.min_delta)
        if not better.any():
            return False
        self.best_errors[better] = errors[better]
        self.best_iterations[better] = int(iteration)
        if errors.size == 1:
            self.best_volume.copy_(volume.detach())
        else:
            idx = torch.as_tensor(np.flatnonzero(better), device=volume.device)
            self.best_volume[idx] = volume.detach()[idx]
        return True

    def should_stop(self, iteration: int) -> bool:
        return bool(self.patience) and iteration - self.best_iteration >= int(self.patience)
