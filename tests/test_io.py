import json

import numpy as np
import pytest
import tifffile

from edxtomo.io import (
    InputError,
    read_angles,
    read_map_folder,
    read_volume,
    write_map_folder,
    write_volumes,
)
from edxtomo.io.atomic import write_atomic
from edxtomo.phantom import acquire, make_phantom, tilt_angles


def test_map_folder_round_trip(tmp_path):
    s = acquire(make_phantom("memory_cell", 16), tilt_angles(-60, 60, 15), dose=4)
    write_map_folder(s, tmp_path)
    back = read_map_folder(tmp_path)
    assert back.elements == s.elements
    np.testing.assert_array_equal(back.stack(), s.stack())
    np.testing.assert_allclose(back.angles, s.angles)
    assert back.pixel_size == pytest.approx(s.pixel_size)
    meta = json.loads((tmp_path / "series.json").read_text())
    assert meta["shape"] == [9, 16, 16]


def test_line_suffix_and_rawtlt(tmp_path):
    tifffile.imwrite(tmp_path / "Ge_Ka.tif", np.ones((3, 4, 5), np.float32), photometric="minisblack")
    (tmp_path / "series.rawtlt").write_text("-20\n0\n20\n")
    s = read_map_folder(tmp_path)
    assert s.elements == ["Ge"] and s.lines == {"Ge": "Ge_Ka"}
    np.testing.assert_allclose(s.angles, [-20, 0, 20])


def test_angle_file_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_angles(tmp_path / "none.txt")
    (tmp_path / "a.txt").write_text("# tilts\n\n")
    with pytest.raises(InputError, match="no angles"):
        read_angles(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("-10 # first\n0,5\n")
    np.testing.assert_allclose(read_angles(tmp_path / "b.txt"), [-10, 0.5])


def test_missing_angles_and_unreadable_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "Ge.tif", np.ones((3, 4, 5), np.float32), photometric="minisblack")
    with pytest.raises(InputError, match="no angles.txt"):
        read_map_folder(tmp_path)
    (tmp_path / "angles.txt").write_text("-20\n0\n20\n")
    (tmp_path / "Te.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="Te.tif: cannot read as TIFF"):
        read_map_folder(tmp_path)


def test_volume_tiff_is_imagej_with_voxel_size(tmp_path):
    vol = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    write_volumes(tmp_path, {"Ge": vol}, 1.25, {"method": "tv"})
    back, spacing = read_volume(tmp_path / "Ge.tif")
    np.testing.assert_array_equal(back, vol)
    assert spacing == pytest.approx(1.25)
    with tifffile.TiffFile(tmp_path / "Ge.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "nm"
        x_res = tif.pages[0].tags["XResolution"].value
        assert x_res[1] / x_res[0] == pytest.approx(1.25)
    side = json.loads((tmp_path / "reconstruction.json").read_text())
    assert side["method"] == "tv" and "torch" in side["versions"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")

    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_atomic_writes_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.txt", lambda p: p.write_text("x"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_one_vocabulary_for_every_reader():
    from edxtomo._napari import _reader
    from edxtomo.io import spectrum_files, vocabulary

    assert _reader.SPECTRUM_SUFFIXES is vocabulary.SPECTRUM_SUFFIXES is spectrum_files.SPECTRUM_SUFFIXES
    assert vocabulary.element_of("Ge_Ka.tif") == ("Ge", "Ge_Ka") and vocabulary.element_of("notes.tif") is None
    assert vocabulary.check_bin(4) == 4
    for bad in (0, -1, 2.5, "x", True):
        with pytest.raises(InputError, match="whole number >= 1"):
            vocabulary.check_bin(bad)
