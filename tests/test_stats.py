"""Tests for skvoxel.stats and MassUnivariateOLS.t_test / f_test.

Statistics are checked against independent references: statsmodels and
nilearn on nibabel's real fMRI run, high-precision tail values, and the null
distribution of p-values.
"""

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from sklearn.metrics import r2_score

from skvoxel import ContrastResult, MassUnivariateOLS
from skvoxel.stats import (
    adjust_p_values,
    contrast_matrix,
    f_statistics,
    z_from_f,
    z_from_t,
)

from .conftest import make_design, make_voxels

RTOL = 1e-8  # agreement with independent float64 references

# --- References on real data -----------------------------------------------------


@pytest.fixture(params=["scipy", "tables"])
def tails_from(request, monkeypatch):
    """p and z from scipy, or (as for maps of 32,768 values and more) from the
    tables of skvoxel._distributions, here on maps of any size."""
    from skvoxel import _distributions

    if request.param == "tables":
        monkeypatch.setattr(_distributions, "TABLE_FROM", 0)
    return request.param


@pytest.fixture(scope="module")
def statsmodels_fits(functional_run):
    """statsmodels OLS fitted voxel by voxel on the real run."""
    sm = pytest.importorskip("statsmodels.api")
    design, Y = functional_run
    return [sm.OLS(Y[:, j], design).fit() for j in range(Y.shape[1])]


def test_real_run_matches_statsmodels_ols(functional_run, statsmodels_fits, tails_from):
    """Coefficients, stderr, t, p, rss and R^2 equal statsmodels at every voxel."""
    design, Y = functional_run
    model = MassUnivariateOLS().fit(design, Y)
    sm_params = np.array([fit.params for fit in statsmodels_fits]).T
    np.testing.assert_allclose(model.coef_, sm_params, rtol=RTOL)
    np.testing.assert_allclose(
        model.rss_, [fit.ssr for fit in statsmodels_fits], rtol=RTOL
    )
    np.testing.assert_allclose(
        model.r2_, [fit.rsquared for fit in statsmodels_fits], rtol=RTOL
    )
    for k, name in enumerate(design.columns):
        result = model.t_test(name)
        np.testing.assert_allclose(
            result.stderr, [fit.bse.iloc[k] for fit in statsmodels_fits], rtol=RTOL
        )
        np.testing.assert_allclose(
            result.stat, [fit.tvalues.iloc[k] for fit in statsmodels_fits], rtol=RTOL
        )
        np.testing.assert_allclose(
            result.p_value, [fit.pvalues.iloc[k] for fit in statsmodels_fits], rtol=RTOL
        )


def test_real_run_contrasts_match_statsmodels(
    functional_run, statsmodels_fits, tails_from
):
    """t (two- and one-sided) and a 2-row F equal statsmodels' t_test / f_test."""
    design, Y = functional_run
    model = MassUnivariateOLS().fit(design, Y)
    vector = np.array([1.0, -0.5, 0.0, 0.0])
    two_sided = model.t_test("task - 0.5*drift_1")
    greater = model.t_test(vector, alternative="greater")
    less = model.t_test(vector, alternative="less")
    sm_t = [fit.t_test(vector) for fit in statsmodels_fits]
    sm_stat = np.array([float(np.squeeze(r.tvalue)) for r in sm_t])
    np.testing.assert_allclose(
        two_sided.effect, [float(np.squeeze(r.effect)) for r in sm_t], rtol=RTOL
    )
    np.testing.assert_allclose(
        two_sided.stderr, [float(np.squeeze(r.sd)) for r in sm_t], rtol=RTOL
    )
    np.testing.assert_allclose(two_sided.stat, sm_stat, rtol=RTOL)
    np.testing.assert_allclose(
        two_sided.p_value, [float(np.squeeze(r.pvalue)) for r in sm_t], rtol=RTOL
    )
    # One-sided: statsmodels reports two-sided only; its t on the t law's tails.
    df = statsmodels_fits[0].df_resid
    np.testing.assert_allclose(
        greater.p_value, scipy_stats.t.sf(sm_stat, df), rtol=RTOL
    )
    np.testing.assert_allclose(less.p_value, scipy_stats.t.cdf(sm_stat, df), rtol=RTOL)
    rows = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    f_result = model.f_test(["task", "drift_1"])
    sm_f = [fit.f_test(rows) for fit in statsmodels_fits]
    np.testing.assert_allclose(
        f_result.stat, [float(np.squeeze(r.fvalue)) for r in sm_f], rtol=RTOL
    )
    np.testing.assert_allclose(
        f_result.p_value, [float(np.squeeze(r.pvalue)) for r in sm_f], rtol=RTOL
    )
    assert f_result.df_num == sm_f[0].df_num == 2
    assert f_result.df_denom == sm_f[0].df_denom == 16


