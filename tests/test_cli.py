"""The ``edxtomo`` command as a user runs it (a real subprocess where it matters)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from edxtomo.cli import main
from edxtomo.io import read_volume
from edxtomo.metrics import compare


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["simulate", str(out), "--size", "24", "--seed", "3"]) == 0
    return out


def _truth(folder):
    return {p.stem: read_volume(p)[0] for p in (folder / "ground_truth").glob("*.tif")}


def test_simulate_writes_maps_angles_and_truth(simulated):
    names = sorted(p.name for p in simulated.iterdir())
    assert {"In.tif", "Se.tif", "S.tif", "angles.txt", "series.json", "ground_truth"} <= set(names)
    stack = tifffile.imread(simulated / "In.tif")
    assert stack.shape == (17, 24, 24)
    angles = np.loadtxt(simulated / "angles.txt")
    np.testing.assert_allclose(angles, np.arange(-40, 41, 5))


def test_console_script_tv_beats_sirt(simulated, tmp_path):
    exe = [sys.executable, "-m", "edxtomo.cli"]
    for method in ("tv", "sirt"):
        res = subprocess.run(exe + ["reconstruct", str(simulated), "--method", method,
                                    "--out", str(tmp_path / method)],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "wrote In, Se, S volumes" in res.stdout
    truth = _truth(simulated)
    scores = {m: compare({e: read_volume(tmp_path / m / f"{e}.tif")[0] for e in truth}, truth)["mean"]
              for m in ("tv", "sirt")}
    assert scores["tv"]["psnr"] > scores["sirt"]["psnr"]
    vol, spacing = read_volume(tmp_path / "tv" / "In.tif")
    assert vol.shape == (24, 24, 24) and vol.dtype == np.float32
    assert spacing == pytest.approx(0.5)
    side = json.loads((tmp_path / "tv" / "reconstruction.json").read_text())
    assert side["method"] == "tv" and side["status"] == "finished"
    assert side["params"]["iterations"] == side["iterations_done"] == 300
    assert side["angles"] == list(np.arange(-40.0, 41, 5))
    assert side["loss_history"][-1]["iteration"] == 300


def test_config_sidecar_reproduces_run(simulated, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["reconstruct", str(simulated), "--method", "tv", "--tv-weight", "0.1",
                 "--iterations", "40", "--tilt-range", "-30", "30", "--elements", "In", "Se",
                 "--out", str(first)]) == 0
    assert main(["reconstruct", "--config", str(first / "reconstruction.json"), "--out", str(second)]) == 0
    a = json.loads((first / "reconstruction.json").read_text())
    b = json.loads((second / "reconstruction.json").read_text())
    for key in ("method", "params", "angles", "elements", "tilt_range"):
        assert a[key] == b[key], key
    assert a["elements"] == ["In", "Se"] and min(a["angles"]) == -30
    np.testing.assert_array_equal(read_volume(first / "Se.tif")[0], read_volume(second / "Se.tif")[0])
    assert not (second / "S.tif").exists()


def test_bad_input_exits_nonzero_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["reconstruct", str(missing), "--method", "tv", "--out", str(tmp_path / "o")]) == 2
    assert str(missing) in capsys.readouterr().err

    bad = tmp_path / "maps"
    bad.mkdir()
    tifffile.imwrite(bad / "Ge.tif", np.ones((3, 4, 4), np.float32), photometric="minisblack")
    (bad / "angles.txt").write_text("-10\n0\nten\n")
    assert main(["reconstruct", str(bad), "--method", "tv", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "angles.txt, line 3" in err and "'ten'" in err

    (bad / "angles.txt").write_text("-10\n0\n")
    assert main(["reconstruct", str(bad), "--method", "sirt", "--out", str(tmp_path / "o")]) == 2
    assert "3 maps but there are 2 tilt angles" in capsys.readouterr().err


def test_option_not_taken_by_method_is_refused(simulated, tmp_path, capsys):
    assert main(["reconstruct", str(simulated), "--method", "sirt", "--lr", "0.1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not take lr" in capsys.readouterr().err


def test_dip_on_a_short_series_says_no_tilts_are_held_out(simulated, tmp_path, capsys):
    argv = ["reconstruct", str(simulated), "--method", "dipm-tv", "--iterations", "2", "--widths", "4", "8",
            "--skip-widths", "2", "2", "--input-channels", "4", "--device", "cpu", "--out", str(tmp_path / "o")]
    assert main([*argv, "--heldout-min-tilts", "100"]) == 0
    n = len(json.loads((tmp_path / "o" / "reconstruction.json").read_text())["angles"])
    assert f"no tilts held out: {n} tilts, fewer than heldout_min_tilts (100)" in capsys.readouterr().out
    assert main([*argv, "--heldout-min-tilts", "4", "--out", str(tmp_path / "p")]) == 0
    assert "no tilts held out" not in capsys.readouterr().out


def test_interrupted_run_keeps_latest_volumes(simulated, tmp_path):
    from edxtomo.io import read_series
    from edxtomo.runner import RunRecord, run

    record = RunRecord(method="tv", params={"iterations": 500, "snapshot_every": 10},
                       series=read_series(simulated))

    def stop_at_30(snap):
        if snap.iteration == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(record, tmp_path / "partial", on_snapshot=stop_at_30)
    side = json.loads((tmp_path / "partial" / "reconstruction.json").read_text())
    assert side["status"] == "interrupted" and side["iterations_done"] == 30
    assert read_volume(tmp_path / "partial" / "In.tif")[0].any()


def test_first_ctrl_c_stops_cleanly_and_writes_the_volumes(simulated, tmp_path):
    """A real SIGINT to the command: the current iteration finishes and is written."""
    out = tmp_path / "stopped"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edxtomo.cli", "reconstruct", str(simulated), "--method", "tv",
         "--iterations", "1000000", "--snapshot-every", "1000000", "--out", str(out)],
        stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the run has started once it names the missing wedge
            if "missing wedge" in line:
                break
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "stopping after this iteration" in err and "kept the volumes" in err
    side = json.loads((out / "reconstruction.json").read_text())
    assert side["status"] == "stopped by user"
    assert 0 < side["iterations_done"] < 1_000_000
    assert read_volume(out / "In.tif")[0].any()


@pytest.mark.realdata
def test_extract_and_reconstruct_real_bcf_series(shared_data, tmp_path):
    series_dir = shared_data / "openncem_idp_tilt10"
    maps = tmp_path / "maps"
    assert main(["extract", str(series_dir), "--lines", "Fe_Ka", "Si_Ka", "--bin", "8",
                 "--out", str(maps)]) == 0
    assert sorted(p.name for p in maps.glob("*.tif")) == ["Fe.tif", "Si.tif"]
    np.testing.assert_allclose(np.loadtxt(maps / "angles.txt"), np.arange(-40, 31, 10))
    assert tifffile.imread(maps / "Fe.tif").shape == (8, 32, 32)
    # Spectrum images straight into reconstruct, with the same options.
    rec = tmp_path / "rec"
    assert main(["reconstruct", str(series_dir), "--lines", "Fe_Ka", "--bin", "8", "--method", "sirt",
                 "--iterations", "5", "--out", str(rec)]) == 0
    vol, spacing = read_volume(rec / "Fe.tif")
    # The Bruker files say 13.08 nm per pixel; binning by 8 gives the voxel size.
    assert vol.shape == (32, 32, 32) and spacing == pytest.approx(8 * 13.08, rel=0.01)
    assert json.loads((maps / "series.json").read_text())["pixel_size_nm"] == pytest.approx(spacing)
    side = json.loads((rec / "reconstruction.json").read_text())
    assert side["read_options"]["lines"] == ["Fe_Ka"] and side["read_options"]["bin"] == 8


def test_headless_demo_writes_volumes_and_preview(tmp_path, capsys):
    assert main(["demo", "--headless", "--size", "16", "--iterations", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for method in ("sirt", "tv", "dipm-tv"):
        assert f"  {method}" in out
        assert sorted(p.name for p in (tmp_path / method).glob("*.tif")) == ["In.tif", "S.tif", "Se.tif"]
    png = (tmp_path / "preview.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
