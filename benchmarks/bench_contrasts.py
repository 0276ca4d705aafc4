"""Contrasts after one fit: their cost relative to the fit itself.

Many contrasts from one fit must cost no refit and no pass over Y: a t map
reads only the rows of the coefficients (p x V) its contrast weights and the
residual standard deviations (V); the effect, its standard error, the
p-values and the z-scores are computed when first read. Run
``python benchmarks/bench_contrasts.py`` (``--quick`` for 1/10 of the voxels).
"""

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, timed, write_json  # noqa: E402

from skvoxel import MassUnivariateOLS  # noqa: E402


def median_time(function, repeats):
    """Median wall time of ``repeats`` calls, in seconds (:func:`common.timed`)."""
    return float(np.median([timed(function) for _ in range(repeats)]))


def main(argv=None):
    """Time one fit and 20 t contrasts in several ways; print ratios to the fit."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 voxels")
    parser.add_argument("--n-samples", type=int, default=400)
    parser.add_argument("--n-regressors", type=int, default=20)
    parser.add_argument("--n-contrasts", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="JSON name in results/")
    args = parser.parse_args(argv)
    n, p, q = args.n_samples, args.n_regressors, args.n_contrasts
    n_voxels = 10_000 if args.quick else 100_000
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=(n, p - 1)), np.ones(n)])
    Y = 1000.0 + 10.0 * rng.standard_normal((n, n_voxels))
    # Dense: every regressor in every contrast (the worst case: each map
    # reads all of coef_). Pairs: "a - b" of two regressors, as imaging
    # contrasts mostly are (each map reads two rows of coef_).
    dense = rng.normal(size=(q, p))
    dense[:, -1] = 0.0  # contrasts of effects, not of the baseline
    pairs = np.zeros((q, p))
    for row in pairs:
        a, b = rng.choice(p - 1, size=2, replace=False)
        row[a], row[b] = 1.0, -1.0
    model = MassUnivariateOLS().fit(X, Y)

    def separate(contrasts, read):
        for row in contrasts:
            result = model.t_test(row)
            for field in read:
                getattr(result, field)

    def together(contrasts, read):
        result = model.t_test(contrasts)
        for field in read:
            getattr(result, field)

    cases = {"fit": lambda: MassUnivariateOLS().fit(X, Y)}
    for kind, contrasts in (("dense", dense), ("a - b", pairs)):
        cases |= {
            f"{q} {kind} t maps, one call each": partial(
                separate, contrasts, ("stat",)
            ),
            f"{q} {kind} t maps + effect + stderr, one call each": partial(
                separate, contrasts, ("stat", "effect", "stderr")
            ),
            f"{q} {kind} t maps + p, one call each": partial(
                separate, contrasts, ("p_value",)
            ),
            f"{q} {kind} t maps + p + z, one call each": partial(
                separate, contrasts, ("p_value", "z_score")
            ),
            f"{q} {kind} t maps, one {q}-row call": partial(
                together, contrasts, ("stat",)
            ),
            f"{q} {kind} t maps + p + z, one {q}-row call": partial(
                together, contrasts, ("p_value", "z_score")
            ),
        }
    medians = {
        name: median_time(function, args.repeats) for name, function in cases.items()
    }
    fit_time = medians["fit"]
    print(f"n={n}, p={p}, V={n_voxels}, float64, median of {args.repeats}")
    rows = []
    for name, seconds in medians.items():
        share = seconds / fit_time
        rows.append({"case": name, "median_s": seconds, "share_of_fit": share})
        print(f"{name:52} {seconds:9.4f} s {100 * share:7.1f} % of the fit")
    path = write_json(
        args.out or ("contrasts_quick" if args.quick else "contrasts"),
        {"machine": machine(), "n": n, "p": p, "V": n_voxels, "rows": rows},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
