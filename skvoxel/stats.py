"""Voxelwise inference: contrasts, t and F statistics, p-values, z-scores."""

import ast
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from numbers import Real

import numpy as np
from scipy import stats

from . import _distributions
from ._compat import StrOptions, validate_params
from ._distributions import t_small_tail, z_from_f, z_from_t

__all__ = [
    "ContrastResult",
    "adjust_p_values",
    "contrast_matrix",
    "f_statistics",
    "t_small_tail",
    "z_from_f",
    "z_from_t",
]


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
    :meth:`MassUnivariateOLS.t_test` likewise leaves ``effect`` and
    ``stderr`` to be computed when first read: a t map then writes one map,
    not three. Pickling a result computes them.
    Maps of 32,768 values or more read them off tables fitted to scipy for
    their degrees of freedom, within 1e-12 of scipy's values (see
    ``skvoxel._distributions``).

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

    @classmethod
    def _deferred_fields(cls, deferred, **fields):
        """A result whose fields named in ``deferred`` are computed when read.

        ``deferred`` maps field names to functions of no argument; each is
        called at most once, on the first read of its field.
        """
        result = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(result, name, value)
        object.__setattr__(result, "_deferred", dict(deferred))
        return result

    def __getattr__(self, name):
        # Reached only for a deferred field not yet read (see _deferred_fields).
        deferred = self.__dict__.get("_deferred", {})
        if name not in deferred:
            msg = f"{type(self).__name__!r} object has no attribute {name!r}"
            raise AttributeError(msg)
        value = deferred[name]()
        object.__setattr__(self, name, value)
        return value

    def __getstate__(self):
        # Deferred fields hold functions: pickle their values instead.
        state = dict(self.__dict__)
        for name in state.pop("_deferred", ()):
            state[name] = getattr(self, name)
        return state

    @cached_property
    def p_value(self):
        """p-value of ``stat`` under ``alternative``, in the data's dtype."""
        if self.stat_type == "F":
            p = self._small_tail
        elif self.alternative == "two-sided":
            # Straight into the data's dtype: no float64 copy of the map.
            p = np.empty(np.shape(self.stat), dtype=np.asarray(self.stat).dtype)
            np.multiply(self._small_tail, 2.0, out=p, casting="same_kind")
        else:
            # P(T > t) is the small tail for t >= 0, its complement below 0.
            upper_side = np.asarray(self.stat) >= 0
            if self.alternative == "less":
                upper_side = ~upper_side
            p = np.where(upper_side, self._small_tail, 1.0 - self._small_tail)
        return _like_stat(p, self.stat)

    @cached_property
    def z_score(self):
        """Normal deviate with the upper-tail probability of ``stat``."""
        z = _distributions.z_score(
            self.stat_type,
            self.stat,
            self.df_num,
            self.df_denom,
            self._small_tail,
            dtype=np.asarray(self.stat).dtype,
        )
        return _like_stat(z, self.stat)

    @cached_property
    def _small_tail(self):
        """``P(T > |t|)``, or ``P(F > f)``: computed once for p and z."""
        return _distributions.small_tail(
            self.stat_type, self.stat, self.df_num, self.df_denom
        )

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
    label : object
        A readable name of the contrast for messages (its ``str``, formatted
        only when a message needs it).

    Examples
    --------
    >>> contrast_matrix("0.5*a + 0.5*b - c", ["a", "b", "c"], 3)[0]
    array([[ 0.5,  0.5, -1. ]])
    >>> contrast_matrix(["a - b", "b - c"], ["a", "b", "c"], 3)[0]
    array([[ 1., -1.,  0.],
           [ 0.,  1., -1.]])
    """
    matrix, label, _ = _checked_contrast(contrast, feature_names, n_regressors)
    return matrix, label


def _checked_contrast(contrast, feature_names, n_regressors):
    """:func:`contrast_matrix`, and each row's largest ``|weight|`` (a list of
    floats, all positive): the scale that t and F do not depend on."""
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
        label = _ArrayLabel(matrix)
        rows = matrix.reshape(1, -1) if matrix.ndim == 1 else matrix
    # A new array for a list of rows; arrays were copied above.
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.shape[1] != n_regressors:
        msg = (
            f"contrast has {matrix.shape[1]} columns, but MassUnivariateOLS was "
            f"fitted with {n_regressors} regressors."
        )
        raise ValueError(msg)
    # One reduction for both checks: a row's largest |weight| is NaN or inf
    # when the row holds one, 0 when the row is all zero.
    row_max = np.maximum.reduce(np.abs(matrix), axis=1).tolist()
    if not all(map(math.isfinite, row_max)):
        msg = f"contrast {label} contains NaN or inf; its weights must be finite."
        raise ValueError(msg)
    if not all(row_max):
        zero_rows = np.flatnonzero(np.asarray(row_max) == 0)
        msg = (
            f"contrast {label} has an all-zero row (row {zero_rows[0]}); every "
            "row must weight at least one regressor."
        )
        raise ValueError(msg)
    return matrix, label, row_max


class _ArrayLabel:
    """An array contrast's name in messages, printed only if one is raised
    (numpy's printing costs more than a whole t test on small data)."""

    def __init__(self, matrix):
        self._matrix = matrix

    def __str__(self):
        return np.array2string(self._matrix, separator=", ").replace("\n", "")


def _parse_expression(expression, feature_names, n_regressors):
    """Evaluate a linear expression over regressor names to a weight vector.

    Parsing costs more than a t map of many voxels, and the same few
    expressions come back for every fit of a design: each is parsed once.
    The vector is shared and read-only; :func:`contrast_matrix` stacks the
    rows into an array of its own.
    """
    names = None if feature_names is None else tuple(map(str, feature_names))
    return _parsed_expression(expression, names, n_regressors)


@lru_cache(maxsize=1024)
def _parsed_expression(expression, feature_names, n_regressors):
    """:func:`_parse_expression` over hashable names (a read-only vector)."""
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
                if right == 0.0:
                    msg = f'contrast "{expression}" divides by zero.'
                    raise ValueError(msg)
                return left / right
            raise nonlinear()
        raise nonlinear()

    # Weights that overflow are reported as non-finite by the caller.
    with np.errstate(over="ignore", invalid="ignore"):
        value = evaluate(tree)
    if not isinstance(value, np.ndarray):
        raise nonlinear()
    value.flags.writeable = False  # shared by every call with this key
    return value


# --- Statistics ------------------------------------------------------------------


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
        Residual variances (not read at ``zero_variance``).
    zero_variance : array-like of int, default=()
        Indices of zero-variance voxels: ``F`` is ``inf`` there where the
        effect is not zero, 0 where it is.

    Returns
    -------
    f : ndarray of shape (n_voxels,), the dtype of ``effect``
    df_num : int
    """
    inverse = np.linalg.pinv(contrast_covariance, hermitian=True)
    df_num = int(np.linalg.matrix_rank(contrast_covariance, hermitian=True))
    effect64 = effect.astype(np.float64, copy=False)
    quadratic = np.einsum("kj,kj->j", effect64, inverse @ effect64)
    f = np.multiply(sigma2, df_num, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(quadratic, f, out=f)
    zero_variance = np.asarray(zero_variance, dtype=np.intp)
    if zero_variance.size:  # sigma2 is rounding there
        has_effect = effect[:, zero_variance].any(axis=0)
        f[zero_variance] = np.where(has_effect, np.inf, 0.0)
    return f.astype(effect.dtype, copy=False), df_num
