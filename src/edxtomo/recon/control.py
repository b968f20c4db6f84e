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

from .status import StopReason

#: ``Snapshot.stopped`` of a run ended by :meth:`RunControl.request_stop`.
STOPPED_BY_USER = StopReason.USER


class RunControl:
    """Progress of a running reconstruction and a way to stop it early.

    Attributes
    ----------
    iteration, total
        Iterations done and planned, updated by the algorithm every iteration.
    time_limit
        Seconds the run may take from its first iteration, or None.
    """

    def __init__(self, time_limit: float | None = None) -> None:
        self._stop = threading.Event()
        self.iteration = 0
        self.total = 0
        self.time_limit: float | None = None
        self._first: tuple[int, float] | None = None  # (iteration, time) of the first step
        self._start: float | None = None
        self._timed_out = False
        self.set_time_limit(time_limit)

    def set_time_limit(self, seconds: float | None) -> None:
        """End the run ``seconds`` after its first iteration (None: no limit)."""
        if seconds is not None and not seconds > 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {seconds}")
        self.time_limit = seconds

    @property
    def stop_reason(self) -> StopReason:
        """Why :meth:`step` asked the run to stop (``NONE`` while it runs on)."""
        if self._stop.is_set():
            return StopReason.TIME_LIMIT if self._timed_out else StopReason.USER
        return StopReason.NONE

    def elapsed(self) -> float:
        """Seconds since the first recorded iteration began (0 before it)."""
        return 0.0 if self._start is None else time.perf_counter() - self._start

    def seconds_to_limit(self) -> float | None:
        """Time left of the budget, or None without one."""
        if self.time_limit is None:
            return None
        return max(0.0, self.time_limit - self.elapsed())

    def request_stop(self) -> None:
        """Ask the run to end after its current iteration, with a final snapshot."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def step(self, iteration: int, total: int) -> bool:
        """Record progress; return True when the run should stop now."""
        self.iteration, self.total = int(iteration), int(total)
        now = time.perf_counter()
        if self._first is None:
            self._first = (self.iteration, now)
        if self._start is None:  # a method that does not call begin(): count from here
            self._start = now
        if self.time_limit is not None and not self._stop.is_set() and self.elapsed() >= self.time_limit:
            self._timed_out = True
            self._stop.set()
        return self._stop.is_set()

    def begin(self) -> None:
        """Mark the start of the first iteration (the budget runs from here, set-up excluded)."""
        if self._start is None:
            self._start = time.perf_counter()

    def seconds_left(self) -> float | None:
        """Estimated time to ``total`` at the mean pace since the first iteration.

        The set-up before it (building the projector, the network) is not
        counted: it does not recur. None until two iterations were recorded.
        """
        if self._first is None or self.total <= 0 or self.iteration <= self._first[0]:
            return None
        first_it, first_t = self._first
        pace = (time.perf_counter() - first_t) / (self.iteration - first_it)
        left = pace * max(0, self.total - self.iteration)
        budget = self.seconds_to_limit()
        return left if budget is None else min(left, budget)


def step(control: RunControl | None, iteration: int, total: int) -> bool:
    """:meth:`RunControl.step` that accepts no control (then never stops)."""
    return control is not None and control.step(iteration, total)


def begin(control: RunControl | None) -> None:
    """:meth:`RunControl.begin` that accepts no control."""
    if control is not None:
        control.begin()


def stop_reason(control: RunControl | None) -> StopReason:
    """Why the run was asked to stop (``NONE`` without a control)."""
    return StopReason.NONE if control is None else control.stop_reason
