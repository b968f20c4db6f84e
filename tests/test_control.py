"""RunControl: progress between snapshots and a stop that does not wait for the next one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import RunControl, reconstruct, takes_control
from edxtomo.recon.control import STOPPED_BY_USER
from edxtomo.runner import accepted_params, default_params

SMALL_NET = {"widths": (8, 16), "skip_widths": (2, 4), "input_channels": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def series():
    return acquire(make_phantom("core_shell", 16, seed=3), tilt_angles(-40, 40, 10), dose=20.0, seed=3)


@pytest.mark.parametrize("method, extra", [("sirt", {}), ("tv", {}), ("dipm-tv", SMALL_NET)])
def test_stop_request_ends_the_run_at_the_next_iteration(series, method, extra):
    control = RunControl()
    gen = reconstruct(series, method, control=control, iterations=1000, snapshot_every=10, **extra)
    first = next(gen)
    assert first.iteration == 10 and control.iteration == 10 and control.total == 1000
    control.request_stop()
    last = next(gen)
    # Not at the next snapshot (iteration 20): one iteration later, final, with the reason.
    assert last.iteration == 11 and last.final and last.stopped == STOPPED_BY_USER
    assert all(np.isfinite(v).all() and v.any() for v in last.volumes.values())
    with pytest.raises(StopIteration):
        next(gen)


def test_progress_is_visible_from_another_thread_between_snapshots(series):
    control = RunControl()
    seen: list[int] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.append(control.iteration)
            if control.iteration >= 7:
                control.request_stop()
            done.wait(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # One snapshot at the very end: all progress seen comes through the control.
        snaps = list(reconstruct(series, "dipm-tv", control=control, iterations=500,
                                 snapshot_every=500, **SMALL_NET))
    finally:
        done.set()
        watcher.join()
    assert len(snaps) == 1 and snaps[0].stopped == STOPPED_BY_USER
    assert 7 <= snaps[0].iteration < 500
    assert len(set(seen) - {0}) >= 3
    assert control.seconds_left() is not None and control.seconds_left() > 0


def test_control_is_not_a_reconstruction_parameter():
    for method in ("sirt", "tv", "tv-joint", "dip-tv", "dipm-tv"):
        assert takes_control(method)
        assert "control" not in accepted_params(method)
        assert "control" not in default_params(method)


def test_time_left_ignores_set_up(monkeypatch):
    import edxtomo.recon.control as control_module

    now = [100.0]
    monkeypatch.setattr(control_module.time, "perf_counter", lambda: now[0])
    control = RunControl()
    now[0] = 130.0  # 30 s of set-up before the first iteration
    assert not control.step(1, 101) and control.seconds_left() is None
    now[0] = 132.0  # then 2 s per iteration
    control.step(2, 101)
    assert control.seconds_left() == pytest.approx(2.0 * 99)
