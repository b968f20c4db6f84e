"""Alignment of real-looking tilt series: axis rotation, drift, gains, a bad tilt.

The synthetic series is a phantom projected, rotated in plane by a known
tilt-axis angle, moved by drifting shifts, scaled by per-tilt gains and given
Poisson noise at EDX-like counts (~10 per pixel in the object per element).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edxtomo.alignment import AlignmentSettings, align_tilt_series, apply_alignment, flag_bad_tilts
from edxtomo.alignment.pipeline import AXIS_SPREAD_WARN_DEG
from edxtomo.alignment.projection_matching import remove_unobservable
from edxtomo.alignment.transforms import correct_image, reframe_shifts, uncorrect_image
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.tiltseries import TiltSeries

AXIS_DEG = 3.0
BAD = 5


def synthetic(seed: int = 0, size: int = 28, pad: int = 6, dose: float = 10.0, axis: float = AXIS_DEG):
    clean = acquire(make_phantom("core_shell", size, seed=2), tilt_angles(-40, 40, 5), dose=None)
    rng = np.random.default_rng(seed)
    n = clean.n_angles
    shifts = np.clip(np.cumsum(rng.normal(0, 1.2, (n, 2)), axis=0), -5, 5)
    shifts -= shifts.mean(axis=0)
    gains = rng.uniform(0.8, 1.2, n)
    maps = {}
    for el, m in clean.maps.items():
        m = np.pad(m, ((0, 0), (pad, pad), (pad, pad)))
        m[BAD, :, : m.shape[2] // 2] = 0  # beam damage: half the object gone at one tilt
        raw = np.stack([uncorrect_image(m[k], axis, shifts[k]) * gains[k] for k in range(n)])
        scale = dose / raw[raw > 0.01 * raw.max()].mean()
        maps[el] = rng.poisson(np.clip(raw, 0, None) * scale).astype(np.float32)
    return TiltSeries(maps, clean.angles, source="synthetic"), shifts, gains


@pytest.fixture(scope="module")
def aligned_auto():
    # A 40-px object: at 28 px the features move by only 1-4 px over the tilt range and
    # no estimate tried got the axis within 1 deg (docs/real-data.md).
    series, shifts, gains = synthetic(size=40, pad=8)
    out = align_tilt_series(series, AlignmentSettings(tilt_axis="auto", refine=2, normalise="counts"))
    return series, shifts, gains, out


def haadf_for(shifts: np.ndarray, size: int = 40, pad: int = 8, axis: float = AXIS_DEG, dose: float = 500.0,
              seed: int = 0) -> np.ndarray:
    """HAADF images of the synthetic series' object (Z^1.7 contrast, ~500 counts/px): same axis and shifts."""
    clean = acquire(make_phantom("core_shell", size, seed=2), tilt_angles(-40, 40, 5), dose=None)
    z = {"In": 49, "Se": 34, "S": 16}
    total = sum(np.pad(m, ((0, 0), (pad, pad), (pad, pad))) * z[el] ** 1.7 for el, m in clean.maps.items())
    raw = np.clip(np.stack([uncorrect_image(total[k], axis, shifts[k]) for k in range(len(total))]), 0, None)
    raw *= dose / raw[raw > 0.01 * raw.max()].mean()
    return np.random.default_rng(seed + 100).poisson(raw).astype(np.float32)


