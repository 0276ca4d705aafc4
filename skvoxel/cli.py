"""Command line: ``python -m skvoxel`` runs the quickstart on built-in data."""

import argparse

import numpy as np

from .linear_model import MassUnivariateOLS

__all__ = ["main", "quickstart"]


def quickstart(seed=0):
    """Reproduce the seed notebook and return its printed report.

    A 12-row design with a linear trend and a constant, its pseudo-inverse,
    three data vectors drawn from the standard normal, each fitted alone
    with ``pinv(X) @ y_k``, then all three at once.

    Parameters
    ----------
    seed : int, default=0
        Seed of the random data vectors.

    Returns
    -------
    report : str
        What the quickstart prints.

    Examples
    --------
    >>> print(quickstart().splitlines()[0])
    Design X (12 samples x 2 regressors: linear trend, constant)
    """
    X = np.ones((12, 2))
    X[:, 0] = np.linspace(-1, 1, 12)
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(12, 3))
    model = MassUnivariateOLS().fit(X, Y)
    one_at_a_time = np.stack([model.pinv_ @ Y[:, k] for k in range(3)], axis=1)
    with np.printoptions(precision=2, suppress=True):
        lines = [
            "Design X (12 samples x 2 regressors: linear trend, constant)",
            str(X),
            f"pinv(X), shape {model.pinv_.shape}:",
            str(model.pinv_),
            "Data Y: three voxels y_0, y_1, y_2 as columns, shape (12, 3):",
            str(Y),
            "One voxel at a time, pinv(X) @ y_k, as columns:",
            str(one_at_a_time),
            "All voxels with one multiply, MassUnivariateOLS().fit(X, Y).coef_"
            " (row 0 slopes, row 1 intercepts):",
            str(model.coef_),
            f"Same as one at a time: {np.allclose(model.coef_, one_at_a_time)}",
            f"Residual variance per voxel (df_resid = {model.df_resid_}):",
            str(model.sigma2_),
        ]
    return "\n".join(lines)


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success.
    """
    parser = argparse.ArgumentParser(
        prog="skvoxel",
        description="Fit one linear model to many voxels at once. "
        "Without arguments: the quickstart on built-in data.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo data")
    args = parser.parse_args(argv)
    print(quickstart(seed=args.seed))
    return 0
