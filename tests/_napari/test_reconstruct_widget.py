"""The Reconstruct dock: streaming into layers, Stop, refusal of a second run, latency."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edxtomo._napari.layers import VOLUME_RENDERING, layer_meta, method_label, robust_contrast
from edxtomo._napari.widgets.reconstruct_widget import ReconstructWidget, usable_methods

pytestmark = pytest.mark.gui


@pytest.fixture
def make_widget(make_napari_viewer, add_layers, small_tilt_layers):
    def make(method, **params):
        return _widget(make_napari_viewer(), add_layers, small_tilt_layers, method, **params)

    return make


def _widget(viewer, add_layers, layers, method, **params):
    add_layers(viewer, layers)
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.method_box.setCurrentIndex(widget.method_box.findData(method))
    widget.form.set_values(params)
    return viewer, widget


def _wait_done(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.controller.running, timeout=timeout)


@pytest.mark.parametrize("method", ["sirt", "tv", "tv-joint"])
def test_run_streams_layers(make_widget, qtbot, method):
    viewer, widget = make_widget(method,
                             iterations=30, snapshot_every=5)
    widget.start()
    label = method_label(method)
    name = f"In [{label}]"
    # Layers appear while the worker runs, then keep being updated in place.
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=30_000)
    layer = viewer.layers[name]
    _wait_done(qtbot, widget)
    assert viewer.layers[name] is layer
    assert viewer.dims.ndisplay == 3
    assert layer.rendering == VOLUME_RENDERING and layer.blending == "additive"
    record = widget.controller.record
    assert record.last.iteration == 30 and record.status == "finished"
    np.testing.assert_array_equal(layer.data, record.last.volumes["In"])
    # Contrast from robust percentiles of the final volume (widened only, never narrowed).
    assert layer.contrast_limits[1] >= robust_contrast(layer.data)[1] * 0.99
    elements = [layer_meta(lyr)["element"] for lyr in viewer.layers if f"[{label}]" in lyr.name]
    assert sorted(elements) == sorted(record.series.elements)
    assert "iteration 30/30" in widget.status.text() or "finished" in widget.status.text()


def test_stop_keeps_volumes_and_second_start_refused(make_widget, qtbot):
    viewer, widget = make_widget("tv",
                             iterations=100_000, snapshot_every=2)
    widget.start()
    qtbot.waitUntil(lambda: "In [TV]" in viewer.layers, timeout=30_000)
    first = widget.controller.record
    widget.start()  # refused: one run at a time
    assert widget.controller.record is first and widget.controller.running
    widget.stop()
    _wait_done(qtbot, widget, timeout=30_000)
    assert first.status == "stopped by user"
    assert 0 < first.last.iteration < 100_000
    np.testing.assert_array_equal(viewer.layers["In [TV]"].data, first.last.volumes["In"])
    assert widget.start_btn.isEnabled()


def test_event_loop_stays_responsive(make_widget, qtbot, capsys):
    """Longest gap between 10 ms timer ticks while a run streams into 3D layers."""
    from qtpy.QtCore import QTimer

    viewer, widget = make_widget("tv",
                             iterations=400, snapshot_every=1)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    widget.start()
    qtbot.waitUntil(lambda: "In [TV]" in viewer.layers, timeout=30_000)
    timer.start()
    qtbot.wait(3000)
    timer.stop()
    widget.stop()
    _wait_done(qtbot, widget)
    gaps = np.diff(ticks) * 1000
    with capsys.disabled():
        print(f"\nevent-loop latency during a TV run: max gap {gaps.max():.0f} ms, "
              f"median {np.median(gaps):.0f} ms over {gaps.size} ticks; "
              f"{widget.controller._streamer.applied} snapshots shown")
    assert gaps.size > 20
    assert gaps.max() < 500  # goal 100 ms; this bound only catches a frozen loop


@pytest.mark.skipif("dipm-tv" not in usable_methods(), reason="edxtomo.recon.dip is not importable")
@pytest.mark.parametrize("method, label", [("dipm-tv", "DIPm-TV"), ("dip-tv", "DIP-TV")])
def test_deep_prior_streams(make_widget, qtbot, method, label):
    viewer, widget = make_widget(method, iterations=6, snapshot_every=2)
    widget.start()
    qtbot.waitUntil(lambda: f"In [{label}]" in viewer.layers, timeout=60_000)
    _wait_done(qtbot, widget, timeout=120_000)
    record = widget.controller.record
    assert record.last.iteration == 6 and record.status == "finished"
    assert "best held-out iterate" in widget.status.text()
    for element in record.series.elements:
        np.testing.assert_array_equal(viewer.layers[f"{element} [{label}]"].data,
                                      record.last.volumes[element])
    # The dock's plot holds the loss terms and the held-out error, and paints them.
    assert {"data", "tv", "heldout"} <= set(widget.plot.lines)
    its, heldout = widget.plot.lines["heldout"]
    assert its[-1] == 6 and np.isfinite(heldout).all()
    image = widget.plot.grab().toImage()
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 3)
               for y in range(0, image.height(), 3)}
    assert len(colours) > 5  # lines and labels, not a blank widget


@pytest.mark.skipif("dipm-tv" not in usable_methods(), reason="edxtomo.recon.dip is not importable")
def test_progress_and_stop_between_snapshots(make_widget, qtbot):
    """A slow method reports progress every iteration and stops without waiting for a snapshot."""
    viewer, widget = make_widget("dipm-tv", iterations=100_000, snapshot_every=10_000)
    widget.start()
    # No snapshot yet, but the bar and the status move.
    qtbot.waitUntil(lambda: widget.progress_bar.value() >= 3, timeout=60_000)
    assert "In [DIPm-TV]" not in viewer.layers
    assert "left" in widget.progress_bar.text()
    widget.stop()
    _wait_done(qtbot, widget, timeout=60_000)
    record = widget.controller.record
    assert record.status == "stopped by user" and record.last.stopped == "stopped by user"
    assert 3 <= record.last.iteration < 10_000
    # The volumes of the iteration where it stopped are shown and kept.
    for element in record.series.elements:
        np.testing.assert_array_equal(viewer.layers[f"{element} [DIPm-TV]"].data,
                                      record.last.volumes[element])


def test_bad_device_is_reported_not_started(make_widget, qtbot, monkeypatch):
    import edxtomo._napari.widgets.reconstruct_widget as rw

    errors = []
    monkeypatch.setattr(rw, "show_error", errors.append)
    viewer, widget = make_widget("tv")
    if "cuda" not in widget.form.device.choices or any(
            c.startswith("cuda:") for c in widget.form.device.choices):
        pytest.skip("this machine has a CUDA GPU")
    widget.form.device.value = "cuda"
    widget.start()
    assert not widget.controller.running
    assert errors and "cuda" in errors[0].lower()


def test_weight_chosen_on_held_out_tilts_is_reported(make_widget, qtbot, monkeypatch):
    """TV with 'choose weight': the progress covers the sweep, the status and the notification
    name the chosen weights."""
    from edxtomo._napari.widgets import run_controller

    notes: list[str] = []
    monkeypatch.setattr(run_controller, "show_info", notes.append)
    viewer, widget = make_widget("tv", iterations=20, snapshot_every=10, choose_weight=True)
    assert widget.form.values()["choose_weight"] is True
    widget.start()
    _wait_done(qtbot, widget)
    record = widget.controller.record
    assert record.status == "finished"
    assert record.last.iteration == widget.progress_bar.maximum() == 10 * 10 + 20
    assert widget.progress_bar.text() == "120 / 120 iterations (weight sweep included)"
    choice = record.last.info["weight_choice"]["weights"]
    assert "TV weight chosen on held-out tilts: " in widget.status.text()
    assert all(f"{e} {w:.3g}" in widget.status.text() for e, w in choice.items())
    assert len(notes) == 1 and notes[0].startswith("TV: finished after 120 iterations (weight sweep included)")
    assert all(f"{e} {w:.3g}" in notes[0] for e, w in choice.items())
    np.testing.assert_array_equal(viewer.layers["In [TV]"].data, record.last.volumes["In"])


def test_finished_note_says_why_the_run_ended():
    """An early stop is named in the notification; a run to its last iteration is not."""
    from edxtomo._napari.widgets.run_controller import finished_note
    from edxtomo.recon.snapshot import Snapshot
    from edxtomo.runner import RunRecord

    rec = RunRecord("dipm-tv", {}, series=None, status="finished")
    rec.last = Snapshot(820, 1750, {}, {}, 61.0, "dipm-tv", final=True, stopped="early stopping")
    assert finished_note(rec) == ("DIPm-TV: finished after 820 iterations, 61.0 s (early stopping: "
                                  "the held-out error stopped falling)")
    rec.last = Snapshot(1750, 1750, {}, {}, 99.0, "dipm-tv", final=True)
    assert finished_note(rec) == "DIPm-TV: finished after 1750 iterations, 99.0 s"


@pytest.mark.skipif("dipm-tv" not in usable_methods(), reason="edxtomo.recon.dip is not importable")
def test_short_series_says_no_tilts_are_held_out(make_widget, qtbot):
    """Below heldout_min_tilts the status says why there is no held-out curve or best iterate."""
    viewer, widget = make_widget("dipm-tv", iterations=4, snapshot_every=2, heldout_min_tilts=100)
    widget.start()
    _wait_done(qtbot, widget, timeout=120_000)
    record = widget.controller.record
    n = record.series.n_angles
    assert record.status == "finished" and record.last.info["heldout_angles"] == []
    status = widget.status.text()
    assert f"no tilts held out: {n} tilts, fewer than heldout_min_tilts (100)" in status
    assert "best held-out iterate" not in status and "heldout" not in widget.plot.lines


@pytest.mark.skipif("dipm-tv" not in usable_methods(), reason="edxtomo.recon.dip is not importable")
def test_short_series_holding_counts_out_shows_the_held_out_curve_and_best_iterate(make_widget, qtbot):
    viewer, widget = make_widget("dipm-tv", iterations=4, snapshot_every=2, eval_every=2, heldout_min_tilts=100,
                                 heldout_counts=0.2)
    widget.start()
    _wait_done(qtbot, widget, timeout=120_000)
    record = widget.controller.record
    assert record.status == "finished" and record.last.info["heldout_counts"] == 0.2
    status = widget.status.text()
    assert "20% of every tilt's counts held out instead" in status
    assert "best held-out iterate" in status and "heldout" in widget.plot.lines


def test_switching_the_method_leaves_one_parameter_form(make_widget):
    """The previous method's form leaves the dock at once, not at the next event-loop pass."""
    from qtpy.QtWidgets import QLabel

    viewer, widget = make_widget("tv")
    old = widget.form.native
    widget.method_box.setCurrentIndex(widget.method_box.findData("sirt"))
    widget.method_box.setCurrentIndex(widget.method_box.findData("tv"))
    assert old.parent() is None and not old.isVisible()
    shown = [label.text() for label in widget.findChildren(QLabel) if label.isVisibleTo(widget)]
    assert shown.count("TV weight") == 1 and shown.count("iterations") == 1
