"""SIRT with non-negativity, all slices and elements in one sparse product."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..tiltseries import TiltSeries
from .control import STOPPED_BY_USER, RunControl, step
from .objective import data_misfit
from .problem import Problem, check_common, should_snapshot
from .snapshot import Snapshot


def sirt(
    series: TiltSeries,
    iterations: int = 100,
    snapshot_every: int = 10,
    device: str = "auto",
    nz: int | None = None,
    relaxation: float = 1.0,
    nonnegative: bool = True,
    control: RunControl | None = None,
) -> Iterator[Snapshot]:
    """Simultaneous iterative reconstruction: ``x ← x + λ C Aᵀ R (b − A x)``.

    ``R`` and ``C`` are the inverse row and column sums of ``A``. ``control``
    (:class:`~edxtomo.recon.control.RunControl`) receives progress every
    iteration and can stop the run between snapshots.

    Yields
    ------
    Snapshot
        Every ``snapshot_every`` iterations and at the end.
    """
    check_common(iterations, snapshot_every)
    if not 0 < relaxation < 2:
        raise ValueError(f"relaxation must lie in (0, 2), got {relaxation}")
    prob = Problem.build(series, nz=nz, device=device)
    inv_rows = 1.0 / prob.projector.row_sums().clamp_min(1e-6)
    inv_cols = 1.0 / prob.projector.col_sums().clamp_min(1e-6)
    b = prob.meas * prob.nz  # SIRT is scale-free: work in A x = b units
    x = torch.zeros((len(prob.elements), *prob.volume_shape), device=prob.device, dtype=prob.dtype)
    with torch.no_grad():
        for it in range(1, iterations + 1):
            resid = b - prob.projector.forward(x)
            x += relaxation * inv_cols * prob.projector.adjoint(resid * inv_rows)
            if nonnegative:
                x.clamp_(min=0)
            stop = step(control, it, iterations)
            if stop or should_snapshot(it, iterations, snapshot_every):
                data = float(data_misfit(prob.forward(x), prob.meas).sum())
                yield prob.snapshot(x, it, iterations, {"data": data}, "sirt",
                                    final=stop or it == iterations, stopped=STOPPED_BY_USER if stop else "")
                if stop:
                    return
