"""Dock widget "Export": element volumes to ImageJ TIFF + the run's JSON sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
)

from ...io import OutputLock, check_output_folder, replace_folder, write_volumes
from .. import settings
from ..layers import is_volume_layer, layer_meta
from ._dock import DockBase

if TYPE_CHECKING:
    import napari

SECTION = "export"


def export_layers(layers: list[Any], folder: str | Path) -> list[Path]:
    """Write ``layers`` as ``<Element>.tif`` and, for a reconstruction, its sidecar.

    The sidecar is the run's, kept in step with the volumes its layers show,
    when the layers come from one run.
    """
    if not layers:
        raise ValueError("select at least one volume layer")
    metas = [layer_meta(layer) for layer in layers]
    runs = {id(m.get("run")) for m in metas}
    run = metas[0].get("run") if len(runs) == 1 else None
    volumes: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    for layer, meta in zip(layers, metas, strict=True):
        name = meta.get("element") or layer.name
        if name in volumes:
            raise ValueError(f"two ticked layers are element {name} ({names[name]}, {layer.name}): "
                             "tick one run's volumes, or export the runs one at a time")
        names[name] = layer.name
        volumes[name] = np.asarray(layer.data)
    voxel = float(metas[0].get("pixel_size_nm") or layers[0].scale[-1])
    sidecar = dict(run.sidecar) if run is not None and run.sidecar else None
    # As on the command line: never into a file, the input folder or a folder of foreign
    # files, never while another run writes there, and the folder replaced whole.
    out = Path(folder)
    check_output_folder(out, (sidecar or {}).get("input") or [])
    with OutputLock(out, command="napari export"):
        written = replace_folder(out, lambda stage: write_volumes(stage, volumes, voxel, sidecar))
    return [out / p.name for p in written]


ABOUT = ("Writes the ticked element volumes as <Element>.tif (float32, ImageJ, voxel size in nm) "
         "and, for a reconstruction, reconstruction.json: every parameter, the angles and the loss "
         "history, which 'edxtomo reconstruct --config' replays. The latest run is ticked.")


def latest_run(layers: Any) -> Any:
    """The run of the most recently added reconstruction layer (None without one)."""
    for layer in reversed(list(layers)):
        run = layer_meta(layer).get("run")
        if run is not None:
            return run
    return None


class ExportWidget(DockBase):
    """Pick volume layers and a folder; Export writes TIFFs and ``reconstruction.json``."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(ABOUT)
        self.viewer = napari_viewer
        self._latest: Any = None
        saved = settings.load(SECTION)
        layout = self.body
        layout.addWidget(QLabel("Volumes to export:"))
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(120)
        self.layer_list.setToolTip("3D layers that can be exported; tick one run's volumes "
                                   "(one layer per element). The latest run is ticked.")
        layout.addWidget(self.layer_list)
        row = QHBoxLayout()
        self.folder = QLineEdit(saved.get("folder", "~/edxtomo-results"))
        self.folder.setToolTip("Output folder (created if missing); existing files of the same "
                               "element are replaced.")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.setToolTip("Choose the output folder.")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("folder"))
        row.addWidget(self.folder)
        row.addWidget(browse)
        layout.addLayout(row)
        self.export_btn = QPushButton("Export")
        self.export_btn.setToolTip("Write <Element>.tif per ticked volume and reconstruction.json.")
        self.export_btn.clicked.connect(self.export)
        layout.addWidget(self.export_btn)
        layout.addWidget(self.status)
        layout.addStretch(1)
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self.refresh_layers)
        self.refresh_layers()

    def refresh_layers(self, *_: Any) -> None:
        """List the 3D layers; when a new run appears, tick its layers and only those."""
        latest = latest_run(self.viewer.layers)
        checked = {self.layer_list.item(i).text(): self.layer_list.item(i).checkState()
                   for i in range(self.layer_list.count())}
        if latest is not self._latest:
            checked = {}  # a new run: the defaults again
            self._latest = latest
        self.layer_list.clear()
        for layer in self.viewer.layers:
            if getattr(layer, "ndim", 0) == 3 and is_volume_layer(layer):
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                run = layer_meta(layer).get("run")
                default = Qt.CheckState.Checked if run is not None and run is latest else \
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
        """Write the ticked volumes; the status lists the files written (or the cause of failure)."""
        folder = self.folder.text().strip()
        try:
            if not folder:
                raise ValueError("no output folder: type or choose one")
            layers = self.checked_layers()
            if not layers:
                raise ValueError("no volume ticked: tick the layers of one run")
            out = Path(folder).expanduser().absolute()
            paths = export_layers(layers, out)
        except (ValueError, OSError) as exc:
            self.report_error("export", exc)
            return []
        settings.save(SECTION, {"folder": folder})
        names = ", ".join(p.name for p in paths)
        self.set_status(f"wrote {len(paths)} files ({names}):\n" + "\n".join(str(p) for p in paths))
        show_info(f"Exported {names}: {out}")
        return paths
