"""How far the best TV weight moves across data sets, with the default weight.

For each case (phantom, size, dose, tilt scheme) TV is run to convergence at
a range of weights; the script prints the best weight, the PSNR at the best
and at the default weight, and SIRT for reference. A well-normalised weight
keeps the default within a fraction of a dB of the best everywhere.

    python benchmarks/bench_tv_weight.py [--quick]
"""

from __future__ import annotations

import argparse
import time

from edxtomo.metrics import compare
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import reconstruct, run_to_end
from edxtomo.recon.tv import DEFAULT_TV_WEIGHT

WEIGHTS = (0.005, 0.015, 0.05, 0.15, 0.5)


def psnr_of(series, truth, method: str, **params) -> float:
    snap = run_to_end(reconstruct(series, method, snapshot_every=10_000, **params))
    return compare(snap.volumes, truth)["mean"]["psnr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes only")
    parser.add_argument("--iterations", type=int, default=400)
    args = parser.parse_args()
    sizes = (24, 32) if args.quick else (32, 64)
    cases = [
        (ph, n, dose, tilts)
        for ph in ("core_shell", "memory_cell")
        for n in sizes
        for dose in (2.0, 20.0)
        for tilts in ((-40, 40, 5), (-60, 60, 10))
    ]
    print(f"default tv_weight {DEFAULT_TV_WEIGHT}; weights swept {WEIGHTS}; {args.iterations} iterations")
    print(f"{'phantom':12s} {'n':>3s} {'dose':>5s} {'tilts':>12s} {'SIRT':>6s} {'best w':>7s} "
          f"{'best':>6s} {'default':>7s} {'loss':>5s} {'s':>5s}")
    gaps = []
    for ph_name, n, dose, tilts in cases:
        t0 = time.perf_counter()
        ph = make_phantom(ph_name, n, seed=2)
        series = acquire(ph, tilt_angles(*tilts), dose=dose, seed=2)
        sirt = psnr_of(series, ph.volumes, "sirt", iterations=100)
        scores = {w: psnr_of(series, ph.volumes, "tv", tv_weight=w, iterations=args.iterations)
                  for w in (*WEIGHTS, DEFAULT_TV_WEIGHT)}
        best_w = max(WEIGHTS, key=scores.get)
        gap = scores[best_w] - scores[DEFAULT_TV_WEIGHT]
        gaps.append(max(gap, 0.0))
        print(f"{ph_name:12s} {n:3d} {dose:5g} {str(tilts):>12s} {sirt:6.2f} {best_w:7g} "
              f"{scores[best_w]:6.2f} {scores[DEFAULT_TV_WEIGHT]:7.2f} {gap:5.2f} "
              f"{time.perf_counter() - t0:5.0f}", flush=True)
    print(f"default weight loses {sum(gaps) / len(gaps):.2f} dB on average, "
          f"{max(gaps):.2f} dB at most, against the best swept weight")


if __name__ == "__main__":
    main()
