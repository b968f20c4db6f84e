"""Leave-one-tilt-out benchmark on the real IDP series (../shared/data/openncem_idp_tilt10).

For each alignment setting and each left-out tilt: reconstruct from the other
tilts (SIRT, TV, DIPm-TV), project the volumes at the left-out angle and
compare with the measured map *in the raw frame* (the prediction is moved
back through the setting's rotation and shift, so every setting is scored
against the same integer counts, never against interpolated maps):

- Poisson deviance per pixel of the prediction after the best shift and scale;
- unexplained fraction after the best shift and scale with the Poisson noise
  floor removed, ``(Σ(a·p − y)² − Σy) / (Σy² − Σy)``.

Usage (bounded: nz 32, TV 150 iterations, DIPm-TV widths 8 16 32 and 6 minutes per run)::

    .venv/bin/python benchmarks/bench_real.py [--bin 4] [--left-out 0 30] [--methods sirt tv dipm-tv] \\
        [--settings translation refine ...] [--out results.json]

DIPm-TV/TV variants for finding out why a method loses: ``--param dipm-tv:loss=poisson``
(any registry parameter, repeated; value parsed as JSON, else a string),
``--background`` (subtract the reader's background windows), ``--nz``;
``--dip-heldout-deg 20`` (hold out the training tilt nearest 20° instead of
``split_tilts``' every-k-th pattern, to see whether *which* tilt is held out
matters); ``--trace 50`` scores DIPm-TV's current volume at the left-out tilt every 50
iterations (where a stop would have been best); ``--tag`` labels the rows of such a run. ``--dip-time 0`` runs
DIPm-TV to its iteration count (or early stop) whatever the machine's load. ``--save-volumes DIR``
keeps each run's volumes; ``--rescore DIR/*.npz`` scores them again and splits each residual
into bands of spatial frequency (which detail a method predicts worse).

Alignment settings: ``translation`` (neighbour correlation + centre of mass),
``refine`` (+ projection matching, axis kept at 0°), ``refine+counts`` and
``refine+gains`` (+ per-tilt intensity), ``axis`` (in-plane axis estimate,
no refinement), ``axis+refine`` and ``axis+refine+counts``; ``refine+counts+haadf``
is refine+counts found on the files' HAADF images instead of the summed maps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from scipy import ndimage

from edxtomo.align import align_series, phase_correlation
from edxtomo.alignment import (
    AlignmentSettings,
    align_tilt_series,
    apply_alignment,
    unexplained_fraction,
)
from edxtomo.alignment.transforms import uncorrect_image
from edxtomo.io import read_series
from edxtomo.projector import ParallelProjector
from edxtomo.recon import reconstruct
from edxtomo.tiltseries import TiltSeries

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openncem_idp_tilt10"
LINES = ["Fe_Ka", "Si_Ka", "Mg_Ka"]
SETTINGS = {
    "translation": None,
    "refine": AlignmentSettings(tilt_axis=0.0, refine=5),
    "refine+counts": AlignmentSettings(tilt_axis=0.0, refine=5, normalise="counts"),
    "refine+gains": AlignmentSettings(tilt_axis=0.0, refine=5, normalise="gains"),
    "axis": AlignmentSettings(tilt_axis="auto", refine=0),
    "axis+refine": AlignmentSettings(tilt_axis="auto", refine=5),
    "axis+refine+counts": AlignmentSettings(tilt_axis="auto", refine=5, normalise="counts"),
    # As refine+counts, found on the files' HAADF images instead of the summed maps (what
    # `--align-reference auto` does when the files carry them).
    "refine+counts+haadf": AlignmentSettings(tilt_axis=0.0, refine=5, normalise="counts"),
}
#: Settings whose alignment is found on the HAADF images (read again with them).
ON_HAADF = {"refine+counts+haadf"}


def align(raw: TiltSeries, name: str, cache: Path | None = None, read_kw: dict | None = None
          ) -> tuple[TiltSeries, float, np.ndarray, np.ndarray, float]:
    """Aligned series, axis angle, shifts, gains and the wall time of the alignment.

    With ``cache``, a full alignment is stored as ``<cache>/<name>.json`` and applied from there
    when present (the same shifts for runs that vary only the reconstruction or the background).
    """
    t0 = time.perf_counter()
    st = SETTINGS[name]
    record = cache / f"{name}.json" if cache is not None and st is not None else None
    if record is not None and record.is_file():
        out = apply_alignment(raw, record)
        a = out.provenance["alignment"]
        return (out, a["tilt_axis_deg"], np.asarray(a["shifts_px"]), np.asarray(a["gains"]),
                time.perf_counter() - t0)
    if st is None:
        out = align_series(raw)
        a = out.provenance["alignment"]
        return out, 0.0, np.asarray(a["shifts_px"]), np.ones(raw.n_angles), time.perf_counter() - t0
    if name in ON_HAADF:
        # The reader aligns on the HAADF images; the record is applied to these maps.
        found = read_series(DATA, **(read_kw or {}), tilt_axis=st.tilt_axis, refine=st.refine,
                            tilt_gains=st.normalise, align_reference="haadf")
        out = apply_alignment(raw, found.provenance["alignment"])
    else:
        out = align_tilt_series(raw, st)
    a = out.provenance["alignment"]
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(a, default=str))
    return (out, a["tilt_axis_deg"], np.asarray(a["shifts_px"]), np.asarray(a["gains"]),
            time.perf_counter() - t0)


def poisson_deviance(mu: np.ndarray, y: np.ndarray) -> float:
    """Mean Poisson deviance per pixel, ``2·(y log(y/μ) − (y − μ))``."""
    mu = np.clip(mu, 1e-6, None)
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)
    return float(np.mean(2 * (term - (y - mu))))


#: Edges (cycles per pixel) of the spatial-frequency bands of the residual (``bands`` in each row).
BAND_EDGES = (0.0, 0.05, 0.1, 0.2, 0.3, np.inf)


def residual_bands(residual: np.ndarray, meas: np.ndarray, m: np.ndarray) -> list[float]:
    """The residual's energy per band of spatial frequency, its Poisson floor removed, as a share
    of the map's signal energy (the same normalisation as the unexplained fraction)."""
    power = np.abs(np.fft.fft2(np.where(m, residual, 0.0))) ** 2 / residual.size
    freq = np.hypot(np.fft.fftfreq(residual.shape[0])[:, None], np.fft.fftfreq(residual.shape[1])[None, :])
    # The floor is white: mean(y) per pixel, spread over the frequencies in proportion to the mask.
    floor = meas[m].sum() / residual.size
    signal = (meas[m] ** 2).sum() - meas[m].sum()
    out = []
    for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:], strict=True):
        sel = (freq >= lo) & (freq < hi)
        out.append(round(float((power[sel].sum() - floor * sel.sum()) / signal), 4))
    return out


