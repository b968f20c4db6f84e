"""SIRT with non-negativity, all slices and elements in one sparse product."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..tiltseries import TiltSeries
from .control import RunControl, begin, step, stop_reason
from .objective import data_misfit
from .params import Annotated, Depth, Device, Doc, Iterations, Range, SnapshotEvery, check_call
from .problem import Problem, should_snapshot
from .snapshot import Snapshot


def sirt(
    series: TiltSeries,
    iterations: Iterations = 100,
    snapshot_every: SnapshotEvery = 10,
    device: Device = "auto",
    nz: Depth = None,
    relaxation: Annotated[float, Range(0, 2, lo_open=True, hi_open=True),
                          Doc("step relaxation λ in (0, 2); 1 is standard", advanced=True)] = 1.0,
    nonnegative: Annotated[bool, Doc("clip negative densities after each step", advanced=True)] = True,
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
    check_call(sirt, locals())
    prob = Problem.build(series, nz=nz, device=device)
    inv_rows = 1.0 / prob.projector.row_sums().clamp_min(1e-6)
    inv_cols = 1.0 / prob.projector.col_sums().clamp_min(1e-6)
    b = prob.meas * prob.nz  # SIRT is scale-free: work in A x = b units
    x = torch.zeros((len(prob.elements), *prob.volume_shape), device=prob.device, dtype=prob.dtype)
    begin(control)
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
                                    final=stop or it == iterations, stopped=stop_reason(control) if stop else "")
                if stop:
                    return