def test_real_run_matches_nilearn(functional_run, tails_from):
    """effect, variance, t, z and one-sided p equal nilearn's OLS contrast."""
    first_level = pytest.importorskip("nilearn.glm.first_level")
    glm = pytest.importorskip("nilearn.glm")
    design, Y = functional_run
    labels, results = first_level.run_glm(Y, design.to_numpy(), noise_model="ols")
    vector = np.array([1.0, 0.0, 0.0, 0.0])
    contrast = glm.compute_contrast(labels, results, vector, stat_type="t")
    ours = MassUnivariateOLS().fit(design, Y).t_test("task", alternative="greater")
    np.testing.assert_allclose(ours.effect, contrast.effect_size(), rtol=RTOL)
    np.testing.assert_allclose(ours.stderr**2, contrast.effect_variance(), rtol=RTOL)
    np.testing.assert_allclose(ours.stat, contrast.stat(), rtol=RTOL)
    # nilearn's p-value is the upper tail: our alternative="greater".
    np.testing.assert_allclose(ours.p_value, contrast.p_value(), rtol=RTOL)
    np.testing.assert_allclose(ours.z_score, contrast.z_score(), rtol=RTOL, atol=1e-12)


def test_real_run_weighted_matches_statsmodels_wls(functional_run, tails_from):
    """With sample weights, coefficients, t, p and F equal statsmodels WLS."""
    sm = pytest.importorskip("statsmodels.api")
    design, Y = functional_run
    weights = np.linspace(0.5, 2.0, Y.shape[0])
    model = MassUnivariateOLS().fit(design, Y, sample_weight=weights)
    t_result = model.t_test("task")
    f_result = model.f_test(["task", "drift_1"])
    for j in range(0, Y.shape[1], 7):
        fit = sm.WLS(Y[:, j], design, weights=weights).fit()
        np.testing.assert_allclose(model.coef_[:, j], fit.params, rtol=RTOL)
        np.testing.assert_allclose(model.rss_[j], fit.ssr, rtol=RTOL)
        np.testing.assert_allclose(t_result.stat[j], fit.tvalues.iloc[0], rtol=RTOL)
        np.testing.assert_allclose(t_result.p_value[j], fit.pvalues.iloc[0], rtol=RTOL)
        sm_f = fit.f_test(np.eye(4)[:2])
        np.testing.assert_allclose(f_result.stat[j], np.squeeze(sm_f.fvalue), rtol=RTOL)


def test_r2_map_matches_r2_score(functional_run):
    """r2_ equals r2_score(Y, predict(X), multioutput="raw_values")."""
    design, Y = functional_run
    model = MassUnivariateOLS().fit(design, Y)
    expected = r2_score(Y, model.predict(design), multioutput="raw_values")
    np.testing.assert_allclose(model.r2_, expected, rtol=RTOL)
    weights = np.linspace(0.5, 2.0, Y.shape[0])
    weighted = MassUnivariateOLS().fit(design, Y, sample_weight=weights)
    expected = r2_score(
        Y, weighted.predict(design), sample_weight=weights, multioutput="raw_values"
    )
    np.testing.assert_allclose(weighted.r2_, expected, rtol=RTOL)


# --- The null distribution ---------------------------------------------------------


def test_p_values_are_uniform_under_the_null(functional_run, tails_from):
    """Pure noise: 5 % of two-sided p < 0.05 (99.9 % interval), KS uniform."""
    design, _ = functional_run
    rng = np.random.default_rng(5)
    noise = rng.normal(size=(design.shape[0], 20_000))
    p = MassUnivariateOLS().fit(design, noise).t_test("task").p_value
    low, high = scipy_stats.binom.interval(0.999, p.size, 0.05)
    assert low <= np.count_nonzero(p < 0.05) <= high
    assert scipy_stats.kstest(p, "uniform").pvalue > 0.01
    f_p = MassUnivariateOLS().fit(design, noise).f_test(["task", "drift_1"]).p_value
    assert low <= np.count_nonzero(f_p < 0.05) <= high
    assert scipy_stats.kstest(f_p, "uniform").pvalue > 0.01


# --- Tails and z-scores ----------------------------------------------------------

# norm.isf(t_dist.sf(t, 10)) and norm.isf(F_dist.sf(f, 3, 10)), from mpmath at
# 60 digits (regularised incomplete beta, then a root of log ncdf).
Z_OF_T_DF10 = [
    (2.0, 1.7904099322688289),
    (5.0, 3.4614200961856219),
    (30.0, 6.6054995040220722),
    (200.0, 8.9932384297978482),
    (1e6, 15.814773338050151),
    (1e30, 36.792195658183682),
]
Z_OF_F_3_10 = [
    (0.01, -2.9748848051876674),
    (1.0, 0.17042691577380749),
    (10.0, 2.8266916820650111),
    (1e4, 8.4814529088070571),
    (1e12, 15.965346502297544),
    (1e100, 47.73869941040069),
]