def score(pred: np.ndarray, meas: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Deviance, unexplained fraction and its frequency bands after the best shift and scale."""
    if pred.sum() <= 0:
        return {"deviance": float("nan"), "unexplained": float("nan"), "shift_px": [0.0, 0.0]}
    s = phase_correlation(meas, pred, sigma=1.0, max_shift=4)
    moved = np.clip(ndimage.shift(pred, s, order=1, mode="nearest"), 0, None)
    m = mask & (ndimage.shift(mask.astype(float), s, order=0) > 0.5)
    a = float((moved[m] * meas[m]).sum() / max((moved[m] ** 2).sum(), 1e-12))
    return {"deviance": poisson_deviance(a * moved[m], meas[m]),
            "unexplained": unexplained_fraction(moved, meas, m), "shift_px": s.round(2).tolist(),
            "scale": round(a, 4), "bands": residual_bands(a * moved - meas, meas, m)}


class LeftOutScorer:
    """Scores of a volume's projection at the left-out tilt ``k``, in the raw frame."""

    def __init__(self, raw: TiltSeries, k: int, alpha: float, shift: np.ndarray, gain: float) -> None:
        self.raw, self.k, self.alpha, self.shift, self.gain = raw, k, alpha, shift, gain
        _, ny, nx = raw.shape
        self.inside = uncorrect_image(np.ones((ny, nx)), alpha, shift) > 0.999
        self._projectors: dict[tuple[int, int], ParallelProjector] = {}

    def __call__(self, vols: dict[str, np.ndarray], el: str) -> dict[str, float]:
        v = torch.from_numpy(vols[el].astype(np.float64))
        key = (v.shape[0], v.shape[2])
        if key not in self._projectors:
            self._projectors[key] = ParallelProjector([self.raw.angles[self.k]], *key, dtype=torch.float64)
        proj = self._projectors[key]
        back = uncorrect_image(proj.forward(v[None])[0, 0].numpy() * self.gain, self.alpha, self.shift)
        return score(back, self.raw.maps[el][self.k].astype(np.float64), self.inside)

    def mean(self, vols: dict[str, np.ndarray]) -> dict[str, float]:
        """Unexplained fraction and deviance, mean over the elements."""
        per = [self(vols, el) for el in self.raw.elements]
        return {key: round(float(np.mean([r[key] for r in per])), 4) for key in ("unexplained", "deviance")}


def parse_params(items: list[str]) -> dict[str, dict[str, object]]:
    """``method:key=value`` items → ``{method: {key: value}}`` (value as JSON, else a string)."""
    out: dict[str, dict[str, object]] = {}
    for item in items:
        head, _, value = item.partition("=")
        method, _, key = head.partition(":")
        if not key or not _:
            raise SystemExit(f"--param takes method:key=value, got {item!r}")
        try:
            out.setdefault(method, {})[key] = json.loads(value)
        except json.JSONDecodeError:
            out.setdefault(method, {})[key] = value
    return out


def held_out_at(train: TiltSeries, degrees: list[float] | None) -> mock._patch | nullcontext:
    """Hold out the training tilts nearest ``degrees`` in DIPm-TV instead of its every-k-th split.

    A probe, not a product setting: ``recon.dip`` picks its held-out tilts by index only
    (``split_tilts``), so which tilt it holds out is replaced here for one run.
    """
    if not degrees:
        return nullcontext()
    held = np.unique([int(np.argmin(np.abs(train.angles - d))) for d in degrees])

    def split(n_angles: int, every: int) -> tuple[np.ndarray, np.ndarray]:
        if n_angles != train.n_angles:
            raise RuntimeError(f"held-out probe built for {train.n_angles} tilts, asked for {n_angles}")
        return np.setdiff1d(np.arange(n_angles), held), held

    return mock.patch("edxtomo.recon.dip.split_tilts", split)


def run_method(train: TiltSeries, method: str, args: argparse.Namespace,
               on_snapshot=None) -> tuple[dict[str, np.ndarray], dict]:
    """Run one method on the training tilts; ``on_snapshot(volumes)`` scores DIPm-TV's intermediate
    volumes every ``--trace`` iterations (the current average, not the held-out best)."""
    params = {"sirt": {"iterations": 100, "nz": args.nz}, "tv": {"iterations": args.tv_iterations, "nz": args.nz},
              "dipm-tv": {"iterations": args.dip_iterations, "seed": 0, "nz": args.nz,
                          "widths": tuple(args.dip_widths), "skip_widths": tuple(max(1, w // 4) for w in args.dip_widths),
                          "time_limit": args.dip_time}}[method]
    trace = []
    tracing = on_snapshot is not None and method == "dipm-tv" and args.trace > 0
    if tracing:
        params["snapshot_every"] = args.trace
    params.update(args.params.get(method, {}))
    with held_out_at(train, args.dip_heldout_deg) if method == "dipm-tv" else nullcontext():
        snap = None
        for snap in reconstruct(train, method, device="cpu", **params):
            if tracing and not snap.final:
                trace.append({"iteration": snap.iteration, **on_snapshot(snap.volumes)})
                print(f"    trace {snap.iteration}: {trace[-1]}", file=sys.stderr, flush=True)
    keep = ("loss", "heldout_angles", "best_iteration", "tv_weight", "tv_weights")
    info = {k: v for k, v in (snap.info or {}).items() if k in keep}
    if trace:
        info["trace"] = trace
    info.update(iterations_run=snap.iteration, stopped=str(snap.stopped or ""),
                params={k: v for k, v in params.items() if k not in ("widths", "skip_widths")})
    return snap.volumes, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", type=int, default=4)
    ap.add_argument("--left-out", type=float, nargs="+", default=[0.0, 30.0], help="tilts (deg) left out")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--methods", nargs="+", default=["sirt", "tv", "dipm-tv"])
    ap.add_argument("--dip-settings", nargs="+", default=["translation", "refine"],
                    help="alignment settings on which DIPm-TV runs (it is the slow one)")
    ap.add_argument("--dip-iterations", type=int, default=1500)
    ap.add_argument("--dip-time", default="6m",
                    help="time limit of each DIPm-TV run (ends it as if converged); 0: none, so that the "
                         "machine's load cannot change the result")
    ap.add_argument("--dip-heldout-deg", type=float, nargs="+", default=None, metavar="DEG",
                    help="probe: DIPm-TV holds out the training tilts nearest these angles instead of its "
                         "every-k-th split")
    ap.add_argument("--dip-widths", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--trace", type=int, default=0, metavar="N",
                    help="score DIPm-TV's current volume at the left-out tilt every N iterations "
                         "(mean over elements, in the rows' info['trace'])")
    ap.add_argument("--tv-iterations", type=int, default=150)
    ap.add_argument("--nz", type=int, default=32, help="volume depth (voxels)")
    ap.add_argument("--param", action="append", default=[], metavar="METHOD:KEY=VALUE",
                    help="extra registry parameter of one method, e.g. dipm-tv:loss=poisson (repeatable)")
    ap.add_argument("--background", action="store_true", help="subtract the background windows when reading")
    ap.add_argument("--alignment-cache", type=Path, default=None, metavar="DIR",
                    help="store each full alignment in DIR/<setting>.json and reuse it when present")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on the 2 shared cores here DIPm-TV ran 536 iterations in 3 min "
                         "with 1 thread, 50 in 3.5 min with 2)")
    ap.add_argument("--tag", default="", help="label of this run's rows (a variant)")
    ap.add_argument("--out", type=Path, default=Path("bench_real.json"))
    ap.add_argument("--save-volumes", type=Path, default=None, metavar="DIR",
                    help="write each run's volumes to DIR/<setting>_<left out>_<method><tag>.npz")
    ap.add_argument("--rescore", type=Path, nargs="+", default=None, metavar="NPZ",
                    help="score saved volumes (--save-volumes files) at their left-out tilt instead of "
                         "reconstructing; prints each element's scale and residual bands")
    args = ap.parse_args(argv)
    args.params = parse_params(args.param)
    if not DATA.is_dir():
        print(f"real data not found at {DATA}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    raw = read_series(DATA, lines=LINES, bin_factor=args.bin, background=args.background)
    print(raw, file=sys.stderr)
    if args.rescore:
        return rescore(raw, args)
    rows, timings = [], {}
    for name in args.settings:
        aligned, alpha, shifts, gains, secs = align(raw, name, args.alignment_cache,
                                                    {"lines": LINES, "bin_factor": args.bin,
                                                     "background": args.background})
        timings[name] = secs
        rep = aligned.provenance["alignment"]
        print(f"[{name}] axis {alpha:.2f} deg, {secs:.1f} s, scores {np.round(rep.get('scores', []), 3)}"
              f" flagged {rep.get('flagged_tilts')}", file=sys.stderr, flush=True)
        for angle in args.left_out:
            k = int(np.argmin(np.abs(raw.angles - angle)))
            train = aligned.select_indices([i for i in range(raw.n_angles) if i != k])
            for method in args.methods:
                if method == "dipm-tv" and name not in args.dip_settings:
                    continue
                t0 = time.perf_counter()
                scorer = LeftOutScorer(raw, k, alpha, shifts[k], gains[k])
                vols, info = run_method(train, method, args, scorer.mean)
                if args.save_volumes is not None:
                    args.save_volumes.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(args.save_volumes / f"{name}_{raw.angles[k]:g}_{method}{args.tag}.npz",
                                        **vols)
                for el in raw.elements:
                    res = scorer(vols, el)
                    rows.append({"setting": name, "left_out_deg": float(raw.angles[k]), "method": method,
                                 "tag": args.tag, "element": el, **res, "seconds": time.perf_counter() - t0,
                                 "info": info})
                    print(f"  {name:14s} {raw.angles[k]:5.0f} {method:8s} {el:3s} "
                          f"dev {res['deviance']:.4f} unexpl {res['unexplained']:.3f}",
                          file=sys.stderr, flush=True)
                args.out.write_text(json.dumps({"rows": rows, "alignment_seconds": timings, "bin": args.bin,
                                                "lines": LINES, "background": args.background, "nz": args.nz,
                                                "tag": args.tag, "threads": args.threads}, indent=1, default=str))
    print(table(rows))
    print("alignment wall time (s, 2 shared cores, pessimistic):", {k: round(v, 1) for k, v in timings.items()})
    return 0


def rescore(raw: TiltSeries, args: argparse.Namespace) -> int:
    """Scores and residual bands of saved volumes, ``<setting>_<left out>_<method><tag>.npz``."""
    edges = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:], strict=True))
    print(f"residual energy above the Poisson floor per band (cycles/px: {edges}), share of the signal")
    for path in args.rescore:
        name, left, label = path.stem.split("_", 2)
        aligned, alpha, shifts, gains, _ = align(raw, name, args.alignment_cache)
        k = int(np.argmin(np.abs(raw.angles - float(left))))
        scorer = LeftOutScorer(raw, k, alpha, shifts[k], gains[k])
        vols = dict(np.load(path))
        for el in raw.elements:
            r = scorer(vols, el)
            print(f"{name:14s} {float(left):5.0f} {label:16s} {el:3s} unexplained {r['unexplained']:.4f} "
                  f"deviance {r['deviance']:.3f} scale {r['scale']:.3f} bands {r['bands']}")
    return 0


def table(rows: list[dict]) -> str:
    """Markdown table: unexplained fraction (deviance) per setting, tilt and method, mean over elements."""
    keys = sorted({(r["setting"], r["left_out_deg"], r["method"], r.get("tag", "")) for r in rows},
                  key=lambda k: (list(SETTINGS).index(k[0]), k[1], k[2], k[3]))
    out = ["| alignment | left out | method | unexplained Fe / Si / Mg (mean) | deviance/px (mean) |",
           "| --- | --- | --- | --- | --- |"]
    for key in keys:
        sel = [r for r in rows if (r["setting"], r["left_out_deg"], r["method"], r.get("tag", "")) == key]
        per = " / ".join(f"{r['unexplained']:.3f}" for r in sel)
        dev = " / ".join(f"{r['deviance']:.2f}" for r in sel)
        label = key[2] + (f" ({key[3]})" if key[3] else "")
        out.append(f"| {key[0]} | {key[1]:g}° | {label} | {per} ({np.mean([r['unexplained'] for r in sel]):.3f}) | "
                   f"{dev} ({np.mean([r['deviance'] for r in sel]):.2f}) |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
