"""The method registry and typed parameters: one declaration read by the API, the CLI and --config."""

from __future__ import annotations

import json
import math

import pytest

from edxtomo.cli import build_parser, main
from edxtomo.io import write_map_folder
from edxtomo.method_options import config_params
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import (
    REGISTRY,
    RunControl,
    available_methods,
    get_method,
    method_label,
    parse_duration,
    reconstruct,
    run_to_end,
)
from edxtomo.recon.dip import DipSettings
from edxtomo.recon.params import ParameterError, UnknownParameterError
from edxtomo.recon.status import RunStatus, StopReason
from edxtomo.runner import RunRecord, clean_params, run


@pytest.fixture(scope="module")
def tiny():
    phantom = make_phantom("core_shell", 16, seed=3)
    return acquire(phantom, tilt_angles(-40, 40, 10), dose=5.0, seed=3)


def test_every_builtin_method_is_one_spec_with_declared_parameters():
    assert {"sirt", "tv", "tv-joint", "dip-tv", "dipm-tv"} <= set(available_methods())
    for name in available_methods():
        spec = get_method(name)
        assert spec.label and spec.summary
        for p in spec.params.values():
            assert p.help, f"{name}.{p.name} has no help text"
            assert p.check(p.default) == p.default or p.default is None
    # Variants are specs over one generator, with their fixed argument hidden.
    assert REGISTRY["tv-joint"].function is REGISTRY["tv"].function
    assert "joint" not in REGISTRY["tv-joint"].params and "joint" in REGISTRY["tv"].params
    assert REGISTRY["dip-tv"].function is REGISTRY["dipm-tv"].function
    assert "per_element" not in REGISTRY["dipm-tv"].params
    assert method_label("dipm-tv") == "DIPm-TV" and method_label("unknown-x") == "unknown-x"


def test_choices_and_ranges_are_declared_once_and_enforced():
    loss = get_method("dipm-tv").params["loss"]
    assert loss.choices == ("auto", "ls", "poisson")
    with pytest.raises(ParameterError, match="unknown loss 'l1': choose one of auto, ls, poisson"):
        loss.check("l1")
    ema = get_method("dipm-tv").params["ema"]
    assert ema.check("0.5") == 0.5
    with pytest.raises(ParameterError, match="ema must be < 1"):
        ema.check(1.0)
    iterations = get_method("tv").params["iterations"]
    assert iterations.check("12") == 12
    for bad in ("five", 2.5, True, None):
        with pytest.raises(ParameterError, match="iterations"):
            iterations.check(bad)
    for bad in (math.inf, math.nan):
        with pytest.raises(ParameterError, match="finite"):
            get_method("tv").params["tv_weight"].check(bad)
    assert get_method("dipm-tv").params["widths"].check("8 16") == (8, 16)
    assert get_method("dipm-tv").params["nz"].check(None) is None


def test_api_validates_before_running_and_names_the_parameter(tiny):
    with pytest.raises(UnknownParameterError, match="does not take lr"):
        reconstruct(tiny, "sirt", lr=0.1)
    with pytest.raises(TypeError):  # an unknown keyword stays a TypeError too
        reconstruct(tiny, "sirt", lr=0.1)
    with pytest.raises(ParameterError, match="tv_weight must be a finite number"):
        reconstruct(tiny, "tv", tv_weight=float("inf"))
    with pytest.raises(ParameterError, match="unknown method 'fbp'"):
        reconstruct(tiny, "fbp")
    # A direct call of the generator is checked by the same declaration.
    from edxtomo.recon.tv import tv

    with pytest.raises(ParameterError, match="tv_weight must be >= 0"):
        next(tv(tiny, tv_weight=-1.0))


def test_dip_settings_are_validated_on_construction():
    s = DipSettings(lr="0.01", widths=[8, 16])
    assert s.lr == 0.01 and s.widths == (8, 16)
    with pytest.raises(ParameterError, match="head"):
        DipSettings(head="tanh")
    with pytest.raises(ValueError, match="heldout=1"):
        DipSettings(heldout=1)
    with pytest.raises(AttributeError):
        s.lr = 1.0  # frozen


def test_clean_params_fills_defaults_and_names_the_source():
    params = clean_params("tv", {"iterations": "7", "tv_weight": None})
    assert params["iterations"] == 7 and params["tv_weight"] == get_method("tv").params["tv_weight"].default
    with pytest.raises(ParameterError, match="run.json: iterations must be a whole number"):
        clean_params("tv", {"iterations": "five"}, where="run.json")


def test_cli_options_come_from_the_declarations(capsys):
    parser = build_parser()
    args = parser.parse_args(["reconstruct", "x", "--out", "y", "--method", "dipm-tv", "--loss", "poisson",
                              "--widths", "8", "16", "--no-joint-tv", "--time-limit", "10m"])
    assert args.loss == "poisson" and args.widths == [8, 16] and args.joint_tv is False
    assert args.time_limit == "10m"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["reconstruct", "x", "--out", "y", "--loss", "foo"])
    assert exc.value.code == 2
    assert "unknown loss 'foo': choose one of auto, ls, poisson" in capsys.readouterr().err


