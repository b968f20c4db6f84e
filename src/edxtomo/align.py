"""Translational alignment of a tilt series, the same shifts for every element.

1. Neighbouring tilts are registered by phase correlation (smoothed images,
   as EDX counts are low; a 3-point parabola refines the peak to subpixel),
   and the shifts are accumulated outwards from the tilt nearest 0 deg.
2. The tilt axis is centred: the x centre of mass of the aligned images is
   fitted with ``c0 + c1 sin(theta) + c2 cos(theta)`` (how the centre of mass
   of a rigid object moves under tilt) and that curve is moved to the image
   centre, which puts the axis through the object's centre of mass without
   adding the per-tilt noise of the raw centres of mass.
3. The shifts are applied to every element by linear interpolation, which
   keeps counts non-negative.

Shifts are ``(n_angles, 2)`` arrays ``(dy, dx)`` in pixels: the amount each
map is moved. They live in ``provenance["alignment"]`` and can be saved,
loaded and applied to another series (rescaled by the pixel size).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey

from .tiltseries import TiltSeries, TiltSeriesError


@dataclass
class Shifts:
    """Per-tilt shifts ``(dy, dx)`` in pixels of size ``pixel_size`` nm, at ``angles`` degrees."""

    shifts: np.ndarray
    angles: np.ndarray
    pixel_size: float = 1.0

    def to_dict(self) -> dict:
        return {"angles_deg": np.asarray(self.angles).tolist(),
                "shifts_px": np.asarray(self.shifts).tolist(), "pixel_size_nm": self.pixel_size,
                "convention": "(dy, dx) in pixels: how far each map is moved; y along the tilt axis"}


def _prepare(img: np.ndarray, sigma: float) -> np.ndarray:
    img = ndimage.gaussian_filter(np.asarray(img, dtype=np.float64), sigma) if sigma > 0 else img
    img = img - img.mean()
    # A Tukey window stops the image edges from dominating the correlation; its
    # flat middle weights the content alike wherever drift has put it (a Hann
    # window biased shifts on phantoms by up to a pixel).
    return img * np.outer(tukey(img.shape[0], 0.5), tukey(img.shape[1], 0.5))


def _parabola(c_m: float, c_0: float, c_p: float) -> float:
    den = c_m - 2 * c_0 + c_p
    return 0.0 if den == 0 else float(np.clip(0.5 * (c_m - c_p) / den, -0.5, 0.5))


def phase_correlation(fixed: np.ndarray, moving: np.ndarray, *, sigma: float = 1.5,
                      whitening: float = 0.5, max_shift: float | None = None) -> np.ndarray:
    """Shift ``(dy, dx)`` that moves ``moving`` onto ``fixed``, to subpixel precision.

    ``whitening`` is the exponent of the spectrum normalisation: 1 is pure
    phase correlation, 0 plain cross-correlation; in between keeps the sharp
    peak of the first without amplifying the noise of low-count maps.
    """
    fa, fb = np.fft.fft2(_prepare(fixed, sigma)), np.fft.fft2(_prepare(moving, sigma))
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) ** whitening + 1e-12
    corr = np.fft.fftshift(np.fft.ifft2(cross).real)
    ny, nx = corr.shape
    cy, cx = ny // 2, nx // 2
    search = corr
    if max_shift is not None:
        yy, xx = np.ogrid[:ny, :nx]
        search = np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= max_shift ** 2, corr, -np.inf)
    # The subpixel fit reads the unmasked neighbours: a peak on the edge of the search disk
    # would otherwise meet -inf and return NaN.
    py, px = np.unravel_index(int(np.argmax(search)), corr.shape)
    sub_y = _parabola(corr[(py - 1) % ny, px], corr[py, px], corr[(py + 1) % ny, px])
    sub_x = _parabola(corr[py, (px - 1) % nx], corr[py, px], corr[py, (px + 1) % nx])
    return np.array([py - cy + sub_y, px - cx + sub_x])


def estimate_shifts(stack: np.ndarray, angles: np.ndarray, *, sigma: float = 1.5,
                    max_shift: float | None = None) -> np.ndarray:
    """Cumulative neighbour shifts ``(n, 2)``, zero at the tilt nearest 0 deg."""
    n = stack.shape[0]
    shifts = np.zeros((n, 2))
    i0 = int(np.argmin(np.abs(angles)))
    for step in (1, -1):
        i = i0 + step
        while 0 <= i < n:
            rel = phase_correlation(stack[i - step], stack[i], sigma=sigma, max_shift=max_shift)
            shifts[i] = shifts[i - step] + rel
            i += step
    return shifts


def centre_of_mass_x(stack: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """x centre of mass per image, above the median level (the uniform background is not the object)."""
    out = np.empty(stack.shape[0])
    xs = np.arange(stack.shape[2], dtype=np.float64)
    for i, img in enumerate(stack):
        img = ndimage.gaussian_filter(np.asarray(img, dtype=np.float64), sigma)
        w = np.clip(img - np.median(img), 0, None).sum(axis=0)
        out[i] = (w * xs).sum() / w.sum() if w.sum() > 0 else (xs.size - 1) / 2
    return out


def tilt_axis_offsets(stack: np.ndarray, angles: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """x shifts that centre the tilt axis on the object's centre of mass (see module docstring)."""
    com = centre_of_mass_x(stack, sigma)
    t = np.deg2rad(np.asarray(angles, dtype=np.float64))
    design = np.stack([np.ones_like(t), np.sin(t), np.cos(t)], axis=1)
    if t.size < 4:
        design = design[:, :1]
    coef, *_ = np.linalg.lstsq(design, com, rcond=None)
    return (stack.shape[2] - 1) / 2 - design @ coef


