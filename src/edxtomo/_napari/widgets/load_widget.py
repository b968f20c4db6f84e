"""Dock widget "Load EDX tilt series": inputs, angles, lines, binning, alignment, Extract."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...io import read_series
from .. import settings
from ..inputs import Detected, detect, parse_angles, parse_lines, stored_angle_file
from ..layers import series_to_layer_data

if TYPE_CHECKING:
    import napari

SECTION = "load"
SEP = " ; "


class _Progress(QObject):
    """Carries ``progress(done, total, message)`` from the worker thread to the bar."""

    changed = Signal(int, int, str)


class LoadWidget(QWidget):
    """Choose spectrum images or an element-map folder and extract one layer per element."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.detected = Detected()
        self.worker: Any = None
        self.detect_worker: Any = None
        saved = settings.load(SECTION)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.paths = QLineEdit(saved.get("paths", ""))
        self.paths.setPlaceholderText("spectrum images or an element-map folder")
        self.paths.editingFinished.connect(self.inspect)
        files_btn, folder_btn = QPushButton("Files…"), QPushButton("Folder…")
        files_btn.clicked.connect(self._choose_files)
        folder_btn.clicked.connect(self._choose_folder)
        row.addWidget(self.paths)
        row.addWidget(files_btn)
        row.addWidget(folder_btn)
        layout.addLayout(row)

        form = QFormLayout()
        self.angles = QLineEdit()
        self.angles.setPlaceholderText("degrees, e.g. -40, -30, ... (empty: from the input)")
        form.addRow("tilt angles", self.angles)
        self.angles_source = QLabel("")
        self.angles_source.setWordWrap(True)
        form.addRow("angle source", self.angles_source)
        self.lines = QLineEdit(saved.get("lines", ""))
        self.lines.setPlaceholderText("e.g. Fe_Ka, Si_Ka (empty: all lines in the files)")
        form.addRow("X-ray lines", self.lines)
        self.bin = QSpinBox()
        self.bin.setRange(1, 32)
        self.bin.setValue(int(saved.get("bin", 1)))
        form.addRow("binning", self.bin)
        self.align = QCheckBox("align tilts (same shifts for all elements)")
        self.align.setChecked(bool(saved.get("align", False)))
        form.addRow(self.align)
        layout.addLayout(form)

        self.extract_btn = QPushButton("Extract")
        self.extract_btn.clicked.connect(self.extract)
        layout.addWidget(self.extract_btn)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%p%")
        layout.addWidget(self.progress_bar)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        for signal in (self.lines.editingFinished, self.bin.valueChanged, self.align.toggled):
            signal.connect(self.settings_changed)
        self._progress = _Progress()
        self._progress.changed.connect(self._on_progress)

    # --------------------------------------------------------------- inputs
    def input_paths(self) -> list[str]:
        return [p.strip() for p in self.paths.text().split(SEP.strip()) if p.strip()]

    def set_inputs(self, paths: list[str]) -> None:
        self.paths.setText(SEP.join(paths))
        self.inspect()

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Spectrum images", str(Path(self.input_paths()[0]).parent) if self.input_paths()
            else "", "Spectrum images (*.bcf *.emd *.hspy *.spx *.msa);;All files (*)")
        if files:
            self.set_inputs(files)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Tilt-series folder")
        if folder:
            self.set_inputs([folder])

    def inspect(self) -> None:
        """Detect angles (with their source) and lines on a worker thread."""
        paths = self.input_paths()
        self.detected = Detected()
        self.angles_source.setText("reading the file headers…")
        worker = create_worker(detect, paths, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._show_detected)
        worker.errored.connect(lambda exc: self.angles_source.setText(str(exc)))
        worker.finished.connect(lambda: setattr(self, "detect_worker", None))
        self.detect_worker = worker
        worker.start()

    def _show_detected(self, d: Detected) -> None:
        self.detected = d
        self.angles.setText(", ".join(f"{a:g}" for a in d.angles))
        self.angles_source.setText(d.angles_source + (f" ({d.note})" if d.note else ""))
        if d.lines and not self.lines.text().strip():
            self.lines.setText(", ".join(d.lines))
        self.status.setText(d.kind)

    def read_options(self) -> dict[str, Any]:
        """``read_series`` options, in the sidecar's names (``--config`` reuses them)."""
        angles = parse_angles(self.angles.text())
        angles_file = None
        if angles and angles != self.detected.angles:
            angles_file = str(stored_angle_file(angles))
        return {"lines": parse_lines(self.lines.text()), "bin": self.bin.value(),
                "align": self.align.isChecked(), "angles": angles_file}

    def settings_changed(self, *_: Any) -> None:
        settings.save(SECTION, {"paths": self.paths.text(), "lines": self.lines.text(),
                                "bin": self.bin.value(), "align": self.align.isChecked()})

    # -------------------------------------------------------------- extract
    def extract(self) -> Any:
        """Read on a worker thread; adds one layer per element when done."""
        if self.worker is not None:
            show_error("An extraction is already running.")
            return None
        inputs = self.input_paths()
        try:
            opts = self.read_options()
        except ValueError as exc:
            show_error(f"Cannot extract: {exc}")
            return None
        self.settings_changed()
        emit = self._progress.changed.emit

        def job():
            series = read_series(inputs, angles_file=opts["angles"], lines=opts["lines"],
                                 bin_factor=opts["bin"], align=opts["align"],
                                 progress=lambda d, t, m: emit(int(d), int(t), str(m)))
            return series_to_layer_data(series, inputs=inputs, read_options=opts), series

        # Errors go to our own handler (a notification), not re-raised in the event loop.
        self.worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(lambda exc: show_error(f"Extraction failed: {exc}"))
        self.worker.finished.connect(self._on_finished)
        self.extract_btn.setEnabled(False)
        self.progress_bar.setRange(0, 0)
        self.status.setText("extracting…")
        self.worker.start()
        return self.worker

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.status.setText(message)

    def _on_done(self, result: tuple[list, Any]) -> None:
        layer_data, series = result
        for data, kwargs, _ in layer_data:
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            self.viewer.add_image(data, **kwargs)
        if not self.detected.angles:
            # Angles read at extraction count as detected, not as an edit.
            self.detected.angles = [float(a) for a in series.angles]
        self.angles.setText(", ".join(f"{a:g}" for a in series.angles))
        self.status.setText(f"{series}")
        show_info(f"Loaded {series}")

    def _on_finished(self) -> None:
        self.worker = None
        self.extract_btn.setEnabled(True)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
