"""Resolution along x, y and z from directional Fourier shell correlation.

Two reconstructions of the same sample from complementary halves of the tilts
(even- and odd-indexed angles, so both halves span the full tilt range) agree
at the spatial frequencies the data determine and disagree where noise
dominates. Their Fourier shell correlation (FSC), restricted to a cone of
directions around one axis, gives that axis's resolution: the inverse of the
frequency where the curve first drops below a criterion.

Criteria:

* ``"half-bit"`` (van Heel & Schatz 2005), the usual choice for two
  half-data reconstructions; the threshold depends on the number of Fourier
  voxels in each shell (cones have fewer, so their threshold is higher);
* ``"1/7"`` (0.143, Rosenthal & Henderson 2003);
* ``"0.5"`` (conservative; also used against a known ground truth).

Limits: both halves share the missing wedge, so frequencies inside it are
filled in the same way by the same prior and may correlate without being
measured. With a tilt range of ±α the cone around z (half-angle
``cone_deg``) lies entirely inside the wedge when ``cone_deg < 90 − α``.
The z figure then says how *reproducibly* the method fills the wedge, not
that it was measured; docs/quantification.md discusses how to read it, and
:func:`elongation` compares a volume's z/x shape with a ground truth's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tiltseries import TiltSeries

AXES = ("z", "y", "x")
CRITERIA = ("half-bit", "1/7", "0.5")
DEFAULT_CONE_DEG = 30.0


@dataclass
class FSCCurves:
    """Directional FSC curves of two volumes.

    ``freq`` are shell centres in cycles/nm; ``curves[axis]`` the correlation
    per shell and ``counts[axis]`` the number of Fourier voxels in it.
    """

    freq: np.ndarray
    curves: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    voxel_size: float
    cone_deg: float


def _frequencies(shape: tuple[int, ...], voxel_size: float) -> list[np.ndarray]:
    return np.meshgrid(*[np.fft.fftfreq(n, d=voxel_size) for n in shape], indexing="ij")


def directional_fsc(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray],
    voxel_size: float = 1.0,
    cone_deg: float = DEFAULT_CONE_DEG,
) -> FSCCurves:
    """FSC of volume pairs in cones about z, y and x.

    Parameters
    ----------
    pairs
        One ``(a, b)`` pair of ``(nz, ny, nx)`` volumes, or ``{element: (a, b)}``.
        Several pairs are pooled after scaling each pair to unit RMS, so a
        weak element counts as much as a strong one.
    voxel_size
        Voxel size in nm (frequencies come out in cycles/nm).
    cone_deg
        Half-angle of the cone of directions kept around each axis.
    """
    if isinstance(pairs, tuple):
        pairs = {"volume": pairs}
    if not pairs:
        raise ValueError("no volumes to correlate")
    if not 0 < cone_deg <= 90:
        raise ValueError(f"cone half-angle must be in (0, 90] degrees, got {cone_deg}")
    shape = next(iter(pairs.values()))[0].shape
    for name, (a, b) in pairs.items():
        if a.shape != shape or b.shape != shape or a.ndim != 3:
            raise ValueError(f"{name}: both volumes must be 3-D with the same shape "
                             f"(got {a.shape} and {b.shape}, expected {shape})")
    k = _frequencies(shape, voxel_size)
    radius = np.sqrt(sum(c**2 for c in k))
    step = 1.0 / (min(shape) * voxel_size)
    nyquist = 0.5 / voxel_size
    n_shells = int(np.floor(nyquist / step + 1e-9))
    shell = np.rint(radius / step).astype(np.int64)  # shell 0 is DC
    cos_cone = np.cos(np.deg2rad(cone_deg))
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = [np.abs(c) / radius for c in k]
    cross = np.zeros(radius.shape)
    power_a = np.zeros(radius.shape)
    power_b = np.zeros(radius.shape)
    for a, b in pairs.values():
        fa, fb = (np.fft.fftn(_unit_rms(v)) for v in (a, b))
        cross += (fa * np.conj(fb)).real
        power_a += np.abs(fa) ** 2
        power_b += np.abs(fb) ** 2
    curves, counts = {}, {}
    for axis, cosine in zip(AXES, cosines, strict=True):
        keep = (cosine >= cos_cone - 1e-12) & (shell >= 1) & (shell <= n_shells)
        idx = shell[keep]
        num = np.bincount(idx, cross[keep], n_shells + 1)[1:]
        da = np.bincount(idx, power_a[keep], n_shells + 1)[1:]
        db = np.bincount(idx, power_b[keep], n_shells + 1)[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            curves[axis] = np.where(da * db > 0, num / np.sqrt(da * db), 0.0)
        counts[axis] = np.bincount(idx, minlength=n_shells + 1)[1:]
    return FSCCurves(step * np.arange(1, n_shells + 1), curves, counts, float(voxel_size),
                     float(cone_deg))


def _unit_rms(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    v = v - v.mean()
    rms = float(np.sqrt(np.mean(v**2)))
    return v / rms if rms > 0 else v


def threshold(criterion: str, counts: np.ndarray) -> np.ndarray:
    """The FSC threshold per shell for ``criterion`` (see module docstring)."""
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    if criterion == "half-bit":
        # van Heel & Schatz (2005), eq. 17; the number of voxels counts each
        # Friedel pair twice, as in their derivation on the full transform.
        return (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    if criterion == "1/7":
        return np.full(n.shape, 1.0 / 7.0)
    if criterion == "0.5":
        return np.full(n.shape, 0.5)
    raise ValueError(f"unknown FSC criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")


def crossing(freq: np.ndarray, curve: np.ndarray, thresh: np.ndarray) -> tuple[float, bool]:
    """First frequency where ``curve`` falls below ``thresh``, linearly interpolated.

    Returns ``(frequency, crossed)``; when the curve never falls below the
    threshold the last frequency (Nyquist) is returned with ``crossed=False``.
    """
    below = np.nonzero(curve < thresh)[0]
    if below.size == 0:
        return float(freq[-1]), False
    i = int(below[0])
    if i == 0:
        # Interpolate from the DC term, whose correlation is 1 by definition.
        f0, c0, t0 = 0.0, 1.0, float(thresh[0])
    else:
        f0, c0, t0 = float(freq[i - 1]), float(curve[i - 1]), float(thresh[i - 1])
    f1, c1, t1 = float(freq[i]), float(curve[i]), float(thresh[i])
    d0, d1 = c0 - t0, c1 - t1
    frac = d0 / (d0 - d1) if d0 != d1 else 0.0
    return f0 + frac * (f1 - f0), True


def resolutions(fsc: FSCCurves, criterion: str = "half-bit") -> dict[str, dict[str, Any]]:
    """``{axis: {"nm": resolution, "crossed": bool}}`` from directional FSC curves."""
    out = {}
    for axis in AXES:
        f, crossed = crossing(fsc.freq, fsc.curves[axis], threshold(criterion, fsc.counts[axis]))
        out[axis] = {"nm": 1.0 / f if f > 0 else float("inf"), "crossed": crossed}
    return out


@dataclass
class ResolutionEstimate:
    """Per-axis resolution of a reconstruction method on one tilt series."""

    x_nm: float
    y_nm: float
    z_nm: float
    criterion: str
    cone_deg: float
    method: str
    params: dict[str, Any]
    fsc: FSCCurves
    per_element: dict[str, dict[str, float]] = field(default_factory=dict)
    at_nyquist: list[str] = field(default_factory=list)

    @property
    def anisotropy(self) -> float:
        """``z_nm / x_nm``: how much coarser the beam direction is resolved."""
        return self.z_nm / self.x_nm

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "edxtomo-resolution/1",
            "x_nm": self.x_nm, "y_nm": self.y_nm, "z_nm": self.z_nm,
            "z_over_x": self.anisotropy,
            "criterion": self.criterion,
            "estimator": ("directional FSC between reconstructions from the even- and "
                          "odd-indexed tilts, cones of half-angle "
                          f"{self.cone_deg:g} deg about each axis"),
            "cone_deg": self.cone_deg,
            "at_nyquist": self.at_nyquist,
            "method": self.method,
            "params": self.params,
            "per_element": self.per_element,
            "fsc": {"frequency_per_nm": self.fsc.freq,
                    **{f"fsc_{a}": self.fsc.curves[a] for a in AXES},
                    **{f"voxels_{a}": self.fsc.counts[a] for a in AXES}},
        }


def split_halves(series: TiltSeries) -> tuple[TiltSeries, TiltSeries]:
    """Even- and odd-indexed tilts (both span the full tilt range)."""
    n = len(series.angles)
    if n < 4:
        raise ValueError(f"{series.source}: {n} tilts are too few to split into two halves "
                         "(need at least 4)")
    return tuple(_subset(series, np.arange(start, n, 2), name)  # type: ignore[return-value]
                 for start, name in ((0, "even"), (1, "odd")))


def _subset(series: TiltSeries, idx: np.ndarray, name: str) -> TiltSeries:
    return TiltSeries(
        maps={e: m[idx] for e, m in series.maps.items()},
        angles=series.angles[idx],
        pixel_size=series.pixel_size,
        lines=series.lines,
        provenance={**series.provenance, "resolution_half": name},
        source=f"{series.source} ({name} tilts)",
    )


def half_reconstructions(series: TiltSeries, method: str, **params: Any
                         ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Reconstruct each half with the same method and parameters; yield ``(half, volumes)``."""
    from .recon import reconstruct, run_to_end

    for half, name in zip(split_halves(series), ("even", "odd"), strict=True):
        yield name, run_to_end(reconstruct(half, method, **params)).volumes


