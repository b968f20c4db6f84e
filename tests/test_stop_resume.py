"""Stopping and resuming: signals write a complete result, --resume continues exactly, faults keep data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edxtomo.cli import main
from edxtomo.io import read_volume, write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import RunControl, reconstruct, run_to_end
from edxtomo.recon.status import RunStatus, StopReason
from edxtomo.runner import CHECKPOINT_NAME, RunRecord, clean_params, load_checkpoint, run

SMALL_DIP = {"widths": (8, 16), "skip_widths": (2, 4), "input_channels": 8, "device": "cpu",
             "heldout": 3, "heldout_min_tilts": 4, "eval_every": 2, "patience": 0}
SMALL_DIP_ARGS = ["--widths", "8", "16", "--skip-widths", "2", "4", "--input-channels", "8",
                  "--device", "cpu", "--heldout", "3", "--heldout-min-tilts", "4", "--eval-every", "2",
                  "--patience", "0"]


@pytest.fixture(scope="module")
def tiny():
    return acquire(make_phantom("core_shell", 16, seed=3), tilt_angles(-40, 40, 10), dose=5.0, seed=3)


@pytest.fixture()
def maps(tmp_path, tiny):
    folder = tmp_path / "maps"
    write_map_folder(tiny, folder)
    return folder


def test_resumed_dip_run_equals_an_uninterrupted_one(tiny):
    kw = {"iterations": 20, "snapshot_every": 5, **SMALL_DIP}
    full = run_to_end(reconstruct(tiny, "dipm-tv", **kw))
    control = RunControl()
    for snap in reconstruct(tiny, "dipm-tv", control=control, **kw):
        if snap.iteration == 10:
            control.request_stop()
    assert snap.final and snap.stopped == StopReason.USER and snap.iteration == 11
    resumed = run_to_end(reconstruct(tiny, "dipm-tv", resume=snap.state(), **kw))
    assert resumed.info["resumed_from"] == 11 and resumed.iteration == 20
    for el, vol in full.volumes.items():
        np.testing.assert_allclose(resumed.volumes[el], vol, rtol=1e-5, atol=1e-6)


def test_resume_refuses_other_settings(tiny):
    snap = run_to_end(reconstruct(tiny, "dipm-tv", iterations=3, snapshot_every=3, **SMALL_DIP))
    with pytest.raises(ValueError, match="other settings for lr"):
        run_to_end(reconstruct(tiny, "dipm-tv", iterations=6, resume=snap.state(), **{**SMALL_DIP, "lr": 1e-2}))
    with pytest.raises(ValueError, match="cannot resume"):
        reconstruct(tiny, "tv", resume=snap.state())


def test_stopped_dip_run_leaves_a_checkpoint_that_cli_resume_continues(tmp_path, maps, tiny, capsys):
    out = tmp_path / "rec"
    control = RunControl()
    params = clean_params("dipm-tv", {"iterations": 12, "snapshot_every": 2, **SMALL_DIP})
    record = RunRecord("dipm-tv", params, tiny, inputs=[str(maps)])

    def stop_at_four(snap):
        if snap.iteration >= 4:
            control.request_stop()

    run(record, out, on_snapshot=stop_at_four, control=control)
    assert record.status is RunStatus.STOPPED
    state = load_checkpoint(out)
    assert state["iteration"] == record.last.iteration == 5
    side = json.loads((out / "reconstruction.json").read_text())
    assert side["status"] == "stopped by user" and side["iterations_done"] == 5
    assert main(["reconstruct", "--resume", str(out), "--out", str(out)]) == 0
    side = json.loads((out / "reconstruction.json").read_text())
    assert side["status"] == "finished" and side["iterations_done"] == 12
    assert side["info"]["resumed_from"] == 5
    assert not (out / CHECKPOINT_NAME).exists()  # a finished run needs no checkpoint


def test_non_finite_loss_ends_the_run_failed_keeping_the_last_finite_volumes(tmp_path, tiny, monkeypatch):
    import torch

    from edxtomo.recon import dip

    original = dip.DipObjective.loss_terms
    calls = {"n": 0}

    def diverging(self, vol):  # fault injection: the loss turns NaN at the 7th step
        calls["n"] += 1
        data, tvv = original(self, vol)
        return (data * torch.nan if calls["n"] >= 7 else data), tvv

    monkeypatch.setattr(dip.DipObjective, "loss_terms", diverging)
    params = clean_params("dipm-tv", {"iterations": 50, "snapshot_every": 2, **SMALL_DIP})
    record = RunRecord("dipm-tv", params, tiny)
    run(record, tmp_path / "rec")
    assert record.status is RunStatus.FAILED and "non-finite loss at iteration 7" in record.error
    assert record.last.iteration == 6
    side_text = (tmp_path / "rec" / "reconstruction.json").read_text()
    assert "NaN" not in side_text and "Infinity" not in side_text
    assert json.loads(side_text)["status"] == "failed"
    for el in tiny.elements:
        vol, _ = read_volume(tmp_path / "rec" / f"{el}.tif")
        assert np.isfinite(vol).all() and vol.max() > 0


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_finish_the_iteration_and_write_it(tmp_path, maps, sig):
    out = tmp_path / "rec"
    cmd = [sys.executable, "-m", "edxtomo.cli", "reconstruct", str(maps), "--out", str(out),
           "--method", "dipm-tv", "--iterations", "100000", "--snapshot-every", "1000", *SMALL_DIP_ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # The progress line appears once iterations run.
        seen = []

        def started() -> bool:
            line = proc.stderr.readline()
            seen.append(line)
            return "it/s" in line or "s/it" in line or proc.poll() is not None

        assert _wait_for(started, 120), "".join(seen)
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "stopped: kept the volumes of iteration" in err
    side = json.loads((out / "reconstruction.json").read_text())
    assert side["status"] == "stopped by user" and side["iterations_done"] > 0
    assert (out / CHECKPOINT_NAME).is_file()
    for el in json.loads((maps / "series.json").read_text()).get("elements", []) or side["elements"]:
        assert (out / f"{el}.tif").is_file()
