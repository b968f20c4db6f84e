"""Running a reconstruction to files: loss history, sidecar, checkpoints, partial results kept.

Used by the command line, the demo and batch tasks; the napari plugin streams
the same generator and writes through :func:`write_result`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io.atomic import write_atomic
from .io.outdir import OutputLock, check_output_folder, finish_partial, partial_dir, replace_folder
from .io.volumes import write_volumes
from .recon import RunControl, get_method, reconstruct
from .recon.snapshot import Snapshot
from .recon.status import RunStatus
from .tiltseries import TiltSeries

#: Training state of a resumable method, beside the volumes (``--resume DIR``).
CHECKPOINT_NAME = "checkpoint.pt"


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


@dataclass
class RunRecord:
    """What a run did, accumulated snapshot by snapshot."""

    method: str
    params: dict[str, Any]
    series: TiltSeries
    inputs: list[str] = field(default_factory=list)
    read_options: dict[str, Any] = field(default_factory=dict)
    tilt_range: tuple[float, float] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    last: Snapshot | None = None
    status: RunStatus = RunStatus.RUNNING
    error: str = ""
    time_limit: float | None = None
    resume: dict[str, Any] | None = field(default=None, repr=False)

    def add(self, snap: Snapshot) -> None:
        self.last = snap
        self.history.append({"iteration": snap.iteration, "elapsed_s": round(snap.elapsed_s, 4),
                             **snap.losses})

    def sidecar(self) -> dict[str, Any]:
        """Everything needed to understand and repeat the run (``--config``)."""
        snap = self.last
        return finite_or_none({
            "format": "edxtomo-reconstruction/1",
            "status": str(self.status),
            "stopped": snap.stopped if snap else "",
            "error": self.error,
            "method": self.method,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "time_limit_s": self.time_limit,
            "elements": self.series.elements,
            "lines": self.series.lines,
            "angles": [float(a) for a in self.series.angles],
            "tilt_range": list(self.tilt_range) if self.tilt_range else None,
            "missing_wedge_deg": self.series.missing_wedge,
            "pixel_size_nm": self.series.pixel_size,
            "input": self.inputs,
            "read_options": self.read_options,
            "iterations_done": snap.iteration if snap else 0,
            "elapsed_s": round(snap.elapsed_s, 3) if snap else 0.0,
            "info": snap.info if snap else {},
            "final_losses": snap.losses if snap else {},
            "loss_history": self.history,
            "provenance": self.series.provenance,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })


def accepted_params(method: str) -> set[str]:
    """Keyword parameters the method declares."""
    return set(get_method(method).params)


def default_params(method: str) -> dict[str, Any]:
    """The method's own defaults, so a sidecar records every value used."""
    return get_method(method).defaults()


