"""DIP-TV and DIPm-TV with real torch on tiny phantoms (small nets, tens of iterations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edxtomo.devices import DeviceError
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import reconstruct, run_to_end
from edxtomo.recon.dip import dipm_tv
from edxtomo.recon.nets import UNet3D, crop_centre, padded_shape
from edxtomo.recon.stopping import BestIterate, split_tilts, thin_counts

SMALL = {"widths": (8, 16), "skip_widths": (2, 4), "input_channels": 8, "device": "cpu",
         # The 9-tilt test series hold tilts out, as the held-out mechanism tests need.
         "heldout_min_tilts": 4}


@pytest.fixture(scope="module")
def tiny():
    phantom = make_phantom("core_shell", 16, seed=3)
    return phantom, acquire(phantom, tilt_angles(-40, 40, 10), dose=20.0, seed=3)


def test_unet_handles_sizes_not_divisible_by_its_depth():
    net = UNet3D(in_channels=4, out_channels=2, widths=(4, 8, 8), skip_widths=(1, 2, 0))
    shape = padded_shape((9, 13, 5), net.multiple)
    assert shape == (16, 16, 16)
    out = crop_centre(net(torch.rand(1, 4, *shape)), (9, 13, 5))
    assert out.shape == (1, 2, 9, 13, 5)
    assert out.min() >= 0


def test_output_head_reaches_exact_zero():
    net = UNet3D(in_channels=2, out_channels=1, widths=(4,), head="relu2")
    assert float(net.activate(torch.tensor([-1.0, 0.0, 2.0]))[0]) == 0.0
    with pytest.raises(ValueError, match="unknown output head"):
        UNet3D(head="exp")


def test_data_fidelity_decreases_and_protocol(tiny):
    _, series = tiny
    snaps = list(dipm_tv(series, iterations=40, snapshot_every=10, heldout=0, lr=1e-2,
                         ema=0.5, **SMALL))
    assert [s.iteration for s in snaps] == [10, 20, 30, 40]
    assert snaps[-1].final and not any(s.final for s in snaps[:-1])
    # Measured last/first over network seeds 0–3: 0.41–0.57.
    assert snaps[-1].losses["data"] < 0.95 * snaps[0].losses["data"]
    vols = snaps[-1].volumes
    assert list(vols) == series.elements
    assert all(v.shape == (16, 16, 16) and v.dtype == np.float32 and v.min() >= 0 for v in vols.values())
    assert not np.shares_memory(snaps[0].volumes["In"], snaps[-1].volumes["In"])
    assert snaps[-1].method == "dipm-tv" and snaps[-1].info["device"] == "cpu"


def test_few_tilts_are_all_fitted(tiny):
    """Below ``heldout_min_tilts`` no tilt is held out, and the run says why; at or above, they are."""
    phantom, series = tiny
    small = {**SMALL, "heldout_min_tilts": 12}
    few = run_to_end(dipm_tv(series, iterations=4, snapshot_every=2, eval_every=2, **small))
    assert few.info["heldout_angles"] == [] and "heldout" not in few.losses
    assert few.info["heldout_off"] == ("9 tilts, fewer than heldout_min_tilts (12): all fitted, to the "
                                       "iteration cap")
    many = acquire(phantom, tilt_angles(-60, 60, 10), dose=20.0, seed=3)
    held = run_to_end(dipm_tv(many, iterations=4, snapshot_every=2, eval_every=2, **small))
    assert held.info["heldout_angles"] == [-40.0, 0.0, 40.0] and "heldout" in held.losses
    assert "heldout_off" not in held.info
    off = run_to_end(dipm_tv(series, iterations=4, snapshot_every=2, heldout=0, **small))
    assert "heldout_off" not in off.info  # nothing was asked to be held out


def test_thinned_counts_are_two_independent_poisson_parts():
    """Binomial thinning: the parts sum to the counts, hold the asked share, and are uncorrelated."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(4.0, 200_000).astype(np.float32)
    fitted, held = thin_counts(counts, 0.2, seed=1)
    np.testing.assert_array_equal(fitted + held, counts)
    assert held.mean() == pytest.approx(0.8, rel=0.02) and held.var() == pytest.approx(0.8, rel=0.03)
    # Independent parts: a fixed share (held = round(0.2 k)) would correlate them at ~0.9.
    assert abs(np.corrcoef(fitted, held)[0, 1]) < 0.01
    again, _ = thin_counts(counts, 0.2, seed=1)
    np.testing.assert_array_equal(again, fitted)
    # Interpolated counts are rounded at random first: the parts keep the mean.
    f, h = thin_counts(np.full(100_000, 2.4), 0.5, seed=2)
    assert (f + h).mean() == pytest.approx(2.4, abs=0.01) and set(np.unique(f + h)) == {2.0, 3.0}
    with pytest.raises(ValueError, match="fraction"):
        thin_counts(counts, 1.0, seed=0)


