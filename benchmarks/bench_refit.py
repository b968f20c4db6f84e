"""DIPm-TV with and without ``refit``: what the held-out tilts' data are worth to the result.

The held-out run holds out every 4th tilt to choose each element's iteration;
``refit=True`` then fits all tilts again from the same seeded start to those
iterations. Both runs use the same seed, so the held-out phase is identical
and the difference is the refit alone. Quality is PSNR against the phantom
(deterministic for a seed on a CPU); cost is the refit's extra iterations.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_refit.py --size 32 --phantom core_shell
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_refit.py --size 32 --phantom memory_cell
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--phantom", default="core_shell", choices=["core_shell", "memory_cell"])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--dose", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--params", default="{}", help="other DIPm-TV parameters as JSON")
    args = parser.parse_args()

    import json

    import torch

    from edxtomo.metrics import compare
    from edxtomo.phantom import acquire, make_phantom, tilt_angles
    from edxtomo.recon import reconstruct, run_to_end

    if args.threads:
        torch.set_num_threads(args.threads)
    truth = make_phantom(args.phantom, args.size, seed=1)
    series = acquire(truth, tilt_angles(-40, 40, 5), dose=args.dose, seed=3)
    params = {"iterations": args.iterations, "snapshot_every": 100, **json.loads(args.params)}
    print(f"{args.phantom} {args.size}^3, +-40 deg step 5, dose {args.dose}; DIPm-TV {params}")
    for refit in (False, True):
        last = run_to_end(reconstruct(series, "dipm-tv", refit=refit, **params))
        psnr = {e: round(m["psnr"], 2) for e, m in compare(last.volumes, truth.volumes).items()}
        print(f"refit={refit!s:5}  iterations run {last.iteration:5d}  chosen {last.info['best_iterations']}  "
              f"stopped {last.stopped or 'iteration cap'!r}  PSNR {psnr}", flush=True)


if __name__ == "__main__":
    main()
