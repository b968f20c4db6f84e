"""Normalised loss terms shared by TV and the deep-image-prior methods.

The published DIP-TV code adds a *sum* of TV over voxels to a *mean* squared
projection error, so its weight had to be 1e-10 on one dataset and 1e-11 on
another. Here every term is made dimensionless instead:

* projections of element ``e`` are divided by ``sigma_e``, the 99th percentile
  of its (lightly smoothed) maps, so a residual is a fraction of the peak
  signal whatever the dose or the element's abundance;
* volumes are expressed in units ``rho_e = sigma_e / nz`` (the density that
  would give the peak signal through the full depth), so an edge between
  empty space and material is a jump of order one;
* the data term is a mean over measurements and the TV term a mean over
  voxels, so neither grows with the number of tilts or the volume size.

The best TV weight still depends on how noisy the data are and on how fine
the grid is (a mean over voxels shrinks the TV of a fixed object as ``1/n``).
Each element's TV term is therefore multiplied by

    tv_scale_e = (nu_e / NU_REF) · (n / N_REF)

where ``nu_e`` is the noise variance of the normalised maps *where the
element is* (pixels of its lightly smoothed maps at half its peak ``sigma_e``
or more): for Poisson counts the mean count there over ``sigma_e²``, for other
maps an estimate from pixel-to-neighbour differences away from the features'
edges. ``n`` the cube root of the voxel
count, and the references are those of the 64³ core–shell phantom at 5 counts
per pixel. Measuring the noise over the element's own features, not over the
whole map, matters: a compact core and a thin shell recorded at the same dose
have the same noise at their signal, but the core's map is mostly empty, so a
whole-map mean made the core look five times less noisy than the shell and
gave the shell five times its TV weight, while each element's best TV weight
(swept alone) is about the same.  The objective is

    sum_e [ 0.5·mean(((A x_e/nz − b_e/sigma_e))²) + tv_weight · tv_scale_e · mean |∇x_e| ]

with ``x`` in units of ``rho_e``: ``tv_weight`` is dimensionless and its best
value moves little with dose, volume size, element abundance or tilt count
(measurements in docs/algorithms.md).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def _lightly_smoothed(stack: np.ndarray) -> np.ndarray:
    """3×3 in-plane mean of ``(n_angles, ny, nx)`` maps: the scale and the feature mask agree on it."""
    return ndimage.uniform_filter(stack.astype(np.float64), size=(1, 3, 3), mode="nearest")


def element_scales(projections: np.ndarray) -> np.ndarray:
    """Per-element signal scale ``sigma_e`` of ``(E, n_angles, ny, nx)`` maps."""
    out = np.empty(projections.shape[0], dtype=np.float64)
    for i, stack in enumerate(projections):
        smooth = _lightly_smoothed(stack)
        q = float(np.quantile(smooth, 0.99))
        out[i] = q if q > 0 else max(float(smooth.max()), 1e-12)
    return out


NU_REF = 0.15
N_REF = 64
FEATURE_LEVEL = 0.5


def noise_variance(projections: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per-element noise variance of the normalised maps ``projections / sigma`` at the signal.

    Only the pixels where the element is count: where its smoothed map is at
    least ``FEATURE_LEVEL · sigma``. Integer-valued maps are taken as Poisson
    counts: the variance is their mean count there. Other maps
    (background-subtracted, rescaled) get an estimate from the residual of
    each pixel against the mean of its four neighbours, over those pixels
    shrunk by one pixel so that the features' edges do not pass for noise.
    """
    out = np.empty(projections.shape[0], dtype=np.float64)
    for i, stack in enumerate(projections):
        b = stack.astype(np.float64)
        where = _lightly_smoothed(b) >= FEATURE_LEVEL * sigma[i]
        if not where.any():
            where = np.ones_like(where)
        if np.allclose(b, np.round(b)):
            var = b[where].mean()
        else:
            inner = ndimage.binary_erosion(where, structure=np.ones((1, 3, 3), bool))
            if not inner.any():  # features thinner than three pixels
                inner = where
            neigh = 0.25 * (b[:, :-2, 1:-1] + b[:, 2:, 1:-1] + b[:, 1:-1, :-2] + b[:, 1:-1, 2:])
            # For white noise, var(b − mean of 4 neighbours) = 1.25·var(b).
            resid = (b[:, 1:-1, 1:-1] - neigh) ** 2 / 1.25
            core = inner[:, 1:-1, 1:-1]
            var = float(resid[core].mean() if core.any() else resid.mean())
        out[i] = var / sigma[i] ** 2
    return out


