"""Sample data: a synthetic multi-element tilt series and its ground truth."""

from __future__ import annotations

from functools import lru_cache

from ..phantom import Phantom, acquire, make_phantom, tilt_angles
from .layers import (
    META_KEY,
    UNITS,
    VOLUME_ATTENUATION,
    VOLUME_AXIS_LABELS,
    VOLUME_RENDERING,
    LayerDataTuple,
    colormap_for,
    series_to_layer_data,
)

SAMPLE_SIZE = 48
SAMPLE_DOSE = 5.0


@lru_cache(maxsize=2)
def _phantom(size: int) -> Phantom:
    return make_phantom("core_shell", size, seed=0)


def phantom_tilt_series(size: int = SAMPLE_SIZE) -> list[LayerDataTuple]:
    """Core–shell phantom imaged at -40..+40 deg in 5 deg steps, Poisson counts."""
    series = acquire(_phantom(size), tilt_angles(-40, 40, 5), dose=SAMPLE_DOSE, seed=0)
    return series_to_layer_data(series, inputs=[], read_options={})


def phantom_ground_truth(size: int = SAMPLE_SIZE) -> list[LayerDataTuple]:
    """The phantom's element volumes ``(nz, ny, nx)``, one layer per element."""
    ph = _phantom(size)
    ps = ph.pixel_size
    return [
        (vol, {"name": f"{el} [truth]", "colormap": colormap_for(i), "blending": "additive",
               "rendering": VOLUME_RENDERING, "attenuation": VOLUME_ATTENUATION,
               "scale": (ps, ps, ps), "units": UNITS, "axis_labels": VOLUME_AXIS_LABELS,
               "metadata": {META_KEY: {"kind": "volume", "element": el, "pixel_size_nm": ps}}},
         "image")
        for i, (el, vol) in enumerate(ph.volumes.items())
    ]
