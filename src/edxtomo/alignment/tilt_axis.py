"""In-plane direction of the tilt axis, from the direction in which features move with tilt.

Under a single tilt axis every point of the object moves, as the tilt
changes, *perpendicular* to the axis: in a map whose rows run along the true
axis, ``∂p/∂θ = −v(x, y) · ∂p/∂x`` with a local speed ``v`` (the point's
depth). In a map rotated in plane by ``δ`` against the axis the motion has a
component along the rows too::

    ∂p/∂θ ≈ −v · (∂p/∂x + tan δ · ∂p/∂y)

The estimate (``parallax``): correct the stack at the current axis, scale
each tilt to the mean tilt's counts, take the square root (Poisson counts
then carry the same noise variance everywhere, so the plain least squares
below are the properly weighted ones), smooth, fit every pixel linearly (plus
a quadratic term for the ``cos θ`` part of the motion) in the tilt angle,
which gives the mean map ``A`` and its tilt derivative ``B``; tilts whose
misfit exceeds 3× the median tilt's (a damaged tilt) are left out of a refit.
Then find ``s = tan δ`` minimising the residual of ``B`` after the best local
speed ``v`` in each Gaussian window and one uniform drift along the axis
(translation errors correlated with the tilt). The correction is added to
the axis and the estimate repeated until it moves by less than 0.05°. No
reconstruction is involved: well under a second per round at 64 px.

Why not the leave-one-out score over an angle scan (the first version): on
the synthetic test series it changed by ~3 % over ±6° and its minimum was
1–3° off; on the real series it fell monotonically toward −10° because the
pixels scored shrink as the rotated corners are masked out. Scanning ±2°
around the parallax estimate on one fixed raw-frame mask (Poisson deviance
of the leave-one-out predictions) was no better: 0.07–3.4° off over 6 cases,
~30 s each.

Measured (tests/test_alignment_real.py's synthetic series, 40 px object in a
56 px field, 17 tilts, ~10 counts/px per element, axes +3, −4, +2, +5°, 6
noise seeds each, translation-only shifts as in ``align_tilt_series``):
counts without the square root or the refit 0.02–1.41° off (rms 0.60°, 13 of
24 within 0.3°); square root alone rms 0.45° (max 1.29°); square root and
refit 0.01–1.16° off (rms 0.43°, 14 of 24 within 0.3°, 19 within 0.45°):
not yet the 0.3° the tests should ask for. The spread is the counts' noise
(in the mean map's gradient and in the tilt derivative alike); noise-free
the estimate is within 0.45° (0.1° without the square root). At 28 px
(features move by 1–4 px over the tilt range, so a 3° axis error moves them
by hundredths of a pixel along the axis) it is 1.2–5.5° off.

With a high-signal reference the square root is not needed and costs
accuracy: on HAADF images of the same series (Z^1.7 contrast, ~500
counts/px, axes +3, −4, +2, +5°, 4 seeds each;
``benchmarks/bench_tilt_axis.py``) the plain estimate is 0.19° rms off (at
most 0.37°, 14 of 16 within 0.3°; another noise draw: 0.15° rms, at most
0.27°, 16 of 16), the square-root one 0.40° rms (max 0.67°); at 50
counts/px both are ~0.4° rms. The pipeline therefore fits the square root
of the summed element maps (counts) and the HAADF images as they are.

Where the model fails: on 9 tilts 10° apart it is 0.2–0.7° off noise-free;
on the ``memory_cell`` lamella phantom (layers across a 64 px field) 2–16°
off with or without noise; on the real IDP series (bin 4, Fe+Si+Mg) it gives
−3.2° (−6.3° without the square root), but Fe alone +6.1°, Si −5.3°, Mg −4.4°,
and leaving one tilt out moves it between −4.8° and +12°. Use it with care;
the default axis is 0.

Tried and dropped: more smoothing (σ 2–3.5 px: biased by +0.5–3° even
noise-free), wider windows, per-element fits summed (rms 0.56°), an
errors-in-variables (total least squares) fit of the speed (rms 0.46°),
undoing each window's x motion before fitting the y motion (biased by −2°),
a dense Lucas–Kanade flow to the 0° map and tracked patches (several
degrees off: structures at different depths slide past each other), row
profiles along the axis binned from the exact counts (shrunk toward 0°).

Where the error comes from (``benchmarks/bench_tilt_axis.py``'s series,
axes +3, −4, +2, +5°): without noise the estimate is biased, by the same
sign whatever the axis: −0.15° on the plain counts, −0.6° with the square
root; −0.15° and −0.41° with the true shifts. So part of the error is the
motion model on this object, not the noise or the translation. Weighting
the plain counts' residual by the inverse mean map instead of taking the
square root (the same noise equalisation, the model unbent) measured
−0.35° noise-free and rms 0.52° against 0.63–0.70° at ~10 counts/px on
those series (two sets of 6 seeds per axis), but rms 0.64° against 0.43°
(mean +0.35°) on the test series, whose tilts also carry ±20 % gains and
a damaged tilt: not adopted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .transforms import correct_stack, reframe_shifts, valid_masks


@dataclass
class AxisSearch:
    """Estimated axis (degrees) and each round's ``(axis, correction)`` in degrees."""

    angle_deg: float
    tried: list[tuple[float, float]] = field(default_factory=list)