# norm.isf of the t and F(3, 1e6) tails with many degrees of freedom, beyond
# where the tail underflows (the incomplete beta's argument is then within
# 1e-3 of 1): mpmath at 80 digits, the t density integrated by quadrature.
Z_OF_T_MANY_DF = [
    (1e4, 38.0, 36.725170405305217),
    (1e4, 200.0, 126.86086912425357),
    (1e4, 1e4, 303.48341517209826),
    (1e6, 38.0, 37.986283223914996),
    (1e6, 40.0, 39.98400385708067),
    (1e6, 60.0, 59.946090063497278),
    (1e6, 200.0, 198.042151086639),
    (1e6, 1e4, 2148.2827973880364),
    (1e8, 38.0, 37.999862726073423),
    (1e8, 200.0, 199.98000383223367),
    (1e8, 1e4, 8325.5460919605911),
]
Z_OF_F_3_1E6 = [
    (500.0, 38.508099027745211),
    (1e3, 54.572144244078961),
    (1e5, 512.18946845344853),
]


@pytest.mark.parametrize(("df", "t", "expected"), Z_OF_T_MANY_DF)
def test_z_from_t_is_accurate_with_many_degrees_of_freedom(df, t, expected):
    """Beyond the underflow of the tail, any df: finite and within 1e-12."""
    np.testing.assert_allclose(z_from_t(t, df), expected, rtol=1e-12)
    np.testing.assert_allclose(z_from_t(-t, df), -expected, rtol=1e-12)


@pytest.mark.parametrize(("f", "expected"), Z_OF_F_3_1E6)
def test_z_from_f_is_accurate_with_many_degrees_of_freedom(f, expected):
    np.testing.assert_allclose(z_from_f(f, 3, 1e6), expected, rtol=1e-12)


@pytest.mark.parametrize(("t", "expected"), Z_OF_T_DF10)
def test_z_from_t_is_accurate_in_both_tails(t, expected):
    """z of t is accurate to 1e-12 relative and antisymmetric, far in the tails."""
    np.testing.assert_allclose(z_from_t(t, 10), expected, rtol=1e-12)
    np.testing.assert_allclose(z_from_t(-t, 10), -expected, rtol=1e-12)


@pytest.mark.parametrize(("f", "expected"), Z_OF_F_3_10)
def test_z_from_f_is_accurate_in_both_tails(f, expected):
    """z of F is accurate to 1e-12 relative, where p underflows or is near 1."""
    np.testing.assert_allclose(z_from_f(f, 3, 10), expected, rtol=1e-12)


def test_z_scores_stay_finite_where_one_minus_p_rounds_to_one(rng):
    """t up to 200 on 10 df: finite z, where ppf(1 - p) would be inf."""
    X = make_design(14, 4, rng=rng)
    Y = make_voxels(X, 3, rng=rng, noise=1e-3)
    model = MassUnivariateOLS().fit(X, Y)
    result = model.t_test([1, 0, 0, 0])
    assert model.df_resid_ == 10
    assert np.all(np.abs(result.stat) > 200)
    naive = scipy_stats.norm.ppf(1 - scipy_stats.t.sf(np.abs(result.stat), 10))
    assert np.all(np.isinf(naive))
    assert np.all(np.isfinite(result.z_score))
    np.testing.assert_array_equal(np.sign(result.z_score), np.sign(result.stat))


@settings(max_examples=100, deadline=None)
@given(t=st.floats(0, 50), df=st.integers(1, 500))
def test_z_from_t_matches_scipy_where_scipy_is_exact(t, df):
    """For t >= 0 (a small upper tail) z equals scipy's norm.isf(t.sf(t)).

    For t < 0, scipy's sf is near 1 and loses digits; the mpmath values above
    check that side.
    """
    expected = scipy_stats.norm.isf(scipy_stats.t.sf(t, df))
    if np.isfinite(expected) and abs(expected) < 7:
        np.testing.assert_allclose(z_from_t(t, df), expected, rtol=1e-9, atol=1e-12)


