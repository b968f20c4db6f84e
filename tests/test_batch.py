"""``edxtomo batch`` on a real Dask LocalCluster with two worker processes.

One cluster serves the whole module (starting one costs seconds); the
command-line runs reach it through ``--scheduler``, the path a user's own
cluster takes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from edxtomo.batch import ManifestError, load_manifest, open_client, run_batch
from edxtomo.batch.summary import mark_best
from edxtomo.cli import main
from edxtomo.io import read_volume, write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles

# heldout_min_tilts 4: the 9-tilt test series keep held-out tilts, which rank the sweep.
TINY_DIP = {"iterations": 10, "widths": [4, 8], "skip_widths": [2, 2], "eval_every": 5,
            "snapshot_every": 5, "heldout_min_tilts": 4}


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory) -> Path:
    """Two 16³ simulated series, as `edxtomo simulate` writes them."""
    root = tmp_path_factory.mktemp("series")
    for i in range(2):
        phantom = make_phantom("core_shell", 16, seed=i)
        write_map_folder(acquire(phantom, tilt_angles(-40, 40, 10), dose=5.0, seed=i),
                         root / f"s{i}")
    return root


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster with two one-thread worker processes: ``(client, torch threads)``."""
    with open_client(workers=2) as (client, threads):
        yield client, threads


def _toml_value(v) -> str:
    return json.dumps(v) if not isinstance(v, bool) else str(v).lower()


def _table(d: dict) -> str:
    return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in d.items()) + " }"


def _manifest(path: Path, tasks: list[dict]) -> Path:
    lines = []
    for t in tasks:
        lines.append("[[task]]")
        for k, v in t.items():
            lines.append(f"{k} = {_table(v) if isinstance(v, dict) else _toml_value(v)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FOUR = [
    {"name": "tv", "input": "series/s0", "method": "tv", "params": {"iterations": 40}},
    {"name": "sirt", "input": "series/s1", "method": "sirt", "params": {"iterations": 20},
     "tilt_range": [-30, 30]},
    {"name": "dip", "input": "series/s0", "method": "dipm-tv", "params": TINY_DIP,
     "grid": {"tv_weight": [0.01, 0.1]}},
]


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return {r["task"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def four_done(series_dir, cluster, tmp_path_factory):
    """The four tasks run by `edxtomo batch` on the module's cluster."""
    root = series_dir.parent
    manifest = _manifest(root / "four.toml", [{**t, "input": str(series_dir / t["input"][7:])}
                                               for t in FOUR])
    out = tmp_path_factory.mktemp("batch")
    code = main(["batch", str(manifest), "--out", str(out), "--scheduler",
                 cluster[0].scheduler_info()["address"]])
    return manifest, out, code


def test_four_tasks_equal_reconstruct(four_done, series_dir, tmp_path):
    manifest, out, code = four_done
    assert code == 0
    rows = _rows(out)
    assert set(rows) == {"tv", "sirt", "dip-tv_weight=0.01", "dip-tv_weight=0.1"}
    assert all(r["status"] == "finished" for r in rows.values()), rows
    # The same tasks through `edxtomo reconstruct`, in this process.
    same = {"tv": ["s0", "--method", "tv", "--iterations", "40"],
            "sirt": ["s1", "--method", "sirt", "--iterations", "20", "--tilt-range", "-30", "30"],
            "dip-tv_weight=0.1": ["s0", "--method", "dipm-tv", "--tv-weight", "0.1",
                                  "--config", str(out / "dip-tv_weight=0.1" / "reconstruction.json")]}
    for task, argv in same.items():
        ref = tmp_path / task
        assert main(["reconstruct", str(series_dir / argv[0]), *argv[1:], "--out", str(ref)]) == 0
        a = json.loads((ref / "reconstruction.json").read_text())
        b = json.loads((out / task / "reconstruction.json").read_text())
        for key in ("method", "params", "angles", "elements", "iterations_done"):
            assert a[key] == b[key], (task, key)
        # Bit-identical here (1 torch thread in a worker, 2 in this process); the tolerance
        # allows float reductions that split differently over other machines' thread counts.
        for el in a["elements"]:
            np.testing.assert_allclose(read_volume(out / task / f"{el}.tif")[0],
                                       read_volume(ref / f"{el}.tif")[0], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{task}/{el}")
    # The sweep marks the setting with the lower held-out error, and only that one.
    sweep = {t: float(rows[t]["heldout"]) for t in ("dip-tv_weight=0.01", "dip-tv_weight=0.1")}
    best = min(sweep, key=sweep.get)
    assert [t for t, r in rows.items() if r["best_in_sweep"] == "yes"] == [best]
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_resume_reruns_nothing_then_only_what_changed(four_done, cluster):
    manifest, out, _ = four_done
    sidecars = sorted(out.glob("*/reconstruction.json"))
    assert len(sidecars) == 4
    before = {p: p.stat().st_mtime_ns for p in sidecars}
    argv = ["batch", str(manifest), "--out", str(out), "--resume", "--scheduler",
            cluster[0].scheduler_info()["address"]]
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in sidecars} == before
    assert all(r["status"].startswith("skipped") for r in _rows(out).values())

    # A changed parameter re-runs that task alone, replacing its folder.
    text = manifest.read_text().replace('iterations = 20', 'iterations = 25')
    manifest.write_text(text)
    assert main(argv) == 0
    after = {p: p.stat().st_mtime_ns for p in sidecars}
    assert [p.parent.name for p in sidecars if after[p] != before[p]] == ["sirt"]
    assert json.loads((out / "sirt" / "reconstruction.json").read_text())["iterations_done"] == 25


def test_bad_input_is_reported_and_the_others_complete(series_dir, cluster, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    tifffile.imwrite(bad / "In.tif", np.ones((9, 16, 16), np.float32))
    (bad / "angles.txt").write_text("\n".join(str(a) for a in range(-40, 41, 20)) + "\n")
    manifest = _manifest(tmp_path / "m.toml", [
        {"name": "good", "input": str(series_dir / "s0"), "method": "sirt",
         "params": {"iterations": 5}},
        {"name": "broken", "input": str(bad), "method": "sirt", "params": {"iterations": 5}},
    ])
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out), "--scheduler",
                 cluster[0].scheduler_info()["address"]]) == 1
    rows = _rows(out)
    assert rows["good"]["status"] == "finished" and (out / "good" / "In.tif").exists()
    assert rows["broken"]["status"] == "failed"
    assert str(bad) in rows["broken"]["error"]
    assert not (out / "broken").exists() and not list(out.glob(".broken*"))
    assert "FAILED broken" in capsys.readouterr().err