def _parabola_min(xs: np.ndarray, ys: np.ndarray) -> float:
    i = int(np.clip(np.argmin(ys), 1, xs.size - 2))
    c2, c1, _ = np.polyfit(xs[i - 1:i + 2], ys[i - 1:i + 2], 2)
    if c2 <= 0:
        return float(xs[int(np.argmin(ys))])
    return float(np.clip(-c1 / (2 * c2), xs[i - 1], xs[i + 1]))


def parallax_correction(raw: np.ndarray, angles: np.ndarray, alpha_deg: float, shifts: np.ndarray, *,
                        sigma: float = 1.5, window: float = 3.0, max_deg: float = 12.0,
                        transform: str = "sqrt", robust: float = 3.0) -> float:
    """Angle (degrees) to add to ``alpha_deg`` so that features move perpendicular to the axis.

    Parameters
    ----------
    raw
        Reference stack ``(n, ny, nx)`` (summed element counts or HAADF).
    shifts
        Shifts belonging to the axis ``alpha_deg``.
    sigma, window
        Smoothing of the maps and the width of the windows sharing one speed (px).
    max_deg
        Largest correction searched.
    transform
        ``"sqrt"``: fit the square root of the gain-normalised counts, whose
        Poisson noise has the same variance everywhere, so the unweighted
        least squares below are the properly weighted ones; ``"none"``: the
        normalised counts (the earlier estimator).
    robust
        Refit without the tilts whose misfit exceeds ``robust`` times the
        median tilt's (0: keep all).
    """
    if transform not in ("sqrt", "none"):
        raise ValueError(f"transform must be 'sqrt' or 'none', got {transform!r}")
    c = correct_stack(raw, alpha_deg, shifts).astype(np.float64)
    common = valid_masks(raw.shape, alpha_deg, shifts).all(axis=0)
    totals = np.array([img[common].sum() for img in c])
    if np.any(totals <= 0):
        raise ValueError("a tilt has no signal inside the common field of view; cannot estimate the tilt axis")
    f = np.sqrt if transform == "sqrt" else (lambda x: x)
    # Scaled to the mean tilt's counts: per-tilt gains out, the counts' noise level kept.
    c = np.stack([ndimage.gaussian_filter(f(img * (totals.mean() / tot)), sigma)
                  for img, tot in zip(c, totals, strict=True)])
    inner = ndimage.binary_erosion(common, iterations=int(2 * sigma) + 2).astype(np.float64)
    t = np.deg2rad(np.asarray(angles, np.float64))
    t = t - t.mean()
    design = np.stack([np.ones_like(t), t, t ** 2 - (t ** 2).mean()], axis=1)
    flat = c.reshape(t.size, -1)
    coef = np.linalg.lstsq(design, flat, rcond=None)[0]
    if robust > 0:
        # A tilt the smooth model cannot follow (beam damage, a jump) would bend every pixel's fit.
        misfit = (((flat - design @ coef) ** 2) * inner.ravel()).sum(axis=1)
        keep = (misfit <= robust * np.median(misfit)).astype(np.float64)[:, None]
        coef = np.linalg.lstsq(design * keep, flat * keep, rcond=None)[0]
    coef = coef.reshape(3, *c.shape[1:])
    a, b = coef[0], coef[1]
    ay, ax = np.gradient(a)
    b, ax, ay = b * inner, ax * inner, ay * inner
    ayy = float((ay * ay).sum())
    if ayy <= 0:
        raise ValueError("the maps show no structure along the axis; cannot estimate the tilt axis")

    def g(img: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(img, window)

    def residual(s: float) -> float:
        grad = ax + s * ay
        gg = g(grad * grad) + 1e-30
        drift = 0.0
        for _ in range(3):
            bd = b - drift * ay
            bg = g(bd * grad)
            drift += float(((bd - bg / gg * grad) * ay).sum()) / ayy
        bd = b - drift * ay
        bg = g(bd * grad)
        return float((g(bd * bd) - bg ** 2 / gg).sum())

    smax = np.tan(np.deg2rad(max_deg))
    ss = np.linspace(-smax, smax, 49)
    rs = np.array([residual(s) for s in ss])
    fine = np.linspace(*ss[np.clip(np.argmin(rs) + np.array([-1, 1]), 0, ss.size - 1)], 9)
    rf = np.array([residual(s) for s in fine])
    # A map rotated by +δ against the axis shows motion along (dy, dx) ∝ (−sin δ, cos δ)·…
    return -float(np.rad2deg(np.arctan(_parabola_min(fine, rf))))


def estimate_tilt_axis(raw: np.ndarray, angles: np.ndarray, shifts: np.ndarray, *,
                       alpha_ref: float = 0.0, search_deg: float = 12.0, rounds: int = 5,
                       tol_deg: float = 0.05, transform: str = "sqrt", **_ignored) -> AxisSearch:
    """In-plane axis angle (degrees, anticlockwise from the image y axis), see the module docstring.

    Parameters
    ----------
    raw
        Reference stack ``(n, ny, nx)`` (summed element counts, or HAADF).
    shifts
        Current shifts, belonging to the axis ``alpha_ref``.
    search_deg
        The estimate stays within ``alpha_ref ± search_deg``.
    rounds, tol_deg
        Re-estimation rounds at the corrected axis; stop when the correction is below ``tol_deg``.
    transform
        ``"sqrt"`` for Poisson counts (the summed element maps), ``"none"`` for
        a high-signal reference such as HAADF images (see :func:`parallax_correction`).
    """
    alpha = float(alpha_ref)
    tried: list[tuple[float, float]] = []
    for _ in range(max(1, rounds)):
        d = parallax_correction(raw, angles, alpha, reframe_shifts(shifts, alpha_ref, alpha), transform=transform)
        tried.append((alpha, d))
        alpha = float(np.clip(alpha + d, alpha_ref - search_deg, alpha_ref + search_deg))
        if abs(d) < tol_deg:
            break
    return AxisSearch(alpha, tried)


def axis_spread(raw: np.ndarray, angles: np.ndarray, shifts: np.ndarray, *, alpha_ref: float = 0.0,
                search_deg: float = 12.0, **kw) -> tuple[float, list[float]]:
    """How far the estimate can be trusted: re-estimated with each tilt left out in turn.

    Returns the jackknife standard error (degrees) and the leave-one-out estimates. A
    well-determined axis moves by hundredths of a degree when one tilt is dropped; on a
    series whose parallax does not pin it down it jumps by degrees (see the module docstring).
    """
    n = len(angles)
    estimates = []
    for k in range(n):
        keep = np.arange(n) != k
        estimates.append(estimate_tilt_axis(raw[keep], np.asarray(angles)[keep], np.asarray(shifts)[keep],
                                            alpha_ref=alpha_ref, search_deg=search_deg, **kw).angle_deg)
    est = np.asarray(estimates)
    return float(np.sqrt((n - 1) / n * ((est - est.mean()) ** 2).sum())), [float(e) for e in est]