# --- Properties ----------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), weighted=st.booleans())
def test_one_row_f_equals_t_squared(seed, weighted):
    """A one-row F equals t^2, with the same (two-sided) p-value."""
    rng = np.random.default_rng(seed)
    X = make_design(25, 4, rng=rng)
    Y = make_voxels(X, 15, rng=rng)
    w = rng.uniform(0.2, 3.0, size=25) if weighted else None
    model = MassUnivariateOLS().fit(X, Y, sample_weight=w)
    vector = rng.normal(size=4)
    t_result, f_result = model.t_test(vector), model.f_test(vector)
    np.testing.assert_allclose(f_result.stat, t_result.stat**2, rtol=1e-10)
    np.testing.assert_allclose(f_result.p_value, t_result.p_value, rtol=1e-8)
    assert f_result.df_num == 1


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    exponents=st.lists(st.integers(-250, 250), min_size=2, max_size=2),
)
def test_statistics_do_not_depend_on_the_contrast_scale(seed, exponents):
    """t and F of rows scaled by 1e-250 to 1e250 equal those of the rows as
    given; effect and stderr scale with them. Weights that small or large
    make c pinv(X^T X) c^T underflow or overflow: the statistics must not."""
    rng = np.random.default_rng(seed)
    X = make_design(25, 4, rng=rng)
    Y = make_voxels(X, 15, rng=rng)
    Y[:, 0] = 3.0  # a zero-variance voxel: t and F are 0 there
    model = MassUnivariateOLS().fit(X, Y)
    matrix = rng.normal(size=(2, 4))
    scales = 10.0 ** np.asarray(exponents, dtype=np.float64)
    scaled = matrix * scales[:, np.newaxis]
    for row, scale, scaled_row in zip(matrix, scales, scaled, strict=True):
        given_t, scaled_t = model.t_test(row), model.t_test(scaled_row)
        for field in ("stat", "p_value", "z_score"):
            np.testing.assert_allclose(
                getattr(scaled_t, field), getattr(given_t, field), rtol=1e-12
            )
        for field in ("effect", "stderr"):
            np.testing.assert_allclose(
                getattr(scaled_t, field), scale * getattr(given_t, field), rtol=1e-12
            )
    given_f, scaled_f = model.f_test(matrix), model.f_test(scaled)
    np.testing.assert_allclose(scaled_f.stat, given_f.stat, rtol=1e-10)
    np.testing.assert_allclose(scaled_f.p_value, given_f.p_value, rtol=1e-9)
    np.testing.assert_allclose(
        scaled_f.effect, scales[:, np.newaxis] * given_f.effect, rtol=1e-12
    )
    assert scaled_f.df_num == given_f.df_num == 2


def test_f_statistics_at_zero_variance_voxels():
    """At zero-variance voxels F is inf with an effect and 0 without, whatever
    the (rounding-level) variance passed there; elsewhere e' pinv(V) e / (r s2)."""
    effect = np.array([[1.0, 0.0, 2.0], [0.5, 0.0, 0.0]])
    covariance = np.array([[2.0, 0.5], [0.5, 1.0]])
    sigma2 = np.array([1e-30, 1e-30, 4.0])
    f, df_num = f_statistics(effect, covariance, sigma2, zero_variance=[0, 1])
    expected = effect[:, 2] @ np.linalg.solve(covariance, effect[:, 2]) / (2 * 4.0)
    assert df_num == 2
    np.testing.assert_array_equal(f[:2], [np.inf, 0.0])
    np.testing.assert_allclose(f[2], expected, rtol=1e-14)


