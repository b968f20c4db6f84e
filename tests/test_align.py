"""Tilt-series alignment: recovery of known shifts on a phantom, and the real series."""

from __future__ import annotations

import numpy as np
import pytest

from edxtomo.align import (
    Shifts,
    align_series,
    apply_shifts,
    estimate_shifts,
    load_shifts,
    neighbour_misfit,
    phase_correlation,
    save_shifts,
    series_shifts,
)
from edxtomo.phantom import acquire, make_phantom, tilt_angles


@pytest.fixture(scope="module")
def phantom_series():
    return acquire(make_phantom("core_shell", 48, seed=2), tilt_angles(-40, 40, 10), dose=20, seed=1)


def test_phase_correlation_sign_and_subpixel():
    rng = np.random.default_rng(0)
    img = np.zeros((64, 64))
    img[20:30, 25:40] = 5
    img = img + rng.poisson(0.5, img.shape)
    from scipy import ndimage

    moved = ndimage.shift(img, (2.3, -3.6), order=1)
    np.testing.assert_allclose(phase_correlation(img, moved), (-2.3, 3.6), atol=0.3)


def test_phase_correlation_peak_on_the_search_edge_is_finite():
    """A shift beyond ``max_shift`` returns a finite shift on the edge of the search disk, not NaN."""
    rng = np.random.default_rng(1)
    img = np.zeros((64, 64))
    img[20:30, 25:40] = 5
    img = img + rng.poisson(0.5, img.shape)
    moved = np.roll(img, 7, axis=1)
    got = phase_correlation(img, moved, sigma=1.0, max_shift=4)
    assert np.isfinite(got).all()
    assert np.hypot(*got) <= 4 + 1 and got[1] < -3


def test_known_shifts_recovered_on_phantom(phantom_series):
    """Drift added to a simulated series is undone within 0.5 px.

    The phantom's features move with tilt, so neighbour registration of the
    undrifted series is not exactly zero; the drift is measured against it.
    """
    s = phantom_series
    true = np.random.default_rng(0).uniform(-4, 4, (s.n_angles, 2))
    drifted = apply_shifts(s, true)
    base = estimate_shifts(s.stack().sum(axis=0), s.angles)
    found = estimate_shifts(drifted.stack().sum(axis=0), s.angles)
    i0 = int(np.argmin(np.abs(s.angles)))
    error = (found - base) + (true - true[i0])
    assert np.abs(error).max() < 0.5
    aligned = align_series(drifted)
    assert neighbour_misfit(aligned.stack().sum(0)) < neighbour_misfit(drifted.stack().sum(0))


def test_same_shifts_for_every_element_and_non_negative(phantom_series):
    out = align_series(phantom_series)
    assert out.elements == phantom_series.elements
    assert all(m.min() >= 0 for m in out.maps.values())
    shifts = np.asarray(out.provenance["alignment"]["shifts_px"])
    again = apply_shifts(phantom_series, shifts)
    for el in out.elements:
        np.testing.assert_array_equal(again.maps[el], out.maps[el])


def test_shifts_file_round_trip_and_rescaling(tmp_path, phantom_series):
    aligned = align_series(phantom_series.bin(2))
    shifts = series_shifts(aligned)
    path = save_shifts(tmp_path / "shifts.json", shifts)
    back = load_shifts(path)
    np.testing.assert_allclose(back.shifts, shifts.shifts)
    assert back.pixel_size == pytest.approx(phantom_series.pixel_size * 2)
    full = apply_shifts(phantom_series, back)  # found on the binned copy, applied unbinned
    np.testing.assert_allclose(full.provenance["alignment"]["shifts_px"], shifts.shifts * 2)
    with pytest.raises(ValueError, match="other angles"):
        apply_shifts(phantom_series, Shifts(back.shifts, back.angles + 1, back.pixel_size))


@pytest.mark.realdata
def test_real_series_misfit_drops(shared_data):
    from edxtomo.io.spectra import load_spectrum_series

    folder = shared_data / "openncem_idp_tilt10"
    if not folder.is_dir():
        pytest.skip(f"real tilt series not found at {folder}")
    series, haadf = load_spectrum_series(folder, lines=["Fe_Ka", "Si_Ka", "Mg_Ka"], bin_factor=4)
    before = neighbour_misfit(series.stack().sum(0))
    for ref in (None, haadf):
        out = align_series(series, reference=ref)
        after = neighbour_misfit(out.stack().sum(0))
        assert after < 0.7 * before, (ref is None, before, after)
