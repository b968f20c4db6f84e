"""Dock widget "Load EDX tilt series": inputs, the tilt → angle table, lines, binning, Extract."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_info
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
)

from ...io.angle_sources import natural_key
from ...io.vocabulary import file_dialog_filter
from ...runner import read_inputs
from .. import settings
from ..inputs import AngleTable, Detected, detect, parse_lines, stored_angle_file
from ..layers import current_tilt_text, series_to_layer_data
from ._dock import DockBase, error_text
from .alignment_panel import AlignmentOptions, AlignmentResult

if TYPE_CHECKING:
    import napari

SECTION = "load"
SEP = " ; "

ABOUT = ("Reads a tilt series (spectrum images, one file per tilt, or a folder of element-map "
         "stacks), integrates the X-ray lines into element maps and adds one layer per element "
         "(axes tilt, y, x; scale in nm). Check the angle of every tilt in the table before "
         "extracting.")

TIPS = {
    "paths": "Spectrum images (.bcf, .emd, .hspy, ...; one per tilt) or one folder of them, or a "
             "folder of <Element>.tif stacks with angles.txt. Several files are separated by ' ; '.",
    "files": "Pick the spectrum images of the tilt series (one file per tilt).",
    "folder": "Pick a folder of spectrum images or of element-map stacks.",
    "table": "One row per tilt, in file order. Angle in degrees (typically -70..+70); "
             "double-click to correct it. Edited rows say 'edited' and are recorded with the run.",
    "reset": "Forget the edits: use the detected angles again.",
    "lines": "X-ray lines to integrate, exspy names such as Fe_Ka, Si_Ka (comma separated); "
             "empty: one line per element listed in the files.",
    "bin": "Sum b x b pixel blocks (counts are kept, the pixel size grows by b). Typical 1-4; "
           "2 halves the map size and makes reconstruction about 8x cheaper.",
    "skip_bad": "Go on without spectrum files that are damaged or truncated (their tilts are left "
                "out and listed in the provenance); off: a damaged file stops the extraction.",
    "extract": "Read the files on a background thread and add one layer per element.",
}


class _Progress(QObject):
    """Carries ``progress(done, total, message)`` from the worker thread to the bar."""

    changed = Signal(int, int, str)


class LoadWidget(DockBase):
    """Choose spectrum images or an element-map folder and extract one layer per element."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(ABOUT)
        self.viewer = napari_viewer
        self.detected = Detected()
        self.table_model = AngleTable()
        self.worker: Any = None
        self.detect_worker: Any = None
        saved = settings.load(SECTION)
        layout = self.body
        row = QHBoxLayout()
        self.paths = QLineEdit(saved.get("paths", ""))
        self.paths.setPlaceholderText("spectrum images or an element-map folder")
        self.paths.editingFinished.connect(self.inspect)
        files_btn, folder_btn = QPushButton("Files…"), QPushButton("Folder…")
        files_btn.clicked.connect(self._choose_files)
        folder_btn.clicked.connect(self._choose_folder)
        for w, key in ((self.paths, "paths"), (files_btn, "files"), (folder_btn, "folder")):
            w.setToolTip(TIPS[key])
            row.addWidget(w)
        layout.addLayout(row)

        self.angle_table = QTableWidget(0, 3)
        self.angle_table.setHorizontalHeaderLabels(["tilt (file)", "angle (deg)", "source"])
        self.angle_table.verticalHeader().setVisible(False)
        header = self.angle_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.angle_table.setMinimumHeight(120)
        self.angle_table.setMaximumHeight(220)
        self.angle_table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                         | QAbstractItemView.EditTrigger.EditKeyPressed
                                         | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.angle_table.setToolTip(TIPS["table"])
        self.angle_table.itemChanged.connect(self._on_angle_edited)
        layout.addWidget(QLabel("Tilt angles (double-click an angle to correct it):"))
        layout.addWidget(self.angle_table)
        src_row = QHBoxLayout()
        self.angles_source = QLabel("")
        self.angles_source.setWordWrap(True)
        self.reset_btn = QPushButton("Use detected")
        self.reset_btn.setToolTip(TIPS["reset"])
        self.reset_btn.clicked.connect(self.reset_angles)
        src_row.addWidget(self.angles_source, 1)
        src_row.addWidget(self.reset_btn)
        layout.addLayout(src_row)

        form = QFormLayout()
        self.lines = QLineEdit(saved.get("lines", ""))
        self.lines.setPlaceholderText("e.g. Fe_Ka, Si_Ka (empty: all lines in the files)")
        self.lines.setToolTip(TIPS["lines"])
        form.addRow("X-ray lines", self.lines)
        self.bin = QSpinBox()
        self.bin.setRange(1, 32)
        self.bin.setValue(int(saved.get("bin", 1)))
        self.bin.setToolTip(TIPS["bin"])
        form.addRow("binning", self.bin)
        self.skip_bad = QCheckBox("skip damaged files")
        self.skip_bad.setChecked(bool(saved.get("skip_bad", False)))
        self.skip_bad.setToolTip(TIPS["skip_bad"])
        form.addRow(self.skip_bad)
        layout.addLayout(form)
        self.alignment = AlignmentOptions(saved)
        layout.addWidget(self.alignment)

        self.extract_btn = QPushButton("Extract")
        self.extract_btn.setToolTip(TIPS["extract"])
        self.extract_btn.clicked.connect(self.extract)
        layout.addWidget(self.extract_btn)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%p%")
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        self.current_tilt = QLabel("")
        self.current_tilt.setToolTip("The tilt shown by the 'tilt (deg)' slider of the viewer.")
        layout.addWidget(self.current_tilt)
        self.alignment_result = AlignmentResult()
        layout.addWidget(self.alignment_result)
        layout.addStretch(1)
        for signal in (self.lines.editingFinished, self.bin.valueChanged, self.alignment.changed,
                       self.skip_bad.toggled):
            signal.connect(self.settings_changed)
        self._progress = _Progress()
        self._progress.changed.connect(self._on_progress)
        self.viewer.dims.events.current_step.connect(self._show_current_tilt)
        self._show_table()

    # --------------------------------------------------------------- inputs
    def input_paths(self) -> list[str]:
        return [p.strip() for p in self.paths.text().split(SEP.strip()) if p.strip()]

    def set_inputs(self, paths: list[str]) -> None:
        self.paths.setText(SEP.join(paths))
        self.inspect()

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Spectrum images", str(Path(self.input_paths()[0]).parent) if self.input_paths()
            else "", file_dialog_filter())
        if files:
            self.set_inputs(files)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Tilt-series folder")
        if folder:
            self.set_inputs([folder])

    def inspect(self) -> None:
        """Detect the tilts, their angles (with the source) and lines on a worker thread."""
        paths = self.input_paths()
        self.detected = Detected()
        self.table_model = AngleTable()
        self._show_table()
        self.angles_source.setText("reading the file headers…")
        self.set_status("reading the file headers…")
        worker = create_worker(detect, paths, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._show_detected)
        worker.errored.connect(self._on_detect_error)
        worker.finished.connect(lambda: setattr(self, "detect_worker", None))
        self.detect_worker = worker
        worker.start()

    def _on_detect_error(self, exc: BaseException) -> None:
        self.angles_source.setText("")
        self.set_status(f"{error_text(exc)} (reading the inputs failed)")

    def _show_detected(self, d: Detected) -> None:
        self.detected = d
        self.table_model = AngleTable.from_detected(d)
        self._show_table()
        if d.lines and not self.lines.text().strip():
            self.lines.setText(", ".join(d.lines))
        self.set_status(d.kind + (f"; {d.note}" if d.note else ""))

    # --------------------------------------------------------- angle table
    def _show_table(self) -> None:
        model = self.table_model
        table = self.angle_table
        table.blockSignals(True)
        table.setRowCount(len(model))
        for k, tilt in enumerate(model.tilts):
            angle = model.angle(k)
            source = model.row_source(k)
            # The cell names the source; the explanation in brackets goes to its tooltip,
            # so rows stay one line high and the dock narrow.
            cells = (tilt, "" if angle is None else f"{angle:g}", source.split(" (")[0])
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 2:
                    item.setToolTip(source)
                if col != 1:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                table.setItem(k, col, item)
        table.blockSignals(False)
        self.angles_source.setText(model.summary())
        self.reset_btn.setEnabled(model.edited)

    def _on_angle_edited(self, item: QTableWidgetItem) -> None:
        if item.column() != 1:
            return
        text = item.text().strip().replace("°", "")
        try:
            value = float(text) if text else None
        except ValueError:
            self.set_status(f"'{item.text()}' is not an angle in degrees "
                            f"({self.table_model.tilts[item.row()]})")
            value = self.table_model.angle(item.row())
        self.table_model.set_angle(item.row(), value)
        self._show_table()

    def set_angles(self, angles: list[float]) -> None:
        """Type ``angles`` into the table, one per row in file order (as a user would)."""
        if len(angles) != len(self.table_model):
            raise ValueError(f"{len(angles)} angles for {len(self.table_model)} tilts")
        for k, a in enumerate(angles):
            self.angle_table.item(k, 1).setText(f"{a:g}")

    def reset_angles(self) -> None:
        self.table_model.edits.clear()
        self._show_table()
        self.set_status("using the detected angles")

    def read_options(self) -> dict[str, Any]:
        """``read_series`` options, in the sidecar's names (``--config`` reuses them).

        Only edited angles are passed on (as an angles file in file order);
        without an edit the reader detects the same angles again. The
        alignment box gives ``align``, ``tilt_axis``, ``refine`` and ``normalise``.
        """
        angles_file = None
        if self.table_model.edited:
            angles_file = str(stored_angle_file(self.table_model.angles()))
        return {"lines": parse_lines(self.lines.text()), "bin": self.bin.value(),
                **self.alignment.read_options(), "angles": angles_file,
                "skip_bad": self.skip_bad.isChecked()}

    def settings_changed(self, *_: Any) -> None:
        settings.save(SECTION, {"paths": self.paths.text(), "lines": self.lines.text(),
                                "bin": self.bin.value(), **self.alignment.settings(),
                                "skip_bad": self.skip_bad.isChecked()})

    # -------------------------------------------------------------- extract
    def extract(self) -> Any:
        """Read on a worker thread; adds one layer per element when done."""
        if self.worker is not None:
            self.report_error("extraction", "an extraction is already running")
            return None
        inputs = self.input_paths()
        try:
            if not inputs:
                raise ValueError("no input chosen: pick files or a folder")
            opts = self.read_options()
        except (ValueError, OSError) as exc:
            self.report_error("extraction", exc)
            return None
        self.settings_changed()
        emit = self._progress.changed.emit

        def job():
            # The same typed read options as the command line and the sidecar.
            series = read_inputs(inputs, opts, progress=lambda d, t, m: emit(int(d), int(t), str(m)))
            return series_to_layer_data(series, inputs=inputs, read_options=opts), series

        # Errors go to our own handler (status + notification), not re-raised in the event loop.
        self.worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(lambda exc: self.report_error("extraction", exc))
        self.worker.finished.connect(self._on_finished)
        self.extract_btn.setEnabled(False)
        self.progress_bar.setRange(0, 0)
        self.set_status("extracting…")
        self.worker.start()
        return self.worker

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.set_status(message)

    def _on_done(self, result: tuple[list, Any]) -> None:
        layer_data, series = result
        for data, kwargs, _ in layer_data:
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            self.viewer.add_image(data, **kwargs)
        if not len(self.table_model):
            self._table_from_series(series)
        self.alignment.show_result(series.provenance)
        self.alignment_result.show_series(series.angles, series.provenance)
        self.set_status(f"loaded {series}")
        self._show_current_tilt()
        show_info(f"Loaded {series}")

    def _table_from_series(self, series: Any) -> None:
        """Rows from what the reader found, when nothing was detected before (file order)."""
        read = (series.provenance or {}).get("read", {})
        labels = list(read.get("tilts") or [])
        if len(labels) != series.n_angles:
            labels = [f"tilt {k + 1}" for k in range(series.n_angles)]
        pairs = sorted(zip(labels, (float(a) for a in series.angles), strict=True),
                       key=lambda p: natural_key(p[0]))
        source = str(read.get("angles_source") or "read at extraction")
        self.table_model = AngleTable(tilts=[p[0] for p in pairs], detected=[p[1] for p in pairs],
                                      source=source)
        self._show_table()

    def _on_finished(self) -> None:
        self.worker = None
        self.extract_btn.setEnabled(True)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1 if "loaded" in self.status.text() else 0)

    def _show_current_tilt(self, *_: Any) -> None:
        self.current_tilt.setText(current_tilt_text(self.viewer))
