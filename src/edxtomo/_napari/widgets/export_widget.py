"""Dock widget "Export": element volumes to ImageJ TIFF + the run's JSON sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...io import write_volumes
from .. import settings
from ..layers import is_volume_layer, layer_meta

if TYPE_CHECKING:
    import napari

SECTION = "export"


def export_layers(layers: list[Any], folder: str | Path) -> list[Path]:
    """Write ``layers`` as ``<Element>.tif`` and, for a reconstruction, its sidecar.

    The volumes written are the run's latest snapshot when the layers come from
    one run (so they match the sidecar's iteration count), else the layer data.
    """
    if not layers:
        raise ValueError("select at least one volume layer")
    metas = [layer_meta(layer) for layer in layers]
    runs = {id(m.get("run")) for m in metas}
    record = metas[0].get("run") if len(runs) == 1 else None
    volumes: dict[str, np.ndarray] = {}
    for layer, meta in zip(layers, metas, strict=True):
        name = meta.get("element") or layer.name
        if name in volumes:
            raise ValueError(f"two selected layers are element {name}: export them separately")
        last = record.last if record is not None else None
        data = last.volumes.get(name) if last is not None else None
        volumes[name] = np.asarray(layer.data if data is None else data)
    voxel = float(metas[0].get("pixel_size_nm") or layers[0].scale[-1])
    sidecar = record.sidecar() if record is not None else None
    return write_volumes(folder, volumes, voxel, sidecar)


class ExportWidget(QWidget):
    """Pick volume layers and a folder; Export writes TIFFs and ``reconstruction.json``."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        saved = settings.load(SECTION)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Volumes to export:"))
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(120)
        layout.addWidget(self.layer_list)
        row = QHBoxLayout()
        self.folder = QLineEdit(saved.get("folder", "~/edxtomo-results"))
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("folder"))
        row.addWidget(self.folder)
        row.addWidget(browse)
        layout.addLayout(row)
        self.export_btn = QPushButton("Export")
        self.export_btn.clicked.connect(self.export)
        layout.addWidget(self.export_btn)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self.refresh_layers)
        self.refresh_layers()

    def refresh_layers(self, *_: Any) -> None:
        checked = {self.layer_list.item(i).text(): self.layer_list.item(i).checkState()
                   for i in range(self.layer_list.count())}
        self.layer_list.clear()
        for layer in self.viewer.layers:
            if getattr(layer, "ndim", 0) == 3 and is_volume_layer(layer):
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                default = Qt.CheckState.Checked if "run" in layer_meta(layer) else \
                    Qt.CheckState.Unchecked
                item.setCheckState(checked.get(layer.name, default))
                self.layer_list.addItem(item)

    def checked_layers(self) -> list[Any]:
        names = [self.layer_list.item(i).text() for i in range(self.layer_list.count())
                 if self.layer_list.item(i).checkState() == Qt.CheckState.Checked]
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def export(self) -> list[Path]:
        folder = self.folder.text().strip()
        try:
            if not folder:
                raise ValueError("choose an output folder")
            paths = export_layers(self.checked_layers(), Path(folder).expanduser())
        except (ValueError, OSError) as exc:
            show_error(f"Export failed: {exc}")
            return []
        settings.save(SECTION, {"folder": folder})
        names = ", ".join(p.name for p in paths)
        self.status.setText(f"wrote {names} to {folder}")
        show_info(f"Exported {names} to {folder}")
        return paths
