"""A run's control channel: progress out, stop requests in, between snapshots.

Snapshots cost a projection and a copy to numpy, so slow methods yield them
only every ``snapshot_every`` iterations; a DIP iteration at 64³ takes about a
second on a CPU, so that can be a minute. Closing the generator only acts at a
``yield``. A :class:`RunControl` shared with the thread that watches the run
closes that gap: the algorithm records each iteration in it and checks it for
a stop request, and on a request yields a final snapshot of its current state
at once. It holds no Qt and no numerics; any thread may read or set it.
"""

from __future__ import annotations

import threading
import time

#: ``Snapshot.stopped`` of a run ended by :meth:`RunControl.request_stop`.
STOPPED_BY_USER = "stopped by user"


class RunControl:
    """Progress of a running reconstruction and a way to stop it early.

    Attributes
    ----------
    iteration, total
        Iterations done and planned, updated by the algorithm every iteration.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.iteration = 0
        self.total = 0
        self._first: tuple[int, float] | None = None  # (iteration, time) of the first step

    def request_stop(self) -> None:
        """Ask the run to end after its current iteration, with a final snapshot."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def step(self, iteration: int, total: int) -> bool:
        """Record progress; return True when the run should stop now."""
        self.iteration, self.total = int(iteration), int(total)
        if self._first is None:
            self._first = (self.iteration, time.perf_counter())
        return self._stop.is_set()

    def seconds_left(self) -> float | None:
        """Estimated time to ``total`` at the mean pace since the first iteration.

        The set-up before it (building the projector, the network) is not
        counted: it does not recur. None until two iterations were recorded.
        """
        if self._first is None or self.total <= 0 or self.iteration <= self._first[0]:
            return None
        first_it, first_t = self._first
        pace = (time.perf_counter() - first_t) / (self.iteration - first_it)
        return pace * max(0, self.total - self.iteration)


def step(control: RunControl | None, iteration: int, total: int) -> bool:
    """:meth:`RunControl.step` that accepts no control (then never stops)."""
    return control is not None and control.step(iteration, total)
