"""DIP-TV and DIPm-TV: a deep image prior regularised by total variation.

The volume is the output of a randomly initialised 3D U-Net fed a fixed noise
input (:mod:`edxtomo.recon.nets`); the network's weights are fitted so that
its output reprojects onto the measured tilts, plus ``tv_weight`` times the
same normalised TV term as :mod:`edxtomo.recon.tv`, so a weight means the same
in both. DIPm-TV uses one network with one output channel per element (the
shared decoder lets one element's sharp boundaries help the others); DIP-TV
one network per element.

What is returned is an exponential moving average (EMA) of the network output,
which removes the iteration-to-iteration jitter of the noisy input. With
``heldout`` a few tilts are kept out of the fit and, for each element, the EMA
iterate that predicts its held-out projections best is the final result
(:mod:`edxtomo.recon.stopping`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from ..devices import DEVICES
from ..tiltseries import TiltSeries
from . import share_signature
from .control import STOPPED_BY_USER, RunControl, step
from .nets import NoiseInput, PerElement, UNet3D, calibrate_gain, crop_centre, padded_shape
from .objective import data_misfit, poisson_nll, tv_norm
from .problem import Problem, check_common, should_snapshot
from .snapshot import Snapshot
from .stopping import BestIterate, split_tilts

DEFAULT_TV_WEIGHT = 0.02
LOSSES = ("auto", "ls", "poisson")
WARM_STARTS = ("none", "tv", "sirt")


def dipm_tv(
    series: TiltSeries,
    tv_weight: float = DEFAULT_TV_WEIGHT,
    iterations: int = 2000,
    lr: float = 5e-3,
    snapshot_every: int = 50,
    device: str = "auto",
    seed: int = 0,
    nz: int | None = None,
    widths: Sequence[int] = (16, 32, 64, 128),
    skip_widths: Sequence[int] = (4, 8, 16, 32),
    loss: str = "auto",
    ema: float = 0.99,
    heldout: int = 4,
    patience: int | None = 300,
    eval_every: int = 10,
    warm_start: str = "none",
    warm_iterations: int = 100,
    joint_tv: bool = False,
    input_channels: int = 32,
    input_jitter: float = 0.02,
    head: str = "lrelu2",
    weight_decay: float = 0.0,
    clip_grad: float = 0.0,
    lr_decay: float = 1.0,
    control: RunControl | None = None,
) -> Iterator[Snapshot]:
    """DIPm-TV: one 3D U-Net for all elements, one output channel each.

    Parameters
    ----------
    tv_weight
        Dimensionless TV weight, same meaning as in :func:`edxtomo.recon.tv.tv`.
    iterations
        Maximum optimiser steps (warm-start steps included).
    lr
        AdamW learning rate.
    snapshot_every
        Yield a snapshot every this many iterations (and at the end).
    device
        ``auto``, ``cpu``, ``cuda[:i]`` or ``mps``.
    seed
        Seeds the weights and the input noise; runs on CPU are reproducible.
    nz
        Volume depth along the beam (default: the detector width).
    widths, skip_widths
        Channels per U-Net level and of its 1×1×1 skip branches.
    loss
        ``"poisson"`` (Poisson deviance of the counts), ``"ls"`` (least squares)
        or ``"auto"``: Poisson when every map holds whole counts, else least squares.
    ema
        Decay of the moving average of the output that is returned (0: none).
    heldout
        Hold out every ``heldout``-th tilt (never the extreme ones) to pick the
        best iterate and to stop; 0 fits all tilts and keeps the last iterate.
    patience
        Stop when the held-out error has not improved for this many
        iterations; ``None`` or 0 runs all ``iterations``.
    eval_every
        Iterations between held-out evaluations.
    warm_start
        ``"tv"`` or ``"sirt"``: first fit the network output to that
        reconstruction (of the training tilts) for ``warm_iterations`` steps.
    joint_tv
        One vectorial TV over all elements instead of one TV per element.
    input_channels, input_jitter
        Channels of the fixed noise input and σ of the fresh noise added each step.
    head
        Non-negative output: ``"lrelu2"``, ``"relu2"`` or ``"softplus"``.
    weight_decay, clip_grad
        AdamW weight decay and gradient-norm clipping (0: off).
    lr_decay
        Learning rate at ``iterations`` relative to ``lr``, reached by
        exponential decay (1: constant).
    control
        Receives progress every iteration; a stop request ends the run after
        the current iteration with a final snapshot of the latest volumes
        (:mod:`edxtomo.recon.control`).

    Yields
    ------
    Snapshot
        ``losses`` has ``data``, ``tv``, ``total`` and (with ``heldout``)
        ``heldout``; the final one carries each element's best held-out
        iterate, ``info["best_iterations"]`` (per element) and
        ``info["best_iteration"]`` (the latest of them).
    """
    yield from _run(series, "dipm-tv", **_params(locals()))


def dip_tv(series: TiltSeries, **params: Any) -> Iterator[Snapshot]:
    """DIP-TV: one independent 3D U-Net per element; parameters as :func:`dipm_tv`."""
    # Binding against dipm_tv's signature names any unknown parameter at call time.
    bound = inspect.signature(dipm_tv).bind(series, **params)
    bound.apply_defaults()
    return _run(series, "dip-tv", **_params(bound.arguments))


share_signature(dip_tv, dipm_tv)


def _params(local: dict) -> dict:
    return {k: v for k, v in local.items() if k != "series"}


def _validate(p: dict) -> None:
    check_common(p["iterations"], p["snapshot_every"])
    if not p["tv_weight"] >= 0:
        raise ValueError(f"tv_weight must be >= 0, got {p['tv_weight']}")
    if not p["lr"] > 0:
        raise ValueError(f"lr (learning rate) must be > 0, got {p['lr']}")
    if not 0 < p["lr_decay"] <= 1:
        raise ValueError(f"lr_decay must lie in (0, 1], got {p['lr_decay']}")
    if p["loss"] not in LOSSES:
        raise ValueError(f"unknown loss {p['loss']!r}: choose one of {', '.join(LOSSES)}")
    if p["warm_start"] not in WARM_STARTS:
        raise ValueError(f"unknown warm_start {p['warm_start']!r}: choose one of {', '.join(WARM_STARTS)}")
    if not 0 <= p["ema"] < 1:
        raise ValueError(f"ema must lie in [0, 1), got {p['ema']}")
    if p["patience"] is not None and int(p["patience"]) < 0:
        raise ValueError(f"patience must be >= 0 iterations or None, got {p['patience']}")
    for name in ("clip_grad", "input_jitter", "weight_decay"):
        if not p[name] >= 0:
            raise ValueError(f"{name} must be >= 0 (0: off), got {p[name]}")
    if int(p["eval_every"]) < 1 or int(p["warm_iterations"]) < 0:
        raise ValueError("eval_every must be >= 1 and warm_iterations >= 0")
    dev = str(p["device"]).strip().lower()
    if dev.split(":")[0] not in DEVICES:
        raise ValueError(f"unknown device {p['device']!r}: choose one of {', '.join(DEVICES)}")


def _resolve_loss(loss: str, series: TiltSeries) -> str:
    if loss != "auto":
        return loss
    counts = all(np.array_equal(m, np.round(m)) for m in series.maps.values())
    return "poisson" if counts else "ls"


def _warm_target(series: TiltSeries, train: np.ndarray, prob: Problem, how: str) -> torch.Tensor:
    """Normalised TV or SIRT volume of the training tilts (held-out ones stay unseen)."""
    from . import run_to_end
    from .sirt import sirt
    from .tv import tv

    sub = TiltSeries({e: m[train] for e, m in series.maps.items()}, series.angles[train],
                     series.pixel_size, validate=False)
    gen = (tv(sub, iterations=300, snapshot_every=300, device=prob.device, nz=prob.nz) if how == "tv"
           else sirt(sub, iterations=100, snapshot_every=100, device=prob.device, nz=prob.nz))
    vols = run_to_end(gen).volumes
    arr = np.stack([vols[e] / np.float32(prob.rho[i]) for i, e in enumerate(prob.elements)])
    return torch.from_numpy(arr).to(prob.device, prob.dtype)


def _run(series: TiltSeries, method: str, **p) -> Iterator[Snapshot]:
    _validate(p)
    p["loss"] = _resolve_loss(p["loss"], series)
    prob = Problem.build(series, nz=p["nz"], device=p["device"])
    dev, n_elem, iterations = prob.device, len(prob.elements), int(p["iterations"])
    train, held = split_tilts(series.n_angles, p["heldout"])
    train_t = torch.as_tensor(train, device=dev)
    held_t = torch.as_tensor(held, device=dev)

    net_args = {"in_channels": int(p["input_channels"]), "widths": p["widths"],
                "skip_widths": p["skip_widths"], "head": p["head"]}
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching global state
        torch.manual_seed(int(p["seed"]))
        net = (UNet3D(out_channels=n_elem, **net_args) if method == "dipm-tv"
               else PerElement(n_elem, **net_args)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(int(p["seed"]))
    shape = prob.volume_shape
    noise = NoiseInput(int(p["input_channels"]), padded_shape(shape, net.multiple), 0.1,
                       p["input_jitter"], gen, dev, prob.dtype)
    # Mass conservation: the mean of a normalised projection is the volume's mean.
    calibrate_gain(net, noise.base, prob.meas[:, train_t].flatten(1).mean(1))
    opt = torch.optim.AdamW(net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    gamma = float(p["lr_decay"]) ** (1.0 / max(1, iterations))
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma) if gamma != 1.0 else None
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    scale = torch.as_tensor(prob.tv_scale, dtype=prob.dtype, device=dev)
    tv_unit = scale.mean() if p["joint_tv"] else scale
    tv_w = float(p["tv_weight"]) * tv_unit
    sigma = torch.as_tensor(prob.sigma, dtype=prob.dtype, device=dev).reshape(-1, 1, 1, 1)

    def misfit(proj: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Data term of the tilts ``idx`` of a projection of all tilts."""
        if p["loss"] == "poisson":
            return poisson_nll(proj[:, idx], prob.meas[:, idx], sigma)
        return data_misfit(proj[:, idx], prob.meas[:, idx])

    def terms(vol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        data = misfit(prob.forward(vol), train_t).sum()
        return data, (tv_w * tv_norm(vol, joint=p["joint_tv"], eps=1e-8)).sum()

    def report(vol: torch.Tensor) -> dict[str, float]:
        # Same definitions as recon.tv.objective: total = data + tv_weight · tv.
        proj = prob.forward(vol)
        data = float(misfit(proj, train_t).sum())
        tvv = float((tv_unit * tv_norm(vol, joint=p["joint_tv"])).sum())
        out = {"data": data, "tv": tvv, "total": data + float(p["tv_weight"]) * tvv}
        if held.size:
            out["heldout"] = float(misfit(proj, held_t).sum())
        return out

    warm = _warm_target(series, train, prob, p["warm_start"]) if p["warm_start"] != "none" else None
    n_warm = min(int(p["warm_iterations"]), iterations - 1) if warm is not None else 0
    patience = int(p["patience"]) if p["patience"] and held.size else None
    best = BestIterate(patience=patience)
    decay = float(p["ema"])
    ema_acc = torch.zeros((n_elem, *shape), device=dev, dtype=prob.dtype)
    info = {"heldout_angles": [float(a) for a in series.angles[held]], "tv_weight": p["tv_weight"],
            "warm_start": p["warm_start"], "loss": p["loss"]}
    net.train()
    try:
        for it in range(1, iterations + 1):
            with torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext():
                out = net(noise())
            # The sparse projector and the loss stay in float32, outside autocast.
            vol = crop_centre(out, shape)[0].float()
            if it <= n_warm:
                loss = 0.5 * (vol - warm).pow(2).mean() * n_elem
            else:
                data, tvv = terms(vol)
                loss = data + tvv
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if p["clip_grad"] > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), float(p["clip_grad"]))
            scaler.step(opt)
            scaler.update()
            if schedule is not None:
                schedule.step()
            snap = None
            with torch.no_grad():
                ema_acc.mul_(decay).add_(vol.detach(), alpha=1 - decay)
                current = ema_acc / (1 - decay**it) if decay > 0 else ema_acc
                user_stop = step(p["control"], it, iterations)
                stop = False
                if held.size and (it % int(p["eval_every"]) == 0 or it == iterations):
                    best.update(it, misfit(prob.forward(current), held_t).cpu().numpy(), current)
                    stop = best.should_stop(it)
                if user_stop or stop or it == iterations:
                    break
                if should_snapshot(it, iterations, int(p["snapshot_every"])):
                    snap = prob.snapshot(current, it, iterations, report(current), method,
                                         best_iteration=best.best_iteration or it, **info)
            # Yield outside no_grad: a suspended generator would leave grad mode off for the caller.
            if snap is not None:
                yield snap
        with torch.no_grad():
            # A user's stop keeps what they were watching; otherwise the held-out best.
            final = best.best_volume if best.best_volume is not None and not user_stop else current
            why = (STOPPED_BY_USER if user_stop else
                   f"early stopping: held-out error did not improve for {patience} iterations"
                   if stop else "")
            per_element = (dict(zip(prob.elements, (int(i) for i in best.best_iterations), strict=True))
                           if best.best_iterations is not None else {e: it for e in prob.elements})
            snap = prob.snapshot(final, it, iterations, report(final), method, final=True, stopped=why,
                                 best_iteration=best.best_iteration or it, best_iterations=per_element,
                                 iterations_done=it, **info)
        yield snap
    finally:
        del net, opt, noise, ema_acc, best
        if dev.type == "cuda":
            torch.cuda.empty_cache()
