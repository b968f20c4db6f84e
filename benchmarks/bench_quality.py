"""Reconstruction quality, time and memory: SIRT, TV, DIP-TV and DIPm-TV on phantoms.

Each method runs in its own process so that its peak memory (``ru_maxrss``,
which sees torch's allocations) and CPU time are its own. TV is swept over a
few weights and run to convergence; the best weight is its score. PSNR/SSIM
are those of :mod:`edxtomo.metrics` against the ground truth (after a
least-squares scale fit); the per-snapshot curve of DIPm-TV gives its time to
reach TV's quality.

    python benchmarks/bench_quality.py                 # 64³ cases, writes docs/benchmarks-quality.md
    python benchmarks/bench_quality.py --size 32 --dip-iterations 300 --no-write   # quick look

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a machine shared with other jobs:
spinning OpenMP threads there slowed a 2-thread run more than tenfold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "dense": {"phantom": "core_shell", "tilts": (-40, 40, 5), "dose": 5.0,
              "label": "core_shell, ±40° step 5° (17 tilts), dose 5 counts/px"},
    "sparse": {"phantom": "core_shell", "tilts": (-60, 60, 10), "dose": 2.0,
               "label": "core_shell, ±60° step 10° (13 tilts), low dose 2 counts/px"},
    "memory": {"phantom": "memory_cell", "tilts": (-40, 40, 5), "dose": 5.0,
               "label": "memory_cell, ±40° step 5° (17 tilts), dose 5 counts/px"},
}
#: DIPm-TV before the speed work (full-size U-Net throughout, fixed output-average decay, no
#: weight decay).
BEFORE = {"coarse_iterations": 0, "weight_decay": 0.0}
TV_WEIGHTS = (0.02, 0.05, 0.1, 0.15, 0.3)


def worker(spec: dict) -> dict:
    """Run one method in this process; return metrics, curve and resource use."""
    import torch

    from edxtomo.metrics import compare
    from edxtomo.phantom import acquire, make_phantom, tilt_angles
    from edxtomo.recon import reconstruct

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    if spec.get("ema_ramp") is not None:
        from edxtomo.recon import dip

        dip.EMA_RAMP = spec["ema_ramp"]  # 1: the previous fixed-decay output average
    case = CASES[spec["case"]]
    ph = make_phantom(case["phantom"], spec["size"], seed=2)
    series = acquire(ph, tilt_angles(*case["tilts"]), dose=case["dose"], seed=2)
    t0, c0 = time.perf_counter(), time.process_time()
    curve, last = [], None
    for snap in reconstruct(series, spec["method"], **spec["params"]):
        m = compare(snap.volumes, ph.volumes)
        per = {e: round(v["psnr"], 3) for e, v in m.items() if e != "mean"}
        curve.append((snap.iteration, round(time.perf_counter() - t0, 2), round(m["mean"]["psnr"], 3), per))
        last = snap
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    metrics = compare(last.volumes, ph.volumes)
    if spec.get("save"):
        np.savez_compressed(spec["save"], **last.volumes)
    return {"metrics": metrics, "curve": curve, "wall_s": wall, "cpu_s": cpu,
            "iterations": last.iteration, "stopped": last.stopped,
            "best_iteration": last.info.get("best_iteration"),
            "best_iterations": last.info.get("best_iterations"),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


THREADS = 0


def run(case: str, size: int, method: str, params: dict, save: str | None = None,
        ema_ramp: int | None = None) -> dict:
    spec = {"case": case, "size": size, "method": method, "params": params, "save": save,
            "threads": THREADS, "ema_ramp": ema_ramp}
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], check=True,
                         capture_output=True, text=True, env={**os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_row(name: str, r: dict, elements: list[str]) -> str:
    m = r["metrics"]
    per = " | ".join(f"{m[e]['psnr']:.2f}" for e in elements)
    it = r["iterations"]
    return (f"| {name} | {per} | **{m['mean']['psnr']:.2f}** | {m['mean']['ssim']:.3f} | {it} | "
            f"{r['wall_s']:.0f} | {r['cpu_s'] / it:.3f} | {r['peak_rss_gib']:.2f} |")


def time_to(curve: list, level: float) -> str:
    for it, t, p, *_ in curve:
        if p >= level:
            return f"{t:.0f} s (iteration {it})"
    return "not reached"


def bench_case(case: str, args: argparse.Namespace, lines: list[str], images: dict) -> dict:
    from edxtomo.phantom import make_phantom

    size = args.size
    elements = make_phantom(CASES[case]["phantom"], 16).elements
    results: dict[str, dict] = {}
    print(f"\n== {CASES[case]['label']}, {size}³", flush=True)
    tmp = Path(tempfile.mkdtemp(dir=args.tmp))
    images["SIRT"] = str(tmp / "sirt.npz")
    results["SIRT (100 it.)"] = run(case, size, "sirt", {"iterations": 100, "snapshot_every": 100},
                                    save=images["SIRT"])
    sweep = {w: run(case, size, "tv", {"tv_weight": w, "iterations": args.tv_iterations,
                                        "snapshot_every": args.tv_iterations}, save=str(tmp / f"tv{w}.npz"))
             for w in TV_WEIGHTS}
    best_w = max(sweep, key=lambda w: sweep[w]["metrics"]["mean"]["psnr"])
    results[f"TV (best of {', '.join(map(str, TV_WEIGHTS))}: {best_w})"] = sweep[best_w]
    images[f"TV {best_w}"] = str(tmp / f"tv{best_w}.npz")
    for name, r in results.items():
        print(f"{name:40s} {r['metrics']['mean']['psnr']:.2f} dB", flush=True)
    tv_psnr = sweep[best_w]["metrics"]["mean"]["psnr"]
    dip_common = {"iterations": args.dip_iterations, "snapshot_every": 25,
                  "patience": args.patience, **json.loads(args.dip_params)}
    variants = {"dip-tv": ("DIP-TV", "dip-tv", {}), "dipm-tv": ("DIPm-TV", "dipm-tv", {}),
                "before": ("DIPm-TV, previous defaults", "dipm-tv", BEFORE),
                "warm": ("DIPm-TV, warm start from TV", "dipm-tv", {"warm_start": "tv"}),
                "all-tilts": ("DIPm-TV, no held-out tilts", "dipm-tv", {"heldout": 0})}
    for key in args.variants:
        name, method, extra = variants[key]
        save = str(tmp / f"{key}.npz")
        results[name] = run(case, size, method, {**dip_common, **extra}, save=save,
                            ema_ramp=1 if key == "before" else None)
        images[name] = save
        r = results[name]
        print(f"{name:40s} {r['metrics']['mean']['psnr']:.2f} dB after {r['iterations']} it, "
              f"{r['wall_s']:.0f} s, best it {r['best_iteration']}; ≥TV at {time_to(r['curve'], tv_psnr)}, "
              f"≥TV+1 at {time_to(r['curve'], tv_psnr + 1)}, ≥TV+2 at {time_to(r['curve'], tv_psnr + 2)}",
              flush=True)
    lines += [f"### {CASES[case]['label']}, {size}³ × 3 elements", "",
              "| method | " + " | ".join(f"{e} PSNR" for e in elements)
              + " | mean PSNR | mean SSIM | iterations | wall s | CPU s/it | peak RSS GiB |",
              "|---|" + "---|" * (len(elements) + 6)]
    lines += [fmt_row(n, r, elements) for n, r in results.items()]
    lines += ["", "TV weight sweep (mean PSNR): " + ", ".join(
        f"{w}: {sweep[w]['metrics']['mean']['psnr']:.2f}" for w in TV_WEIGHTS), ""]
    for name in [n for n in results if n.startswith("DIP")]:
        r = results[name]
        lines.append(f"- {name}: held-out best iteration {r['best_iteration']} of {r['iterations']}"
                     f"{' (' + r['stopped'] + ')' if r['stopped'] else ''}; reaches best TV at "
                     f"{time_to(r['curve'], tv_psnr)}, best TV + 1 dB at {time_to(r['curve'], tv_psnr + 1)}, "
                     f"best TV + 2 dB at {time_to(r['curve'], tv_psnr + 2)}; "
                     f"best snapshot along the run {max(c[2] for c in r['curve']):.2f} dB"
                     + (f"; per-element best iterations {r['best_iterations']}" if r.get("best_iterations") else ""))
    lines.append("")
    return results


def memory_probe(size: int, iterations: int, before: bool = False) -> dict:
    """A few iterations at ``size``³ × 3: the previous network, or the coarse-to-fine one at its
    full-resolution stage (one coarse iteration, then fine ones: the stage that costs most)."""
    params = BEFORE if before else {"coarse_iterations": 1}
    return run("dense", size, "dipm-tv", {"iterations": iterations, "snapshot_every": iterations,
                                          "heldout": 0, **params}, ema_ramp=1 if before else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES),
                        help="none: only the speed and memory probes")
    parser.add_argument("--dip-iterations", type=int, default=2000)
    parser.add_argument("--patience", type=int, default=500)
    parser.add_argument("--tv-iterations", type=int, default=500)
    parser.add_argument("--variants", nargs="*", default=["dip-tv", "dipm-tv", "warm"],
                        choices=["dip-tv", "dipm-tv", "before", "warm", "all-tilts"],
                        help="deep-prior runs (DIP-TV costs 3× DIPm-TV per iteration)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks-quality.md"))
    parser.add_argument("--memory-size", type=int, default=128, help="0 skips the memory probe")
    parser.add_argument("--memory-iterations", type=int, default=3)
    parser.add_argument("--speed-sizes", type=int, nargs="*", default=[],
                        help="also time a few iterations (and peak memory) at these sizes × 3 elements")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--dip-params", default="{}",
                        help='extra parameters for every deep-prior run, as JSON, e.g. \'{"lr": 0.005}\'')
    parser.add_argument("--json", help="also dump every result (curves included) to this file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    global THREADS
    THREADS = args.threads
    import torch

    lines = ["# Reconstruction quality benchmark", "",
             f"Generated by `benchmarks/bench_quality.py` on {os.cpu_count()} CPU cores "
             f"(torch {torch.__version__}, {torch.get_num_threads()} threads), "
             f"{time.strftime('%Y-%m-%d')}. DIP runs: default parameters, at most "
             f"{args.dip_iterations} iterations, patience {args.patience}. PSNR/SSIM after a "
             "least-squares scale fit against the ground truth. CPU s/it is process CPU time per "
             "iteration (both cores count); peak RSS is the process's maximum resident memory.", ""]
    images: dict[str, str] = {}
    scratch = tempfile.TemporaryDirectory()  # volumes for the figure, removed at exit
    args.tmp = scratch.name
    all_results = {c: bench_case(c, args, lines, images if c == "dense" else {}) for c in args.cases}
    if args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=1))
    for size in [s for s in (args.memory_size, *args.speed_sizes) if s]:
        lines += [f"### Memory and speed at {size}³ × 3 elements", ""]
        for before in (True, False):
            r = memory_probe(size, args.memory_iterations, before)
            label = "previous network" if before else "coarse-to-fine network, full-resolution stage"
            print(f"{size}³ × 3, {label}: {r['peak_rss_gib']:.2f} GiB, "
                  f"{r['wall_s'] / r['iterations']:.2f} s/it wall", flush=True)
            lines += [f"- DIPm-TV, {label}, {r['iterations']} iterations: peak RSS "
                      f"{r['peak_rss_gib']:.2f} GiB, {r['wall_s'] / r['iterations']:.2f} s wall and "
                      f"{r['cpu_s'] / r['iterations']:.2f} s CPU per iteration (set-up included)."]
        lines.append("")
    if args.no_write:
        print("\n".join(lines))
        return
    from edxtomo.phantom import make_phantom
    from edxtomo.preview import save_orthoslices

    out = Path(args.out)
    if "dense" in all_results and images:
        rows = {"truth": make_phantom("core_shell", args.size, seed=2).volumes}
        rows.update({n: dict(np.load(p)) for n, p in images.items()})
        png = Path(args.out).parent / "images" / f"quality-orthoslices-{args.size}.png"
        save_orthoslices(png, rows, title=f"{CASES['dense']['label']}, {args.size}³")
        lines += [f"![orthoslices](images/{png.name})", ""]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