def clean_params(method: str, params: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Validate ``params`` against the method's declarations and fill in its defaults.

    ``None`` values mean "not given". Raises
    :class:`~edxtomo.recon.params.ParameterError` naming the parameter (and
    ``where`` it came from) for unknown names, wrong types and values out of range.
    """
    return get_method(method).check(params, where)


def write_result(record: RunRecord, out_dir: str | Path, checkpoint: bool = False) -> list[Path]:
    """Write the latest volumes and the sidecar as one whole folder (safe to call repeatedly).

    Everything goes into a fresh folder that replaces ``out_dir`` only when
    complete (:func:`edxtomo.io.outdir.replace_folder`): ``out_dir`` never
    mixes runs or iterations. Checkpoints (``checkpoint``) go to
    ``<out_dir>.partial`` instead, so the previous result in ``out_dir``
    stays intact until the run ends. With ``checkpoint`` and a resumable
    method, the training state goes to ``checkpoint.pt`` beside them.
    """
    if record.last is None:
        return []
    target = partial_dir(out_dir) if checkpoint else Path(out_dir)
    written = replace_folder(target, lambda stage: _write_result_into(record, stage, checkpoint))
    return [target / p.name for p in written]


def _write_result_into(record: RunRecord, out: Path, checkpoint: bool) -> list[Path]:
    assert record.last is not None
    state_file = out / CHECKPOINT_NAME
    written: list[Path] = []
    if record.last.state is not None and (checkpoint or record.status in (
            RunStatus.STOPPED, RunStatus.INTERRUPTED, RunStatus.TIME_LIMIT, RunStatus.CHECKPOINT)):
        import torch

        state = record.last.state()
        out.mkdir(parents=True, exist_ok=True)
        written.append(write_atomic(state_file, lambda p: torch.save(state, p)))
    paths = write_volumes(out, record.last.volumes, record.series.pixel_size, record.sidecar())
    if not written and record.status in (RunStatus.FINISHED, RunStatus.FAILED) and state_file.exists():
        state_file.unlink()
    return written + paths


def resume_source(folder: str | Path) -> Path:
    """Where the run to resume in ``folder`` left its sidecar and checkpoint.

    A run killed outright left its last checkpoint in ``<folder>.partial``; a
    run stopped cleanly (Ctrl-C, Stop, a signal) left it in ``folder``
    itself. Either name may be given.
    """
    folder = Path(folder)
    partial = partial_dir(folder)
    if not folder.name.endswith(".partial") and (partial / CHECKPOINT_NAME).is_file():
        return partial
    return folder


def read_inputs(inputs: Sequence[str | Path], read_options: Mapping[str, Any],
                progress: Callable[[int, int, str], None] | None = None) -> TiltSeries:
    """Read a tilt series with the read options of ``reconstruct`` (``lines``, ``bin``, ``align``...).

    ``read_options`` is checked as a :class:`~edxtomo.io.ReadOptions` (unknown
    keys and bad values are errors naming them); a series needs two tilts.
    """
    from .io import ReadOptions, read_series

    return read_series([str(i) for i in inputs], options=ReadOptions.from_dict(dict(read_options)),
                       progress=progress, min_tilts=2)


def prepare_record(inputs: Sequence[str | Path], method: str, params: Mapping[str, Any],
                   read_options: Mapping[str, Any], elements: Sequence[str] | None = None,
                   tilt_range: Sequence[float] | None = None, time_limit: float | None = None,
                   resume: dict[str, Any] | None = None,
                   progress: Callable[[int, int, str], None] | None = None,
                   tilts: Sequence[float] | None = None) -> RunRecord:
    """Read, select elements and tilts, and describe the run: what ``reconstruct`` and batch tasks do.

    ``params`` must already be checked (:func:`clean_params`). The record
    keeps the read options in their checked form, so the sidecar re-runs.
    ``tilts`` (degrees) keeps exactly those tilts, e.g. a sidecar's ``angles``
    after tilts were dropped in napari.
    """
    from .io import ReadOptions

    series = read_inputs(inputs, read_options, progress)
    if elements:
        series = series.select_elements(list(elements))
    if tilt_range:
        series = series.select_tilt_range(*tilt_range)
    if tilts is not None:
        series = _select_tilts(series, tilts)
    return RunRecord(method=method, params=dict(params), series=series, inputs=[str(i) for i in inputs],
                     read_options=ReadOptions.from_dict(dict(read_options)).to_dict(),
                     tilt_range=tuple(tilt_range) if tilt_range else None, time_limit=time_limit,
                     resume=resume)


#: Two angles closer than this (degrees) are the same tilt.
ANGLE_MATCH_DEG = 1e-3


def _select_tilts(series: TiltSeries, tilts: Sequence[float]) -> TiltSeries:
    import numpy as np

    from .errors import InputError

    want = np.asarray(list(tilts), dtype=float)
    keep = [i for i, a in enumerate(series.angles) if np.any(np.abs(want - a) < ANGLE_MATCH_DEG)]
    if len(keep) != want.size:
        missing = [f"{a:g}" for a in want if not np.any(np.abs(series.angles - a) < ANGLE_MATCH_DEG)]
        raise InputError(f"{series.source}: the run to repeat used tilts at {', '.join(missing)} deg, "
                         "which this series does not hold (other angles given?); pass --tilt-range "
                         "to choose the tilts anew")
    return series if len(keep) == series.n_angles else series.select_indices(keep)


def load_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The training state saved in ``folder`` (read with ``weights_only=True``: tensors and plain data only)."""
    import torch

    from .errors import InputError

    path = Path(folder) / CHECKPOINT_NAME
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint to resume from (only DIP runs that were stopped, "
                         "interrupted or checkpointed leave one)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise InputError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from exc


def run(
    record: RunRecord,
    out_dir: str | Path,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    checkpoint_every_s: float = 60.0,
    control: RunControl | None = None,
) -> RunRecord:
    """Run ``record.method`` on ``record.series`` and write the result to ``out_dir``.

    Results are checkpointed at most every ``checkpoint_every_s`` seconds
    (volumes, sidecar with status ``running (checkpoint)`` and, for DIP, the
    training state); on Ctrl-C or an error the latest volumes are written
    before re-raising, with ``status`` saying what happened. ``control`` (see
    :mod:`edxtomo.recon.control`) reports progress between snapshots and lets
    another thread or a signal handler stop the run cleanly. A run whose loss
    became non-finite ends ``failed`` with the last finite volumes kept.
    """
    extra: dict[str, Any] = {}
    if record.time_limit is not None:
        extra["time_limit"] = record.time_limit
    if record.resume is not None:
        extra["resume"] = record.resume
    check_output_folder(out_dir, record.inputs,
                        resume=partial_dir(out_dir) if record.resume is not None else None)
    lock = OutputLock(out_dir)
    lock.acquire()
    gen = reconstruct(record.series, record.method, control=control, **record.params, **extra)
    last_write = time.perf_counter()
    try:
        for snap in gen:
            record.add(snap)
            if on_snapshot:
                on_snapshot(snap)
            if time.perf_counter() - last_write > checkpoint_every_s and not snap.final:
                record.status = RunStatus.CHECKPOINT
                write_result(record, out_dir, checkpoint=True)
                last_write = time.perf_counter()
        record.status = RunStatus.after(record.last.stopped if record.last else "")
        if record.status == RunStatus.FAILED:
            record.error = record.last.stopped
    except KeyboardInterrupt:
        record.status = RunStatus.INTERRUPTED
        raise
    except Exception as exc:
        record.status, record.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:
            gen.close()
            if write_result(record, out_dir):
                finish_partial(out_dir)
        finally:
            lock.release()
    return record
