"""skvoxel's fit against the floor: a plain read of Y and a bare pinv(X) @ Y.

Run ``python benchmarks/run.py`` (``--quick`` for small sizes). Every ratio is
measured in this one process, the implementations alternating, repeated.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import QUICK, WORKLOADS, best_and_median, machine, write_json  # noqa: E402

from skvoxel import MassUnivariateOLS  # noqa: E402


def implementations(X, Y):
    """The timed callables, in the order they alternate."""
    return {
        "read Y": lambda: Y.sum(),
        "pinv(X) @ Y": lambda: np.linalg.pinv(X) @ Y,
        "skvoxel fit": lambda: MassUnivariateOLS().fit(X, Y),
    }


def run(workloads, dtypes, repeats):
    """Time each implementation on each workload; return rows of results."""
    rows = []
    for workload in workloads.values():
        for dtype in dtypes:
            X, Y = workload.make(dtype)
            impls = implementations(X, Y)
            times = {name: [] for name in impls}
            for _ in range(repeats):  # alternate, so drifts hit all alike
                for name, function in impls.items():
                    times[name].append(best_and_median(function, 1)[0])
            medians = {name: float(np.median(t)) for name, t in times.items()}
            bare = medians["pinv(X) @ Y"]
            for name, median in medians.items():
                rows.append(
                    {
                        "workload": workload.name,
                        "dtype": np.dtype(dtype).name,
                        "n": workload.n_samples,
                        "p": workload.n_regressors,
                        "V": workload.n_voxels,
                        "implementation": name,
                        "median_s": median,
                        "ratio_to_bare_multiply": median / bare,
                    }
                )
    return rows


def main(argv=None):
    """Run the benchmark and print a table; write JSON into results/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/20 of the voxels")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    workloads = QUICK if args.quick else WORKLOADS
    rows = run(workloads, [np.float64, np.float32], args.repeats)
    header = ("workload", "dtype", "implementation", "median s", "x bare")
    print("{:8} {:8} {:18} {:>10} {:>8}".format(*header))
    for r in rows:
        print(
            f"{r['workload']:8} {r['dtype']:8} {r['implementation']:18} "
            f"{r['median_s']:10.4f} {r['ratio_to_bare_multiply']:8.2f}"
        )
    path = write_json(
        "run_quick" if args.quick else "run", {"machine": machine(), "rows": rows}
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
