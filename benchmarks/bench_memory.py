"""Memory estimate against the measured peak resident memory of real runs.

Each run happens in a fresh process (peak RSS is per process); a few
iterations suffice, since every large allocation is made at the start.

    python benchmarks/bench_memory.py [--sizes 32 48 64] [--methods sirt tv dipm-tv]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
from edxtomo.phantom import acquire, make_phantom, tilt_angles
from edxtomo.recon import reconstruct, run_to_end
method, size = sys.argv[1], int(sys.argv[2])
series = acquire(make_phantom("core_shell", size), tilt_angles(-40, 40, 5), dose=5.0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
run_to_end(reconstruct(series, method, iterations=3, snapshot_every=3, device="cpu"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "base": base, "shape": list(series.shape), "elements": len(series.elements)}))
"""


def main() -> None:
    from edxtomo.recon import get_method
    from edxtomo.recon.memory import GIB, estimate

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64])
    ap.add_argument("--methods", nargs="+", default=["sirt", "tv", "dipm-tv"])
    args = ap.parse_args()
    print(f"{'method':8s} {'size':>5s} {'measured GiB':>13s} {'estimate GiB':>13s} {'ratio':>6s}")
    for method in args.methods:
        for size in args.sizes:
            out = subprocess.run([sys.executable, "-c", CHILD, method, str(size)], capture_output=True,
                                 text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            est = estimate(method, r["shape"], r["elements"], get_method(method).defaults()).total
            print(f"{method:8s} {size:5d} {r['peak'] / GIB:13.2f} {est / GIB:13.2f} {est / r['peak']:6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
