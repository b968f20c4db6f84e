import numpy as np
import pytest

from edxtomo.tiltseries import TiltSeries, TiltSeriesError


def make(n=5, ny=6, nx=8, angles=None, **maps):
    rng = np.random.default_rng(0)
    if not maps:
        maps = {"Ge": rng.poisson(3, (n, ny, nx)), "Te": rng.poisson(2, (n, ny, nx))}
    angles = np.linspace(-40, 40, n) if angles is None else angles
    return TiltSeries(maps=maps, angles=angles, pixel_size=2.0, source="test.tif")


def test_valid_series_properties():
    s = make()
    assert s.elements == ["Ge", "Te"]
    assert s.shape == (5, 6, 8)
    assert s.maps["Ge"].dtype == np.float32
    assert s.missing_wedge == pytest.approx(100.0)
    assert s.stack().shape == (2, 5, 6, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"angles": np.linspace(-40, 40, 4)}, "has 5 maps but there are 4 tilt angles"),
        ({"Ge": np.full((5, 6, 8), np.nan)}, "NaN or inf"),
        ({"Ge": -np.ones((5, 6, 8))}, "negative values"),
        ({"Ge": np.zeros((5, 6, 8))}, "zero everywhere"),
        ({"angles": np.array([-40, -20, 0, 0, 20.0])}, "duplicate tilt angles: 0"),
        ({"angles": np.array([-40, -20, 0, 10, 95.0])}, "between -90 and 90"),
    ],
)
def test_validation_names_source_and_problem(kwargs, message):
    with pytest.raises(TiltSeriesError, match=message) as err:
        make(**kwargs)
    assert "test.tif" in str(err.value)


def test_mismatched_shapes_rejected():
    with pytest.raises(TiltSeriesError, match="shape"):
        make(Ge=np.ones((5, 6, 8)), Te=np.ones((5, 6, 7)))


def test_unsorted_angles_sorted_with_warning():
    ge = np.arange(3)[:, None, None] * np.ones((3, 2, 2)) + 1
    with pytest.warns(UserWarning, match="sorted"):
        s = make(angles=np.array([20.0, -20.0, 0.0]), Ge=ge)
    np.testing.assert_array_equal(s.angles, [-20, 0, 20])
    np.testing.assert_array_equal(s.maps["Ge"][:, 0, 0], [2, 3, 1])


def test_select_tilt_range_keeps_inclusive_bounds():
    s = make(n=9)
    sub = s.select_tilt_range(-20, 20)
    np.testing.assert_allclose(sub.angles, [-20, -10, 0, 10, 20])
    np.testing.assert_array_equal(sub.maps["Ge"], s.maps["Ge"][2:7])
    assert "select_tilt_range -20 20" in sub.provenance["steps"]
    with pytest.raises(TiltSeriesError, match="keeps 0 tilt"):
        s.select_tilt_range(50, 60)
    with pytest.raises(TiltSeriesError, match="above the maximum"):
        s.select_tilt_range(20, -20)


def test_binning_preserves_counts_and_scales_pixel_size():
    s = make(ny=9, nx=8)
    b = s.bin(2)
    assert b.shape == (5, 4, 4)
    assert b.pixel_size == 4.0
    np.testing.assert_allclose(b.maps["Ge"].sum(), s.maps["Ge"][:, :8, :8].sum())
    np.testing.assert_allclose(b.maps["Ge"][0, 0, 0], s.maps["Ge"][0, :2, :2].sum())
    with pytest.raises(TiltSeriesError, match="larger than the maps"):
        s.bin(16)


def test_select_elements_errors_name_missing():
    s = make()
    assert s.select_elements(["Te"]).elements == ["Te"]
    with pytest.raises(TiltSeriesError, match="Sb not in the series"):
        s.select_elements(["Sb"])
