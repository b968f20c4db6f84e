"""Conversions between :class:`TiltSeries` / snapshots and napari layer data.

Qt-free on purpose: the reader, the sample data and the widgets all share
these functions, and they can be tested without a viewer.  Layers carry
their provenance under ``layer.metadata["edxtomo"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tiltseries import TiltSeries

#: Key under which every edxtomo layer stores its facts in ``layer.metadata``.
META_KEY = "edxtomo"

#: Colour per element slot; additive blending of these stays readable.
PALETTE = ("magenta", "green", "cyan", "yellow", "red", "blue", "bop orange", "bop purple")

#: Display names of the methods (layer names are ``"Ge [DIPm-TV]"``).
METHOD_LABELS = {"sirt": "SIRT", "tv": "TV", "tv-joint": "TV-joint", "dip-tv": "DIP-TV",
                 "dipm-tv": "DIPm-TV"}

LayerDataTuple = tuple[Any, dict[str, Any], str]


def method_label(method: str) -> str:
    """``"dipm-tv"`` → ``"DIPm-TV"``; unknown names pass through."""
    return METHOD_LABELS.get(method, method)


def colormap_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def tilt_layer_name(element: str) -> str:
    return f"{element} [tilts]"


def volume_layer_name(element: str, method: str) -> str:
    return f"{element} [{method_label(method)}]"


def series_to_layer_data(series: TiltSeries, inputs: Sequence[str] = (),
                         read_options: dict[str, Any] | None = None) -> list[LayerDataTuple]:
    """One image layer ``(tilt, y, x)`` per element, angles and provenance in the metadata."""
    out: list[LayerDataTuple] = []
    ps = series.pixel_size
    for i, el in enumerate(series.elements):
        meta = {
            "kind": "tiltseries",
            "element": el,
            "line": series.lines.get(el, ""),
            "angles": [float(a) for a in series.angles],
            "pixel_size_nm": ps,
            "source": series.source,
            "inputs": [str(p) for p in inputs],
            "read_options": dict(read_options or {}),
            "provenance": series.provenance,
        }
        kwargs = {
            "name": tilt_layer_name(el),
            "colormap": colormap_for(i),
            "blending": "additive",
            "scale": (1.0, ps, ps),
            "axis_labels": ("tilt", "y", "x"),
            "metadata": {META_KEY: meta},
        }
        out.append((series.maps[el], kwargs, "image"))
    return out


def layer_meta(layer: Any) -> dict[str, Any]:
    """The edxtomo facts of a layer (empty for foreign layers)."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get(META_KEY)
    return value if isinstance(value, dict) else {}


def is_tilt_layer(layer: Any) -> bool:
    return layer_meta(layer).get("kind") == "tiltseries" and np.ndim(layer.data) == 3


def is_volume_layer(layer: Any) -> bool:
    return layer_meta(layer).get("kind") == "volume" or (
        getattr(layer, "ndim", 0) == 3 and layer_meta(layer).get("kind") != "tiltseries")


def series_from_layers(layers: Sequence[Any]) -> TiltSeries:
    """Rebuild the tilt series behind tilt-series layers (they must share angles and shape).

    Raises
    ------
    ValueError
        With the reason, when the layers do not belong together.
    """
    if not layers:
        raise ValueError("select at least one element layer")
    metas = [layer_meta(layer) for layer in layers]
    for layer, meta in zip(layers, metas, strict=True):
        if meta.get("kind") != "tiltseries":
            raise ValueError(f"layer {layer.name!r} is not an EDX tilt series (no tilt angles)")
    angles = np.asarray(metas[0]["angles"], dtype=float)
    for layer, meta in zip(layers[1:], metas[1:], strict=True):
        if not np.allclose(np.asarray(meta["angles"], dtype=float), angles):
            raise ValueError(f"layer {layer.name!r} has other tilt angles than {layers[0].name!r}")
    maps = {meta["element"]: np.asarray(layer.data, dtype=np.float32)
            for layer, meta in zip(layers, metas, strict=True)}
    return TiltSeries(
        maps=maps,
        angles=angles,
        pixel_size=float(metas[0].get("pixel_size_nm", 1.0)),
        lines={m["element"]: m["line"] for m in metas if m.get("line")},
        provenance=dict(metas[0].get("provenance") or {}),
        source=str(metas[0].get("source") or layers[0].name),
    )


def tilt_summary(angles: Sequence[float], lo: float, hi: float) -> str:
    """Which tilts a range keeps and the missing wedge it leaves, for a label."""
    a = np.asarray(angles, dtype=float)
    keep = a[(a >= lo - 1e-9) & (a <= hi + 1e-9)]
    if keep.size < 2:
        return f"{keep.size} of {a.size} tilts in {lo:g}..{hi:g} deg: need at least 2"
    wedge = 180.0 - (keep.max() - keep.min())
    shown = ", ".join(f"{x:g}" for x in keep)
    return (f"{keep.size} of {a.size} tilts ({shown}) deg; missing wedge {wedge:g} deg")