def test_string_contrast_equals_vector(rng):
    """ "a - b" is the vector [1, -1, 0, ...]; expressions weigh as written."""
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_design(30, 4, rng=rng), columns=["a", "b", "c", "const"])
    Y = make_voxels(X.to_numpy(), 6, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    by_name = model.t_test("a - b")
    by_vector = model.t_test([1, -1, 0, 0])
    for field in ("effect", "stderr", "stat", "p_value", "z_score"):
        np.testing.assert_array_equal(
            getattr(by_name, field), getattr(by_vector, field)
        )
    expression = model.t_test("0.5*a + 0.5*b - c")
    np.testing.assert_allclose(
        expression.effect, model.t_test([0.5, 0.5, -1, 0]).effect, rtol=1e-14
    )


def test_multi_row_t_test_gives_one_map_per_row(rng):
    """A q-row t contrast gives q maps, each the single-row result."""
    X = make_design(30, 3, rng=rng)
    Y = make_voxels(X, 8, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    matrix = np.array([[1.0, 0, 0], [1.0, -1.0, 0]])
    result = model.t_test(matrix)
    assert result.stat.shape == (2, 8)
    for k, row in enumerate(matrix):
        np.testing.assert_allclose(result.stat[k], model.t_test(row).stat, rtol=1e-14)


@pytest.mark.parametrize(
    "weighted",
    [
        [4],  # one regressor
        [2, 3],  # two adjacent
        [0, 7],  # two far apart: a strided view
        [1, 4, 7],  # evenly spaced
        [2, 3, 5],  # uneven, short span: the span is read whole
        [0, 1, 8],  # uneven, long span: gathered
    ],
)
def test_t_maps_from_the_rows_they_weight(rng, weighted):
    """Whichever rows of coef_ a contrast weights, effect, stderr and t are
    C @ coef_, sqrt(diag(C pinv(X^T X) C^T) sigma2_) and their ratio."""
    from skvoxel.linear_model import _used_rows

    X = make_design(40, 9, rng=rng)
    Y = make_voxels(X, 30, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    matrix = np.zeros((2, 9))
    matrix[0, weighted] = rng.normal(size=len(weighted))
    matrix[1, weighted[0]] = 1.0
    result = model.t_test(matrix)
    effect = matrix @ model.coef_
    variance = np.diag(matrix @ np.linalg.pinv(X.T @ X) @ matrix.T)
    stderr = np.sqrt(variance[:, np.newaxis] * model.sigma2_)
    np.testing.assert_allclose(result.effect, effect, rtol=1e-12)
    np.testing.assert_allclose(result.stderr, stderr, rtol=1e-12)
    np.testing.assert_allclose(result.stat, effect / stderr, rtol=1e-12)
    rows, _ = _used_rows(model.coef_, np.asarray(weighted))
    gathered = weighted == [0, 1, 8]
    assert np.shares_memory(rows, model.coef_) != gathered  # read in place


def test_effect_and_stderr_are_computed_when_read(rng):
    """t_test computes t; effect and stderr wait for their first read, belong
    to the fit that made them even after a refit, and pickle as arrays."""
    import pickle

    X = make_design(30, 3, rng=rng)
    Y = make_voxels(X, 12, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    deferred, eager = model.t_test([1, -1, 0]), model.t_test([1, -1, 0])
    assert "effect" not in vars(deferred) and "stderr" not in vars(deferred)
    expected = {"effect": eager.effect, "stderr": eager.stderr}
    model.fit(X, -Y[:, :5])  # new arrays: the first fit's results stand
    for name, value in expected.items():
        np.testing.assert_array_equal(getattr(deferred, name), value)
        assert getattr(deferred, name) is getattr(deferred, name)  # computed once
    unread = model.t_test([0, 1, 0])
    restored = pickle.loads(pickle.dumps(unread))
    assert "_deferred" not in vars(restored)
    np.testing.assert_array_equal(restored.effect, unread.effect)
    np.testing.assert_array_equal(restored.stderr, unread.stderr)
    assert "stderr=array(" in repr(unread)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = unread.missing


def test_parsed_expressions_are_not_shared(rng):
    """Expressions are parsed once per design's names, but every call gets its
    own matrix, and other names give other weights."""
    first, _ = contrast_matrix("a - c", ["a", "b", "c"], 3)
    first[0, 0] = 99.0
    again, _ = contrast_matrix("a - c", ["a", "b", "c"], 3)
    np.testing.assert_array_equal(again, [[1.0, 0.0, -1.0]])
    renamed, _ = contrast_matrix("a - c", ["c", "b", "a"], 3)
    np.testing.assert_array_equal(renamed, [[-1.0, 0.0, 1.0]])


def test_one_dimensional_data_give_scalars(rng):
    """For 1-D y, t results are scalars and F effects (q,) arrays."""
    X = make_design(30, 3, rng=rng)
    y = make_voxels(X, 1, rng=rng)[:, 0]
    model = MassUnivariateOLS().fit(X, y)
    t_result = model.t_test([1, 0, 0])
    assert np.ndim(t_result.stat) == 0 and np.ndim(t_result.p_value) == 0
    assert model.t_test(np.eye(3)[:2]).stat.shape == (2,)
    f_result = model.f_test(np.eye(3)[:2])
    assert f_result.effect.shape == (2,) and np.ndim(f_result.stat) == 0
    both = MassUnivariateOLS().fit(X, y[:, None]).t_test([1, 0, 0])
    np.testing.assert_allclose(t_result.stat, both.stat[0], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_follow_the_data_dtype(rng, dtype):
    """Every array of a ContrastResult has the data's dtype."""
    X = make_design(30, 3, rng=rng)
    Y = make_voxels(X, 5, rng=rng).astype(dtype)
    model = MassUnivariateOLS().fit(X, Y)
    for result in (model.t_test([1, 0, 0]), model.f_test(np.eye(3)[:2])):
        for field in ("effect", "stat", "p_value", "z_score"):
            assert getattr(result, field).dtype == dtype, field
    assert model.t_test([1, 0, 0]).stderr.dtype == dtype


def test_fit_intercept_contrasts_exclude_the_constant(rng):
    """With fit_intercept, contrasts span coef_ only and match an explicit constant."""
    X = make_design(30, 2, rng=rng, constant=False)
    Y = make_voxels(X, 6, rng=rng, baseline=50.0)
    implicit = MassUnivariateOLS(fit_intercept=True).fit(X, Y).t_test([1, -1])
    explicit_design = np.column_stack([X, np.ones(30)])
    explicit = MassUnivariateOLS().fit(explicit_design, Y).t_test([1, -1, 0])
    np.testing.assert_allclose(implicit.stat, explicit.stat, rtol=1e-10)
    assert implicit.df_denom == explicit.df_denom == 27


# --- Rank deficiency, zero variance, bad input ------------------------------------


@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")
def test_rank_deficient_design(rng):
    """Estimable contrasts match statsmodels; others raise, naming the contrast."""
    sm = pytest.importorskip("statsmodels.api")
    pd = pytest.importorskip("pandas")
    base = make_design(30, 3, rng=rng)
    X = pd.DataFrame(
        np.column_stack([base, base[:, 0] + base[:, 1]]),
        columns=["a", "b", "const", "a_plus_b"],
    )
    Y = make_voxels(X.to_numpy(), 4, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    assert model.rank_ == 3 and model.df_resid_ == 27
    estimable = [1.0, 1.0, 0.0, 2.0]  # a + b + 2 (a + b): in the row space
    result = model.t_test(estimable)
    for j in range(4):
        fit = sm.OLS(Y[:, j], X.to_numpy()).fit()
        reference = fit.t_test(estimable)
        np.testing.assert_allclose(
            result.stat[j], np.squeeze(reference.tvalue), rtol=1e-8
        )
    with pytest.raises(
        ValueError,
        match=r'contrast "a" is not estimable: .*rank deficient \(rank 3 < 4\)',
    ):
        model.t_test("a")  # a alone is confounded with a_plus_b
    # a - b is orthogonal to the null direction (1, 1, 0, -1): estimable.
    assert np.all(np.isfinite(model.t_test("a - b").stat))
    with pytest.raises(ValueError, match=r"not estimable"):
        model.f_test(["a", "b"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_variance_voxels(rng, dtype):
    """Constant and perfectly fitted voxels: t 0 or +-inf, p 1 or 0, no warning."""
    X = make_design(20, 3, rng=rng)
    Y = make_voxels(X, 4, rng=rng, baseline=1000.0)
    Y[:, 0] = 1234.5  # constant, outside the brain
    Y[:, 1] = 1000.0 + 3.0 * X[:, 0]  # a perfect fit with an effect
    Y[:, 2] = 0.0
    Y = Y.astype(dtype)
    model = MassUnivariateOLS().fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t_result = model.t_test([1, 0, 0])
        f_result = model.f_test(np.eye(3)[:2])
        lower = model.t_test([-1, 0, 0], alternative="greater")
        effect, stderr = t_result.effect, t_result.stderr  # computed on this read
    np.testing.assert_array_equal(effect[[0, 2]], 0.0)  # rounding noise zeroed
    np.testing.assert_allclose(effect[1], 3.0, rtol=1e-4)
    np.testing.assert_array_equal(stderr[:3], 0.0)
    np.testing.assert_array_equal(t_result.stat[:3], [0.0, np.inf, 0.0])
    np.testing.assert_array_equal(t_result.p_value[:3], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(f_result.stat[:3], [0.0, np.inf, 0.0])
    np.testing.assert_array_equal(f_result.p_value[:3], [1.0, 0.0, 1.0])
    assert lower.stat[1] == -np.inf and lower.p_value[1] == 1.0
    assert np.isfinite(t_result.stat[3]) and 0 < t_result.p_value[3] < 1
    np.testing.assert_array_equal(model.r2_[:3], [1.0, 1.0, 1.0])


def test_statistics_need_residual_degrees_of_freedom(rng):
    """A saturated model (df_resid_ == 0) refuses t and F tests."""
    X = make_design(4, 4, rng=rng)
    model = MassUnivariateOLS().fit(X, rng.normal(size=(4, 3)))
    with pytest.raises(
        ValueError,
        match=r"t_test\(\) needs residual degrees of "
        r"freedom, but df_resid_ is 0: 4 samples for a design of rank 4",
    ):
        model.t_test([1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"f_test\(\) needs residual degrees"):
        model.f_test([1, 0, 0, 0])


@pytest.mark.parametrize(
    ("contrast", "error", "match"),
    [
        (
            [1, 0],
            ValueError,
            r"contrast has 2 columns, but MassUnivariateOLS was "
            r"fitted with 3 regressors",
        ),
        ([1, np.nan, 0], ValueError, r"contains NaN or inf"),
        ([[1, 0, 0], [0, 0, 0]], ValueError, r"all-zero row \(row 1\)"),
        (
            "a + d",
            ValueError,
            r'names "d", which is not a regressor; the regressors '
            r"are \['a', 'b', 'c'\]",
        ),
        ("a * b", ValueError, r"not a linear combination"),
        ("a + 1", ValueError, r"not a linear combination"),
        ("2", ValueError, r"not a linear combination"),
        ("a -", ValueError, r"is not a valid expression"),
        ("a.b", ValueError, r"not a linear combination"),
        ("1/0*a", ValueError, r'contrast "1/0\*a" divides by zero'),
        ("a/(2-2)", ValueError, r"divides by zero"),
        ("1e308*10*a", ValueError, r"contains NaN or inf"),
        (np.zeros((2, 2, 3)), ValueError, r"got an array of shape \(2, 2, 3\)"),
        ([["a"]], TypeError, r"contrast must be a vector, a matrix"),
    ],
)
def test_bad_contrasts(contrast, error, match):
    """Malformed contrasts raise, naming the contrast and what is wrong."""
    with pytest.raises(error, match=match):
        contrast_matrix(contrast, np.array(["a", "b", "c"]), 3)


def test_backticked_names_and_names_without_a_dataframe(rng):
    """Names with spaces go in backticks; names need a DataFrame design."""
    matrix, _ = contrast_matrix("`drift 1` - 2 * `drift 2`", ["drift 1", "drift 2"], 2)
    np.testing.assert_array_equal(matrix, [[1.0, -2.0]])
    model = MassUnivariateOLS().fit(
        make_design(10, 2, rng=rng), rng.normal(size=(10, 2))
    )
    with pytest.raises(ValueError, match=r"the design had no column names"):
        model.t_test("x0 - x1")


def test_invalid_alternative(rng):
    """alternative is validated, with the allowed values named."""
    model = MassUnivariateOLS().fit(
        make_design(10, 2, rng=rng), rng.normal(size=(10, 2))
    )
    with pytest.raises(ValueError, match=r"'alternative' parameter .* must be a str"):
        model.t_test([1, 0], alternative="bigger")


@pytest.mark.parametrize("contrast", [np.array([1.0, 0.0]), "x0", [1, 0]])
@pytest.mark.parametrize("alternative", ["bigger", ["two-sided"], None, 2])
def test_invalid_alternative_with_any_contrast(rng, contrast, alternative):
    """Arrays, expressions and lists alike: a bad alternative (unhashable
    too) is scikit-learn's InvalidParameterError, whatever the contrast."""
    from sklearn.utils._param_validation import InvalidParameterError

    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_design(10, 2, rng=rng), columns=["x0", "x1"])
    model = MassUnivariateOLS().fit(X, rng.normal(size=(10, 2)))
    with pytest.raises(InvalidParameterError, match=r"'alternative' parameter"):
        model.t_test(contrast, alternative=alternative)


def test_invalid_contrast_type_with_a_valid_alternative(rng):
    """A contrast of no accepted kind is rejected by the parameter check."""
    from sklearn.utils._param_validation import InvalidParameterError

    model = MassUnivariateOLS().fit(
        make_design(10, 2, rng=rng), rng.normal(size=(10, 2))
    )
    with pytest.raises(InvalidParameterError, match=r"'contrast' parameter"):
        model.t_test(3.0, alternative="greater")


def test_contrasts_need_a_fitted_model():
    """t_test on an unfitted model raises NotFittedError."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MassUnivariateOLS().t_test([1, 0])


def test_contrasts_reuse_the_fit_without_the_data(rng):
    """Nothing of size n_samples x n_voxels is kept: contrasts never read Y again."""
    X = make_design(50, 3, rng=rng)
    Y = make_voxels(X, 400, rng=rng)
    model = MassUnivariateOLS().fit(X, Y)
    before = model.t_test([1, 0, 0])
    Y[:] = np.nan  # the caller's data change; the model must not care
    after = model.t_test([1, 0, 0])
    np.testing.assert_array_equal(before.stat, after.stat)
    for name, value in vars(model).items():
        assert np.size(value) < Y.size, name


# --- Multiple comparisons ----------------------------------------------------------


def test_bh_equals_scipy_and_bonferroni(rng):
    """BH-adjusted p equal scipy's; Bonferroni is min(1, m p); maps threshold them."""
    p = rng.uniform(size=500) ** 3
    np.testing.assert_array_equal(
        adjust_p_values(p), scipy_stats.false_discovery_control(p, method="bh")
    )
    np.testing.assert_array_equal(
        adjust_p_values(p, method="fdr_by"),
        scipy_stats.false_discovery_control(p, method="by"),
    )
    np.testing.assert_array_equal(
        adjust_p_values(p, method="bonferroni"), np.minimum(p * 500, 1)
    )
    rows = np.stack([p, p[::-1]])
    np.testing.assert_array_equal(adjust_p_values(rows)[1], adjust_p_values(p[::-1]))


def test_significant_maps(rng):
    """ContrastResult.significant thresholds the adjusted p-values at alpha."""
    X = make_design(40, 3, rng=rng)
    Y = rng.normal(size=(40, 300))
    Y[:, :30] += 2.0 * X[:, [0]]
    result = MassUnivariateOLS().fit(X, Y).t_test([1, 0, 0])
    fdr = result.significant(alpha=0.05)
    np.testing.assert_array_equal(fdr, result.adjusted_p_value() <= 0.05)
    bonferroni = result.significant(alpha=0.05, method="bonferroni")
    np.testing.assert_array_equal(bonferroni, result.p_value * 300 <= 0.05)
    assert fdr[:30].all() and np.count_nonzero(fdr[30:]) <= 3
    assert np.count_nonzero(bonferroni) <= np.count_nonzero(fdr)
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\)"):
        result.significant(alpha=5)


def test_adjust_p_values_rejects_non_probabilities():
    """p-values outside [0, 1] or NaN are refused; the method is validated."""
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        adjust_p_values([0.1, 1.5])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        adjust_p_values([0.1, np.nan])
    with pytest.raises(ValueError, match=r"'method' parameter"):
        adjust_p_values([0.1], method="holm")


def test_contrast_result_is_frozen(rng):
    """A ContrastResult cannot be changed after the fact."""
    model = MassUnivariateOLS().fit(
        make_design(10, 2, rng=rng), rng.normal(size=(10, 2))
    )
    result = model.t_test([1, 0])
    assert isinstance(result, ContrastResult)
    with pytest.raises(AttributeError):
        result.stat = None


@pytest.mark.parametrize("stat_type", ["t", "F"])
def test_p_and_z_are_the_same_computed_in_threads(rng, stat_type, monkeypatch):
    """Large maps from scipy split the tail functions over threads with
    identical results."""
    from skvoxel import _distributions

    size = 3 * _distributions.PARALLEL_FROM + 17
    monkeypatch.setattr(_distributions, "TABLE_FROM", size + 1)
    stat = rng.normal(size=size) * 4
    if stat_type == "F":
        stat = stat**2

    def result():
        return ContrastResult(
            effect=stat,
            stderr=None,
            stat=stat,
            df_num=1,
            df_denom=30,
            stat_type=stat_type,
        )

    threaded = result()
    monkeypatch.setattr(_distributions, "PARALLEL_FROM", size + 1)
    one_thread = result()
    for field in ("p_value", "z_score"):
        np.testing.assert_array_equal(
            getattr(threaded, field), getattr(one_thread, field)
        )


def test_tables_run_on_the_calling_thread(rng, monkeypatch):
    """Maps read off the tables start no threads (their short numpy calls
    would pass the GIL back and forth); maps from scipy do."""
    from skvoxel import _distributions

    started = []

    class Recording(_distributions.ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(_distributions, "ThreadPoolExecutor", Recording)
    stat = rng.normal(size=4 * _distributions.PARALLEL_FROM) * 3
    result = ContrastResult(
        effect=stat, stderr=None, stat=stat, df_num=1, df_denom=30, stat_type="t"
    )
    p_value, z_score = result.p_value, result.z_score
    assert p_value.shape == z_score.shape == stat.shape
    assert started == []
    monkeypatch.setattr(_distributions, "TABLE_FROM", stat.size + 1)
    exact = ContrastResult(
        effect=stat, stderr=None, stat=stat, df_num=1, df_denom=30, stat_type="t"
    ).p_value
    np.testing.assert_allclose(exact, p_value, rtol=1e-12)
    assert started == ([2] if (os.cpu_count() or 1) >= 2 else [])


def test_tabulated_maps_keep_shape_and_dtype(rng):
    """Maps large enough for the tables: q rows and float32 keep their shape
    and dtype, each row equal to the same row alone, float32 equal to the
    float64 result rounded."""
    from skvoxel import _distributions

    stat = rng.normal(size=(3, _distributions.TABLE_FROM + 5)) * 3
    fields = {"stderr": None, "df_num": 1, "df_denom": 40, "stat_type": "t"}
    rows = ContrastResult(effect=stat, stat=stat, **fields)
    assert rows.p_value.shape == rows.z_score.shape == stat.shape
    for k in range(3):
        alone = ContrastResult(effect=stat[k], stat=stat[k], **fields)
        np.testing.assert_array_equal(rows.p_value[k], alone.p_value)
        np.testing.assert_array_equal(rows.z_score[k], alone.z_score)
    single = stat[0].astype(np.float32)
    as_float32 = ContrastResult(effect=single, stat=single, **fields)
    as_float64 = ContrastResult(
        effect=single.astype(np.float64), stat=single.astype(np.float64), **fields
    )
    assert as_float32.p_value.dtype == as_float32.z_score.dtype == np.float32
    np.testing.assert_array_equal(
        as_float32.p_value, as_float64.p_value.astype(np.float32)
    )
    np.testing.assert_array_equal(
        as_float32.z_score, as_float64.z_score.astype(np.float32)
    )
