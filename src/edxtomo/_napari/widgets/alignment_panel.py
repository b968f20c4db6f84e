"""Alignment in the docks: the Load dock's options and per-tilt table, the Reconstruct dock's tilt drops.

The numbers (tilt axis, shifts, scores, flags) come from
:func:`edxtomo.alignment.align_tilt_series` through the series' provenance;
:mod:`edxtomo._napari.layers` turns that record into rows. These widgets only
show them and turn the user's choices into read options and a tilt selection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..layers import TiltRow, alignment_record, alignment_summary, tilt_rows

#: Alignment modes of the Load dock: (key, label).
MODES = (("none", "none"),
         ("translation", "translation + tilt axis"),
         ("matching", "translation + projection matching"))
#: Per-tilt normalisation: (read-option value, label, what it does).
NORMALISE = (
    ("none", "none",
     "No per-tilt intensity correction: the counts as read (the default without an alignment)."),
    ("total", "total spectrum counts",
     "Divide each tilt by the total counts of its spectrum image (spectrum images only)."),
    ("live_time", "live time",
     "Divide each tilt by the live time of its spectrum image (spectrum images only)."),
    ("counts", "element-map counts (default with alignment)",
     "Divide each tilt by the summed counts of its element maps (geometric mean 1), estimated "
     "by the alignment: the default with an alignment mode, as it lowered the left-out error "
     "on the real series (docs/real-data.md)."),
    ("gains", "gains fitted to the other tilts (with alignment)",
     "Divide each tilt by a gain fitted against its prediction from the other tilts, "
     "estimated by the alignment."),
)
#: Normalisations computed by the alignment, unavailable without it.
ALIGNMENT_GAINS = ("counts", "gains")
#: The per-tilt normalisation the dock starts with, with and without an alignment mode
#: (as on the command line, :data:`edxtomo.io.options.ALIGNMENT_DEFAULT_NORMALISE`).
DEFAULT_NORMALISE = {True: "counts", False: "none"}
#: Background of flagged tilts in the tables (translucent: readable on light and dark themes).
FLAGGED_COLOUR = QColor(255, 120, 0, 110)

TIPS = {
    "mode": "none: the maps as read. translation + tilt axis: one shift per tilt (the same for every "
            "element) and the in-plane angle of the tilt axis, with a consistency score per tilt. "
            "+ projection matching: then register every tilt to the reprojection of a fast "
            "reconstruction from the others, for the given number of rounds (slower, better on drift).",
    "rounds": "Projection-matching rounds (typically 3-8); rounds that make the tilts agree less "
              "are undone.",
    "tilt_axis": "In-plane angle of the tilt axis in degrees, anticlockwise from the image y axis "
                 "(typically -10..10). 0 (default): no rotation; 'auto' estimates it from the "
                 "data (check it against the left-out error, docs/real-data.md); or type an angle.",
    "use_estimate": "Put the estimated angle in the field: extracting again gives the same axis "
                    "without searching for it, and the run records the fixed value.",
    "normalise": "Per-tilt intensity correction (detector shadowing, lamella thickness). "
                 "none: the counts as read. total spectrum counts / live time: divide each tilt "
                 "by its spectrum image's total counts / live time. element-map counts: divide "
                 "by each tilt's summed element-map counts; gains: by a gain fitted to the other "
                 "tilts (these two are estimated by the alignment). Default: element-map counts "
                 "with an alignment mode (measured better on the real series), none without, as "
                 "on the command line (--normalise).",
    "table": "One row per tilt after extraction. score: the fraction of the tilt's signal that a "
             "reconstruction from the other tilts leaves unexplained (0 = perfect, noise floor "
             "removed); flagged: far worse than the other tilts (beam damage, a charging jump); "
             "dy, dx: the shift applied, in pixels; gain: the intensity divided out.",
    "drop_flagged": "Leave out every tilt the alignment flagged as inconsistent with the others "
                    "(ticks them in the list below).",
    "tilt_list": "Every tilt of the ticked layers with its alignment score; tick a tilt to leave it "
                 "out of the run (recorded in the run's angles and provenance). Flagged tilts are "
                 "highlighted.",
}


def _float_text(value: float | None, fmt: str) -> str:
    return "" if value is None or not math.isfinite(value) else format(value, fmt)


def parse_tilt_axis(text: str) -> str | float:
    """``"auto"`` or a finite angle in degrees from what was typed (``ValueError`` otherwise)."""
    text = text.strip().replace("°", "").strip()
    if not text or text.lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"tilt axis {text!r}: 'auto' or an angle in degrees") from None
    if not math.isfinite(value) or abs(value) > 90:
        raise ValueError(f"tilt axis {text!r}: an angle between -90 and 90 degrees")
    return value


class AlignmentOptions(QGroupBox):
    """The Load dock's alignment settings, given to the reader as read options."""

    changed = Signal()

    def __init__(self, saved: Mapping[str, Any], parent: QWidget | None = None) -> None:
        super().__init__("Alignment", parent)
        form = QFormLayout(self)
        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        # Older settings stored one "align" tick: translation.
        mode = saved.get("align_mode") or ("translation" if saved.get("align") else "none")
        self.mode.setCurrentIndex(max(self.mode.findData(mode), 0))
        self.rounds = QSpinBox()
        self.rounds.setRange(1, 50)
        self.rounds.setValue(int(saved.get("refine", 5) or 5))
        self.rounds.setSuffix(" rounds")
        row = QHBoxLayout()
        row.addWidget(self.mode, 1)
        row.addWidget(self.rounds)
        form.addRow("mode", row)

        # 0 by default, as on the command line: the estimate raised the left-out error at
        # three of four tilts of the real series (docs/real-data.md).
        self.tilt_axis = QLineEdit(str(saved.get("tilt_axis", "0")))
        self.tilt_axis.setPlaceholderText("0 or auto")
        self.estimate = QLabel("")
        self.estimate.setToolTip("The tilt-axis angle the last extraction used, and where it came from.")
        self.use_estimate = QPushButton("Keep")
        self.use_estimate.setEnabled(False)
        self.use_estimate.clicked.connect(self._keep_estimate)
        self._estimated: float | None = None
        row = QHBoxLayout()
        row.addWidget(self.tilt_axis, 1)
        row.addWidget(self.estimate)
        row.addWidget(self.use_estimate)
        form.addRow("tilt axis (deg)", row)

        self.normalise = QComboBox()
        for k, (value, label, tip) in enumerate(NORMALISE):
            self.normalise.addItem(label, value)
            self.normalise.setItemData(k, tip, Qt.ItemDataRole.ToolTipRole)
        # A saved choice is kept; none saved (or "" from older settings, which had no explicit
        # "none") follows the alignment mode: counts with an alignment, none without.
        chosen = saved.get("normalise") or ""
        self._normalise_chosen = self.normalise.findData(chosen) >= 0
        self._setting_default = False
        if self._normalise_chosen:
            self.normalise.setCurrentIndex(self.normalise.findData(chosen))
        form.addRow("per-tilt intensity", self.normalise)

        for widget, key in ((self.mode, "mode"), (self.rounds, "rounds"), (self.tilt_axis, "tilt_axis"),
                            (self.use_estimate, "use_estimate"), (self.normalise, "normalise")):
            widget.setToolTip(TIPS[key])
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.normalise.currentIndexChanged.connect(self._on_normalise)
        for signal in (self.rounds.valueChanged, self.tilt_axis.editingFinished):
            signal.connect(lambda *_: self.changed.emit())
        self._on_mode()

    @property
    def mode_key(self) -> str:
        return str(self.mode.currentData())

    def set_mode(self, key: str, rounds: int | None = None) -> None:
        """Choose a mode (``"none"``, ``"translation"``, ``"matching"``), as a user would."""
        index = self.mode.findData(key)
        if index < 0:
            raise ValueError(f"alignment mode {key!r}: one of {', '.join(k for k, _ in MODES)}")
        self.mode.setCurrentIndex(index)
        if rounds is not None:
            self.rounds.setValue(int(rounds))

    def set_normalise(self, value: str) -> None:
        """Choose a per-tilt normalisation (``"none"``, ``"total"``...), as a user would."""
        index = self.normalise.findData(value)
        if index < 0:
            raise ValueError(f"normalise {value!r}: one of {', '.join(v for v, _, _ in NORMALISE)}")
        self.normalise.setCurrentIndex(index)
        self._normalise_chosen = True  # also when it was already showing as the default

    def _show_normalise(self, value: str) -> None:
        """Show ``value`` without counting it as the user's choice."""
        self._setting_default = True
        try:
            self.normalise.setCurrentIndex(self.normalise.findData(value))
        finally:
            self._setting_default = False

    def _on_normalise(self, *_: Any) -> None:
        if not self._setting_default:
            self._normalise_chosen = True
        self.changed.emit()

    def _on_mode(self, *_: Any) -> None:
        aligned = self.mode_key != "none"
        self.rounds.setEnabled(self.mode_key == "matching")
        self.tilt_axis.setEnabled(aligned)
        self.use_estimate.setEnabled(aligned and self._estimated is not None)
        # Gains from the element maps exist only with an alignment.
        model = self.normalise.model()
        for value in ALIGNMENT_GAINS:
            item = model.item(self.normalise.findData(value))
            item.setEnabled(aligned)
        if not aligned and self.normalise.currentData() in ALIGNMENT_GAINS:
            # Not available without an alignment; back to following the mode's default.
            self._normalise_chosen = False
        if not self._normalise_chosen:
            self._show_normalise(DEFAULT_NORMALISE[aligned])
        self.changed.emit()

    def read_options(self) -> dict[str, Any]:
        """``align``, ``tilt_axis``, ``refine`` and ``normalise``, named as on the command line.

        Raises ``ValueError`` for a tilt axis that is neither ``auto`` nor an angle.
        """
        normalise = str(self.normalise.currentData())
        if self.mode_key == "none":
            if normalise in ALIGNMENT_GAINS:
                raise ValueError(f"per-tilt intensity {normalise!r} is estimated by the alignment: "
                                 "choose an alignment mode")
            return {"align": False, "tilt_axis": None, "refine": None, "normalise": normalise}
        refine = self.rounds.value() if self.mode_key == "matching" else 0
        return {"align": True, "tilt_axis": parse_tilt_axis(self.tilt_axis.text()), "refine": refine,
                "normalise": normalise}

    def settings(self) -> dict[str, Any]:
        """What the dock remembers between sessions."""
        return {"align_mode": self.mode_key, "refine": self.rounds.value(),
                "tilt_axis": self.tilt_axis.text().strip() or "auto",
                # "": no choice made, the next session follows the mode's default again.
                "normalise": str(self.normalise.currentData()) if self._normalise_chosen else ""}

    def show_result(self, provenance: Any) -> None:
        """Show the tilt axis an extraction used (estimated or given)."""
        rec = alignment_record(provenance)
        self._estimated = None
        if "tilt_axis_deg" in rec:
            angle = float(rec["tilt_axis_deg"])
            source = str(rec.get("tilt_axis_source") or "given")
            spread = rec.get("tilt_axis_spread_deg")
            text = f"{source} {angle:.2f}°" + (f" ± {float(spread):.1f}°" if spread is not None else "")
            warning = rec.get("tilt_axis_warning")
            self.estimate.setText(f"{text} (not determined)" if warning else text)
            self.estimate.setToolTip(str(warning or "the tilt axis the extraction used; ± is how far "
                                     "the estimate moves when one tilt is left out"))
            self._estimated = angle if source == "estimated" else None
        else:
            self.estimate.setText("")
        self.use_estimate.setEnabled(self._estimated is not None and self.mode_key != "none")

    def _keep_estimate(self) -> None:
        if self._estimated is not None:
            self.tilt_axis.setText(f"{self._estimated:.2f}")
            self.changed.emit()


