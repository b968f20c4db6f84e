"""A small live plot of the loss terms (and the held-out error) inside a dock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy


class LossPlot(FigureCanvasQTAgg):
    """Loss terms against iteration on a log scale; redrawn lazily."""

    def __init__(self) -> None:
        fig = Figure(figsize=(3.2, 1.8), dpi=90, tight_layout=True)
        super().__init__(fig)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(160)
        self.ax = fig.add_subplot(111)
        self.clear()

    def clear(self) -> None:
        self.ax.clear()
        self._lines: dict[str, Any] = {}
        self.ax.set_xlabel("iteration", fontsize=8)
        self.ax.tick_params(labelsize=7)
        self.draw_idle()

    def show_history(self, history: Sequence[Mapping[str, float]]) -> None:
        """Plot every loss key found in ``history`` (rows of ``{"iteration": .., key: ..}``).

        Lines are updated in place (``set_data``) rather than re-plotted, so a
        redraw stays cheap on the GUI thread.
        """
        keys = [k for k in (history[-1] if history else {}) if k not in ("iteration", "elapsed_s")]
        its = [row["iteration"] for row in history]
        for key in keys:
            vals = [row.get(key, float("nan")) for row in history]
            if key not in self._lines:
                style = "--" if key == "heldout" else "-"
                (self._lines[key],) = self.ax.plot(its, vals, style, label=key, lw=1.2)
                self.ax.legend(fontsize=7, loc="upper right", frameon=False)
            else:
                self._lines[key].set_data(its, vals)
        positive = keys and all(row.get(k, 1) > 0 for row in history for k in keys)
        self.ax.set_yscale("log" if positive else "linear")
        self.ax.relim()
        self.ax.autoscale_view()
        self.draw_idle()
