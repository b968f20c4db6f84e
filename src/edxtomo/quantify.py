"""Composition volumes by the Cliff–Lorimer ratio method, and region statistics.

For every voxel, the atomic fraction of element A is

    C_A = k_A I_A / Σ_B k_B I_B

where ``I`` are the reconstructed per-element volumes (counts per voxel) and
``k`` the k-factors (only their ratios matter). Weight fractions follow with
the atomic masses: ``w_A = C_A M_A / Σ_B C_B M_B``.

Limits (see docs/quantification.md): no absorption or fluorescence
correction (thin-film approximation), so thick or strongly absorbing samples
bias light elements; the ratio is only as good as the k-factors; voxels with
little total signal are noise and are masked (NaN).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .io.atomic import write_atomic

UNITS = ("at%", "wt%")
#: Multiples of the background noise above the background level a voxel's
#: weighted total signal must reach to be quantified.
NOISE_SIGMAS = 3.0
#: Lower bound of the default threshold as a fraction of the median signal
#: inside the object: TV and DIP reconstructions have an exactly flat (zero)
#: background, where a noise estimate collapses to zero and faint wisps
#: around the object would otherwise get a (meaningless) composition.
MIN_FRACTION_OF_OBJECT = 0.05


@dataclass
class Composition:
    """Composition volumes and how they were made.

    ``volumes[element]`` is ``(nz, ny, nx)`` float32 in ``unit`` (percent),
    NaN where the total signal was below ``threshold`` (``mask`` False).
    """

    volumes: dict[str, np.ndarray]
    mask: np.ndarray
    k_factors: dict[str, float]
    threshold: float
    threshold_source: str
    unit: str = "at%"
    info: dict[str, Any] = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        """Mean composition over the quantified voxels (each voxel counts once)."""
        if not self.mask.any():
            return {e: float("nan") for e in self.volumes}
        return {e: float(v[self.mask].mean()) for e, v in self.volumes.items()}

    def summary(self) -> dict[str, Any]:
        """What a sidecar records: method, k-factors, threshold, means."""
        return {
            "method": "Cliff-Lorimer (thin film, no absorption correction)",
            "unit": self.unit,
            "k_factors": self.k_factors,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "quantified_voxels": int(self.mask.sum()),
            "total_voxels": int(self.mask.size),
            "mean_composition": self.mean(),
            **self.info,
        }


@cache
def atomic_mass(element: str) -> float:
    """Standard atomic weight of ``element`` (g/mol) from exspy's element database."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HyperSpy's deprecation chatter on import
        from exspy.material import elements
    if element not in elements:
        raise ValueError(f"unknown element {element!r}: use a chemical symbol such as Ge or Te")
    return float(elements[element].General_properties.atomic_weight)


def _check_volumes(volumes: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    if len(volumes) < 2:
        raise ValueError(f"composition needs at least two element volumes, got {list(volumes)}")
    shapes = {e: np.shape(v) for e, v in volumes.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"element volumes differ in shape: {shapes}")
    return next(iter(shapes.values()))


def _resolve_k(elements: list[str], k_factors: Mapping[str, float] | None) -> dict[str, float]:
    k = {e: 1.0 for e in elements}
    for e, value in (k_factors or {}).items():
        if e not in k:
            raise ValueError(f"k-factor given for {e}, which has no volume "
                             f"(elements: {', '.join(elements)})")
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"k-factor of {e} must be a positive number, got {value}")
        k[e] = float(value)
    return k


def weighted_intensities(volumes: Mapping[str, np.ndarray], k: Mapping[str, float]
                         ) -> dict[str, np.ndarray]:
    """``k_A · max(I_A, 0)``: negative counts are noise and would make fractions > 100 %."""
    return {e: k[e] * np.clip(np.asarray(v, dtype=np.float64), 0, None) for e, v in volumes.items()}


def noise_threshold(total: np.ndarray) -> float:
    """Default mask threshold on the weighted total signal, from its noise.

    The volume is split into background and object by Otsu's method; the
    threshold is the background median plus :data:`NOISE_SIGMAS` robust
    standard deviations (1.4826 × MAD) of the background, and at least
    :data:`MIN_FRACTION_OF_OBJECT` of the object's median signal.
    """
    t = np.asarray(total, dtype=np.float64).ravel()
    t = t[np.isfinite(t)]
    if t.size == 0 or t.max() <= 0:
        return 0.0
    cut = _otsu(t)
    bg, obj = t[t <= cut], t[t > cut]
    if obj.size == 0:
        return float(cut)
    bg_med = float(np.median(bg)) if bg.size else 0.0
    sigma = 1.4826 * float(np.median(np.abs(bg - bg_med))) if bg.size else 0.0
    return max(bg_med + NOISE_SIGMAS * sigma, MIN_FRACTION_OF_OBJECT * float(np.median(obj)))


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centres)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu0 = m / w0
        mu1 = (m[-1] - m) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)
    return float(centres[int(np.argmax(between))])


