"""Voxelwise inference: contrasts, t and F statistics, p-values, z-scores."""

import ast
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, partial
from numbers import Real

import numpy as np
from scipy import special, stats

from ._compat import StrOptions, validate_params

__all__ = [
    "ContrastResult",
    "adjust_p_values",
    "contrast_matrix",
    "f_statistics",
    "t_small_tail",
    "t_statistics",
    "z_from_f",
    "z_from_t",
]

# Tail probabilities below this are recomputed in log space for z-scores: a
# float64 p-value underflows a little below 1e-308.
_LOG_SPACE_BELOW = 1e-300


@dataclass(frozen=True)
class ContrastResult:
    """Per-voxel result of a t or F contrast.

    For data ``Y`` of shape ``(n_samples, n_voxels)`` every array is over
    voxels, ``(n_voxels,)``, or ``(q, n_voxels)`` for the effects of a
    ``q``-row contrast (and for the ``q`` maps of a multi-row t test). For
    1-D data the voxel axis is dropped: scalars, or ``(q,)`` arrays. Arrays
    follow the data's dtype.

    ``p_value`` and ``z_score`` are computed from ``stat`` when first read,
    then kept: the tail functions cost as much as the fit's multiply on large
    data, so a result whose p-values nobody reads costs nothing for them.

    Attributes
    ----------
    effect : ndarray of shape (n_voxels,) or (q, n_voxels)
        The contrast of the coefficients, ``C @ coef_``.
    stderr : ndarray of shape (n_voxels,) or (q, n_voxels), or None
        Standard error of ``effect`` (t tests); ``None`` for F tests.
    stat : ndarray of shape (n_voxels,) or (q, n_voxels)
        The t or F statistic.
    df_num : int
        Numerator degrees of freedom: 1 for t, the contrast's rank for F.
    df_denom : int
        Denominator degrees of freedom: the model's ``df_resid_``.
    stat_type : {"t", "F"}
        Which statistic ``stat`` holds.
    alternative : {"two-sided", "greater", "less"}, default="two-sided"
        The alternative ``p_value`` is computed for (``"greater"`` for F).
    p_value : ndarray, the shape of ``stat``
        Its p-value under ``alternative`` (F tests: the upper tail).
    z_score : ndarray, the shape of ``stat``
        The standard normal deviate with the same upper-tail probability as
        the statistic, whatever the alternative: ``norm.isf(t_dist.sf(t))``
        (signed like ``t``) or ``norm.isf(p_value)`` for F. Finite far in
        the tails, where ``1 - p`` rounds to 1.
    """

    effect: np.ndarray
    stderr: np.ndarray | None
    stat: np.ndarray
    df_num: int
    df_denom: int
    stat_type: str
    alternative: str = "two-sided"

    @cached_property
    def p_value(self):
        """p-value of ``stat`` under ``alternative``, in the data's dtype."""
        if self.stat_type == "F":
            p = self._small_tail
        elif self.alternative == "two-sided":
            p = 2.0 * self._small_tail
        else:
            # P(T > t) is the small tail for t >= 0, its complement below 0.
            upper_side = self._stat64 >= 0
            if self.alternative == "less":
                upper_side = ~upper_side
            p = np.where(upper_side, self._small_tail, 1.0 - self._small_tail)
        return _like_stat(p, self.stat)

    @cached_property
    def z_score(self):
        """Normal deviate with the upper-tail probability of ``stat``."""
        if self.stat_type == "F":

            def z_of(stat, tail):
                return z_from_f(stat, self.df_num, self.df_denom, upper_tail=tail)
        else:

            def z_of(stat, tail):
                return z_from_t(stat, self.df_denom, small_tail=tail)

        z = _on_every_core(z_of, self._stat64, self._small_tail)
        return _like_stat(z, self.stat)

    @cached_property
    def _stat64(self):
        """The statistic in float64, where the tail functions work."""
        return np.asarray(self.stat, dtype=np.float64)

    @cached_property
    def _small_tail(self):
        """``P(T > |t|)``, or ``P(F > f)``: computed once for p and z."""
        if self.stat_type == "F":
            return _on_every_core(
                partial(special.fdtrc, self.df_num, self.df_denom), self._stat64
            )
        return _on_every_core(partial(t_small_tail, df=self.df_denom), self._stat64)

    def adjusted_p_value(self, method="fdr_bh"):
        """The p-values adjusted for testing every voxel.

        Parameters
        ----------
        method : {"fdr_bh", "fdr_by", "bonferroni"}, default="fdr_bh"
            See :func:`adjust_p_values`.

        Returns
        -------
        p_adjusted : ndarray, the shape of ``p_value``
            Adjusted over the voxels of each map.
        """
        return adjust_p_values(self.p_value, method=method)

    def significant(self, alpha=0.05, method="fdr_bh"):
        """Boolean map of voxels whose adjusted p-value is at most ``alpha``.

        Parameters
        ----------
        alpha : float, default=0.05
            The false discovery rate (``"fdr_*"``) or family-wise error rate
            (``"bonferroni"``) to control.
        method : {"fdr_bh", "fdr_by", "bonferroni"}, default="fdr_bh"
            See :func:`adjust_p_values`.

        Returns
        -------
        significant : ndarray of bool, the shape of ``p_value``
        """
        _check_alpha(alpha)
        return self.adjusted_p_value(method=method) <= alpha


