"""MATLAB element-map series (real quantum-dot data) and single-file map stacks."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from edxtomo.io import InputError, read_series
from edxtomo.io.mat import read_mat_series
from edxtomo.io.stacks import infer_axes, read_stack


@pytest.mark.realdata
def test_mat_series_axis_order_and_angles(qd):
    from scipy.io import loadmat

    s = read_series([qd], lines=["Se", "S", "Zn"], angle_start=-60, angle_step=10)
    assert s.shape == (13, 256, 256) and s.elements == ["Se", "S", "Zn"]
    np.testing.assert_array_equal(s.angles, np.arange(-60, 61, 10))
    raw = loadmat(qd / "input_0091.mat")["input"]
    np.testing.assert_array_equal(s.maps["S"][0], raw[:, :, 1])  # YXC: channel last
    read = s.provenance["read"]
    assert read["axes"] == "YXC" and read["axes_source"] == "inferred from the shape"
    assert read["variable"] == "input" and "start -60" in read["angles_source"]


@pytest.mark.realdata
def test_mat_needs_angles_and_checks_names(qd):
    with pytest.raises(InputError, match="cannot tell the tilt angles"):
        read_mat_series(qd)
    with pytest.raises(InputError, match="2 element names"):
        read_mat_series(qd, elements=["Se", "S"], angle_start=-60, angle_step=10)
    s = read_mat_series(sorted(qd.glob("*.mat"))[:3], axes="XYC", angles=[-10, 0, 10])
    assert s.provenance["read"]["axes_source"] == "given by the user"
    assert s.elements == ["ch0", "ch1", "ch2"]


def test_multichannel_tiff_stack(tmp_path):
    data = np.random.default_rng(0).poisson(2, (5, 2, 8, 9)).astype(np.float32)
    tifffile.imwrite(tmp_path / "maps.tif", data, imagej=True, metadata={"axes": "TCYX"})
    s = read_series([tmp_path / "maps.tif"], lines=["Ge_La", "Te_La"], angle_start=-40, angle_step=20)
    np.testing.assert_array_equal(s.maps["Te"], data[:, 1])
    assert s.lines == {"Ge": "Ge_La", "Te": "Te_La"}
    assert s.provenance["read"]["axes"] == "ACYX"
    assert s.provenance["read"]["axes_source"] == "read from the file"


def test_single_element_tiff_named_by_file_with_angle_labels(tmp_path):
    data = np.ones((3, 4, 5), np.float32)
    tifffile.imwrite(tmp_path / "Ge_Ka.tif", data, imagej=True,
                     metadata={"axes": "ZYX", "Labels": ["-20 deg", "0 deg", "20 deg"]})
    s = read_stack(tmp_path / "Ge_Ka.tif")
    assert s.elements == ["Ge"] and s.lines == {"Ge": "Ge_Ka"}
    np.testing.assert_array_equal(s.angles, [-20, 0, 20])


def test_hspy_map_stack(tmp_path):
    import hyperspy.api as hs

    data = np.random.default_rng(1).poisson(3, (2, 4, 6, 7)).astype(np.float32)
    sig = hs.signals.Signal2D(data)
    sig.axes_manager[0].units = "deg"  # the tilt axis (hyperspy lists navigation fastest first)
    sig.axes_manager[0].offset, sig.axes_manager[0].scale = -30, 20
    sig.axes_manager[2].units = "nm"
    sig.axes_manager[2].scale = 0.5
    sig.metadata.set_item("Sample.elements", ["In", "Se"])
    sig.save(tmp_path / "stack.hspy")
    s = read_series([tmp_path / "stack.hspy"])
    assert s.elements == ["In", "Se"] and s.pixel_size == pytest.approx(0.5)
    np.testing.assert_array_equal(s.angles, [-30, -10, 10, 30])
    np.testing.assert_array_equal(s.maps["Se"], data[1])


def test_infer_axes():
    assert infer_axes((256, 256, 3), has_angle_axis=False) == "YXC"
    assert infer_axes((13, 3, 64, 64)) == "ACYX"
    assert infer_axes((3, 13, 64, 64)) == "CAYX"
    with pytest.raises(InputError, match="give them"):
        infer_axes((40, 40, 40, 40))
