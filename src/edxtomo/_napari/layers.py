"""Conversions between :class:`TiltSeries` / snapshots and napari layer data.

Qt-free on purpose: the reader, the sample data and the widgets all share
these functions, and they can be tested without a viewer.  Layers carry
their provenance under ``layer.metadata["edxtomo"]``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..recon.registry import method_label
from ..tiltseries import TiltSeries

#: Key under which every edxtomo layer stores its facts in ``layer.metadata``.
META_KEY = "edxtomo"

#: Colour per element slot; additive blending of these stays readable.
PALETTE = ("magenta", "green", "cyan", "yellow", "red", "blue", "bop orange", "bop purple")

LayerDataTuple = tuple[Any, dict[str, Any], str]


@dataclass
class RunRef:
    """What a run's volume layers know of it (``metadata["edxtomo"]["run"]``).

    An identity, the method and its parameters, and the run's sidecar, kept
    in step with the volumes the layers show. Layers hold this, not the live
    run with its whole tilt series.
    """

    method: str
    params: dict[str, Any]
    sidecar: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def elements(self) -> list[str]:
        return list(self.sidecar.get("elements") or [])


def series_for_run(run: RunRef, layers: Sequence[Any]) -> TiltSeries:
    """The tilt series a run used, rebuilt from the viewer's tilt-series layers and its sidecar.

    Raises
    ------
    ValueError
        When the tilt-series layers of the run's elements are no longer there.
    """
    wanted = run.elements
    by_element = {layer_meta(layer).get("element"): layer for layer in layers if is_tilt_layer(layer)}
    missing = [e for e in wanted if e not in by_element]
    if missing:
        raise ValueError(f"the tilt-series layers of {', '.join(missing)} are gone: load the series again")
    series = series_from_layers([by_element[e] for e in wanted])
    used = np.asarray(run.sidecar.get("angles") or series.angles, dtype=float)
    if used.size != series.n_angles:
        # By angle, not by range: a run may have dropped tilts inside its range.
        keep = [k for k, a in enumerate(series.angles) if np.any(np.abs(used - a) < ANGLE_TOL)]
        series = series.select_indices(keep)
    return series


#: Two tilt angles closer than this (degrees) are the same tilt.
ANGLE_TOL = 1e-3


@dataclass(frozen=True)
class TiltRow:
    """One tilt as the alignment recorded it: what the per-tilt tables of the docks show.

    ``score``: the fraction of the tilt's signal the other tilts leave
    unexplained (0 = perfect); ``shift``: ``(dy, dx)`` px. ``None`` where the
    record has no such value (no alignment, or translation only).
    """

    angle: float
    score: float | None = None
    flagged: bool = False
    shift: tuple[float, float] | None = None
    gain: float | None = None


def alignment_record(provenance: Any) -> dict[str, Any]:
    """``provenance["alignment"]`` of a series (empty when it was not aligned)."""
    rec = provenance.get("alignment") if isinstance(provenance, dict) else None
    return rec if isinstance(rec, dict) else {}


def tilt_rows(angles: Sequence[float], provenance: Any) -> list[TiltRow]:
    """One row per angle with its score, flag, shift and gain from the alignment record.

    Tilts are matched to the record by angle, so a series cut to a tilt range
    or with tilts dropped still finds its rows; a tilt the record lacks gets
    an empty row.
    """
    rec = alignment_record(provenance)
    rec_angles = np.asarray(rec.get("angles_deg") or [], dtype=float)

    def per_tilt(key: str) -> list[Any] | None:
        values = rec.get(key)
        return list(values) if isinstance(values, list) and len(values) == rec_angles.size else None

    scores, shifts, gains = per_tilt("scores"), per_tilt("shifts_px"), per_tilt("gains")
    flagged = {int(i) for i in rec.get("flagged_tilts") or []}
    rows = []
    for a in angles:
        hit = np.flatnonzero(np.abs(rec_angles - float(a)) < ANGLE_TOL)
        if not hit.size:
            rows.append(TiltRow(float(a)))
            continue
        k = int(hit[0])
        score = scores[k] if scores is not None else None
        rows.append(TiltRow(
            float(a), score=None if score is None else float(score), flagged=k in flagged,
            shift=None if shifts is None else (float(shifts[k][0]), float(shifts[k][1])),
            gain=None if gains is None else float(gains[k])))
    return rows


def alignment_summary(provenance: Any) -> str:
    """``"tilt axis 2.96 deg (estimated); 1 projection-matching round; 1 of 13 tilts flagged"``."""
    rec = alignment_record(provenance)
    if not rec:
        return "not aligned"
    if "tilt_axis_deg" not in rec:
        return "translation only: shifts, no tilt-axis angle or per-tilt scores"
    parts = [f"tilt axis {float(rec['tilt_axis_deg']):.2f} deg ({rec.get('tilt_axis_source', 'given')})"]
    rounds = int(rec.get("refine_rounds") or 0)
    if rounds:
        parts.append(f"{rounds} projection-matching round{'s' if rounds != 1 else ''}")
    n = len(rec.get("angles_deg") or [])
    parts.append(f"{len(rec.get('flagged_tilts') or [])} of {n} tilts flagged")
    return "; ".join(parts)


def drop_tilts(series: TiltSeries, angles: Sequence[float], reason: str) -> TiltSeries:
    """``series`` without the tilts at ``angles`` (degrees), recorded in ``provenance["dropped_tilts"]``.

    Angles the series does not hold are ignored. Raises ``ValueError`` when
    fewer than two tilts would remain.
    """
    drop = np.asarray(list(angles), dtype=float)
    gone = [k for k, a in enumerate(series.angles) if drop.size and np.any(np.abs(drop - a) < ANGLE_TOL)]
    if not gone:
        return series
    keep = [k for k in range(series.n_angles) if k not in gone]
    if len(keep) < 2:
        raise ValueError(f"dropping {len(gone)} of {series.n_angles} tilts leaves {len(keep)}: "
                         "a reconstruction needs at least 2")
    out = series.select_indices(keep)
    out.provenance["dropped_tilts"] = {"angles_deg": [float(series.angles[k]) for k in gone],
                                       "reason": reason}
    return out

#: Axis labels of tilt-series layers and of volumes (napari's dims slider shows them).
TILT_AXIS_LABELS = ("tilt (deg)", "y", "x")
VOLUME_AXIS_LABELS = ("z", "y", "x")
#: Every axis in nm, the tilt axis too (its world step is the pixel size): napari
#: drops the scale-bar unit when layers disagree on an axis's unit, and tilt
#: stacks share their first axis with the volumes' z.
UNITS = ("nm", "nm", "nm")

#: Contrast of element volumes: from the low to the high percentile of the voxels.
CONTRAST_PERCENTILES = (0.5, 99.8)
#: Rendering of element volumes in 3D (napari: 'mip', 'attenuated_mip', 'iso', ...).
VOLUME_RENDERING = "attenuated_mip"
VOLUME_ATTENUATION = 0.5


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
            "scale": (ps, ps, ps),
            "units": UNITS,
            "axis_labels": TILT_AXIS_LABELS,
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


def tilt_summary(angles: Sequence[float], lo: float, hi: float, dropped: Sequence[float] = ()) -> str:
    """Which tilts a range keeps (less the ``dropped`` ones) and the missing wedge it leaves, for a label."""
    a = np.asarray(angles, dtype=float)
    inside = (a >= lo - 1e-9) & (a <= hi + 1e-9)
    d = np.asarray(list(dropped), dtype=float).reshape(-1, 1)
    gone = np.any(np.abs(a[None, :] - d) < ANGLE_TOL, axis=0) if d.size else np.zeros(a.size, bool)
    keep = a[inside & ~gone]
    note = f"; dropped {', '.join(f'{x:g}' for x in a[inside & gone])} deg" if np.any(inside & gone) else ""
    if keep.size < 2:
        return f"{keep.size} of {a.size} tilts in {lo:g}..{hi:g} deg: need at least 2{note}"
    wedge = 180.0 - (keep.max() - keep.min())
    shown = ", ".join(f"{x:g}" for x in keep)
    return (f"{keep.size} of {a.size} tilts ({shown}) deg; missing wedge {wedge:g} deg{note}")


def tilt_index(layer: Any, world_point: float) -> int:
    """The tilt a tilt-series layer shows at the dims point ``world_point`` of its first axis."""
    n = int(np.shape(layer.data)[0])
    k = round((float(world_point) - float(layer.translate[0])) / float(layer.scale[0]))
    return int(min(max(k, 0), n - 1))


def current_tilt_text(viewer: Any) -> str:
    """``"tilt 5 of 8: 0 deg (Fe [tilts])"`` for the visible tilt-series layer, in 2D; else ``""``."""
    if viewer.dims.ndisplay != 2 or viewer.dims.ndim < 3 or 0 in viewer.dims.displayed:
        return ""
    layers = [lyr for lyr in viewer.layers if is_tilt_layer(lyr) and lyr.visible]
    if not layers:
        return ""
    layer = layers[-1]
    angles = layer_meta(layer).get("angles") or []
    k = tilt_index(layer, viewer.dims.point[0])
    if k >= len(angles):
        return ""
    return f"tilt {k + 1} of {len(angles)}: {angles[k]:g} deg ({layer.name})"


def robust_contrast(volume: np.ndarray, percentiles: tuple[float, float] = CONTRAST_PERCENTILES,
                    max_samples: int = 200_000) -> tuple[float, float]:
    """Contrast limits from percentiles of the voxels (a strided sample of large volumes).

    A few bright voxels (or a floor over the whole cube) no longer decide the
    contrast as ``(0, max)`` does. Always ``lo < hi``.
    """
    flat = np.asarray(volume).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: flat.size // max_samples + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(flat, percentiles))
    lo = max(lo, 0.0) if float(flat.min()) >= 0 else lo
    if not hi > lo:
        hi = float(flat.max())
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def volume_shape_text(ny: int, nx: int, nz: int | None, pixel_size: float) -> str:
    """``"volume 256 x 64 x 64 voxels (z, y, x) = 3296 x 824 x 824 nm"``."""
    nz = nx if nz is None else int(nz)
    return (f"volume {nz} x {ny} x {nx} voxels (z, y, x) = "
            f"{nz * pixel_size:.4g} x {ny * pixel_size:.4g} x {nx * pixel_size:.4g} nm")


def element_legend(layers: Sequence[Any]) -> list[tuple[str, str]]:
    """``[(element, colour hex)]`` of visible element volumes, in layer order."""
    out = []
    for layer in layers:
        meta = layer_meta(layer)
        if meta.get("kind") != "volume" or not layer.visible:
            continue
        colour = layer.colormap.colors[-1]
        hexcol = "#" + "".join(f"{int(round(c * 255)):02x}" for c in colour[:3])
        out.append((str(meta.get("element") or layer.name), hexcol))
    return out
