"""Tests for skvoxel._ols: the design factorisation and the block kernel."""

import numpy as np
import pytest

from skvoxel._ols import (
    BlockBuffers,
    block_kernel,
    factor_design,
    fit_block,
    reads_in_place,
    working_dtype,
)

from .conftest import make_design, make_voxels


def test_pinv_matches_numpy(rng):
    """An unweighted full-rank design gives numpy's pinv, rank and singular values."""
    X = make_design(30, 4, rng=rng)
    factors = factor_design(X)
    np.testing.assert_allclose(factors.pinv, np.linalg.pinv(X), rtol=1e-14, atol=1e-15)
    assert factors.rank == np.linalg.matrix_rank(X) == 4
    np.testing.assert_allclose(
        factors.singular_values, np.linalg.svd(X, compute_uv=False), rtol=1e-14
    )


def test_rank_deficient_design(rng):
    """A column that is a sum of two others lowers the rank; cov is pinv(X'X)."""
    X = make_design(30, 4, rng=rng)
    X = np.column_stack([X, X[:, 0] + X[:, 1]])
    factors = factor_design(X)
    assert factors.rank == np.linalg.matrix_rank(X) == 4
    np.testing.assert_allclose(
        factors.cov_unscaled, np.linalg.pinv(X.T @ X), rtol=1e-8, atol=1e-12
    )
    # The row space holds the rows of X and nothing orthogonal to them.
    projector = factors.row_space @ factors.row_space.T
    np.testing.assert_allclose(projector @ X[3], X[3], atol=1e-12)
    null_direction = np.array([1.0, 1.0, 0.0, 0.0, -1.0])
    np.testing.assert_allclose(projector @ null_direction, 0.0, atol=1e-12)


def test_weighted_pinv(rng):
    """With weights the map is pinv(W^1/2 X) W^1/2."""
    X = make_design(25, 3, rng=rng)
    w = rng.uniform(0.1, 3.0, size=25)
    factors = factor_design(X, w)
    sqrt_w = np.sqrt(w)
    expected = np.linalg.pinv(X * sqrt_w[:, None]) * sqrt_w
    np.testing.assert_allclose(factors.pinv, expected, rtol=1e-12, atol=1e-14)


def test_zero_design_has_rank_zero():
    """An all-zero design has rank 0 and a zero pseudo-inverse."""
    factors = factor_design(np.zeros((5, 2)))
    assert factors.rank == 0
    np.testing.assert_array_equal(factors.pinv, 0.0)


def kernel_for(X, sample_weight=None, dtype=np.float64):
    """The block kernel of a design, as the estimator builds it."""
    factors = factor_design(X, sample_weight, dtype=dtype)
    return block_kernel(factors, sample_weight, dtype)


@pytest.mark.parametrize("constant", [True, False])
def test_fit_block_coef_and_sums(rng, constant):
    """The kernel gives pinv @ Y and the explicit sums of squares."""
    X = make_design(40, 3, rng=rng, constant=constant)
    Y = make_voxels(X, 20, rng=rng, baseline=1000.0)
    fit = fit_block(kernel_for(X), Y)
    np.testing.assert_allclose(fit.coef, np.linalg.pinv(X) @ Y, rtol=1e-11)
    # Unshifted float64 sums keep rss >= 1e-6 of ||y||^2, so ~1e-9 relative.
    residuals = Y - X @ fit.coef
    np.testing.assert_allclose(fit.rss, (residuals**2).sum(axis=0), rtol=1e-8)
    centred = Y - Y.mean(axis=0)
    np.testing.assert_allclose(fit.tss, (centred**2).sum(axis=0), rtol=1e-8)
    np.testing.assert_allclose(fit.sum_squares, (Y**2).sum(axis=0), rtol=1e-12)


