"""A TV-weight sweep from a series in memory: what the napari Reconstruct dock sends as a batch.

The series is written as a map folder under the output folder
(``OUT/series/``) and the sweep as a manifest beside it (``OUT/sweep.json``),
which :func:`~edxtomo.batch.load_manifest` expands. The tasks are therefore
ordinary batch tasks: ``edxtomo batch OUT/sweep.json --out OUT`` runs the
same tasks into the same folders.

>>> setup = SweepSetup(series, "tv", {"iterations": 300}, tilt_range=(-40, 40))  # doctest: +SKIP
>>> tasks = write_sweep(setup, parse_weights("0.01 0.02 0.05"), "out")          # doctest: +SKIP
>>> result = run_sweep(tasks, "out")                                            # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recon.registry import method_label
from ..tiltseries import TiltSeries
from .manifest import Task, _fmt, load_manifest
from .summary import has_result, mark_best

#: The series the tasks read, under the output folder.
SERIES_FOLDER = "series"
#: The manifest of the sweep, under the output folder (``edxtomo batch`` re-runs it).
MANIFEST_NAME = "sweep.json"
#: The parameter the sweep varies.
GRID_KEY = "tv_weight"


@dataclass(frozen=True)
class SweepSetup:
    """One reconstruction setup to sweep over TV weights.

    Attributes
    ----------
    series
        The tilt series (tilts dropped by hand already removed).
    method, params
        The method and its parameters (the TV weight among them is replaced
        by each grid value).
    tilt_range
        ``(min, max)`` degrees, as ``--tilt-range`` (None: every tilt).
    time_limit
        Seconds per task, as ``--time-limit`` (None: none).
    name
        The sweep's name: tasks are ``<name>-tv_weight=<value>`` (default: the method).
    """

    series: TiltSeries
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    tilt_range: tuple[float, float] | None = None
    time_limit: float | None = None
    name: str = ""


def parse_weights(text: str) -> list[float]:
    """``"0.01 0.02, 0.05"`` → ``[0.01, 0.02, 0.05]`` (raises ValueError naming the bad entry)."""
    items = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    if not items:
        raise ValueError("TV weights: give one or more values, e.g. 0.01 0.02 0.05")
    out: list[float] = []
    for t in items:
        try:
            w = float(t)
        except ValueError:
            raise ValueError(f"TV weights: {t!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"TV weights: {t!r} must be a finite value >= 0")
        if w in out:
            raise ValueError(f"TV weights: {t!r} is given twice")
        out.append(w)
    return out


def check_sweep(setup: SweepSetup, weights: Sequence[float]) -> None:
    """Raise ValueError (with the reason) when the setup cannot be swept over these weights."""
    from ..runner import clean_params

    if not weights:
        raise ValueError("TV weights: give one or more values, e.g. 0.01 0.02 0.05")
    if setup.params.get("choose_weight"):
        raise ValueError("'choose weight' is on: every run of the sweep would choose its own weight; "
                         "turn it off to sweep fixed weights, or run once with it on instead of sweeping")
    for w in weights:
        try:
            clean_params(setup.method, {**setup.params, GRID_KEY: w})
        except ValueError as exc:
            raise ValueError(f"{method_label(setup.method)} over TV weights: {exc}") from None
    if setup.tilt_range is not None:
        setup.series.select_tilt_range(*setup.tilt_range)  # raises when fewer than 2 tilts remain


def check_out_folder(out: str | Path) -> Path:
    """The output folder, absolute; refused when it holds anything but an earlier sweep or batch."""
    path = Path(out).expanduser()
    if not str(out).strip():
        raise ValueError("choose an output folder for the sweep")
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"not a folder: {path}")
    if path.is_dir() and any(path.iterdir()) and not (
            (path / MANIFEST_NAME).is_file() or (path / "summary.json").is_file()):
        raise ValueError(f"the output folder holds other files: choose an empty folder or an "
                         f"earlier sweep's: {path}")
    return path


def sweep_name(setup: SweepSetup) -> str:
    return setup.name or setup.method


def manifest_of(setup: SweepSetup, weights: Sequence[float]) -> dict[str, Any]:
    """The manifest (JSON form) of the sweep, reading the series from ``SERIES_FOLDER``."""
    params: dict[str, Any] = {k: v for k, v in setup.params.items() if k != GRID_KEY}
    if setup.time_limit:
        params["time_limit"] = float(setup.time_limit)
    entry: dict[str, Any] = {"name": sweep_name(setup), "input": SERIES_FOLDER,
                             "method": setup.method, "params": params,
                             "grid": {GRID_KEY: [float(w) for w in weights]}}
    if setup.tilt_range is not None:
        entry["tilt_range"] = [float(setup.tilt_range[0]), float(setup.tilt_range[1])]
    return {"task": [entry]}


def write_sweep(setup: SweepSetup, weights: Sequence[float], out: str | Path) -> list[Task]:
    """Write ``OUT/series/`` and ``OUT/sweep.json``; return the manifest's tasks (one per weight)."""
    from ..io import write_map_folder
    from ..io.atomic import write_json

    check_sweep(setup, weights)
    root = check_out_folder(out)
    root.mkdir(parents=True, exist_ok=True)
    write_map_folder(setup.series, root / SERIES_FOLDER)
    write_json(root / MANIFEST_NAME, manifest_of(setup, weights))
    return load_manifest(root / MANIFEST_NAME)


def run_sweep(tasks: Sequence[Task], out: str | Path, scheduler: str | None = None,
              workers: int | None = None, stop: threading.Event | None = None,
              on_start: Callable[[int, int], None] | None = None,
              on_done: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """Run the tasks on a local cluster (or ``scheduler``); rows marked with the best of the sweep.

    ``stop`` (set from another thread) cancels what has not finished; a local
    cluster is closed then, ending its running task, whose hidden partial
    folder is removed. Returns a :class:`~edxtomo.batch.BatchResult`.
    """
    from .engine import BatchResult, open_client, run_batch
    from .tasks import remove_partials

    root = Path(out).resolve()
    with open_client(scheduler or None, None if scheduler else workers, len(tasks)) as (client, threads):
        result = run_batch(tasks, root, client, torch_threads=threads, on_done=on_done,
                           on_start=on_start, stop=stop)
    remove_partials(root, [t.name for t in tasks])  # a task ended by closing the local cluster
    return BatchResult(mark_best(result.rows), result.interrupted)


def task_label(method: str, grid_point: dict[str, Any]) -> str:
    """``"TV tv_weight=0.02"``: the method and the grid values of a task."""
    point = " ".join(f"{k}={_fmt(v)}" for k, v in grid_point.items())
    return f"{method_label(method)} {point}".strip()


def shown_task(rows: Sequence[dict[str, Any]]) -> str | None:
    """The task whose volumes to show: the best held-out one, else the first with a result."""
    done = [r for r in rows if has_result(r)]
    best = [r for r in done if r.get("best_in_sweep")]
    pick = best or done
    return str(pick[0]["task"]) if pick else None


__all__ = ["GRID_KEY", "MANIFEST_NAME", "SERIES_FOLDER", "SweepSetup", "check_out_folder",
           "check_sweep", "manifest_of", "parse_weights", "run_sweep", "shown_task", "task_label",
           "write_sweep"]
