"""The tilt-series model: per-element projection stacks with their geometry.

Axis convention (see docs/architecture.md): every element map stack is
``(n_angles, ny, nx)`` float32, ``y`` (rows) parallel to the tilt axis and
``x`` perpendicular to it. Angles are in degrees.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError

#: Provenance key: the maps were counts before a transform made them non-integer.
COUNTS_ORIGIN = "counts_origin"


class TiltSeriesError(InputError):
    """A tilt series is inconsistent or unusable; the message says why."""


@dataclass
class TiltSeries:
    """Element maps of one sample recorded at a series of tilts.

    Parameters
    ----------
    maps
        ``{element: array (n_angles, ny, nx)}``; converted to float32.
    angles
        Tilt angles in degrees, one per row of every map.
    pixel_size
        Pixel size in nm (also the voxel size of reconstructions).
    lines
        ``{element: X-ray line}``, e.g. ``{"Ge": "Ge_Ka"}``; optional.
    provenance
        Free-form record of where the data came from and what was done to it.
    source
        Human-readable origin used in error messages (a path or a name).
    validate
        Check the data now (default). Unsorted angles are sorted with a warning.
    """

    maps: dict[str, np.ndarray]
    angles: np.ndarray
    pixel_size: float = 1.0
    lines: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = "tilt series"
    validate: bool = True

    def __post_init__(self) -> None:
        self.maps = {str(k): np.asarray(v, dtype=np.float32) for k, v in self.maps.items()}
        self.angles = np.asarray(self.angles, dtype=np.float64).reshape(-1)
        self.pixel_size = float(self.pixel_size)
        self.lines = dict(self.lines)
        self.provenance = dict(self.provenance)
        if self.validate:
            self._validate()

    # ------------------------------------------------------------------ checks
    def _fail(self, message: str) -> None:
        raise TiltSeriesError(f"{self.source}: {message}")

    def _validate(self) -> None:
        if not self.maps:
            self._fail("no element maps")
        if self.angles.size == 0:
            self._fail("no tilt angles")
        if not np.all(np.isfinite(self.angles)):
            self._fail("tilt angles contain NaN or inf")
        if np.any(np.abs(self.angles) >= 90):
            self._fail(
                f"tilt angles must lie strictly between -90 and 90 degrees "
                f"(got {self.angles.min():g}..{self.angles.max():g})"
            )
        if not (np.isfinite(self.pixel_size) and self.pixel_size > 0):
            self._fail(f"pixel size must be a positive number of nm, got {self.pixel_size}")
        for element, stack in self.maps.items():
            if stack.ndim != 3:
                self._fail(
                    f"element {element!r}: expected a stack (n_angles, ny, nx), got shape {stack.shape}"
                )
        shapes = [s.shape for s in self.maps.values()]
        # The odd one out is blamed, not whichever element happens to come second.
        common = max(shapes, key=lambda sh: (shapes.count(sh), sh[0] == self.angles.size))
        for element, stack in self.maps.items():
            if stack.shape[0] != self.angles.size and stack.shape[1:] == common[1:]:
                self._fail(
                    f"element {element!r} has {stack.shape[0]} maps but there are "
                    f"{self.angles.size} tilt angles"
                )
            if stack.shape != common:
                self._fail(
                    f"element {element!r} has shape {stack.shape}, the other elements {common}"
                )
        if common[0] != self.angles.size:
            self._fail(f"the maps hold {common[0]} tilts but there are {self.angles.size} tilt angles")
        for element, stack in self.maps.items():
            if not np.all(np.isfinite(stack)):
                self._fail(f"element {element!r} contains NaN or inf values")
            if np.any(stack < 0):
                self._fail(
                    f"element {element!r} has negative values (min {stack.min():g}); "
                    "EDX maps are counts: subtract backgrounds with clipping at zero"
                )
            if not np.any(stack > 0):
                self._fail(f"element {element!r} is zero everywhere: drop it or check the line")
        uniq, counts = np.unique(self.angles, return_counts=True)
        if np.any(counts > 1):
            dup = ", ".join(f"{a:g}" for a in uniq[counts > 1])
            self._fail(f"duplicate tilt angles: {dup} degrees")
        order = np.argsort(self.angles, kind="stable")
        if np.any(order != np.arange(order.size)):
            warnings.warn(
                f"{self.source}: tilt angles were not sorted; sorted them (and the maps)",
                stacklevel=3,
            )
            self.angles = self.angles[order]
            self.maps = {k: v[order] for k, v in self.maps.items()}

    # -------------------------------------------------------------- properties
    @property
    def elements(self) -> list[str]:
        """Element names in insertion order."""
        return list(self.maps)

    @property
    def n_angles(self) -> int:
        return int(self.angles.size)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_angles, ny, nx)`` of every map stack."""
        return tuple(next(iter(self.maps.values())).shape)  # type: ignore[return-value]

    @property
    def missing_wedge(self) -> float:
        """Missing wedge in degrees (180 minus the covered tilt range)."""
        return float(180.0 - (self.angles.max() - self.angles.min()))

    def stack(self, elements: Iterable[str] | None = None) -> np.ndarray:
        """Maps as one array ``(n_elements, n_angles, ny, nx)``."""
        names = self.elements if elements is None else list(elements)
        return np.stack([self.maps[e] for e in names])

    def __repr__(self) -> str:
        na, ny, nx = self.shape
        return (
            f"TiltSeries({', '.join(self.elements)}; {na} tilts "
            f"{self.angles.min():g}..{self.angles.max():g} deg; {ny}x{nx} px; "
            f"{self.pixel_size:g} nm/px)"
        )

    @property
    def counts(self) -> bool:
        """Whether the maps are X-ray counts: whole numbers, or derived from them.

        Alignment interpolates and per-tilt normalisation rescales the maps, so
        they stop being whole numbers; they are still counts for the Poisson
        likelihood, and the provenance says so (``counts_origin``).
        """
        if self.provenance.get(COUNTS_ORIGIN):
            return True
        return all(np.array_equal(m, np.round(m)) and float(m.min()) >= 0 for m in self.maps.values())

    # -------------------------------------------------------------- transforms
    def _derived(self, maps: Mapping[str, np.ndarray], angles: np.ndarray, step: str,
                 pixel_size: float | None = None) -> TiltSeries:
        prov = copy.deepcopy(self.provenance)
        prov.setdefault("steps", []).append(step)
        if self.counts:
            prov[COUNTS_ORIGIN] = True
        return TiltSeries(
            maps=dict(maps),
            angles=angles,
            pixel_size=self.pixel_size if pixel_size is None else pixel_size,
            lines=self.lines,
            provenance=prov,
            source=self.source,
        )

    def select_elements(self, elements: Iterable[str]) -> TiltSeries:
        """Keep only ``elements`` (in the given order)."""
        names = list(elements)
        missing = [e for e in names if e not in self.maps]
        if missing:
            self._fail(
                f"element(s) {', '.join(missing)} not in the series (has {', '.join(self.elements)})"
            )
        return self._derived(
            {e: self.maps[e] for e in names}, self.angles, f"select_elements {names}"
        )

    def select_tilt_range(self, min_angle: float, max_angle: float) -> TiltSeries:
        """Keep the tilts with ``min_angle <= angle <= max_angle`` (degrees)."""
        if min_angle > max_angle:
            self._fail(f"tilt range minimum {min_angle:g} is above the maximum {max_angle:g}")
        keep = (self.angles >= min_angle - 1e-9) & (self.angles <= max_angle + 1e-9)
        if keep.sum() < 2:
            self._fail(
                f"tilt range {min_angle:g}..{max_angle:g} deg keeps {int(keep.sum())} tilt(s); "
                f"the series spans {self.angles.min():g}..{self.angles.max():g} deg"
            )
        return self._derived(
            {k: v[keep] for k, v in self.maps.items()},
            self.angles[keep],
            f"select_tilt_range {min_angle:g} {max_angle:g}",
        )

    def select_indices(self, indices: Iterable[int]) -> TiltSeries:
        """Keep the tilts at ``indices`` (after sorting)."""
        idx = np.asarray(sorted(set(int(i) for i in indices)), dtype=int)
        return self._derived(
            {k: v[idx] for k, v in self.maps.items()}, self.angles[idx], f"select_indices {idx.tolist()}"
        )

    def bin(self, factor: int) -> TiltSeries:
        """Sum ``factor``×``factor`` pixel blocks (counts are preserved).

        Rows and columns that do not fill a whole block are cropped.
        """
        factor = int(factor)
        if factor < 1:
            self._fail(f"binning factor must be >= 1, got {factor}")
        if factor == 1:
            return self
        na, ny, nx = self.shape
        by, bx = ny // factor, nx // factor
        if by < 1 or bx < 1:
            self._fail(f"binning {factor} is larger than the maps ({ny}x{nx})")
        maps = {
            k: v[:, : by * factor, : bx * factor]
            .reshape(na, by, factor, bx, factor)
            .sum(axis=(2, 4), dtype=np.float64)
            .astype(np.float32)
            for k, v in self.maps.items()
        }
        return self._derived(maps, self.angles, f"bin {factor}", pixel_size=self.pixel_size * factor)

    def with_maps(self, maps: Mapping[str, np.ndarray], step: str) -> TiltSeries:
        """A copy with new maps (same angles), recording ``step`` in the provenance."""
        return self._derived(maps, self.angles, step)