def test_fit_block_weighted_sums(rng):
    """With weights every sum of squares is weighted, about the weighted mean."""
    X = make_design(30, 2, rng=rng)
    Y = make_voxels(X, 4, rng=rng, baseline=50.0)
    w = rng.uniform(0.1, 2.0, size=30)
    w[0] = 0.0  # the shift row may carry no weight
    fit = fit_block(kernel_for(X, w), Y)
    sqrt_w = np.sqrt(w)[:, None]
    np.testing.assert_allclose(
        fit.coef, np.linalg.lstsq(X * sqrt_w, Y * sqrt_w, rcond=None)[0], rtol=1e-10
    )
    mean = np.average(Y, axis=0, weights=w)
    expected_tss = (w[:, None] * (Y - mean) ** 2).sum(axis=0)
    np.testing.assert_allclose(fit.tss, expected_tss, rtol=1e-11)
    np.testing.assert_allclose(fit.sum_squares, (w[:, None] * Y**2).sum(0), rtol=1e-12)
    expected_rss = (w[:, None] * (Y - X @ fit.coef) ** 2).sum(axis=0)
    np.testing.assert_allclose(fit.rss, expected_rss, rtol=1e-10)


def test_fit_block_float32_keeps_precision_on_bold_like_data(rng):
    """Baseline 1000, 1 % signal: float32 rss within 1e-4 of float64's."""
    X = make_design(400, 20, rng=rng)
    Y = make_voxels(X, 300, rng=rng, baseline=1000.0, noise=10.0)
    Y = Y.astype(np.float32)
    exact = fit_block(kernel_for(X), Y.astype(np.float64))
    single = fit_block(kernel_for(X, dtype=np.float32), Y)
    assert single.rss.dtype == np.float32
    np.testing.assert_allclose(single.rss, exact.rss, rtol=1e-4)
    np.testing.assert_allclose(single.tss, exact.tss, rtol=1e-4)


def test_fit_block_reuses_buffers_and_reads_integers(rng):
    """Buffers wider than the block are used in part; int16 data convert."""
    X = make_design(30, 3, rng=rng)
    Y = (1000 + 10 * rng.normal(size=(30, 7))).astype(np.int16)
    buffers = BlockBuffers()
    for name, n_rows in (("shifted", 30), ("coordinates", 4), ("mean", 1)):
        buffers.get(name, n_rows, np.float64, 16)[:] = np.nan
    fit_block(kernel_for(X), Y[:, ::-1], buffers)  # leaves other values behind
    with_scratch = fit_block(kernel_for(X), Y, buffers)
    alone = fit_block(kernel_for(X), Y)
    for mine, reference in zip(with_scratch, alone, strict=True):
        np.testing.assert_array_equal(mine, reference)
    as_float = fit_block(kernel_for(X), Y.astype(np.float64))
    np.testing.assert_allclose(with_scratch.coef, as_float.coef, rtol=1e-12)
    np.testing.assert_allclose(with_scratch.rss, as_float.rss, rtol=1e-8)


