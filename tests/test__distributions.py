"""Tails of t and F laws: the tables against scipy and closed forms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from skvoxel import _distributions
from skvoxel._distributions import small_tail, tail_table, z_score

TOLERANCE = 1e-12  # the accuracy the module's docstrings promise


@pytest.fixture
def tabulated(monkeypatch):
    """Every map, however small, read off the tables."""
    monkeypatch.setattr(_distributions, "TABLE_FROM", 0)


def statistics(rng, stat_type, df_num):
    """Null-like values, large ones, and values across and beyond the table."""
    t = np.concatenate(
        [
            rng.normal(size=20_000) * 3,
            rng.uniform(-70, 70, size=5_000),
            [0.0, -0.0, 1e-300, 1e-7, 63.99999, 64.0, 1e3, 1e150],
        ]
    )
    return t if stat_type == "t" else t * t / df_num


def assert_close_to_exact(stat_type, stat, df_num, df_denom):
    """Tabulated tails and z within TOLERANCE of scipy (absolute below |z| = 1)."""
    tail = small_tail(stat_type, stat, df_num, df_denom)
    z = z_score(stat_type, stat, df_num, df_denom, tail)
    exact_tail = _distributions._exact_small_tail(stat_type, stat, df_num, df_denom)
    exact_z = _distributions._exact_z(stat_type, stat, df_num, df_denom, exact_tail)
    # Finite statistics have a z-score: +-inf for F = 0 at worst, never NaN.
    assert not np.isnan(z).any()
    assert not np.isnan(exact_z).any()
    np.testing.assert_allclose(tail, exact_tail, rtol=TOLERANCE, atol=0)
    finite = np.isfinite(exact_z)  # (F = 0 has z = -inf)
    np.testing.assert_array_equal(z[~finite], exact_z[~finite])
    np.testing.assert_array_less(
        np.abs(z[finite] - exact_z[finite]),
        TOLERANCE * np.fmax(np.abs(exact_z[finite]), 1.0) + 1e-300,
    )


@pytest.mark.parametrize(
    "df", [2, 3, 5, 10, 30, 95, 380, 1950, 100_000, 1_000_000, 100_000_000]
)
def test_t_tables_match_scipy(rng, tabulated, df):
    """p and z of t maps from the tables equal scipy's to 1e-12."""
    assert_close_to_exact("t", statistics(rng, "t", 1), 1, df)


@pytest.mark.parametrize(
    ("df_num", "df_denom"),
    [(1, 95), (2, 380), (3, 10), (5, 30), (20, 1950), (3, 1_000_000)],
)
def test_f_tables_match_scipy(rng, tabulated, df_num, df_denom):
    """p and z of F maps from the tables equal scipy's to 1e-12."""
    assert_close_to_exact("F", statistics(rng, "F", df_num), df_num, df_denom)


def test_t_table_on_one_degree_of_freedom_matches_the_closed_form(rng, tabulated):
    """Cauchy: P(T > t) = atan2(1, t) / pi, and F(1, 1) its square; the table
    keeps 1e-12 near 0, where scipy's incomplete beta loses digits (2.5e-11
    at t = 1e-7)."""
    t = np.concatenate([rng.normal(size=20_000), 10.0 ** -rng.uniform(0, 9, 1_000)])
    t = np.concatenate([t, rng.uniform(0, 63.9, 5_000)])
    magnitude = np.abs(t)
    exact = np.arctan2(1.0, magnitude) / np.pi
    np.testing.assert_allclose(small_tail("t", t, 1, 1), exact, rtol=TOLERANCE)
    z = z_score("t", t, 1, 1, exact)
    exact_z = np.copysign(-special.ndtri(exact), t)
    np.testing.assert_array_less(
        np.abs(z - exact_z), TOLERANCE * np.fmax(np.abs(exact_z), 1.0)
    )
    # F(1, 1) is the law of t**2: P(F > f) = 2 atan2(1, sqrt(f)) / pi.
    np.testing.assert_allclose(
        small_tail("F", t * t, 1, 1), 2.0 * exact, rtol=TOLERANCE
    )


@settings(max_examples=25, deadline=None)
@given(
    df=st.integers(1, 5_000),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.1, 20),
)
def test_tables_match_scipy_on_any_law(df, seed, scale):
    """Any degrees of freedom: the checked table stays within 1e-12 of scipy."""
    t = np.random.default_rng(seed).normal(size=2_000) * scale
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_distributions, "TABLE_FROM", 0)
        df_num = 1 + seed % 4
        # On (1, 1) degrees of freedom scipy is the less accurate one near 0:
        # those laws are checked against their closed form above.
        if df > 1:
            assert_close_to_exact("t", t, 1, df)
        if df > 1 or df_num > 1:
            assert_close_to_exact("F", t * t, df_num, df)