def estimate_resolution(
    series: TiltSeries,
    method: str,
    criterion: str = "half-bit",
    cone_deg: float = DEFAULT_CONE_DEG,
    **params: Any,
) -> ResolutionEstimate:
    """Reconstruct both tilt halves with ``method`` and measure x, y, z resolution.

    ``params`` go to :func:`edxtomo.recon.reconstruct` unchanged.
    """
    threshold(criterion, np.ones(1))  # unknown criterion: fail before reconstructing
    halves = dict(half_reconstructions(series, method, **params))
    return estimate_from_halves(halves["even"], halves["odd"], series.pixel_size, criterion,
                                cone_deg, method=method, params=params)


def estimate_from_halves(
    even: Mapping[str, np.ndarray],
    odd: Mapping[str, np.ndarray],
    voxel_size: float,
    criterion: str = "half-bit",
    cone_deg: float = DEFAULT_CONE_DEG,
    method: str = "",
    params: Mapping[str, Any] | None = None,
) -> ResolutionEstimate:
    """Per-axis resolution from two half-data reconstructions ``{element: volume}``."""
    pairs = {e: (np.asarray(even[e]), np.asarray(odd[e])) for e in even if e in odd}
    if not pairs:
        raise ValueError("the two halves share no element")
    fsc = directional_fsc(pairs, voxel_size, cone_deg)
    res = resolutions(fsc, criterion)
    per_element = {}
    for e, pair in pairs.items():
        r = resolutions(directional_fsc({e: pair}, voxel_size, cone_deg), criterion)
        per_element[e] = {f"{a}_nm": r[a]["nm"] for a in AXES}
    return ResolutionEstimate(
        x_nm=res["x"]["nm"], y_nm=res["y"]["nm"], z_nm=res["z"]["nm"], criterion=criterion,
        cone_deg=cone_deg, method=method, params=dict(params or {}), fsc=fsc,
        per_element=per_element, at_nyquist=[a for a in AXES if not res[a]["crossed"]],
    )


def elongation(volume: np.ndarray, level: float = 0.5) -> float:
    """z/x elongation of a volume: width of its autocorrelation peak along z over x.

    The autocorrelation of the mean-subtracted volume, normalised to 1 at zero
    shift, is followed along z and along x until it falls below ``level``
    (linear interpolation between voxels). A missing wedge smears features
    along z and widens the z peak; compare with the ground truth's own value,
    since anisotropic objects (a lamella, layers) are elongated by themselves.
    """
    v = np.asarray(volume, dtype=np.float64)
    v = v - v.mean()
    power = np.abs(np.fft.fftn(v)) ** 2
    acf = np.fft.ifftn(power).real
    if acf[0, 0, 0] <= 0:
        raise ValueError("a constant volume has no elongation")
    acf /= acf[0, 0, 0]
    return _half_width(acf[:, 0, 0], level) / _half_width(acf[0, 0, :], level)


def _half_width(profile: np.ndarray, level: float) -> float:
    half = profile[: len(profile) // 2 + 1]
    below = np.nonzero(half < level)[0]
    if below.size == 0:
        return float(len(half))
    i = int(below[0])
    return (i - 1) + (half[i - 1] - level) / (half[i - 1] - half[i])