def _executing(dask_worker) -> list[str]:
    return [str(k) for k, ts in dask_worker.state.tasks.items() if ts.state == "executing"]


def test_killed_worker_task_is_retried_and_completes(series_dir, cluster, tmp_path):
    client, threads = cluster
    # Long enough (a few seconds) to be killed mid-run.
    tasks = load_manifest(_manifest(tmp_path / "m.toml", [
        {"name": "long", "input": str(series_dir / "s0"), "method": "sirt",
         "params": {"iterations": 4000, "snapshot_every": 4000}},
        {"name": "short", "input": str(series_dir / "s1"), "method": "sirt",
         "params": {"iterations": 5}},
    ]))
    out = tmp_path / "out"
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(
        r=run_batch(tasks, out, client, torch_threads=threads)))
    runner.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        for addr, keys in client.run(_executing).items():
            if "edxtomo-long" in keys:
                victim = client.run(os.getpid, workers=[addr])[addr]
        time.sleep(0.2)
    assert victim is not None, "the long task never started"
    time.sleep(0.5)  # well inside the run: reading took place, iterations are going
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    rows = {r["task"]: r for r in result["r"].rows}
    assert rows["long"]["status"] == "finished" and rows["long"]["pid"] != victim
    side = json.loads((out / "long" / "reconstruction.json").read_text())
    assert side["status"] == "finished" and side["iterations_done"] == 4000
    assert read_volume(out / "long" / "In.tif")[0].shape == (16, 16, 16)
    assert rows["short"]["status"] == "finished"
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no half folders left
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed one


# --- manifests (no cluster) ---------------------------------------------------------------