class TiltTable(QTableWidget):
    """Per-tilt alignment table: angle, score, flagged, dy, dx, gain; flagged rows highlighted."""

    HEADERS = ("angle (deg)", "score", "flagged", "dy (px)", "dx (px)", "gain")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setHorizontalHeaderLabels(list(self.HEADERS))
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setMinimumHeight(120)
        self.setMaximumHeight(260)
        self.setToolTip(TIPS["table"])

    def show_rows(self, rows: Sequence[TiltRow]) -> None:
        self.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for k, r in enumerate(rows):
            dy, dx = r.shift if r.shift is not None else (None, None)
            cells = (f"{r.angle:g}", _float_text(r.score, ".3f"), "yes" if r.flagged else "no",
                     _float_text(dy, "+.2f"), _float_text(dx, "+.2f"), _float_text(r.gain, ".3f"))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                if r.flagged:
                    item.setBackground(QBrush(FLAGGED_COLOUR))
                    item.setFont(bold)
                    item.setToolTip("flagged: the other tilts predict this one far worse than the rest")
                self.setItem(k, col, item)

    def flagged_angles(self) -> list[float]:
        return [float(self.item(k, 0).text()) for k in range(self.rowCount())
                if self.item(k, 2).text() == "yes"]


class AlignmentResult(QWidget):
    """The Load dock's view of the last extraction's alignment: a summary line and the per-tilt table."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("What the alignment of the last extraction did.")
        self.table = TiltTable()
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self.setVisible(False)

    def show_series(self, angles: Sequence[float], provenance: Any) -> None:
        """Fill from an extracted series; hidden when it was not aligned."""
        rec = alignment_record(provenance)
        self.setVisible(bool(rec))
        self.summary.setText(f"Alignment: {alignment_summary(provenance)}" if rec else "")
        self.table.show_rows(tilt_rows(angles, provenance) if rec else [])


class DropTilts(QWidget):
    """The Reconstruct dock's tilt list: scores and flags from the alignment, tilts ticked to drop."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("The alignment of the ticked layers, from their provenance.")
        self.drop_flagged = QCheckBox("drop flagged tilts")
        self.drop_flagged.setToolTip(TIPS["drop_flagged"])
        self.drop_flagged.toggled.connect(self._on_drop_flagged)
        self.tilt_list = QListWidget()
        self.tilt_list.setMaximumHeight(140)
        self.tilt_list.setToolTip(TIPS["tilt_list"])
        self.tilt_list.itemChanged.connect(lambda *_: self.changed.emit())
        layout.addWidget(self.summary)
        layout.addWidget(self.drop_flagged)
        layout.addWidget(self.tilt_list)
        self._key: tuple[Any, ...] = ()
        self.rows: list[TiltRow] = []

    def set_tilts(self, angles: Sequence[float], provenance: Any) -> None:
        """List ``angles`` with their alignment rows; ticks survive as long as the tilts are the same."""
        key = (tuple(float(a) for a in angles), repr(alignment_record(provenance).get("scores")))
        if key == self._key:
            return
        self._key = key
        self.rows = tilt_rows(angles, provenance)
        flagged = [r for r in self.rows if r.flagged]
        self.summary.setText(f"Alignment: {alignment_summary(provenance)}" if angles else "")
        self.tilt_list.blockSignals(True)
        self.tilt_list.clear()
        for r in self.rows:
            score = f"  score {r.score:.3f}" if r.score is not None else ""
            item = QListWidgetItem(f"{r.angle:g}°{score}{'  flagged' if r.flagged else ''}")
            item.setData(Qt.ItemDataRole.UserRole, r.angle)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            if r.flagged:
                item.setBackground(QBrush(FLAGGED_COLOUR))
            self.tilt_list.addItem(item)
        self.tilt_list.blockSignals(False)
        self.drop_flagged.blockSignals(True)
        self.drop_flagged.setChecked(False)
        self.drop_flagged.blockSignals(False)
        self.drop_flagged.setEnabled(bool(flagged))
        self.drop_flagged.setText(f"drop flagged tilts ({', '.join(f'{r.angle:g}°' for r in flagged)})"
                                  if flagged else "drop flagged tilts (none flagged)")
        self.changed.emit()

    def _on_drop_flagged(self, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        self.tilt_list.blockSignals(True)
        for k, r in enumerate(self.rows):
            if r.flagged:
                self.tilt_list.item(k).setCheckState(state)
        self.tilt_list.blockSignals(False)
        self.changed.emit()

    def flagged_angles(self) -> list[float]:
        return [r.angle for r in self.rows if r.flagged]

    def dropped_angles(self) -> list[float]:
        """Angles (degrees) of the ticked tilts."""
        return [float(self.tilt_list.item(k).data(Qt.ItemDataRole.UserRole))
                for k in range(self.tilt_list.count())
                if self.tilt_list.item(k).checkState() == Qt.CheckState.Checked]