def test_config_values_are_type_checked_naming_the_key(tmp_path, tiny, capsys):
    maps = tmp_path / "maps"
    write_map_folder(tiny, maps)
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"method": "tv", "params": {"iterations": "five"}, "input": [str(maps)]}))
    assert main(["reconstruct", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "run.json: params: iterations must be a whole number" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ParameterError, match="does not take lr"):
        config_params({"params": {"lr": 0.1}}, "tv", "run.json")
    cfg.write_text(json.dumps({"method": "tv", "params": {}, "format": "other/9", "input": [str(maps)]}))
    assert main(["reconstruct", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "unknown sidecar format 'other/9'" in capsys.readouterr().err
    cfg.write_text(json.dumps({"method": "tv", "params": {"iterations": 3, "snapshot_every": 3},
                               "input": [str(maps)], "colour": "red"}))
    assert main(["reconstruct", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 0
    assert "ignoring unknown key 'colour'" in capsys.readouterr().err


def test_time_limit_ends_every_method_as_if_converged(tiny):
    assert parse_duration("10m") == 600 and parse_duration("1.5h") == 5400 and parse_duration(90) == 90
    assert parse_duration(None) is None and parse_duration("") is None
    with pytest.raises(ParameterError, match="time_limit"):
        parse_duration("soon")
    for method in ("sirt", "tv"):
        last = run_to_end(reconstruct(tiny, method, iterations=10**6, snapshot_every=10**6,
                                      time_limit=0.3))
        assert last.final and last.stopped == StopReason.TIME_LIMIT and last.iteration < 10**6
    last = run_to_end(reconstruct(tiny, "dipm-tv", iterations=10**6, snapshot_every=10**6, time_limit=2,
                                  widths=(8, 16), skip_widths=(2, 4), input_channels=8, heldout=3,
                                  heldout_min_tilts=4, eval_every=1, device="cpu"))
    assert last.stopped == StopReason.TIME_LIMIT
    # As if converged: each element's held-out best, not simply the last iterate.
    assert set(last.info["best_iterations"]) == set(tiny.elements)
    assert max(last.info["best_iterations"].values()) <= last.iteration


def test_run_status_is_an_enum_in_the_sidecar(tmp_path, tiny):
    record = RunRecord("tv", clean_params("tv", {"iterations": 4, "snapshot_every": 2}), tiny)
    run(record, tmp_path / "rec")
    side = json.loads((tmp_path / "rec" / "reconstruction.json").read_text())
    assert record.status is RunStatus.FINISHED and side["status"] == "finished"
    control = RunControl()
    control.request_stop()
    record = RunRecord("tv", clean_params("tv", {"iterations": 50}), tiny)
    run(record, tmp_path / "rec2", control=control)
    assert record.status is RunStatus.STOPPED
    assert json.loads((tmp_path / "rec2" / "reconstruction.json").read_text())["status"] == "stopped by user"


def test_a_run_that_cannot_fit_is_refused_before_allocating():
    import numpy as np

    from edxtomo.errors import ResourceError
    from edxtomo.recon.memory import estimate
    from edxtomo.tiltseries import TiltSeries

    maps = {el: np.ones((17, 1024, 1024), np.float32) for el in ("Fe", "O")}
    big = TiltSeries(maps, np.arange(-40, 41, 5.0))
    with pytest.raises(ResourceError, match=r"needs ~\d+.* GiB .* available on cpu: bin the maps"):
        reconstruct(big, "dipm-tv")
    # The estimate grows with the volume and is dominated by the network for DIP.
    small = estimate("dipm-tv", (17, 64, 64), 3, get_method("dipm-tv").defaults())
    large = estimate("dipm-tv", (17, 128, 128), 3, get_method("dipm-tv").defaults())
    assert large.total > 4 * small.total
    assert max(large.parts, key=large.parts.get) == "network activations"


def test_config_replays_exactly_the_tilts_the_run_used(tmp_path, tiny, capsys):
    maps = tmp_path / "maps"
    write_map_folder(tiny, maps)
    used = [a for a in tiny.angles if abs(a - 10.0) > 1e-6]  # 10 deg dropped, e.g. in napari
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"method": "sirt", "params": {"iterations": 3, "snapshot_every": 3},
                               "input": [str(maps)], "angles": [float(a) for a in used]}))
    assert main(["reconstruct", "--config", str(cfg), "--out", str(tmp_path / "rec")]) == 0
    side = json.loads((tmp_path / "rec" / "reconstruction.json").read_text())
    assert side["angles"] == pytest.approx(used)
    # Angles the series does not hold: refused, naming them.
    cfg.write_text(json.dumps({"method": "sirt", "params": {}, "input": [str(maps)], "angles": [0.0, 12.5]}))
    assert main(["reconstruct", "--config", str(cfg), "--out", str(tmp_path / "rec2")]) == 2
    assert "used tilts at 12.5 deg" in capsys.readouterr().err


def test_sidecar_from_before_a_parameter_existed_replays_as_it_ran():
    complete = {k: v for k, v in clean_params("dipm-tv", {}).items() if k != "fine_width"}
    # Every parameter but the later one: written by an earlier version, which ran 16 channels.
    assert config_params({"params": complete}, "dipm-tv", "old.json")["fine_width"] == 16
    # Older still: neither key; those runs held tilts out from 4 tilts on.
    older = {k: v for k, v in complete.items() if k != "heldout_min_tilts"}
    replayed = config_params({"params": older}, "dipm-tv", "older.json")
    assert replayed["fine_width"] == 16 and replayed["heldout_min_tilts"] == 4
    # A hand-written partial record leaves the rest to today's defaults.
    partial = config_params({"params": {"iterations": 5}}, "dipm-tv", "mine.json")
    assert "fine_width" not in partial
    assert clean_params("dipm-tv", partial)["fine_width"] == DipSettings().fine_width
