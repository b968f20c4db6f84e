"""Running tasks on Dask distributed: a local cluster sized to the machine, or a given scheduler.

Each task runs alone in a one-thread worker process and gives torch that
worker's share of the cores, so workers never oversubscribe the machine.
A worker that dies mid-task makes the scheduler run the task again on
another worker (at most ``allowed-failures`` times); that is safe because a
task writes into a private folder and renames it into place only at the end.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import Task
from .summary import held_counts, write_summary
from .tasks import TASK_FILE, finished_spec, remove_partials, run_task

NOT_FINISHED = "not finished"
#: Times the scheduler re-runs a task whose worker died before reporting it failed.
WORKER_DEATHS_ALLOWED = 2


def machine_cores() -> int:
    """Cores this process may use (CPU affinity, e.g. a SLURM allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_workers(n_tasks: int, cores: int | None = None) -> int:
    """Worker processes for a local cluster: one per GPU, else one per two cores.

    Two cores per worker rather than one: a reconstruction's sparse products
    and convolutions use a second thread well, and each worker holds its own
    copy of torch (~300 MB), so one worker per core costs memory for little.
    """
    import torch

    if torch.cuda.is_available():
        return max(1, min(n_tasks, torch.cuda.device_count()))
    cores = cores or machine_cores()
    return max(1, min(n_tasks, cores // 2))


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None,
                n_tasks: int = 1) -> Iterator[tuple[Any, int | None]]:
    """Yield ``(client, torch threads per task or None)``; close what was opened.

    Without ``scheduler``, start a :class:`distributed.LocalCluster` of
    ``workers`` one-thread processes (default :func:`default_workers`);
    torch then gets ``cores // workers`` threads per task. With ``scheduler``,
    connect to it; torch threads are set per host from the workers there.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="30s")
        try:
            yield client, None
        finally:
            client.close()
        return
    n = workers or default_workers(n_tasks)
    threads = max(1, machine_cores() // n)
    dashboard = ":0" if has_bokeh() else None
    with dask.config.set({"distributed.scheduler.allowed-failures": WORKER_DEATHS_ALLOWED,
                          # Tasks are long and CPU-bound: never steal a task once queued.
                          "distributed.scheduler.work-stealing": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=dashboard, silence_logs=40)
        client = Client(cluster)
        try:
            yield client, threads
        finally:
            client.close()
            cluster.close()


def has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def threads_per_host(client: Any) -> dict[str, int]:
    """Cores for one task on each host of a remote cluster: the host's cores over its workers."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + int(info.get("nthreads", 1))
    cores = client.run(machine_cores)
    out: dict[str, int] = {}
    for addr, n in cores.items():
        host = workers[addr]["host"]
        out[host] = max(1, n // max(1, per_host[host]))
    return out


def _remote_task(task: Task, out_root: str, threads_by_host: dict[str, int] | None) -> dict[str, Any]:
    """Run a task on a remote worker with its host's share of the cores."""
    from distributed import get_worker

    threads = (threads_by_host or {}).get(get_worker().address.split("://")[-1].rsplit(":", 1)[0])
    return run_task(task, out_root, threads)


@dataclass
class BatchResult:
    """Rows of every task (in manifest order) and whether the batch was interrupted."""

    rows: list[dict[str, Any]]
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        return [r["task"] for r in self.rows if r["status"] == "failed"]

    @property
    def not_finished(self) -> list[str]:
        return [r["task"] for r in self.rows if r["status"] == NOT_FINISHED]


def split_resumable(tasks: Sequence[Task], out_root: Path) -> tuple[list[Task], list[dict[str, Any]]]:
    """Tasks still to run, and rows for those whose folder holds the same finished task."""
    todo, done = [], []
    for t in tasks:
        spec = finished_spec(out_root / t.name)
        if spec is not None and {k: spec.get(k) for k in t.spec()} == t.spec():
            done.append(_skipped_row(t, out_root))
        else:
            todo.append(t)
    return todo, done


def _skipped_row(task: Task, out_root: Path) -> dict[str, Any]:
    import json

    from ..io import SIDECAR_NAME

    side = json.loads((out_root / task.name / SIDECAR_NAME).read_text(encoding="utf-8"))
    losses = side.get("final_losses", {})
    info = side.get("info", {})
    return {"task": task.name, "status": "skipped (finished before)", "method": task.method,
            "output": str(out_root / task.name), "wall_s": side.get("elapsed_s"),
            "iterations": side.get("iterations_done"), "device": info.get("device", ""),
            "losses": losses, "heldout": losses.get("heldout"),
            "heldout_angles": info.get("heldout_angles"), "loss": info.get("loss"),
            "heldout_counts": held_counts(info)}


def run_batch(tasks: Sequence[Task], out_root: str | Path, client: Any,
              torch_threads: int | None = None, resume: bool = False,
              on_done: Callable[[dict[str, Any]], None] | None = None,
              on_start: Callable[[int, int], None] | None = None,
              stop: threading.Event | None = None) -> BatchResult:
    """Run ``tasks`` on ``client``'s cluster; write ``summary.csv``/``summary.json`` as they finish.

    Parameters
    ----------
    torch_threads
        Threads per task (local cluster); None asks each remote host.
    resume
        Skip tasks whose folder holds a finished result of the same spec.
    on_done
        Called with each task's row as it finishes (or fails).
    on_start
        Called once with ``(tasks to run, tasks skipped)``.
    stop
        Set from another thread (e.g. a Cancel button) to stop as Ctrl-C does.

    A ``KeyboardInterrupt`` (or ``stop`` being set) cancels what has not
    finished, writes the summary (those tasks ``"not finished"``) and returns
    with ``interrupted=True``.
    """
    from distributed import as_completed

    # Absolute: workers may run elsewhere (a shared file system at the same path).
    out = Path(out_root).resolve()
    out.mkdir(parents=True, exist_ok=True)
    todo, skipped = split_resumable(tasks, out) if resume else (list(tasks), [])
    rows: dict[str, dict[str, Any]] = {r["task"]: r for r in skipped}
    if on_start:
        on_start(len(todo), len(skipped))
    by_host = threads_per_host(client) if torch_threads is None and todo else None
    futures = {}
    for t in todo:
        # A task's own name as its key: the dashboard shows which series runs where.
        if torch_threads is not None:
            fut = client.submit(run_task, t, str(out), torch_threads, key=f"edxtomo-{t.name}",
                                pure=False)
        else:
            fut = client.submit(_remote_task, t, str(out), by_host, key=f"edxtomo-{t.name}",
                                pure=False)
        futures[fut] = t
    interrupted = False
    try:
        for fut in _completed(as_completed(futures), stop):
            task = futures[fut]
            row = _row_of(fut, task, out)
            rows[task.name] = row
            if on_done:
                on_done(row)
            write_summary(out, _ordered(tasks, rows))
    except (KeyboardInterrupt, _Stopped):
        interrupted = True
        client.cancel(list(futures))
    for t in tasks:
        rows.setdefault(t.name, {"task": t.name, "status": NOT_FINISHED, "method": t.method,
                                 "output": ""})
    remove_partials(out, [t.name for t in todo])
    ordered = _ordered(tasks, rows)
    write_summary(out, ordered)
    return BatchResult(ordered, interrupted)


class _Stopped(Exception):
    """``stop`` was set: leave the loop over the futures."""


def _completed(futures: Iterable[Any], stop: threading.Event | None) -> Iterator[Any]:
    """The futures as they finish; with ``stop``, checked every 0.2 s while waiting."""
    if stop is None:
        yield from futures
        return
    ac = futures
    while not ac.is_empty():
        if stop.is_set():
            raise _Stopped
        batch = ac.next_batch(block=False)
        if not batch:
            stop.wait(0.2)
        yield from batch


def _row_of(fut: Any, task: Task, out: Path) -> dict[str, Any]:
    """The task's row, or a failed row if the task never returned (its worker kept dying)."""
    try:
        return fut.result()
    except Exception as exc:
        # KilledWorker: the worker running it died WORKER_DEATHS_ALLOWED + 1 times.
        return {"task": task.name, "status": "failed", "method": task.method, "output": "",
                "error": f"{type(exc).__name__}: {exc}"}


def _ordered(tasks: Sequence[Task], rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    by_task = {t.name: t for t in tasks}
    out = []
    for t in tasks:
        if t.name in rows:
            out.append({**rows[t.name], "sweep": by_task[t.name].sweep,
                        "grid_point": by_task[t.name].grid_point})
    return out


__all__ = ["TASK_FILE", "BatchResult", "default_workers", "machine_cores", "open_client",
           "run_batch", "split_resumable", "threads_per_host"]
