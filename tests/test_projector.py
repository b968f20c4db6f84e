"""ParallelProjector: exact adjoint, geometry, mass conservation, agreement with astra, autograd.

Layouts: volumes ``(E, nz, ny, nx)``, projections ``(E, n_angles, ny, n_det)``.
astra's 2D image of one of our ``(z, x)`` slices is that slice with its rows
flipped (astra's first row is the top of the image, our ``z`` index grows
upwards); astra's sinogram of it is our ``(angle, detector)`` slice as is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edxtomo.projector import ParallelProjector, system_matrix

TILTS = np.arange(-40.0, 41.0, 5.0)

# (angles in degrees, nz, ny, nx, n_det, elements)
GEOMETRIES = [
    pytest.param(TILTS, 16, 3, 16, None, 2, id="square-tilt-series"),
    pytest.param(np.arange(-60.0, 61.0, 7.5), 13, 5, 17, None, 1, id="odd-nz-ne-nx"),
    pytest.param(np.array([-89.5, -45.0, -12.3, 0.0, 33.3, 45.0, 90.0]), 11, 2, 9, 15, 3,
                 id="wide-detector-odd-angles"),
    pytest.param(np.array([-70.0, -5.0, 20.0, 61.0]), 20, 1, 12, 7, 2, id="narrow-detector"),
    pytest.param(np.array([17.0]), 7, 4, 10, 11, 1, id="one-angle"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The problems here are tiny: one thread is as fast and, on a loaded machine,
    avoids OpenMP threads stalling each other at every small sparse product."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _slice_volume(slice_zx: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """One ``(nz, nx)`` slice as a volume ``(1, nz, 1, nx)``."""
    return torch.as_tensor(np.asarray(slice_zx), dtype=dtype)[None, :, None, :]


def _disk(n: int, radius: float) -> np.ndarray:
    c = np.arange(n) - (n - 1) / 2
    return (c[:, None] ** 2 + c[None, :] ** 2 <= radius**2).astype(np.float64)


def _gaussians(n: int) -> np.ndarray:
    """A smooth slice: a few Gaussian blobs well inside the field of view."""
    c = np.arange(n) - (n - 1) / 2
    z, x = np.meshgrid(c, c, indexing="ij")
    out = np.zeros((n, n))
    for cz, cx, s, a in ((0.1, -0.2, 0.12, 1.0), (-0.2, 0.15, 0.08, 0.7), (0.25, 0.25, 0.06, 0.5)):
        out += a * np.exp(-((z - cz * n) ** 2 + (x - cx * n) ** 2) / (2 * (s * n) ** 2))
    return out


# ------------------------------------------------------------------ adjoint
@pytest.mark.parametrize(("angles", "nz", "ny", "nx", "n_det", "e"), GEOMETRIES)
def test_adjoint_dot_product(angles, nz, ny, nx, n_det, e):
    """<A x, y> = <x, Aᵀ y> for random x, y, in float64."""
    proj = ParallelProjector(angles, nz, nx, n_det=n_det, dtype=torch.float64)
    rng = _rng(1)
    x = torch.from_numpy(rng.standard_normal((e, nz, ny, nx)))
    y = torch.from_numpy(rng.standard_normal((e, len(angles), ny, proj.n_det)))
    ax = proj.forward(x)
    aty = proj.adjoint(y)
    assert ax.shape == y.shape and aty.shape == x.shape
    lhs, rhs = float((ax * y).sum()), float((x * aty).sum())
    assert abs(lhs - rhs) / max(abs(lhs), abs(rhs)) < 1e-5


def test_adjoint_matches_autograd_vector_jacobian_product():
    proj = ParallelProjector(TILTS, 9, 11, n_det=13, dtype=torch.float64)
    rng = _rng(2)
    x = torch.from_numpy(rng.random((2, 9, 3, 11))).requires_grad_(True)
    y = torch.from_numpy(rng.random((2, TILTS.size, 3, 13)))
    (grad,) = torch.autograd.grad((proj.forward(x) * y).sum(), x)
    torch.testing.assert_close(grad, proj.adjoint(y), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ geometry
@pytest.mark.parametrize("n", [21, 20])
@pytest.mark.parametrize("theta", [-40.0, -15.0, 0.0, 25.0, 40.0])
def test_sign_convention_point_above_centre(n, theta):
    """A point at a larger z index lands at u = dz·sin θ: larger detector index at θ > 0.

    The centroid of the binned footprint equals the footprint's centre up to a
    binning error of a few hundredths of a bin.
    """
    dz = 5
    centre = (n - 1) / 2
    img = np.zeros((n, n))
    iz, ix = n // 2 + dz, n // 2  # for even n the voxel sits half a bin off centre in x
    img[iz, ix] = 1.0
    proj = ParallelProjector([theta], n, n, dtype=torch.float64)
    p = proj.forward(_slice_volume(img))[0, 0, 0].numpy()
    centroid = (p * np.arange(n)).sum() / p.sum()
    t = np.deg2rad(theta)
    expected = centre + (ix - centre) * np.cos(t) + (iz - centre) * np.sin(t)
    assert centroid == pytest.approx(expected, abs=0.05)
    without_height = centre + (ix - centre) * np.cos(t)  # where the point would land at z = 0
    if theta > 0:
        assert centroid > without_height + 1
    elif theta < 0:
        assert centroid < without_height - 1


def test_larger_x_index_is_larger_detector_index_at_zero_tilt():
    n = 15
    img = np.zeros((n, n))
    img[3, 11] = 1.0
    p = ParallelProjector([0.0], n, n, dtype=torch.float64).forward(_slice_volume(img))[0, 0, 0]
    assert int(torch.argmax(p)) == 11 and float(p[11]) == pytest.approx(1.0)


def test_slices_and_elements_are_independent_2d_problems():
    """Projecting a stack equals projecting each (element, y) slice on its own."""
    nz, ny, nx, e = 10, 4, 13, 2
    proj = ParallelProjector(TILTS, nz, nx, dtype=torch.float64)
    vol = torch.from_numpy(_rng(3).random((e, nz, ny, nx)))
    full = proj.forward(vol)
    for i in range(e):
        for j in range(ny):
            one = proj.forward(vol[i : i + 1, :, j : j + 1, :])
            torch.testing.assert_close(full[i : i + 1, :, j : j + 1, :], one)


# ------------------------------------------------------------------ mass conservation
@pytest.mark.parametrize("n", [24, 17])
def test_mass_conserved_at_every_angle(n):
    """Inside the field of view, every projection sums to the slice sum."""
    angles = np.array([-80.0, -40.0, -22.5, 0.0, 10.0, 45.0, 67.0, 89.0])
    rng = _rng(4)
    vol = np.stack([_disk(n, n / 2 - 1.5) * rng.random((n, n)) for _ in range(3)], axis=1)  # (nz, ny, nx)
    vol = np.stack([vol, 2 * vol[::-1]])  # two elements
    proj = ParallelProjector(angles, n, n, dtype=torch.float64)
    p = proj.forward(torch.from_numpy(vol)).numpy()  # (E, n_angles, ny, n_det)
    slice_sums = vol.sum(axis=(1, 3))  # (E, ny)
    np.testing.assert_allclose(p.sum(axis=3), np.repeat(slice_sums[:, None], angles.size, 1),
                               rtol=1e-10)


def test_wide_detector_catches_the_whole_slice():
    """With n_det >= sqrt(nz² + nx²) + 2 nothing leaves the detector, at any angle."""
    nz, nx = 12, 16
    n_det = int(np.ceil(np.hypot(nz, nx))) + 2
    angles = np.linspace(-90, 90, 13)
    vol = _rng(5).random((1, nz, 2, nx))
    p = ParallelProjector(angles, nz, nx, n_det=n_det, dtype=torch.float64).forward(
        torch.from_numpy(vol))
    np.testing.assert_allclose(p.sum(dim=3).numpy(),
                               np.broadcast_to(vol.sum(axis=(1, 3))[:, None], (1, 13, 2)), rtol=1e-10)


def test_column_sums_count_the_angles_inside_the_field_of_view():
    n = 20
    proj = ParallelProjector(TILTS, n, n, dtype=torch.float64)
    cols = proj.col_sums()[0, :, 0, :].numpy()
    inside = _disk(n, n / 2 - 1.5).astype(bool)
    np.testing.assert_allclose(cols[inside], TILTS.size, rtol=1e-10)
    _, _, vals, shape = system_matrix(TILTS, n, n)
    assert shape == (TILTS.size * n, n * n) and vals.min() > 0 and vals.max() <= 1 + 1e-12


# ------------------------------------------------------------------ astra
def _astra_sino(img_zx: np.ndarray, angles: np.ndarray, n_det: int, kernel: str):
    """astra's CPU 2D parallel-beam sinogram and back-projection of it."""
    astra = pytest.importorskip("astra")
    nz, nx = img_zx.shape
    vol_geom = astra.create_vol_geom(nz, nx)
    proj_geom = astra.create_proj_geom("parallel", 1.0, n_det, np.deg2rad(angles))
    pid = astra.create_projector(kernel, proj_geom, vol_geom)
    try:
        sid, sino = astra.create_sino(np.ascontiguousarray(img_zx[::-1]), pid)
        bid, back = astra.create_backprojection(sino, pid)
        astra.data2d.delete([sid, bid])
    finally:
        astra.projector.delete(pid)
    return np.asarray(sino, np.float64), np.asarray(back[::-1], np.float64)


