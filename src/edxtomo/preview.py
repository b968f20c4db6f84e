"""Orthoslice figures of element volumes (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .io.atomic import write_atomic


def orthoslices(vol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central ``(y, x)``, ``(z, x)`` and ``(z, y)`` slices of ``(nz, ny, nx)``."""
    nz, ny, nx = vol.shape
    return vol[nz // 2], vol[:, ny // 2, :], vol[:, :, nx // 2]


def save_orthoslices(path: str | Path, rows: Mapping[str, Mapping[str, np.ndarray]],
                     title: str = "") -> Path:
    """One row per entry of ``rows`` (``{label: {element: volume}}``), three views per element.

    Columns: for each element the xy (top view), xz and yz (along the beam) slices.
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
        for r, lab in enumerate(labels):
            vol = rows[lab].get(el)
            for k, (view, name) in enumerate(zip(orthoslices(vol) if vol is not None else (None,) * 3,
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
