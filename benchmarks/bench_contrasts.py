"""Contrasts after one fit: their cost relative to the fit itself.

Many contrasts from one fit must cost no refit and no pass over Y: a t map
reads only the rows of the coefficients (p x V) its contrast weights and the
residual standard deviations (V); the effect, its standard error, the
p-values and the z-scores are computed when first read. Run
``python benchmarks/bench_contrasts.py`` (``--quick`` for 1/10 of the voxels).
"""

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, timed, write_json  # noqa: E402

from skvoxel import MassUnivariateOLS  # noqa: E402


def fit_then(case, X, Y, repeats):
    """Time a fit, then ``case(model)`` straight after it, ``repeats`` times.

    The contrasts run on the model just fitted, as a user's would (the
    coefficients still warm in the caches); each round starts after
    :func:`common.timed`'s pause. Returns the fit's and the case's seconds,
    round by round.
    """
    fits, cases = [], []
    for _ in range(repeats):
        model = None

        def fit():
            nonlocal model
            model = MassUnivariateOLS().fit(X, Y)

        fits.append(timed(fit))
        start = time.perf_counter()
        case(model)
        cases.append(time.perf_counter() - start)
    return np.asarray(fits), np.asarray(cases)


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

    def separate(contrasts, read, model):
        for row in contrasts:
            result = model.t_test(row)
            for field in read:
                getattr(result, field)

    def together(contrasts, read, model):
        result = model.t_test(contrasts)
        for field in read:
            getattr(result, field)

    cases = {}
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
    print(
        f"n={n}, p={p}, V={n_voxels}, float64; each case right after a fit, "
        f"{args.repeats} rounds; share = median of the rounds' case / fit"
    )
    rows = []
    all_fits = []
    for name, case in cases.items():
        fits, times = fit_then(case, X, Y, args.repeats)
        all_fits.extend(fits)
        share = float(np.median(times / fits))
        rows.append(
            {
                "case": name,
                "median_s": float(np.median(times)),
                "fit_median_s": float(np.median(fits)),
                "share_of_fit": share,
                "times_s": times.tolist(),
                "fit_times_s": fits.tolist(),
            }
        )
        print(f"{name:52} {np.median(times):9.4f} s {100 * share:7.1f} % of the fit")
    print(f"{'fit (all rounds)':52} {np.median(all_fits):9.4f} s")
    path = write_json(
        args.out or ("contrasts_quick" if args.quick else "contrasts"),
        {"machine": machine(), "n": n, "p": p, "V": n_voxels, "rows": rows},
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
