"""Projector and SIRT speed against astra-toolbox (CPU, 2D), measured in one process.

1. Forward and adjoint projection of ``E`` volumes ``n^3`` at 17 tilts
   (-40..40 step 5): :class:`edxtomo.projector.ParallelProjector` (one sparse
   product for all slices and elements) against astra's CPU 2D ``FP``/``BP``
   algorithms with the ``strip`` and ``linear`` kernels, looped over the
   ``n x E`` slices. astra gets its best case: one projector per thread, data
   objects linked to pre-arranged contiguous arrays and one algorithm object
   per slice, all created before timing, so only the projections are timed;
   the slices are shared among ``--astra-threads`` threads (astra releases the
   GIL), by default as many as torch uses.
2. ``--sirt-iterations`` of SIRT with non-negativity on a simulated tilt series
   of the same size: :func:`edxtomo.recon.sirt.sirt` end to end, the same
   update loop alone, and astra's ``SIRT`` (``MinConstraint`` 0) per slice,
   with the relative difference between the results.

Projection times are the best of ``--repeats`` calls after a warm-up (median
in brackets); our SIRT runs ``--repeats`` times and its median is compared with
one astra run (minutes long at the default size). Projector ratios are astra's
time divided by ours (> 1: ours is faster); SIRT ratios are our time divided by
astra's (< 1: ours is faster). On a shared machine torch's OpenMP threads,
which spin while waiting, are far more sensitive to other load than astra's;
the header prints the load average and ``OMP_WAIT_POLICY``.

    python benchmarks/bench_projector.py [--size 128] [--elements 3] [--repeats 3]
                                         [--sirt-iterations 100]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import astra
import numpy as np
import torch

from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.projector import ParallelProjector, _system_matrix_cached, system_matrix
from edxtomo.recon.sirt import sirt

PROJECTOR_TARGET = 3.0  # ours at least this many times faster than astra
SIRT_TARGET = 0.5  # ours at most this fraction of astra's time


def timings(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls after one untimed warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt(ts: list[float]) -> str:
    return f"{min(ts) * 1e3:9.1f} ms (median {statistics.median(ts) * 1e3:.1f})"


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||`` in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --------------------------------------------------------------------------- layouts
# Our volumes are (E, nz, ny, nx) and projections (E, n_angles, ny, n_det). An
# astra 2D slice is our (z, x) slice with its rows flipped; astra's sinogram of
# it is our (angle, detector) slice unchanged.


def to_astra_volumes(vol: np.ndarray) -> np.ndarray:
    e, nz, ny, nx = vol.shape
    return np.ascontiguousarray(vol[:, ::-1].transpose(0, 2, 1, 3), np.float32).reshape(e * ny, nz, nx)


def from_astra_volumes(slices: np.ndarray, e: int) -> np.ndarray:
    n, nz, nx = slices.shape
    return slices.reshape(e, n // e, nz, nx)[:, :, ::-1].transpose(0, 2, 1, 3)


def to_astra_sinograms(proj: np.ndarray) -> np.ndarray:
    e, na, ny, nd = proj.shape
    return np.ascontiguousarray(proj.transpose(0, 2, 1, 3), np.float32).reshape(e * ny, na, nd)


def from_astra_sinograms(slices: np.ndarray, e: int) -> np.ndarray:
    n, na, nd = slices.shape
    return slices.reshape(e, n // e, na, nd).transpose(0, 2, 1, 3)


class AstraSlices:
    """astra CPU 2D objects for every slice, linked to contiguous arrays.

    ``vols`` ``(n_slices, nz, nx)`` and ``sinos`` ``(n_slices, n_angles, n_det)``
    are shared with astra; slices are split into ``threads`` contiguous groups,
    each with its own projector.
    """

    def __init__(self, kernel: str, angles_deg: np.ndarray, nz: int, nx: int, n_slices: int,
                 threads: int) -> None:
        self.vol_geom = astra.create_vol_geom(nz, nx)
        self.proj_geom = astra.create_proj_geom("parallel", 1.0, nx, np.deg2rad(angles_deg))
        self.vols = np.zeros((n_slices, nz, nx), np.float32)
        self.sinos = np.zeros((n_slices, len(angles_deg), nx), np.float32)
        self.vol_ids = [astra.data2d.link("-vol", self.vol_geom, v) for v in self.vols]
        self.sino_ids = [astra.data2d.link("-sino", self.proj_geom, s) for s in self.sinos]
        self.groups = [list(g) for g in np.array_split(np.arange(n_slices), threads)]
        self.proj_ids = [astra.create_projector(kernel, self.proj_geom, self.vol_geom)
                         for _ in self.groups]
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.alg_ids: dict[str, list[int]] = {}

    def create(self, name: str, **options: float) -> None:
        """One algorithm ``name`` ('FP', 'BP', 'SIRT') per slice."""
        ids = [0] * len(self.vols)
        for pid, group in zip(self.proj_ids, self.groups, strict=True):
            for i in group:
                cfg = astra.astra_dict(name)
                cfg["ProjectorId"] = pid
                cfg["ProjectionDataId"] = self.sino_ids[i]
                cfg["VolumeDataId" if name == "FP" else "ReconstructionDataId"] = self.vol_ids[i]
                if options:
                    cfg["option"] = dict(options)
                ids[i] = astra.algorithm.create(cfg)
        self.alg_ids[name] = ids

    def run(self, name: str, iterations: int = 1) -> None:
        ids = self.alg_ids[name]

        def work(group: list[int]) -> None:
            for i in group:
                astra.algorithm.run(ids[i], iterations)

        list(self.pool.map(work, self.groups))

    def delete(self, name: str) -> None:
        astra.algorithm.delete(self.alg_ids.pop(name))

    def close(self) -> None:
        for name in list(self.alg_ids):
            self.delete(name)
        astra.data2d.delete(self.vol_ids + self.sino_ids)
        astra.projector.delete(self.proj_ids)
        self.pool.shutdown()


# --------------------------------------------------------------------------- 1. projector
def bench_projector(n: int, e: int, angles: np.ndarray, repeats: int,
                    astra_threads: list[int]) -> dict[str, float]:
    na = len(angles)
    print(f"\n== 1. forward + adjoint: {e} x {n}^3 volumes, {na} tilts, float32, CPU ==")
    _system_matrix_cached.cache_clear()
    t0 = time.perf_counter()
    rows, _, _, shape = system_matrix(angles, n, n)
    t_matrix = time.perf_counter() - t0
    t0 = time.perf_counter()
    proj = ParallelProjector(angles, n, n)  # matrix now cached: CSR conversion only
    t_csr = time.perf_counter() - t0
    print(f"matrix build (cold, cached per geometry): {t_matrix * 1e3:.0f} ms, "
          f"CSR tensors: {t_csr * 1e3:.0f} ms; A is {shape[0]} x {shape[1]}, {rows.size} non-zeros")

    rng = np.random.default_rng(0)
    vol = rng.random((e, n, n, n), dtype=np.float32)
    sino = rng.random((e, na, n, n), dtype=np.float32)
    vol_t, sino_t = torch.from_numpy(vol), torch.from_numpy(sino)
    with torch.no_grad():
        t_fwd = timings(lambda: proj.forward(vol_t), repeats)
        t_adj = timings(lambda: proj.adjoint(sino_t), repeats)
        ours_fp = proj.forward(vol_t).numpy()
        ours_bp = proj.adjoint(sino_t).numpy()
    print(f"ours  forward  {fmt(t_fwd)}   adjoint {fmt(t_adj)}   "
          f"(torch threads {torch.get_num_threads()})")
    ours = min(t_fwd) + min(t_adj)

    results: dict[str, float] = {"ours": ours}
    for kernel in ("strip", "linear"):
        for threads in astra_threads:
            ast = AstraSlices(kernel, angles, n, n, e * n, threads)
            ast.create("FP")
            ast.create("BP")
            ast.vols[:] = to_astra_volumes(vol)
            a_fwd = timings(lambda ast=ast: ast.run("FP"), repeats)
            fp = from_astra_sinograms(ast.sinos, e).copy()
            ast.sinos[:] = to_astra_sinograms(sino)
            a_bp = timings(lambda ast=ast: ast.run("BP"), repeats)
            bp = from_astra_volumes(ast.vols, e).copy()
            ast.close()
            total = min(a_fwd) + min(a_bp)
            results[f"{kernel}/{threads}"] = total
            print(f"astra {kernel:6s} {threads} thread{'s' if threads > 1 else ' '}: "
                  f"FP {fmt(a_fwd)}   BP {fmt(a_bp)}   "
                  f"speed ratio fwd {min(a_fwd) / min(t_fwd):5.1f}x  adj {min(a_bp) / min(t_adj):5.1f}x  "
                  f"fwd+adj {total / ours:5.1f}x   "
                  f"|ours-astra|/|astra| fwd {rel_diff(ours_fp, fp):.1e} adj {rel_diff(ours_bp, bp):.1e}")
    return results


# --------------------------------------------------------------------------- 2. SIRT
def bench_sirt(n: int, e: int, angles: np.ndarray, iterations: int, repeats: int, threads: int,
               kernels: list[str]) -> dict[str, float]:
    print(f"\n== 2. SIRT, {iterations} iterations, non-negative: {e} elements, {n}^3, "
          f"{len(angles)} tilts ==")
    if e > 4:
        raise SystemExit("--elements above 4: the SIRT phantoms have at most 4 elements")
    phantom = make_phantom("core_shell" if e <= 3 else "memory_cell", n, seed=0)
    series = acquire(phantom, angles, dose=20.0, seed=0).select_elements(phantom.elements[:e])
    data = series.stack()  # (E, n_angles, ny, nx) counts
    out: dict[str, float] = {}

    # Ours, end to end (problem set-up and a cold matrix cache included), and the
    # same update loop alone on raw counts; `repeats` runs of each, interleaved.
    proj = ParallelProjector(angles, n, n)
    b = torch.from_numpy(data)
    with torch.no_grad():
        inv_rows = 1.0 / proj.row_sums().clamp_min(1e-6)
        inv_cols = 1.0 / proj.col_sums().clamp_min(1e-6)

    def loop() -> torch.Tensor:
        with torch.no_grad():
            x = torch.zeros(e, n, n, n)
            for _ in range(iterations):
                x += inv_cols * proj.adjoint((b - proj.forward(x)) * inv_rows)
                x.clamp_(min=0)
        return x

    t_e2e, t_loop = [], []
    for _ in range(repeats):
        _system_matrix_cached.cache_clear()
        t0 = time.perf_counter()
        snaps = list(sirt(series, iterations=iterations, snapshot_every=iterations, device="cpu"))
        t_e2e.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        x = loop()
        t_loop.append(time.perf_counter() - t0)
    ours_e2e = np.stack([snaps[-1].volumes[el] for el in series.elements])
    ours_loop = x.numpy()
    # Ratios use the median of our runs against astra's single run.
    out["ours_e2e"], out["ours_loop"] = statistics.median(t_e2e), statistics.median(t_loop)
    print(f"ours  sirt() end to end {out['ours_e2e']:7.2f} s (min {min(t_e2e):.2f})   "
          f"update loop alone {out['ours_loop']:7.2f} s (min {min(t_loop):.2f})   "
          f"median of {repeats}, torch threads {torch.get_num_threads()}; "
          f"|sirt() - loop|/|loop| = {rel_diff(ours_e2e, ours_loop):.1e}")

    for kernel in kernels:
        ast = AstraSlices(kernel, angles, n, n, e * n, threads)
        ast.sinos[:] = to_astra_sinograms(data)
        t0 = time.perf_counter()
        ast.create("SIRT", MinConstraint=0.0)
        t_create = time.perf_counter() - t0
        t0 = time.perf_counter()
        ast.run("SIRT", iterations)
        t_run = time.perf_counter() - t0
        rec = from_astra_volumes(ast.vols, e).copy()
        ast.close()
        out[f"{kernel}_run"] = t_run
        out[f"{kernel}_total"] = t_create + t_run
        per_el = ", ".join(f"{el} {rel_diff(ours_loop[i], rec[i]):.1e}"
                           for i, el in enumerate(series.elements))
        print(f"astra {kernel:6s} {threads} thread{'s' if threads > 1 else ' '}: create "
              f"{t_create:6.2f} s  run {t_run:7.2f} s   time ratio ours/astra: loop/run "
              f"{out['ours_loop'] / t_run:.3f}, end to end {out['ours_e2e'] / (t_create + t_run):.3f}"
              f"   |ours-astra|/|astra| {rel_diff(ours_loop, rec):.1e} ({per_el}); "
              f"astra min {rec.min():.2g}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="volume edge n (default 128)")
    parser.add_argument("--elements", type=int, default=3, help="number of elements E (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each projection")
    parser.add_argument("--sirt-iterations", type=int, default=100)
    parser.add_argument("--astra-threads", type=int, default=torch.get_num_threads(),
                        help="threads sharing astra's slices (default: torch's thread count)")
    parser.add_argument("--sirt-kernels", default="strip,linear",
                        help="astra kernels for SIRT, comma-separated ('' to skip SIRT)")
    args = parser.parse_args()
    if args.size < 8 or args.elements < 1 or args.repeats < 1 or args.sirt_iterations < 1:
        parser.error("--size >= 8, --elements >= 1, --repeats >= 1, --sirt-iterations >= 1")

    angles = tilt_angles(-40, 40, 5)
    threads = args.astra_threads
    print(f"edxtomo projector benchmark, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}), astra {astra.__version__} "
          f"(CPU 2D, {threads} thread{'s' if threads > 1 else ''}), numpy {np.__version__}")

    if os.getloadavg()[0] > 1 and torch.get_num_threads() > 1 and "OMP_WAIT_POLICY" not in os.environ:
        print("note: the machine is busy and torch's OpenMP threads spin while they wait; "
              "compare with OMP_WAIT_POLICY=passive")

    proj = bench_projector(args.size, args.elements, angles, args.repeats,
                           sorted({1, threads}))
    kernels = [k for k in args.sirt_kernels.split(",") if k]
    rec = (bench_sirt(args.size, args.elements, angles, args.sirt_iterations, args.repeats,
                      threads, kernels)
           if kernels else {})

    print(f"\n== summary (astra with {threads} thread{'s' if threads > 1 else ''}; "
          f"load average now {os.getloadavg()[0]:.2f}) ==")
    for kernel in ("strip", "linear"):
        ratio = proj[f"{kernel}/{threads}"] / proj["ours"]
        print(f"projector fwd+adj speed vs astra {kernel:6s}: {ratio:5.1f}x   "
              f"target >= {PROJECTOR_TARGET:g}x: {'met' if ratio >= PROJECTOR_TARGET else 'MISSED'}")
    for kernel in kernels:
        for ours, theirs, what in (("ours_loop", "run", "loop vs run"),
                                   ("ours_e2e", "total", "end to end")):
            ratio = rec[ours] / rec[f"{kernel}_{theirs}"]
            print(f"SIRT time vs astra {kernel:6s} ({what:11s}): {ratio:.3f}x   "
                  f"target <= {SIRT_TARGET:g}x: {'met' if ratio <= SIRT_TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
