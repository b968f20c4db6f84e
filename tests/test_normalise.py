"""The ``normalise`` read option: ``none``, and ``counts`` by default wherever the full alignment runs.

The synthetic series is a phantom projected at 9 tilts, moved by small shifts
and scaled by known per-tilt gains (+-20 %) before Poisson noise, written as
a map folder: what ``edxtomo align`` / ``extract`` / ``reconstruct`` read.
Counts normalisation divides each tilt by its summed element-map counts, so
on this series it recovers the planted gains; ``none`` leaves every gain 1.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from edxtomo.cli import main
from edxtomo.io import ReadOptions, read_series, write_map_folder
from edxtomo.io.options import NORMALISE, sidecar_read_options
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.tiltseries import TiltSeries


def _gains_series(seed: int = 4) -> tuple[TiltSeries, np.ndarray]:
    clean = acquire(make_phantom("core_shell", 20, seed=2), tilt_angles(-40, 40, 10), dose=None)
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.8, 1.2, clean.n_angles)
    shifts = rng.integers(-2, 3, (clean.n_angles, 2))
    maps = {}
    for el, m in clean.maps.items():
        m = np.pad(m, ((0, 0), (6, 6), (6, 6)))
        m = np.stack([np.roll(m[k], tuple(shifts[k]), axis=(0, 1)) * gains[k] for k in range(clean.n_angles)])
        scale = 10.0 / m[m > 0.01 * m.max()].mean()
        maps[el] = rng.poisson(np.clip(m, 0, None) * scale).astype(np.float32)
    return TiltSeries(maps, clean.angles, source="synthetic"), gains / np.exp(np.log(gains).mean())


@pytest.fixture(scope="module")
def gains_folder(tmp_path_factory) -> tuple[Path, np.ndarray]:
    series, gains = _gains_series()
    folder = tmp_path_factory.mktemp("gains") / "maps"
    write_map_folder(series, folder)
    return folder, gains


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_align_normalises_counts_by_default_and_none_turns_it_off(gains_folder, tmp_path, capsys):
    folder, planted = gains_folder
    assert main(["align", str(folder), "--out", str(tmp_path / "default"), "--refine", "1"]) == 0
    rep = _json(tmp_path / "default" / "alignment.json")
    assert rep["normalise"] == "counts"
    # Totals of the element maps carry the planted gains: recovered within 5 %.
    np.testing.assert_allclose(rep["gains"], planted, rtol=0.05)
    prov = _json(tmp_path / "default" / "series.json")["provenance"]["alignment"]
    assert prov["normalise"] == "counts" and prov["gains"] == rep["gains"]

    assert main(["align", str(folder), "--out", str(tmp_path / "none"), "--refine", "1",
                 "--normalise", "none"]) == 0
    rep_none = _json(tmp_path / "none" / "alignment.json")
    assert rep_none["normalise"] == "none" and rep_none["gains"] == [1.0] * len(planted)
    assert _json(tmp_path / "none" / "series.json")["provenance"]["alignment"]["normalise"] == "none"
    # The written maps differ by exactly those gains (same shifts, same interpolation).
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # alignment.json is a record of the folder, not a skipped file
        a, b = read_series(tmp_path / "default"), read_series(tmp_path / "none")
    np.testing.assert_allclose(a.stack() * np.asarray(rep["gains"])[None, :, None, None], b.stack(),
                               rtol=1e-4, atol=1e-4)
    capsys.readouterr()


def test_extract_defaults_without_alignment_stay_as_before(gains_folder, tmp_path):
    """No alignment, or the translation-only --align: nothing normalised unless asked."""
    folder, planted = gains_folder
    raw = read_series(folder)
    assert main(["extract", str(folder), "--out", str(tmp_path / "plain")]) == 0
    np.testing.assert_array_equal(read_series(tmp_path / "plain").stack(), raw.stack())
    assert "alignment" not in _json(tmp_path / "plain" / "series.json")["provenance"]

    assert main(["extract", str(folder), "--out", str(tmp_path / "none"), "--normalise", "none"]) == 0
    np.testing.assert_array_equal(read_series(tmp_path / "none").stack(), raw.stack())

    assert main(["extract", str(folder), "--out", str(tmp_path / "translation"), "--align"]) == 0
    rec = _json(tmp_path / "translation" / "series.json")["provenance"]["alignment"]
    assert "shifts_px" in rec and "gains" not in rec and "normalise" not in rec

    # --tilt-axis (or --refine) runs the full alignment, and with it the counts default.
    assert main(["extract", str(folder), "--out", str(tmp_path / "full"), "--tilt-axis", "0",
                 "--refine", "0"]) == 0
    rec = _json(tmp_path / "full" / "series.json")["provenance"]["alignment"]
    assert rec["normalise"] == "counts"
    np.testing.assert_allclose(rec["gains"], planted, rtol=0.05)


def test_reconstruct_records_the_default_and_replays_old_sidecars_as_they_ran(gains_folder, tmp_path):
    folder, _ = gains_folder
    run = ["--method", "sirt", "--iterations", "3"]
    assert main(["reconstruct", str(folder), "--refine", "0", *run, "--out", str(tmp_path / "a")]) == 0
    side = _json(tmp_path / "a" / "reconstruction.json")
    # The default is written out, so the sidecar says what was done and replays it.
    assert side["read_options"]["normalise"] == "counts"
    assert side["provenance"]["alignment"]["normalise"] == "counts"
    assert side["read_options"]["align_reference"] == "maps"
    # A sidecar from before the reference's default became "maps" names none: it ran with "auto".
    older = {k: v for k, v in side["read_options"].items() if k != "align_reference"}
    assert sidecar_read_options(older)["align_reference"] == "auto"
    assert sidecar_read_options(side["read_options"])["align_reference"] == "maps"

    assert main(["reconstruct", str(folder), "--refine", "0", "--normalise", "none", *run,
                 "--out", str(tmp_path / "b")]) == 0
    side_b = _json(tmp_path / "b" / "reconstruction.json")
    assert side_b["read_options"]["normalise"] == "none"
    assert side_b["provenance"]["alignment"]["normalise"] == "none"
    assert set(side_b["provenance"]["alignment"]["gains"]) == {1.0}

    assert main(["reconstruct", "--config", str(tmp_path / "a" / "reconstruction.json"),
                 "--out", str(tmp_path / "a2")]) == 0
    assert _json(tmp_path / "a2" / "reconstruction.json")["provenance"]["alignment"]["normalise"] == "counts"

    # A sidecar written before 'none' existed: full alignment with normalise null ran without
    # gains, and is replayed that way (not with today's default).
    old = dict(side, read_options={**side["read_options"], "normalise": None})
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    assert main(["reconstruct", "--config", str(tmp_path / "old.json"), "--out", str(tmp_path / "o")]) == 0
    replay = _json(tmp_path / "o" / "reconstruction.json")
    assert replay["read_options"]["normalise"] == "none"
    assert replay["provenance"]["alignment"]["normalise"] == "none"
    # ... unless the command line asks for an alignment anew.
    old_plain = dict(side, read_options={k: v for k, v in side["read_options"].items()
                                         if k not in ("refine", "tilt_axis", "normalise")})
    (tmp_path / "plain.json").write_text(json.dumps(old_plain), encoding="utf-8")
    assert main(["reconstruct", "--config", str(tmp_path / "plain.json"), "--refine", "0",
                 "--out", str(tmp_path / "p")]) == 0
    assert _json(tmp_path / "p" / "reconstruction.json")["read_options"]["normalise"] == "counts"


def test_read_options_none_round_trip_and_the_default_rule():
    assert "none" in NORMALISE
    for opts in (ReadOptions(normalise="none"), ReadOptions(refine=2, normalise="none"),
                 ReadOptions(tilt_axis="auto", normalise="gains"), ReadOptions(refine=1)):
        assert ReadOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    # Not given: counts with the full alignment, nothing without it (also with --align).
    assert ReadOptions(refine=3).normalise == "counts" and ReadOptions(tilt_axis=2.0).normalise == "counts"
    assert ReadOptions().normalise is None and ReadOptions(align=True).normalise is None
    # What the reader is told: 'none' never starts an alignment by itself, and the spectrum
    # reader's normalisations leave the alignment without gains of its own.
    kw = ReadOptions(normalise="none").reader_kwargs()
    assert kw["normalise"] is None and "tilt_gains" not in kw and "refine" not in kw
    assert ReadOptions(refine=2, normalise="none").reader_kwargs()["tilt_gains"] == "none"
    kw = ReadOptions(refine=2, normalise="total").reader_kwargs()
    assert kw["normalise"] == "total" and kw["tilt_gains"] == "none"
    assert ReadOptions(refine=2).reader_kwargs()["tilt_gains"] == "counts"
    # Sidecars: null beside an alignment is an older run without gains; anything else as written.
    assert sidecar_read_options({"refine": 5, "normalise": None})["normalise"] == "none"
    assert sidecar_read_options({"refine": 5, "normalise": "counts"})["normalise"] == "counts"
    # An aligned run whose sidecar names no reference ran with "auto" (HAADF when present), the
    # default before "maps"; a run without alignment needs none.
    assert sidecar_read_options({"align": True}) == {"align": True, "align_reference": "auto"}
    assert sidecar_read_options({"align": True, "align_reference": "maps"})["align_reference"] == "maps"
    assert sidecar_read_options({"bin": 2}) == {"bin": 2}
    assert sidecar_read_options(None) == {}


def test_batch_manifest_takes_none(gains_folder, tmp_path):
    from edxtomo.batch.manifest import ManifestError, load_manifest
    from edxtomo.batch.tasks import run_task

    folder, _ = gains_folder
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        f'[[task]]\nname = "none"\ninput = "{folder}"\nmethod = "sirt"\nparams = {{ iterations = 2 }}\n'
        'read = { refine = 0, normalise = "none" }\n\n'
        f'[[task]]\nname = "default"\ninput = "{folder}"\nmethod = "sirt"\nparams = {{ iterations = 2 }}\n'
        'read = { refine = 0 }\n', encoding="utf-8")
    tasks = {t.name: t for t in load_manifest(manifest)}
    for name, expected in (("none", "none"), ("default", "counts")):
        row = run_task(tasks[name], str(tmp_path / "out"), torch_threads=1)
        assert row["status"] == "finished", row
        side = _json(tmp_path / "out" / name / "reconstruction.json")
        assert side["read_options"]["normalise"] == expected
        assert side["provenance"]["alignment"]["normalise"] == expected
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[task]]\nname = "x"\ninput = "{folder}"\nmethod = "sirt"\n'
                   'read = { normalise = "off" }\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="normalise.*none, total, live_time, counts, gains"):
        load_manifest(bad)


@pytest.mark.realdata
def test_real_series_counts_by_default_reader_normalisation_keeps_alignment_gains_off(idp, tmp_path):
    """On the real .bcf series: `align` normalises counts by default (the outer tilts carry more
    counts, path length ~1/cos); with --normalise total the spectrum reader normalises and the
    alignment adds no gains of its own."""
    common = ["--lines", "Fe_Ka", "Si_Ka", "--bin", "8", "--refine", "1"]
    assert main(["align", str(idp), *common, "--out", str(tmp_path / "counts")]) == 0
    rep = _json(tmp_path / "counts" / "alignment.json")
    assert rep["normalise"] == "counts"
    angles = np.asarray(rep["angles_deg"])
    gains = np.asarray(rep["gains"])
    assert gains[np.argmin(angles)] > 1.1 * gains[np.argmin(np.abs(angles))], gains  # -40 vs 0 deg

    assert main(["align", str(idp), *common, "--normalise", "total", "--out", str(tmp_path / "total")]) == 0
    rep = _json(tmp_path / "total" / "alignment.json")
    assert rep["normalise"] == "none" and set(rep["gains"]) == {1.0}
    read = _json(tmp_path / "total" / "series.json")["provenance"]["read"]
    assert read["normalise"] == "total"


@pytest.mark.realdata
def test_real_series_align_and_extract_refine_align_alike(idp, tmp_path):
    """`align` and `extract --refine` are one path: the same reference images, the same shifts;
    by default the summed element maps, with --align-reference haadf the files' HAADF images."""
    common = ["--lines", "Fe_Ka", "Si_Ka", "--bin", "8", "--refine", "1"]
    assert main(["align", str(idp), *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["extract", str(idp), *common, "--out", str(tmp_path / "e")]) == 0
    a = _json(tmp_path / "a" / "series.json")["provenance"]["alignment"]
    e = _json(tmp_path / "e" / "series.json")["provenance"]["alignment"]
    assert a["reference"] == e["reference"] == "sum of the element maps"
    np.testing.assert_allclose(a["shifts_px"], e["shifts_px"])
    assert main(["align", str(idp), *common, "--align-reference", "haadf", "--out", str(tmp_path / "h")]) == 0
    h = _json(tmp_path / "h" / "alignment.json")
    assert h["reference"] == "HAADF images"
