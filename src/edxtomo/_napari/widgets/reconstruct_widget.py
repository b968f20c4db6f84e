"""Dock widget "Reconstruct": element layers, tilt range, algorithm, live run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...devices import DeviceError, resolve_device
from ...recon import available_methods, method_function
from ...recon.control import STOPPED_BY_USER
from ...runner import RunRecord, clean_params
from ...tiltseries import TiltSeriesError
from .. import settings
from ..layers import is_tilt_layer, layer_meta, method_label, series_from_layers, tilt_summary
from ..params_form import ParamsForm
from .loss_plot import LossPlot
from .run_controller import RunController

if TYPE_CHECKING:
    import napari

SECTION = "reconstruct"


def usable_methods() -> list[str]:
    """Methods whose module imports here (DIP and tomopy are optional)."""
    out = []
    for m in available_methods():
        try:
            method_function(m)
        except (ImportError, AttributeError):
            continue
        out.append(m)
    return out


class ReconstructWidget(QWidget):
    """Choose tilt-series layers and a method, start/stop, watch volumes and losses."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._saved = settings.load(SECTION)
        self._params_by_method: dict[str, dict[str, Any]] = dict(self._saved.get("params", {}))
        self._angles_key: tuple[float, ...] = ()
        self.controller = RunController(napari_viewer, parent=self)
        self.controller.updated.connect(self._on_update)
        self.controller.progressed.connect(self._on_progress)
        self.controller.finished.connect(self._on_finished)
        self._build()
        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.refresh_layers()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Element tilt series:"))
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(110)
        self.layer_list.itemChanged.connect(self._update_tilt_summary)
        layout.addWidget(self.layer_list)

        form = QFormLayout()
        row = QHBoxLayout()
        self.tilt_min, self.tilt_max = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.tilt_min, self.tilt_max):
            box.setRange(-89.9, 89.9)
            box.setDecimals(1)
            box.setSuffix(" °")
            box.valueChanged.connect(self._update_tilt_summary)
            row.addWidget(box)
        form.addRow("tilt range", row)
        self.tilt_label = QLabel("")
        self.tilt_label.setWordWrap(True)
        form.addRow(self.tilt_label)
        self.method_box = QComboBox()
        for m in usable_methods():
            self.method_box.addItem(method_label(m), m)
        form.addRow("algorithm", self.method_box)
        layout.addLayout(form)

        self.params_host = QVBoxLayout()
        layout.addLayout(self.params_host)
        self.form: ParamsForm | None = None
        saved_method = self._saved.get("method")
        idx = self.method_box.findData(saved_method) if saved_method else -1
        if idx < 0:
            idx = max(self.method_box.findData("tv"), 0)
        self.method_box.setCurrentIndex(idx)
        self.method_box.currentIndexChanged.connect(self._on_method_changed)
        self._on_method_changed()

        buttons = QHBoxLayout()
        self.start_btn, self.stop_btn = QPushButton("Start"), QPushButton("Stop")
        self.start_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.stop_btn.setEnabled(False)
        buttons.addWidget(self.start_btn)
        buttons.addWidget(self.stop_btn)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m iterations")
        layout.addWidget(self.progress_bar)
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.plot = LossPlot()
        layout.addWidget(self.plot)
        layout.addStretch(1)

    @property
    def method(self) -> str:
        return str(self.method_box.currentData())

    def _on_method_changed(self) -> None:
        if self.form is not None:
            self._params_by_method[self.form.method] = self.form.values()
            self.params_host.removeWidget(self.form.native)
            self.form.native.deleteLater()
        self.form = ParamsForm(self.method, self._params_by_method.get(self.method))
        self.form.changed.connect(self.save_settings)
        self.params_host.addWidget(self.form.native)
        self.save_settings()

    def save_settings(self, *_: Any) -> None:
        if self.form is not None:
            self._params_by_method[self.form.method] = self.form.values()
        settings.save(SECTION, {"method": self.method, "params": self._params_by_method})

    # --------------------------------------------------------------- layers
    def tilt_layers(self) -> list[Any]:
        return [layer for layer in self.viewer.layers if is_tilt_layer(layer)]

    def checked_layers(self) -> list[Any]:
        names = {self.layer_list.item(i).text() for i in range(self.layer_list.count())
                 if self.layer_list.item(i).checkState() == Qt.CheckState.Checked}
        return [layer for layer in self.tilt_layers() if layer.name in names]

    def refresh_layers(self, *_: Any) -> None:
        """List the tilt-series layers; new ones start checked."""
        before = {self.layer_list.item(i).text(): self.layer_list.item(i).checkState()
                  for i in range(self.layer_list.count())}
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for layer in self.tilt_layers():
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(before.get(layer.name, Qt.CheckState.Checked))
            self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)
        self._update_tilt_summary()

    def _angles(self) -> list[float]:
        layers = self.checked_layers()
        return list(layer_meta(layers[0])["angles"]) if layers else []

    def _update_tilt_summary(self, *_: Any) -> None:
        angles = self._angles()
        key = tuple(angles)
        if key and key != self._angles_key:
            # New data: start from its full range.
            self._angles_key = key
            for box, value in ((self.tilt_min, min(angles)), (self.tilt_max, max(angles))):
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)
        self.tilt_label.setText(
            tilt_summary(angles, self.tilt_min.value(), self.tilt_max.value()) if angles
            else "no tilt-series layer: use 'Load EDX tilt series' or File > Open Sample")

    # ------------------------------------------------------------------ run
    def build_record(self) -> RunRecord:
        """The run the current settings describe (raises ValueError with the reason)."""
        layers = self.checked_layers()
        series = series_from_layers(layers)
        lo, hi = self.tilt_min.value(), self.tilt_max.value()
        if lo > series.angles.min() + 1e-6 or hi < series.angles.max() - 1e-6:
            series = series.select_tilt_range(lo, hi)
        assert self.form is not None
        params = clean_params(self.method, self.form.values())
        if "device" in params:
            resolve_device(params["device"])
        meta = layer_meta(layers[0])
        return RunRecord(method=self.method, params=params, series=series,
                         inputs=list(meta.get("inputs") or []),
                         read_options=dict(meta.get("read_options") or {}), tilt_range=(lo, hi))

    def start(self) -> None:
        if self.controller.running:
            show_error("A reconstruction is already running: stop it before starting another.")
            return
        try:
            record = self.build_record()
            self.controller.start(record)
        except (ValueError, TiltSeriesError, DeviceError, RuntimeError) as exc:
            show_error(f"Cannot start: {exc}")
            return
        self.save_settings()
        self.start_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.progress_bar.setRange(0, int(record.params.get("iterations", 0)))
        self.progress_bar.setValue(0)
        self.plot.clear()
        self.progress_bar.setFormat("%v / %m iterations")
        self.status.setText(f"{method_label(record.method)} starting on "
                            f"{', '.join(record.series.elements)}…")

    def stop(self) -> None:
        self.controller.stop()
        self.stop_btn.setEnabled(False)
        self.status.setText("stopping after the current iteration…")

    def _on_progress(self, iteration: int, total: int, seconds_left: float) -> None:
        # The bar carries the progress text: it changes every tick, and a bar
        # repaints itself without re-laying out the dock (a wrapped label would).
        # QProgressBar.setValue repaints synchronously; with updates off the
        # changes are painted once, in the same pass as the 3D canvas.
        left = f", ~{_duration(seconds_left)} left" if seconds_left >= 0 else ""
        bar = self.progress_bar
        bar.setUpdatesEnabled(False)
        bar.setFormat(f"%v / %m iterations{left}")
        bar.setRange(0, total)
        bar.setValue(iteration)
        bar.setUpdatesEnabled(True)

    def _on_update(self, snap: Any) -> None:
        if snap.iteration > self.progress_bar.value():  # a method without progress between snapshots
            self._on_progress(snap.iteration, snap.total, -1.0)
        losses = ", ".join(f"{k} {v:.3g}" for k, v in snap.losses.items())
        self.status.setText(f"iteration {snap.iteration}, {snap.elapsed_s:.0f} s: {losses}")
        if self.controller.record is not None:
            self.plot.show_history(self.controller.record.history)

    def _on_finished(self, record: RunRecord | None) -> None:
        self.start_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        if record is None:
            return
        if record.history:
            self.plot.show_history(record.history)
        done = record.last.iteration if record.last else 0
        text = f"{method_label(record.method)} {record.status} at iteration {done}"
        best = record.last.info.get("best_iterations") if record.last else None
        if best and record.last.stopped != STOPPED_BY_USER:
            text += "; shown: each element's best held-out iterate (" + ", ".join(
                f"{e} {it}" for e, it in best.items()) + ")"
        self.status.setText(text + (f": {record.error}" if record.error else ""))


def _duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2.5 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
