"""DIP-TV and DIPm-TV: a deep image prior regularised by total variation.

The volume is the output of a randomly initialised 3D U-Net fed a fixed noise
input (:mod:`edxtomo.recon.nets`); the network's weights are fitted so that
its output reprojects onto the measured tilts, plus ``tv_weight`` times the
same normalised TV term as :mod:`edxtomo.recon.tv`, so a weight means the same
in both. DIPm-TV uses one network with one output channel per element (the
shared decoder lets one element's sharp boundaries help the others); DIP-TV
(``per_element=True``) one network per element.

What is returned is an exponential moving average (EMA) of the network output,
which removes the iteration-to-iteration jitter of the noisy input. With
``heldout`` a few tilts are kept out of the fit and, for each element, the EMA
iterate that predicts its held-out projections best is the final result
(:mod:`edxtomo.recon.stopping`).

The module is in three parts: :class:`DipSettings` (the validated
parameters), :class:`DipObjective` (data and TV terms on the training and
held-out tilts) and :func:`_iterate` (the optimisation loop that yields
snapshots). :func:`dipm_tv` declares the parameters and ties them together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from ..tiltseries import TiltSeries
from .control import RunControl, begin, step, stop_reason
from .nets import (
    CoarseToFine,
    Head,
    NoiseInput,
    PerElement,
    UNet3D,
    calibrate_gain,
    crop_centre,
    padded_shape,
    set_fine,
)
from .objective import data_misfit, poisson_nll, tv_norm
from .params import (
    ADDED_LATER,
    Annotated,
    Depth,
    Device,
    Doc,
    Iterations,
    Literal,
    Range,
    Seed,
    SnapshotEvery,
    TVWeight,
    check_call,
)
from .problem import Problem, should_snapshot
from .snapshot import Snapshot
from .status import StopReason
from .stopping import BestIterate, split_tilts, thin_counts

DEFAULT_TV_WEIGHT = 0.02
#: The fixed network input is uniform noise in [0, INPUT_SCALE) (the published setting).
INPUT_SCALE = 0.1
#: Smooths |∇x| at 0 so the TV gradient stays finite where the volume is flat.
TV_EPS = 1e-8
#: Iterations of the warm-start reconstructions (converged enough to imitate).
WARM_TV_ITERATIONS = 300
WARM_SIRT_ITERATIONS = 100
#: The output average's decay ramps up as min(ema, (1 + t) / (EMA_RAMP + t)) at iteration t:
#: it averages over about the last t / (EMA_RAMP - 1) iterations until it reaches ``ema``.
#: A fixed 0.99 lags ~100 iterations behind a network that is still improving fast.
EMA_RAMP = 10
#: Channels of the full-size noise input of the coarse-to-fine network's refinement level.
FINE_INPUT_CHANNELS = 8
#: Version of the state saved by :meth:`_Loop.state` (``--resume``).
STATE_VERSION = 2

Loss = Literal["auto", "ls", "poisson"]
WarmStart = Literal["none", "tv", "sirt"]
Widths = tuple[int, ...]


def dipm_tv(
    series: TiltSeries,
    tv_weight: TVWeight = DEFAULT_TV_WEIGHT,
    iterations: Iterations = 1750,
    lr: Annotated[float, Range(0, 1, lo_open=True), Doc(
        "AdamW learning rate; typical 1e-3-1e-2 (too high diverges)")] = 5e-3,
    snapshot_every: SnapshotEvery = 50,
    device: Device = "auto",
    seed: Seed = 0,
    nz: Depth = None,
    widths: Annotated[Widths, Doc("channels per U-Net level (its length is the depth)",
                                  advanced=True)] = (16, 32, 64, 128),
    skip_widths: Annotated[Widths, Doc("channels of the 1x1x1 skip branch per level (0: none)",
                                       advanced=True)] = (4, 8, 16, 32),
    loss: Annotated[Loss, Doc(
        "data term: poisson (counts), ls (least squares) or auto (poisson for counts, also "
        "aligned or normalised counts)",
        advanced=True)] = "auto",
    ema: Annotated[float, Range(0, 1, hi_open=True), Doc(
        "decay of the moving average of the output that is shown and returned (0: none); "
        "typical 0.96-0.99", advanced=True)] = 0.99,
    heldout: Annotated[int, Range(0, 10_000), Doc(
        "hold out every k-th tilt to choose each element's best iterate and to stop (0: off, "
        "else >= 2)", advanced=True)] = 4,
    heldout_min_tilts: Annotated[int, Range(4, 10_000), Doc(
        "hold tilts out only when the series has at least this many; with fewer, each tilt is "
        "too much of the data to spare and all are fitted, to the iteration cap",
        advanced=True)] = 12,
    heldout_counts: Annotated[float, Range(0, 0.5), Doc(
        "on a series with fewer tilts than heldout_min_tilts, hold out this fraction of every "
        "tilt's counts instead (binomial thinning; Poisson data term only) to choose each "
        "element's iteration and to stop; 0: fit all counts to the iteration cap",
        advanced=True)] = 0.0,
    patience: Annotated[int | None, Range(0, 10_000_000), Doc(
        "stop when the held-out error has not improved for this many iterations (0: never)",
        advanced=True)] = 300,
    eval_every: Annotated[int, Range(1, 10_000), Doc(
        "iterations between held-out evaluations", advanced=True)] = 10,
    warm_start: Annotated[WarmStart, Doc(
        "first fit the network to a TV or SIRT reconstruction of the training tilts",
        advanced=True)] = "none",
    warm_iterations: Annotated[int, Range(0, 100_000), Doc(
        "iterations of that warm start", advanced=True)] = 100,
    joint_tv: Annotated[bool, Doc("one vectorial TV over all elements", advanced=True)] = False,
    input_channels: Annotated[int, Range(1, 1024), Doc(
        "channels of the fixed noise input", advanced=True)] = 32,
    input_jitter: Annotated[float, Range(0, 1), Doc(
        "sigma of the fresh noise added to the input every step; typical 0.01-0.05",
        advanced=True)] = 0.02,
    head: Annotated[Head, Doc(
        "non-negative output: lrelu2 (exact zeros), relu2 or softplus", advanced=True)] = "lrelu2",
    weight_decay: Annotated[float, Range(0, 1), Doc("AdamW weight decay (0: off)",
                                                    advanced=True)] = 0.0,
    clip_grad: Annotated[float, Range(0, 1e6), Doc("gradient-norm clipping (0: off)",
                                                   advanced=True)] = 0.0,
    lr_decay: Annotated[float, Range(0, 1, lo_open=True), Doc(
        "learning rate at the last iteration relative to lr, exponential decay (1: constant)",
        advanced=True)] = 1.0,
    per_element: Annotated[bool, Doc("one network per element (DIP-TV)", advanced=True)] = False,
    coarse_iterations: Annotated[int, Range(0, 10_000_000), Doc(
        "iterations fitted at half resolution first (a half-size U-Net, then a full-resolution "
        "refinement level); 0: a full-size U-Net throughout", advanced=True)] = 200,
    fine_width: Annotated[int, Range(1, 1024), Doc(
        "channels of the coarse-to-fine network's full-resolution refinement level (at most "
        "widths[0]); its 3x3x3 convolution is most of a full-resolution step on a CPU",
        advanced=True)] = 8,
    refit: Annotated[bool, Doc(
        "after held-out stopping, fit again on all tilts (held-out ones included) from the same "
        "start to each element's chosen iteration and return that; up to twice the time",
        advanced=True)] = False,
    control: RunControl | None = None,
    resume: dict[str, Any] | None = None,
) -> Iterator[Snapshot]:
    """DIPm-TV: one 3D U-Net for all elements, one output channel each.

    Every parameter is declared in the signature (type, range, help); see
    :mod:`edxtomo.recon.params`. ``tv_weight`` has the same dimensionless
    meaning as in :func:`edxtomo.recon.tv.tv`.

    Parameters
    ----------
    control
        Receives progress every iteration. A user's stop request ends the
        run after the current iteration with the latest volumes; a spent
        time limit ends it as if converged (each element's held-out best).
    resume
        A state saved from a snapshot (``snap.state()``) of an interrupted
        run with the same settings and data: the run continues from it.

    Yields
    ------
    Snapshot
        ``losses`` has ``data``, ``tv``, ``total`` and (with ``heldout``)
        ``heldout``; the final one carries each element's best held-out
        iterate, ``info["best_iterations"]`` (per element) and
        ``info["best_iteration"]`` (the latest of them). Every snapshot's
        ``state`` returns the training state for ``resume``. A non-finite
        loss ends the run with ``stopped`` starting ``"non-finite loss"`` and
        the last finite volumes.

    With ``refit`` the held-out run chooses each element's iteration, then
    a second fit on all tilts from the same seeded start runs to the latest
    of them and returns each element at its own (``info["refit"]``); its
    snapshots continue the iteration count. A second fit that a time limit
    would cut short is not started, and one ended by a stop request or a
    time limit gives way to the held-out result (the final snapshot says so).
    """
    given = locals()
    settings = DipSettings(**{f.name: given[f.name] for f in fields(DipSettings)})
    if resume is not None and resume.get("refit_at") is not None:
        yield from _refit(series, settings, control, resume=resume)
        return
    first = None
    for snap in _iterate(series, settings, control, resume):
        if snap.final and settings.refit and "heldout" in snap.losses:
            first = snap
            break
        yield snap
    if first is not None:
        yield from _refit(series, settings, control, held_out_result=first)


@dataclass(frozen=True)
class DipSettings:
    """The validated parameters of a DIP run (see :func:`dipm_tv` for their meaning)."""

    tv_weight: float = DEFAULT_TV_WEIGHT
    iterations: int = 1750
    lr: float = 5e-3
    snapshot_every: int = 50
    device: str = "auto"
    seed: int = 0
    nz: int | None = None
    widths: Widths = (16, 32, 64, 128)
    skip_widths: Widths = (4, 8, 16, 32)
    loss: str = "auto"
    ema: float = 0.99
    heldout: int = 4
    heldout_min_tilts: int = 12
    heldout_counts: float = 0.0
    patience: int | None = 300
    eval_every: int = 10
    warm_start: str = "none"
    warm_iterations: int = 100
    joint_tv: bool = False
    input_channels: int = 32
    input_jitter: float = 0.02
    head: str = "lrelu2"
    weight_decay: float = 0.0
    clip_grad: float = 0.0
    lr_decay: float = 1.0
    per_element: bool = False
    coarse_iterations: int = 200
    fine_width: int = 8
    refit: bool = False

    def __post_init__(self) -> None:
        # The declarations in dipm_tv's signature are the one source of types and ranges.
        for name, value in check_call(dipm_tv, asdict(self)).items():
            object.__setattr__(self, name, value)
        if self.heldout == 1:
            raise ValueError("heldout=1 would hold out every tilt: use k >= 2, or 0 to disable")

    @property
    def method(self) -> str:
        return "dip-tv" if self.per_element else "dipm-tv"

    def heldout_every(self, n_angles: int) -> int:
        """``heldout`` for a series of ``n_angles`` tilts: 0 below ``heldout_min_tilts``.

        On the real 8-tilt series, holding one of the 7 fitted tilts out stopped DIPm-TV at
        ~500 iterations where the left-out tilt's error was still falling with all tilts
        fitted (docs/real-data.md).
        """
        return self.heldout if n_angles >= self.heldout_min_tilts else 0

    def counts_held(self, n_angles: int, loss: str) -> float:
        """Fraction of the counts held out instead of tilts (0: none), for the resolved ``loss``."""
        if self.heldout and not self.heldout_every(n_angles) and loss == "poisson":
            return self.heldout_counts
        return 0.0

    def heldout_off_reason(self, n_angles: int, loss: str = "poisson") -> str:
        """Why no tilts are held out although ``heldout`` asks for it (empty when they are)."""
        if not self.heldout or self.heldout_every(n_angles):
            return ""
        short = f"{n_angles} tilts, fewer than heldout_min_tilts ({self.heldout_min_tilts})"
        if fraction := self.counts_held(n_angles, loss):
            return f"{short}: {fraction:.0%} of every tilt's counts held out instead"
        why = ("all fitted, to the iteration cap" if not self.heldout_counts
               else "all fitted, to the iteration cap (counts are held out only with the Poisson data term)")
        return f"{short}: {why}"

    def resolved_loss(self, series: TiltSeries) -> str:
        """``auto`` → Poisson for counts (whole numbers, or aligned/normalised counts), else least squares."""
        if self.loss != "auto":
            return self.loss
        # Aligned or normalised counts are no longer whole numbers but still counts: the
        # Poisson term measured better on the aligned real series (docs/real-data.md).
        return "poisson" if series.counts else "ls"


@dataclass
class _Part:
    """Tilts ``idx`` with their normalised measurements and count scale (``meas·scale`` = counts)."""

    idx: torch.Tensor
    meas: torch.Tensor
    scale: torch.Tensor


class DipObjective:
    """Data and TV terms of a normalised volume, on the fitted and the held-out data.

    The held-out data are whole tilts (``held``), or with ``counts_fraction`` that fraction of
    every tilt's counts (:func:`~edxtomo.recon.stopping.thin_counts`; Poisson term only): each
    part is then a Poisson measurement of its share of the projection.
    """

    def __init__(self, prob: Problem, settings: DipSettings, loss: str,
                 train: np.ndarray, held: np.ndarray, counts_fraction: float = 0.0) -> None:
        dev = prob.device
        self.prob, self.loss, self.joint = prob, loss, settings.joint_tv
        self.tv_weight = float(settings.tv_weight)
        scale = torch.as_tensor(prob.tv_scale, dtype=prob.dtype, device=dev)
        self.tv_unit = scale.mean() if self.joint else scale
        sigma = torch.as_tensor(prob.sigma, dtype=prob.dtype, device=dev).reshape(-1, 1, 1, 1)
        self.train_idx = torch.as_tensor(train, device=dev)
        if counts_fraction:
            if loss != "poisson":
                raise ValueError("counts can be held out only with the Poisson data term")
            fitted, kept_out = thin_counts(prob.series.stack(), counts_fraction, settings.seed)
            parts = []
            for c, share in ((fitted, 1.0 - counts_fraction), (kept_out, counts_fraction)):
                s = sigma * share
                parts.append(_Part(self.train_idx, torch.as_tensor(c, dtype=prob.dtype, device=dev) / s, s))
            self.fit, self.held = parts
        else:
            held_idx = torch.as_tensor(held, device=dev)
            self.fit = _Part(self.train_idx, prob.meas[:, self.train_idx], sigma)
            self.held = _Part(held_idx, prob.meas[:, held_idx], sigma)
        self.has_held = bool(counts_fraction) or held.size > 0

    def misfit(self, proj: torch.Tensor, part: _Part) -> torch.Tensor:
        """Per-element data term of one part of the data, for a projection of all tilts."""
        if self.loss == "poisson":
            return poisson_nll(proj[:, part.idx], part.meas, part.scale)
        return data_misfit(proj[:, part.idx], part.meas)

    def loss_terms(self, vol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(data, weighted TV) on the fitted data, differentiable."""
        data = self.misfit(self.prob.forward(vol), self.fit).sum()
        tvv = (self.tv_weight * self.tv_unit * tv_norm(vol, joint=self.joint, eps=TV_EPS)).sum()
        return data, tvv

    def heldout_errors(self, vol: torch.Tensor) -> np.ndarray:
        """Per-element held-out error (lower predicts the unseen data better)."""
        return self.misfit(self.prob.forward(vol), self.held).cpu().numpy()

    def report(self, vol: torch.Tensor) -> dict[str, float]:
        """Same definitions as :func:`edxtomo.recon.tv.objective`: total = data + tv_weight · tv."""
        proj = self.prob.forward(vol)
        data = float(self.misfit(proj, self.fit).sum())
        tvv = float((self.tv_unit * tv_norm(vol, joint=self.joint)).sum())
        out = {"data": data, "tv": tvv, "total": data + self.tv_weight * tvv}
        if self.has_held:
            out["heldout"] = float(self.misfit(proj, self.held).sum())
        return out


def coarse_pays(shape: tuple[int, ...], levels: int) -> bool:
    """Whether a half-size input is at most a quarter of the full-size one once both are padded.

    The U-Net's input is padded to a multiple of ``2**levels`` and at least twice that, so on a
    small volume (32³ with four levels) the "half-size" input is as large as the full one and
    the coarse stage would save nothing: such volumes use the full-size U-Net throughout.
    """
    m = 2**levels
    full = np.prod(padded_shape(shape, m))
    half = np.prod(padded_shape([-(-n // 2) for n in shape], m))
    return bool(4 * half <= full)


class PairInput:
    """The half-size and full-size noise inputs of a :class:`CoarseToFine` network (one generator)."""

    def __init__(self, coarse: NoiseInput, fine: NoiseInput) -> None:
        self.coarse, self.fine, self.generator = coarse, fine, coarse.generator

    @property
    def base(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.coarse.base, self.fine.base

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.coarse(), self.fine()


def _build_network(settings: DipSettings, prob: Problem, train: torch.Tensor
                   ) -> tuple[torch.nn.Module, NoiseInput | PairInput]:
    """The seeded U-Net(s) and noise input, output level calibrated to the data."""
    dev, n_elem = prob.device, len(prob.elements)
    net_args = {"in_channels": settings.input_channels, "widths": settings.widths,
                "skip_widths": settings.skip_widths, "head": settings.head}
    coarse = settings.coarse_iterations > 0 and coarse_pays(prob.volume_shape, len(settings.widths))
    kind = CoarseToFine if coarse else UNet3D
    if coarse:
        net_args.update(fine_channels=FINE_INPUT_CHANNELS,
                        fine_width=min(settings.fine_width, settings.widths[0]))
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching global state
        torch.manual_seed(settings.seed)
        net = (PerElement(n_elem, kind, **net_args) if settings.per_element
               else kind(out_channels=n_elem, **net_args)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(settings.seed)
    if coarse:
        half = padded_shape([-(-n // 2) for n in prob.volume_shape], net.multiple)
        noise = PairInput(
            NoiseInput(settings.input_channels, half, INPUT_SCALE, settings.input_jitter, gen, dev,
                       prob.dtype),
            NoiseInput(FINE_INPUT_CHANNELS, [2 * n for n in half], INPUT_SCALE, settings.input_jitter,
                       gen, dev, prob.dtype))
    else:
        noise = NoiseInput(settings.input_channels, padded_shape(prob.volume_shape, net.multiple),
                           INPUT_SCALE, settings.input_jitter, gen, dev, prob.dtype)
    # Mass conservation: the mean of a normalised projection is the volume's mean.
    calibrate_gain(net, noise.base, prob.meas[:, train].flatten(1).mean(1))
    return net, noise


def _warm_target(series: TiltSeries, train: np.ndarray, prob: Problem, how: str) -> torch.Tensor:
    """Normalised TV or SIRT volume of the training tilts (held-out ones stay unseen)."""
    from . import run_to_end
    from .sirt import sirt
    from .tv import tv

    sub = TiltSeries({e: m[train] for e, m in series.maps.items()}, series.angles[train],
                     series.pixel_size, validate=False)
    gen = (tv(sub, iterations=WARM_TV_ITERATIONS, snapshot_every=WARM_TV_ITERATIONS,
              device=str(prob.device), nz=prob.nz) if how == "tv"
           else sirt(sub, iterations=WARM_SIRT_ITERATIONS, snapshot_every=WARM_SIRT_ITERATIONS,
                     device=str(prob.device), nz=prob.nz))
    vols = run_to_end(gen).volumes
    arr = np.stack([vols[e] / np.float32(prob.rho[i]) for i, e in enumerate(prob.elements)])
    return torch.from_numpy(arr).to(prob.device, prob.dtype)


def _ema_decay(ema: float, it: int) -> float:
    """Decay of the output average at iteration ``it`` (see :data:`EMA_RAMP`)."""
    return min(ema, (1 + it) / (EMA_RAMP + it))


def _ema_kept(ema: float, it: int) -> float:
    """Weight of the (zero) starting value in the average after ``it`` iterations."""
    kept = 1.0
    for i in range(1, it + 1):
        kept *= _ema_decay(ema, i)
    return kept


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _iterate(series: TiltSeries, s: DipSettings, control: RunControl | None,
             resume: dict[str, Any] | None, refit_at: np.ndarray | None = None,
             offset: int = 0) -> Iterator[Snapshot]:
    """The optimisation loop. With ``refit_at`` (the refit on all tilts, ``s.heldout`` 0) each
    element's volume is taken at its own iteration, and iterations are counted from ``offset``."""
    loss_kind = s.resolved_loss(series)
    prob = Problem.build(series, nz=s.nz, device=s.device)
    dev, n_elem, iterations = prob.device, len(prob.elements), s.iterations
    train, held = split_tilts(series.n_angles, s.heldout_every(series.n_angles))
    counts_held = s.counts_held(series.n_angles, loss_kind)
    objective = DipObjective(prob, s, loss_kind, train, held, counts_held)
    net, noise = _build_network(s, prob, objective.train_idx)
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    gamma = s.lr_decay ** (1.0 / max(1, iterations))
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma) if gamma != 1.0 else None
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    warm = _warm_target(series, train, prob, s.warm_start) if s.warm_start != "none" else None
    n_warm = min(s.warm_iterations, iterations - 1) if warm is not None else 0
    validated = objective.has_held
    patience = s.patience if s.patience and validated else None
    best = BestIterate(patience=patience)
    ema_acc = torch.zeros((n_elem, *prob.volume_shape), device=dev, dtype=prob.dtype)
    first = 1
    if resume is not None:
        first = _restore(resume, s, net, opt, scaler, schedule, noise, best, ema_acc) + 1
    info = {"heldout_angles": [float(a) for a in series.angles[held]], "tv_weight": s.tv_weight,
            "warm_start": s.warm_start, "loss": loss_kind,
            "coarse_to_fine": isinstance(noise, PairInput)}
    if counts_held:
        # The held-out counts are drawn with the seed: runs with one seed share them.
        info.update(heldout_counts=counts_held, heldout_counts_seed=s.seed)
    if off := s.heldout_off_reason(series.n_angles, loss_kind):
        info["heldout_off"] = off
    if first > 1:
        info["resumed_from"] = first - 1

    if s.coarse_iterations and first > s.coarse_iterations:
        set_fine(net)

    def state(it: int) -> dict[str, Any]:
        out = _state(it, s, net, opt, scaler, schedule, noise, best, ema_acc)
        if refit_at is not None:
            out.update(refit_at=[int(i) for i in refit_at], refit_offset=offset)
        return out

    kept = [_ema_kept(s.ema, first - 1)]  # product of the decays so far: the start's weight

    def current_volume() -> torch.Tensor:
        return ema_acc / (1 - kept[0]) if kept[0] < 1 else ema_acc

    net.train()
    begin(control)
    it, why, current = first - 1, StopReason.NONE, current_volume()
    try:
        for it in range(first, iterations + 1):
            if it == s.coarse_iterations + 1:
                set_fine(net)  # the refinement level starts at zero: the output does not jump
            with torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext():
                out = net(noise())
            # The sparse projector and the loss stay in float32, outside autocast.
            vol = crop_centre(out, prob.volume_shape)[0].float()
            if it <= n_warm:
                loss = 0.5 * (vol - warm).pow(2).mean() * n_elem
            else:
                data, tvv = objective.loss_terms(vol)
                loss = data + tvv
            if not _finite(loss):
                why = f"{StopReason.NON_FINITE} at iteration {it} (lower lr or tv_weight)"
                it -= 1
                break
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if s.clip_grad > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), s.clip_grad)
            scaler.step(opt)
            scaler.update()
            if schedule is not None:
                schedule.step()
            snap = None
            with torch.no_grad():
                decay = _ema_decay(s.ema, it)
                ema_acc.mul_(decay).add_(vol.detach(), alpha=1 - decay)
                kept[0] *= decay
                current = current_volume()
                stop = step(control, offset + it, offset + iterations)
                if refit_at is not None:
                    take = np.flatnonzero(refit_at == it)
                    if take.size:
                        best.update(it, np.where(refit_at == it, 0.0, np.inf), current)
                if validated and (it % s.eval_every == 0 or it == iterations or stop):
                    best.update(it, objective.heldout_errors(current), current)
                    if best.should_stop(it):
                        why = StopReason.EARLY_STOPPING
                if stop:
                    why = stop_reason(control)
                if why or it == iterations:
                    break
                if should_snapshot(it, iterations, s.snapshot_every):
                    snap = prob.snapshot(current, offset + it, offset + iterations,
                                         objective.report(current), s.method,
                                         best_iteration=best.best_iteration or it, **info)
                    snap.state = lambda it=it: state(it)
            # Yield outside no_grad: a suspended generator would leave grad mode off for the caller.
            if snap is not None:
                yield snap
        yield _final(prob, objective, best, current, it, iterations, why, patience, s.method, info,
                     lambda: state(it), offset)
    finally:
        # The closures above hold the network until the generator is gone; free the cache now.
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def _refit(series: TiltSeries, s: DipSettings, control: RunControl | None, *,
           held_out_result: Snapshot | None = None,
           resume: dict[str, Any] | None = None) -> Iterator[Snapshot]:
    """Fit all tilts again from the same start, each element to the iteration the held-out run chose.

    The held-out tilts chose *when* to stop; this fit gives the result their data. It is the
    same seeded network, input and schedule, so a chosen iteration count transfers.
    """
    if resume is not None:
        refit_at = np.asarray(resume["refit_at"], dtype=np.int64)
        offset = int(resume.get("refit_offset", 0))
    else:
        first = held_out_result
        assert first is not None
        if first.stopped == StopReason.USER or first.stopped.startswith(
                (StopReason.TIME_LIMIT, StopReason.NON_FINITE)):
            first.info["refit"] = "not run: the held-out run did not end by itself"
            yield first
            return
        chosen = first.info["best_iterations"]
        refit_at = np.array([max(1, int(chosen[e])) for e in series.elements], dtype=np.int64)
        offset = int(first.info["iterations_done"])
        left = control.seconds_to_limit() if control is not None else None
        if left is not None and left < control.elapsed() / max(1, offset) * refit_at.max():
            first.info["refit"] = (f"not run: {left:.0f} s left of the time limit, the refit needs "
                                   f"about {control.elapsed() / max(1, offset) * refit_at.max():.0f} s")
            yield first
            return
    settings = replace(s, heldout=0, heldout_counts=0.0, patience=0, iterations=int(refit_at.max()),
                       refit=False)
    if held_out_result is not None:
        held_out_result.state = None  # its closure holds the first network: free it for the refit
    last = None
    for snap in _iterate(series, settings, control, resume, refit_at=refit_at, offset=offset):
        if snap.final:
            last = snap
            break
        yield snap
    assert last is not None
    done = not last.stopped and last.info["iterations_done"] == settings.iterations
    if not done and held_out_result is not None:
        # A refit cut short is a worse volume than the held-out one it would have replaced.
        held_out_result.stopped = last.stopped
        held_out_result.state = last.state  # resuming continues the refit
        held_out_result.info["refit"] = (f"stopped at {last.info['iterations_done']} of "
                                         f"{settings.iterations} iterations: held-out result kept")
        yield held_out_result
        return
    chosen = dict(zip(series.elements, (int(i) for i in refit_at), strict=True))
    last.info.update(best_iterations=chosen, best_iteration=int(refit_at.max()),
                     heldout_angles=[] if held_out_result is None
                     else held_out_result.info["heldout_angles"],
                     refit={"iterations": chosen, "after": offset} if done else
                     f"stopped at {last.info['iterations_done']} of {settings.iterations} iterations")
    if held_out_result is not None:
        last.stopped = held_out_result.stopped  # why the held-out run ended: still the reason
        for key in ("heldout_counts", "heldout_counts_seed", "heldout_off"):
            if key in held_out_result.info:
                last.info[key] = held_out_result.info[key]
    yield last


@torch.no_grad()
def _final(prob: Problem, objective: DipObjective, best: BestIterate, current: torch.Tensor, it: int,
           iterations: int, why: str, patience: int | None, method: str, info: dict,
           state: Any, offset: int = 0) -> Snapshot:
    """The last snapshot: each element's held-out best, unless the user stopped to keep what they saw."""
    keep_current = why == StopReason.USER or best.best_volume is None
    final = current if keep_current else best.best_volume
    if not _finite(final):
        final = best.best_volume if best.best_volume is not None and _finite(best.best_volume) \
            else torch.zeros_like(current)
    stopped = (f"{StopReason.EARLY_STOPPING}: held-out error did not improve for {patience} iterations"
               if why == StopReason.EARLY_STOPPING else str(why))
    per_element = (dict(zip(prob.elements, (int(i) for i in best.best_iterations), strict=True))
                   if best.best_iterations is not None else {e: it for e in prob.elements})
    snap = prob.snapshot(final, offset + it, offset + iterations, objective.report(final), method,
                         final=True, stopped=stopped, best_iteration=best.best_iteration or it,
                         best_iterations=per_element, iterations_done=it, **info)
    snap.state = state
    return snap


def _state(it: int, s: DipSettings, net: torch.nn.Module, opt: torch.optim.Optimizer,
           scaler: Any, schedule: Any, noise: NoiseInput | PairInput, best: BestIterate,
           ema_acc: torch.Tensor) -> dict[str, Any]:
    """Everything needed to continue the run after iteration ``it`` (tensors, numbers, lists)."""
    return {
        "version": STATE_VERSION, "method": s.method, "iteration": it,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()},
        "net": net.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
        "schedule": schedule.state_dict() if schedule is not None else None,
        "noise_rng": noise.generator.get_state(), "ema": ema_acc.detach().cpu(),
        "best_errors": None if best.best_errors is None else torch.from_numpy(best.best_errors.copy()),
        "best_iterations": None if best.best_iterations is None
        else torch.from_numpy(best.best_iterations.copy()),
        "best_volume": None if best.best_volume is None else best.best_volume.detach().cpu(),
    }


def _restore(state: dict[str, Any], s: DipSettings, net: torch.nn.Module, opt: torch.optim.Optimizer,
             scaler: Any, schedule: Any, noise: NoiseInput | PairInput, best: BestIterate,
             ema_acc: torch.Tensor) -> int:
    """Load a :func:`_state` into a freshly built run; returns the iteration it was taken at."""
    if state.get("version") != STATE_VERSION or state.get("method") != s.method:
        raise ValueError(f"the saved state is not a {s.method} state of this version "
                         f"(found {state.get('method')!r}, version {state.get('version')!r})")
    mine = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}
    saved = {**ADDED_LATER, **state.get("settings", {})}  # states saved before those existed
    differ = [k for k in mine if k not in ("iterations", "snapshot_every", "patience", "device")
              and saved.get(k) != mine[k]]
    if differ:
        raise ValueError(f"cannot resume: the saved run used other settings for {', '.join(differ)}")
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    if schedule is not None and state.get("schedule") is not None:
        schedule.load_state_dict(state["schedule"])
    noise.generator.set_state(state["noise_rng"])
    ema_acc.copy_(state["ema"].to(ema_acc))
    if state.get("best_volume") is not None:
        best.best_errors = state["best_errors"].numpy().astype(np.float64)
        best.best_iterations = state["best_iterations"].numpy().astype(np.int64)
        best.best_volume = state["best_volume"].to(ema_acc)
    return int(state["iteration"])