def test_a_short_series_holds_counts_out_instead_of_tilts(tiny):
    """``heldout_counts``: every tilt stays in the fit, a share of its counts validates it."""
    phantom, series = tiny
    small = {**SMALL, "heldout_min_tilts": 12, "heldout_counts": 0.2, "iterations": 40, "snapshot_every": 20,
             "eval_every": 5, "lr": 1e-2, "coarse_iterations": 0}
    snaps = list(dipm_tv(series, **small))
    run = snaps[-1]
    assert run.info["heldout_counts"] == 0.2 and run.info["heldout_angles"] == []
    assert run.info["heldout_off"] == ("9 tilts, fewer than heldout_min_tilts (12): 20% of every tilt's counts "
                                       "held out instead")
    assert "heldout" in run.losses and set(run.info["best_iterations"]) == set(series.elements)
    # Each element is kept at its best held-out iterate: no snapshot predicts the held counts better.
    assert run.losses["heldout"] <= min(s.losses["heldout"] for s in snaps[:-1]) * (1 + 1e-3)
    # Least squares has no counts to split: all fitted, and the run says why.
    ls = run_to_end(dipm_tv(series, **{**small, "loss": "ls", "iterations": 4}))
    assert "heldout_counts" not in ls.info and "heldout" not in ls.losses
    assert ls.info["heldout_off"].endswith("(counts are held out only with the Poisson data term)")
    # Series long enough to hold tilts out do that, not counts.
    many = acquire(phantom, tilt_angles(-60, 60, 10), dose=20.0, seed=3)
    tilts = run_to_end(dipm_tv(many, **{**small, "iterations": 4}))
    assert tilts.info["heldout_angles"] and "heldout_counts" not in tilts.info


def test_held_out_counts_choose_an_iteration_and_refit_fits_all_counts_to_it(tiny):
    _, series = tiny
    small = {**REFIT, "heldout": 4, "heldout_min_tilts": 12, "heldout_counts": 0.2}
    held_out = run_to_end(dipm_tv(series, **small))
    refit = run_to_end(dipm_tv(series, **small, refit=True))
    chosen = held_out.info["best_iterations"]
    assert refit.info["refit"] == {"iterations": chosen, "after": 60}
    assert refit.info["heldout_counts"] == 0.2 and "counts held out" in refit.info["heldout_off"]
    for element, n in chosen.items():
        plain = run_to_end(dipm_tv(series, **{**REFIT, "heldout": 0, "iterations": n}))
        np.testing.assert_allclose(refit.volumes[element], plain.volumes[element], rtol=1e-5, atol=1e-6)


def test_seed_makes_cpu_runs_identical(tiny):
    _, series = tiny
    a = run_to_end(dipm_tv(series, iterations=8, snapshot_every=8, seed=5, **SMALL))
    b = run_to_end(dipm_tv(series, iterations=8, snapshot_every=8, seed=5, **SMALL))
    c = run_to_end(dipm_tv(series, iterations=8, snapshot_every=8, seed=6, **SMALL))
    for e in series.elements:
        np.testing.assert_array_equal(a.volumes[e], b.volumes[e])
    assert not np.array_equal(a.volumes["In"], c.volumes["In"])


