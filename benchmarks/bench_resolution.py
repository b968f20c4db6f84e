"""z/x anisotropy of SIRT, TV and DIPm-TV on a limited-angle phantom.

For each method, on one simulated tilt series (+-40 deg by default):

* resolution along x, y, z by directional FSC between the even- and the
  odd-tilt reconstructions (half-bit), and its z/x ratio;
* resolution against the ground truth (directional FSC of the full-data
  reconstruction with the truth, 0.5 criterion), z/x ratio: this one sees
  the missing wedge, which both halves share;
* the autocorrelation elongation (z/x width) of each element volume over
  the ground truth's own elongation (1 = as round as the truth).

Iteration counts are printed with the table; they are small so the script
runs on a laptop CPU, so DIPm-TV is far from its usual 1000-2000 iterations.

    .venv/bin/python benchmarks/bench_resolution.py [--size 32] [--dip-iterations 150]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import reconstruct, run_to_end
from edxtomo.resolution import directional_fsc, elongation, estimate_resolution, resolutions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phantom", default="core_shell")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--tilt-range", type=float, nargs=2, default=(-40.0, 40.0))
    ap.add_argument("--tilt-step", type=float, default=4.0)
    ap.add_argument("--dose", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sirt-iterations", type=int, default=50)
    ap.add_argument("--tv-iterations", type=int, default=300)
    ap.add_argument("--dip-iterations", type=int, default=150)
    ap.add_argument("--skip-dip", action="store_true")
    args = ap.parse_args()

    phantom = make_phantom(args.phantom, args.size, seed=args.seed)
    series = acquire(phantom, tilt_angles(*args.tilt_range, args.tilt_step), dose=args.dose,
                     seed=args.seed)
    truth_el = {e: elongation(v) for e, v in phantom.volumes.items()}
    print(f"{args.phantom} {args.size}^3, {series.angles.size} tilts "
          f"{args.tilt_range[0]:g}..{args.tilt_range[1]:g} deg, dose {args.dose:g}, seed {args.seed}")
    print("ground-truth elongation (z/x autocorrelation width): "
          + ", ".join(f"{e} {v:.2f}" for e, v in truth_el.items()))
    methods = [("sirt", {"iterations": args.sirt_iterations}),
               ("tv", {"iterations": args.tv_iterations})]
    if not args.skip_dip:
        methods.append(("dipm-tv", {"iterations": args.dip_iterations, "patience": None, "seed": 0}))
    header = (f"{'method':8} {'iter':>5} {'x nm':>6} {'z nm':>6} {'z/x FSC':>8} "
              f"{'z/x vs truth':>13} {'elong/truth':>12} {'time s':>7}")
    print(header)
    print("-" * len(header))
    for method, params in methods:
        t0 = time.perf_counter()
        est = estimate_resolution(series, method, device="cpu", **params)
        full = run_to_end(reconstruct(series, method, device="cpu", **params)).volumes
        elapsed = time.perf_counter() - t0
        vs_truth = resolutions(directional_fsc({e: (full[e], phantom.volumes[e]) for e in full},
                                               series.pixel_size), "0.5")
        ratio_truth = vs_truth["z"]["nm"] / vs_truth["x"]["nm"]
        elong = np.mean([elongation(full[e]) / truth_el[e] for e in full])
        nyq = "*" if "x" in est.at_nyquist else " "
        print(f"{method:8} {params['iterations']:5d} {est.x_nm:6.2f}{nyq}{est.z_nm:6.2f} "
              f"{est.anisotropy:8.2f} {ratio_truth:13.2f} {elong:12.2f} {elapsed:7.1f}")
    print("* x at the Nyquist limit (2 voxels): z/x FSC is then a lower bound. Times are for "
          "3 reconstructions (two halves + full) on this machine's CPU.")


if __name__ == "__main__":
    main()
