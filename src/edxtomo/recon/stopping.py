"""Held-out-tilt validation: which iterate to keep and when to stop.

A deep image prior first fits the structure shared by all tilts and only later
the noise of each one. Tilts the network never sees tell the two phases
apart: their prediction error falls while the reconstruction improves and
rises once it starts fitting noise. The iterate with the lowest held-out error
is kept, and a run can stop when that error has not improved for a while.
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


@dataclass
class BestIterate:
    """Keeps the volume with the lowest validation error seen so far.

    ``patience`` counts iterations since the last improvement; ``None`` or 0
    never stops early. ``min_delta`` is the relative improvement that counts.
    """

    patience: int | None = None
    min_delta: float = 1e-4
    best_error: float = float("inf")
    best_iteration: int = 0
    best_volume: torch.Tensor | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def update(self, iteration: int, error: float, volume: torch.Tensor) -> bool:
        """Record ``error`` at ``iteration``; return True if ``volume`` is the new best."""
        self.history.append((iteration, float(error)))
        if error < self.best_error * (1.0 - self.min_delta) or self.best_volume is None:
            self.best_error = float(error)
            self.best_iteration = int(iteration)
            self.best_volume = volume.detach().clone()
            return True
        return False

    def should_stop(self, iteration: int) -> bool:
        return bool(self.patience) and iteration - self.best_iteration >= int(self.patience)
