"""Orthoslice figures of element volumes (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .io.atomic import write_atomic


def slice_indices(vol: np.ndarray) -> tuple[int, int, int]:
    """The ``(z, y, x)`` planes holding the most signal (the centre for an empty volume)."""
    v = np.clip(np.asarray(vol, dtype=np.float64), 0, None)
    if not v.any():
        return tuple(n // 2 for n in v.shape)  # type: ignore[return-value]
    return tuple(int(np.argmax(v.sum(axis=tuple(a for a in range(3) if a != k)))) for k in range(3))


def orthoslices(vol: np.ndarray, at: tuple[int, int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, x)``, ``(z, x)`` and ``(z, y)`` slices of ``(nz, ny, nx)`` through ``at``."""
    iz, iy, ix = slice_indices(vol) if at is None else at
    return vol[iz], vol[:, iy, :], vol[:, :, ix]


def save_orthoslices(path: str | Path, rows: Mapping[str, Mapping[str, np.ndarray]],
                     title: str = "") -> Path:
    """One row per entry of ``rows`` (``{label: {element: volume}}``), three views per element.

    Columns: for each element the xy (top view), xz and yz (along the beam) slices,
    through the planes where the first row (the ground truth, say) has most signal.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = list(rows)
    elements = list(next(iter(rows.values())))
    fig, axes = plt.subplots(len(labels), 3 * len(elements),
                             figsize=(2.0 * 3 * len(elements), 2.1 * len(labels) + 0.4), squeeze=False)
    for e_i, el in enumerate(elements):
        vmax = max(float(np.percentile(rows[lab][el], 99.9)) for lab in labels if el in rows[lab]) or 1.0
        # The same planes for every row, chosen where the first row has most signal.
        at = slice_indices(rows[labels[0]][el])
        for r, lab in enumerate(labels):
            vol = rows[lab].get(el)
            for k, (view, name) in enumerate(zip(orthoslices(vol, at) if vol is not None else (None,) * 3,
                                                 ("xy", "xz", "yz"), strict=True)):
                ax = axes[r, 3 * e_i + k]
                ax.set_xticks([])
                ax.set_yticks([])
                if view is not None:
                    # Each volume is shown on its own scale: methods differ in units.
                    scale = float(np.percentile(vol, 99.9)) or vmax
                    ax.imshow(view, cmap="magma", vmin=0, vmax=scale, interpolation="nearest")
                if r == 0:
                    ax.set_title(f"{el} {name}", fontsize=9)
                if e_i == 0 and k == 0:
                    ax.set_ylabel(lab, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    write_atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return path
