"""Tests for skvoxel.linear_model.MassUnivariateOLS: fit, predict, score, errors."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from skvoxel import MassUnivariateOLS

from .conftest import make_design, make_voxels


def seed_design():
    """The seed notebook's design: a linear trend and a constant, 12 rows."""
    X = np.ones((12, 2))
    X[:, 0] = np.linspace(-1, 1, 12)
    return X


def explicit_rss(X, Y, coef, intercept=0.0, sample_weight=None):
    """Residual sum of squares written out, weights included."""
    residuals = Y - X @ coef - intercept
    weights = 1.0 if sample_weight is None else sample_weight[:, None]
    return (weights * residuals**2).sum(axis=0)


# --- The seed example ---------------------------------------------------------


def test_seed_example(rng):
    """pinv_ is pinv(X); coef_ is (2, 3): slopes, intercepts, a column per y_k."""
    X = seed_design()
    ys = [rng.normal(size=12) for _ in range(3)]
    Y = np.stack(ys, axis=1)
    model = MassUnivariateOLS().fit(X, Y)
    np.testing.assert_allclose(model.pinv_, np.linalg.pinv(X), rtol=1e-14, atol=1e-16)
    assert model.coef_.shape == (2, 3)
    for k, y_k in enumerate(ys):
        np.testing.assert_allclose(
            model.coef_[:, k], np.linalg.pinv(X) @ y_k, rtol=1e-12
        )
        slope, intercept = np.polyfit(X[:, 0], y_k, deg=1)
        np.testing.assert_allclose(model.coef_[0, k], slope, rtol=1e-10)
        np.testing.assert_allclose(model.coef_[1, k], intercept, rtol=1e-10)
    assert model.rank_ == 2
    assert model.df_resid_ == 10


# --- Agreement with independent solvers (hypothesis) -------------------------


@st.composite
def regression_problems(draw):
    """Random, rank-deficient, weighted and float32 problems."""
    seed = draw(st.integers(0, 2**32 - 1))
    n_regressors = draw(st.integers(1, 6))
    n_samples = draw(st.integers(2, 30))
    n_voxels = draw(st.integers(1, 25))
    rank_deficient = draw(st.booleans()) and n_regressors >= 3
    weighted = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_regressors))
    if rank_deficient:
        X[:, -1] = X[:, 0] - 2 * X[:, 1]
    Y = make_voxels(X, n_voxels, rng=rng, baseline=3.0)
    weights = rng.uniform(0.2, 4.0, size=n_samples) if weighted else None
    return X.astype(dtype), Y.astype(dtype), weights


def reference_fit(X, Y, sample_weight):
    """Float64 least squares on the same values: lstsq, LinearRegression, bound.

    The rank cut-off is the one documented for the working dtype, and the
    tolerance is the least-squares perturbation bound, ``eps * cond(X)**2``
    (scaled by the problem size), for that dtype.
    """
    dtype = X.dtype
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    sqrt_w = np.ones(len(X)) if sample_weight is None else np.sqrt(sample_weight)
    Xw = X64 * sqrt_w[:, None]
    rcond = max(X.shape) * np.finfo(dtype).eps
    lstsq, _, rank, s = np.linalg.lstsq(Xw, Y64 * sqrt_w[:, None], rcond=rcond)
    lin = LinearRegression(fit_intercept=False).fit(
        X64, Y64, sample_weight=sample_weight
    )
    cond = s[0] / s[rank - 1]
    tol = 50 * max(X.shape) * np.finfo(dtype).eps * cond**2
    return lstsq, lin.coef_.T, rank, tol


@settings(max_examples=150, deadline=None)
@given(problem=regression_problems())
def test_coef_matches_linear_regression_and_lstsq(problem):
    """coef_ equals lstsq and LinearRegression's coef_.T; rss_ the explicit sum."""
    X, Y, w = problem
    model = MassUnivariateOLS().fit(X, Y, sample_weight=w)
    assert model.coef_.dtype == X.dtype
    lstsq, lin_coef, rank, tol = reference_fit(X, Y, w)
    scale = np.abs(lstsq).max() + 1.0
    np.testing.assert_allclose(model.coef_, lstsq, rtol=tol, atol=tol * scale)
    if X.dtype == np.float64:
        # LinearRegression (scipy's gelsd) cuts at float64 precision only.
        np.testing.assert_allclose(model.coef_, lin_coef, rtol=tol, atol=tol * scale)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    rss = explicit_rss(X64, Y64, model.coef_.astype(np.float64), sample_weight=w)
    rss_scale = (Y64**2).sum(axis=0).max()
    np.testing.assert_allclose(model.rss_, rss, rtol=tol, atol=tol * rss_scale)
    assert model.rank_ == rank
    assert model.df_resid_ == X.shape[0] - model.rank_