def shift_stack(stack: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move each image by its ``(dy, dx)`` (linear interpolation; zeros enter at the edges)."""
    out = np.empty_like(stack, dtype=np.float32)
    for i, (img, s) in enumerate(zip(stack, shifts, strict=True)):
        out[i] = np.clip(ndimage.shift(np.asarray(img, np.float64), s, order=1, mode="constant",
                                       cval=0.0), 0, None)
    return out


def neighbour_misfit(stack: np.ndarray, sigma: float = 1.5) -> float:
    """Mean ``1 - correlation coefficient`` of smoothed neighbouring tilts (0 = identical)."""
    sm = [ndimage.gaussian_filter(np.asarray(s, np.float64), sigma).ravel() for s in stack]
    return float(np.mean([1 - np.corrcoef(a, b)[0, 1] for a, b in zip(sm[:-1], sm[1:], strict=True)]))


def apply_shifts(series: TiltSeries, shifts: Shifts | np.ndarray, *, step: str = "apply_shifts",
                 extra: dict | None = None) -> TiltSeries:
    """Move every element map of ``series`` by ``shifts``.

    A :class:`Shifts` with another pixel size (e.g. found on a binned copy)
    is rescaled to this series' pixels; its angles must match the series'.
    """
    if not isinstance(shifts, Shifts):
        shifts = Shifts(np.asarray(shifts, dtype=np.float64), series.angles, series.pixel_size)
    arr = np.asarray(shifts.shifts, dtype=np.float64).reshape(-1, 2)
    if arr.shape[0] != series.n_angles:
        raise TiltSeriesError(f"{series.source}: {arr.shape[0]} shifts for {series.n_angles} tilts")
    if not np.allclose(np.asarray(shifts.angles, float), series.angles, atol=1e-3):
        raise TiltSeriesError(f"{series.source}: the shifts were found at other angles")
    px = arr * (shifts.pixel_size / series.pixel_size)
    maps = {el: shift_stack(m, px) for el, m in series.maps.items()}
    out = series.with_maps(maps, step)
    out.provenance["alignment"] = {**(extra or {}), **Shifts(px, series.angles, series.pixel_size).to_dict()}
    return out


def align_series(series: TiltSeries, reference: np.ndarray | None = None, *, sigma: float = 1.5,
                 centre: bool = True, max_shift: float | None = None) -> TiltSeries:
    """Align ``series`` (all elements alike) and record the shifts in its provenance.

    Parameters
    ----------
    reference
        A stack ``(n_angles, ny, nx)`` to register instead of the sum of all
        element maps, e.g. the HAADF images recorded with the spectra.
    sigma
        Gaussian smoothing (pixels) before correlation.
    centre
        Also centre the tilt axis (centre of mass along x).
    max_shift
        Largest neighbour shift (pixels) searched; default: any.
    """
    ref = series.stack().sum(axis=0) if reference is None else np.asarray(reference, np.float32)
    if ref.shape != series.shape:
        raise TiltSeriesError(f"{series.source}: reference stack {ref.shape} does not match the maps {series.shape}")
    shifts = estimate_shifts(ref, series.angles, sigma=sigma, max_shift=max_shift)
    if centre:
        # Centre on the element maps: a HAADF image also shows the support film and lamella.
        maps_sum = shift_stack(series.stack().sum(axis=0), shifts)
        shifts[:, 1] += tilt_axis_offsets(maps_sum, series.angles, sigma)
    extra = {"method": "phase correlation of neighbours, cumulative from the tilt nearest 0 deg",
             "reference": "HAADF images" if reference is not None else "sum of the element maps",
             "smoothing_sigma_px": sigma, "tilt_axis": "centre of mass along x" if centre else "not centred",
             "misfit_before": neighbour_misfit(ref, sigma),
             "misfit_after": neighbour_misfit(shift_stack(ref, shifts), sigma)}
    return apply_shifts(series, shifts, step="align", extra=extra)


def save_shifts(path: str | Path, shifts: Shifts) -> Path:
    """Write shifts as JSON (angles, ``(dy, dx)`` in pixels, pixel size in nm)."""
    from .io.atomic import write_json

    return write_json(path, shifts.to_dict())


def load_shifts(path: str | Path) -> Shifts:
    """Read shifts written by :func:`save_shifts` (or the ``alignment`` entry of a series.json)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data = data.get("provenance", {}).get("alignment", data)
    return Shifts(np.asarray(data["shifts_px"], dtype=np.float64),
                  np.asarray(data["angles_deg"], dtype=np.float64), float(data.get("pixel_size_nm", 1.0)))


def series_shifts(series: TiltSeries) -> Shifts:
    """The shifts recorded by :func:`align_series` on ``series``."""
    if "alignment" not in series.provenance:
        raise TiltSeriesError(f"{series.source}: the series has not been aligned")
    a = series.provenance["alignment"]
    return Shifts(np.asarray(a["shifts_px"]), np.asarray(a["angles_deg"]), float(a["pixel_size_nm"]))
