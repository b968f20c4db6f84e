"""Synthetic multi-element phantoms and a Poisson EDX acquisition simulator.

Both phantoms have elements that share boundaries, which is where one
element's sharp edges can help another in a joint reconstruction:

* ``core_shell``: quantum dots with an In core, a Se inner shell and an S
  outer shell (InP/ZnSe/ZnS), scattered in the volume;
* ``memory_cell``: a phase-change memory cell cut as a FIB lamella: a Ti
  (TiN) heater pillar and electrodes around a Ge-Sb-Te layer with Ge-rich
  segregated grains above the heater.

Volumes are ``(nz, ny, nx)`` with values in [0, 1] (relative concentration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .projector import ParallelProjector
from .tiltseries import TiltSeries


@dataclass
class Phantom:
    """Ground-truth element volumes and how strongly each element emits."""

    name: str
    volumes: dict[str, np.ndarray]
    yields: dict[str, float]
    lines: dict[str, str]
    pixel_size: float = 1.0
    info: dict = field(default_factory=dict)

    @property
    def elements(self) -> list[str]:
        return list(self.volumes)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = (np.arange(n) - (n - 1) / 2) / (n / 2)  # [-1, 1)
    return np.meshgrid(c, c, c, indexing="ij")


def core_shell(size: int = 64, seed: int = 0) -> Phantom:
    """InP/ZnSe/ZnS core–shell particles (elements In, Se, S)."""
    rng = np.random.default_rng(seed)
    z, y, x = _grid(size)
    vin, vse, vs = (np.zeros((size,) * 3, np.float32) for _ in range(3))
    centres = [(-0.05, -0.35, -0.3), (0.1, 0.3, 0.35), (-0.15, 0.35, -0.35), (0.2, -0.3, 0.4)]
    for k, (cz, cy, cx) in enumerate(centres):
        jitter = rng.uniform(-0.05, 0.05, 3)
        r_out = rng.uniform(0.26, 0.32) if k < 2 else rng.uniform(0.18, 0.22)
        axes = 1 + rng.uniform(-0.12, 0.12, 3)
        d = np.sqrt(((z - cz - jitter[0]) * axes[0]) ** 2 + ((y - cy - jitter[1]) * axes[1]) ** 2
                    + ((x - cx - jitter[2]) * axes[2]) ** 2)
        core, shell1 = 0.45 * r_out, 0.75 * r_out
        vin[d < core] = 1.0
        vse[(d >= core) & (d < shell1)] = 0.8
        vs[(d >= shell1) & (d < r_out)] = 0.6
    return Phantom(
        name="core_shell",
        volumes={"In": vin, "Se": vse, "S": vs},
        yields={"In": 1.0, "Se": 0.8, "S": 0.6},
        lines={"In": "In_La", "Se": "Se_Ka", "S": "S_Ka"},
        pixel_size=0.5,
        info={"description": "InP/ZnSe/ZnS core-shell quantum dots", "seed": seed},
    )


def memory_cell(size: int = 64, seed: int = 0) -> Phantom:
    """Phase-change memory cell lamella (elements Ge, Sb, Te, Ti)."""
    rng = np.random.default_rng(seed)
    z, y, x = _grid(size)
    # FIB lamella: thinner along the beam than wide, and narrow enough in x that
    # it stays inside the field of view at ±60° (no truncated projections).
    lamella = (np.abs(z) < 0.4) & (np.abs(x) < 0.7)
    ge, sb, te, ti = (np.zeros((size,) * 3, np.float32) for _ in range(4))
    bottom = (y > 0.45) & (y < 0.8) & lamella
    top = (y < -0.45) & (y > -0.8) & lamella
    heater = (np.sqrt(z**2 + x**2) < 0.16) & (y >= 0.1) & (y <= 0.45)
    ti[bottom | top | heater] = 1.0
    gst = (y > -0.45) & (y < 0.1) & (np.abs(x) < 0.6) & lamella
    ge[gst], sb[gst], te[gst] = 0.25, 0.25, 0.55
    # Ge-rich grains segregated above the heater, depleted in Sb.
    for _ in range(5):
        c = (rng.uniform(-0.2, 0.2), rng.uniform(-0.3, 0.0), rng.uniform(-0.4, 0.4))
        r = rng.uniform(0.1, 0.17)
        g = gst & (((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r**2)
        ge[g], sb[g], te[g] = 0.9, 0.05, 0.3
    return Phantom(
        name="memory_cell",
        volumes={"Ge": ge, "Sb": sb, "Te": te, "Ti": ti},
        yields={"Ge": 1.0, "Sb": 0.7, "Te": 0.9, "Ti": 0.5},
        lines={"Ge": "Ge_Ka", "Sb": "Sb_La", "Te": "Te_La", "Ti": "Ti_Ka"},
        pixel_size=1.0,
        info={"description": "Ge-rich GST phase-change memory cell with TiN heater", "seed": seed},
    )


PHANTOMS: dict[str, Callable[..., Phantom]] = {"core_shell": core_shell, "memory_cell": memory_cell}


def make_phantom(name: str = "core_shell", size: int = 64, seed: int = 0) -> Phantom:
    """Build a phantom by name (see :data:`PHANTOMS`)."""
    if name not in PHANTOMS:
        raise ValueError(f"unknown phantom {name!r}: choose one of {', '.join(PHANTOMS)}")
    if size < 8:
        raise ValueError(f"phantom size must be >= 8 voxels, got {size}")
    return PHANTOMS[name](size=size, seed=seed)


def tilt_angles(min_angle: float = -40, max_angle: float = 40, step: float = 5) -> np.ndarray:
    """``min_angle, min_angle + step, ... <= max_angle`` in degrees."""
    if step <= 0:
        raise ValueError(f"tilt step must be positive, got {step}")
    if max_angle < min_angle:
        raise ValueError(f"tilt range {min_angle}..{max_angle} is empty")
    n = int(np.floor((max_angle - min_angle) / step + 1e-9)) + 1
    return min_angle + step * np.arange(n, dtype=np.float64)


def acquire(
    phantom: Phantom,
    angles: np.ndarray,
    dose: float | None = 5.0,
    seed: int = 0,
) -> TiltSeries:
    """Simulate an EDX tilt series of ``phantom``.

    Parameters
    ----------
    angles
        Tilts in degrees.
    dose
        Mean expected counts per pixel inside the sample footprint of an
        element with yield 1 (others scale by their yield). ``None`` gives
        noiseless projections in concentration·voxel units.
    seed
        Seed of the Poisson noise.
    """
    vols = np.stack([phantom.volumes[e] for e in phantom.elements]).astype(np.float64)
    nz, ny, nx = vols.shape[1:]
    proj = ParallelProjector(angles, nz, nx, dtype=torch.float64)
    clean = proj.forward(torch.from_numpy(vols)).numpy()
    maps = {}
    rng = np.random.default_rng(seed)
    for i, e in enumerate(phantom.elements):
        p = np.clip(clean[i], 0, None)
        if dose is None:
            maps[e] = p.astype(np.float32)
            continue
        if dose <= 0:
            raise ValueError(f"dose must be positive counts per pixel, got {dose}")
        footprint = p > 0.01 * p.max()
        scale = dose * phantom.yields.get(e, 1.0) / p[footprint].mean()
        maps[e] = rng.poisson(p * scale).astype(np.float32)
    return TiltSeries(
        maps=maps,
        angles=angles,
        pixel_size=phantom.pixel_size,
        lines=phantom.lines,
        provenance={"simulated": {"phantom": phantom.name, "dose": dose, "seed": seed,
                                  "size": nz, **phantom.info}},
        source=f"simulated {phantom.name}",
    )
