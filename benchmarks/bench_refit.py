"""DIPm-TV with and without ``refit``, and fitting all tilts without held-out stopping.

What the held-out tilts' data are worth to the result, and what held-out
stopping is worth on a given tilt scheme. Variants:

- ``heldout``: every 4th tilt held out to choose each element's iteration
  (patience stopping), also on series shorter than ``heldout_min_tilts``;
- ``refit``: the same, then all tilts fitted again from the same seeded start
  to those iterations (the held-out phase is identical: same seed);
- ``all``: every tilt fitted, no held-out tilts, to the iteration cap;
- ``thin`` / ``thin-refit``: on a series shorter than ``heldout_min_tilts``, ``--thin``
  (default 0.1) of every tilt's counts held out instead of tilts (``heldout_counts``),
  without and with ``refit``.

Quality is PSNR against the phantom (deterministic for a seed on a CPU);
``--trace N`` prints the PSNR of the current volume every N iterations, so
one ``all`` run shows where a cap would have been best.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_refit.py --size 32 --phantom core_shell
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_refit.py --size 32 --phantom memory_cell \\
        --tilts -40 30 10 --drop 3 --dose 20 --variants heldout all --trace 100
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--phantom", default="core_shell", choices=["core_shell", "memory_cell"])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--dose", type=float, default=5.0)
    parser.add_argument("--tilts", type=float, nargs=3, default=(-40, 40, 5), metavar=("FIRST", "LAST", "STEP"))
    parser.add_argument("--drop", type=int, nargs="*", default=[],
                        help="tilt indices left out of the series (a gap, as in a leave-one-out test)")
    parser.add_argument("--variants", nargs="+", default=["heldout", "refit"], choices=["heldout", "refit", "all", "thin", "thin-refit"])
    parser.add_argument("--thin", type=float, default=0.1, help="heldout_counts of the thin variants")
    parser.add_argument("--trace", type=int, default=0, metavar="N", help="PSNR of the current volume every N iterations")
    parser.add_argument("--seed", type=int, default=0, help="DIPm-TV seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--params", default="{}", help="other DIPm-TV parameters as JSON")
    args = parser.parse_args()

    import json

    import numpy as np
    import torch

    from edxtomo.metrics import compare
    from edxtomo.phantom import acquire, make_phantom, tilt_angles
    from edxtomo.recon import reconstruct

    if args.threads:
        torch.set_num_threads(args.threads)
    truth = make_phantom(args.phantom, args.size, seed=1)
    series = acquire(truth, tilt_angles(*args.tilts), dose=args.dose, seed=3)
    if args.drop:
        series = series.select_indices([i for i in range(series.n_angles) if i not in set(args.drop)])
    params = {"iterations": args.iterations, "seed": args.seed, **json.loads(args.params)}
    if args.trace:
        params["snapshot_every"] = args.trace
    print(f"{args.phantom} {args.size}^3, tilts {np.round(series.angles, 1).tolist()}, dose {args.dose}; "
          f"DIPm-TV {params}")

    def mean_psnr(volumes: dict) -> tuple[float, dict]:
        scores = compare(volumes, truth.volumes)
        per = {e: round(float(m["psnr"]), 2) for e, m in scores.items() if e != "mean"}
        return round(float(scores["mean"]["psnr"]), 3), per

    for variant in args.variants:
        # heldout_min_tilts 4: the held-out variants hold tilts out whatever the series' length.
        extra = {"heldout": {"heldout_min_tilts": 4}, "refit": {"refit": True, "heldout_min_tilts": 4},
                 "all": {"heldout": 0, "patience": 0}, "thin": {"heldout_counts": args.thin},
                 "thin-refit": {"heldout_counts": args.thin, "refit": True}}[variant]
        trace = []
        for snap in reconstruct(series, "dipm-tv", **params, **extra):
            if args.trace and not snap.final:
                trace.append((snap.iteration, mean_psnr(snap.volumes)[0]))
        mean, per = mean_psnr(snap.volumes)
        print(f"{variant:8s} iterations run {snap.iteration:5d}  chosen {snap.info.get('best_iterations')}  "
              f"stopped {snap.stopped or 'iteration cap'!r}  PSNR {per} mean {mean}", flush=True)
        if trace:
            peak = max(trace, key=lambda t: t[1])
            print(f"         trace (iteration, mean PSNR): {trace}; peak {peak}", flush=True)


if __name__ == "__main__":
    main()