def test_split_tilts_keeps_the_extremes():
    train, held = split_tilts(17, 4)
    assert list(held) == [4, 8, 12]
    assert 0 in train and 16 in train and len(train) + len(held) == 17
    assert split_tilts(9, 0)[1].size == 0
    with pytest.raises(ValueError, match="heldout"):
        split_tilts(9, 1)


def test_best_iterate_bookkeeping():
    best = BestIterate(patience=20)
    for it, err in [(10, 3.0), (20, 2.0), (30, 2.5), (40, 2.6)]:
        best.update(it, err, torch.full((1,), float(it)))
    assert best.best_iteration == 20 and float(best.best_volume[0]) == 20.0
    assert best.should_stop(40) and not best.should_stop(39)
    assert not BestIterate(patience=None).should_stop(10**6)


def test_best_iterate_keeps_each_channel_at_its_own_best():
    best = BestIterate(patience=25)
    # Channel 0 keeps improving, channel 1 is best at iteration 20.
    for it, errs in [(10, (5.0, 3.0)), (20, (4.0, 2.0)), (30, (3.0, 2.5)), (40, (2.0, 2.6))]:
        assert best.update(it, np.array(errs), torch.full((2, 3), float(it)))
    assert list(best.best_iterations) == [40, 20] and best.best_iteration == 40
    assert best.best_volume[0].eq(40).all() and best.best_volume[1].eq(20).all()
    assert best.best_error == pytest.approx(4.0)
    assert not best.should_stop(64) and best.should_stop(65)
    with pytest.raises(ValueError, match="channels"):
        BestIterate().update(1, np.ones(3), torch.zeros(2, 4))


def test_final_snapshot_carries_the_best_heldout_iterate(tiny):
    _, series = tiny
    # A large learning rate without TV overfits quickly, so the held-out error turns.
    snaps = list(dipm_tv(series, iterations=60, snapshot_every=5, heldout=3, eval_every=5,
                         patience=None, tv_weight=0.0, lr=1e-2, ema=0.0, **SMALL))
    final = snaps[-1]
    assert final.info["heldout_angles"] and "heldout" in final.losses
    assert all("heldout" in s.losses for s in snaps)
    errors = {s.iteration: s.losses["heldout"] for s in snaps[:-1]}
    per_element = final.info["best_iterations"]
    assert set(per_element) == set(series.elements)
    assert final.info["best_iteration"] == max(per_element.values())
    # Every evaluation coincides with a snapshot here, so each element's best is visible,
    # and picking per element can only beat the best single iterate.
    assert final.losses["heldout"] <= min(errors.values()) * (1 + 1e-3)
    assert final.losses["heldout"] < max(errors.values())
    for element, best_it in per_element.items():
        if best_it in errors:
            best_snap = next(s for s in snaps if s.iteration == best_it)
            np.testing.assert_allclose(final.volumes[element], best_snap.volumes[element],
                                       rtol=1e-5, atol=1e-6)


def test_patience_stops_early_with_a_reason(tiny):
    _, series = tiny
    snaps = list(dipm_tv(series, iterations=400, snapshot_every=10, heldout=3, eval_every=2,
                         patience=6, tv_weight=0.0, lr=1e-2, ema=0.0, **SMALL))
    final = snaps[-1]
    assert final.final and final.iteration < 400
    assert "early stopping" in final.stopped
    assert final.iteration - final.info["best_iteration"] >= 6


def test_closing_generator_mid_run_keeps_the_last_snapshot(tiny):
    _, series = tiny
    gen = reconstruct(series, "dip-tv", iterations=1000, snapshot_every=3, **SMALL)
    first, second = next(gen), next(gen)
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert (first.iteration, second.iteration) == (3, 6) and not second.final
    assert all(np.isfinite(v).all() and v.any() for v in second.volumes.values())


