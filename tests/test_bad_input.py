"""Bad input, faults and concurrent use: a table of cases over the CLI, the Python API and the napari reader.

Each case states what the user gets (exit status 2 or the exception type),
the message (its cause and the path it names) and what is on disk
afterwards (inputs unchanged, no half-written or staging folder left).
Damaged files are made in tmp_path from the real data at test time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from edxtomo.cli import main
from edxtomo.errors import DamagedFileError, EdxtomoError, InputError, OutputError, ResourceError
from edxtomo.io import (
    ReadOptions,
    check_output_folder,
    read_series,
    replace_folder,
    write_map_folder,
)
from edxtomo.io.outdir import OutputLock, lock_path, partial_dir
from edxtomo.phantom import acquire, make_phantom, tilt_angles

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``folder`` (what 'nothing lost' compares)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Staging, old and lock entries edxtomo may leave behind in ``folder``."""
    return sorted(p.name for p in folder.iterdir()
                  if ".stage-" in p.name or ".old-" in p.name or p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def maps_src(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("maps")
    series = acquire(make_phantom("core_shell", 16, seed=2), tilt_angles(-40, 40, 20), dose=5.0, seed=2)
    write_map_folder(series, folder)
    return folder


@pytest.fixture
def maps(maps_src, tmp_path) -> Path:
    folder = tmp_path / "maps"
    shutil.copytree(maps_src, folder)
    return folder


def _bcf(name: str) -> Path:
    path = SHARED / "rsciio_edx" / name
    if not path.is_file():
        pytest.skip(f"real data {path} not found")
    return path


def _idp(name: str = "0.bcf") -> Path:
    path = SHARED / "openncem_idp_tilt10" / name
    if not path.is_file():
        pytest.skip(f"real data {path} not found")
    return path


def cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def overwrite_middle(src: Path, dst: Path, n: int = 4096) -> Path:
    """A copy of the right size with ``n`` bytes in the middle overwritten (a bad sector)."""
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid: mid + n] = b"\xff" * n
    dst.write_bytes(bytes(data))
    return dst


# ---------------------------------------------------------------- the table
@dataclass
class Case:
    """``setup(tmp, maps)`` returns CLI arguments (a list) or a callable (the API / napari reader)."""

    id: str
    setup: Callable[[Path, Path], list[str] | Callable[[], object]]
    expect: int | type[BaseException]
    message: str  # must appear in the message; "{tmp}" is replaced by tmp_path
    after: Callable[[Path, Path], None] | None = None


def _unchanged(tmp: Path, maps: Path) -> None:
    assert (maps / "series.json").is_file() and len(list(maps.glob("*.tif"))) == 3
    assert not (maps / "reconstruction.json").exists()


def _no_out(tmp: Path, maps: Path) -> None:
    assert not (tmp / "out").exists()
    assert leftovers(tmp) == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tiff(path: Path, data: np.ndarray) -> Path:
    tifffile.imwrite(path, data.astype(np.float32), imagej=True, metadata={"axes": "ZYX"})
    return path


def _map_folder(tmp: Path, shapes: dict[str, tuple], angles: str = "-20\n0\n20\n") -> Path:
    folder = tmp / "mf"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for el, shape in shapes.items():
        _tiff(folder / f"{el}.tif", rng.random(shape) + 0.1)
    _write(folder / "angles.txt", angles)
    return folder


def _truncated_tiff_folder(tmp: Path, maps: Path) -> Path:
    data = (maps / "S.tif").read_bytes()
    (maps / "S.tif").write_bytes(data[: len(data) // 3])
    return maps


def _two_bcf(tmp: Path, damaged: Callable[[Path, Path], Path]) -> Path:
    folder = tmp / "bcf"
    folder.mkdir()
    src = _bcf("test_TEM.bcf")
    shutil.copy(src, folder / "-10.bcf")
    shutil.copy(src, folder / "0.bcf")
    damaged(src, folder / "10.bcf")
    return folder


def _locked_by_live(tmp: Path, maps: Path) -> list[str]:
    out = tmp / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _Holders.procs.append(holder)
    lock_path(out).write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                          "command": "edxtomo reconstruct other", "started": "now"}))
    return ["reconstruct", str(maps), "--out", str(out), "--method", "sirt", "--iterations", "2"]


class _Holders:
    procs: list[subprocess.Popen] = []