@settings(max_examples=60, deadline=None)
@given(
    problem=regression_problems(),
    chunk_size=st.integers(1, 30),
    n_jobs=st.sampled_from([None, 1, 2, 3, -1]),
)
def test_every_chunk_size_and_thread_count_gives_the_same_fit(
    problem, chunk_size, n_jobs
):
    """Any block size and thread count gives the one-block result, to rounding."""
    X, Y, w = problem
    whole = MassUnivariateOLS(chunk_size=Y.shape[1]).fit(X, Y, sample_weight=w)
    blocked = MassUnivariateOLS(chunk_size=chunk_size, n_jobs=n_jobs).fit(
        X, Y, sample_weight=w
    )
    # Only the summation order inside BLAS may change with the block width.
    rtol = 50 * np.finfo(X.dtype).eps * X.shape[0]
    atol = rtol * (np.abs(whole.coef_).max() + 1.0)
    np.testing.assert_allclose(blocked.coef_, whole.coef_, rtol=rtol, atol=atol)
    rss_atol = rtol * (Y.astype(np.float64) ** 2).sum(axis=0).max()
    np.testing.assert_allclose(blocked.rss_, whole.rss_, rtol=rtol, atol=rss_atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_block_statistics_equal_the_one_block_fit(rng, dtype, n_jobs):
    """R^2, sigma2_, the zero-variance voxels and the t maps built on them are
    the same whether blocks of 7 voxels, on any thread, or one block give
    them: exact fits and constant voxels sit in several blocks."""
    X = make_design(40, 3, rng=rng)
    Y = make_voxels(X, 60, rng=rng, baseline=100.0)
    Y[:, [3, 17, 18, 44]] = X @ rng.normal(size=(3, 4))  # exact fits
    Y[:, [9, 58]] = 5.0  # constant voxels
    Y = Y.astype(dtype)
    whole = MassUnivariateOLS(chunk_size=60).fit(X, Y)
    blocked = MassUnivariateOLS(chunk_size=7, n_jobs=n_jobs).fit(X, Y)
    np.testing.assert_array_equal(blocked._zero_variance_index, [3, 9, 17, 18, 44, 58])
    np.testing.assert_array_equal(
        blocked._zero_variance_index, whole._zero_variance_index
    )
    rtol = 50 * np.finfo(dtype).eps * X.shape[0]
    np.testing.assert_allclose(
        blocked._zero_variance_norm, whole._zero_variance_norm, rtol=rtol
    )
    # Rounding in rss is relative to the sum of squares it came from.
    Y64 = Y.astype(np.float64)
    sum_squares = (Y64**2).sum(axis=0)
    centred = ((Y64 - Y64.mean(axis=0)) ** 2).sum(axis=0)
    atol = rtol * sum_squares.max() / whole.df_resid_
    np.testing.assert_allclose(blocked.sigma2_, whole.sigma2_, rtol=rtol, atol=atol)
    spread = np.divide(sum_squares, centred, out=np.ones(60), where=centred > 0)
    r2_error = np.abs(blocked.r2_ - whole.r2_)
    np.testing.assert_array_less(r2_error, rtol * spread + 1e-300)
    zero = [3, 9, 17, 18, 44, 58]
    np.testing.assert_array_equal(blocked.r2_[zero], np.ones(6))
    np.testing.assert_array_equal(blocked.sigma2_[zero] <= atol, np.ones(6, bool))
    t_whole, t_blocked = (m.t_test([1.0, -1.0, 0.0]).stat for m in (whole, blocked))
    np.testing.assert_array_equal(t_blocked[zero], t_whole[zero])


def test_fit_intercept_matches_linear_regression(rng):
    """With fit_intercept the constant goes to intercept_, as in LinearRegression."""
    X = make_design(50, 3, rng=rng, constant=False)
    Y = make_voxels(X, 30, rng=rng, baseline=100.0)
    model = MassUnivariateOLS(fit_intercept=True).fit(X, Y)
    lin = LinearRegression().fit(X, Y)
    np.testing.assert_allclose(model.coef_, lin.coef_.T, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, lin.intercept_, rtol=1e-12)
    assert model.pinv_.shape == (4, 50)
    np.testing.assert_allclose(model.pinv_[-1] @ Y, model.intercept_, rtol=1e-12)
    # rank_ and singular values count the constant column, unlike LinearRegression.
    assert model.rank_ == 4
    assert model.singular_values_.shape == (4,)
    assert model.df_resid_ == 46
    rss = explicit_rss(X, Y, model.coef_, model.intercept_)
    np.testing.assert_allclose(model.rss_, rss, rtol=1e-10)
    np.testing.assert_allclose(model.sigma2_, rss / 46, rtol=1e-10)


def test_weighted_fit_intercept_matches_linear_regression(rng):
    """Weights and intercept together match LinearRegression with sample_weight."""
    X = make_design(40, 2, rng=rng, constant=False)
    Y = make_voxels(X, 10, rng=rng, baseline=5.0)
    w = rng.uniform(0.5, 2.0, size=40)
    model = MassUnivariateOLS(fit_intercept=True).fit(X, Y, sample_weight=w)
    lin = LinearRegression().fit(X, Y, sample_weight=w)
    np.testing.assert_allclose(model.coef_, lin.coef_.T, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, lin.intercept_, rtol=1e-10)


def test_zero_weight_equals_dropping_the_sample(rng):
    """A sample of weight zero is as if absent, degrees of freedom included."""
    X = make_design(30, 3, rng=rng)
    Y = make_voxels(X, 8, rng=rng)
    w = np.ones(30)
    w[[4, 17]] = 0.0
    weighted = MassUnivariateOLS().fit(X, Y, sample_weight=w)
    keep = w > 0
    dropped = MassUnivariateOLS().fit(X[keep], Y[keep])
    np.testing.assert_allclose(weighted.coef_, dropped.coef_, rtol=1e-10)
    np.testing.assert_allclose(weighted.rss_, dropped.rss_, rtol=1e-10)
    assert weighted.df_resid_ == dropped.df_resid_ == 25
    np.testing.assert_allclose(weighted.sigma2_, dropped.sigma2_, rtol=1e-10)


def test_rank_deficient_uses_the_rank(rng):
    """A redundant column gives the minimum-norm fit and df from the rank."""
    X = make_design(20, 3, rng=rng)
    X = np.column_stack([X, 2 * X[:, 0]])
    Y = make_voxels(X, 5, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    assert model.rank_ == 3
    assert model.df_resid_ == 17
    np.testing.assert_allclose(
        model.coef_, np.linalg.pinv(X) @ Y, rtol=1e-9, atol=1e-12
    )


def test_more_regressors_than_samples(rng):
    """p > n still fits coefficients; the residual variance is NaN (df 0)."""
    X = rng.normal(size=(5, 8))
    Y = rng.normal(size=(5, 4))
    model = MassUnivariateOLS().fit(X, Y)
    assert model.rank_ == 5
    assert model.df_resid_ == 0
    np.testing.assert_allclose(model.predict(X), Y, atol=1e-10)
    assert np.all(np.isnan(model.sigma2_))


def test_one_dimensional_y(rng):
    """1-D y gives a vector coef_ and scalar intercept_, rss_, sigma2_."""
    X = make_design(30, 3, rng=rng, constant=False)
    y = make_voxels(X, 1, rng=rng, baseline=2.0)[:, 0]
    model = MassUnivariateOLS(fit_intercept=True).fit(X, y)
    assert model.coef_.shape == (3,)
    assert isinstance(model.intercept_, float)
    assert isinstance(model.rss_, float)
    assert isinstance(model.sigma2_, float)
    assert model.predict(X).shape == (30,)
    both = MassUnivariateOLS(fit_intercept=True).fit(X, y[:, None])
    np.testing.assert_allclose(model.coef_, both.coef_[:, 0], rtol=1e-13)
    np.testing.assert_allclose(model.rss_, both.rss_[0], rtol=1e-13)


@pytest.mark.parametrize(
    ("x_dtype", "y_dtype", "expected"),
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.float64, np.int16, np.float64),
    ],
)
def test_dtypes(rng, x_dtype, y_dtype, expected):
    """float32 data stay float32; other data compute in float64."""
    X = make_design(20, 2, rng=rng).astype(x_dtype)
    Y = (100 * rng.normal(size=(20, 4))).astype(y_dtype)
    model = MassUnivariateOLS(fit_intercept=True).fit(X, Y)
    for name in ("pinv_", "coef_", "intercept_", "rss_", "sigma2_"):
        assert getattr(model, name).dtype == expected, name


