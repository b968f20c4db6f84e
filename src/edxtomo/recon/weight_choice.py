"""Choosing TV's weight from the data: the weight whose reconstruction best predicts tilts it did not see.

The TV factor (:mod:`edxtomo.recon.objective`) makes one weight fit phantoms
of both object types, doses and tilt schemes within about 0.5 dB, but on a
real series the best weight can sit well away from the default (three times
lower on the real IDP series of docs/real-data.md, where the default TV
predicted left-out tilts worse than SIRT). The data can say so themselves:
hold some tilts out, reconstruct from the rest at a few weights, project each
reconstruction onto the held-out tilts and compare with what was measured.

Folds interleave: with two folds, every fourth tilt is held out in the one
and the tilts two further on in the other (the extreme tilts never, as in
:func:`edxtomo.recon.stopping.split_tilts`), so each fold keeps the angular
coverage of the series. The error of an element is the squared difference
between the measured counts and the held-out projections of the volume in
counts, summed over the folds' held-out tilts; each element gets the grid
weight with the lowest error, refined by a parabola through it and its
neighbours in log(weight). On the phantoms the held-out choice and the
choice against the truth agree (docs/benchmarks.md); a weight at the edge of
the grid is reported as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..projector import ParallelProjector
from ..tiltseries import TiltSeries
from .snapshot import Snapshot
from .stopping import split_tilts

#: Multiples of the given weight tried: one octave steps, more below than above (a real
#: series wanted a third of the default; the phantoms' best weights lie within 0.5-1.5x).
GRID_FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0)
#: Every ``FOLD_EVERY``-th tilt is held out in a fold.
FOLD_EVERY = 4
#: Folds of held-out tilts (fewer when the series is too short for them).
N_FOLDS = 2


@dataclass
class WeightChoice:
    """Outcome of :func:`choose_tv_weights`.

    Attributes
    ----------
    weights
        Chosen weight per element.
    grid
        Weights tried.
    errors
        Per element, the held-out squared error at each grid weight (counts², summed over folds).
    heldout_angles
        Each fold's held-out tilt angles (degrees).
    at_edge
        Elements whose lowest error lies at the first or last grid weight.
    """

    weights: dict[str, float]
    grid: tuple[float, ...]
    errors: dict[str, list[float]] = field(default_factory=dict)
    heldout_angles: list[list[float]] = field(default_factory=list)
    at_edge: list[str] = field(default_factory=list)

    def as_info(self) -> dict:
        """JSON-ready record for a snapshot's ``info`` and the provenance sidecar."""
        return {"weights": {e: round(w, 5) for e, w in self.weights.items()},
                "grid": [round(w, 6) for w in self.grid],
                "heldout_errors": {e: [float(f"{v:.6g}") for v in errs] for e, errs in self.errors.items()},
                "heldout_angles": self.heldout_angles, "at_edge": self.at_edge}


def describe_choice(info: dict) -> str:
    """One line for a user from :meth:`WeightChoice.as_info`'s record."""
    grid = info["grid"]
    text = ("TV weight chosen on held-out tilts: "
            + ", ".join(f"{e} {w:.3g}" for e, w in info["weights"].items())
            + f" (tried {grid[0]:.3g}–{grid[-1]:.3g})")
    if info.get("at_edge"):
        text += (f"; at the edge of the range for {', '.join(info['at_edge'])}: "
                 "start from a weight nearer it to search beyond")
    return text


def folds(n_angles: int, n_folds: int = N_FOLDS) -> list[np.ndarray]:
    """Held-out tilt indices of each fold (interleaved; the extreme tilts never held out)."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    _, first = split_tilts(n_angles, FOLD_EVERY)
    if first.size == 0:
        raise ValueError(f"{n_angles} tilts are too few to hold any out for choosing the TV weight")
    step = FOLD_EVERY // n_folds if n_folds <= FOLD_EVERY else 1
    out = []
    for f in range(min(n_folds, FOLD_EVERY)):
        held = first + f * step
        held = held[(held > 0) & (held < n_angles - 1)]
        if held.size:
            out.append(held)
    return out


def grid_around(tv_weight: float) -> tuple[float, ...]:
    """The weights tried for a given starting weight."""
    if not tv_weight > 0:
        raise ValueError(f"choosing the TV weight needs a starting tv_weight > 0, got {tv_weight}")
    return tuple(float(tv_weight) * f for f in GRID_FACTORS)


def heldout_errors(volumes: dict[str, np.ndarray], series: TiltSeries, held: np.ndarray) -> dict[str, float]:
    """Squared error (counts²) of each element's volume projected onto the tilts ``held``."""
    first = next(iter(volumes.values()))
    nz, _, nx = first.shape
    proj = ParallelProjector(series.angles[held], nz, nx, dtype=torch.float64)
    pred = proj.forward(torch.from_numpy(np.stack([np.asarray(v, np.float64) for v in volumes.values()]))).numpy()
    return {el: float(((p - np.asarray(series.maps[el], np.float64)[held]) ** 2).sum())
            for el, p in zip(volumes, pred, strict=True)}


def pick(grid: tuple[float, ...], errors: list[float]) -> tuple[float, bool]:
    """Weight of lowest error, refined by a parabola in log(weight); and whether it is at the grid's edge."""
    e = np.asarray(errors, np.float64)
    i = int(np.argmin(e))
    if i in (0, e.size - 1):
        return float(grid[i]), True
    x = np.log(np.asarray(grid[i - 1:i + 2]))
    c2, c1, _ = np.polyfit(x, e[i - 1:i + 2], 2)
    if c2 <= 0:
        return float(grid[i]), False
    return float(np.exp(np.clip(-c1 / (2 * c2), x[0], x[2]))), False


def sweep(series: TiltSeries, run, grid: tuple[float, ...], n_folds: int = N_FOLDS
          ) -> Iterator[tuple[int, int, Snapshot | None, WeightChoice | None]]:
    """Run ``run(train_series, weight)`` (a snapshot generator) per fold and weight; choose per element.

    Yields ``(fold_index, weight_index, snapshot, None)`` for every snapshot of
    every sub-run, then ``(-1, -1, None, choice)`` once. The caller forwards
    progress and may stop consuming at any time.
    """
    held_sets = folds(series.n_angles, n_folds)
    errors = {el: [0.0] * len(grid) for el in series.elements}
    for f, held in enumerate(held_sets):
        train = series.select_indices(np.setdiff1d(np.arange(series.n_angles), held).tolist())
        for j, w in enumerate(grid):
            last = None
            for snap in run(train, w):
                last = snap
                yield f, j, snap, None
            for el, err in heldout_errors(last.volumes, series, held).items():
                errors[el][j] += err
    chosen, edge = {}, []
    for el in series.elements:
        chosen[el], at_edge = pick(grid, errors[el])
        if at_edge:
            edge.append(el)
    yield -1, -1, None, WeightChoice(chosen, tuple(grid), errors,
                                     [[float(a) for a in series.angles[h]] for h in held_sets], edge)