def _unwritable(tmp: Path) -> Path:
    if os.geteuid() == 0:
        return Path("/proc/1/edxtomo-out")  # not writable even for root
    locked = tmp / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    return locked / "out"


def _rec(maps: Path, out: Path, *extra: str) -> list[str]:
    return ["reconstruct", str(maps), "--out", str(out), "--method", "sirt", "--iterations", "2", *extra]


CASES = [
    # ---- output folders (CLI)
    Case("out-is-input", lambda t, m: _rec(m, m), 2, "is the input folder", _unchanged),
    Case("out-inside-input", lambda t, m: _rec(m, m / "rec"), 2, "or inside it",
         lambda t, m: (_unchanged(t, m), not (m / "rec").exists() or pytest.fail("made rec"))),
    Case("out-holds-input", lambda t, m: _rec(m, m.parent), 2, "holds the input", _unchanged),
    Case("out-is-a-file", lambda t, m: _rec(m, _write(t / "out", "keep me")), 2, "is a file, not a folder",
         lambda t, m: (t / "out").read_text() == "keep me" or pytest.fail("file changed")),
    Case("out-under-a-file", lambda t, m: _rec(m, _write(t / "f", "keep") / "out"), 2,
         "is a file, so no folder can be made under it",
         lambda t, m: (t / "f").read_text() == "keep" or pytest.fail("file changed")),
    Case("out-unwritable", lambda t, m: _rec(m, _unwritable(t)), 2, "permission denied", None),
    Case("out-holds-user-files", lambda t, m: (_write((t / "out").mkdir() or t / "out" / "notes.md", "x"),
                                               _rec(m, t / "out"))[1], 2,
         "holds files edxtomo did not write (notes.md)",
         lambda t, m: (t / "out" / "notes.md").read_text() == "x" or pytest.fail("notes lost")),
    Case("out-locked-by-running-process", _locked_by_live, 2, "another edxtomo run is writing there: PID",
         lambda t, m: not (t / "out" / "reconstruction.json").exists() or pytest.fail("wrote anyway")),
    Case("out-partial-of-a-dead-run", lambda t, m: ((partial_dir(t / "out")).mkdir(parents=True),
                                                    _rec(m, t / "out"))[1], 2,
         "an interrupted run left its last checkpoint",
         lambda t, m: partial_dir(t / "out").is_dir() or pytest.fail("partial removed")),
    Case("extract-out-is-input", lambda t, m: ["extract", str(m), "--out", str(m)], 2,
         "is the input folder", _unchanged),
    Case("simulate-out-holds-user-files",
         lambda t, m: (_write((t / "out").mkdir() or t / "out" / "data.csv.bak", "x"),
                       ["simulate", str(t / "out"), "--size", "16"])[1], 2, "did not write (data.csv.bak)",
         lambda t, m: (t / "out" / "data.csv.bak").read_text() == "x" or pytest.fail("lost")),
    # ---- read options (CLI)
    Case("bin-0", lambda t, m: _rec(m, t / "out", "--bin", "0"), 2, "binning factor must be a whole number >= 1",
         _no_out),
    Case("bin-negative", lambda t, m: ["extract", str(m), "--out", str(t / "out"), "--bin", "-2"], 2,
         "got -2", _no_out),
    Case("angle-start-without-step", lambda t, m: _rec(m, t / "out", "--angle-start", "-40"), 2,
         "give both angle_start and angle_step", _no_out),
    Case("angles-file-missing", lambda t, m: _rec(m, t / "out", "--angles", str(t / "none.txt")), 2,
         "none.txt: angles file not found", _no_out),
    Case("angles-file-not-numbers", lambda t, m: _rec(m, t / "out", "--angles", str(_write(t / "a.txt", "x\n"))),
         2, "a.txt, line 1: 'x' is not an angle", _no_out),
    Case("angles-file-and-start", lambda t, m: _rec(m, t / "out", "--angles", str(m / "angles.txt"),
                                                   "--angle-start", "0", "--angle-step", "5"), 2,
         "both give the tilt angles", _no_out),
    Case("angles-count-differs", lambda t, m: _rec(m, t / "out", "--angles", str(_write(t / "a.txt", "0\n10\n"))),
         2, "has 5 maps but there are 2 tilt angles", _no_out),
    Case("config-unknown-read-option",
         lambda t, m: _rec(m, t / "out", "--config", str(_write(t / "c.json", json.dumps(
             {"format": "edxtomo-reconstruction/1", "method": "sirt", "params": {},
              "read_options": {"binning": 2}})))), 2, "unknown read option(s) binning", _no_out),
    Case("input-missing", lambda t, m: _rec(t / "nothing", t / "out"), 2, "nothing: no such file or folder", _no_out),
    # ---- map folders
    Case("truncated-tiff", lambda t, m: _rec(_truncated_tiff_folder(t, m), t / "out"), 2,
         "S.tif: damaged or truncated file", _no_out),
    Case("not-a-tiff", lambda t, m: ((m / "series.json").unlink(), _write(m / "Te.tif", "not a tiff"),
                                     _rec(m, t / "out"))[2], 2,
         "Te.tif: cannot read as TIFF; the file is damaged or not a TIFF", None),
    Case("odd-shape-blames-right-element",
         lambda t, m: _rec(_map_folder(t, {"Al": (3, 8, 8), "Fe": (3, 16, 16), "Si": (3, 16, 16)}), t / "out"),
         2, "element 'Al' has shape (3, 8, 8), the other elements (3, 16, 16)", _no_out),
    Case("series-json-lists-missing-element",
         lambda t, m: ((m / "Se.tif").unlink(), _rec(m, t / "out"))[1], 2,
         "lists Se but the folder has no Se.tif", _no_out),
    Case("one-tilt-map-folder", lambda t, m: _rec(_map_folder(t, {"Fe": (1, 8, 8)}, "0\n"), t / "out"), 2,
         "1 tilt(s); a tilt series needs at least 2", _no_out),
    Case("duplicate-angles", lambda t, m: _rec(_map_folder(t, {"Fe": (3, 8, 8)}, "0\n0\n10\n"), t / "out"), 2,
         "duplicate tilt angles: 0", _no_out),
    Case("angle-beyond-90", lambda t, m: _rec(_map_folder(t, {"Fe": (3, 8, 8)}, "0\n10\n95\n"), t / "out"), 2,
         "strictly between -90 and 90", _no_out),
    Case("no-angle-file", lambda t, m: ((m / "angles.txt").unlink(), _rec(m, t / "out"))[1], 2,
         "no angles.txt (or .rawtlt/.tlt) beside the maps", _no_out),
    Case("negative-counts", lambda t, m: _rec(_neg(t), t / "out"), 2, "has negative values", _no_out),
    # ---- simulate
    Case("simulate-size-absurd", lambda t, m: ["simulate", str(t / "out"), "--size", "100000"], 2,
         "--size 100000: a phantom edge must lie between 8 and 2048", _no_out),
    Case("simulate-size-too-big-for-memory", lambda t, m: ["simulate", str(t / "out"), "--size", "2000"], 2,
         "needs about", _no_out),
    # ---- spectrum files (real data, damaged copies made here)
    Case("nope-bcf", lambda t, m: ["extract", str(_bcf("Nope.bcf")), str(_bcf("test_TEM.bcf")), "--out",
                                   str(t / "out")], 2, "Nope.bcf: damaged or truncated file", _no_out),
    Case("bcf-cut-at-50-percent", lambda t, m: ["extract", str(_two_bcf(t, lambda s, d: cut(s, d, 0.5))),
                                                "--out", str(t / "out")], 2,
         "10.bcf: damaged or truncated file (166028 bytes of the 332056", _no_out),
    Case("bcf-cut-at-99-percent", lambda t, m: ["extract", str(_two_bcf(t, lambda s, d: cut(s, d, 0.99))),
                                                "--out", str(t / "out")], 2, "10.bcf: damaged or truncated", _no_out),
    Case("one-spectrum-file", lambda t, m: ["extract", str(_bcf("test_TEM.bcf")), "--out", str(t / "out"),
                                            "--angles", str(_write(t / "a.txt", "0\n"))], 2,
         "1 tilt(s); a tilt series needs at least 2", _no_out),
    Case("mixed-formats", lambda t, m: ["extract", str(_bcf("test_TEM.bcf")),
                                        str(_bcf("Test SI 16x16 215 kx.emd")), "--out", str(t / "out")], 2,
         "mixed file formats in the input", _no_out),
    # ---- Python API
    Case("api-bin-0", lambda t, m: lambda: read_series(m, bin_factor=0), InputError,
         "binning factor must be a whole number >= 1"),
    Case("api-readoptions-unknown", lambda t, m: lambda: ReadOptions.from_dict({"bins": 2}), InputError,
         "unknown read option(s) bins"),
    Case("api-readoptions-lines-string", lambda t, m: lambda: ReadOptions(lines="Fe_Ka"), InputError,
         "a list of line or element names"),
    Case("api-readoptions-nan-angle", lambda t, m: lambda: ReadOptions(angles=(0.0, float("nan"))), InputError,
         "must be finite"),
    Case("api-out-is-a-file", lambda t, m: lambda: check_output_folder(_write(t / "f.txt", "x")), OutputError,
         "f.txt: is a file"),
    Case("api-emd-truncated", lambda t, m: lambda: read_series(
        [cut(_bcf("Test SI 16x16 215 kx.emd"), t / "cut.emd", 0.4)], angles=[0]), DamagedFileError,
         "cut.emd: damaged or truncated file (the file is shorter than its HDF5 header says)"),
    Case("api-bcf-cut-1-5-MB", lambda t, m: lambda: read_series(
        [cut(_idp(), t / "a.bcf", 1_500_000 / _idp().stat().st_size), _idp("10.bcf")], lines=["Fe_Ka"]),
         DamagedFileError, "a.bcf: damaged or truncated file"),
    Case("api-map-shape-error-is-input-error", lambda t, m: lambda: read_series(
        _map_folder(t, {"Fe": (3, 16, 16), "Si": (3, 16, 16), "Zn": (3, 16, 8)})), InputError,
         "element 'Zn' has shape (3, 16, 8)"),
    # ---- napari reader
    Case("napari-truncated-tiff", lambda t, m: lambda: _napari_read(_truncated_tiff_folder(t, m)), InputError,
         "S.tif: damaged or truncated"),
    Case("napari-one-spectrum-file", lambda t, m: lambda: _napari_read(_bcf("test_TEM.bcf")), InputError,
         "test_TEM.bcf"),
    Case("napari-nope-bcf", lambda t, m: lambda: _napari_read(_bcf("Nope.bcf")), DamagedFileError,
         "Nope.bcf: damaged or truncated file"),
]


