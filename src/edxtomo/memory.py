"""Memory available here, and refusing work that cannot fit before allocating it."""

from __future__ import annotations

import os

from .errors import ResourceError

#: Bytes per voxel and element while simulating: the float64 phantom, a
#: float32 copy and the projection work arrays (an upper estimate).
SIMULATE_BYTES_PER_VOXEL = 24
#: Largest edge a phantom may have whatever the memory (2048³ voxels = 8.6e9).
MAX_EDGE = 2048


def available_bytes() -> int | None:
    """Memory a new allocation can get (``MemAvailable``), or ``None`` where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    """``1.5 GB`` for ``1.5e9``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check_fits(need: float, what: str) -> None:
    """Raise :class:`ResourceError` when ``need`` bytes exceed the available memory."""
    have = available_bytes()
    if have is not None and need > have:
        raise ResourceError(f"{what} needs about {human(need)} of memory; {human(have)} is available here")


def check_simulation(size: int, n_elements: int, n_angles: int) -> None:
    """Refuse a phantom edge that is not positive, absurd, or does not fit in memory."""
    if size < 1 or size > MAX_EDGE:
        raise ResourceError(f"--size {size}: a phantom edge must lie between 8 and {MAX_EDGE} voxels")
    need = float(size) ** 3 * max(n_elements, 1) * SIMULATE_BYTES_PER_VOXEL + n_angles * size**2 * 64
    check_fits(need, f"a {size}³ phantom of {n_elements} elements")
