"""Cost of a running reconstruction in words: time per iteration, total, a CPU warning.

Qt-free: the Reconstruct dock shows what these return.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A run projected to take longer than this on a CPU gets a warning.
CPU_WARN_SECONDS = 180.0


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2.5 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Estimate:
    """Pace of a run measured on its iterations so far.

    Attributes
    ----------
    per_iteration
        Seconds per iteration.
    total
        Projected seconds for all iterations.
    left
        Projected seconds still to go.
    """

    per_iteration: float
    total: float
    left: float

    @classmethod
    def from_progress(cls, iteration: int, total: int, seconds_left: float) -> Estimate | None:
        """From :meth:`RunControl.seconds_left` (None while it is unknown or at the end)."""
        if seconds_left < 0 or total <= 0 or iteration >= total:
            return None
        pace = seconds_left / (total - iteration)
        return cls(per_iteration=pace, total=pace * total, left=seconds_left)

    def text(self, total_iterations: int) -> str:
        per = (f"{self.per_iteration * 1000:.0f} ms" if self.per_iteration < 1
               else f"{self.per_iteration:.2g} s")
        return (f"~{per} per iteration: ~{duration(self.total)} for {total_iterations} "
                f"iterations, ~{duration(self.left)} left")

    def warning(self, on_cpu: bool, has_time_limit: bool = False) -> str:
        """A sentence when the run is long for a CPU, else ``""``."""
        if not on_cpu or has_time_limit or self.total <= CPU_WARN_SECONDS:
            return ""
        return (f"long run: ~{duration(self.total)} on this CPU. Stop when the volumes look "
                "right, or start again with a time limit, fewer iterations or more binning")
