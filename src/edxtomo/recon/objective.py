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

The best TV weight still depends on how noisy the data are, on how fine the
grid is (a mean over voxels shrinks the TV of a fixed object as ``1/n``) and
on the object: TV lowers the contrast of a feature of size ``l`` by about
``weight / l``, so large flat layers bear several times the weight that
small particles or thin shells do. Each element's TV term is therefore
multiplied by

    tv_scale_e = sqrt(nu_e / NU_REF) · (N_DEFAULT / N_REF) · (n / N_DEFAULT) ** GRID_POWER
                 · ((l_e / nx) / L_REF) ** L_POWER · (TILTS_REF / n_tilts)

where ``nu_e`` is the noise variance of the normalised maps *where the
element is* (pixels of its lightly smoothed maps at half its peak ``sigma_e``
or more): for Poisson counts the mean count there over ``sigma_e²``, for other
maps an estimate from pixel-to-neighbour differences away from the features'
edges. ``n`` is the cube root of the voxel count and ``l_e`` the element's
feature size in pixels measured on its maps (:func:`feature_sizes`: mean
signal over noise-corrected mean squared gradient, the half-width of a
flat-topped band), relative to the map width ``nx``. The data term is a
mean over measurements, so with fewer tilts each carries more of it and
the TV term less: ``TILTS_REF / n_tilts`` restores the balance a sum
would have. The grid term grows as ``n ** GRID_POWER`` (0.5), not ``n``:
at the same counts per pixel a finer grid sees each feature through more
pixels, so the noise per feature falls as the TV of a fixed object does;
measured, the best weights at 64³ were about half those at 32³ on both
phantoms with a linear term (docs/benchmarks.md). It is anchored at
``N_DEFAULT`` (32), the size the default weights were chosen at. The references are those of the 64³ core–shell phantom at
5 counts per pixel and 17 tilts, so there the factor is about 1.

Why these powers (measured, docs/algorithms.md): with the noise *variance*
(power 1) and no object term the best weight on a layered memory-cell
phantom was 1.6–11× the best on core–shell particles, and it moved with dose
on the one but not the other; the noise *standard deviation* (as for a
soft-threshold, whose best threshold grows with the noise level, not its
square), the feature size and the tilt count bring both objects, both
doses and both tilt schemes within about 0.5 dB of their best with one
weight. Measuring the noise over the element's own features, not over the
whole map, matters: a compact core and a thin shell recorded at the same dose
have the same noise at their signal, but the core's map is mostly empty, so
a whole-map mean made the core look five times less noisy than the shell.

The objective is

    sum_e [ 0.5·mean(((A x_e/nz − b_e/sigma_e))²) + tv_weight · tv_scale_e · mean |∇x_e| ]

with ``x`` in units of ``rho_e``: ``tv_weight`` is dimensionless and its best
value moves little with dose, volume size, element abundance, tilt scheme or
object type (measurements in docs/algorithms.md and docs/benchmarks.md).
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
#: Grid size the default weights were chosen at, and the power the grid term grows with.
N_DEFAULT = 32
GRID_POWER = 0.5
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


def _pixel_variance_off_edges(b: np.ndarray, sigma: float) -> float:
    """Mean noise variance per pixel of ``(n_angles, ny, nx)`` maps, away from feature edges."""
    where = _lightly_smoothed(b) >= FEATURE_LEVEL * sigma
    box = np.ones((1, 3, 3), bool)
    edge = ndimage.binary_dilation(where, structure=box) & ndimage.binary_dilation(~where, structure=box)
    neigh = 0.25 * (b[:, :-2, 1:-1] + b[:, 2:, 1:-1] + b[:, 1:-1, :-2] + b[:, 1:-1, 2:])
    resid = (b[:, 1:-1, 1:-1] - neigh) ** 2 / 1.25
    keep = ~edge[:, 1:-1, 1:-1]
    return float(resid[keep].mean() if keep.any() else resid.mean())


def feature_sizes(projections: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per-element feature size ``l_e`` in pixels of ``(E, n_angles, ny, nx)`` maps.

    ``l = mean(b) · h / G²`` with ``h`` the mean level where the element is
    (pixels at half its peak or more, as in :func:`noise_variance`) and ``G²``
    the mean squared difference of
    neighbouring pixels (along y and x, summed) less its noise part: a
    flat-topped band of width ``w`` gives ``w / 2``, a
    flat disc of radius ``r`` about ``0.4·r``. For Poisson counts the noise part
    of ``(b_i − b_j)²`` is ``b_i + b_j`` (unbiased whatever the dose); for
    other maps it is twice the pixel noise variance, measured from each
    pixel's difference to its four neighbours over the whole map except a
    band along the features' edges (the gradient's noise part is a mean over
    the whole map, mostly empty for a compact object). At most 95 % of the
    raw ``G²`` is removed so that a map of noise does not pass for one flat
    feature.
    """
    out = np.empty(projections.shape[0], dtype=np.float64)
    for i, stack in enumerate(projections):
        b = stack.astype(np.float64)
        dy, dx = np.diff(b, axis=1), np.diff(b, axis=2)
        raw = float((dy**2).mean() + (dx**2).mean()) if min(dy.size, dx.size) else 0.0
        if np.allclose(b, np.round(b)):
            noise = float((b[:, 1:] + b[:, :-1]).mean() + (b[:, :, 1:] + b[:, :, :-1]).mean())
        else:
            noise = 4.0 * _pixel_variance_off_edges(b, sigma[i])
        g2 = max(raw - noise, 0.05 * raw)
        # The height of an edge: the mean level where the element is (unbiased
        # at any dose, unlike a high percentile of noisy counts).
        where = _lightly_smoothed(b) >= FEATURE_LEVEL * sigma[i]
        height = float(b[where].mean()) if where.any() else sigma[i]
        out[i] = float(b.mean()) * height / g2 if g2 > 0 else np.inf
    return out


L_REF = 0.053
L_POWER = 1.0
TILTS_REF = 17
#: The object factor is kept within these bounds (flat or featureless maps).
L_FACTOR_RANGE = (0.2, 10.0)


def tv_scales(projections: np.ndarray, sigma: np.ndarray, n_voxels: int) -> np.ndarray:
    """Per-element factor on the TV term (see the module docstring)."""
    nu = noise_variance(projections, sigma)
    size = feature_sizes(projections, sigma) / projections.shape[-1]
    # Noiseless (simulated) data would switch TV off entirely; keep a floor.
    noise = np.sqrt(np.maximum(nu, 0.01 * NU_REF) / NU_REF)
    obj = np.clip((size / L_REF) ** L_POWER, *L_FACTOR_RANGE)
    tilts = TILTS_REF / projections.shape[1]
    grid = (N_DEFAULT / N_REF) * (n_voxels ** (1 / 3) / N_DEFAULT) ** GRID_POWER
    return noise * obj * tilts * grid


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