def tv_scales(projections: np.ndarray, sigma: np.ndarray, n_voxels: int) -> np.ndarray:
    """Per-element factor on the TV term (see the module docstring)."""
    nu = noise_variance(projections, sigma)
    # Noiseless (simulated) data would switch TV off entirely; keep a floor.
    nu = np.maximum(nu, 0.01 * NU_REF)
    return nu / NU_REF * (n_voxels ** (1 / 3) / N_REF)


def gradient(vol: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundaries: ``(..., nz, ny, nx)`` → ``(3, ..., nz, ny, nx)``."""
    gz = torch.zeros_like(vol)
    gy = torch.zeros_like(vol)
    gx = torch.zeros_like(vol)
    gz[..., :-1, :, :] = vol[..., 1:, :, :] - vol[..., :-1, :, :]
    gy[..., :, :-1, :] = vol[..., :, 1:, :] - vol[..., :, :-1, :]
    gx[..., :, :, :-1] = vol[..., :, :, 1:] - vol[..., :, :, :-1]
    return torch.stack((gz, gy, gx))


def divergence(p: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`gradient`."""
    pz, py, px = p[0], p[1], p[2]
    out = torch.zeros_like(pz)
    out[..., :-1, :, :] += pz[..., :-1, :, :]
    out[..., 1:, :, :] -= pz[..., :-1, :, :]
    out[..., :, :-1, :] += py[..., :, :-1, :]
    out[..., :, 1:, :] -= py[..., :, :-1, :]
    out[..., :, :, :-1] += px[..., :, :, :-1]
    out[..., :, :, 1:] -= px[..., :, :, :-1]
    return out


def tv_norm(vol: torch.Tensor, joint: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Mean isotropic TV of normalised volumes ``(E, nz, ny, nx)``.

    Returns per-element values ``(E,)``; with ``joint`` the gradient magnitude
    couples all elements (vectorial TV) and the result is a 1-element tensor.
    ``eps`` smooths the magnitude at zero so autograd stays finite.
    """
    sq = gradient(vol).pow(2).sum(0)
    n_vox = vol[0].numel()
    if joint:
        return (torch.sqrt(sq.sum(0) + eps).sum() / n_vox).reshape(1)
    return torch.sqrt(sq + eps).flatten(1).sum(1) / n_vox


def data_misfit(pred: torch.Tensor, meas: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-element ``0.5·mean((pred − meas)²)`` of normalised projections ``(E, na, ny, nd)``."""
    r = (pred - meas) ** 2
    if mask is None:
        return 0.5 * r.flatten(1).mean(1)
    w = mask.to(r.dtype)
    return 0.5 * (r * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)


def poisson_nll(pred: torch.Tensor, meas: torch.Tensor, scale: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-element Poisson deviance of normalised projections, scaled like :func:`data_misfit`.

    ``scale`` ``(E, 1, 1, 1)`` holds ``sigma_e``: counts are ``meas·sigma``. The
    deviance is divided by ``sigma`` so that for high counts it tends to the
    least-squares term with a per-pixel variance weighting.
    """
    lam = (pred * scale).clamp_min(1e-6)
    k = meas * scale
    dev = lam - k + torch.where(k > 0, k * torch.log(k.clamp_min(1e-12) / lam), torch.zeros_like(k))
    dev = dev / scale
    if mask is None:
        return dev.flatten(1).mean(1)
    w = mask.to(dev.dtype)
    return (dev * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)
