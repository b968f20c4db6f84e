"""Streaming snapshots into napari layers: latest wins, redraws throttled.

A reconstruction may yield faster than the canvas can redraw a 3D volume.
The worker's ``yielded`` signal only *parks* the newest snapshot
(:class:`LatestWins`); a timer on the main thread applies whatever is
parked at most every ``interval_ms`` (:class:`ThrottledStreamer`), so
snapshots that arrive in between are dropped instead of queueing up and
freezing the event loop.  :class:`VolumeStreamer` does the layer updates and
touches only napari's model, no Qt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer

from ..recon.snapshot import Snapshot
from .layers import (
    META_KEY,
    UNITS,
    VOLUME_ATTENUATION,
    VOLUME_AXIS_LABELS,
    VOLUME_RENDERING,
    colormap_for,
    layer_meta,
    robust_contrast,
    volume_layer_name,
)

#: Head-room when the contrast must widen, so it does not widen at every snapshot.
CONTRAST_HEADROOM = 1.25

#: Least time between two volume redraws during a run. A 3D redraw costs
#: 150-300 ms with software OpenGL and competes with the run for the CPU;
#: redrawing at every 150 ms tick made a TV run ~1.35x slower than on the
#: command line (benchmarks/bench_gui_latency.py --gui-vs-cli).
MIN_REDRAW_INTERVAL_S = 1.0


class LatestWins:
    """A one-slot mailbox: ``put`` overwrites, ``take`` empties."""

    def __init__(self) -> None:
        self._item: Any = None
        self.dropped = 0

    def put(self, item: Any) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item

    def take(self) -> Any:
        item, self._item = self._item, None
        return item


class VolumeStreamer:
    """Creates and updates one 3D image layer per element for one run.

    Parameters
    ----------
    viewer
        The napari viewer.
    method
        Method name; layers are called ``"Ge [DIPm-TV]"``.
    elements
        Element order (decides the colours, same as the tilt-series layers).
    pixel_size
        Voxel size in nm (layer scale).
    run_info
        Stored in each layer's metadata so the export widget finds the run.
    """

    def __init__(self, viewer: Any, method: str, elements: Sequence[str], pixel_size: float,
                 run_info: dict[str, Any]) -> None:
        self.viewer = viewer
        self.method = method
        self.elements = list(elements)
        self.pixel_size = float(pixel_size)
        self.run_info = run_info
        self.applied = 0
        self._switched_3d = False
        self._hid_others = False

    def layer_for(self, element: str, volume: np.ndarray, final: bool = True) -> Any:
        name = volume_layer_name(element, self.method)
        meta = {"kind": "volume", "element": element, "method": self.method,
                "pixel_size_nm": self.pixel_size, **self.run_info}
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.metadata[META_KEY] = meta
            if layer.data.shape == volume.shape and layer.data.dtype == volume.dtype:
                # Copy into the existing array: ``layer.data = ...`` would also
                # recompute the viewer's dims, which costs more than the copy.
                np.copyto(layer.data, volume)
                # The shape, hence the extent, is unchanged; the thumbnail (a
                # projection of the whole volume) waits for the final snapshot.
                layer.refresh(thumbnail=final, extent=False, highlight=False)
            else:
                layer.data = volume
            return layer
        idx = self.elements.index(element) if element in self.elements else len(self.elements)
        ps = self.pixel_size
        return self.viewer.add_image(
            volume, name=name, colormap=colormap_for(idx), blending="additive",
            rendering=VOLUME_RENDERING, attenuation=VOLUME_ATTENUATION, scale=(ps, ps, ps),
            units=UNITS, axis_labels=VOLUME_AXIS_LABELS,
            contrast_limits=robust_contrast(volume), metadata={META_KEY: meta},
        )

    @staticmethod
    def widen_contrast(layer: Any, volume: np.ndarray) -> None:
        """Widen (never narrow) the contrast to the volume's robust range, so it does not flicker.

        The limits follow the high percentile of the voxels (not the maximum,
        which a few hot voxels or an early fog would decide), with head-room
        so they do not move at every snapshot.
        """
        lo, hi = layer.contrast_limits
        new_lo, new_hi = robust_contrast(volume)
        if new_hi > hi:
            layer.contrast_limits = (min(lo, new_lo), new_hi * CONTRAST_HEADROOM)

    def _hide_other_runs(self) -> None:
        # One run's volumes at a time: earlier runs' layers would add on top.
        for layer in self.viewer.layers:
            meta = layer_meta(layer)
            if "run" in meta and meta["run"] is not self.run_info.get("run"):
                layer.visible = False
        self._hid_others = True

    def _switch_to_3d(self) -> None:
        # A (tilt, y, x) stack rendered as a volume would hide the reconstruction.
        for layer in self.viewer.layers:
            if layer_meta(layer).get("kind") == "tiltseries":
                layer.visible = False
        self.viewer.dims.ndisplay = 3
        self.viewer.reset_view()
        self._switched_3d = True

    def apply(self, snap: Snapshot) -> None:
        """Show ``snap``'s volumes (main thread only)."""
        if not self._hid_others:
            self._hide_other_runs()
        for element, volume in snap.volumes.items():
            layer = self.layer_for(element, volume, final=snap.final)
            self.widen_contrast(layer, volume)
        if not self._switched_3d:
            self._switch_to_3d()
        self.applied += 1


class ThrottledStreamer(QObject):
    """Applies the newest parked snapshot on a timer tick (main thread).

    ``on_tick``, if given, runs first at every tick (e.g. to report progress
    between snapshots). A parked snapshot is applied at most every
    ``min_redraw_s`` seconds (the last one always, at :meth:`stop`).
    """

    def __init__(self, apply: Callable[[Snapshot], None], interval_ms: int = 150,
                 parent: QObject | None = None, on_tick: Callable[[], None] | None = None,
                 min_redraw_s: float = MIN_REDRAW_INTERVAL_S) -> None:
        super().__init__(parent)
        self._apply = apply
        self._on_tick = on_tick
        self.min_redraw_s = float(min_redraw_s)
        self._last_apply = -float("inf")
        self.mailbox = LatestWins()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._timer.start()

    def submit(self, snap: Snapshot) -> None:
        self.mailbox.put(snap)

    def _tick(self) -> None:
        if self._on_tick is not None:
            self._on_tick()
        if time.perf_counter() - self._last_apply >= self.min_redraw_s:
            self.flush()

    def flush(self) -> None:
        """Apply the parked snapshot now, if any."""
        snap = self.mailbox.take()
        if snap is not None:
            self._last_apply = time.perf_counter()
            self._apply(snap)

    def stop(self) -> None:
        """Stop the timer and apply what is still parked, so the last volumes are shown."""
        self._timer.stop()
        self.flush()
