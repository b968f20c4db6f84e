"""The measured data of a run turned into tensors, shared by all algorithms."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..devices import resolve_device
from ..projector import ParallelProjector
from ..tiltseries import TiltSeries
from .objective import element_scales, tv_scales
from .snapshot import Snapshot


@dataclass
class Problem:
    """Projections, projector and normalisation for one reconstruction.

    ``meas`` holds the normalised projections ``b_e / sigma_e``
    ``(E, n_angles, ny, nx)``; volumes are solved for in units of ``rho_e``
    (see :mod:`edxtomo.recon.objective`).
    """

    series: TiltSeries
    projector: ParallelProjector
    meas: torch.Tensor
    sigma: np.ndarray
    nz: int
    tv_scale: np.ndarray
    device: torch.device
    dtype: torch.dtype
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def build(
        cls,
        series: TiltSeries,
        nz: int | None = None,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float32,
    ) -> Problem:
        dev = resolve_device(device)
        _, _, nx = series.shape
        nz = nx if nz is None else int(nz)
        if nz < 1:
            raise ValueError(f"volume depth nz must be >= 1, got {nz}")
        data = series.stack()
        sigma = element_scales(data)
        meas = torch.from_numpy((data / sigma[:, None, None, None]).astype(np.float32))
        proj = ParallelProjector(series.angles, nz, nx, device=dev, dtype=dtype)
        scale = tv_scales(data, sigma, nz * data.shape[2] * nx)
        return cls(series, proj, meas.to(dev, dtype), sigma, nz, scale, dev, dtype)

    def tv_weights(self, tv_weight: float) -> torch.Tensor:
        """Effective per-element TV weights ``(E, 1, 1, 1)``: ``tv_weight · tv_scale``."""
        w = torch.as_tensor(float(tv_weight) * self.tv_scale, dtype=self.dtype, device=self.device)
        return w.reshape(-1, 1, 1, 1)

    @property
    def elements(self) -> list[str]:
        return self.series.elements

    @property
    def rho(self) -> np.ndarray:
        """Volume unit of each element (counts per voxel)."""
        return self.sigma / self.nz

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        _, ny, nx = self.series.shape
        return (self.nz, ny, nx)

    def forward(self, vol: torch.Tensor) -> torch.Tensor:
        """Normalised projection of normalised volumes: ``A x / nz``."""
        return self.projector.forward(vol) / self.nz

    def adjoint(self, proj: torch.Tensor) -> torch.Tensor:
        return self.projector.adjoint(proj) / self.nz

    def to_numpy(self, vol: torch.Tensor) -> dict[str, np.ndarray]:
        """Normalised volumes → ``{element: float32 array}`` in count units (copies)."""
        arr = vol.detach().to("cpu", torch.float32).numpy()
        return {
            e: (arr[i] * np.float32(self.rho[i])).astype(np.float32, copy=True)
            for i, e in enumerate(self.elements)
        }

    def snapshot(self, vol: torch.Tensor, iteration: int, total: int, losses: dict[str, float],
                 method: str, final: bool = False, stopped: str = "", **info) -> Snapshot:
        return Snapshot(
            iteration=iteration,
            total=total,
            volumes=self.to_numpy(vol),
            losses={k: float(v) for k, v in losses.items()},
            elapsed_s=time.perf_counter() - self.started,
            method=method,
            final=final,
            stopped=stopped,
            info={"device": str(self.device), **info},
        )


def check_common(iterations: int, snapshot_every: int) -> None:
    """Clear errors for parameters shared by every algorithm."""
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if int(snapshot_every) < 1:
        raise ValueError(f"snapshot_every must be >= 1, got {snapshot_every}")


def should_snapshot(it: int, total: int, every: int) -> bool:
    return it == total or it % every == 0
