"""How much memory a run will need, checked before anything large is allocated.

The estimate adds up the big allocations of each method: the measured maps,
the sparse projector (two CSR matrices plus their construction), the
algorithm's volume-sized state and, for DIP, the activations the U-Net keeps
for back-propagation and their gradients. Each part is named, so the refusal
message says what dominates and what to change. The constants were checked
against measured peaks (``benchmarks/bench_memory.py``): the estimate lands
within about +-30 % of the peak resident memory on CPU, erring high.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResourceError

GIB = 1024**3
FLOAT = 4
#: Non-zeros per (angle, voxel) of the strip-model system matrix (a voxel's
#: footprint covers 1-2 detector bins); measured 1.6-1.9 for 32-256 pixels.
NNZ_PER_VOXEL_ANGLE = 2.0
#: Bytes per non-zero: float32 value + int64 column index, twice (A and Aᵀ),
#: plus the int64/float64 triplets and sort order alive while building them.
BYTES_PER_NNZ = 2 * (4 + 8) + 40
#: Peak of saved activations + live gradients relative to the saved activations
#: (measured: DIPm-TV 64³ 0.96 GiB, 128³ x 3 elements 4.1 GiB peak).
ACTIVATION_FACTOR = 1.3
#: Fixed cost of torch, numpy and the Python objects of a run (measured 0.23-0.26 GiB).
BASE_BYTES = 250 * 1024**2
#: Allocator slack on top of the counted tensors (fragmentation, temporaries).
SLACK = 1.2


@dataclass
class MemoryEstimate:
    """Bytes a run needs, in named parts."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        counted = sum(v for k, v in self.parts.items() if k != "base")
        return int(self.parts.get("base", 0) + counted * SLACK)

    def describe(self) -> str:
        big = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return f"~{self.total / GIB:.1f} GiB (" + ", ".join(
            f"{k} {v / GIB:.2f} GiB" for k, v in big) + ")"


def _padded(n: int, multiple: int) -> int:
    return max(-(-int(n) // multiple), 2) * multiple


def _unet_floats(shape: Sequence[int], widths: Sequence[int], skips: Sequence[int], in_ch: int,
                 out_ch: int) -> int:
    """Floats the U-Net keeps for backward (saved activations), per forward pass."""
    multiple = 2 ** len(widths)
    vox = [int(_padded(shape[0], multiple) * _padded(shape[1], multiple) * _padded(shape[2], multiple))]
    for _ in widths:
        vox.append(vox[-1] // 8)
    total = 2 * in_ch * vox[0]  # fixed input and its jittered copy
    for i, (w, s) in enumerate(zip(widths, skips, strict=True)):
        total += 2 * s * vox[i]            # skip block (conv + BN/LeakyReLU) at this level
        total += 4 * w * vox[i + 1]        # two encoder blocks one level down
        deeper = widths[i + 1] if i + 1 < len(widths) else widths[-1]
        total += (3 * deeper + 2 * s) * vox[i] + 4 * w * vox[i]  # upsample, cat, BN, two blocks
    return total + 3 * out_ch * vox[0]


def estimate(method: str, shape: Sequence[int], n_elements: int, params: Mapping[str, Any],
             batch: int = 1) -> MemoryEstimate:
    """Memory for ``method`` on maps of ``shape`` = (n_angles, ny, nx) and ``n_elements`` elements.

    ``params`` are the method's (checked) parameters; ``nz`` defaults to the
    map width as in the algorithms.
    """
    na, ny, nx = (int(v) for v in shape)
    nz = int(params.get("nz") or nx)
    e = int(n_elements)
    vol = nz * ny * nx
    parts = {
        "base": BASE_BYTES,
        "maps": 3 * e * na * ny * nx * FLOAT,
        "projector": int(NNZ_PER_VOXEL_ANGLE * na * nz * nx * BYTES_PER_NNZ),
    }
    if method.startswith("dip"):
        widths = tuple(params.get("widths", (16, 32, 64, 128)))
        skips = tuple(params.get("skip_widths", (4, 8, 16, 32)))
        in_ch = int(params.get("input_channels", 32))
        nets = e if method == "dip-tv" else 1
        out_ch = 1 if method == "dip-tv" else e
        acts = nets * _unet_floats((nz, ny, nx), widths, skips, in_ch, out_ch)
        # Saved activations plus the gradients alive at once during backward.
        parts["network activations"] = int(ACTIVATION_FACTOR * acts * FLOAT)
        parts["volumes (EMA, best, TV)"] = 10 * e * vol * FLOAT
        parts["projections"] = 6 * e * na * ny * nx * FLOAT
    elif method.startswith("tv"):
        # x, x_bar, x_new, 3 gradient components, divergence, adjoint, temporaries.
        parts["volumes"] = 12 * e * vol * FLOAT
        parts["projections"] = 4 * e * na * ny * nx * FLOAT
    else:
        parts["volumes"] = 5 * e * vol * FLOAT
        parts["projections"] = 4 * e * na * ny * nx * FLOAT
    parts = {k: int(v * batch) if k != "base" else v for k, v in parts.items()}
    return MemoryEstimate(parts)


def available_bytes(device: str = "cpu") -> int | None:
    """Memory that can be had now on ``device`` (None when unknown)."""
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(dev.split(":")[1]) if ":" in dev else torch.cuda.current_device()
            free, _ = torch.cuda.mem_get_info(index)
            return int(free)
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(method: str, shape: Sequence[int], n_elements: int, params: Mapping[str, Any],
               device: str = "cpu") -> MemoryEstimate:
    """Raise :class:`~edxtomo.errors.ResourceError` when the run cannot fit; return the estimate.

    The message gives the estimate, what is available, and what to change.
    """
    est = estimate(method, shape, n_elements, params)
    free = available_bytes(device)
    if free is not None and est.total > free:
        na, ny, nx = shape
        raise ResourceError(
            f"{method} on {n_elements} element(s) of {ny}x{nx} pixels x {na} tilts needs {est.describe()} "
            f"but {free / GIB:.1f} GiB is available on {device}: bin the maps (--bin 2 needs about "
            f"{estimate(method, (na, ny // 2, nx // 2), n_elements, {**params, 'nz': (params.get('nz') or nx) // 2}).total / GIB:.1f} GiB), "
            "reduce --nz, or reconstruct fewer elements at once")
    return est
