"""Many reconstructions at once on Dask distributed: manifests, grids, resumable batches.

>>> tasks = load_manifest("sweep.toml")                       # doctest: +SKIP
>>> with open_client(workers=2, n_tasks=len(tasks)) as (client, threads):  # doctest: +SKIP
...     result = run_batch(tasks, "out", client, torch_threads=threads)

The command line is ``edxtomo batch`` (:mod:`edxtomo.batch.cli`).
"""

from __future__ import annotations

from .engine import BatchResult, open_client, run_batch
from .manifest import ManifestError, Task, load_manifest
from .tasks import prepare_record, run_task

__all__ = ["BatchResult", "ManifestError", "Task", "load_manifest", "open_client",
           "prepare_record", "run_batch", "run_task"]