def test_dataframe_design_gives_feature_names(rng):
    """A DataFrame's columns become feature_names_in_."""
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_design(20, 3, rng=rng), columns=["faces", "houses", "const"])
    Y = make_voxels(X.to_numpy(), 4, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    np.testing.assert_array_equal(model.feature_names_in_, ["faces", "houses", "const"])
    assert model.n_features_in_ == 3
    np.testing.assert_allclose(model.predict(X), X.to_numpy() @ model.coef_)


def test_memmap_data_gives_the_in_memory_fit(rng, tmp_path):
    """A numpy.memmap y, read block by block, fits as the array in memory."""
    X = make_design(40, 3, rng=rng)
    Y = make_voxels(X, 300, rng=rng)
    mapped = np.memmap(tmp_path / "y.dat", dtype=np.float64, mode="w+", shape=Y.shape)
    mapped[:] = Y
    mapped.flush()
    mapped = np.memmap(tmp_path / "y.dat", dtype=np.float64, mode="r", shape=Y.shape)
    from_disk = MassUnivariateOLS(chunk_size=64).fit(X, mapped)
    in_memory = MassUnivariateOLS(chunk_size=64).fit(X, Y)
    np.testing.assert_array_equal(from_disk.coef_, in_memory.coef_)
    np.testing.assert_array_equal(from_disk.rss_, in_memory.rss_)
    assert type(from_disk.coef_) is np.ndarray


def test_float32_memmap_gives_the_in_memory_fit_to_rounding(rng, tmp_path):
    """A float32 memmap is shifted block by block, in memory a strip at a
    time: the multiplies differ in width only, so the fits agree to float32
    rounding of sums (as any two chunk sizes do)."""
    X = make_design(60, 3, rng=rng)
    Y = make_voxels(X, 3_000, rng=rng, baseline=1000.0, noise=10.0)
    Y = Y.astype(np.float32)
    mapped = np.memmap(tmp_path / "y.dat", dtype=np.float32, mode="w+", shape=Y.shape)
    mapped[:] = Y
    mapped.flush()
    mapped = np.memmap(tmp_path / "y.dat", dtype=np.float32, mode="r", shape=Y.shape)
    from_disk = MassUnivariateOLS().fit(X, mapped)
    in_memory = MassUnivariateOLS().fit(X, Y)
    rtol = 50 * np.finfo(np.float32).eps * X.shape[0]
    # Rounding of a sum is relative to the sum of its terms' sizes.
    terms = np.abs(np.linalg.pinv(X)) @ np.abs(Y.astype(np.float64))
    np.testing.assert_array_less(
        np.abs(from_disk.coef_ - in_memory.coef_), rtol * terms + 1e-30
    )
    np.testing.assert_allclose(from_disk.rss_, in_memory.rss_, rtol=rtol)
    t_disk, t_memory = (m.t_test([1.0, 0.0, 0.0]).stat for m in (from_disk, in_memory))
    np.testing.assert_allclose(t_disk, t_memory, rtol=1e-4, atol=1e-4)


def test_predict_and_score(rng):
    """predict is X @ coef_ + intercept_; score is the mean R^2 over voxels."""
    X = make_design(60, 3, rng=rng)
    Y = make_voxels(X, 12, rng=rng, noise=2.0)
    model = MassUnivariateOLS().fit(X, Y)
    np.testing.assert_allclose(model.predict(X), X @ model.coef_)
    r2 = r2_score(Y, model.predict(X), multioutput="raw_values")
    np.testing.assert_allclose(model.score(X, Y), r2.mean())


def test_clone_and_pickle(rng):
    """A fitted model pickles with its results; clone gives an unfitted copy."""
    X = make_design(20, 2, rng=rng)
    Y = make_voxels(X, 3, rng=rng)
    model = MassUnivariateOLS(fit_intercept=True, chunk_size=2).fit(X, Y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params()
    assert not hasattr(fresh, "coef_")


# --- Bad input -----------------------------------------------------------------


def test_mismatched_sample_counts(rng):
    """X and y with different row counts: an error naming both counts."""
    X = make_design(20, 2, rng=rng)
    with pytest.raises(ValueError, match=r"X has 20 samples but y has 19"):
        MassUnivariateOLS().fit(X, rng.normal(size=(19, 3)))


def test_complex_inputs_are_refused_by_name(rng):
    """Complex X or y, in fit or predict: a ValueError naming the input
    (scikit-learn's own names neither and prints the whole array)."""
    X = make_design(20, 2, rng=rng)
    Y = rng.normal(size=(20, 3))
    model = MassUnivariateOLS()
    with pytest.raises(ValueError, match=r"^Complex data not supported: y has dtype"):
        model.fit(X, Y + 1j)
    with pytest.raises(ValueError, match=r"^Complex data not supported: X has dtype"):
        model.fit(X.astype(np.complex64), Y)
    model.fit(X, Y)
    with pytest.raises(ValueError, match=r"^Complex data not supported: X has dtype"):
        model.predict(X + 0j)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_design(rng, bad):
    """NaN or inf in X is rejected, naming X."""
    X = make_design(20, 2, rng=rng)
    X[3, 0] = bad
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        MassUnivariateOLS().fit(X, rng.normal(size=(20, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data(rng, bad):
    """NaN or inf in y is rejected, with the count of voxels and the first one."""
    X = make_design(20, 2, rng=rng)
    Y = rng.normal(size=(20, 5))
    Y[2, 3] = bad
    Y[7, 4] = bad
    with pytest.raises(
        ValueError,
        match=r"y contains NaN or inf .* in 2 of 5 voxels \(first: column 3\)",
    ):
        MassUnivariateOLS(chunk_size=2).fit(X, Y)


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(np.float64, 1e-160), (np.float64, 1e-200), (np.float32, 1e-25)],
)
def test_data_too_small_to_square(rng, dtype, scale):
    """Data whose squares underflow are rejected, not fitted to wrong t
    (1e-200 gave t = inf, 1e-160 t off by 1e-4), counting those voxels;
    all-zero voxels among them are fine."""
    X = make_design(20, 2, rng=rng)
    Y = make_voxels(X, 5, rng=rng)
    Y[:, [0, 3]] = 0.0
    with pytest.raises(
        ValueError,
        match=r"y has values too small to square in 3 of 5 voxels \(first: column 1\)",
    ):
        MassUnivariateOLS(chunk_size=2).fit(X, (Y * scale).astype(dtype))


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_weights_beyond_float32(rng, scale):
    """Weights whose factors overflow float32 are rejected for float32 data
    (t was -inf, with warnings only); float64 data fit as unscaled."""
    X = make_design(30, 3, rng=rng)
    Y = make_voxels(X, 4, rng=rng)
    weights = rng.uniform(0.2, 3.0, size=30)
    with pytest.raises(ValueError, match=r"beyond the range of float32.*Scale "):
        MassUnivariateOLS().fit(X, Y.astype(np.float32), sample_weight=weights * scale)
    expected = MassUnivariateOLS().fit(X, Y, sample_weight=weights)
    scaled = MassUnivariateOLS().fit(X, Y, sample_weight=weights * scale)
    np.testing.assert_allclose(
        scaled.t_test([1, 0, 0]).stat, expected.t_test([1, 0, 0]).stat, rtol=1e-10
    )


def test_weighted_data_too_small_to_square(rng):
    """float32 data weighted by 1e-45: the shifted squares are subnormal
    (t was 3 % off, silently); constant voxels are not counted."""
    X = make_design(40, 3, rng=rng)
    Y = make_voxels(X, 5, rng=rng, baseline=1000.0).astype(np.float32)
    Y[:, 2] = 1000.0  # constant: its shifted data are exactly 0
    weights = rng.uniform(0.2, 3.0, size=40)
    with pytest.raises(
        ValueError,
        match=r"y times the square roots of sample_weight has values too small "
        r"to square in 4 of 5 voxels \(first: column 0\)",
    ):
        MassUnivariateOLS().fit(X, Y, sample_weight=weights * 1e-45)
    expected = MassUnivariateOLS().fit(X, Y, sample_weight=weights)
    scaled = MassUnivariateOLS().fit(X, Y, sample_weight=weights * 1e-30)
    np.testing.assert_allclose(
        scaled.t_test([1, 0, 0]).stat, expected.t_test([1, 0, 0]).stat, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("dtype", "scale"), [(np.float64, 1e-150), (np.float32, 1e-15)]
)
def test_small_data_give_the_same_statistics(rng, dtype, scale):
    """Data far from 1 but squaring within range give the same t as at 1."""
    X = make_design(20, 2, rng=rng)
    Y = make_voxels(X, 5, rng=rng).astype(dtype)
    expected = MassUnivariateOLS().fit(X, Y).t_test([1, 0]).stat
    small = MassUnivariateOLS().fit(X, Y * dtype(scale))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(small.t_test([1, 0]).stat, expected, rtol=rtol)


def test_non_finite_design_at_predict(rng):
    """NaN in the design given to predict is rejected too."""
    X = make_design(20, 2, rng=rng)
    model = MassUnivariateOLS().fit(X, rng.normal(size=(20, 2)))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN"):
        model.predict(X)


def test_data_with_more_than_two_dimensions(rng):
    """Image-shaped y is rejected with its shape and the fix."""
    X = make_design(10, 2, rng=rng)
    with pytest.raises(
        ValueError, match=r"y has 4 dimensions \(shape \(10, 2, 3, 4\)\).*VoxelMasker"
    ):
        MassUnivariateOLS().fit(X, rng.normal(size=(10, 2, 3, 4)))


def test_empty_design(rng):
    """A design without columns is rejected."""
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(10, 0\)\)"):
        MassUnivariateOLS().fit(np.empty((10, 0)), rng.normal(size=(10, 3)))


def test_empty_data(rng):
    """Data without voxels, or without samples, is rejected."""
    X = make_design(10, 2, rng=rng)
    with pytest.raises(ValueError, match=r"y has shape \(10, 0\): 0 voxels"):
        MassUnivariateOLS().fit(X, np.empty((10, 0)))
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        MassUnivariateOLS().fit(np.empty((0, 2)), np.empty((0, 3)))


def test_negative_sample_weight(rng):
    """Negative weights are rejected, naming sample_weight."""
    X = make_design(10, 2, rng=rng)
    w = np.ones(10)
    w[2] = -1.0
    with pytest.raises(
        ValueError, match=r"Negative values in data passed to `sample_weight`"
    ):
        MassUnivariateOLS().fit(X, rng.normal(size=(10, 3)), sample_weight=w)


def test_all_zero_sample_weight(rng):
    """All-zero weights are an error."""
    X = make_design(10, 2, rng=rng)
    with pytest.raises(
        ValueError, match=r"Sample weights must contain at least one non-zero number"
    ):
        MassUnivariateOLS().fit(X, rng.normal(size=(10, 3)), sample_weight=np.zeros(10))


def test_sample_weight_of_wrong_length(rng):
    """Weights must have one entry per sample."""
    X = make_design(10, 2, rng=rng)
    with pytest.raises(
        ValueError, match=r"sample_weight.shape == \(9,\), expected \(10,\)"
    ):
        MassUnivariateOLS().fit(X, rng.normal(size=(10, 3)), sample_weight=np.ones(9))


def test_predict_with_wrong_regressor_count(rng):
    """predict names the expected and received regressor counts."""
    model = MassUnivariateOLS().fit(
        make_design(10, 3, rng=rng), rng.normal(size=(10, 2))
    )
    with pytest.raises(
        ValueError, match=r"X has 2 features, but MassUnivariateOLS is expecting 3"
    ):
        model.predict(make_design(10, 2, rng=rng))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": "big"}, "chunk_size"),
        ({"rcond": -1.0}, "rcond"),
        ({"fit_intercept": "yes"}, "fit_intercept"),
    ],
)
def test_invalid_parameters(rng, params, match):
    """Parameters are validated in fit, with the parameter named."""
    X = make_design(10, 2, rng=rng)
    with pytest.raises(ValueError, match=match):
        MassUnivariateOLS(**params).fit(X, rng.normal(size=(10, 2)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_inputs_are_not_modified(rng, dtype, fit_intercept):
    """fit, predict and score leave X, y and sample_weight as they were."""
    X = make_design(30, 3, rng=rng).astype(dtype)
    Y = make_voxels(X, 7, rng=rng).astype(dtype)
    w = rng.uniform(0.5, 2.0, size=30)
    copies = [a.copy() for a in (X, Y, w)]
    model = MassUnivariateOLS(fit_intercept=fit_intercept, chunk_size=3)
    model.fit(X, Y, sample_weight=w)
    model.predict(X)
    model.score(X, Y, sample_weight=w)
    model.fit(X, Y[:, 0])
    for original, copy in zip((X, Y, w), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


@pytest.mark.parametrize("weighted", [False, True])
def test_float32_t_values_match_float64_on_bold_like_data(rng, weighted):
    """Baseline 1000, 1 % effects: float32 t within 1e-3 relative of float64."""
    n_samples, n_voxels = 400, 3000
    X = make_design(n_samples, 20, rng=rng)
    beta = np.zeros((20, n_voxels))
    beta[0] = rng.uniform(-10.0, 10.0, size=n_voxels)  # up to 1 % of baseline
    beta[-1] = 1000.0
    Y = X @ beta + 10.0 * rng.normal(size=(n_samples, n_voxels))
    Y32 = Y.astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=n_samples) if weighted else None
    contrast = np.eye(20)[0]
    t64 = MassUnivariateOLS().fit(X, Y32.astype(np.float64), sample_weight=w)
    t32 = MassUnivariateOLS().fit(X.astype(np.float32), Y32, sample_weight=w)
    result64, result32 = t64.t_test(contrast), t32.t_test(contrast)
    assert result32.stat.dtype == np.float32
    np.testing.assert_allclose(result32.stat, result64.stat, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(t32.sigma2_, t64.sigma2_, rtol=1e-3)


def test_verbose_reports_progress_on_stderr(rng, capsys):
    """verbose=2 writes progress lines on stderr; the default writes nothing."""
    X = make_design(30, 3, rng=rng)
    Y = make_voxels(X, 400, rng=rng)
    quiet = MassUnivariateOLS(chunk_size=40).fit(X, Y)
    assert capsys.readouterr().err == ""
    chatty = MassUnivariateOLS(chunk_size=40, verbose=2).fit(X, Y)
    err = capsys.readouterr().err
    assert "MassUnivariateOLS.fit: done, 400 voxels" in err
    assert "50% (200 of 400 voxels" in err
    np.testing.assert_array_equal(quiet.coef_, chatty.coef_)


@pytest.mark.parametrize(
    ("n_samples", "n_voxels", "n_regressors"),
    [(400, 200_000, 20), (100, 500_000, 5), (2_000, 50_000, 50)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_and_strips_keep_working_memory_within_its_share(
    n_samples, n_voxels, n_regressors, dtype
):
    """Shifted blocks are large views copied a strip at a time: the strips'
    buffers and the blocks' working rows hold at most WORK_SHARE of the data
    together, half each; but where rows of STRIP_ROW_BYTES fit a strip of
    STRIP_BYTES, strips widen to them (wide rows read faster), up to
    WORK_SHARE on their own. Unshifted blocks have no strip."""
    from skvoxel import _chunking
    from skvoxel.linear_model import STRIP_BYTES, STRIP_ROW_BYTES, _block_and_strip

    data = np.lib.stride_tricks.as_strided(  # no memory: only shapes matter
        np.zeros(1, dtype=dtype), (n_samples, n_voxels), (0, 0)
    )
    work_rows = n_regressors + 3
    share = _chunking.WORK_SHARE
    long_rows_fit = n_samples * STRIP_ROW_BYTES <= STRIP_BYTES
    for shifted in (False, True):
        n_block, n_strip = _block_and_strip(
            "auto", data, np.dtype(dtype), 2, shifted=shifted, n_work_rows=work_rows
        )
        assert (n_strip is not None) == shifted
        rows_bytes = 2 * n_block * work_rows * data.itemsize
        assert rows_bytes <= (share / 2 if shifted else share) * data.nbytes
        strips_bytes = 2 * (n_strip or 0) * n_samples * data.itemsize
        assert strips_bytes <= (share if long_rows_fit else share / 2) * data.nbytes
        if shifted and long_rows_fit:  # as wide as that share or those rows allow
            widest = min(share * data.nbytes, 2 * n_samples * STRIP_ROW_BYTES)
            assert strips_bytes > widest - 2 * n_samples * data.itemsize
        assert n_block >= (n_strip or 0)
        assert -(-n_voxels // n_block) >= 8  # four blocks a thread at least
