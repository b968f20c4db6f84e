"""DIPm-TV speed: quality per iteration and cost per iteration of settings, side by side.

Quality is measured in iterations (PSNR against the phantom along a run is
deterministic for a seed); cost per iteration in short interleaved bursts of
the same runs in the same process (A, B, A, B ...), so that a machine shared
with other jobs slows every variant alike and the ratio stays meaningful.
Time to a quality level is then iterations × the cost per iteration of each
stage (coarse, fine) measured here. Absolute seconds depend on the machine
and its load; the ratios and iteration counts are the figures to compare.

    python benchmarks/bench_dip_speed.py --size 64 --phantom memory_cell --iterations 600 \\
        --variants before after --json dip_speed.json
    python benchmarks/bench_dip_speed.py --size 64 --iterations 40 --burst 5 --variants before after  # cost only
    python benchmarks/bench_dip_speed.py --size 64 --phantom memory_cell --variants after \
        --stop --iterations 3000 --burst 10 --json stop.json   # default stop, then running on

``--stop`` runs each variant (one after the other, not interleaved) with the
default stopping rule (``--patience`` on the held-out error, ``--cap``
iterations) to its own end, records the returned volume's PSNR and every
held-out evaluation per element, then resumes the same run with patience
off up to ``--iterations`` ("running on"). From the recorded curve it also
replays the rule for other patience values (the returned volume is each
element's EMA iterate with the lowest held-out error, whose per-element PSNR
the curve holds when ``--burst`` equals the evaluation interval).

Variants (``--variants``): ``before`` is the previous default (full-size
U-Net throughout, output average with a fixed decay, no weight decay); ``after`` the current
defaults; ``after-fine`` the current network at its full-resolution stage
from the second iteration (for its cost); ``full`` the current defaults
without the coarse stage; ``lean`` the current defaults with half the widths; ``fine16``/``fine8`` the
coarse-to-fine network with that many channels at full resolution, and
``fine16-fine``/``fine8-fine`` the same at the full-resolution stage from the
second iteration (their cost). Run with
``OMP_WAIT_POLICY=PASSIVE`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

VARIANTS: dict[str, dict] = {
    "before": {"params": {"coarse_iterations": 0, "weight_decay": 0.0}, "ema_ramp": 1},
    "after": {"params": {}},
    "full": {"params": {"coarse_iterations": 0}},
    "lean": {"params": {"widths": (8, 16, 32, 64), "skip_widths": (2, 4, 8, 16)}},
    # The coarse-to-fine network at its full-resolution stage from the second iteration: its cost.
    "after-fine": {"params": {"coarse_iterations": 1}},
    # Channels of the full-resolution refinement level, named so they stay what they say.
    "fine16": {"params": {"fine_width": 16}},
    "fine8": {"params": {"fine_width": 8}},
    "fine16-fine": {"params": {"fine_width": 16, "coarse_iterations": 1}},
    "fine8-fine": {"params": {"fine_width": 8, "coarse_iterations": 1}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--phantom", default="memory_cell", choices=["memory_cell", "core_shell"])
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--burst", type=int, default=25, help="iterations per burst (and per snapshot)")
    parser.add_argument("--variants", nargs="+", default=["before", "after"], choices=list(VARIANTS))
    parser.add_argument("--caps", default="{}", help='per-variant iteration caps as JSON, e.g. \'{"before": 200}\'')
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--levels", type=float, nargs="*", default=[],
                        help="PSNR levels (dB) to report the time to reach")
    parser.add_argument("--json", help="write curves and costs to this file")
    parser.add_argument("--stop", action="store_true",
                        help="default stopping rule to its own end, then run on with patience off")
    parser.add_argument("--patience", type=int, default=300, help="patience of the default rule (--stop)")
    parser.add_argument("--cap", type=int, default=None,
                        help="iteration cap of the default rule (--stop; default: DIPm-TV's iterations)")
    args = parser.parse_args()

    import torch

    from edxtomo.metrics import compare
    from edxtomo.phantom import acquire, make_phantom, tilt_angles
    from edxtomo.recon import dip

    if args.threads:
        torch.set_num_threads(args.threads)
    caps = json.loads(args.caps)
    if args.cap is None:
        args.cap = dip.DipSettings().iterations
    ph = make_phantom(args.phantom, args.size, seed=2)
    series = acquire(ph, tilt_angles(-40, 40, 5), dose=5.0, seed=2)
    print(f"{args.phantom} {args.size}³ × {len(ph.elements)} elements, {torch.get_num_threads()} threads",
          flush=True)
    if args.stop:
        out = {name: stop_run(name, args, ph, series) for name in args.variants}
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (all variants)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        return
    runs = {}
    for name in args.variants:
        v = VARIANTS[name]
        params = {"iterations": args.iterations, "snapshot_every": args.burst, "patience": 0,
                  "device": "cpu", **v["params"]}
        settings = dip.DipSettings(**params)
        runs[name] = {"gen": dip.dipm_tv(series, **params), "ramp": v.get("ema_ramp", dip.EMA_RAMP),
                      "coarse": settings.coarse_iterations, "cost": [], "curve": [], "done": False}
    default_ramp = dip.EMA_RAMP
    rounds = 0
    while not all(r["done"] for r in runs.values()):
        rounds += 1
        for name, r in runs.items():
            if r["done"]:
                continue
            dip.EMA_RAMP = r["ramp"]  # the previous fixed-decay average is EMA_RAMP = 1
            t0 = time.perf_counter()
            snap = next(r["gen"], None)
            dt = time.perf_counter() - t0
            dip.EMA_RAMP = default_ramp
            if snap is None:
                r["done"] = True
                continue
            it0 = r["curve"][-1]["it"] if r["curve"] else 0
            if rounds > 1:  # the first burst includes set-up
                r["cost"].append({"it": snap.iteration, "s_per_it": dt / (snap.iteration - it0),
                                  "coarse": snap.iteration <= r["coarse"]})
            m = compare(snap.volumes, ph.volumes)
            row = {"it": snap.iteration, "psnr": round(m["mean"]["psnr"], 3),
                   "per": {e: round(x["psnr"], 2) for e, x in m.items() if e != "mean"},
                   "heldout": snap.losses.get("heldout")}
            r["curve"].append(row)
            print(f"{name:8s} it {snap.iteration:5d}  {row['psnr']:.2f} dB  {dt / (snap.iteration - it0):.3f} s/it",
                  flush=True)
            if snap.final or snap.iteration >= caps.get(name, args.iterations):
                r["done"] = True
                r["gen"].close()
    report(runs, args.levels, args.variants[0])
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (all variants)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({n: {k: r[k] for k in ("coarse", "cost", "curve")} for n, r in runs.items()}, f, indent=1)


def stop_run(name: str, args: argparse.Namespace, ph, series) -> dict:
    """One variant with the default stopping rule to its own end, then resumed with patience off."""
    from edxtomo.metrics import compare
    from edxtomo.recon import dip

    v = VARIANTS[name]
    made: list = []
    best_cls = dip.BestIterate

    def recording_best(**kw):  # keep the run's BestIterate to read its held-out history
        b = best_cls(**kw)
        made.append(b)
        return b

    params = {"iterations": args.cap, "snapshot_every": args.burst, "patience": args.patience,
              "device": "cpu", **v["params"]}
    default_ramp, dip.EMA_RAMP, dip.BestIterate = dip.EMA_RAMP, v.get("ema_ramp", dip.EMA_RAMP), recording_best
    curve: list[dict] = []
    result: dict = {"variant": name, "patience": args.patience, "cap": args.cap}

    def run(gen, label: str) -> tuple[object, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        last = None
        for snap in gen:
            if snap.final:
                last = snap
                break
            m = compare(snap.volumes, ph.volumes)
            curve.append({"it": snap.iteration, "psnr": round(m["mean"]["psnr"], 4),
                          "per": {e: round(x["psnr"], 3) for e, x in m.items() if e != "mean"}})
            if snap.iteration % (10 * args.burst) == 0:
                print(f"{name} {label} it {snap.iteration:5d}  {curve[-1]['psnr']:.2f} dB  "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
        return last, time.perf_counter() - t0, time.process_time() - c0

    try:
        final, wall, cpu = run(dip.dipm_tv(series, **params), "default")
        m = compare(final.volumes, ph.volumes)
        result["default"] = {
            "stopped": final.info.get("stopped"), "iterations": final.info["iterations_done"],
            "best_iterations": final.info.get("best_iterations"), "psnr": m["mean"]["psnr"],
            "per": {e: x["psnr"] for e, x in m.items() if e != "mean"}, "wall_s": wall, "cpu_s": cpu}
        print(f"{name} default: {final.info.get('stopped') or 'cap'} at {final.info['iterations_done']}, "
              f"returned {m['mean']['psnr']:.2f} dB (held-out best {final.info.get('best_iterations')}), "
              f"{wall:.0f} s wall, {cpu:.0f} s CPU (this run, with per-{args.burst} snapshots and metrics)",
              flush=True)
        if args.iterations > final.info["iterations_done"]:
            on = {**params, "iterations": args.iterations, "patience": 0}
            last, wall2, _ = run(dip.dipm_tv(series, resume=final.state(), **on), "running on")
            m2 = compare(last.volumes, ph.volumes)
            result["running_on"] = {"iterations": last.info["iterations_done"], "psnr": m2["mean"]["psnr"],
                                    "best_iterations": last.info.get("best_iterations"), "wall_s": wall2}
    finally:
        dip.EMA_RAMP, dip.BestIterate = default_ramp, best_cls
    history = [h for b in made for h in b.history]
    elements = list(ph.volumes)
    result["heldout"] = [{"it": it, "errors": list(err)} for it, err in history]
    result["curve"] = curve
    top = max(curve, key=lambda c: c["psnr"])
    print(f"{name}: best EMA iterate {top['psnr']:.2f} dB at {top['it']}, last {curve[-1]['psnr']:.2f} dB at "
          f"{curve[-1]['it']}" + (f"; running on to {result['running_on']['iterations']} returns "
                                  f"{result['running_on']['psnr']:.2f} dB" if "running_on" in result else ""))
    per_at = {c["it"]: c["per"] for c in curve}

    def per_near(i: int) -> dict | None:  # the stop iteration itself has no snapshot: the one before it
        return per_at.get(i) or per_at.get(i - (i % args.burst or args.burst))

    for pat in sorted({100, 200, args.patience, 500, 1000}):
        stop, best_its = replay(history, pat, args.cap)
        if all(per_near(i) for i in best_its):
            psnr = statistics.mean(per_near(i)[e] for i, e in zip(best_its, elements, strict=True))
            print(f"  replay patience {pat:5d}, cap {args.cap}: stops at {stop}, returns {psnr:.2f} dB "
                  f"(held-out best {best_its})")
            result.setdefault("replay", []).append({"patience": pat, "stop": stop, "psnr": psnr,
                                                    "best_iterations": best_its})
    return result


def replay(history: list[tuple[int, tuple[float, ...]]], patience: int, cap: int,
           min_delta: float = 1e-4) -> tuple[int, list[int]]:
    """Where the held-out rule (stopping.BestIterate) stops on a recorded history, and each element's best."""
    best: list[float] | None = None
    best_it: list[int] = []
    stop = 0
    for it, errs in history:
        if it > cap:
            break
        stop = it
        if best is None:
            best, best_it = list(errs), [it] * len(errs)
        else:
            for k, e in enumerate(errs):
                if e < best[k] * (1 - min_delta):
                    best[k], best_it[k] = e, it
        if patience and it - max(best_it) >= patience:
            break
    return stop, best_it