@validate_params(
    {
        "p_values": ["array-like"],
        "method": [StrOptions({"fdr_bh", "fdr_by", "bonferroni"})],
    },
    prefer_skip_nested_validation=True,
)
def adjust_p_values(p_values, *, method="fdr_bh"):
    """Adjust p-values for multiple comparisons over voxels.

    Parameters
    ----------
    p_values : array-like of shape (n_voxels,) or (q, n_voxels)
        p-values in [0, 1]; a 2-D array is adjusted row by row (one family
        per map).
    method : {"fdr_bh", "fdr_by", "bonferroni"}, default="fdr_bh"
        ``"fdr_bh"``: Benjamini-Hochberg (false discovery rate, independent
        or positively dependent tests); ``"fdr_by"``: Benjamini-Yekutieli
        (any dependence); both by :func:`scipy.stats.false_discovery_control`.
        ``"bonferroni"``: ``min(1, m * p)`` for ``m`` voxels (family-wise
        error rate).

    Returns
    -------
    p_adjusted : ndarray, the shape of ``p_values``
        Voxels with adjusted p-value at most ``alpha`` are significant at
        level ``alpha``.

    Examples
    --------
    >>> from skvoxel.stats import adjust_p_values
    >>> adjust_p_values([0.01, 0.02, 0.03, 0.5], method="fdr_bh")
    array([0.04, 0.04, 0.04, 0.5 ])
    >>> adjust_p_values([0.01, 0.02, 0.03, 0.5], method="bonferroni")
    array([0.04, 0.08, 0.12, 1.  ])
    """
    p = np.asarray(p_values)
    if p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        msg = (
            "p_values must be a non-empty array of probabilities in [0, 1]; "
            f"got shape {p.shape} with values outside [0, 1] or NaN."
        )
        raise ValueError(msg)
    if method == "bonferroni":
        return np.minimum(p * p.shape[-1], 1.0).astype(p.dtype, copy=False)
    return stats.false_discovery_control(p, axis=-1, method=method[-2:]).astype(
        p.dtype, copy=False
    )


# Tail functions cost 50-300 ns a value: worth threads from this many values.
_PARALLEL_FROM = 1 << 14