def test_reconstruct_dispatches_both_methods(tiny):
    _, series = tiny
    for method in ("dipm-tv", "dip-tv"):
        snap = run_to_end(reconstruct(series, method=method, iterations=4, snapshot_every=2, **SMALL))
        assert snap.method == method and snap.final and snap.iteration == 4


def test_warm_start_and_poisson_loss_run(tiny):
    _, series = tiny
    snap = run_to_end(dipm_tv(series, iterations=6, snapshot_every=6, warm_start="sirt",
                              warm_iterations=3, loss="poisson", joint_tv=True, **SMALL))
    assert snap.info["warm_start"] == "sirt" and np.isfinite(snap.losses["total"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tv_weight": -0.1}, "tv_weight must be >= 0"),
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"lr": 0}, "lr"),
        ({"device": "tpu"}, "unknown device"),
        ({"loss": "l1"}, "unknown loss"),
        ({"warm_start": "fbp"}, "unknown warm_start"),
        ({"ema": 1.0}, "ema"),
        ({"heldout": 1}, "heldout"),
        ({"clip_grad": -1.0}, "clip_grad must be >= 0"),
        ({"input_jitter": -0.01}, "input_jitter must be >= 0"),
    ],
)
def test_bad_parameters_raise_clear_errors(tiny, params, message):
    _, series = tiny
    with pytest.raises(ValueError, match=message):
        next(reconstruct(series, "dip-tv", **{**SMALL, **params}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_gpu_raises_and_auto_falls_back(tiny):
    _, series = tiny
    with pytest.raises(DeviceError, match="CUDA"):
        next(dipm_tv(series, **{**SMALL, "device": "cuda"}))
    snap = next(dipm_tv(series, iterations=2, snapshot_every=2, **{**SMALL, "device": "auto"}))
    assert snap.info["device"] == "cpu"


def test_auto_loss_is_poisson_for_counts_and_least_squares_otherwise(tiny):
    from edxtomo.tiltseries import TiltSeries

    _, series = tiny
    scaled = TiltSeries({e: m * 0.37 for e, m in series.maps.items()}, series.angles)
    counts = next(dipm_tv(series, iterations=1, **SMALL))
    other = next(dipm_tv(scaled, iterations=1, **SMALL))
    assert counts.info["loss"] == "poisson" and other.info["loss"] == "ls"


def test_consumer_keeps_grad_mode_between_snapshots(tiny):
    _, series = tiny
    gen = dipm_tv(series, iterations=4, snapshot_every=2, **SMALL)
    next(gen)
    assert torch.is_grad_enabled()
    gen.close()


def test_dipm_tv_beats_sirt_on_a_tiny_phantom(tiny):
    from edxtomo.metrics import compare

    phantom, series = tiny
    sirt = run_to_end(reconstruct(series, "sirt", iterations=100, snapshot_every=100))
    # A 16³ volume converges several times faster with gradient clipping (the
    # default is off, measured at 64³; docs/algorithms.md, `clip_grad`).
    dip = run_to_end(dipm_tv(series, iterations=300, snapshot_every=300, widths=(16, 32, 64),
                             skip_widths=(4, 8, 16), input_channels=16, lr=4e-3, clip_grad=1.0,
                             device="cpu"))
    p_sirt = compare(sirt.volumes, phantom.volumes)["mean"]["psnr"]
    p_dip = compare(dip.volumes, phantom.volumes)["mean"]["psnr"]
    # Measured margin p_dip − p_sirt (SIRT 25.52 dB) over network seeds 0–4 at 300
    # iterations, all 9 tilts fitted (heldout_min_tilts 12): 3.10–5.14 dB on 1 torch
    # thread, seeds 0 and 4 the same on 2 (3.10, 4.42). With one tilt held out it was
    # 3.70–5.23 dB (seed 4 5.26 on 2 threads). At 200 iterations, held out, 1.42–3.51 dB,
    # and 0.98 dB (seed 0) with the earlier TV normalisation, below the former bar of 1.0.
    # The bar sits 1.6 dB below the lowest seed.
    assert p_dip > p_sirt + 1.5


@pytest.mark.parametrize("fine_width", [None, 2])
def test_coarse_to_fine_switch_keeps_the_output_and_refines_after(fine_width):
    from edxtomo.recon.nets import CoarseToFine, set_fine

    def build(**kw):
        torch.manual_seed(0)
        return CoarseToFine(in_channels=4, out_channels=2, widths=(4, 8), skip_widths=(1, 2),
                            fine_channels=3, fine_skip=1, **kw)

    net = build(fine_width=fine_width)
    z = (torch.rand(1, 4, 8, 8, 8), torch.rand(1, 3, 16, 16, 16))
    coarse = net(z)
    # The half-resolution U-Net does not depend on the refinement level's width.
    torch.testing.assert_close(coarse, build()(z))
    set_fine(net)
    # The refinement level starts at zero: what was learnt at half resolution carries over.
    torch.testing.assert_close(net(z), coarse)
    assert coarse.shape == (1, 2, 16, 16, 16) and coarse.min() >= 0
    net(z).sum().backward()
    assert net.refine[-1].weight.grad.abs().sum() > 0
    # The full-resolution 3x3x3 convolution: fine_width (else widths[0]) out, + the noise skip in.
    assert net.refine[1].weight.shape[:2] == ((fine_width or 4), (fine_width or 4) + 1)


@pytest.mark.parametrize("per_element", [False, True])
def test_coarse_to_fine_run_and_resume_across_the_switch(tiny, per_element):
    from edxtomo.recon import RunControl

    _, series = tiny
    kw = {"iterations": 12, "snapshot_every": 3, "coarse_iterations": 5, "per_element": per_element,
          **SMALL}
    full = list(dipm_tv(series, **kw))
    assert [s.iteration for s in full] == [3, 6, 9, 12]
    assert all(v.shape == (16, 16, 16) and v.min() >= 0 for v in full[-1].volumes.values())
    control = RunControl()
    for snap in reconstruct(series, "dip-tv" if per_element else "dipm-tv", control=control,
                            **{k: v for k, v in kw.items() if k != "per_element"}):
        if snap.iteration == 3:
            control.request_stop()
    resumed = run_to_end(dipm_tv(series, resume=snap.state(), **kw))
    for e in series.elements:
        np.testing.assert_allclose(resumed.volumes[e], full[-1].volumes[e], rtol=1e-4, atol=1e-6)


def test_output_average_ramps_up_to_its_decay():
    from edxtomo.recon.dip import _ema_decay, _ema_kept

    assert _ema_decay(0.99, 1) < 0.2 and _ema_decay(0.99, 10**6) == 0.99
    assert _ema_decay(0.0, 5) == 0.0
    assert _ema_kept(0.99, 3) == pytest.approx(_ema_decay(0.99, 1) * _ema_decay(0.99, 2) * _ema_decay(0.99, 3))


def test_coarse_stage_only_where_a_half_size_input_is_smaller(tiny):
    from edxtomo.recon.dip import coarse_pays

    # Four levels pad any input to at least 32 voxels a side: 32³ gains nothing from a half size.
    assert coarse_pays((64, 64, 64), 4) and not coarse_pays((32, 32, 32), 4)
    _, series = tiny
    small = next(dipm_tv(series, iterations=2, snapshot_every=2, **SMALL))  # 16³, two levels
    full = next(dipm_tv(series, iterations=2, snapshot_every=2, device="cpu", widths=(8, 8, 8, 8),
                        skip_widths=(2, 2, 2, 2), input_channels=4))
    assert small.info["coarse_to_fine"] and not full.info["coarse_to_fine"]


def test_auto_loss_stays_poisson_for_aligned_counts(tmp_path, tiny):
    from edxtomo.align import apply_shifts
    from edxtomo.io import read_map_folder, write_map_folder

    _, series = tiny
    shifts = np.zeros((series.n_angles, 2))
    shifts[:, 1] = np.linspace(-0.6, 0.6, series.n_angles)  # sub-pixel: the maps become non-integer
    aligned = apply_shifts(series, shifts)
    assert not all(np.array_equal(m, np.round(m)) for m in aligned.maps.values())
    assert aligned.counts
    assert next(dipm_tv(aligned, iterations=1, **SMALL)).info["loss"] == "poisson"
    # Through a map folder too (extract --align, then reconstruct).
    write_map_folder(aligned, tmp_path / "maps")
    assert read_map_folder(tmp_path / "maps").counts


REFIT = {"iterations": 60, "snapshot_every": 10, "heldout": 3, "eval_every": 5, "patience": None,
         "tv_weight": 0.0, "lr": 1e-2, "ema": 0.5, "coarse_iterations": 0, **SMALL}


def test_refit_gives_each_element_an_all_tilt_fit_to_its_chosen_iteration(tiny):
    _, series = tiny
    held_out = run_to_end(dipm_tv(series, **REFIT))
    snaps = list(dipm_tv(series, refit=True, **REFIT))
    final = snaps[-1]
    chosen = held_out.info["best_iterations"]
    assert final.info["refit"] == {"iterations": chosen, "after": 60}
    assert final.info["best_iterations"] == chosen and final.info["heldout_angles"]
    # The refit's snapshots continue the count after the held-out run's 60 iterations.
    steps = [s.iteration for s in snaps]
    assert steps == sorted(steps) and final.iteration == 60 + max(chosen.values())
    assert final.total == final.iteration
    # Each element is exactly what a run on all tilts, stopped at its chosen iteration, gives.
    for element, n in chosen.items():
        plain = run_to_end(dipm_tv(series, **{**REFIT, "heldout": 0, "iterations": n}))
        np.testing.assert_allclose(final.volumes[element], plain.volumes[element], rtol=1e-5, atol=1e-6)
    assert not np.allclose(final.volumes["In"], held_out.volumes["In"])


def test_refit_cut_short_keeps_the_held_out_result_and_resumes_the_refit(tiny):
    from edxtomo.recon.control import RunControl
    from edxtomo.recon.status import StopReason

    _, series = tiny
    held_out = run_to_end(dipm_tv(series, **REFIT))
    full = run_to_end(dipm_tv(series, refit=True, **REFIT))
    control = RunControl()
    for snap in dipm_tv(series, refit=True, control=control, **REFIT):
        if snap.iteration == 70:  # the refit's first snapshot
            control.request_stop()
    assert snap.final and snap.stopped == StopReason.USER
    assert snap.info["refit"].startswith("stopped at 11 of")
    for element, vol in held_out.volumes.items():
        np.testing.assert_allclose(snap.volumes[element], vol, rtol=1e-6)
    resumed = run_to_end(dipm_tv(series, refit=True, resume=snap.state(), **REFIT))
    assert resumed.info["refit"]["iterations"] == full.info["refit"]["iterations"]
    for element, vol in full.volumes.items():
        np.testing.assert_allclose(resumed.volumes[element], vol, rtol=1e-5, atol=1e-6)


def test_no_refit_after_a_held_out_run_the_time_limit_ended(tiny):
    from edxtomo.recon.control import RunControl

    _, series = tiny
    control = RunControl(time_limit=1e-3)  # spent by the first iteration
    final = run_to_end(dipm_tv(series, refit=True, control=control, **{**REFIT, "iterations": 20}))
    assert final.stopped.startswith("time limit") and final.info["refit"].startswith("not run")
    assert final.iteration < 20
