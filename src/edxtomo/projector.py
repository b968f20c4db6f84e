"""Parallel-beam, single-tilt-axis projector as one sparse matrix, in torch.

Every ``y`` slice of the volume is the same 2D problem, so one system matrix
``A`` of shape ``(n_angles * n_det, nz * nx)`` serves all slices and all
elements in a single sparse-dense product. The weights are the exact areas of
intersection between each detector strip and each voxel (the "strip" model):
the projection conserves mass at every angle and ``Aᵀ`` is the exact adjoint.

Geometry: a voxel at ``(z, x)`` relative to the volume centre lands on the
detector at ``u = x cos θ + z sin θ``. ``z`` increases with the volume's first
index, ``x`` with its last, so a point above the centre (larger ``z`` index)
moves to larger ``x`` in a projection at positive tilt.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch

__all__ = ["ParallelProjector", "system_matrix"]


def _trapezoid_cdf(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CDF of the footprint of a unit square: uniform(width a) * uniform(width b)."""
    small = np.minimum(a, b) < 1e-6
    wide = np.maximum(a, b)
    # Degenerate (axis-aligned) footprint: a box of width `wide`.
    box = np.clip((t + wide / 2) / wide, 0.0, 1.0)
    a_ = np.where(small, 1.0, a)
    b_ = np.where(small, 1.0, b)

    def g(s: np.ndarray) -> np.ndarray:
        return 0.5 * np.maximum(s, 0.0) ** 2

    half_sum, half_diff = (a_ + b_) / 2, (a_ - b_) / 2
    trap = (g(t + half_sum) - g(t + half_diff) - g(t - half_diff) + g(t - half_sum)) / (a_ * b_)
    return np.where(small, box, np.clip(trap, 0.0, 1.0))


@lru_cache(maxsize=16)
def _system_matrix_cached(
    angles_deg: tuple[float, ...], nz: int, nx: int, n_det: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    zc = np.arange(nz) - (nz - 1) / 2.0
    xc = np.arange(nx) - (nx - 1) / 2.0
    zz, xx = np.meshgrid(zc, xc, indexing="ij")
    col = np.arange(nz * nx)
    rows, cols, vals = [], [], []
    det0 = (n_det - 1) / 2.0
    for ia, th in enumerate(theta):
        c, s = np.cos(th), np.sin(th)
        a, b = abs(c), abs(s)
        centre = (xx * c + zz * s).ravel() + det0  # footprint centre in detector-bin units
        j0 = np.floor(centre).astype(np.int64)
        # The footprint is at most sqrt(2) wide: bins j0-1..j0+2 cover it.
        for dj in (-1, 0, 1, 2):
            j = j0 + dj
            lo = j - 0.5 - centre
            w = _trapezoid_cdf(lo + 1.0, np.full_like(lo, a), np.full_like(lo, b)) - _trapezoid_cdf(
                lo, np.full_like(lo, a), np.full_like(lo, b)
            )
            ok = (w > 1e-12) & (j >= 0) & (j < n_det)
            rows.append(ia * n_det + j[ok])
            cols.append(col[ok])
            vals.append(w[ok])
    r = np.concatenate(rows)
    cidx = np.concatenate(cols)
    v = np.concatenate(vals)
    return r, cidx, v, (theta.size * n_det, nz * nx)


def system_matrix(
    angles_deg: np.ndarray, nz: int, nx: int, n_det: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """COO triplets ``(rows, cols, values, shape)`` of the strip-model matrix.

    Rows index ``angle * n_det + detector_bin``; columns index ``z * nx + x``.
    """
    n_det = nx if n_det is None else int(n_det)
    key = tuple(float(a) for a in np.asarray(angles_deg, dtype=np.float64).ravel())
    return _system_matrix_cached(key, int(nz), int(nx), n_det)


def _csr(rows, cols, vals, shape, dtype, device) -> torch.Tensor:
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    crow = np.zeros(shape[0] + 1, dtype=np.int64)
    np.add.at(crow, rows + 1, 1)
    crow = np.cumsum(crow)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow),
            torch.from_numpy(cols.astype(np.int64)),
            torch.from_numpy(vals).to(dtype),
            size=shape,
            check_invariants=False,
        ).to(device)


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat: torch.Tensor, mat: torch.Tensor, mat_t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mat_t)
        return torch.sparse.mm(mat, flat)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mat_t,) = ctx.saved_tensors
        return torch.sparse.mm(mat_t, grad.contiguous()), None, None