def _neg(tmp: Path) -> Path:
    folder = _map_folder(tmp, {"Fe": (3, 8, 8)})
    _tiff(folder / "Fe.tif", -np.ones((3, 8, 8)))
    return folder


def _napari_read(path: Path):
    from edxtomo._napari._reader import get_reader

    reader = get_reader(str(path))
    assert reader is not None, f"the napari reader does not claim {path}"
    return reader(str(path))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, maps, capsys):
    work = tmp_path / "work"
    work.mkdir()
    inputs_before = snapshot(maps)
    try:
        action = case.setup(work, maps)
        expected = case.message.replace("{tmp}", str(work))
        if isinstance(action, list):
            code = main(action)
            err = capsys.readouterr().err
            assert code == case.expect, err
            lines = [ln for ln in err.splitlines() if ln.startswith("edxtomo: error:")]
            assert len(lines) == 1 and expected in lines[0], err
            assert "Traceback" not in err
        else:
            with pytest.raises(case.expect) as info:  # type: ignore[call-overload]
                action()
            assert expected in str(info.value)
            assert isinstance(info.value, EdxtomoError) and isinstance(info.value, ValueError)
        if case.after is not None:
            case.after(work, maps)
    finally:
        for proc in _Holders.procs:
            proc.kill()
            proc.wait()
        _Holders.procs.clear()
    if not case.id.startswith(("truncated", "not-a-tiff", "series-json", "no-angle", "napari-trunc")):
        assert snapshot(maps) == inputs_before  # the input is never touched