def _shift_error(found: np.ndarray, true: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Error left after removing the motions projections cannot see (common dy, a·cos + b·sin in dx)."""
    return np.abs(remove_unobservable(found - true, angles))


def test_rotation_convention_and_round_trip():
    """A line along (cos a, sin a) in (y, x) becomes a column after correction; uncorrect inverts it."""
    img = np.zeros((41, 41))
    a = np.deg2rad(10.0)
    for t in np.linspace(-15, 15, 301):
        img[int(round(20 + t * np.cos(a))), int(round(20 + t * np.sin(a)))] = 1.0
    corrected = correct_image(img, 10.0, np.zeros(2))
    cols = corrected[8:33].sum(axis=0)
    assert np.argmax(cols) == 20 and cols[20] > 0.6 * cols.sum()
    smooth = np.outer(np.hanning(41), np.hanning(41))
    back = uncorrect_image(correct_image(smooth, 4.0, np.array([1.5, -2.0])), 4.0, np.array([1.5, -2.0]))
    np.testing.assert_allclose(back[10:31, 10:31], smooth[10:31, 10:31], atol=0.02)
    s = np.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(reframe_shifts(reframe_shifts(s, 0, 3), 3, 0), s, atol=1e-12)


def test_shifts_gains_and_bad_tilt_with_the_axis_given():
    series, shifts, gains = synthetic(seed=1)
    out = align_tilt_series(series, AlignmentSettings(tilt_axis=AXIS_DEG, refine=8, normalise="counts"))
    rep = out.provenance["alignment"]
    good = np.arange(series.n_angles) != BAD
    err = _shift_error(np.asarray(rep["shifts_px"])[good], shifts[good], series.angles[good])
    assert err.max() < 0.5, err.max(axis=0)
    g = np.asarray(rep["gains"])[good] / gains[good]
    assert np.abs(g / np.exp(np.log(g).mean()) - 1).max() < 0.05
    assert rep["flagged_tilts"] == [BAD]
    assert rep["refine_last_move_px"] < 0.1 or rep["refine_rounds"] == 8


def test_axis_estimated_and_recorded(aligned_auto, tmp_path):
    series, shifts, gains, out = aligned_auto
    rep = out.provenance["alignment"]
    # Parallax estimate on square-root counts (this series' geometry, axes +3, -4, +2, +5 deg,
    # 6 noise seeds each): 0.01-1.16 deg off, rms 0.43, 14 of 24 within 0.3 deg; 0.06 deg for
    # this seed. The issue asks 0.3 deg: the spread does not support asserting it yet.
    assert abs(rep["tilt_axis_deg"] - AXIS_DEG) < 0.5
    assert rep["tilt_axis_source"] == "estimated"
    # Leave-one-tilt-out spread on this geometry: 0.6-1.5 deg over 12 series (axes +3, -4, +5).
    assert rep["tilt_axis_spread_deg"] < AXIS_SPREAD_WARN_DEG and "tilt_axis_warning" not in rep
    assert np.asarray(rep["shifts_px"]).shape == (series.n_angles, 2)
    assert BAD in rep["flagged_tilts"]
    # Every element moved alike: applying the record to the raw maps gives the same maps.
    again = apply_alignment(series, json.loads(json.dumps(rep)))
    for el in series.elements:
        np.testing.assert_allclose(again.maps[el], out.maps[el], atol=1e-4)
        assert out.maps[el].min() >= 0


def test_axis_within_0_3_deg_on_haadf_images():
    """With the HAADF images as the reference (as real files carry them), the axis is found within 0.3 deg.

    Measured (benchmarks/bench_tilt_axis.py: axes +3, -4, +2, +5 deg, 4 noise seeds each, ~500
    counts/px): rms 0.19 deg, at most 0.37, 14 of 16 within 0.3 (another noise draw: rms 0.15, at
    most 0.27); with the square root meant for EDX counts rms 0.40. Through align_tilt_series at
    +3 and -4 deg, seeds 0-2: 0.06-0.22 deg off,
    this case (+3 deg, seed 0, refine 2) 0.10 (jackknife spread 0.35 deg, shifts within 0.13 px).
    """
    series, shifts, _ = synthetic(size=40, pad=8)
    out = align_tilt_series(series, AlignmentSettings(tilt_axis="auto", refine=2, normalise="counts"),
                            reference=haadf_for(shifts))
    rep = out.provenance["alignment"]
    assert rep["reference"] == "HAADF images"
    assert abs(rep["tilt_axis_deg"] - AXIS_DEG) < 0.3, rep["tilt_axis_deg"]
    assert rep["tilt_axis_spread_deg"] < AXIS_SPREAD_WARN_DEG / 2 and "tilt_axis_warning" not in rep
    good = np.arange(series.n_angles) != BAD
    err = _shift_error(np.asarray(rep["shifts_px"])[good], shifts[good], series.angles[good])
    assert err.max() < 0.5, err.max(axis=0)


def test_flagging_keeps_a_smoothly_worse_outer_tilt():
    scores = np.array([0.11, 0.05, 0.04, 0.04, 0.06, 0.43, 0.05, 0.04, 0.03, 0.05, 0.09])
    assert flag_bad_tilts(scores) == [5]


def test_align_command_writes_maps_angles_and_report(tmp_path, capsys):
    from edxtomo.cli import main
    from edxtomo.io import read_series, write_map_folder

    series, _, _ = synthetic(seed=2, size=24, pad=4)
    write_map_folder(series.select_indices(range(4, 13)), tmp_path / "in")
    code = main(["align", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--tilt-axis", "3",
                 "--refine", "2", "--normalise", "counts"])
    assert code == 0
    rep = json.loads((tmp_path / "out" / "alignment.json").read_text())
    assert rep["tilt_axis_deg"] == 3.0 and len(rep["shifts_px"]) == 9 and len(rep["scores"]) == 9
    assert rep["normalise"] == "counts"
    back = read_series(tmp_path / "out")
    assert back.elements == series.elements and back.n_angles == 9
    assert "score" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "in"), "--out", str(tmp_path / "o2"), "--tilt-axis", "x"]) == 2


@pytest.fixture(scope="module")
def idp_bin4(idp):
    from edxtomo.io import read_series

    return read_series(idp, lines=["Fe_Ka", "Si_Ka", "Mg_Ka"], bin_factor=4)


def test_real_series_projection_matching_lowers_left_out_error(idp_bin4):
    """Projection matching (axis kept at 0 deg) predicts the tilts better than translation alone.

    Measured at bin 4 (Fe + Si + Mg): mean leave-one-out score 0.152 -> 0.138 in 5 rounds.
    Before the backtracking of worsening rounds it oscillated (0.157, 0.147, 0.175, ...).
    """
    out = align_tilt_series(idp_bin4, AlignmentSettings(tilt_axis=0.0, refine=5))
    rep = out.provenance["alignment"]
    assert np.mean(rep["scores"]) < np.mean(rep["scores_translation_only"]) - 0.005, rep["scores"]
    assert all(h <= rep["refine_history"][0] * 1.01 for h in rep["refine_history"]), rep["refine_history"]


def test_real_series_axis_estimate_comes_with_a_warning_that_it_is_not_determined(idp_bin4):
    """On the real series the leave-one-tilt-out axis estimates span -4.8..+10 deg (summed maps,
    bin 4): the user is told not to trust the estimate rather than given a rotation silently."""
    with pytest.warns(UserWarning, match="do not pin it down"):
        out = align_tilt_series(idp_bin4, AlignmentSettings(tilt_axis="auto", refine=0))
    rep = out.provenance["alignment"]
    assert rep["tilt_axis_spread_deg"] > 2 * AXIS_SPREAD_WARN_DEG and "tilt_axis_warning" in rep
    assert len(rep["tilt_axis_left_out_deg"]) == idp_bin4.n_angles


def test_defaults_follow_the_real_data_benchmark():
    """No axis rotation unless asked for ('auto' or an angle); per-tilt counts normalisation on.

    benchmarks/bench_real.py on the real IDP series (docs/real-data.md): the estimated axis
    (-6.3 deg) lowered the left-out error at the 0 deg tilt only and raised it at -40, -20
    and 30 deg; counts normalisation lowered it or left it unchanged at every tilt measured.
    """
    from edxtomo.alignment.command import settings_from

    assert AlignmentSettings().tilt_axis == 0.0 and AlignmentSettings().normalise == "counts"
    assert settings_from(None, 3, None).tilt_axis == 0.0
    assert settings_from("auto", None, "counts").tilt_axis == "auto"
