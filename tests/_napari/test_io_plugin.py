"""Manifest, sample data, reader and writer through a real viewer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edxtomo._napari._reader import get_reader
from edxtomo._napari.layers import layer_meta
from edxtomo.io import read_volume, write_map_folder
from edxtomo.phantom import acquire, make_phantom, tilt_angles

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def map_folder(tmp_path_factory) -> Path:
    series = acquire(make_phantom("core_shell", 16, seed=2), tilt_angles(-40, 40, 10), dose=5.0)
    folder = tmp_path_factory.mktemp("maps")
    write_map_folder(series, folder)
    return folder


def test_manifest_validates():
    npe2 = Path(sys.executable).with_name("npe2")
    if not npe2.exists() and shutil.which("npe2") is None:
        pytest.skip("npe2 command not installed")
    out = subprocess.run([str(npe2 if npe2.exists() else "npe2"), "validate", "edxtomo"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_open_samples(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("edxtomo", "phantom")
    names = [layer.name for layer in viewer.layers]
    assert names == ["In [tilts]", "Se [tilts]", "S [tilts]"]
    meta = layer_meta(viewer.layers[0])
    assert meta["angles"] == [float(a) for a in range(-40, 41, 5)]
    assert viewer.layers[0].data.shape[0] == 17
    viewer.open_sample("edxtomo", "truth")
    assert "In [truth]" in viewer.layers and viewer.layers["In [truth]"].ndim == 3


def test_reader_opens_map_folder(make_napari_viewer, map_folder):
    assert get_reader(str(map_folder)) is not None
    assert get_reader(str(map_folder / "angles.txt")) is None
    viewer = make_napari_viewer()
    viewer.open(str(map_folder), plugin="edxtomo")
    layer = viewer.layers["In [tilts]"]
    meta = layer_meta(layer)
    assert layer.data.shape == (9, 16, 16)
    assert meta["angles"] == [float(a) for a in range(-40, 41, 10)]
    assert meta["element"] == "In"
    assert tuple(layer.scale[1:]) == (meta["pixel_size_nm"],) * 2
    assert meta["inputs"] == [str(map_folder)]


def test_writer_round_trip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    vol = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    viewer.add_image(vol, name="Ge [TV]", scale=(2.5, 2.5, 2.5))
    out = tmp_path / "ge.tif"
    viewer.layers.save(str(out), plugin="edxtomo")
    back, voxel = read_volume(out)
    np.testing.assert_array_equal(back, vol)
    assert voxel == pytest.approx(2.5)
    viewer.open(str(out), plugin="napari")  # a plain TIFF for any reader
    assert viewer.layers[-1].data.shape == vol.shape
