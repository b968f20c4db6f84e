"""Dock widget "Reconstruct": element layers, tilt range, algorithm, live run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_warning
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
)

from ...batch.from_setup import SweepSetup
from ...devices import DeviceError, resolve_device
from ...recon import available_methods
from ...recon.control import STOPPED_BY_USER
from ...recon.memory import estimate as memory_estimate
from ...runner import RunRecord, clean_params
from ...tiltseries import TiltSeriesError
from .. import settings
from ..estimates import Estimate, duration
from ..layers import (
    drop_tilts,
    element_legend,
    is_tilt_layer,
    layer_meta,
    method_label,
    series_from_layers,
    tilt_summary,
    volume_shape_text,
)
from ..params_form import ParamsForm
from ._dock import DockBase
from .alignment_panel import DropTilts
from .loss_plot import LossPlot
from .run_controller import RunController
from .sweep_panel import SweepPanel

if TYPE_CHECKING:
    import napari

SECTION = "reconstruct"

ABOUT = ("Reconstructs one 3D volume per element from the ticked tilt-series layers. Pick the "
         "tilts and the algorithm, press Start and watch the volumes in 3D; Stop keeps the "
         "volumes shown. The run's settings are recorded for Export and the command line.")

TIPS = {
    "layers": "Tilt-series layers (one per element) to reconstruct together; they must share "
              "their tilt angles. Elements reconstructed together share one network (DIPm-TV).",
    "tilt_min": "Lowest tilt used, in degrees (typically -70..-30). Tilts outside the range are "
                "left out, e.g. a damaged or shadowed high tilt.",
    "tilt_max": "Highest tilt used, in degrees (typically 30..70).",
    "method": "SIRT: fast, blurry baseline. TV: total variation (compressed sensing), seconds to "
              "minutes. DIP-TV / DIPm-TV: deep image prior with TV, best along z but minutes to "
              "hours on a CPU.",
    "start": "Start the reconstruction on a background thread (one run at a time).",
    "stop": "End the run after the current iteration and keep its volumes.",
}


def usable_methods() -> list[str]:
    """Methods whose dependencies import here (the registry decides; tomopy is optional)."""
    return available_methods()


class ReconstructWidget(DockBase):
    """Choose tilt-series layers and a method, start/stop, watch volumes and losses."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(ABOUT)
        self._warned = False
        self._estimate: Estimate | None = None
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
        layout = self.body
        layout.addWidget(QLabel("Element tilt series:"))
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(110)
        self.layer_list.setToolTip(TIPS["layers"])
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
        self.tilt_min.setToolTip(TIPS["tilt_min"])
        self.tilt_max.setToolTip(TIPS["tilt_max"])
        form.addRow("tilt range", row)
        self.tilt_label = QLabel("")
        self.tilt_label.setWordWrap(True)
        form.addRow(self.tilt_label)
        self.drop_tilts = DropTilts()
        self.drop_tilts.changed.connect(self._update_tilt_summary)
        form.addRow(self.drop_tilts)
        self.method_box = QComboBox()
        for m in usable_methods():
            self.method_box.addItem(method_label(m), m)
        self.method_box.setToolTip(TIPS["method"])
        form.addRow("algorithm", self.method_box)
        layout.addLayout(form)

        self.params_host = QVBoxLayout()
        layout.addLayout(self.params_host)
        self.shape_label = QLabel("")
        self.shape_label.setWordWrap(True)
        self.shape_label.setToolTip("The volume this run will produce: depth nz (along the beam "
                                    "at 0 deg) x the map size, at the (binned) pixel size.")
        layout.addWidget(self.shape_label)
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
        self.start_btn.setToolTip(TIPS["start"])
        self.stop_btn.setToolTip(TIPS["stop"])
        self.stop_btn.setEnabled(False)
        buttons.addWidget(self.start_btn)
        buttons.addWidget(self.stop_btn)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self._bar_unit = "iterations"
        self.progress_bar.setFormat(f"%v / %m {self._bar_unit}")
        layout.addWidget(self.progress_bar)
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.estimate.setToolTip("Measured on this run's iterations so far.")
        layout.addWidget(self.estimate)
        self.set_status("idle")
        layout.addWidget(self.status)
        self.legend = QLabel("")
        self.legend.setToolTip("Colour of each element's volume in the 3D view.")
        layout.addWidget(self.legend)
        self.plot = LossPlot()
        layout.addWidget(self.plot)
        self.sweep = SweepPanel(self.viewer, self.sweep_setup, self.report_error)
        layout.addWidget(self.sweep)
        layout.addStretch(1)

    @property
    def method(self) -> str:
        return str(self.method_box.currentData())

    def _on_method_changed(self) -> None:
        if self.form is not None:
            self._params_by_method[self.form.method] = self.form.raw_values()
            self.params_host.removeWidget(self.form.native)
            # Unparented now, not at the deferred delete: until then the old form stayed drawn
            # over the dock wherever the event loop had not yet run (seen in a screenshot).
            self.form.native.setParent(None)
            self.form.native.deleteLater()
        self.form = ParamsForm(self.method, self._params_by_method.get(self.method))
        self.form.changed.connect(self.save_settings)
        self.form.changed.connect(self._update_shape)
        self.params_host.addWidget(self.form.native)
        self.save_settings()
        self._update_shape()

    def save_settings(self, *_: Any) -> None:
        if self.form is not None:
            self._params_by_method[self.form.method] = self.form.raw_values()
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
        layers = self.checked_layers()
        self.drop_tilts.set_tilts(angles, layer_meta(layers[0]).get("provenance") if layers else None)
        key = tuple(angles)
        if key and key != self._angles_key:
            # New data: start from its full range.
            self._angles_key = key
            for box, value in ((self.tilt_min, min(angles)), (self.tilt_max, max(angles))):
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)
        if angles:
            text = tilt_summary(angles, self.tilt_min.value(), self.tilt_max.value(),
                                self.drop_tilts.dropped_angles())
        elif self.tilt_layers():
            text = "no tilt-series layer ticked: tick the elements to reconstruct above"
        else:
            text = "no tilt-series layer: use 'Load EDX tilt series' or File > Open Sample"
        self.tilt_label.setText(text)
        self._update_shape()

    def _update_shape(self, *_: Any) -> None:
        """Show the volume the current settings give (nz from the form, else the map width)."""
        if not hasattr(self, "shape_label"):
            return
        layers = self.checked_layers()
        if not layers or self.form is None:
            self.shape_label.setText("")
            return
        _, ny, nx = layers[0].data.shape
        try:
            nz = self.form.values().get("nz")
        except ValueError:
            nz = None  # a half-typed entry: show the default depth until it parses
        ps = float(layer_meta(layers[0]).get("pixel_size_nm") or 1.0)
        text = volume_shape_text(ny, nx, nz if nz else None, ps)
        try:
            params = clean_params(self.method, self.form.values())
            est = memory_estimate(self.method, layers[0].data.shape, len(layers), params)
            text += f"; memory {est.describe()}"
        except ValueError:
            pass  # a half-typed entry: the estimate follows once it parses
        self.shape_label.setText(text)

    # ------------------------------------------------------------------ run
    def build_record(self) -> RunRecord:
        """The run the current settings describe (raises ValueError with the reason)."""
        layers = self.checked_layers()
        series = series_from_layers(layers)
        lo, hi = self.tilt_min.value(), self.tilt_max.value()
        if lo > series.angles.min() + 1e-6 or hi < series.angles.max() - 1e-6:
            series = series.select_tilt_range(lo, hi)
        series = drop_tilts(series, self.drop_tilts.dropped_angles(), "dropped in the Reconstruct dock")
        assert self.form is not None
        params = clean_params(self.method, self.form.values())
        if "device" in params:
            resolve_device(params["device"])
        meta = layer_meta(layers[0])
        return RunRecord(method=self.method, params=params, series=series,
                         inputs=list(meta.get("inputs") or []),
                         read_options=dict(meta.get("read_options") or {}), tilt_range=(lo, hi),
                         time_limit=self.form.time_limit())

    def sweep_setup(self) -> SweepSetup:
        """The current settings as a setup to sweep over TV weights (raises ValueError)."""
        series = series_from_layers(self.checked_layers())
        series = drop_tilts(series, self.drop_tilts.dropped_angles(), "dropped in the Reconstruct dock")
        assert self.form is not None
        params = clean_params(self.method, self.form.values())
        if "device" in params:
            resolve_device(params["device"])
        lo, hi = self.tilt_min.value(), self.tilt_max.value()
        narrower = lo > series.angles.min() + 1e-6 or hi < series.angles.max() - 1e-6
        return SweepSetup(series, self.method, params, tilt_range=(lo, hi) if narrower else None,
                          time_limit=self.form.time_limit())

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
        # The weight sweep's sub-runs count in the same progress: say why the total is larger.
        self._bar_unit = ("iterations (weight sweep included)" if record.params.get("choose_weight")
                          else "iterations")
        self.progress_bar.setFormat(f"%v / %m {self._bar_unit}")
        self._warned, self._estimate = False, None
        self._on_cpu = str(resolve_device(record.params.get("device", "auto"))).startswith("cpu")
        self.estimate.setText("timing the first iterations…")
        self.estimate.setStyleSheet("")
        series = record.series
        if series.n_angles < 5 or series.missing_wedge > 140:
            show_warning(f"few tilts: {series.n_angles} tilts leave a {series.missing_wedge:g} deg "
                         "missing wedge; expect strong elongation along z")
        self.set_status(f"{method_label(record.method)} starting on "
                        f"{', '.join(record.series.elements)}…")

    def stop(self) -> None:
        self.controller.stop()
        self.stop_btn.setEnabled(False)
        self._clear_time_left()
        self.set_status("stopping after the current iteration…")

    def _clear_time_left(self) -> None:
        self.progress_bar.setFormat(f"%v / %m {self._bar_unit}")
        self.estimate.setText("")

    def _on_progress(self, iteration: int, total: int, seconds_left: float) -> None:
        # The bar carries the progress text: it changes every tick, and a bar
        # repaints itself without re-laying out the dock (a wrapped label would).
        # QProgressBar.setValue repaints synchronously; with updates off the
        # changes are painted once, in the same pass as the 3D canvas.
        stopping = self.controller.control is not None and self.controller.control.stop_requested
        left = f", ~{duration(seconds_left)} left" if seconds_left >= 0 and not stopping else ""
        bar = self.progress_bar
        bar.setUpdatesEnabled(False)
        bar.setFormat(f"%v / %m {self._bar_unit}{left}")
        bar.setRange(0, total)
        bar.setValue(iteration)
        bar.setUpdatesEnabled(True)
        if iteration > 0 and self.status.text().endswith("…") and not stopping:
            self.set_status(f"running: iteration {iteration} of {total}")
        est = Estimate.from_progress(iteration, total, seconds_left)
        if est is None or stopping:
            return
        first = self._estimate is None
        # The label is re-laid out on change: a new text once the estimate moves by 10 %.
        if first or abs(est.total - self._estimate.total) > 0.1 * self._estimate.total:
            self._estimate = est
            control = self.controller.control
            limited = control is not None and getattr(control, "time_limit", None) is not None
            warning = est.warning(getattr(self, "_on_cpu", True), limited)
            self.estimate.setText(est.text(total) + (f"\n{warning}" if warning else ""))
            self.estimate.setStyleSheet("color: orange;" if warning else "")
            if warning and not self._warned:
                self._warned = True
                show_warning(warning)

    def _on_update(self, snap: Any) -> None:
        if snap.iteration > self.progress_bar.value():  # a method without progress between snapshots
            self._on_progress(snap.iteration, snap.total, -1.0)
        losses = ", ".join(f"{k} {v:.3g}" for k, v in snap.losses.items())
        self.set_status(f"iteration {snap.iteration}, {snap.elapsed_s:.0f} s: {losses}")
        self._update_legend()
        if self.controller.record is not None:
            self.plot.show_history(self.controller.record.history)

    def _on_finished(self, record: RunRecord | None) -> None:
        self.start_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self._clear_time_left()
        if record is None:
            return
        self._update_legend()
        if record.last is not None and record.last.iteration > 0:
            self.estimate.setText(f"took {duration(record.last.elapsed_s)} "
                                  f"({record.last.elapsed_s / record.last.iteration:.3g} s per "
                                  "iteration)")
            self.estimate.setStyleSheet("")
        if record.history:
            self.plot.show_history(record.history)
        done = record.last.iteration if record.last else 0
        text = f"{method_label(record.method)} {record.status} at iteration {done}"
        info = record.last.info if record.last else {}
        best = info.get("best_iterations")
        validated = info.get("heldout_angles") or info.get("heldout_counts")
        if best and validated and record.last.stopped != STOPPED_BY_USER:
            text += "; shown: each element's best held-out iterate (" + ", ".join(
                f"{e} {it}" for e, it in best.items()) + ")"
        text += "".join(f"; {note}" for note in record.last.notes()) if record.last else ""
        self.set_status(text + (f": {record.error}" if record.error else ""))

    def _update_legend(self) -> None:
        items = element_legend(self.viewer.layers)
        self.legend.setText("  ".join(f'<span style="color:{c}">&#9632; {e}</span>'
                                      for e, c in items))
