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


def functional_run_path():
    """Path of the real fMRI run nibabel ships (17 x 21 x 3 voxels, 20 volumes)."""
    nibabel = pytest.importorskip("nibabel")
    path = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
    return os.path.join(path, "functional.nii")


@pytest.fixture(scope="session")
def functional_run():
    """nibabel's functional.nii as Y (20 x 1071, float64) and a realistic design.

    The design is a DataFrame: a block regressor convolved with SPM's canonical
    HRF ("task"), two cosine drifts and a constant, built by nilearn.
    """
    nibabel = pytest.importorskip("nibabel")
    pd = pytest.importorskip("pandas")
    first_level = pytest.importorskip("nilearn.glm.first_level")
    image = nibabel.load(functional_run_path())
    data = np.asarray(image.dataobj, dtype=np.float64)
    Y = data.reshape(-1, data.shape[-1]).T
    repetition_time = float(image.header.get_zooms()[3])
    frame_times = np.arange(Y.shape[0]) * repetition_time
    events = pd.DataFrame(
        {"onset": [4.0, 24.0], "duration": [8.0, 8.0], "trial_type": ["task"] * 2}
    )
    design = first_level.make_first_level_design_matrix(
        frame_times, events, hrf_model="spm", drift_model="cosine", high_pass=0.03
    )
    return design, Y


def make_images(
    n_samples=12,
    spatial_shape=(4, 5, 3),
    *,
    rng,
    mask=None,
    outside=0.0,
    dtype=np.float64,
):
    """Images ``(n_samples, *spatial_shape)``: noise inside ``mask``, ``outside``
    (a constant) elsewhere. Without a mask, every voxel is noise."""
    images = np.full((n_samples, *spatial_shape), outside, dtype=np.float64)
    if mask is None:
        mask = np.ones(spatial_shape, dtype=bool)
    images[:, mask] = 10.0 + rng.normal(size=(n_samples, int(mask.sum())))
    return images.astype(dtype)


def make_mask(spatial_shape=(4, 5, 3), *, rng, fraction=0.5):
    """A random boolean mask with at least one True voxel."""
    mask = rng.random(spatial_shape) < fraction
    mask.flat[0] = True
    return mask


@pytest.fixture
def functional_path():
    """Path to nibabel's real 4-D run ``functional.nii`` (17, 21, 3, 20), int16."""
    return functional_run_path()
