"""Image-quality metrics after a least-squares scale fit.

A reconstruction is in count units and the ground truth in concentration
units, so each volume is first scaled by the factor ``a`` minimising
``||a·rec − truth||²`` before PSNR, SSIM and NRMSE are computed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage


def fit_scale(rec: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``a·rec`` with ``a = <rec, truth> / <rec, rec>``."""
    r = rec.astype(np.float64)
    denom = float((r * r).sum())
    return r * (float((r * truth).sum()) / denom if denom > 0 else 0.0)


def psnr(rec: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak = range of ``truth``)."""
    t = truth.astype(np.float64)
    mse = float(np.mean((fit_scale(rec, t) - t) ** 2))
    peak = float(t.max() - t.min()) or 1.0
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def nrmse(rec: np.ndarray, truth: np.ndarray) -> float:
    """``||a·rec − truth|| / ||truth||``."""
    t = truth.astype(np.float64)
    return float(np.linalg.norm(fit_scale(rec, t) - t) / (np.linalg.norm(t) or 1.0))


def ssim(rec: np.ndarray, truth: np.ndarray, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window, any dimension."""
    t = truth.astype(np.float64)
    r = fit_scale(rec, t)
    data_range = float(t.max() - t.min()) or 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma, truncate=3.5)

    mu_r, mu_t = blur(r), blur(t)
    var_r = blur(r * r) - mu_r**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(r * t) - mu_r * mu_t
    s = ((2 * mu_r * mu_t + c1) * (2 * cov + c2)) / ((mu_r**2 + mu_t**2 + c1) * (var_r + var_t + c2))
    return float(s.mean())


def compare(volumes: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{element: {"psnr", "ssim", "nrmse"}}`` plus ``"mean"`` over elements."""
    out: dict[str, dict[str, float]] = {}
    for e, t in truth.items():
        if e not in volumes:
            continue
        v = volumes[e]
        out[e] = {"psnr": psnr(v, t), "ssim": ssim(v, t), "nrmse": nrmse(v, t)}
    if out:
        out["mean"] = {k: float(np.mean([m[k] for m in out.values()])) for k in ("psnr", "ssim", "nrmse")}
    return out
