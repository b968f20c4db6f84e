"""Does the error on a left-out tilt pick the same TV weight as PSNR against the truth?

The real-data benchmark (bench_real.py) scores reconstructions by how well
they predict a tilt left out of them, since real data have no ground truth.
On phantoms both scores exist: for each left-out tilt, TV is run from the
other tilts at a range of weights, and the script prints the weight of best
PSNR (against the phantom) beside the weight of lowest unexplained fraction
(of the left-out tilt's measured counts, noise floor removed,
``alignment.tilt_scores.unexplained_fraction``), and both scores per weight.

    python benchmarks/bench_heldout_weight.py                       # 32³, 8 tilts −40…30°, 5 counts/px
    python benchmarks/bench_heldout_weight.py --size 32 --dose 20 --tilts -40 40 5

About 2 minutes at 32³ on one thread.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from edxtomo.alignment.tilt_scores import unexplained_fraction
from edxtomo.metrics import compare
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.projector import ParallelProjector
from edxtomo.recon import reconstruct, run_to_end

WEIGHTS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--dose", type=float, default=5.0)
    parser.add_argument("--tilts", type=int, nargs=3, default=[-40, 30, 10], metavar=("START", "STOP", "STEP"))
    parser.add_argument("--left-out", type=float, nargs="+", default=[-40.0, 0.0, 30.0])
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.size
    for name in ("core_shell", "memory_cell"):
        ph = make_phantom(name, n, seed=2)
        series = acquire(ph, tilt_angles(*args.tilts), dose=args.dose, seed=2)
        for deg in args.left_out:
            k = int(np.argmin(np.abs(series.angles - deg)))
            train = series.select_indices([i for i in range(series.n_angles) if i != k])
            proj = ParallelProjector([series.angles[k]], n, n, dtype=torch.float64)
            rows = []
            for w in args.weights:
                snap = run_to_end(reconstruct(train, "tv", tv_weight=w, iterations=args.iterations,
                                              snapshot_every=args.iterations))
                psnr = compare(snap.volumes, ph.volumes)["mean"]["psnr"]
                left = []
                for el in series.elements:
                    vol = torch.from_numpy(snap.volumes[el].astype(np.float64))[None]
                    pred = proj.forward(vol)[0, 0].numpy()
                    left.append(unexplained_fraction(pred, series.maps[el][k].astype(np.float64)))
                rows.append((w, psnr, float(np.mean(left))))
            by_psnr = max(rows, key=lambda r: r[1])
            by_left = min(rows, key=lambda r: r[2])
            print(f"{name:12s} dose {args.dose:g}, left out {series.angles[k]:5.0f}°: best PSNR at "
                  f"{by_psnr[0]:g} ({by_psnr[1]:.2f} dB), best left-out at {by_left[0]:g} "
                  f"({by_left[2]:.3f}; PSNR there {by_left[1]:.2f} dB)", flush=True)
            print("    weight: PSNR / unexplained  " + "  ".join(f"{w:g}: {p:.2f} / {u:.3f}" for w, p, u in rows),
                  flush=True)


if __name__ == "__main__":
    main()
