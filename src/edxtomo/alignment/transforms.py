"""In-plane rotation and shift of tilt maps, applied in one interpolation.

Convention: the tilt axis found in the raw maps runs along
``(dy, dx) = (cos α, sin α)`` in pixel coordinates, ``α = tilt_axis_deg``.
In napari's display (row 0 at the top, x to the right) a positive ``α``
turns the axis anticlockwise from the image's y (downward) direction.

Correcting a map rotates it by ``-α`` about the image centre, so the axis
becomes the image rows' direction, then moves it by its shift ``(dy, dx)``
(in the corrected frame)::

    aligned(o) = raw(R(α) · (o − s − c) + c),    R(α) = [[cos α, −sin α], [sin α, cos α]]

Both steps are one linear interpolation, so counts are interpolated once and
stay non-negative.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def rotation(alpha_deg: float) -> np.ndarray:
    """``R(α)`` in ``(y, x)`` coordinates: maps the y direction onto the axis direction."""
    a = np.deg2rad(alpha_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _centre(shape: tuple[int, ...]) -> np.ndarray:
    return (np.asarray(shape[-2:], dtype=np.float64) - 1) / 2


def correct_image(img: np.ndarray, alpha_deg: float, shift: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """Rotate ``img`` by ``-alpha_deg`` and move it by ``shift`` (see the module docstring)."""
    r = rotation(alpha_deg)
    c = _centre(img.shape)
    offset = c - r @ (np.asarray(shift, np.float64) + c)
    return ndimage.affine_transform(np.asarray(img, np.float64), r, offset=offset, order=1,
                                    mode="constant", cval=cval)


def uncorrect_image(img: np.ndarray, alpha_deg: float, shift: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """Inverse of :func:`correct_image`: a corrected-frame image back in the raw frame."""
    rt = rotation(alpha_deg).T
    c = _centre(img.shape)
    offset = c + np.asarray(shift, np.float64) - rt @ c
    return ndimage.affine_transform(np.asarray(img, np.float64), rt, offset=offset, order=1,
                                    mode="constant", cval=cval)


def correct_stack(stack: np.ndarray, alpha_deg: float, shifts: np.ndarray) -> np.ndarray:
    """:func:`correct_image` for every tilt of ``(n, ny, nx)``; float32, clipped at 0."""
    out = np.empty(stack.shape, dtype=np.float32)
    for i, (img, s) in enumerate(zip(stack, np.asarray(shifts, np.float64).reshape(-1, 2), strict=True)):
        out[i] = np.clip(correct_image(img, alpha_deg, s), 0, None)
    return out


def valid_masks(shape: tuple[int, int, int], alpha_deg: float, shifts: np.ndarray) -> np.ndarray:
    """Per tilt, the corrected-frame pixels fed by measured pixels (not the zero fill)."""
    ones = np.ones(shape[1:])
    return np.stack([correct_image(ones, alpha_deg, s) > 0.999 for s in np.asarray(shifts).reshape(-1, 2)])


def reframe_shifts(shifts: np.ndarray, alpha_old: float, alpha_new: float) -> np.ndarray:
    """Shifts for axis ``alpha_new`` that keep each map's raw-frame translation of ``alpha_old``."""
    m = rotation(alpha_new).T @ rotation(alpha_old)
    return np.asarray(shifts, np.float64).reshape(-1, 2) @ m.T
