"""``edxtomo batch MANIFEST --out DIR [--scheduler ADDRESS] [--workers N] [--resume]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_FAILED_TASKS = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130


def add_batch_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to the ``edxtomo`` parser's subparsers."""
    p = sub.add_parser("batch", help="run many reconstructions (a manifest, grids) on Dask distributed")
    p.add_argument("manifest", type=Path, help="TOML or JSON manifest of tasks (see docs/batch.md)")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder: one <task>/ folder per task, summary.csv, summary.json")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local cluster (default: one per GPU, else cores/2)")
    p.add_argument("--resume", action="store_true",
                   help="skip tasks whose folder holds a finished result with the same parameters")
    return p


def _line(row: dict[str, Any]) -> str:
    if row["status"] == "failed":
        return f"FAILED {row['task']}: {row.get('error', 'unknown error')}"
    held = row.get("heldout")
    extra = f", held-out {held:.4g}" if isinstance(held, (int, float)) else ""
    return (f"done   {row['task']}: {row['status']}, {row.get('iterations', '?')} it, "
            f"{row.get('wall_s', 0):.1f} s on {row.get('device') or '?'}{extra}")


def cmd_batch(args: argparse.Namespace) -> int:
    """Run a manifest; exit 0 if every task finished, 1 if some failed, 130 on Ctrl-C."""
    from tqdm import tqdm

    from .engine import open_client, run_batch
    from .manifest import ManifestError, load_manifest
    from .summary import has_result

    try:
        tasks = load_manifest(args.manifest)
    except ManifestError as exc:
        print(f"edxtomo: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.workers is not None and args.workers < 1:
        print("edxtomo: error: --workers must be at least 1", file=sys.stderr)
        return EXIT_INPUT
    if args.workers and args.scheduler:
        print("edxtomo: error: --workers sizes the local cluster; with --scheduler start the "
              "workers yourself (see docs/batch.md)", file=sys.stderr)
        return EXIT_INPUT
    print(f"{len(tasks)} task(s) from {args.manifest} → {args.out}", file=sys.stderr)
    bar: list[Any] = []

    def start(n_todo: int, n_skipped: int) -> None:
        if n_skipped:
            print(f"resume: {n_skipped} task(s) already finished, skipped", file=sys.stderr)
        bar.append(tqdm(total=n_todo, disable=n_todo == 0, unit="task", file=sys.stderr, desc="batch",
                        mininterval=0.5 if sys.stderr.isatty() else 10.0))

    def done(row: dict[str, Any]) -> None:
        bar[0].write(_line(row), file=sys.stderr)
        bar[0].update(1)

    with open_client(args.scheduler, args.workers, len(tasks)) as (client, threads):
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        where = args.scheduler or "a local cluster"
        print(f"Dask: {workers} worker(s) on {where}"
              + (f", {threads} torch thread(s) per task" if threads else ""), file=sys.stderr)
        print(f"dashboard: {client.dashboard_link}" if _dashboard_up(client) else
              "dashboard: not available (pip install bokeh to watch the workers)", file=sys.stderr)
        result = run_batch(tasks, args.out, client, torch_threads=threads, resume=args.resume,
                           on_done=done, on_start=start)
    if bar:
        bar[0].close()
    n_ok = sum(has_result(r) for r in result.rows)
    print(f"{n_ok}/{len(result.rows)} task(s) finished; summary in {args.out / 'summary.csv'}")
    best = [r["task"] for r in result.rows if r.get("best_in_sweep")]
    if best:
        print(f"lowest held-out error per sweep: {', '.join(best)}")
    if result.failed:
        print(f"failed: {', '.join(result.failed)} (messages in summary.csv)", file=sys.stderr)
    if result.interrupted:
        print(f"interrupted: not finished: {', '.join(result.not_finished) or 'none'}; "
              "finished folders are complete (run again with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED_TASKS if result.failed else 0


def _dashboard_up(client: Any) -> bool:
    """The scheduler serves the dashboard: its HTTP service is up and, here, bokeh imports."""
    from .engine import has_bokeh

    try:
        return "dashboard" in client.scheduler_info().get("services", {}) and has_bokeh()
    except Exception:  # an old or unreachable scheduler: just say it is not available
        return False