def test_manifest_grid_paths_folders_and_defaults(series_dir, tmp_path):
    manifest = series_dir.parent / "grid.toml"
    sd = series_dir.name  # relative to the manifest beside it
    manifest.write_text(
        f'[defaults]\nparams = {{ iterations = 7 }}\nread = {{ bin = 2, angles = "{sd}/s0/angles.txt" }}\n\n'
        f'[[task]]\nname = "g"\ninput = "{sd}/s0"\nmethod = "tv"\n'
        'grid = { tv_weight = [0.01, 0.1], method = ["tv", "tv-joint"] }\n'
        'params = { tv_weight = 0.5 }\n\n'
        f'[[task]]\nname = "each"\nseries_folder = "{sd}"\nmethod = "sirt"\n', encoding="utf-8")
    tasks = {t.name: t for t in load_manifest(manifest)}
    assert set(tasks) == {"g-tv_weight=0.01-method=tv", "g-tv_weight=0.01-method=tv-joint",
                          "g-tv_weight=0.1-method=tv", "g-tv_weight=0.1-method=tv-joint",
                          "each-s0", "each-s1"}
    t = tasks["g-tv_weight=0.1-method=tv"]
    assert t.method == "tv" and t.params["tv_weight"] == 0.1 and t.params["iterations"] == 7
    assert t.inputs == (str(series_dir / "s0"),) and t.sweep == "g"
    assert t.read == {"bin": 2, "angles": str(series_dir / "s0" / "angles.txt")}
    with pytest.raises(ManifestError, match="does not take tv_weight"):
        # SIRT has no TV weight: the grid point is checked like a command line.
        load_manifest(_manifest(tmp_path / "x.toml", [{"name": "s", "input": str(series_dir),
                                                       "method": "sirt",
                                                       "grid": {"tv_weight": [0.1]}}]))
    assert tasks["each-s1"].inputs == (str(series_dir / "s1"),) and tasks["each-s1"].sweep == ""
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"task": [{"name": "j", "input": str(series_dir / "s0"),
                                        "method": "sirt"}]}))
    assert [t.name for t in load_manifest(js)] == ["j"]


@pytest.mark.parametrize("entry, message", [
    ({"name": "a", "input": "nowhere"}, "nowhere: no such file or folder"),
    ({"name": "a", "input": ".", "methd": "tv"}, "unknown key\\(s\\) methd"),
    ({"name": "a", "input": ".", "method": "tv", "params": {"iters": 3}}, "does not take iters"),
    ({"name": "a", "input": ".", "method": "nope"}, "unknown method 'nope'"),
    ({"name": "a", "input": ".", "read": {"binning": 2}}, "unknown read option"),
    ({"name": "../a", "input": "."}, "cannot be a folder name"),
])
def test_manifest_errors_name_the_manifest_and_task(tmp_path, entry, message):
    path = _manifest(tmp_path / "bad.toml", [{"name": "ok", "input": ".", "method": "sirt"}, entry])
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(path)
    assert str(path) in str(err.value) and "task 2" in str(err.value)


def test_duplicate_names_and_cli_exit_code(tmp_path, capsys):
    path = _manifest(tmp_path / "dup.toml", [{"name": "a", "input": ".", "method": "sirt"}] * 2)
    assert main(["batch", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "duplicate task name(s) a" in capsys.readouterr().err


def test_mark_best_compares_only_comparable_runs():
    rows = [
        {"task": "a", "sweep": "s", "status": "finished", "heldout": 2.0, "heldout_angles": [0], "loss": "mse"},
        {"task": "b", "sweep": "s", "status": "finished", "heldout": 1.0, "heldout_angles": [0], "loss": "mse"},
        {"task": "c", "sweep": "s", "status": "failed", "heldout": None},
        {"task": "d", "sweep": "s", "status": "finished", "heldout": 0.5, "heldout_angles": [5], "loss": "mse"},
        {"task": "e", "sweep": "", "status": "finished", "heldout": 0.1, "heldout_angles": [0], "loss": "mse"},
    ]
    assert [r["task"] for r in mark_best(rows) if r["best_in_sweep"]] == ["b"]
    # Counts held out instead of tilts: comparable only with the same fraction and seed.
    counts = [
        {"task": "f", "sweep": "t", "status": "finished", "heldout": 2.0, "heldout_angles": [],
         "heldout_counts": [0.1, 0], "loss": "poisson"},
        {"task": "g", "sweep": "t", "status": "finished", "heldout": 1.5, "heldout_angles": [],
         "heldout_counts": [0.1, 0], "loss": "poisson"},
        {"task": "h", "sweep": "t", "status": "finished", "heldout": 0.2, "heldout_angles": [],
         "heldout_counts": [0.1, 1], "loss": "poisson"},
    ]
    assert [r["task"] for r in mark_best(counts) if r["best_in_sweep"]] == ["g"]
