"""Directional FSC resolution: known Gaussian blur, limited-angle anisotropy, ``resolution`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edxtomo.cli import main
from edxtomo.io import SIDECAR_NAME, write_map_folder, write_volumes
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.resolution import (
    directional_fsc,
    elongation,
    estimate_resolution,
    resolutions,
    split_halves,
    threshold,
)

NOISE_POWER = 0.01  # per voxel, against a white signal of unit power


def blurred_pair(n: int, sigma: tuple[float, float, float], seed: int):
    """Two noisy copies of one white random texture blurred by a Gaussian (sigma in voxels)."""
    rng = np.random.default_rng(seed)
    k = np.meshgrid(*[np.fft.fftfreq(n)] * 3, indexing="ij")
    gain = np.exp(-2 * np.pi**2 * sum((s * kk) ** 2 for s, kk in zip(sigma, k, strict=True)))
    clean = np.fft.ifftn(np.fft.fftn(rng.standard_normal((n, n, n))) * gain).real
    noise = np.sqrt(NOISE_POWER)
    return (clean + noise * rng.standard_normal(clean.shape),
            clean + noise * rng.standard_normal(clean.shape))


def expected_resolution(sigma_voxels: float, voxel_nm: float, fsc_level: float = 1 / 7) -> float:
    """Where SNR(f)/(1+SNR(f)) = level, SNR(f) = exp(-4 pi^2 sigma^2 f^2) / noise power."""
    snr = fsc_level / (1 - fsc_level)
    f = np.sqrt(-np.log(snr * NOISE_POWER)) / (2 * np.pi * sigma_voxels * voxel_nm)
    return 1 / f


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_blur_gives_the_expected_resolution(seed):
    # Measured (seeds 0-4, 32^3): every axis within -11 % .. +7 % of the analytic value.
    a, b = blurred_pair(32, (1.5, 1.5, 1.5), seed)
    res = resolutions(directional_fsc((a, b), voxel_size=0.5), "1/7")
    expected = expected_resolution(1.5, 0.5)
    for axis in ("z", "y", "x"):
        assert res[axis]["crossed"]
        assert res[axis]["nm"] == pytest.approx(expected, rel=0.2), axis


def test_anisotropic_blur_is_seen_along_its_axis():
    # sigma_z = 2 sigma_x. A 30 deg cone mixes in neighbouring directions, which
    # biases z low and x high (measured at 48^3, seeds 0-5: z at 0.80-0.93 and
    # x at 0.98-1.08 of the single-axis values).
    a, b = blurred_pair(48, (3.0, 1.5, 1.5), seed=0)
    res = resolutions(directional_fsc((a, b), voxel_size=1.0), "1/7")
    assert 0.7 * expected_resolution(3.0, 1.0) < res["z"]["nm"] < 1.05 * expected_resolution(3.0, 1.0)
    assert res["x"]["nm"] == pytest.approx(expected_resolution(1.5, 1.0), rel=0.2)
    assert res["z"]["nm"] / res["x"]["nm"] > 1.5


def test_half_bit_threshold_and_errors():
    t = threshold("half-bit", np.array([1, 100, 1e8]))
    assert t[0] == pytest.approx(1.0, abs=0.01)  # one voxel: nothing can pass
    assert t[-1] == pytest.approx(0.2071 / 1.2071, abs=1e-3)
    assert np.all(np.diff(t) < 0)
    with pytest.raises(ValueError, match="unknown FSC criterion"):
        threshold("fsc-0.3", np.ones(2))
    with pytest.raises(ValueError, match="same shape"):
        directional_fsc((np.zeros((4, 4, 4)), np.zeros((4, 4, 5))))


def test_split_halves_interleave_and_span_the_range(small_series):
    even, odd = split_halves(small_series)
    np.testing.assert_array_equal(even.angles, small_series.angles[0::2])
    np.testing.assert_array_equal(odd.angles, small_series.angles[1::2])
    np.testing.assert_array_equal(odd.maps["In"], small_series.maps["In"][1::2])
    with pytest.raises(ValueError, match="too few"):
        split_halves(small_series.select_tilt_range(-40, -30))


@pytest.fixture(scope="module")
def limited_angle():
    phantom = make_phantom("core_shell", 24, seed=1)
    return phantom, acquire(phantom, tilt_angles(-40, 40, 4), dose=10.0, seed=1)


def test_sirt_is_more_anisotropic_than_tv_at_limited_angles(limited_angle):
    # Measured (24^3, +-40 deg, seeds 1-3): SIRT (50 it.) z/x 1.56-1.82, TV (150 it.)
    # 1.17-1.37; x and y reach the Nyquist limit in both (half-bit).
    phantom, series = limited_angle
    sirt = estimate_resolution(series, "sirt", iterations=50, device="cpu")
    tv = estimate_resolution(series, "tv", iterations=150, device="cpu")
    assert sirt.anisotropy > tv.anisotropy + 0.1
    assert tv.anisotropy > 1.05  # the missing wedge still shows
    assert sirt.z_nm > sirt.x_nm


def test_elongation_sees_the_missing_wedge(limited_angle):
    # Measured (24^3, +-40 deg, seeds 1-3): truth 0.95-1.20 (small discretised
    # cores), SIRT 2.1-2.7, TV 1.7-2.3, SIRT above TV by 0.39-0.66 per element.
    from edxtomo.recon import reconstruct, run_to_end

    phantom, series = limited_angle
    sirt = run_to_end(reconstruct(series, "sirt", iterations=50, device="cpu")).volumes
    tv = run_to_end(reconstruct(series, "tv", iterations=150, device="cpu")).volumes
    for e, truth in phantom.volumes.items():
        assert 0.9 < elongation(truth) < 1.3, e
        assert elongation(sirt[e]) > 1.6 * elongation(truth), e
        assert elongation(sirt[e]) > elongation(tv[e]) + 0.15, e


def test_resolution_command_writes_json_and_attaches(tmp_path, limited_angle):
    phantom, series = limited_angle
    write_map_folder(series, tmp_path / "maps")
    write_volumes(tmp_path / "rec", phantom.volumes, series.pixel_size,
                  sidecar={"method": "sirt", "params": {}})
    code = main(["resolution", str(tmp_path / "maps"), "--out", str(tmp_path / "res"),
                 "--method", "sirt", "--iterations", "20", "--device", "cpu",
                 "--criterion", "1/7", "--param", "relaxation=1.0",
                 "--attach-to", str(tmp_path / "rec")])
    assert code == 0
    data = json.loads((tmp_path / "res" / "resolution.json").read_text())
    for key in ("x_nm", "y_nm", "z_nm"):
        assert data[key] >= 2 * series.pixel_size - 1e-9  # never finer than Nyquist
    assert data["criterion"] == "1/7" and data["params"]["iterations"] == 20
    assert data["z_nm"] > data["x_nm"]
    side = json.loads((tmp_path / "rec" / SIDECAR_NAME).read_text())
    assert side["resolution"]["z_nm"] == data["z_nm"] and "fsc" not in side["resolution"]


def test_resolution_command_rejects_unknown_parameters(tmp_path, limited_angle, capsys):
    write_map_folder(limited_angle[1], tmp_path / "maps")
    code = main(["resolution", str(tmp_path / "maps"), "--out", str(tmp_path / "res"),
                 "--method", "sirt", "--param", "tv_weight=0.1"])
    assert code == 2
    assert "tv_weight" in capsys.readouterr().err


@pytest.mark.realdata
def test_resolution_command_on_real_quantum_dots(qd, tmp_path):
    # 13 .mat maps with no angles in them: the step is given on the command line.
    code = main(["resolution", str(qd), "--out", str(tmp_path / "res"), "--method", "sirt",
                 "--iterations", "20", "--device", "cpu", "--bin", "8",
                 "--angle-start", "-60", "--angle-step", "10"])
    assert code == 0
    data = json.loads((tmp_path / "res" / "resolution.json").read_text())
    assert len(data["angles"]) == 13 and data["voxel_size_nm"] > 0
    for axis in ("x", "y", "z"):
        assert 2 * data["voxel_size_nm"] - 1e-9 <= data[f"{axis}_nm"] < 32 * data["voxel_size_nm"]


def test_reconstruct_resolution_flag_stores_it_in_the_sidecar(tmp_path, limited_angle):
    _, series = limited_angle
    write_map_folder(series, tmp_path / "maps")
    code = main(["reconstruct", str(tmp_path / "maps"), "--out", str(tmp_path / "rec"), "--method", "sirt",
                 "--iterations", "20", "--device", "cpu", "--resolution"])
    assert code == 0
    side = json.loads((tmp_path / "rec" / SIDECAR_NAME).read_text())
    res = side["resolution"]
    assert res["method"] == "sirt" and res["criterion"] == "half-bit" and "fsc" not in res
    assert res["z_nm"] > res["x_nm"] >= 2 * series.pixel_size - 1e-9
    assert side["status"] == "finished"  # the run's own record is untouched
