"""Batch throughput on Dask distributed: one worker against two, and the cost of Dask per task.

``--tasks`` TV reconstructions (``--size``³, 3 elements, 9 tilts, ``--iterations``
iterations, each on its own simulated series) are run three ways, all through
:func:`edxtomo.batch.run_task` (read, reconstruct, write, rename):

1. in this process, one after another, torch with all the machine's cores;
2. a LocalCluster with one worker process (torch with all cores);
3. a LocalCluster with two worker processes (torch with half the cores each).

Cluster start-up and the first import of torch in each worker are timed
apart (a warm-up task per worker), then the batch itself. Printed: wall times,
the throughput ratio two workers / one worker, and the overhead per task of
one worker against in-process (Dask's scheduling, pickling and the worker's
process boundary). On a machine shared with other jobs, all times are
pessimistic; the header prints the load average.

    python benchmarks/bench_batch.py [--tasks 8] [--size 24] [--iterations 150]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from edxtomo.batch import Task, open_client, run_batch, run_task
from edxtomo.batch.engine import machine_cores
from edxtomo.io import write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.runner import clean_params


def make_tasks(root: Path, n: int, size: int, iterations: int) -> list[Task]:
    tasks = []
    for i in range(n):
        folder = root / "series" / f"s{i}"
        write_map_folder(acquire(make_phantom("core_shell", size, seed=i),
                                 tilt_angles(-40, 40, 10), dose=5.0, seed=i), folder)
        tasks.append(Task(name=f"t{i}", inputs=(str(folder),), method="tv",
                          params=clean_params("tv", {"iterations": iterations, "snapshot_every": iterations})))
    return tasks


def _warm(dask_worker=None) -> float:
    """Import what a task imports (torch, the TV module); the time it took."""
    t = time.perf_counter()
    import edxtomo.recon.tv  # noqa: F401
    import edxtomo.runner  # noqa: F401

    return time.perf_counter() - t


def on_cluster(tasks: list[Task], out: Path, workers: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with open_client(workers=workers, n_tasks=len(tasks)) as (client, threads):
        started = time.perf_counter() - t0
        imports = max(client.run(_warm).values())
        t1 = time.perf_counter()
        result = run_batch(tasks, out, client, torch_threads=threads)
        batch = time.perf_counter() - t1
    bad = [r["task"] for r in result.rows if r["status"] != "finished"]
    if bad:
        raise RuntimeError(f"tasks did not finish: {bad}")
    task_s = sum(r["wall_s"] for r in result.rows)
    return {"start": started, "imports": imports, "batch": batch, "threads": threads, "task_s": task_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--size", type=int, default=24)
    ap.add_argument("--iterations", type=int, default=150)
    args = ap.parse_args()
    cores = machine_cores()
    print(f"# bench_batch {datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, "
          f"{cores} cores, load average {os.getloadavg()[0]:.1f}; {args.tasks} TV tasks, "
          f"{args.size}^3 x 3 elements, 9 tilts, {args.iterations} iterations")
    root = Path(tempfile.mkdtemp(prefix="edxtomo-bench-batch-"))
    try:
        tasks = make_tasks(root, args.tasks, args.size, args.iterations)
        _warm()
        run_task(tasks[0], str(root / "warm"), cores)  # first-run costs out of the timing
        t = time.perf_counter()
        for task in tasks:
            row = run_task(task, str(root / "inproc"), cores)
            assert row["status"] == "finished", row
        inproc = time.perf_counter() - t
        one = on_cluster(tasks, root / "one", 1)
        two = on_cluster(tasks, root / "two", 2)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = args.tasks
    print(f"in process ({cores} torch threads): {inproc:7.2f} s  ({inproc / n:.3f} s/task)")
    for label, r in (("1 worker", one), ("2 workers", two)):
        print(f"{label:9s} ({r['threads']} torch thread(s) each): batch {r['batch']:7.2f} s "
              f"({r['batch'] / n:.3f} s/task); cluster start {r['start']:.2f} s, "
              f"first imports {r['imports']:.2f} s; sum of task wall times {r['task_s']:.2f} s")
    print(f"throughput 2 workers / 1 worker: {one['batch'] / two['batch']:.2f}x")
    print(f"overhead per task, 1 worker vs in process: {(one['batch'] - inproc) / n * 1000:+.0f} ms "
          f"({(one['batch'] / inproc - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
