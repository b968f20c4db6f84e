"""Spectrum-image tilt series read by HyperSpy/RosettaSciIO: real Bruker and Velox files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edxtomo.io import InputError, read_series
from edxtomo.io.angle_sources import angles_from_names, resolve_angles
from edxtomo.io.spectra import detect_angles, load_spectrum_series
from edxtomo.io.spectrum_files import describe_spectrum_image, expand_inputs, open_spectrum_image

pytestmark = pytest.mark.realdata
LINES = ["Fe_Ka", "Si_Ka", "O_Ka", "S_Ka", "Mg_Ka"]


@pytest.fixture(scope="module")
def idp_series(idp):
    """The real 8-tilt series, 5 lines, unbinned, with its HAADF stack (read once)."""
    return load_spectrum_series(idp, lines=LINES)


def test_angles_from_real_file_names(idp):
    files = expand_inputs(idp)
    assert len(files) == 8
    angles, source = detect_angles(idp)
    assert sorted(angles) == [-40, -30, -20, -10, 0, 10, 20, 30]
    assert "file names" in source and "tilt_alpha is 0" in source


def test_series_sorted_with_provenance(idp_series):
    series, haadf = idp_series
    np.testing.assert_array_equal(series.angles, [-40, -30, -20, -10, 0, 10, 20, 30])
    assert series.elements == ["Fe", "Si", "O", "S", "Mg"]
    assert series.lines["Fe"] == "Fe_Ka"
    assert series.shape == (8, 256, 256)
    assert series.pixel_size == pytest.approx(13.0814, rel=1e-3)  # 0.0130814 µm
    read = series.provenance["read"]
    assert read["tilts"][0] == "-40.bcf" and "file names" in read["angles_source"]
    assert [w["line"] for w in read["windows"]] == LINES
    assert haadf is not None and haadf.shape == (8, 256, 256)


def test_maps_equal_exspy_get_lines_intensity(idp, idp_series):
    """The -40 deg map equals exspy's own line intensities, loaded eagerly, same windows."""
    import hyperspy.api as hs

    series, _ = idp_series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = [x for x in hs.load(idp / "-40.bcf") if x.axes_manager.signal_dimension == 1][0]
        ref = s.get_lines_intensity(LINES, integration_windows=2.0)
    for img, line in zip(ref, LINES, strict=True):
        np.testing.assert_array_equal(series.maps[line.split("_")[0]][0], img.data)
    assert series.maps["Fe"][0].sum() == pytest.approx(27626)


def test_binning_preserves_counts(idp, idp_series):
    series, _ = idp_series
    binned = series.bin(4)
    assert binned.shape == (8, 64, 64)
    np.testing.assert_allclose(binned.maps["Fe"].sum(axis=(1, 2)), series.maps["Fe"].sum(axis=(1, 2)))


def test_corrupt_bcf_named(shared_data):
    bad = shared_data / "rsciio_edx" / "Nope.bcf"
    with pytest.raises(InputError, match="Nope.bcf"):
        open_spectrum_image(bad)
    with pytest.raises(InputError, match="Nope.bcf"):
        read_series([bad], lines=["Cu_Ka"], angles=[0])


def test_mixed_formats_error(shared_data, tmp_path):
    edx = shared_data / "rsciio_edx"
    (tmp_path / "-10.bcf").symlink_to(edx / "test_TEM.bcf")
    (tmp_path / "10.emd").symlink_to(edx / "Test SI 16x16 215 kx.emd")
    with pytest.raises(InputError, match=r"mixed file formats.*1 \.emd \(10\.emd\).*1 \.bcf"):
        read_series([tmp_path])


def test_duplicate_and_missing_angles(shared_data, tmp_path):
    src = shared_data / "rsciio_edx" / "test_TEM.bcf"
    dup = tmp_path / "dup"
    dup.mkdir()
    (dup / "a_+10.bcf").symlink_to(src)
    (dup / "b_10.0.bcf").symlink_to(src)
    (dup / "c_-10.bcf").symlink_to(src)
    with pytest.raises(InputError, match=r"a_\+10.bcf and b_10.0.bcf are both at 10 deg"):
        read_series([dup], lines=["Cu_Ka"])
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    (unnamed / "first.bcf").symlink_to(src)
    (unnamed / "second.bcf").symlink_to(src)
    with pytest.raises(InputError, match="cannot tell the tilt angles.*angles file"):
        read_series([unnamed], lines=["Cu_Ka"])
    (unnamed / "angles.txt").write_text("-5\n5\n")
    s = read_series([unnamed], lines=["Cu_Ka"])
    np.testing.assert_array_equal(s.angles, [-5, 5])
    assert "angles.txt" in s.provenance["read"]["angles_source"]
    with pytest.raises(InputError, match="gives 3 angles for 2 tilts"):
        read_series([unnamed], lines=["Cu_Ka"], angles=[1, 2, 3])