def stage_costs(r: dict) -> tuple[float | None, float | None]:
    """Median seconds per iteration of the coarse and the fine stage."""
    coarse = [c["s_per_it"] for c in r["cost"] if c["coarse"]]
    fine = [c["s_per_it"] for c in r["cost"] if not c["coarse"]]
    med = statistics.median
    return (med(coarse) if coarse else None), (med(fine) if fine else None)


def seconds_at(r: dict, it: int) -> float | None:
    coarse, fine = stage_costs(r)
    n_coarse = min(it, r["coarse"])
    if (n_coarse and coarse is None) or (it > n_coarse and fine is None):
        return None
    return n_coarse * (coarse or 0) + (it - n_coarse) * (fine or 0)


def first_at(curve: list[dict], level: float) -> int | None:
    return next((c["it"] for c in curve if c["psnr"] >= level), None)


def report(runs: dict, levels: list[float], ref: str) -> None:
    print("\ncost per iteration (median of bursts after the first; ratio to the first variant, "
          "same rounds):")
    base = runs[ref]
    for name, r in runs.items():
        coarse, fine = stage_costs(r)
        ratios = [c["s_per_it"] / b["s_per_it"] for c, b in zip(r["cost"], base["cost"], strict=False)
                  if not c["coarse"] and not b["coarse"]]
        spread = (f"fine/{ref} {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"
                  if ratios and name != ref else "")
        cratio = [c["s_per_it"] / b["s_per_it"] for c, b in zip(r["cost"], base["cost"], strict=False)
                  if c["coarse"] and not b["coarse"]]
        cspread = (f"coarse/{ref} {statistics.median(cratio):.2f} [{min(cratio):.2f}-{max(cratio):.2f}]"
                   if cratio else "")
        print(f"  {name:8s} coarse {coarse or float('nan'):.3f} s/it  fine {fine or float('nan'):.3f} s/it  "
              f"{spread}  {cspread}")
    if base["curve"]:
        ref_best = max(c["psnr"] for c in base["curve"])
        levels = [*levels, ref_best]
    for level in levels:
        print(f"\nto {level:.2f} dB:")
        for name, r in runs.items():
            it = first_at(r["curve"], level)
            s = seconds_at(r, it) if it else None
            print(f"  {name:8s} " + (f"iteration {it}, {s:.0f} s at this run's cost" if s is not None
                                      else (f"iteration {it}" if it else "not reached")))
    for name, r in runs.items():
        best = max(r["curve"], key=lambda c: c["psnr"])
        last = r["curve"][-1]
        print(f"{name}: best {best['psnr']:.2f} dB at {best['it']}, last {last['psnr']:.2f} dB at {last['it']} "
              f"{last['per']}")


if __name__ == "__main__":
    main()
