"""Long paired comparisons, for ratios that sit close to a target.

``run.py`` times every implementation in a few rounds; on a shared machine
whose rounds vary by 10-20 %, a ratio within that of a target is not settled
by it. This script times only the calls a ratio needs, for many rounds,
alternating, and prints the paired ratio's median and quartiles:

- ``fit + t_test (t, p)`` against the bare ``pinv(X) @ Y`` (float64), on the
  workloads asked for (issue 5, point 1);
- ``fit + t_test (t, p)`` on float64 data against the same on the same data
  rounded to float32 (issue 5, point 4), with ``--float32``.

Run ``python benchmarks/bench_paired.py --workloads W1 W3 --float32``
(``--rounds``, default 25; ``--quick`` for 1/20 of the voxels).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_ols  # noqa: E402
import common  # noqa: E402


def quartiles(values):
    """Median, first and third quartiles of ``values``."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def paired(workload, rounds, float32, scale):
    """Time the calls of one workload; return the paired ratios."""
    X, Y = workload.make(np.float64)
    if scale != 1:
        Y = np.ascontiguousarray(Y[:, : int(Y.shape[1] * scale)])
    contrast = bench_ols.contrast_for(X)
    functions = {
        bench_ols.BARE: bench_ols.IMPLEMENTATIONS[bench_ols.BARE](X, Y, None, None),
        bench_ols.FIT_TP: bench_ols.IMPLEMENTATIONS[bench_ols.FIT_TP](
            X, Y, contrast, None
        ),
    }
    if float32:
        X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
        functions["float32: " + bench_ols.FIT_TP] = bench_ols.IMPLEMENTATIONS[
            bench_ols.FIT_TP
        ](X32, Y32, contrast, None)
    times = common.alternate(functions, rounds)
    fit_tp = np.asarray(times[bench_ols.FIT_TP])
    ratios = {
        "fit + t_test (t, p) / bare": quartiles(
            fit_tp / np.asarray(times[bench_ols.BARE])
        )
    }
    if float32:
        single = np.asarray(times["float32: " + bench_ols.FIT_TP])
        ratios["float64 / float32, fit + t_test (t, p)"] = quartiles(fit_tp / single)
    medians = {name: float(np.median(values)) for name, values in times.items()}
    return {"medians_s": medians, "ratios": ratios, "times_s": times}


def main(argv=None):
    """Run the paired comparisons; print and save them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", nargs="*", default=["W1", "W3"])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1/20 of the voxels")
    parser.add_argument("--out", default=None, help="JSON name in results/")
    args = parser.parse_args(argv)
    scale = 0.05 if args.quick else 1
    rows = []
    for name in args.workloads:
        workload = common.WORKLOADS[name]
        common.progress(f"{name}: {args.rounds} alternating rounds")
        row = paired(workload, args.rounds, args.float32, scale)
        row |= workload.describe()
        rows.append(row)
        for label, ratio in row["ratios"].items():
            print(
                f"{name} {label}: {ratio['median']:.2f}x "
                f"(quartiles {ratio['q1']:.2f}-{ratio['q3']:.2f}, {args.rounds} rounds)"
            )
    path = common.write_json(
        args.out or ("paired_quick" if args.quick else "paired"),
        {"machine": common.machine(), "rounds": args.rounds, "rows": rows},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
