import numpy as np
import pytest

from edxtomo.metrics import compare, nrmse, psnr, ssim
from edxtomo.phantom import PHANTOMS, acquire, make_phantom, tilt_angles


@pytest.mark.parametrize("name", sorted(PHANTOMS))
def test_phantoms_have_elements_sharing_boundaries(name):
    ph = make_phantom(name, 32)
    assert len(ph.elements) >= 3
    masks = [v > 0 for v in ph.volumes.values()]
    assert all(m.any() for m in masks)
    # Elements touch: dilating one element's support meets another's.
    from scipy import ndimage

    touching = sum(
        bool((ndimage.binary_dilation(a) & b).any())
        for i, a in enumerate(masks) for j, b in enumerate(masks) if i != j
    )
    assert touching >= 2


def test_acquisition_is_seed_deterministic_and_poisson():
    ph = make_phantom("memory_cell", 24)
    ang = tilt_angles(-60, 60, 10)
    a = acquire(ph, ang, dose=3, seed=5)
    b = acquire(ph, ang, dose=3, seed=5)
    c = acquire(ph, ang, dose=3, seed=6)
    np.testing.assert_array_equal(a.maps["Ge"], b.maps["Ge"])
    assert not np.array_equal(a.maps["Ge"], c.maps["Ge"])
    assert a.angles.tolist() == list(range(-60, 61, 10))
    for el, m in a.maps.items():
        assert np.all(m == np.round(m)), el  # integer counts
    # Mean counts inside the footprint follow the dose times the element's yield.
    clean = acquire(ph, ang, dose=None)
    fp = clean.maps["Ge"] > 0.01 * clean.maps["Ge"].max()
    assert a.maps["Ge"][fp].mean() == pytest.approx(3 * ph.yields["Ge"], rel=0.1)


def test_tilt_angles():
    np.testing.assert_allclose(tilt_angles(-40, 40, 5), np.arange(-40, 41, 5))
    with pytest.raises(ValueError, match="positive"):
        tilt_angles(-40, 40, 0)


def test_metrics_scale_invariant_and_ordered():
    rng = np.random.default_rng(0)
    truth = np.zeros((32, 32, 32))
    truth[8:24, 8:24, 8:24] = 1
    assert psnr(3.0 * truth, truth) == float("inf")
    assert nrmse(7.0 * truth, truth) == pytest.approx(0, abs=1e-12)
    assert ssim(2.0 * truth, truth) == pytest.approx(1.0)
    noisy = truth + 0.1 * rng.standard_normal(truth.shape)
    noisier = truth + 0.3 * rng.standard_normal(truth.shape)
    # Over 60 seeds the PSNR differs by >= 7.4 dB and the SSIM by >= 0.16.
    assert psnr(noisy, truth) > psnr(noisier, truth)
    assert ssim(noisy, truth) > ssim(noisier, truth)
    # Noise sigma 0.1 on a unit range is 20 dB; the least-squares scale fit
    # (a = 0.926 here) removes part of the noise: 20.33 dB expected. Measured
    # over 60 noise seeds: 20.28–20.41 dB (at 16³ it was 20.13–20.60, and seed 0
    # gave 20.29 against the former bound of 20.3).
    assert psnr(noisy, truth) == pytest.approx(20.33, abs=0.2)
    scores = compare({"A": noisy}, {"A": truth})
    assert scores["mean"]["psnr"] == scores["A"]["psnr"]
