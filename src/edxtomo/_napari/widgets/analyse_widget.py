"""Dock widget "Analyse": composition layers, k-factors, region statistics, line profiles.

The numbers come from :mod:`edxtomo.quantify` and :mod:`edxtomo.resolution`;
this module only moves layers in and tables, legends and plots out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...quantify import (
    Composition,
    calibrate_k_factors,
    cliff_lorimer,
    k_factors_from_metadata,
    line_profile,
    region_stats,
    stats_csv,
    write_stats_csv,
)
from ..layers import META_KEY, PALETTE, is_volume_layer, layer_meta, series_for_run
from .profile_plot import ProfilePlot

if TYPE_CHECKING:
    import napari

COMPOSITION_KIND = "composition"


def element_volumes(viewer: Any) -> dict[str, tuple[Any, np.ndarray]]:
    """``{element: (layer, data)}`` of the count volumes in the viewer.

    When an element has several volumes (two runs), a visible one wins over
    a hidden one and, among equals, the one higher in the layer list.
    """
    out: dict[str, tuple[Any, np.ndarray]] = {}
    for layer in viewer.layers:
        meta = layer_meta(layer)
        if not (layer.__class__.__name__ == "Image" and getattr(layer, "ndim", 0) == 3
                and is_volume_layer(layer) and meta.get("kind") != COMPOSITION_KIND):
            continue
        el = meta.get("element") or layer.name
        if el not in out or layer.visible or not out[el][0].visible:
            out[el] = (layer, np.asarray(layer.data))
    return out


def parse_composition(text: str) -> dict[str, float]:
    """``"Ge=22 Sb=22 Te=56"`` → ``{"Ge": 22.0, ...}``; commas allowed as separators."""
    out = {}
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{item!r} is not ELEMENT=PERCENT (e.g. Ge=22)") from None
    if not out:
        raise ValueError("type the region's composition, e.g. Ge=22 Sb=22 Te=56")
    return out


class AnalyseWidget(QWidget):
    """Composition volumes, calibration from a Labels layer, region table, line profile."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.composition: Composition | None = None
        self.rows: list[dict[str, float]] = []
        layout = QVBoxLayout(self)

        quant = QGroupBox("Composition (Cliff–Lorimer)")
        form = QFormLayout(quant)
        self.k_table = QTableWidget(0, 2)
        self.k_table.setHorizontalHeaderLabels(["element", "k-factor"])
        self.k_table.setMaximumHeight(130)
        form.addRow(self.k_table)
        self.threshold = QLineEdit()
        self.threshold.setPlaceholderText("auto (from the noise)")
        form.addRow("threshold", self.threshold)
        self.unit = QComboBox()
        self.unit.addItems(["at%", "wt%"])
        form.addRow("unit", self.unit)
        self.compute_btn = QPushButton("Compute composition")
        self.compute_btn.clicked.connect(self.compute)
        form.addRow(self.compute_btn)
        self.legend = QVBoxLayout()
        form.addRow(self.legend)
        layout.addWidget(quant)

        calib = QGroupBox("Calibrate k-factors from a region")
        cform = QFormLayout(calib)
        self.labels_box = QComboBox()
        cform.addRow("Labels layer", self.labels_box)
        self.label_value = QSpinBox()
        self.label_value.setRange(1, 65535)
        cform.addRow("label", self.label_value)
        self.nominal = QLineEdit()
        self.nominal.setPlaceholderText("Ge=22 Sb=22 Te=56")
        cform.addRow("composition (at.%)", self.nominal)
        self.calibrate_btn = QPushButton("Calibrate")
        self.calibrate_btn.clicked.connect(self.calibrate)
        cform.addRow(self.calibrate_btn)
        layout.addWidget(calib)

        regions = QGroupBox("Region statistics (labels of the Labels layer)")
        rlay = QVBoxLayout(regions)
        self.stats_table = QTableWidget(0, 0)
        self.stats_table.setMaximumHeight(150)
        rlay.addWidget(self.stats_table)
        row = QHBoxLayout()
        self.stats_btn = QPushButton("Statistics")
        self.stats_btn.clicked.connect(self.update_stats)
        self.copy_btn = QPushButton("Copy")
        self.copy_btn.clicked.connect(self.copy_stats)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.clicked.connect(lambda: self.export_csv())
        for b in (self.stats_btn, self.copy_btn, self.csv_btn):
            row.addWidget(b)
        rlay.addLayout(row)
        layout.addWidget(regions)

        prof = QGroupBox("Line profile (last line of a Shapes layer)")
        play = QVBoxLayout(prof)
        self.profile_btn = QPushButton("Profile")
        self.profile_btn.clicked.connect(self.profile)
        play.addWidget(self.profile_btn)
        self.plot = ProfilePlot()
        play.addWidget(self.plot)
        layout.addWidget(prof)

        res_row = QHBoxLayout()
        self.resolution_btn = QPushButton("Estimate resolution")
        self.resolution_btn.setToolTip("Reconstruct the even and the odd tilts with the run's method "
                                       "and parameters (twice the run's time) and compare them by "
                                       "directional FSC (half-bit)")
        self.resolution_btn.clicked.connect(lambda: self.estimate_resolution())
        self.resolution_label = QLabel("")
        self.resolution_label.setWordWrap(True)
        res_row.addWidget(self.resolution_btn)
        res_row.addWidget(self.resolution_label, 1)
        layout.addLayout(res_row)
        self.resolution_worker: Any = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------ layers
    def refresh(self, *_: Any) -> None:
        """Element rows of the k-factor table and the Labels choices follow the layers."""
        vols = element_volumes(self.viewer)
        # Typed values stay; new elements start from the run's metadata, else 1.
        current = {**self._metadata_k(vols), **self._typed_k()}
        self.k_table.setRowCount(len(vols))
        for i, el in enumerate(vols):
            name = QTableWidgetItem(el)
            name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.k_table.setItem(i, 0, name)
            value = current.get(el, 1.0)
            self.k_table.setItem(i, 1, QTableWidgetItem(value if isinstance(value, str) else f"{value:.6g}"))
        chosen = self.labels_box.currentText()
        self.labels_box.clear()
        self.labels_box.addItems([lyr.name for lyr in self.viewer.layers
                                  if lyr.__class__.__name__ == "Labels"])
        if chosen:
            self.labels_box.setCurrentText(chosen)
        self.resolution_label.setText(self._resolution_text())

    @staticmethod
    def _metadata_k(vols: dict[str, tuple[Any, np.ndarray]]) -> dict[str, float]:
        for layer, _ in vols.values():
            run = layer_meta(layer).get("run")
            if run is not None:
                return k_factors_from_metadata(run.sidecar.get("provenance") or {})
        return {}

    def _typed_k(self) -> dict[str, Any]:
        """The table's text per element (kept as typed, even when not a number yet)."""
        out: dict[str, Any] = {}
        for i in range(self.k_table.rowCount()):
            name, value = self.k_table.item(i, 0), self.k_table.item(i, 1)
            if name is not None and value is not None:
                out[name.text()] = value.text()
        return out

    def k_factors(self) -> dict[str, float]:
        out = {}
        for i in range(self.k_table.rowCount()):
            name, value = self.k_table.item(i, 0), self.k_table.item(i, 1)
            if name is None or value is None:
                continue
            try:
                out[name.text()] = float(value.text())
            except ValueError:
                raise ValueError(f"k-factor of {name.text()}: {value.text()!r} is not a number") from None
        return out

    def set_k_factors(self, k: dict[str, float]) -> None:
        for i in range(self.k_table.rowCount()):
            el = self.k_table.item(i, 0).text()
            if el in k:
                self.k_table.setItem(i, 1, QTableWidgetItem(f"{k[el]:.6g}"))

    def _labels(self) -> np.ndarray:
        name = self.labels_box.currentText()
        if not name or name not in self.viewer.layers:
            raise ValueError("add a Labels layer (paint the region) and choose it")
        return np.asarray(self.viewer.layers[name].data)

    def _resolution_text(self) -> str:
        for layer in self.viewer.layers:
            res = layer_meta(layer).get("resolution")
            if res:
                return (f"Resolution ({res.get('criterion')}): x {res['x_nm']:.3g}, "
                        f"y {res['y_nm']:.3g}, z {res['z_nm']:.3g} nm (z/x {res['z_nm'] / res['x_nm']:.2f})")
        return ""

    def _run_layers(self) -> tuple[Any, list[Any]]:
        """The run behind the count volumes and the layers it fed."""
        for layer, _ in element_volumes(self.viewer).values():
            run = layer_meta(layer).get("run")
            if run is not None:
                return run, [lyr for lyr in self.viewer.layers
                             if layer_meta(lyr).get("run") is run]
        raise ValueError("no reconstruction run among the volumes (run one in Reconstruct)")

    def estimate_resolution(self) -> Any:
        """Resolution of the current run's method on its tilt series, in a worker thread."""
        from napari.qt.threading import thread_worker

        from ...resolution import estimate_resolution

        try:
            record, layers = self._run_layers()
            series = series_for_run(record, self.viewer.layers)
        except ValueError as exc:
            show_error(f"Resolution: {exc}")
            self.status.setText(str(exc))
            return None
        params = {k: v for k, v in record.params.items() if k != "control"}

        def done(est: Any) -> None:
            summary = {k: v for k, v in est.to_json().items() if k != "fsc"}
            for layer in layers:
                layer_meta(layer)["resolution"] = summary
            self.resolution_label.setText(self._resolution_text())

        def failed(exc: Exception) -> None:
            show_error(f"Resolution: {exc}")
            self.status.setText(f"resolution failed: {exc}")

        def finished() -> None:
            self.resolution_worker = None
            self.resolution_btn.setEnabled(True)

        worker = thread_worker(estimate_resolution)(series, record.method, **params)
        worker.returned.connect(done)
        worker.errored.connect(failed)
        worker.finished.connect(finished)
        self.resolution_btn.setEnabled(False)
        self.resolution_label.setText(f"estimating ({record.method} on the even and odd tilts)…")
        self.resolution_worker = worker
        worker.start()
        return worker

    # ------------------------------------------------------------ actions
    def compute(self) -> Composition | None:
        """Composition layers ``"<El> [at%]"`` from the visible count volumes."""
        try:
            vols = element_volumes(self.viewer)
            text = self.threshold.text().strip()
            comp = cliff_lorimer({e: d for e, (_, d) in vols.items()}, self.k_factors(),
                                 threshold=float(text) if text else None,
                                 unit=self.unit.currentText())
        except ValueError as exc:
            show_error(f"Composition: {exc}")
            self.status.setText(str(exc))
            return None
        self.composition = comp
        for i, (el, vol) in enumerate(comp.volumes.items()):
            self._show_layer(el, vol, vols[el][0], PALETTE[i % len(PALETTE)], comp)
        self._draw_legend(comp)
        means = ", ".join(f"{e} {v:.1f}" for e, v in comp.mean().items())
        self.status.setText(f"mean {comp.unit}: {means} over {int(comp.mask.sum())} voxels "
                            f"(threshold {comp.threshold:.3g}, {comp.threshold_source})")
        return comp

    def _show_layer(self, el: str, vol: np.ndarray, source: Any, cmap: str, comp: Composition) -> None:
        name = f"{el} [{comp.unit}]"
        meta = {META_KEY: {"kind": COMPOSITION_KIND, "element": el, "unit": comp.unit,
                           "k_factors": comp.k_factors, "threshold": comp.threshold,
                           "pixel_size_nm": layer_meta(source).get("pixel_size_nm")}}
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = vol
            layer.metadata = meta
        else:
            layer = self.viewer.add_image(vol, name=name, colormap=cmap, blending="additive",
                                          scale=source.scale, translate=source.translate,
                                          metadata=meta)
        layer.contrast_limits = (0.0, 100.0)

    def _draw_legend(self, comp: Composition) -> None:
        while self.legend.count():
            item = self.legend.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        for el in comp.volumes:
            layer = self.viewer.layers[f"{el} [{comp.unit}]"]
            rgba = (layer.colormap.map(np.linspace(0, 1, 128)) * 255).astype(np.uint8)
            strip = np.ascontiguousarray(np.repeat(rgba[None], 10, axis=0))
            image = QImage(strip.data, 128, 10, 4 * 128, QImage.Format.Format_RGBA8888).copy()
            bar = QLabel()
            bar.setPixmap(QPixmap.fromImage(image))
            lo, hi = layer.contrast_limits
            row = QLabel(f"{el}: {lo:g} … {hi:g} {comp.unit} (masked voxels transparent)")
            self.legend.addWidget(row)
            self.legend.addWidget(bar)

    def calibrate(self) -> dict[str, float] | None:
        """k-factors from the chosen label of the Labels layer and its nominal composition."""
        try:
            vols = {e: d for e, (_, d) in element_volumes(self.viewer).items()}
            region = self._labels() == self.label_value.value()
            k = calibrate_k_factors(vols, region, parse_composition(self.nominal.text()),
                                    k_factors=self.k_factors())
        except ValueError as exc:
            show_error(f"Calibration: {exc}")
            self.status.setText(str(exc))
            return None
        self.set_k_factors(k)
        self.status.setText("k-factors calibrated: " + ", ".join(f"{e} {v:.3g}" for e, v in k.items()))
        return k

    def update_stats(self) -> list[dict[str, float]]:
        """Fill the table with mean ± std per label of the chosen Labels layer."""
        try:
            if self.composition is None:
                raise ValueError("compute the composition first")
            self.rows = region_stats(self.composition.volumes, self._labels())
        except ValueError as exc:
            show_error(f"Region statistics: {exc}")
            self.status.setText(str(exc))
            return []
        fields = list(self.rows[0]) if self.rows else []
        self.stats_table.setColumnCount(len(fields))
        self.stats_table.setHorizontalHeaderLabels(fields)
        self.stats_table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, f in enumerate(fields):
                v = row[f]
                self.stats_table.setItem(i, j, QTableWidgetItem(str(v) if isinstance(v, int) else f"{v:.4g}"))
        return self.rows

    def copy_stats(self) -> str:
        """Tab-separated table on the clipboard (pastes into spreadsheets as columns)."""
        unit = self.composition.unit if self.composition else "at%"
        text = stats_csv(self.rows, unit, delimiter="\t")
        QApplication.clipboard().setText(text)
        return text

    def export_csv(self, path: str | None = None) -> str | None:
        if not self.rows:
            show_error("Region statistics: nothing to export (press Statistics first)")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Region statistics", "regions.csv", "CSV (*.csv)")
            if not path:
                return None
        write_stats_csv(path, self.rows, self.composition.unit if self.composition else "at%")
        show_info(f"Wrote {path}")
        return path

    def profile(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Profile of every composition layer (or count volume) along the last drawn line."""
        try:
            line = self._last_line()
            comp = self.composition
            if comp is not None:
                layers = [self.viewer.layers[f"{e} [{comp.unit}]"] for e in comp.volumes]
                unit = comp.unit
            else:
                layers = [lyr for lyr, _ in element_volumes(self.viewer).values()]
                unit = "counts"
            if not layers:
                raise ValueError("no volume to profile")
        except (ValueError, KeyError) as exc:
            show_error(f"Profile: {exc}")
            self.status.setText(str(exc))
            return {}
        lines = {}
        for layer in layers:
            scale = np.asarray(layer.scale)
            a, b = ((p - np.asarray(layer.translate)) / scale for p in line)
            dist, values = line_profile(layer.data, tuple(a), tuple(b))
            step = float(np.linalg.norm((b - a) * scale)) / max(float(dist[-1]), 1e-12)
            lines[layer_meta(layer).get("element", layer.name)] = (dist * step, values)
        self.plot.set_lines(lines, unit)
        return lines

    def _last_line(self) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates ``(z, y, x)`` of the two ends of the last shape drawn."""
        for layer in reversed(list(self.viewer.layers)):
            if layer.__class__.__name__ == "Shapes" and len(layer.data):
                pts = np.asarray(layer.data[-1], dtype=float)
                world = pts * np.asarray(layer.scale) + np.asarray(layer.translate)
                if world.shape[1] == 2:  # a 2-D shape: on the current z slice
                    z = self.viewer.dims.point[0]
                    world = np.column_stack([np.full(len(world), z), world])
                return world[0], world[-1]
        raise ValueError("draw a line in a Shapes layer first")
