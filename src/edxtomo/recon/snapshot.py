"""What every reconstruction generator yields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Snapshot:
    """The state of a running reconstruction.

    Attributes
    ----------
    iteration
        Iterations done so far (1-based; ``total`` at the end).
    total
        Iterations planned (a run may stop earlier, see ``stopped``).
    volumes
        ``{element: (nz, ny, nx) float32}``, independent numpy copies in the
        units of the input maps (counts per voxel along the beam).
    losses
        Current loss terms, e.g. ``{"data": ..., "tv": ..., "heldout": ...}``.
    elapsed_s
        Wall time since the run started.
    method
        Algorithm name (``"sirt"``, ``"tv"``, ``"dip-tv"``, ``"dipm-tv"``, ...).
    final
        True for the last snapshot of a run.
    stopped
        Why the run ended early (``"early stopping"``...), empty otherwise.
    info
        Extra per-method facts (best held-out iteration, device, ...).
    state
        For methods that can resume: returns the state to continue from this
        snapshot (``reconstruct(..., resume=state)``); built only when called.
    """

    iteration: int
    total: int
    volumes: dict[str, np.ndarray]
    losses: dict[str, float]
    elapsed_s: float
    method: str = ""
    final: bool = False
    stopped: str = ""
    info: dict = field(default_factory=dict)
    state: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return min(1.0, self.iteration / max(1, self.total))

    def notes(self) -> list[str]:
        """What a user should read about how the run went, from ``info``: tilts not held out,
        weights chosen. One wording for the command line, the dock and its notification."""
        from .weight_choice import describe_choice  # it builds on this module

        out = []
        if self.info.get("heldout_off"):
            out.append(f"no tilts held out: {self.info['heldout_off']}")
        if self.info.get("weight_choice"):
            out.append(describe_choice(self.info["weight_choice"]))
        return out