def test_single_spectrum_is_not_a_spectrum_image(shared_data, tmp_path):
    import hyperspy.api as hs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = [x for x in hs.load(shared_data / "rsciio_edx" / "test_TEM.bcf")
             if x.axes_manager.signal_dimension == 1][0]
        s.sum().save(tmp_path / "sum.hspy")
    with pytest.raises(InputError, match=r"sum.hspy: not an EDS spectrum image"):
        open_spectrum_image(tmp_path / "sum.hspy")


def test_hspy_series_with_metadata_angles_and_shape_check(shared_data, tmp_path):
    """Small .hspy spectrum images written by HyperSpy; stage tilt in their metadata."""
    import hyperspy.api as hs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = [x for x in hs.load(shared_data / "rsciio_edx" / "test_TEM.bcf")
             if x.axes_manager.signal_dimension == 1][0]
        for k, tilt in enumerate((20.0, -20.0, 0.0)):
            part = s.inav[:32, :32]
            part.metadata.set_item("Acquisition_instrument.TEM.Stage.tilt_alpha", tilt)
            part.save(tmp_path / f"scan_{k:03d}.hspy")
    series = read_series(sorted(tmp_path.glob("*.hspy")), lines=["Cu_Ka", "Ti_Ka"])
    np.testing.assert_array_equal(series.angles, [-20, 0, 20])
    assert "tilt_alpha" in series.provenance["read"]["angles_source"]
    assert series.shape == (3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.inav[:16, :32].save(tmp_path / "scan_003.hspy")
    with pytest.raises(InputError, match="scan_003.hspy: maps are 32x16 px"):
        read_series([tmp_path], lines=["Cu_Ka"], angles=[0, 10, 20, 30])


def test_velox_emd_reads(shared_data):
    emd = shared_data / "rsciio_edx" / "Test SI 16x16 215 kx.emd"
    info = describe_spectrum_image(emd)
    assert info["map_shape"] == (16, 16) and info["elements"] == ["C", "O", "Ca", "Cu"]
    assert set(info["proposed_lines"]) == {"C_Ka", "O_Ka", "Ca_Ka", "Cu_Ka"}
    assert info["has_haadf"]
    series = read_series([emd], lines=["Cu_Ka", "O_Ka"], angles=[0])
    assert series.shape == (1, 16, 16) and series.maps["O"].sum() > 0
    assert series.pixel_size == pytest.approx(3.5992, rel=1e-3)


def test_read_series_cli_path_end_to_end(idp, tmp_path):
    """What `edxtomo extract` runs: read, bin 4, align, write a map folder that reads back."""
    from edxtomo.io import read_map_folder, write_map_folder

    series = read_series([idp], lines=LINES, bin_factor=4, align=True)
    assert series.shape == (8, 64, 64)
    align = series.provenance["alignment"]
    assert align["misfit_after"] < align["misfit_before"]
    write_map_folder(series, tmp_path)
    back = read_map_folder(tmp_path)
    np.testing.assert_array_equal(back.angles, series.angles)
    assert back.elements == series.elements


def test_resolve_angles_order():
    names = ["TS_012_-40.0.hspy", "TS_013_-30.0.hspy"]
    a, src = resolve_angles(names, metadata=[0.0, 0.0])
    np.testing.assert_array_equal(a, [-40, -30])
    a, src = resolve_angles(names, metadata=[5.0, 7.0])
    np.testing.assert_array_equal(a, [5, 7])
    a, src = resolve_angles(names, metadata=[5.0, 7.0], angle_start=-60, angle_step=20)
    np.testing.assert_array_equal(a, [-60, -40])
    assert "start" in src
    assert angles_from_names(["input_0091.mat", "input_0092.mat"]) is None