def cliff_lorimer(
    volumes: Mapping[str, np.ndarray],
    k_factors: Mapping[str, float] | None = None,
    threshold: float | None = None,
    unit: str = "at%",
) -> Composition:
    """Composition volumes of ``{element: counts volume}``.

    Parameters
    ----------
    k_factors
        ``{element: k}``; missing elements get 1. Only ratios matter.
    threshold
        Voxels whose weighted total ``Σ k_B I_B`` is at or below this are
        masked (NaN). ``None``: :func:`noise_threshold`.
    unit
        ``"at%"`` or ``"wt%"`` (atomic masses from exspy).
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}: choose one of {', '.join(UNITS)}")
    _check_volumes(volumes)
    elements = list(volumes)
    k = _resolve_k(elements, k_factors)
    weighted = weighted_intensities(volumes, k)
    # The mask is on the k-weighted counts in either unit, so at.% and wt.%
    # volumes of one run have the same quantified voxels.
    counts_total = sum(weighted.values())
    source = "user"
    if threshold is None:
        threshold, source = noise_threshold(counts_total), "noise"
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold}")
    mask = counts_total > threshold
    if unit == "wt%":
        # C_A M_A ∝ k_A I_A M_A: the same ratio with the masses folded into the weights.
        weighted = {e: w * atomic_mass(e) for e, w in weighted.items()}
    total = sum(weighted.values())
    # total > threshold >= 0 on the mask, so there is no division by zero.
    safe = np.where(mask, total, 1.0)
    out = {e: np.where(mask, 100.0 * w / safe, np.nan).astype(np.float32)
           for e, w in weighted.items()}
    return Composition(out, mask, k, float(threshold), source, unit)


def calibrate_k_factors(
    volumes: Mapping[str, np.ndarray],
    region: np.ndarray,
    composition: Mapping[str, float],
    reference: str | None = None,
    k_factors: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """k-factors from a region of known composition.

    Inside ``region`` (boolean mask, or any non-zero label) Cliff–Lorimer
    gives ``k_A ∝ C_A / Ī_A`` with ``Ī_A`` the summed counts of A there.

    Parameters
    ----------
    composition
        Nominal composition of the region ``{element: at.%}`` (normalised to
        100 %); every element in it needs a volume and a positive fraction.
    reference
        Element whose k-factor is 1 (default: the first one in ``composition``).
    k_factors
        k-factors of elements *not* in ``composition``, on the same scale
        (reference = 1); every such element needs one.
    """
    _check_volumes(volumes)
    mask = np.asarray(region) != 0
    if mask.shape != np.shape(next(iter(volumes.values()))):
        raise ValueError(f"calibration region has shape {mask.shape}, the volumes "
                         f"{np.shape(next(iter(volumes.values())))}")
    if not mask.any():
        raise ValueError("the calibration region is empty (no non-zero voxel)")
    if not composition:
        raise ValueError("give the region's composition, e.g. Ge=22 Sb=22 Te=56")
    total = float(sum(composition.values()))
    k: dict[str, float] = {}
    for e, c in composition.items():
        if e not in volumes:
            raise ValueError(f"composition names {e}, which has no volume "
                             f"(elements: {', '.join(volumes)})")
        if not c > 0:
            raise ValueError(f"{e}: a calibration needs a positive fraction, got {c}; "
                             "give its k-factor instead")
        signal = float(np.clip(np.asarray(volumes[e], dtype=np.float64)[mask], 0, None).sum())
        if signal <= 0:
            raise ValueError(f"{e}: no signal in the calibration region")
        k[e] = (c / total) / signal
    ref = reference or next(iter(composition))
    if ref not in k:
        raise ValueError(f"reference element {ref} is not in the composition")
    k = {e: v / k[ref] for e, v in k.items()}
    missing = [e for e in volumes if e not in k]
    given = dict(k_factors or {})
    lacking = [e for e in missing if e not in given]
    if lacking:
        raise ValueError(f"no k-factor for {', '.join(lacking)}: add it to the region's "
                         f"composition or give it (relative to {ref} = 1)")
    k.update({e: float(given[e]) for e in missing})
    return {e: k[e] for e in volumes}


def k_factors_from_metadata(metadata: Any) -> dict[str, float]:
    """The first ``k_factors`` mapping found anywhere in a sidecar / metadata tree.

    HyperSpy/exspy keep k-factors beside the quantification, not in the
    spectrum image; a reconstruction sidecar carries them when the reading
    step found them. Lists of ``[line, k]`` pairs are also accepted; line
    names (``Ge_Ka``) are reduced to the element.
    """
    stack = [metadata]
    while stack:
        node = stack.pop(0)
        if isinstance(node, Mapping):
            for key, value in node.items():
                if str(key).lower() in ("k_factors", "kfactors") and value:
                    return _parse_k(value)
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return {}


def _parse_k(value: Any) -> dict[str, float]:
    pairs = value.items() if isinstance(value, Mapping) else value
    out = {}
    for name, k in pairs:
        out[str(name).split("_")[0]] = float(k)
    return out


# --------------------------------------------------------------- regions
def region_stats(composition: Mapping[str, np.ndarray], labels: np.ndarray
                 ) -> list[dict[str, float]]:
    """Mean and standard deviation (ddof 0) per element and region label.

    Label 0 is background and skipped. Masked (NaN) voxels are left out;
    ``voxels`` counts the quantified voxels, ``masked`` the others.
    """
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            raise ValueError("region labels must be whole numbers")
        lab = lab.astype(np.int64)
    shape = np.shape(next(iter(composition.values())))
    if lab.shape != shape:
        raise ValueError(f"region labels have shape {lab.shape}, the volumes {shape}")
    if lab.min() < 0:
        raise ValueError("region labels must be non-negative (0 = background)")
    valid = np.all([np.isfinite(v) for v in composition.values()], axis=0)
    ids = [int(i) for i in np.unique(lab) if i != 0]
    flat = lab.ravel()
    n = flat.max() + 1 if flat.size else 1
    counts = np.bincount(flat[valid.ravel()], minlength=n)
    allv = np.bincount(flat, minlength=n)
    rows = []
    for i in ids:
        rows.append({"label": i, "voxels": int(counts[i]), "masked": int(allv[i] - counts[i])})
    for e, v in composition.items():
        vals = np.asarray(v, dtype=np.float64).ravel()
        s1 = np.bincount(flat[valid.ravel()], vals[valid.ravel()], minlength=n)
        s2 = np.bincount(flat[valid.ravel()], vals[valid.ravel()] ** 2, minlength=n)
        for row in rows:
            c = counts[row["label"]]
            mean = s1[row["label"]] / c if c else float("nan")
            var = s2[row["label"]] / c - mean**2 if c else float("nan")
            row[f"{e}_mean"] = float(mean)
            row[f"{e}_std"] = float(np.sqrt(max(var, 0.0))) if c else float("nan")
    return rows


def stats_csv(rows: list[dict[str, float]], unit: str = "at%", delimiter: str = ",") -> str:
    """Region statistics as CSV text (header names the unit; tab-separated for the clipboard)."""
    buf = io.StringIO()
    if not rows:
        return ""
    fields = list(rows[0])
    header = [f if f in ("label", "voxels", "masked") else f"{f} ({unit})" for f in fields]
    writer = csv.writer(buf, lineterminator="\n", delimiter=delimiter)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row[f] if isinstance(row[f], int) else f"{row[f]:.6g}" for f in fields])
    return buf.getvalue()


def write_stats_csv(path: str | Path, rows: list[dict[str, float]], unit: str = "at%") -> Path:
    """Write :func:`stats_csv` atomically."""
    text = stats_csv(rows, unit)
    return write_atomic(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def line_profile(volume: np.ndarray, start: tuple[float, float, float],
                 end: tuple[float, float, float], samples: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Values along a straight line (voxel coordinates ``(z, y, x)``), linear interpolation.

    Returns ``(distance in voxels from start, values)``; NaN voxels stay NaN
    (a masked voxel must not be blended into a composition).
    """
    from scipy.ndimage import map_coordinates

    a, b = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    length = float(np.linalg.norm(b - a))
    n = samples or max(int(np.ceil(length)) + 1, 2)
    t = np.linspace(0.0, 1.0, n)
    coords = a[:, None] + (b - a)[:, None] * t[None, :]
    vol = np.asarray(volume, dtype=np.float64)
    nan = ~np.isfinite(vol)
    values = map_coordinates(np.where(nan, 0.0, vol), coords, order=1, mode="nearest")
    if nan.any():
        touched = map_coordinates(nan.astype(float), coords, order=1, mode="nearest") > 0
        values[touched] = np.nan
    return t * length, values
