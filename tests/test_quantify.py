"""Cliff–Lorimer composition, k-factor calibration, masking, region statistics, ``quantify`` CLI."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from edxtomo.cli import main
from edxtomo.io import read_volume, write_volumes
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.quantify import (
    atomic_mass,
    calibrate_k_factors,
    cliff_lorimer,
    k_factors_from_metadata,
    line_profile,
    region_stats,
    stats_csv,
)
from edxtomo.recon import reconstruct, run_to_end

GST = ("Ge", "Sb", "Te")


def true_composition(phantom) -> dict[str, np.ndarray]:
    """at.% of the ground truth: its per-element densities are atomic densities."""
    total = sum(phantom.volumes.values())
    inside = total > 0
    return {e: np.where(inside, 100 * v / np.where(inside, total, 1), np.nan)
            for e, v in phantom.volumes.items()}


def true_k_factors(phantom, series) -> dict[str, float]:
    """k = 1 / counts per unit density; the projections keep all the mass in view."""
    n = len(series.angles)
    return {e: n * float(phantom.volumes[e].sum()) / float(series.maps[e].sum())
            for e in phantom.elements}


@pytest.fixture(scope="module")
def gst_case():
    """A 32^3 memory cell at +-40 deg, its true k-factors and the GST interior."""
    phantom = make_phantom("memory_cell", 32, seed=1)
    series = acquire(phantom, tilt_angles(-40, 40, 5), dose=10.0, seed=1)
    # One voxel of erosion: the boundary voxels mix GST with vacuum/TiN by partial volume.
    interior = ndimage.binary_erosion(phantom.volumes["Te"] > 0, iterations=1)
    return phantom, series, true_k_factors(phantom, series), interior


def _check_gst_composition(volumes, gst_case, mean_tol, voxel_tol):
    phantom, _, k, interior = gst_case
    comp = cliff_lorimer(volumes, k)
    truth = true_composition(phantom)
    assert not np.isnan(comp.volumes["Ge"][interior]).any()
    for e in GST:
        mean = float(comp.volumes[e][interior].mean())
        assert mean == pytest.approx(float(truth[e][interior].mean()), abs=mean_tol), e
        mae = float(np.mean(np.abs(comp.volumes[e][interior] - truth[e][interior])))
        assert mae < voxel_tol, (e, mae)


def test_tv_composition_matches_truth_inside_the_object(gst_case):
    # Measured (seeds 1-3): interior means within 1.3 at.% of the truth;
    # per-voxel mean absolute error 6-11 at.% (the Ge-rich grains are blurred;
    # SIRT: 14-21 at.%).
    volumes = run_to_end(reconstruct(gst_case[1], "tv", iterations=300, device="cpu")).volumes
    _check_gst_composition(volumes, gst_case, mean_tol=2.5, voxel_tol=14.0)


@pytest.mark.slow
def test_dipm_tv_composition_matches_truth_inside_the_object(gst_case):
    # Measured at 32^3, 150 iterations: interior means within 1.7 at.% of the
    # truth, per-voxel error 5-10 at.% (below TV's); few iterations, so a looser bar.
    volumes = run_to_end(reconstruct(gst_case[1], "dipm-tv", iterations=150, patience=None,
                                     device="cpu", seed=0)).volumes
    _check_gst_composition(volumes, gst_case, mean_tol=3.0, voxel_tol=14.0)


def test_calibration_recovers_the_simulated_k_factors():
    phantom = make_phantom("memory_cell", 24, seed=2)
    sensitivity = {"Ge": 40.0, "Sb": 25.0, "Te": 32.0, "Ti": 10.0}  # counts per unit density
    rng = np.random.default_rng(0)
    volumes = {e: rng.poisson(v * sensitivity[e]).astype(np.float32)
               for e, v in phantom.volumes.items()}
    matrix = (phantom.volumes["Te"] == 0.55) & (phantom.volumes["Ge"] == 0.25)
    nominal = {"Ge": 25 / 1.05 * 100, "Sb": 25 / 1.05 * 100, "Te": 55 / 1.05 * 100}
    k = calibrate_k_factors(volumes, matrix, nominal, k_factors={"Ti": 4.0})
    for e in GST:  # relative to Ge = 1
        assert k[e] == pytest.approx(sensitivity["Ge"] / sensitivity[e], rel=0.03), e
    assert k["Ti"] == 4.0
    # The calibrated composition of the region is its nominal composition.
    comp = cliff_lorimer(volumes, k, threshold=0.0)
    assert float(np.nanmean(comp.volumes["Te"][matrix])) == pytest.approx(55 / 1.05, abs=1.0)


def test_calibration_errors_name_the_problem():
    vols = {"Ge": np.ones((4, 4, 4)), "Te": np.ones((4, 4, 4)), "Ti": np.zeros((4, 4, 4))}
    region = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="no k-factor for Ti"):
        calibrate_k_factors(vols, region, {"Ge": 50, "Te": 50})
    with pytest.raises(ValueError, match="Ti: no signal"):
        calibrate_k_factors(vols, region, {"Ge": 50, "Ti": 50})
    with pytest.raises(ValueError, match="empty"):
        calibrate_k_factors(vols, ~region, {"Ge": 50, "Te": 50})
    with pytest.raises(ValueError, match="Sb, which has no volume"):
        calibrate_k_factors(vols, region, {"Ge": 50, "Sb": 50})


def test_masking_has_no_nan_inside_and_no_division_by_zero():
    rng = np.random.default_rng(3)
    shape = (12, 12, 12)
    obj = np.zeros(shape, bool)
    obj[3:9, 3:9, 3:9] = True
    # Exact zeros outside (as TV/DIP give) and noisy negatives (as SIRT gives).
    vols = {"Ge": np.where(obj, 5.0, 0.0) + rng.normal(0, 0.3, shape) * (rng.random(shape) < 0.5),
            "Te": np.where(obj, 7.0, 0.0)}
    vols["Te"][0, 0, 0] = -2.0
    with np.errstate(all="raise"):
        comp = cliff_lorimer(vols)
        zero = cliff_lorimer({e: np.zeros(shape) for e in vols}, threshold=0.0)
    assert comp.threshold_source == "noise" and comp.threshold > 0
    assert comp.mask[obj].all()
    for v in comp.volumes.values():
        assert np.isfinite(v[comp.mask]).all()
        assert np.isnan(v[~comp.mask]).all()
        assert (v[comp.mask] >= 0).all() and (v[comp.mask] <= 100).all()
    total = sum(comp.volumes.values())
    np.testing.assert_allclose(total[comp.mask], 100.0, rtol=1e-5)
    assert not zero.mask.any() and all(np.isnan(v).all() for v in zero.volumes.values())
    assert np.isnan(list(zero.mean().values())).all()


def test_weight_percent_uses_atomic_masses():
    vols = {"Ge": np.full((2, 2, 2), 3.0), "Te": np.full((2, 2, 2), 3.0)}
    wt = cliff_lorimer(vols, threshold=0.0, unit="wt%")
    expected = 100 * atomic_mass("Ge") / (atomic_mass("Ge") + atomic_mass("Te"))
    assert atomic_mass("Ge") == pytest.approx(72.63, abs=0.05)
    np.testing.assert_allclose(wt.volumes["Ge"], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown element"):
        atomic_mass("Xx")


def test_region_csv_equals_direct_numpy():
    rng = np.random.default_rng(5)
    shape = (10, 11, 12)
    comp = {"Ge": rng.uniform(0, 100, shape), "Te": rng.uniform(0, 100, shape)}
    comp["Ge"][rng.random(shape) < 0.2] = np.nan
    comp["Te"][np.isnan(comp["Ge"])] = np.nan
    labels = rng.integers(0, 4, shape)
    rows = region_stats(comp, labels)
    parsed = list(csv.DictReader(io.StringIO(stats_csv(rows))))
    assert [int(r["label"]) for r in parsed] == [1, 2, 3]
    for r in parsed:
        sel = labels == int(r["label"])
        ok = sel & np.isfinite(comp["Ge"])
        assert int(r["voxels"]) == ok.sum() and int(r["masked"]) == (sel & ~ok).sum()
        for e in comp:
            assert float(r[f"{e}_mean (at%)"]) == pytest.approx(np.nanmean(comp[e][sel]), rel=1e-5)
            assert float(r[f"{e}_std (at%)"]) == pytest.approx(np.nanstd(comp[e][sel]), rel=1e-5)


def test_k_factors_from_a_sidecar_tree():
    side = {"method": "tv", "provenance": {"read": {"k_factors": {"Ge_Ka": 1.2, "Te_La": 1.7}}}}
    assert k_factors_from_metadata(side) == {"Ge": 1.2, "Te": 1.7}
    assert k_factors_from_metadata({"provenance": {}}) == {}


def test_line_profile_keeps_masked_voxels_nan():
    vol = np.zeros((4, 5, 9))
    vol[..., :] = np.arange(9)
    vol[2, 2, 6] = np.nan
    dist, values = line_profile(vol, (1, 1, 0), (1, 1, 8))
    np.testing.assert_allclose(dist, np.arange(9))
    np.testing.assert_allclose(values, np.arange(9))
    _, through = line_profile(vol, (2, 2, 0), (2, 2, 8))
    assert np.isnan(through[6]) and np.isfinite(through[:5]).all()


# --------------------------------------------------------------- command line
def test_quantify_command_calibrates_and_writes_regions(tmp_path):
    phantom = make_phantom("memory_cell", 16, seed=2)
    sens = {"Ge": 40.0, "Sb": 25.0, "Te": 32.0, "Ti": 10.0}
    write_volumes(tmp_path / "rec", {e: v * sens[e] for e, v in phantom.volumes.items()}, 2.0,
                  sidecar={"method": "tv", "elements": phantom.elements})
    gst = phantom.volumes["Te"] > 0
    matrix = gst & (phantom.volumes["Ge"] == 0.25)
    tifffile.imwrite(tmp_path / "region.tif", matrix.astype(np.uint8))
    labels = np.where(phantom.volumes["Ti"] > 0, 2, np.where(gst, 1, 0)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    out = tmp_path / "comp"
    code = main(["quantify", str(tmp_path / "rec"), "--out", str(out),
                 "--calibrate", str(tmp_path / "region.tif"),
                 "--composition", "Ge=25", "Sb=25", "Te=55", "--k-factors", "Ti=4",
                 "--regions", str(tmp_path / "labels.tif")])
    assert code == 0
    side = json.loads((out / "composition.json").read_text())
    assert side["k_factors"]["Sb"] == pytest.approx(40 / 25, rel=1e-4)
    assert side["k_factor_source"] == {"Ge": "calibrated", "Sb": "calibrated",
                                       "Te": "calibrated", "Ti": "user"}
    assert side["threshold_source"] == "noise" and side["unit"] == "at%"
    te, voxel = read_volume(out / "Te.tif")
    assert voxel == 2.0
    np.testing.assert_allclose(te[matrix], 55 / 1.05, rtol=1e-4)
    rows = list(csv.DictReader((out / "regions.csv").open()))
    assert [r["label"] for r in rows] == ["1", "2"]
    assert float(rows[1]["Ti_mean (at%)"]) == pytest.approx(100.0)


def test_quantify_command_rejects_bad_input(tmp_path, capsys):
    assert main(["quantify", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err
    write_volumes(tmp_path / "rec", {"Ge": np.ones((4, 4, 4)), "Te": np.ones((4, 4, 4))}, 1.0)
    tifffile.imwrite(tmp_path / "labels.tif", np.ones((4, 4, 5), np.uint8), photometric="minisblack")
    code = main(["quantify", str(tmp_path / "rec"), "--out", str(tmp_path / "o"),
                 "--regions", str(tmp_path / "labels.tif")])
    assert code == 2
    assert "labels.tif: the region labels has shape (4, 4, 5)" in capsys.readouterr().err
    code = main(["quantify", str(tmp_path / "rec"), "--out", str(tmp_path / "o"),
                 "--k-factors", "Ge:1"])
    assert code == 2 and "not ELEMENT=NUMBER" in capsys.readouterr().err
    code = main(["quantify", str(tmp_path / "rec"), "--out", str(tmp_path / "rec")])
    assert code == 2 and "would replace the count volumes" in capsys.readouterr().err
    assert read_volume(tmp_path / "rec" / "Ge.tif")[0].max() == 1.0  # untouched
