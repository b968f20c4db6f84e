"""A small live plot of the loss terms (and the held-out error) inside a dock.

Painted with QPainter rather than matplotlib: the plot is redrawn while a run
streams volumes into the 3D view, and a matplotlib Agg draw of even a small
figure took 50–250 ms of the GUI thread here, one draw per update. A few
polylines cost well under a millisecond and are painted in the same pass as
the rest of the window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

#: At most this many points per line: a long run's history is thinned for drawing.
MAX_POINTS = 600
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
NOT_LOSSES = ("iteration", "elapsed_s")


class LossPlot(QWidget):
    """Loss terms against iteration, log-scaled when all are positive.

    ``show_history`` takes the run's history (rows of ``{"iteration": ..,
    key: ..}``); the held-out error is dashed.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(150)
        self.lines: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.log_scale = False

    def clear(self) -> None:
        self.lines = {}
        self.update()

    def show_history(self, history: Sequence[Mapping[str, float]]) -> None:
        """Plot every loss key of ``history``; painted with the next window repaint."""
        if not history:
            return
        rows = history if len(history) <= MAX_POINTS else [
            history[int(i)] for i in np.linspace(0, len(history) - 1, MAX_POINTS)]
        its = np.array([row["iteration"] for row in rows], dtype=float)
        keys = [k for k in history[-1] if k not in NOT_LOSSES]
        self.lines = {k: (its, np.array([row.get(k, np.nan) for row in rows], dtype=float))
                      for k in keys}
        finite = [v[np.isfinite(v)] for _, v in self.lines.values()]
        self.log_scale = all(f.size and (f > 0).all() for f in finite)
        self.update()

    # ------------------------------------------------------------ painting
    def _y_range(self) -> tuple[float, float]:
        vals = np.concatenate([v[np.isfinite(v)] for _, v in self.lines.values()])
        if self.log_scale:
            vals = np.log10(vals)
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        return lo - pad, hi + pad

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        font = QFont(self.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        box = QRectF(self.rect()).adjusted(46, 8, -8, -28)
        p.setPen(QPen(QColor("#444")))
        p.drawRect(box)
        if not self.lines:
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, "losses appear here during a run")
            p.end()
            return
        xs = np.concatenate([i for i, _ in self.lines.values()])
        x0, x1 = float(xs.min()), float(xs.max())
        x1 = x1 if x1 > x0 else x0 + 1
        y0, y1 = self._y_range()

        def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            yy = np.log10(np.clip(y, 1e-300, None)) if self.log_scale else y
            return (box.left() + (x - x0) / (x1 - x0) * box.width(),
                    box.bottom() - (yy - y0) / (y1 - y0) * box.height())

        self._paint_axes(p, box, x0, x1, y0, y1)
        legend_y = box.top() + 10
        for n, (key, (its, vals)) in enumerate(self.lines.items()):
            colour = QColor(COLOURS[n % len(COLOURS)])
            pen = QPen(colour, 1.4)
            if key == "heldout":
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            px, py = to_px(its, vals)
            path = QPainterPath()
            started = False
            for a, b in zip(px, py, strict=True):
                if not (math.isfinite(a) and math.isfinite(b)):
                    started = False
                    continue
                path.lineTo(a, b) if started else path.moveTo(a, b)
                started = True
            p.drawPath(path)
            lx = box.right() - 70
            p.drawLine(QPointF(lx, legend_y - 3), QPointF(lx + 16, legend_y - 3))
            p.setPen(QColor("#222"))
            p.drawText(QPointF(lx + 20, legend_y), key)
            legend_y += 12
        p.end()

    def _paint_axes(self, p: QPainter, box: QRectF, x0: float, x1: float, y0: float, y1: float) -> None:
        p.setPen(QColor("#444"))
        # End labels align inwards so they stay inside the widget.
        for frac, x, align in ((0.0, x0, Qt.AlignmentFlag.AlignLeft),
                               (0.5, (x0 + x1) / 2, Qt.AlignmentFlag.AlignHCenter),
                               (1.0, x1, Qt.AlignmentFlag.AlignRight)):
            xpx = box.left() + frac * box.width()
            left = xpx - 60 * frac
            p.drawText(QRectF(left, box.bottom() + 2, 60, 12), align, f"{x:.0f}")
        p.drawText(QRectF(box.left(), box.bottom() + 14, box.width(), 12),
                   Qt.AlignmentFlag.AlignHCenter, "iteration")
        for frac in (0.0, 0.5, 1.0):
            y = y0 + frac * (y1 - y0)
            label = f"{10 ** y:.2g}" if self.log_scale else f"{y:.2g}"
            ypx = box.bottom() - frac * box.height()
            p.drawText(QRectF(0, ypx - 6, box.left() - 4, 12),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