def _on_every_core(function, *arrays):
    """``function(*arrays)``, elementwise, split over threads on every core.

    scipy's special functions release the GIL, so chunks run side by side.
    """
    size = np.size(arrays[0])
    n_threads = min(os.cpu_count() or 1, size // _PARALLEL_FROM)
    if n_threads <= 1:
        return function(*arrays)
    flat = [np.ravel(array) for array in arrays]
    bounds = np.linspace(0, size, n_threads + 1).astype(int)

    def chunk(i):
        return function(*(array[bounds[i] : bounds[i + 1]] for array in flat))

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        parts = list(pool.map(chunk, range(n_threads)))
    return np.concatenate(parts).reshape(np.shape(arrays[0]))


def _like_stat(values, stat):
    """``values`` in the dtype of ``stat``; a numpy scalar where ``stat`` is one."""
    values = np.asarray(values).astype(np.asarray(stat).dtype, copy=False)
    return values[()] if np.ndim(stat) == 0 else values


def _check_alpha(alpha):
    """Reject a significance level outside (0, 1)."""
    if not (isinstance(alpha, Real) and 0 < alpha < 1):
        msg = f"alpha must be a number in (0, 1); got {alpha!r}."
        raise ValueError(msg)


# --- Contrasts -------------------------------------------------------------------

_BACKTICK_NAME = re.compile(r"`([^`]*)`")


def contrast_matrix(contrast, feature_names, n_regressors):
    """Turn any accepted form of contrast into a ``(q, n_regressors)`` matrix.

    Parameters
    ----------
    contrast : array-like, str or list of str
        A vector ``(n_regressors,)``, a matrix ``(q, n_regressors)``, an
        expression over the regressor names (``"faces - houses"``,
        ``"0.5*a + 0.5*b - c"``; names that are not Python identifiers go in
        backticks: ```"`drift 1` - `drift 2`"```), or a list of them (rows).
    feature_names : ndarray of str or None
        The design's column names (``feature_names_in_``), if any.
    n_regressors : int

    Returns
    -------
    matrix : ndarray of shape (q, n_regressors), float64
    label : str
        A readable name of the contrast for messages.

    Examples
    --------
    >>> contrast_matrix("0.5*a + 0.5*b - c", ["a", "b", "c"], 3)[0]
    array([[ 0.5,  0.5, -1. ]])
    >>> contrast_matrix(["a - b", "b - c"], ["a", "b", "c"], 3)[0]
    array([[ 1., -1.,  0.],
           [ 0.,  1., -1.]])
    """
    if isinstance(contrast, str):
        rows = [_parse_expression(contrast, feature_names, n_regressors)]
        label = f'"{contrast}"'
    elif (
        isinstance(contrast, list | tuple)
        and contrast
        and all(isinstance(c, str) for c in contrast)
    ):
        rows = [_parse_expression(c, feature_names, n_regressors) for c in contrast]
        label = "[" + ", ".join(f'"{c}"' for c in contrast) + "]"
    else:
        try:
            matrix = np.array(contrast, dtype=np.float64)
        except (TypeError, ValueError) as error:
            msg = (
                "contrast must be a vector, a matrix, a string expression or a "
                f"list of strings; got {contrast!r} ({error})."
            )
            raise TypeError(msg) from None
        if matrix.ndim not in (1, 2) or matrix.size == 0:
            msg = (
                "contrast must be a vector (n_regressors,) or a matrix "
                f"(q, n_regressors); got an array of shape {matrix.shape}."
            )
            raise ValueError(msg)
        rows = np.atleast_2d(matrix)
        label = np.array2string(matrix, separator=", ").replace("\n", "")
    matrix = np.array(rows, dtype=np.float64)
    if matrix.shape[1] != n_regressors:
        msg = (
            f"contrast has {matrix.shape[1]} columns, but MassUnivariateOLS was "
            f"fitted with {n_regressors} regressors."
        )
        raise ValueError(msg)
    if not np.all(np.isfinite(matrix)):
        msg = f"contrast {label} contains NaN or inf; its weights must be finite."
        raise ValueError(msg)
    zero_rows = np.flatnonzero(~matrix.any(axis=1))
    if zero_rows.size:
        msg = (
            f"contrast {label} has an all-zero row (row {zero_rows[0]}); every "
            "row must weight at least one regressor."
        )
        raise ValueError(msg)
    return matrix, label


def _parse_expression(expression, feature_names, n_regressors):
    """Evaluate a linear expression over regressor names to a weight vector."""
    if feature_names is None:
        msg = (
            f'contrast "{expression}" names regressors, but the design had no '
            "column names. Fit with a pandas DataFrame, or give the contrast as "
            f"a vector of {n_regressors} weights."
        )
        raise ValueError(msg)
    names = {str(name): i for i, name in enumerate(feature_names)}
    # Backticked names become placeholders that are valid identifiers.
    quoted = {}

    def placeholder(match):
        key = f"__skvoxel_name_{len(quoted)}"
        quoted[key] = match.group(1)
        return key

    source = _BACKTICK_NAME.sub(placeholder, expression)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        msg = (
            f'contrast "{expression}" is not a valid expression; write e.g. '
            '"faces - houses" or "0.5*a + 0.5*b - c" (backticks around names '
            "with spaces or symbols)."
        )
        raise ValueError(msg) from None

    def unit(name):
        name = quoted.get(name, name)
        if name not in names:
            msg = (
                f'contrast "{expression}" names "{name}", which is not a '
                f"regressor; the regressors are {list(names)}."
            )
            raise ValueError(msg)
        vector = np.zeros(n_regressors)
        vector[names[name]] = 1.0
        return vector

    def nonlinear():
        msg = (
            f'contrast "{expression}" is not a linear combination of '
            "regressors: use +, -, and * or / by numbers only."
        )
        return ValueError(msg)

    def evaluate(node):
        # Returns a float (a number) or an ndarray (a weight vector).
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Name):
            return unit(node.id)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = evaluate(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left, right = evaluate(node.left), evaluate(node.right)
            left_vec, right_vec = (
                isinstance(left, np.ndarray),
                isinstance(right, np.ndarray),
            )
            if isinstance(node.op, ast.Add | ast.Sub):
                sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
                if left_vec != right_vec:
                    raise nonlinear()  # a regressor plus a bare number
                return left + sign * right
            if isinstance(node.op, ast.Mult) and not (left_vec and right_vec):
                return left * right
            if isinstance(node.op, ast.Div) and not right_vec:
                return left / right
            raise nonlinear()
        raise nonlinear()

    value = evaluate(tree)
    if not isinstance(value, np.ndarray):
        raise nonlinear()
    return value


# --- Statistics ------------------------------------------------------------------


def t_small_tail(t, df):
    """``P(T > |t|)`` for Student's t on ``df`` degrees of freedom.

    Computed as ``fdtrc(1, df, t**2) / 2`` (``t**2`` follows F(1, df)):
    the same incomplete beta function as ``stdtr(df, -|t|)``, to the same
    accuracy, and several times faster in scipy.

    Parameters
    ----------
    t : ndarray
    df : int

    Returns
    -------
    tail : ndarray of float64
        In (0, 0.5]; 0 where it underflows (``z_from_t`` goes to log space).
    """
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 0.5 * special.fdtrc(1, df, t * t)


def _log_regularized_beta_lower(a, b, log_x):
    """``log I_x(a, b)`` for small ``x``, where ``I_x`` itself underflows.

    Uses ``I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * 2F1(a+b, 1; a+1; x)``,
    whose series converges fast for the tiny ``x`` it is used on. ``x`` is
    given by its logarithm, which stays finite where ``x`` underflows.
    """
    x = np.exp(log_x)
    return (
        a * log_x
        + b * np.log1p(-x)
        - np.log(a)
        - special.betaln(a, b)
        + np.log(special.hyp2f1(a + b, 1.0, a + 1.0, x))
    )


def z_from_t(t, df, *, small_tail=None):
    """Standard normal deviate with the same upper-tail probability as ``t``.

    ``norm.isf(t_dist.sf(t, df))``, computed from the small tail on each side
    (``z = sign(t) * norm.isf(t_dist.sf(|t|))``) and in log space where that
    tail underflows, so it stays finite and accurate for any finite ``t``.

    Parameters
    ----------
    t : ndarray
    df : int
    small_tail : ndarray or None, default=None
        ``P(T > |t|)`` if already computed; it is the costly part.

    Returns
    -------
    z : ndarray of float64

    Examples
    --------
    >>> float(z_from_t(200.0, 10).round(4))
    8.9932
    >>> float(z_from_t(-1e6, 10).round(4))
    -15.8148
    """
    t = np.asarray(t, dtype=np.float64)
    magnitude = np.abs(t)
    if small_tail is None:
        small_tail = t_small_tail(magnitude, df)
    z = np.atleast_1d(-special.ndtri(small_tail))
    far = np.atleast_1d((small_tail < _LOG_SPACE_BELOW) & np.isfinite(magnitude))
    if np.any(far):
        # x = df / (df + t^2), by its logarithm: t^2 may overflow.
        t_far = np.atleast_1d(magnitude)[far]
        log_x = np.log(df) - 2 * np.log(t_far) - np.log1p(df / t_far / t_far)
        log_tail = np.log(0.5) + _log_regularized_beta_lower(df / 2.0, 0.5, log_x)
        z[far] = -special.ndtri_exp(log_tail)
    return np.copysign(z.reshape(t.shape), t)


def z_from_f(f, df_num, df_denom, *, upper_tail=None):
    """Standard normal deviate with the same upper-tail probability as ``F``.

    ``norm.isf(p)`` with ``p = F_dist.sf(f)``; for ``p > 1/2`` it is
    ``norm.ppf`` of the lower tail (precise where ``p`` is near 1), and in log
    space where ``p`` underflows.

    Parameters
    ----------
    f : ndarray
    df_num, df_denom : int
    upper_tail : ndarray or None, default=None
        ``P(F > f)`` if already computed.

    Returns
    -------
    z : ndarray of float64
    """
    f = np.asarray(f, dtype=np.float64)
    upper = special.fdtrc(df_num, df_denom, f) if upper_tail is None else upper_tail
    z = np.atleast_1d(-special.ndtri(upper))
    near_one = np.atleast_1d(upper >= 0.5)
    if np.any(near_one):
        # 1 - upper loses digits there: use the lower tail itself.
        lower = special.fdtr(df_num, df_denom, np.atleast_1d(f)[near_one])
        z[near_one] = special.ndtri(lower)
    far = np.atleast_1d((upper < _LOG_SPACE_BELOW) & np.isfinite(f))
    if np.any(far):
        # x = df_denom / (df_denom + df_num * F), by its logarithm.
        scaled = df_num * np.atleast_1d(f)[far]
        log_x = np.log(df_denom) - np.log(scaled) - np.log1p(df_denom / scaled)
        log_tail = _log_regularized_beta_lower(df_denom / 2.0, df_num / 2.0, log_x)
        z[far] = -special.ndtri_exp(log_tail)
    return z.reshape(f.shape)


def t_statistics(effect, variance_factor, sigma, zero_variance=()):
    """Standard errors and t statistics of contrast rows over voxels.

    The statistic of row ``k`` at voxel ``j`` is
    ``t = effect[k, j] / sqrt(variance_factor[k] * sigma[j]**2)``, with
    ``variance_factor = diag(C pinv(X^T W X) C^T)``.

    Parameters
    ----------
    effect : ndarray of shape (q, n_voxels)
    variance_factor : ndarray of shape (q,)
    sigma : ndarray of shape (n_voxels,)
        Residual standard deviations, exactly 0 at ``zero_variance``.
    zero_variance : array-like of int, default=()
        Indices of zero-variance voxels: their ``t`` is 0 where ``effect`` is
        exactly 0 and ``+-inf`` elsewhere.

    Returns
    -------
    stderr, t : ndarray of shape (q, n_voxels), the dtype of ``effect``
    """
    root = np.sqrt(variance_factor).astype(effect.dtype)
    stderr = root[:, np.newaxis] * sigma[np.newaxis, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = effect / stderr
    if len(zero_variance):  # 0 / 0 there: no effect, so t = 0
        voxels = t[:, zero_variance]
        voxels[effect[:, zero_variance] == 0] = 0.0
        t[:, zero_variance] = voxels
    return stderr, t


def f_statistics(effect, contrast_covariance, sigma2, zero_variance=()):
    """F statistics, p-values and z-scores of a joint contrast over voxels.

    ``F = effect^T pinv(C pinv(X^T W X) C^T) effect / (r * sigma2)`` with
    ``r`` the rank of ``C pinv(X^T W X) C^T`` (redundant rows do not count),
    on ``(r, df_resid_)`` degrees of freedom.

    Parameters
    ----------
    effect : ndarray of shape (q, n_voxels)
    contrast_covariance : ndarray of shape (q, q)
        ``C pinv(X^T W X) C^T``.
    sigma2 : ndarray of shape (n_voxels,)
        Residual variances, exactly 0 at ``zero_variance``.
    zero_variance : array-like of int, default=()
        Indices of zero-variance voxels (``F`` is 0 or ``inf`` there).

    Returns
    -------
    f : ndarray of shape (n_voxels,), the dtype of ``effect``
    df_num : int
    """
    inverse = np.linalg.pinv(contrast_covariance, hermitian=True)
    df_num = int(np.linalg.matrix_rank(contrast_covariance, hermitian=True))
    effect64 = effect.astype(np.float64, copy=False)
    quadratic = np.einsum("kj,kj->j", effect64, inverse @ effect64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = quadratic / (df_num * sigma2.astype(np.float64))
    if len(zero_variance):  # 0 / 0 there: no effect, so F = 0
        no_effect = ~effect[:, zero_variance].any(axis=0)
        f[np.asarray(zero_variance)[no_effect]] = 0.0
    return f.astype(effect.dtype), df_num