def test_values_the_table_cannot_give_come_from_scipy(tabulated):
    """Beyond the table, non-finite values and unfit pieces: scipy, bit for bit."""
    t = np.array([64.0, 100.0, 1e300, np.inf, -np.inf, np.nan])
    tail = small_tail("t", t, 1, 30)
    exact = _distributions._exact_small_tail("t", t, 1, 30)
    np.testing.assert_array_equal(tail, exact)
    np.testing.assert_array_equal(
        z_score("t", t, 1, 30, tail), _distributions._exact_z("t", t, 1, 30, exact)
    )
    # Near F = 0 the z-score has a logarithmic singularity no piece can fit.
    table = tail_table("F", 2, 380)
    assert not table.exact[0] and not table.exact[-1]
    f = np.array([0.0, 1e-6, 1e-3])
    np.testing.assert_array_equal(
        z_score("F", f, 2, 380, small_tail("F", f, 2, 380)),
        _distributions._exact_z("F", f, 2, 380, special.fdtrc(2, 380, f)),
    )


def test_tables_are_built_once_per_law():
    """A second map on the same law reuses the table; another law gets its own."""
    assert tail_table("t", 1, 57) is tail_table("t", 1, 57)
    assert tail_table("t", 1, 57) is not tail_table("t", 1, 58)


def test_tails_never_exceed_their_value_at_zero(tabulated):
    """Rounding in the table cannot push p above 1 (t: tail above 1/2)."""
    t = np.linspace(-1e-3, 1e-3, 20_001)
    assert small_tail("t", t, 1, 12).max() <= 0.5
    assert small_tail("F", t * t, 1, 12).max() <= 1.0


def test_small_maps_use_scipy_directly(rng):
    """Below TABLE_FROM values no table is built and the values are scipy's."""
    t = rng.normal(size=100)
    tail_table.cache_clear()
    np.testing.assert_array_equal(
        small_tail("t", t, 1, 77), _distributions._exact_small_tail("t", t, 1, 77)
    )
    assert tail_table.cache_info().currsize == 0


def test_most_tails_need_no_exp_and_the_far_tail_keeps_its_logarithm(tabulated):
    """The tail polynomial covers the values maps hold; where the tail falls
    too steeply across a piece (a near-normal law beyond |t| = 10) the log
    table or scipy take over, and all stay within 1e-12 of scipy."""
    table = tail_table("t", 1, 100_000)
    pieces_per_unit = _distributions._PIECES_PER_UNIT
    assert table.direct[: 8 * pieces_per_unit].all()
    assert not table.direct[12 * pieces_per_unit : 30 * pieces_per_unit].any()
    t = np.concatenate([np.linspace(-8, 8, 4_001), np.linspace(9, 30, 4_001)])
    exact = _distributions._exact_small_tail("t", t, 1, 100_000)
    np.testing.assert_allclose(small_tail("t", t, 1, 100_000), exact, rtol=TOLERANCE)


def test_chunks_of_any_size_reuse_the_workspace_safely(rng, tabulated, monkeypatch):
    """A thread's workspace serves chunks of every size in turn (a large map,
    then a small one, then a far-tail subset): values stay scipy's."""
    monkeypatch.setattr(_distributions, "CACHE_CHUNK", 1_000)
    for size in (5_000, 37, 2_500):
        t = rng.normal(size=size) * 10
        exact = _distributions._exact_small_tail("t", t, 1, 40)
        tail = small_tail("t", t, 1, 40)
        np.testing.assert_allclose(tail, exact, rtol=TOLERANCE)
        exact_z = _distributions._exact_z("t", t, 1, 40, exact)
        np.testing.assert_array_less(
            np.abs(z_score("t", t, 1, 40, tail) - exact_z),
            TOLERANCE * np.fmax(np.abs(exact_z), 1.0),
        )


# log B(a, 1/2) from mpmath at 80 digits, where scipy's betaln is off by 3e-12
# to 1.2e-10 relative: the far tails of t laws with 6e4 to 1.4e6 df need it.
LOG_BETA_HALF = [
    (30_000.0, -4.5821072207307797),
    (150_000.0, -5.386829510281163),
    (689_000.0, -6.1491331506508465),
]


@pytest.mark.parametrize(("a", "expected"), LOG_BETA_HALF)
def test_log_beta_is_exact_where_scipy_loses_digits(a, expected):
    np.testing.assert_allclose(_distributions._log_beta(a, 0.5), expected, rtol=1e-15)
    np.testing.assert_allclose(_distributions._log_beta(0.5, a), expected, rtol=1e-15)


@settings(max_examples=300, deadline=None)
@given(
    log_a=st.floats(np.log(1e-2), np.log(1e12)),
    log_b=st.floats(np.log(0.5), np.log(50.0)),
)
def test_log_beta_keeps_the_recurrence(log_a, log_b):
    """``B(a, b + 1) = B(a, b) b / (a + b)`` to rounding, on either side of
    the switch to Stirling's series (scipy's betaln misses it by up to 5e-10)."""
    a, b = np.exp(log_a), np.exp(log_b)
    log_beta = _distributions._log_beta
    left = log_beta(a, b + 1.0)
    right = log_beta(a, b) + np.log(b) - np.log(a + b)
    scale = abs(log_beta(a, b)) + abs(np.log(a + b)) + 1.0
    assert abs(left - right) <= 1e-14 * scale
