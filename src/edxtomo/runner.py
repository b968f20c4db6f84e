"""Running a reconstruction to files: loss history, sidecar, partial results kept.

Used by the command line; the napari plugin streams the same generator and
writes through :func:`write_result`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io.volumes import write_volumes
from .recon import RunControl, method_function, reconstruct
from .recon.control import STOPPED_BY_USER
from .recon.snapshot import Snapshot
from .tiltseries import TiltSeries


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
    status: str = "running"
    error: str = ""

    def add(self, snap: Snapshot) -> None:
        self.last = snap
        self.history.append({"iteration": snap.iteration, "elapsed_s": round(snap.elapsed_s, 4),
                             **snap.losses})

    def sidecar(self) -> dict[str, Any]:
        """Everything needed to understand and repeat the run (``--config``)."""
        snap = self.last
        return {
            "format": "edxtomo-reconstruction/1",
            "status": self.status,
            "error": self.error,
            "method": self.method,
            "params": self.params,
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
        }


#: Arguments of a method's generator that are not reconstruction parameters.
NOT_PARAMETERS = ("series", "control")


def accepted_params(method: str) -> set[str]:
    """Keyword parameters the method's generator accepts."""
    sig = inspect.signature(method_function(method))
    return {n for n, p in sig.parameters.items()
            if n not in NOT_PARAMETERS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def write_result(record: RunRecord, out_dir: str | Path) -> list[Path]:
    """Write the latest volumes and the sidecar (atomic; safe to call repeatedly)."""
    if record.last is None:
        return []
    return write_volumes(out_dir, record.last.volumes, record.series.pixel_size, record.sidecar())


def run(
    record: RunRecord,
    out_dir: str | Path,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    checkpoint_every_s: float = 60.0,
    control: RunControl | None = None,
) -> RunRecord:
    """Run ``record.method`` on ``record.series`` and write the result to ``out_dir``.

    Results are checkpointed at most every ``checkpoint_every_s`` seconds; on
    Ctrl-C or an error the latest volumes are written before re-raising, with
    ``status`` saying what happened. ``control`` (see
    :mod:`edxtomo.recon.control`) reports progress between snapshots and lets
    another thread or a signal handler stop the run cleanly.
    """
    gen = reconstruct(record.series, record.method, control=control, **record.params)
    last_write = time.perf_counter()
    try:
        for snap in gen:
            record.add(snap)
            if on_snapshot:
                on_snapshot(snap)
            if time.perf_counter() - last_write > checkpoint_every_s and not snap.final:
                record.status = "running (checkpoint)"
                write_result(record, out_dir)
                last_write = time.perf_counter()
        stopped = record.last.stopped if record.last else ""
        record.status = (stopped if stopped == STOPPED_BY_USER
                         else f"finished ({stopped})" if stopped else "finished")
    except KeyboardInterrupt:
        record.status = "interrupted"
        raise
    except Exception as exc:
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        gen.close()
        write_result(record, out_dir)
    return record


def default_params(method: str) -> dict[str, Any]:
    """The method's own defaults, so a sidecar records every value used."""
    sig = inspect.signature(method_function(method))
    return {n: p.default for n, p in sig.parameters.items()
            if n not in NOT_PARAMETERS and p.default is not p.empty}


def clean_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values, reject parameters the method does not take, fill in defaults."""
    allowed = accepted_params(method)
    out = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(out) - allowed)
    if unknown:
        raise ValueError(
            f"method {method!r} does not take {', '.join(unknown)} (it takes {', '.join(sorted(allowed))})"
        )
    return {**{k: v for k, v in default_params(method).items() if k in allowed}, **out}
