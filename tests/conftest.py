"""Shared builders and fixtures for the skvoxel tests."""

import os

# Before scipy is imported anywhere: its special functions then follow the
# array namespace of their inputs.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def make_design(n_samples=40, n_regressors=3, *, rng, constant=True, dtype=np.float64):
    """A random design, its last column a constant when ``constant``."""
    X = rng.normal(size=(n_samples, n_regressors))
    if constant:
        X[:, -1] = 1.0
    return X.astype(dtype)


def make_voxels(X, n_voxels=50, *, rng, noise=1.0, baseline=0.0, dtype=np.float64):
    """Data ``(n_samples, n_voxels)``: ``X @ beta`` plus Gaussian noise."""
    beta = rng.normal(size=(X.shape[1], n_voxels))
    Y = baseline + X @ beta + noise * rng.normal(size=(X.shape[0], n_voxels))
    return Y.astype(dtype)


@pytest.fixture
def rng():
    """A seeded random generator, fresh for each test."""
    return np.random.default_rng(20261201)
