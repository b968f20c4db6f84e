"""Line profiles painted with QPainter (cheap, as the loss plot: no matplotlib draw per update)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget

COLOURS = ("#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b")


class ProfilePlot(QWidget):
    """Profiles ``{name: (distance nm, values)}`` painted with QPainter; NaN leaves a gap."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(140)
        self.lines: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.unit = ""

    def set_lines(self, lines: dict[str, tuple[np.ndarray, np.ndarray]], unit: str) -> None:
        self.lines, self.unit = lines, unit
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("white"))
        finite = [v[np.isfinite(v)] for _, v in self.lines.values()]
        finite = [f for f in finite if f.size]
        if not finite:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "draw a line in a Shapes layer")
            return
        y0, y1 = min(float(f.min()) for f in finite), max(float(f.max()) for f in finite)
        y1 = y1 if y1 > y0 else y0 + 1.0
        x1 = max(float(d[-1]) for d, _ in self.lines.values()) or 1.0
        box = QRectF(52, 8, max(self.width() - 60, 10), max(self.height() - 36, 10))
        p.setPen(QColor("#444"))
        p.drawRect(box)
        p.drawText(QRectF(0, box.top() - 6, 48, 12), Qt.AlignmentFlag.AlignRight, f"{y1:.3g}")
        p.drawText(QRectF(0, box.bottom() - 6, 48, 12), Qt.AlignmentFlag.AlignRight, f"{y0:.3g}")
        p.drawText(QRectF(box.left(), box.bottom() + 2, box.width(), 14),
                   Qt.AlignmentFlag.AlignHCenter, f"distance (nm), 0–{x1:.3g}; values in {self.unit}")
        for i, (name, (d, v)) in enumerate(self.lines.items()):
            p.setPen(QPen(QColor(COLOURS[i % len(COLOURS)]), 1.5))
            xs = box.left() + d / x1 * box.width()
            ys = box.bottom() - (v - y0) / (y1 - y0) * box.height()
            for j in range(len(d) - 1):
                if np.isfinite(ys[j]) and np.isfinite(ys[j + 1]):
                    p.drawLine(int(xs[j]), int(ys[j]), int(xs[j + 1]), int(ys[j + 1]))
            p.drawText(int(box.right()) - 60, int(box.top()) + 14 * (i + 1), name)
