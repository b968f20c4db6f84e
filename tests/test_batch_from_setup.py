"""A TV-weight sweep from a series in memory (the napari dock's batch), without Qt or a cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edxtomo.batch import load_manifest
from edxtomo.batch.from_setup import (
    MANIFEST_NAME,
    SERIES_FOLDER,
    SweepSetup,
    check_out_folder,
    parse_weights,
    shown_task,
    task_label,
    write_sweep,
)
from edxtomo.io import read_series
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.runner import clean_params


@pytest.fixture(scope="module")
def series():
    return acquire(make_phantom("core_shell", 16, seed=0), tilt_angles(-40, 40, 10), dose=5.0, seed=0)


def test_parse_weights():
    assert parse_weights(" 0.01 0.02,0.05; 1 ") == [0.01, 0.02, 0.05, 1.0]
    for bad, word in (("", "one or more"), ("0.1 x", "'x'"), ("-1", ">= 0"), ("0.1 0.1", "twice"),
                      ("nan", "finite")):
        with pytest.raises(ValueError, match=word):
            parse_weights(bad)


def test_sweep_is_an_ordinary_manifest(series, tmp_path):
    """The tasks are what a hand-written manifest over the written map folder gives."""
    params = clean_params("tv", {"iterations": 7, "tv_weight": 0.3})
    setup = SweepSetup(series, "tv", params, tilt_range=(-30.0, 30.0), time_limit=60.0)
    out = tmp_path / "sweep"
    tasks = write_sweep(setup, [0.01, 0.02], out)
    assert [t.name for t in tasks] == ["tv-tv_weight=0.01", "tv-tv_weight=0.02"]
    assert [t.params["tv_weight"] for t in tasks] == [0.01, 0.02]
    assert all(t.params["iterations"] == 7 and t.time_limit == 60.0 for t in tasks)
    assert all(t.tilt_range == (-30.0, 30.0) and t.sweep == "tv" for t in tasks)
    assert tasks[0].inputs == (str((out / SERIES_FOLDER).resolve()),)
    # The map folder holds the series exactly.
    back = read_series([out / SERIES_FOLDER])
    np.testing.assert_array_equal(back.angles, series.angles)
    for el in series.elements:
        np.testing.assert_array_equal(back.maps[el], series.maps[el])
    # A manifest written by hand (TOML, other folder) gives the same task specs.
    manual = tmp_path / "manual.toml"
    manual.write_text(
        f'[[task]]\nname = "tv"\ninput = "{(out / SERIES_FOLDER).as_posix()}"\nmethod = "tv"\n'
        'params = { iterations = 7, time_limit = "1m" }\ntilt_range = [-30, 30]\n'
        "grid = { tv_weight = [0.01, 0.02] }\n", encoding="utf-8")
    assert [t.spec() for t in load_manifest(manual)] == [t.spec() for t in tasks]
    assert json.loads((out / MANIFEST_NAME).read_text())["task"][0]["grid"] == {"tv_weight": [0.01, 0.02]}
    # Writing again into the same folder (an earlier sweep's) is allowed.
    assert len(write_sweep(setup, [0.5], out)) == 1


def test_refusals(series, tmp_path):
    with pytest.raises(ValueError, match="TV weight"):  # SIRT takes no TV weight
        write_sweep(SweepSetup(series, "sirt", clean_params("sirt", {})), [0.1], tmp_path / "a")
    with pytest.raises(ValueError, match="at least 2|tilt"):
        write_sweep(SweepSetup(series, "tv", {}, tilt_range=(50.0, 60.0)), [0.1], tmp_path / "b")
    with pytest.raises(ValueError, match="choose its own weight"):
        write_sweep(SweepSetup(series, "tv", clean_params("tv", {"choose_weight": True})), [0.1], tmp_path / "c")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        check_out_folder(other)
    with pytest.raises(ValueError, match="output folder"):
        check_out_folder("  ")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_shown_task_and_label():
    rows = [{"task": "a", "status": "failed"}, {"task": "b", "status": "finished"},
            {"task": "c", "status": "finished", "best_in_sweep": True}]
    assert shown_task(rows) == "c"
    assert shown_task(rows[:2]) == "b"
    assert shown_task(rows[:1]) is None
    assert task_label("tv", {"tv_weight": 0.02}) == "TV tv_weight=0.02"