def test_table_has_40_cases():
    assert len(CASES) >= 40


# ---------------------------------------------------------------- behaviour beyond refusals
def test_skip_bad_goes_on_and_records_the_skipped_file(tmp_path):
    folder = _two_bcf(tmp_path, lambda s, d: cut(s, d, 0.5))
    out = tmp_path / "out"
    code = main(["extract", str(folder), "--out", str(out), "--skip-bad", "--lines", "Cu_Ka"])
    assert code == 0
    meta = json.loads((out / "series.json").read_text())
    skipped = meta["provenance"]["read"]["skipped"]
    assert [Path(s["file"]).name for s in skipped] == ["10.bcf"] and "166028 bytes" in skipped[0]["reason"]
    assert meta["shape"][0] == 2 and meta["angles"] == [-10, 0]


def test_reader_crash_in_a_child_is_a_damaged_file(tmp_path):
    """A .bcf of the right size with a bad sector crashes RosettaSciIO (bus error); we report it."""
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(_idp("10.bcf"), folder / "10.bcf")
    overwrite_middle(_idp("0.bcf"), folder / "0.bcf")
    proc = subprocess.run([sys.executable, "-m", "edxtomo.cli", "extract", str(folder), "--out",
                           str(tmp_path / "out"), "--lines", "Fe_Ka"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "0.bcf: damaged or truncated file (the reader crashed with a " in last
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_series_json_decides_what_a_map_folder_reads(maps, capsys):
    meta = json.loads((maps / "series.json").read_text())
    meta["elements"] = meta["elements"][:2]
    (maps / "series.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"ignored S\.tif \(not listed in series\.json"):
        series = read_series(maps)
    assert series.elements == meta["elements"] and series.provenance["read"]["ignored"] == ["S.tif"]


def test_mixed_folder_says_what_it_read_and_ignored(maps):
    shutil.copy(_bcf("test_TEM.bcf"), maps / "extra.bcf")
    with pytest.warns(UserWarning, match=r"ignored extra\.bcf"):
        read_series(maps)


def test_rerun_replaces_the_result_whole_and_files_follow_the_umask(maps, tmp_path, capsys):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        assert main(_rec(maps, out)) == 0
        first = snapshot(out)
        assert main(_rec(maps, out, "--elements", "In", "Se")) == 0
    finally:
        os.umask(old)
    assert sorted(p.name for p in out.iterdir()) == ["In.tif", "Se.tif", "reconstruction.json"]
    assert snapshot(out) != first and leftovers(tmp_path) == []
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o644"}


def test_replace_folder_keeps_the_old_result_when_writing_fails(tmp_path):
    target = tmp_path / "rec"
    target.mkdir()
    (target / "Fe.tif").write_text("old")

    def writer(stage: Path) -> None:
        (stage / "Fe.tif").write_text("new, half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_folder(target, writer)
    assert (target / "Fe.tif").read_text() == "old" and leftovers(tmp_path) == []


def test_stale_lock_is_taken_over(maps, tmp_path):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                          "command": "edxtomo old", "started": "then"}))
    assert main(_rec(maps, out)) == 0
    assert (out / "reconstruction.json").is_file() and not lock_path(out).exists()


def test_lock_names_the_holder_and_is_reentrant(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out, command="edxtomo reconstruct A"), OutputLock(out):
        info = json.loads(lock_path(out).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "edxtomo reconstruct A"
    assert not lock_path(out).exists()


def test_errors_keep_except_valueerror_working():
    for cls in (InputError, OutputError, ResourceError, DamagedFileError):
        assert issubclass(cls, EdxtomoError) and issubclass(cls, ValueError)
    from edxtomo.io import InputError as IoInputError
    from edxtomo.tiltseries import TiltSeriesError

    assert IoInputError is InputError and issubclass(TiltSeriesError, InputError)


def test_read_options_round_trip_and_old_sidecars():
    opts = ReadOptions(lines=("Fe_Ka",), bin=4, align=True, angles_file="a.txt", skip_bad=True)
    assert ReadOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    old = ReadOptions.from_dict({"lines": ["Fe_Ka"], "bin": 8, "align": False, "angles": "t.txt"})
    assert old.angles_file == "t.txt" and old.angles is None
    assert ReadOptions.from_dict({"angles": [-10, 0, 10]}).angles == (-10.0, 0.0, 10.0)


_READ_ONCE = """
from edxtomo.io.isolated import IsolatedReader

{indent}with IsolatedReader() as reader:
{indent}    print("read", reader.call("a.bcf", len, "abc"))
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_reader_child_in_a_script_without_main_guard(tmp_path, guarded):
    """A script without ``if __name__ == "__main__":`` gets advice, not a "damaged file" error."""
    body = _READ_ONCE.format(indent="    " if guarded else "")
    if guarded:
        body = body.replace("\n    with", '\nif __name__ == "__main__":\n    with', 1)
    script = tmp_path / "read_script.py"
    script.write_text(body)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    if guarded:
        assert proc.returncode == 0 and "read 3" in proc.stdout, proc.stderr
        return
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: the file reader's child process ended with exit status 1")
    assert 'if __name__ == "__main__":' in last and "damaged" not in proc.stderr
