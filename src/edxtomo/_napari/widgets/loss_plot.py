"""A small live plot of the loss terms (and the held-out error) inside a dock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

#: At most this many points per line: a long run's history is thinned for drawing.
MAX_POINTS = 600


class LossPlot(FigureCanvasQTAgg):
    """Loss terms against iteration on a log scale, redrawn at most every ``min_interval_ms``.

    Drawing runs on the GUI thread, so it is kept cheap: fixed margins (an
    automatic tight layout measured 150 ms per draw), lines updated in place,
    long histories thinned, and redraws coalesced by a single-shot timer.
    """

    def __init__(self, min_interval_ms: int = 1000) -> None:
        fig = Figure(figsize=(3.2, 1.8), dpi=90)
        fig.subplots_adjust(left=0.16, right=0.97, bottom=0.22, top=0.95)
        super().__init__(fig)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(160)
        self.ax = fig.add_subplot(111)
        self._pending: Sequence[Mapping[str, float]] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(min_interval_ms))
        self._timer.timeout.connect(self._redraw_pending)
        self.redraws = 0
        self.clear()

    def clear(self) -> None:
        self._timer.stop()
        self._pending = None
        self.ax.clear()
        self._lines: dict[str, Any] = {}
        self._yscale = "linear"
        self.ax.set_xlabel("iteration", fontsize=8)
        self.ax.tick_params(labelsize=7)
        self.draw_idle()

    def show_history(self, history: Sequence[Mapping[str, float]], now: bool = False) -> None:
        """Plot every loss key found in ``history`` (rows of ``{"iteration": .., key: ..}``).

        The first call draws at once, later ones at most every
        ``min_interval_ms`` (the latest history wins); ``now`` forces a draw,
        e.g. for the final state of a run.
        """
        self._pending = history
        if now or not self._timer.isActive():
            self._redraw_pending()
            self._timer.start()

    def _redraw_pending(self) -> None:
        history, self._pending = self._pending, None
        if not history:
            return
        rows = history if len(history) <= MAX_POINTS else [
            history[int(i)] for i in np.linspace(0, len(history) - 1, MAX_POINTS)]
        keys = [k for k in history[-1] if k not in ("iteration", "elapsed_s")]
        its = [row["iteration"] for row in rows]
        for key in keys:
            vals = [row.get(key, float("nan")) for row in rows]
            if key not in self._lines:
                style = "--" if key == "heldout" else "-"
                (self._lines[key],) = self.ax.plot(its, vals, style, label=key, lw=1.2)
                self.ax.legend(fontsize=7, loc="upper right", frameon=False)
            else:
                self._lines[key].set_data(its, vals)
        positive = keys and all(row.get(k, 1) > 0 for row in rows for k in keys)
        scale = "log" if positive else "linear"
        if scale != self._yscale:
            self.ax.set_yscale(scale)
            self._yscale = scale
        self.ax.relim()
        self.ax.autoscale_view()
        self.draw_idle()
        self.redraws += 1