class ParallelProjector:
    """Forward and back projection for a stack of element volumes.

    Parameters
    ----------
    angles
        Tilt angles in degrees.
    nz, nx
        Volume size along the beam (at 0°) and across the tilt axis; any
        number of ``y`` slices can be projected.
    n_det
        Detector bins perpendicular to the tilt axis (default ``nx``).
    device, dtype
        Where and in which precision the matrix lives.

    Notes
    -----
    Volumes are tensors ``(n_elements, nz, ny, nx)`` and projections
    ``(n_elements, n_angles, ny, n_det)``. :meth:`forward` is differentiable;
    its gradient applies the exact transpose.
    """

    def __init__(
        self,
        angles: np.ndarray,
        nz: int,
        nx: int,
        n_det: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.angles = np.asarray(angles, dtype=np.float64).ravel()
        self.nz, self.nx = int(nz), int(nx)
        self.n_det = nx if n_det is None else int(n_det)
        self.device = torch.device(device)
        self.dtype = dtype
        rows, cols, vals, mshape = system_matrix(self.angles, nz, nx, self.n_det)
        self._mat = _csr(rows, cols, vals, mshape, dtype, self.device)
        self._mat_t = _csr(cols, rows, vals, (mshape[1], mshape[0]), dtype, self.device)

    @property
    def n_angles(self) -> int:
        return int(self.angles.size)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        """Project ``(E, nz, ny, nx)`` → ``(E, n_angles, ny, n_det)``."""
        if volumes.ndim != 4:
            raise ValueError(
                f"expected volumes shaped (n_elements, nz, ny, nx), got shape {tuple(volumes.shape)}"
            )
        e, nz, ny, nx = volumes.shape
        if (nz, nx) != (self.nz, self.nx):
            raise ValueError(
                f"volume shape {(nz, ny, nx)} does not match the projector's nz={self.nz}, nx={self.nx}"
            )
        flat = volumes.permute(1, 3, 0, 2).reshape(nz * nx, e * ny)
        out = _Project.apply(flat, self._mat, self._mat_t)
        return out.reshape(self.n_angles, self.n_det, e, ny).permute(2, 0, 3, 1)

    def adjoint(self, projections: torch.Tensor) -> torch.Tensor:
        """Back-project ``(E, n_angles, ny, n_det)`` → ``(E, nz, ny, nx)`` (exact transpose)."""
        if projections.ndim != 4:
            raise ValueError(
                "expected projections shaped (n_elements, n_angles, ny, n_det), "
                f"got shape {tuple(projections.shape)}"
            )
        e, na, ny, nd = projections.shape
        if (na, nd) != (self.n_angles, self.n_det):
            raise ValueError(
                f"projection shape {(na, ny, nd)} does not match projector "
                f"({self.n_angles}, ny, {self.n_det})"
            )
        nz, nx = self.nz, self.nx
        flat = projections.permute(1, 3, 0, 2).reshape(na * nd, e * ny)
        out = _Project.apply(flat, self._mat_t, self._mat)
        return out.reshape(nz, nx, e, ny).permute(2, 0, 3, 1)

    __call__ = forward

    def row_sums(self) -> torch.Tensor:
        """``A·1`` as a projection-shaped tensor ``(1, n_angles, 1, n_det)``."""
        ones = torch.ones(self._mat.shape[1], 1, dtype=self.dtype, device=self.device)
        return torch.sparse.mm(self._mat, ones).reshape(1, self.n_angles, 1, self.n_det)

    def col_sums(self) -> torch.Tensor:
        """``Aᵀ·1`` as a volume-shaped tensor ``(1, nz, 1, nx)``."""
        nz, nx = self.nz, self.nx
        ones = torch.ones(self._mat_t.shape[1], 1, dtype=self.dtype, device=self.device)
        return torch.sparse.mm(self._mat_t, ones).reshape(1, nz, 1, nx)
