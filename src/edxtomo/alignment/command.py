"""``edxtomo align INPUT... --out DIR [--tilt-axis auto|DEG] [--refine N] [--normalise ...]``.

Writes the aligned ``<Element>.tif`` stacks, ``angles.txt`` and
``alignment.json`` (tilt-axis angle, shifts, gains, per-tilt scores and the
flagged tilts) and reports the scores on the terminal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: ``--normalise`` values this package handles; ``total``/``live_time`` go to the spectrum reader.
ALIGN_NORMALISE = ("counts", "gains")
#: What ``--normalise`` does, and its default (the ``--help`` of ``align``, ``extract``, ``reconstruct``).
NORMALISE_HELP = (
    "per-tilt intensity normalisation (holder shadowing, path length through the sample). "
    "Default: 'counts' whenever the full alignment runs (edxtomo align, or --tilt-axis / --refine "
    "given; it lowered the left-out error on the real series, docs/real-data.md), none otherwise "
    "(no alignment, or the translation-only --align). 'none': no normalisation, also with the "
    "alignment; 'total' / 'live_time': by each spectrum image's total spectrum counts / live time "
    "(the reader; the alignment then adds no gains); 'counts': by the element-map counts of each "
    "tilt; 'gains': gains fitted to the other tilts (these two imply the full alignment)")


def add_alignment_options(p: argparse.ArgumentParser) -> None:
    """``--tilt-axis`` and ``--refine`` (``--normalise`` is a read option already)."""
    p.add_argument("--tilt-axis", metavar="auto|DEG", default=None,
                   help="in-plane tilt-axis angle, degrees anticlockwise from the image y axis, or "
                        "'auto' to estimate it (implies alignment; default 0 = no rotation, as the "
                        "estimate did not lower the left-out error on the real test series)")
    p.add_argument("--refine", type=int, metavar="N", default=None,
                   help="projection-matching rounds after the translation alignment (implies alignment)")


def add_align_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``edxtomo align``."""
    from ..method_options import add_read_options

    p = sub.add_parser("align", help="align a tilt series: tilt axis, shifts, per-tilt intensity, scores")
    p.add_argument("inputs", nargs="+", help="element-map folder or spectrum images")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (<Element>.tif, angles.txt, alignment.json)")
    add_read_options(p)


def settings_from(tilt_axis: str | float | None, refine: int | None, normalise: str | None):
    """:class:`AlignmentSettings` from command-line / read-option values (defaults where ``None``).

    ``normalise`` ``None`` is the alignment's default (``"counts"``);
    ``"none"``, ``"total"`` and ``"live_time"`` give no alignment gains (the
    last two are the spectrum reader's, applied before the alignment).
    """
    from .pipeline import AlignmentSettings

    gains = AlignmentSettings.normalise if normalise is None else \
        normalise if normalise in ALIGN_NORMALISE else "none"
    return AlignmentSettings(tilt_axis=0.0 if tilt_axis is None else tilt_axis,
                             refine=5 if refine is None else int(refine), normalise=gains)


def format_scores(report: dict) -> str:
    """Per-tilt scores as lines of text, flagged tilts marked."""
    flagged = set(report.get("flagged_tilts", []))
    rows = [f"  {a:7.2f} deg  score {s:6.3f}  gain {g:5.3f}  shift ({dy:+6.2f}, {dx:+6.2f}) px"
            f"{'  <- flagged: poorly predicted by the other tilts' if i in flagged else ''}"
            for i, (a, s, g, (dy, dx)) in enumerate(zip(report["angles_deg"], report["scores"],
                                                        report["gains"], report["shifts_px"], strict=True))]
    return "\n".join(rows)


def cmd_align(args: argparse.Namespace) -> int:
    """Read and align (as ``extract --refine`` does) and write the aligned maps and ``alignment.json``."""
    from ..cli import _read
    from ..io import write_map_folder
    from ..method_options import READ_OPTIONS
    from .pipeline import write_alignment

    # The same reading and alignment as extract/reconstruct with --refine: one path, one result.
    opts = {k: getattr(args, k, None) for k in READ_OPTIONS}
    opts["align"] = False
    if opts["tilt_axis"] is None and opts["refine"] is None:
        opts["refine"] = settings_from(None, None, None).refine
    aligned = _read(args.inputs, opts)
    write_map_folder(aligned, args.out)
    write_alignment(args.out, aligned)
    rep = aligned.provenance["alignment"]
    print(f"tilt axis {rep['tilt_axis_deg']:.2f} deg ({rep['tilt_axis_source']}); "
          f"{rep['refine_rounds']} projection-matching round(s), last move {rep['refine_last_move_px']:.2f} px; "
          f"mean score {np.mean(rep['scores']):.3f} (translation only: "
          f"{np.mean(rep['scores_translation_only']):.3f}); {rep['elapsed_s']:.1f} s", file=sys.stderr)
    print(format_scores(rep), file=sys.stderr)
    if rep["flagged_tilts"]:
        bad = ", ".join(f"{rep['angles_deg'][i]:g}" for i in rep["flagged_tilts"])
        print(f"flagged tilts (deg): {bad}; drop them with --tilt-range or by removing their files",
              file=sys.stderr)
    print(f"wrote {aligned} and alignment.json to {args.out}")
    return 0
