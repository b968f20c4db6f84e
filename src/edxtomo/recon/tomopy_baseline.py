"""tomopy's algorithms as extra baselines, when tomopy is importable (it is conda-only).

tomopy reconstructs each ``y`` slice as an ``nx × nx`` image whose orientation
convention differs from ours; rather than trusting a convention, the result
is re-projected with our projector in each of the eight flips/transposes and
the one that best explains the measured maps is kept.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import numpy as np
import torch

from ..tiltseries import TiltSeries
from .objective import data_misfit
from .params import Annotated, Device, Doc, Iterations, Literal, SnapshotEvery, check_call
from .problem import Problem
from .snapshot import Snapshot

TomopyAlgorithm = Literal["sirt", "mlem", "art", "gridrec", "fbp"]


def tomopy_available() -> bool:
    return importlib.util.find_spec("tomopy") is not None


def _orientations(img: np.ndarray) -> list[np.ndarray]:
    # img: (ny, nz, nx) candidates from a (ny, N, N) tomopy result.
    out = []
    for t in (img, np.swapaxes(img, 1, 2)):
        for fz in (False, True):
            for fx in (False, True):
                v = t[:, ::-1] if fz else t
                v = v[:, :, ::-1] if fx else v
                out.append(np.ascontiguousarray(v))
    return out


def tomopy_recon(series: TiltSeries,
                 algorithm: Annotated[TomopyAlgorithm, Doc("tomopy algorithm")] = "sirt",
                 iterations: Iterations = 100, snapshot_every: SnapshotEvery = 100,
                 device: Device = "cpu") -> Iterator[Snapshot]:
    """Reconstruct each element with ``tomopy.recon(algorithm=...)`` (one snapshot at the end).

    Registered as ``tomopy-sirt``, ``tomopy-mlem`` and ``tomopy-gridrec``
    (:mod:`edxtomo.recon.registry`), available when tomopy imports.
    """
    import tomopy

    check_call(tomopy_recon, locals())
    prob = Problem.build(series, device="cpu")
    theta = np.deg2rad(series.angles)
    vols = []
    for i in range(len(prob.elements)):
        proj = prob.meas[i].numpy() * prob.nz  # (na, ny, nx) in A x = b units
        kwargs = {"num_iter": iterations} if algorithm in ("sirt", "mlem", "art") else {}
        rec = tomopy.recon(proj, theta, algorithm=algorithm, **kwargs)  # (ny, N, N)
        best, best_err = None, np.inf
        for cand in _orientations(rec.astype(np.float32)):
            if cand.shape[1:] != (prob.nz, proj.shape[2]):
                continue
            vol = torch.from_numpy(np.transpose(cand, (1, 0, 2)).copy())[None]  # (1, nz, ny, nx)
            err = float(data_misfit(prob.forward(vol), prob.meas[i : i + 1]).sum())
            if err < best_err:
                best, best_err = vol[0], err
        if best is None:
            raise RuntimeError(f"tomopy returned an unexpected shape {rec.shape}")
        vols.append(best)
    x = torch.stack(vols).clamp_min(0)
    loss = float(data_misfit(prob.forward(x), prob.meas).sum())
    yield prob.snapshot(x, iterations, iterations, {"data": loss}, f"tomopy-{algorithm}", final=True)
