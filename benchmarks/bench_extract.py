"""Extract 5 lines from the real 8-file Bruker series with 4x binning, then align.

Prints wall time and peak memory (ru_maxrss). Run:
``python benchmarks/bench_extract.py [FOLDER]``.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openncem_idp_tilt10"
LINES = ["Fe_Ka", "Si_Ka", "O_Ka", "S_Ka", "Mg_Ka"]


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    if not folder.is_dir():
        print(f"skipped: real tilt series not found at {folder}")
        return 0
    t0 = time.perf_counter()
    import hyperspy.api  # noqa: F401  (import time reported apart from the work)

    from edxtomo.align import align_series, neighbour_misfit
    from edxtomo.io.spectra import load_spectrum_series

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    series, haadf = load_spectrum_series(folder, lines=LINES, bin_factor=4)
    t_extract = time.perf_counter() - t1
    t2 = time.perf_counter()
    aligned = align_series(series, reference=haadf)
    t_align = time.perf_counter() - t2
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    a = aligned.provenance["alignment"]
    print(f"series: {aligned}")
    print(f"import hyperspy/exspy: {t_import:.1f} s")
    print(f"extract {len(LINES)} lines from {series.n_angles} files, bin 4: {t_extract:.1f} s "
          f"({t_extract / series.n_angles:.2f} s per file)")
    print(f"align (HAADF reference): {t_align:.2f} s; neighbour misfit "
          f"{a['misfit_before']:.3f} -> {a['misfit_after']:.3f}")
    print(f"element-map misfit: {neighbour_misfit(series.stack().sum(0)):.3f} -> "
          f"{neighbour_misfit(aligned.stack().sum(0)):.3f}")
    print(f"total: {time.perf_counter() - t0:.1f} s; peak memory (ru_maxrss): {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