@pytest.mark.parametrize(
    ("dtype", "weighted"),
    [(np.float32, False), (np.float32, True), (np.float64, True)],
)
@pytest.mark.parametrize("strip", [1, 7, 64, 1000])
def test_shifting_in_strips_equals_shifting_whole_blocks(rng, dtype, weighted, strip):
    """Strips of any width (one voxel, uneven, wider than the block) give the
    whole block's results: coefficients, sums and the redone voxels (constant,
    exactly fitted) alike, for every fit that shifts its blocks."""
    X = make_design(40, 3, rng=rng)
    Y = make_voxels(X, 90, rng=rng, baseline=1000.0)
    Y[:, [5, 70]] = 321.0  # constant: redone
    Y[:, [8, 9, 63]] = X @ rng.normal(size=(3, 3))  # exact fits: redone
    Y = Y.astype(dtype)
    w = rng.uniform(0.5, 2.0, size=40) if weighted else None
    assert not reads_in_place(Y, dtype, w)  # these fits shift their blocks
    kernel = kernel_for(X, w, dtype=dtype)
    whole = fit_block(kernel, Y)
    strips = fit_block(kernel, Y, BlockBuffers(), strip=strip)
    # Only BLAS's summation order may differ with the multiply's width.
    rtol = 50 * np.finfo(dtype).eps * 40
    scale = float((Y.astype(np.float64) ** 2).sum(axis=0).max())
    for name, mine, reference in zip(whole._fields, strips, whole, strict=True):
        atol = rtol * (scale if name != "coef" else 1000.0)
        np.testing.assert_allclose(mine, reference, rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_array_equal(strips.rss[[5, 70]], 0.0)


def test_fit_block_flags_non_finite_data(rng):
    """NaN or inf in a column makes exactly that column's rss non-finite."""
    X = make_design(40, 3, rng=rng)
    Y = make_voxels(X, 6, rng=rng)
    Y[3, 1] = np.nan
    Y[0, 4] = np.inf
    Y[7, 5] = -np.inf
    rss = fit_block(kernel_for(X), Y).rss
    np.testing.assert_array_equal(
        np.isfinite(rss), [True, False, True, True, False, False]
    )


def test_fit_block_redoes_near_perfect_fits_with_the_shift(rng):
    """Voxels fitted almost exactly keep full precision (the shifted redo)."""
    X = make_design(50, 3, rng=rng)
    Y = 1000.0 + X @ rng.normal(size=(3, 6)) + 1e-5 * rng.normal(size=(50, 6))
    fit = fit_block(kernel_for(X), Y)
    residuals = Y - X @ np.linalg.lstsq(X, Y, rcond=None)[0]
    np.testing.assert_allclose(fit.rss, (residuals**2).sum(axis=0), rtol=1e-6)


def test_fit_block_redoes_baseline_dominated_voxels_with_shifted_sums(rng):
    """A baseline of 1e5 against noise of 1 (rss 1e-10 of ||y||^2): the
    shifted sums keep rss to 1e-8, in blocks of any size and mixed with
    ordinary voxels."""
    X = make_design(60, 3, rng=rng)
    Y = make_voxels(X, 5000, rng=rng, baseline=1e5, noise=1.0)
    Y[:, ::3] = make_voxels(X, 1667, rng=rng, baseline=10.0, noise=1.0)
    residuals = Y - X @ np.linalg.lstsq(X, Y, rcond=None)[0]
    expected = (residuals**2).sum(axis=0)
    fit = fit_block(kernel_for(X), Y)
    np.testing.assert_allclose(fit.rss, expected, rtol=1e-8)
    # Coefficients err by eps-ish of the data's scale (1e5), not of their own.
    np.testing.assert_allclose(
        fit.coef, np.linalg.pinv(X) @ Y, rtol=1e-10, atol=1e-15 * 1e5 * 1e3
    )
    np.testing.assert_allclose(fit.sum_squares, (Y**2).sum(axis=0), rtol=1e-12)


def test_fit_block_constant_voxel_has_zero_rss(rng):
    """A constant voxel's shifted data vanish: rss and tss are exactly 0."""
    X = make_design(20, 3, rng=rng)
    fit = fit_block(kernel_for(X), np.full((20, 2), 1234.5))
    np.testing.assert_array_equal(fit.rss, 0.0)
    np.testing.assert_array_equal(fit.tss, 0.0)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int16, np.float64),
        (np.float16, np.float64),
    ],
)
def test_working_dtype(given, expected):
    """float32 stays float32; everything else computes in float64."""
    assert working_dtype(given) == expected


def test_block_buffers_are_reused_while_they_fit():
    """A buffer is kept while requests fit in it, and made anew when not."""
    buffers = BlockBuffers()
    first = buffers.get("a", 4, np.float64, 10)
    assert first.shape == (4, 10)
    assert np.shares_memory(buffers.get("a", 3, np.float64, 7), first)
    wider = buffers.get("a", 4, np.float64, 12)
    assert wider.shape == (4, 12) and not np.shares_memory(wider, first)
    assert buffers.get("a", 4, np.float32, 12).dtype == np.float32
    assert not np.shares_memory(buffers.get("b", 4, np.float32, 12), wider)