def _norm_diff(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize(
    ("angles", "nz", "nx", "n_det"),
    [
        (TILTS, 32, 32, 32),
        (np.arange(-70.0, 71.0, 10.0), 17, 23, 23),
        (np.array([-89.0, -45.0, -3.7, 0.0, 30.0, 60.0, 85.0]), 20, 14, 25),
        (np.array([-50.0, 0.0, 50.0]), 15, 15, 9),
    ],
)
def test_agrees_with_astra_strip(angles, nz, nx, n_det):
    """Same strip model as astra's CPU 2D 'strip' projector: forward and back projection."""
    img = _rng(6).random((nz, nx))
    sino, back = _astra_sino(img, angles, n_det, "strip")
    proj = ParallelProjector(angles, nz, nx, n_det=n_det, dtype=torch.float64)
    ours = proj.forward(_slice_volume(img))[0, :, 0, :].numpy()
    assert _norm_diff(ours, sino) < 0.02
    assert _norm_diff(ours, sino) < 1e-4  # in practice astra's float32 rounding
    ours_back = proj.adjoint(torch.from_numpy(sino)[None, :, None, :])[0, :, 0, :].numpy()
    assert _norm_diff(ours_back, back) < 1e-4


def test_agrees_with_astra_linear_on_a_smooth_phantom():
    n = 48
    img = _gaussians(n)
    sino, _ = _astra_sino(img, TILTS, n, "linear")
    ours = ParallelProjector(TILTS, n, n, dtype=torch.float64).forward(_slice_volume(img))
    assert _norm_diff(ours[0, :, 0, :].numpy(), sino) < 0.02


# ------------------------------------------------------------------ autograd
def test_gradcheck_forward_and_adjoint():
    proj = ParallelProjector([-30.0, 0.0, 20.0, 55.0], 4, 5, n_det=6, dtype=torch.float64)
    vol = torch.rand(2, 4, 2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                     requires_grad=True)
    sino = torch.rand(2, 4, 2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                      requires_grad=True)
    assert torch.autograd.gradcheck(proj.forward, (vol,))
    assert torch.autograd.gradcheck(proj.adjoint, (sino,))


# ------------------------------------------------------------------ shapes and dtypes
@pytest.mark.parametrize("ny", [1, 2, 7, 33])
def test_any_number_of_slices(ny):
    proj = ParallelProjector(TILTS, 8, 10, n_det=12)
    vol = torch.rand(3, 8, ny, 10)
    p = proj.forward(vol)
    assert p.shape == (3, TILTS.size, ny, 12) and p.dtype == torch.float32
    assert proj.adjoint(p).shape == vol.shape


def test_float32_matches_float64():
    vol = _rng(7).random((2, 16, 3, 16))
    p64 = ParallelProjector(TILTS, 16, 16, dtype=torch.float64).forward(torch.from_numpy(vol))
    p32 = ParallelProjector(TILTS, 16, 16).forward(torch.from_numpy(vol.astype(np.float32)))
    torch.testing.assert_close(p32.double(), p64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "method"),
    [
        ((1, 9, 3, 10), "forward"),  # nz wrong
        ((1, 8, 3, 11), "forward"),  # nx wrong
        ((1, TILTS.size + 1, 3, 12), "adjoint"),  # one angle too many
        ((1, TILTS.size, 3, 10), "adjoint"),  # n_det wrong
    ],
)
def test_wrong_shapes_are_rejected_clearly(shape, method):
    proj = ParallelProjector(TILTS, 8, 10, n_det=12)
    with pytest.raises(ValueError, match="does not match"):
        getattr(proj, method)(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(8, 3, 10), (1, 1, 8, 3, 10)])
def test_wrong_rank_raises_value_error(shape):
    proj = ParallelProjector(TILTS, 8, 10)
    with pytest.raises(ValueError):
        proj.forward(torch.zeros(shape))


def test_wrong_rank_message_names_the_layout():
    proj = ParallelProjector(TILTS, 8, 10)
    with pytest.raises(ValueError, match=r"\(n_elements, nz, ny, nx\)"):
        proj.forward(torch.zeros(8, 3, 10))
    with pytest.raises(ValueError, match=r"\(n_elements, n_angles, ny, n_det\)"):
        proj.adjoint(torch.zeros(TILTS.size, 3, 10))


# ------------------------------------------------------------------ devices
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu():
    vol = torch.rand(2, 16, 3, 16)
    cpu = ParallelProjector(TILTS, 16, 16)
    gpu = ParallelProjector(TILTS, 16, 16, device="cuda")
    p = gpu.forward(vol.cuda())
    assert p.device.type == "cuda"
    torch.testing.assert_close(p.cpu(), cpu.forward(vol), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu.adjoint(p).cpu(), cpu.adjoint(cpu.forward(vol)),
                               rtol=1e-5, atol=1e-4)
