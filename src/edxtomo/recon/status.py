"""Run status and stop reasons, shared by the runner, the napari controller and the sidecar.

Both are ``str`` enums: they compare equal to their text and are written to
JSON as that text, so sidecars stay readable.
"""

from __future__ import annotations

from enum import StrEnum


class StopReason(StrEnum):
    """Why a run ended before its last planned iteration (``Snapshot.stopped``)."""

    NONE = ""
    USER = "stopped by user"
    TIME_LIMIT = "time limit"
    EARLY_STOPPING = "early stopping"
    NON_FINITE = "non-finite loss"


class RunStatus(StrEnum):
    """Where a run stands (``reconstruction.json`` ``status``)."""

    RUNNING = "running"
    CHECKPOINT = "running (checkpoint)"
    FINISHED = "finished"
    STOPPED = "stopped by user"
    TIME_LIMIT = "time limit"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @classmethod
    def after(cls, stopped: str) -> RunStatus:
        """The status of a run whose final snapshot says ``stopped``."""
        if stopped == StopReason.USER:
            return cls.STOPPED
        if stopped.startswith(StopReason.TIME_LIMIT):
            return cls.TIME_LIMIT
        if stopped.startswith(StopReason.NON_FINITE):
            return cls.FAILED
        return cls.FINISHED

    @property
    def done(self) -> bool:
        """The run ended with a result that stands (not running, not failed)."""
        return self in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.TIME_LIMIT)
