"""Tests for skvoxel.datasets: the HRF, the block design and the simulated run."""

import numpy as np
import pytest
from scipy import stats

from skvoxel import MassUnivariateOLS, VoxelMasker
from skvoxel.datasets import canonical_hrf, make_block_design, make_simulated_run


def test_canonical_hrf_is_spms_double_gamma_of_unit_area():
    """g(t; 6) - g(t; 16) / 6 scaled to area 1, zero outside [0, 32 s]."""
    t = np.arange(-2.0, 40.0, 0.001)
    h = canonical_hrf(t)
    # The densities' modes are 5 s and 15 s; their difference moves them a bit.
    assert t[np.argmax(h)] == pytest.approx(5.0, abs=0.01)
    assert 15.0 < t[np.argmin(h)] < 16.0
    assert h.sum() * 0.001 == pytest.approx(1.0, rel=1e-4)
    assert np.all(h[(t < 0) | (t > 32)] == 0)
    inside = (t >= 0) & (t <= 32)
    shape = stats.gamma.pdf(t[inside], 6) - stats.gamma.pdf(t[inside], 16) / 6
    scale = h[inside][5000] / shape[5000]
    np.testing.assert_allclose(h[inside], scale * shape, rtol=1e-12, atol=1e-15)


def test_block_design_columns():
    """Task (rest first), Legendre drifts over [-1, 1], and a constant."""
    X, names = make_block_design(60, 2.0, block_volumes=10, drift_order=3)
    assert names == ["task", "drift_1", "drift_2", "drift_3", "constant"]
    assert X.shape == (60, 5)
    time = np.linspace(-1, 1, 60)
    np.testing.assert_allclose(X[:, 1], time)
    np.testing.assert_allclose(X[:, 2], (3 * time**2 - 1) / 2)
    np.testing.assert_allclose(X[:, 4], 1.0)
    # Nothing before the first task block starts (volume 10) plus the HRF's lag.
    np.testing.assert_array_equal(X[:11, 0], 0.0)
    assert X[15:20, 0].min() > 0.9


def test_block_design_task_plateaus_at_one():
    """A long block's response settles at 1: the coefficient is the signal change."""
    X, _ = make_block_design(100, 1.0, block_volumes=50, drift_order=0)
    # To the accuracy of the convolution's Riemann sum (steps of 1/16 volume).
    assert X[-1, 0] == pytest.approx(1.0, abs=1e-5)
    assert X.shape == (100, 2)


@pytest.fixture(scope="module")
def small_run():
    """A small simulated run (fast), seed 3."""
    return make_simulated_run(shape=(24, 28, 16), n_volumes=80, seed=3)


def test_simulated_run_shapes_and_dtypes(small_run):
    """Images samples-first float32; masks boolean; an RAS affine centred on 0."""
    run = small_run
    assert run.images.shape == (80, 24, 28, 16) and run.images.dtype == np.float32
    assert run.design.shape == (80, 4)
    assert run.regressor_names == ["task", "drift_1", "drift_2", "constant"]
    assert run.brain.dtype == bool and run.activation.dtype == bool
    assert np.all(run.brain[run.activation])
    assert 0.1 < run.activation.sum() / run.brain.sum() < 0.3
    np.testing.assert_allclose(np.diag(run.affine), [3.0, 3.0, 3.0, 1.0])
    centre = run.affine @ [11.5, 13.5, 7.5, 1.0]
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-12)
    assert run.repetition_time == 2.0


def test_simulated_run_is_reproducible(small_run):
    """The same seed gives the same run; another seed another one."""
    again = make_simulated_run(shape=(24, 28, 16), n_volumes=80, seed=3)
    other = make_simulated_run(shape=(24, 28, 16), n_volumes=80, seed=4)
    np.testing.assert_array_equal(again.images, small_run.images)
    assert not np.array_equal(other.images, small_run.images)


def test_simulated_run_has_the_stated_baseline_noise_and_effect(small_run):
    """Brain around 1000, background Rayleigh of scale 20, effect and noise 1.5 %."""
    run = small_run
    Y = run.images[:, run.brain]
    background = run.images[:, ~run.brain]
    assert 800 < Y.mean() < 1200
    assert background.min() >= 0
    # A Rayleigh variable of scale s has mean s * sqrt(pi / 2).
    assert background.mean() == pytest.approx(20 * np.sqrt(np.pi / 2), rel=0.01)
    model = MassUnivariateOLS().fit(run.design, Y)
    baseline = model.coef_[3]
    response = model.coef_[0] / baseline * 100  # percent signal change
    active = run.activation[run.brain]
    assert np.median(response[active]) == pytest.approx(1.5, abs=0.05)
    assert np.median(response[~active]) == pytest.approx(0.0, abs=0.05)
    noise = np.sqrt(model.sigma2_) / baseline * 100
    assert np.median(noise) == pytest.approx(1.5, rel=0.02)


def test_epi_mask_of_the_simulated_run_is_its_brain(small_run):
    """VoxelMasker's EPI strategy separates the brain from the background."""
    run = small_run
    masker = VoxelMasker(mask_strategy="epi").fit(run.images)
    np.testing.assert_array_equal(masker.mask_, run.brain)
