"""X-ray line choice and windows, on exspy, with a real Bruker spectrum image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edxtomo.lines import (
    LineError,
    available_lines,
    extract_line_maps,
    line_energy,
    line_windows,
    propose_lines,
    resolve_lines,
)

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def tem(shared_data):
    from edxtomo.io.spectrum_files import open_spectrum_image

    return open_spectrum_image(shared_data / "rsciio_edx" / "test_TEM.bcf")


def test_proposal_one_line_per_element(tem):
    assert propose_lines(tem.eds) == ["Cu_Ka", "O_Ka", "Pd_La", "Ti_Ka"]
    lines = available_lines(tem.eds)
    assert ("Cu_La", pytest.approx(0.9295)) in lines["Cu"]
    assert tem.haadf is not None and tem.haadf.shape == (64, 64)


def test_add_drop_and_elements(tem):
    assert resolve_lines(tem.eds, ["Cu", "O_Ka"]) == ["Cu_Ka", "O_Ka"]
    assert resolve_lines(tem.eds, add=["Fe_Ka"], drop=["Pd"]) == ["Cu_Ka", "O_Ka", "Ti_Ka", "Fe_Ka"]
    with pytest.raises(LineError, match="two lines for Cu"):
        resolve_lines(tem.eds, ["Cu_Ka", "Cu_La"])
    with pytest.raises(LineError, match="not an X-ray line of Cu"):
        resolve_lines(tem.eds, ["Cu_Kz"])
    with pytest.raises(LineError, match="not a chemical element"):
        line_energy("Xx_Ka")


def test_windows_are_exspy_estimates(tem):
    w = line_windows(tem.eds, ["Cu_Ka"], integration_windows=2.0, background=True)[0]
    np.testing.assert_allclose(w.integration, tem.eds.estimate_integration_windows(2.0, ["Cu_Ka"])[0])
    np.testing.assert_allclose(w.background, tem.eds.estimate_background_windows(xray_lines=["Cu_Ka"])[0])
    assert w.integration[0] < 8.0478 < w.integration[1]


def test_background_subtraction_clips_at_zero(tem):
    windows = line_windows(tem.eds, ["Cu_Ka", "O_Ka"], background=True)
    maps, total, clipped = extract_line_maps(tem.eds, windows, with_total=True)
    assert all(m.min() >= 0 for m in maps.values()) and clipped > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = tem.eds.get_lines_intensity(["O_Ka"], integration_windows=[list(windows[1].integration)],
                                          background_windows=[list(windows[1].background)])[0]
    np.testing.assert_allclose(maps["O"], np.clip(ref.data.compute(), 0, None), rtol=1e-6)
    assert total == pytest.approx(float(tem.eds.data.sum().compute()))
