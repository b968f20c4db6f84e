"""How far the best TV weight moves across data sets, with the default weight.

For each case (phantom, size, dose, tilt scheme) TV is run to convergence at
a range of weights; the script prints SIRT for reference, the best weight and
its PSNR, the PSNR at the default weight and the gap between them (mean PSNR
over elements, dB). A well-normalised weight keeps the default within a
fraction of a dB of the best on every object, dose, tilt scheme and size.

    python benchmarks/bench_tv_weight.py                      # 32³ and 64³, both phantoms
    python benchmarks/bench_tv_weight.py --sizes 32 --seed 3  # another noise draw and phantom
    python benchmarks/bench_tv_weight.py --sizes 64 --phantoms memory_cell
    python benchmarks/bench_tv_weight.py --sizes 64 --doses 2 --tilts -40 40 5 --threads 1  # fewer cases
    python benchmarks/bench_tv_weight.py --method dipm-tv --sizes 32 --threads 1 --weights 0.007 0.06

Each 64³ TV run takes ~30–60 s on a shared 2-core machine (1 thread is
faster than 2 there: ``--threads 1``). ``--method dipm-tv`` sweeps the deep
prior's TV weight instead: each run uses DIPm-TV's defaults (held-out
stopping, its iteration cap) unless ``--iterations`` is given, and its own
default weight is the reference; at 32³ a run takes 1–3 minutes on one thread.
"""

from __future__ import annotations

import argparse
import time

import torch

from edxtomo.metrics import compare
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import dip, reconstruct, run_to_end, tv

WEIGHTS = (0.015, 0.03, 0.05, 0.08, 0.13, 0.2, 0.33, 0.55)
TILTS = ((-40, 40, 5), (-60, 60, 10))
DOSES = (2.0, 20.0)


def psnr_of(series, truth, method: str, **params) -> float:
    snap = run_to_end(reconstruct(series, method, snapshot_every=10_000, **params))
    return compare(snap.volumes, truth)["mean"]["psnr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--phantoms", nargs="+", default=["core_shell", "memory_cell"])
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--method", default="tv", choices=["tv", "dipm-tv"],
                        help="the method whose TV weight is swept")
    parser.add_argument("--iterations", type=int, default=0,
                        help="iterations per run (0: 400 for TV, the method's own default and stopping for DIPm-TV)")
    parser.add_argument("--choose", action="store_true",
                        help="also run TV with choose_weight (the weight chosen on held-out tilts) and report it")
    parser.add_argument("--seed", type=int, default=2, help="phantom and noise seed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--doses", type=float, nargs="+", default=list(DOSES), help="counts per pixel")
    parser.add_argument("--tilts", type=int, nargs="+", default=[t for s in TILTS for t in s],
                        help="tilt schemes as start stop step triples (degrees)")
    args = parser.parse_args()
    if len(args.tilts) % 3:
        parser.error("--tilts takes start stop step triples, e.g. --tilts -40 40 5 -60 60 10")
    tilt_schemes = [tuple(args.tilts[i:i + 3]) for i in range(0, len(args.tilts), 3)]
    if args.threads:
        torch.set_num_threads(args.threads)
    default_weight = dip.DEFAULT_TV_WEIGHT if args.method == "dipm-tv" else tv.DEFAULT_TV_WEIGHT
    iterations = args.iterations or (400 if args.method == "tv" else 0)
    run_params = {"iterations": iterations} if iterations else {}
    weights = sorted(set(args.weights))
    cases = [(ph, n, dose, tilts) for ph in args.phantoms for n in args.sizes
             for dose in args.doses for tilts in tilt_schemes]
    print(f"{args.method}: default tv_weight {default_weight}; weights swept {tuple(weights)}; "
          f"{iterations or 'default'} iterations; seed {args.seed}")
    print(f"{'phantom':12s} {'n':>3s} {'dose':>5s} {'tilts':>12s} {'SIRT':>6s} {'best w':>7s} "
          f"{'best':>6s} {'default':>7s} {'gap':>5s} {'s':>5s}")
    gaps, chosen_gaps = [], []
    for ph_name, n, dose, tilts in cases:
        t0 = time.perf_counter()
        ph = make_phantom(ph_name, n, seed=args.seed)
        series = acquire(ph, tilt_angles(*tilts), dose=dose, seed=args.seed)
        sirt = psnr_of(series, ph.volumes, "sirt", iterations=100)
        scores = {w: psnr_of(series, ph.volumes, args.method, tv_weight=w, **run_params)
                  for w in sorted({*weights, default_weight})}
        best_w = max(scores, key=scores.get)
        gap = scores[best_w] - scores[default_weight]
        gaps.append(gap)
        chosen = ""
        if args.choose:
            snap = run_to_end(reconstruct(series, args.method, tv_weight=default_weight, choose_weight=True,
                                          snapshot_every=10_000, **run_params))
            p = compare(snap.volumes, ph.volumes)["mean"]["psnr"]
            picked = snap.info["weight_choice"]["weights"]
            chosen_gaps.append(scores[best_w] - p)
            chosen = (f"\n    chosen on held-out tilts: {p:.2f} dB ({scores[best_w] - p:.2f} below the best), weights "
                      + " ".join(f"{e} {w:.3g}" for e, w in picked.items()))
        edge = " (edge of the sweep)" if best_w in (min(scores), max(scores)) else ""
        print(f"{ph_name:12s} {n:3d} {dose:5g} {str(tilts):>12s} {sirt:6.2f} {best_w:7g} "
              f"{scores[best_w]:6.2f} {scores[default_weight]:7.2f} {gap:5.2f} "
              f"{time.perf_counter() - t0:5.0f}{edge}", flush=True)
        print("    " + "  ".join(f"{w:g}: {p:.2f}" for w, p in scores.items()) + chosen, flush=True)
    print(f"default weight loses {sum(gaps) / len(gaps):.2f} dB on average, "
          f"{max(gaps):.2f} dB at most, against the best swept weight")
    if chosen_gaps:
        print(f"weight chosen on held-out tilts loses {sum(chosen_gaps) / len(chosen_gaps):.2f} dB on average, "
              f"{max(chosen_gaps):.2f} dB at most")


if __name__ == "__main__":
    main()
