"""TV-regularised reconstruction (compressed sensing) by preconditioned Chambolle–Pock.

Solves, in the normalised units of :mod:`edxtomo.recon.objective`,

    min_{x ≥ 0}  Σ_e 0.5·mean((A x_e/nz − b_e)²) + tv_weight · mean |∇x|

with the diagonal preconditioning of Pock & Chambolle (ICCV 2011, α = 1):
σ = 1 / row sums and τ = 1 / column sums of ``K = [A/nz; ∇]``. Plain
Chambolle–Pock with global steps 1/‖K‖ barely moves on tomography operators
in a few hundred iterations; the preconditioned form converges there.

``joint=True`` couples the elements through a vectorial TV (one gradient
magnitude over all elements at each voxel), so a boundary seen clearly in one
element sharpens the others.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..tiltseries import TiltSeries
from .control import RunControl, begin, step, stop_reason
from .objective import data_misfit, divergence, gradient, tv_norm
from .params import Annotated, Depth, Device, Doc, Iterations, SnapshotEvery, TVWeight, check_call
from .problem import Problem, should_snapshot
from .snapshot import Snapshot

DEFAULT_TV_WEIGHT = 0.06
GRADIENT_BLOCK_SCALE = 0.02


def tv(
    series: TiltSeries,
    tv_weight: TVWeight = DEFAULT_TV_WEIGHT,
    iterations: Iterations = 300,
    snapshot_every: SnapshotEvery = 20,
    device: Device = "auto",
    nz: Depth = None,
    joint: Annotated[bool, Doc("one vectorial TV coupling all elements", advanced=True)] = False,
    control: RunControl | None = None,
) -> Iterator[Snapshot]:
    """Total-variation reconstruction with non-negativity.

    Parameters
    ----------
    tv_weight
        Dimensionless TV weight (see :mod:`edxtomo.recon.objective`).
    joint
        Vectorial TV coupling all elements instead of one TV per element.
    control
        Receives progress every iteration; a stop request ends the run at the
        next iteration with a final snapshot (:mod:`edxtomo.recon.control`).

    Yields
    ------
    Snapshot
        With ``losses`` ``data``, ``tv`` and ``total`` (the objective).
    """
    check_call(tv, locals())
    prob = Problem.build(series, nz=nz, device=device)
    method = "tv-joint" if joint else "tv"
    n_elem = len(prob.elements)
    shape = (n_elem, *prob.volume_shape)
    n_meas = prob.meas[0].numel()
    n_vox = prob.volume_shape[0] * prob.volume_shape[1] * prob.volume_shape[2]
    # Objective multiplied by n_meas: 0.5·||Kx − b||² + mu_e·||∇x_e||_{2,1}.
    mu = prob.tv_weights(tv_weight).reshape(1, n_elem, 1, 1, 1) * (n_meas / n_vox)
    if joint:
        mu = mu.mean()

    rows = prob.projector.row_sums() / prob.nz
    cols = prob.projector.col_sums() / prob.nz
    # K = [A/nz; gamma·∇] with the TV term rescaled to keep the objective:
    # gamma balances the two dual blocks (measured: 0.01–0.03 converges 4–10×
    # faster than 1 on 32³–64³ phantoms over tv_weight 0.003–0.3).
    gamma = GRADIENT_BLOCK_SCALE
    radius = mu / gamma
    sigma_data = 1.0 / rows.clamp_min(1e-6)
    sigma_grad = 0.5 / gamma
    tau = 1.0 / (cols + 6.0 * gamma)

    x = torch.zeros(shape, device=prob.device, dtype=prob.dtype)
    x_bar = x.clone()
    p_data = torch.zeros_like(prob.meas)
    p_grad = torch.zeros((3, *shape), device=prob.device, dtype=prob.dtype)
    begin(control)
    with torch.no_grad():
        for it in range(1, iterations + 1):
            fwd = prob.forward(x_bar)
            p_data = (p_data + sigma_data * (fwd - prob.meas)) / (1.0 + sigma_data)
            p_grad += (sigma_grad * gamma) * gradient(x_bar)
            if tv_weight > 0:
                mag = (p_grad.pow(2).sum(dim=(0, 1), keepdim=True) if joint
                       else p_grad.pow(2).sum(dim=0, keepdim=True)).sqrt()
                p_grad /= torch.clamp(mag / radius, min=1.0)
            else:
                p_grad.zero_()
            x_new = (x - tau * (prob.adjoint(p_data) - gamma * divergence(p_grad))).clamp_(min=0)
            x_bar = 2 * x_new - x
            x = x_new
            stop = step(control, it, iterations)
            if stop or should_snapshot(it, iterations, snapshot_every):
                losses = objective(prob, x, tv_weight, joint)
                yield prob.snapshot(x, it, iterations, losses, method, final=stop or it == iterations,
                                    stopped=stop_reason(control) if stop else "", tv_weight=tv_weight,
                                    joint=joint)
                if stop:
                    return


def objective(prob: Problem, x: torch.Tensor, tv_weight: float, joint: bool) -> dict[str, float]:
    """Data, TV and total objective of normalised volumes ``x``."""
    data = float(data_misfit(prob.forward(x), prob.meas).sum())
    scale = torch.as_tensor(prob.tv_scale, dtype=x.dtype, device=x.device)
    tvv = float((tv_norm(x, joint=joint) * (scale.mean() if joint else scale)).sum())
    return {"data": data, "tv": tvv, "total": data + tv_weight * tvv}
