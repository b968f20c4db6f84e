"""One batch task, run inside a Dask worker: read, select, reconstruct, write.

:func:`edxtomo.runner.prepare_record` does what ``edxtomo reconstruct`` does
between the command line and :func:`edxtomo.runner.run` (both call it), so a
batch result equals the same run from the command line. The task writes into a hidden sibling folder
and renames it to ``OUT/<task>/`` only when the run finished, so a killed or
failed task never leaves a half-written result under the task's name.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import SIDECAR_NAME
from ..io.atomic import write_json
from ..runner import prepare_record
from .manifest import Task
from .summary import held_counts

#: Written beside the sidecar: the task's spec, compared by ``--resume``.
TASK_FILE = "batch_task.json"
PART_MARK = ".part-"


def finished_spec(folder: Path) -> dict[str, Any] | None:
    """The spec of a finished task in ``folder``, or None if it is absent, partial or failed."""
    try:
        side = json.loads((folder / SIDECAR_NAME).read_text(encoding="utf-8"))
        spec = json.loads((folder / TASK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from .summary import RESULT_STATUSES

    return spec if side.get("status") in RESULT_STATUSES else None


def set_torch_threads(threads: int | None) -> int:
    """Give torch ``threads`` intra-op threads (Dask's nanny sets OMP_NUM_THREADS=1 otherwise)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def _worker_device(device: str) -> str:
    """``auto`` on a worker of a local multi-GPU machine → one GPU per worker, by worker name."""
    if device != "auto":
        return device
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    try:
        from distributed import get_worker

        index = int(get_worker().name)
    except (ImportError, ValueError, TypeError):
        return device
    return f"cuda:{index % torch.cuda.device_count()}"


def run_task(task: Task, out_root: str, torch_threads: int | None = None) -> dict[str, Any]:
    """Run one task to ``out_root/<task.name>/`` and return its summary row.

    Errors are caught and returned as ``status="failed"`` with the message, so
    one bad input never stops a batch; only the death of the worker process
    escapes (Dask then reschedules the task elsewhere).
    """
    from ..runner import run

    start = time.perf_counter()
    out_root_p = Path(out_root)
    final = out_root_p / task.name
    tmp = out_root_p / f".{task.name}{PART_MARK}{uuid.uuid4().hex[:8]}"
    row: dict[str, Any] = {"task": task.name, "status": "failed", "method": task.method,
                           "output": str(final), "pid": os.getpid()}
    record = None
    try:
        row["threads"] = set_torch_threads(torch_threads)
        params = dict(task.params)
        params["device"] = _worker_device(str(params.get("device", "auto")))
        record = prepare_record(task.inputs, task.method, params, task.read, task.elements,
                                task.tilt_range, task.time_limit)
        run(record, tmp)
        write_json(tmp / TASK_FILE, {"task": task.name, "sweep": task.sweep,
                                     "grid_point": task.grid_point, **task.spec()})
        _replace_dir(tmp, final)
        row["status"] = str(record.status)
        if record.error:  # e.g. a non-finite loss: the last finite volumes are kept, as `reconstruct` does
            row["error"] = record.error
    except Exception as exc:  # reported in the summary; the batch goes on
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=-3)
        row["output"] = ""
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    row["wall_s"] = round(time.perf_counter() - start, 3)
    if record is not None and record.last is not None:
        last = record.last
        row.update(iterations=last.iteration, device=last.info.get("device", ""),
                   losses=dict(last.losses), heldout=last.losses.get("heldout"),
                   heldout_angles=last.info.get("heldout_angles"), loss=last.info.get("loss"),
                   heldout_counts=held_counts(last.info),
                   stopped=last.stopped)
    return row


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst``, replacing an older result there."""
    if not dst.exists():
        os.replace(src, dst)
        return
    # A directory cannot be renamed onto a non-empty one: move the old aside first.
    old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def remove_partials(out_root: Path, names: Sequence[str]) -> list[Path]:
    """Delete what killed workers of these tasks left: hidden ``.<task>.part-*`` folders and
    the runner's lock files and stages beside them (``..<task>.part-*``)."""
    removed = []
    for name in names:
        for pattern in (f".{name}{PART_MARK}*", f"..{name}{PART_MARK}*"):
            for p in out_root.glob(pattern):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
    return removed
