"""MassUnivariateOLS: one linear model fitted to every voxel at once."""

from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _chunking, _ols, _progress, stats
from ._compat import (
    Interval,
    StrOptions,
    _check_sample_weight,
    _fit_context,
    validate_parameter_constraints,
)
from ._validation import reject_complex

__all__ = ["MassUnivariateOLS"]

_EPS64 = np.finfo(np.float64).eps
_ALTERNATIVES = frozenset({"two-sided", "greater", "less"})


class MassUnivariateOLS(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Ordinary (or weighted) least squares fitted to every voxel at once.

    The model for voxel ``j`` is ``Y[:, j] = X @ coef_[:, j] + e_j`` with
    independent errors of variance ``sigma2_[j]`` (divided by the sample
    weight, when weights are given). All voxels share the design, so all are
    estimated by one multiply with its pseudo-inverse:
    ``coef_ = pinv(X) @ Y``.

    ``coef_`` is regressors-first, ``(n_regressors, n_voxels)``, as in the
    GLM literature: row ``i`` is the map of regressor ``i``. This is the
    transpose of :class:`sklearn.linear_model.LinearRegression`'s ``coef_``.

    Parameters
    ----------
    fit_intercept : bool, default=False
        Whether to add a constant regressor. It is appended as the last
        column of the design actually fitted; its coefficients go to
        ``intercept_``, not ``coef_``. Imaging designs usually carry their
        own constant column, hence the default.
    rcond : float or None, default=None
        Singular values of the (weighted) design at or below
        ``rcond * max(singular_values)`` count as zero. ``None`` uses
        ``max(n_samples, n_regressors) * eps``, numpy's ``matrix_rank`` and
        ``lstsq`` threshold, with the ``eps`` of the working dtype (float32
        for float32 data).
    chunk_size : int or "auto", default="auto"
        Voxels per block; "auto" takes about 32 MiB of data per block where
        the blocks are read in place (float64, unweighted) and 8 MiB where
        they are copied, within scikit-learn's ``working_memory``. Results do
        not depend on it.
    n_jobs : int or None, default=None
        Threads fitting voxel blocks side by side, each block's multiplies on
        one BLAS thread. ``None`` or -1: one thread per core; 1: a single
        thread; ``-k``: all cores but ``k - 1``. Results do not depend on it.
    verbose : int or bool, default=0
        Progress of the fit on stderr. 0 (or False): nothing. 1 (or True): a
        progress bar when stderr is a terminal and the fit lasts more than
        half a second; nothing otherwise (pipes, log files, notebooks).
        2 or more: the bar from the start on a terminal, and elsewhere a line
        each time another tenth of the voxels is fitted. Results do not
        depend on it.

    Attributes
    ----------
    pinv_ : ndarray of shape (n_regressors, n_samples)
        The linear map from data to coefficients: ``pinv_ @ Y`` gives
        ``coef_``. Unweighted and without intercept it is ``pinv(X)``; with
        weights ``pinv(W^½ X) W^½``; with ``fit_intercept=True`` it has one
        more row, last, which gives ``intercept_``.
    coef_ : ndarray of shape (n_regressors, n_voxels) or (n_regressors,)
        Least-squares coefficients, one column per voxel (a vector for 1-D
        ``y``). Minimum-norm when the design is rank deficient.
    intercept_ : float or ndarray of shape (n_voxels,)
        ``0.0`` when ``fit_intercept=False``; else the constant's
        coefficients (a float for 1-D ``y``).
    rank_ : int
        Numerical rank of the design actually fitted (the constant column
        included when ``fit_intercept=True``).
    singular_values_ : ndarray of shape (min(n_samples, n_regressors),)
        Singular values of that (weighted) design.
    df_resid_ : int
        Residual degrees of freedom, ``n_samples - rank_``; with weights,
        samples of zero weight do not count.
    rss_ : ndarray of shape (n_voxels,) or float
        Residual sum of squares per voxel (weighted, with weights).
    sigma2_ : ndarray of shape (n_voxels,) or float
        Residual variance ``rss_ / df_resid_``; NaN when ``df_resid_ == 0``.
    r2_ : ndarray of shape (n_voxels,) or float
        Coefficient of determination of each voxel on the training data,
        ``1 - rss_ / tss`` with ``tss`` about the (weighted) mean, as
        ``sklearn.metrics.r2_score(Y, predict(X), multioutput="raw_values")``.
    n_features_in_ : int
        Number of regressors in ``X``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of ``X``, when it is a DataFrame with string names.

    See Also
    --------
    sklearn.linear_model.LinearRegression : The same fit, one voxel per
        output, with ``coef_`` transposed.

    Examples
    --------
    The seed example: a linear trend and a constant, fitted to three data
    vectors with one multiply.

    >>> import numpy as np
    >>> from skvoxel import MassUnivariateOLS
    >>> X = np.ones((12, 2))
    >>> X[:, 0] = np.linspace(-1, 1, 12)
    >>> Y = np.stack([2 * X[:, 0] + 1, -X[:, 0] + 3, np.full(12, 5.0)], axis=1)
    >>> model = MassUnivariateOLS().fit(X, Y)
    >>> model.coef_.round(6)
    array([[ 2., -1.,  0.],
           [ 1.,  3.,  5.]])
    >>> bool(np.allclose(model.pinv_, np.linalg.pinv(X)))
    True
    >>> model.df_resid_
    10
    """

    _parameter_constraints = {
        "fit_intercept": ["boolean"],
        "rcond": [Interval(Real, 0, None, closed="left"), None],
        "chunk_size": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        fit_intercept=False,
        rcond=None,
        chunk_size="auto",
        n_jobs=None,
        verbose=0,
    ):
        self.fit_intercept = fit_intercept
        self.rcond = rcond
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the design ``X`` to every voxel (column) of ``y``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_regressors)
            The design. A DataFrame's column names become
            ``feature_names_in_``, usable in contrasts.
        y : array-like of shape (n_samples, n_voxels) or (n_samples,)
            The data ``Y``: one row per volume, one column per voxel. A
            ``numpy.memmap`` is read block by block, never loaded whole;
            integer data are converted block by block too.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative precision weights (weighted least squares). Samples
            of weight zero drop out of the fit and of ``df_resid_``.

        Returns
        -------
        self : MassUnivariateOLS
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``X`` and ``y`` have different numbers of samples, ``y`` has
            no voxels or more than 2 dimensions, or a voxel's data hold NaN
            or inf or values whose squares overflow or underflow the working
            dtype (the message counts those voxels and names the first).
        """
        reject_complex(X, "X", "MassUnivariateOLS")
        reject_complex(y, "y", "MassUnivariateOLS")
        X, y = validate_data(
            self,
            X,
            y,
            validate_separately=(
                {"dtype": [np.float64, np.float32]},
                # Finiteness of y is checked in the fit's own pass over it.
                {
                    "dtype": None,
                    "ensure_2d": False,
                    "allow_nd": True,
                    "ensure_min_features": 0,
                    "ensure_all_finite": False,
                },
            ),
        )
        _check_data_ndim(y)
        _check_same_n_samples(X, y)
        dtype = _ols.working_dtype(y.dtype)
        data = y.reshape(-1, 1) if y.ndim == 1 else y
        n_samples, n_voxels = data.shape
        if n_voxels == 0:
            msg = (
                f"y has shape {y.shape}: 0 voxels. MassUnivariateOLS needs at "
                "least one voxel (column) of data."
            )
            raise ValueError(msg)

        design = X.astype(np.float64)
        if self.fit_intercept:
            design = np.hstack([design, np.ones((n_samples, 1))])
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        # One BLAS thread from the design's factorisation to the last block:
        # threaded BLAS leaves its threads spinning into whatever runs next,
        # here the blocks' own threads (see one_blas_thread).
        with _chunking.one_blas_thread():
            factors = _ols.factor_design(
                design, sample_weight, rcond=self.rcond, dtype=dtype
            )
            with np.errstate(over="ignore"):  # (checked just below)
                kernel = _ols.block_kernel(factors, sample_weight, dtype)
                pinv = factors.pinv.astype(dtype)
            _check_kernel_range(kernel, pinv, weighted=sample_weight is not None)
            n_effective = (
                n_samples
                if sample_weight is None
                else int(np.count_nonzero(sample_weight))
            )
            df_resid = n_effective - factors.rank
            rounding = _ols.rounding_tolerance(n_effective, dtype)
            coef = np.empty((design.shape[1], n_voxels), dtype=dtype)
            rss, r2, sigma2, inverse_sigma = (
                np.empty(n_voxels, dtype=dtype) for _ in range(4)
            )
            # Per block: its zero-variance voxels and their data's norms,
            # whether its data were finite and which of its voxels' sums of
            # squares underflow (blocks may finish in any order).
            zero_variance, finite, underflow = {}, {}, {}
            tiny = np.finfo(dtype).tiny
            # Below this, subnormal squares cost rss more than the rounding
            # tolerance (see _underflowed).
            scale_floor = 5.0 * np.sqrt(n_effective) * tiny
            n_threads = _chunking.resolve_n_threads(self.n_jobs)
            n_block, n_strip = _block_and_strip(
                self.chunk_size,
                data,
                dtype,
                n_threads,
                shifted=not _ols.reads_in_place(data, dtype, sample_weight),
                # The multiply's output (and y0 when shifted) and the mean:
                # rank + 3 rows at most.
                n_work_rows=factors.rank + 3,
            )

            def fit_one(block_data, block, buffers):
                # Written in place: no block-sized copies, no fresh pages. The
                # sums only the statistics need stay in the thread's buffers.
                width = block.stop - block.start
                sums = (buffers.get(name, 1, dtype, width)[0] for name in _SUMS)
                out = _ols.BlockFit(coef[:, block], rss[block], *sums)
                _ols.fit_block(kernel, block_data, buffers, out=out, strip=n_strip)
                # The statistics while the block's sums are in cache.
                zero = _statistics_from_sums(
                    out,
                    df_resid,
                    rounding,
                    r2[block],
                    sigma2[block],
                    inverse_sigma[block],
                )
                zero_variance[block.start] = (
                    zero + block.start,
                    np.sqrt(out.sum_squares[zero]),
                )
                finite[block.start] = bool(np.isfinite(out.rss).all())
                underflow[block.start] = block.start + _underflowed(
                    out, tiny, scale_floor
                )

            with _progress.Progress(
                n_voxels, verbose=self.verbose, label="MassUnivariateOLS.fit"
            ) as progress:
                _chunking.for_each_block(
                    fit_one,
                    data,
                    n_block,
                    n_threads=n_threads,
                    progress=progress.update,
                )
        if not all(finite.values()):
            _check_finite_fit(rss)
        if any(voxels.size for voxels in underflow.values()):
            _raise_underflow(
                np.concatenate(list(underflow.values())),
                n_voxels,
                dtype,
                weighted=sample_weight is not None,
            )

        self.pinv_ = pinv
        self.rank_ = factors.rank
        self.singular_values_ = factors.singular_values
        self.df_resid_ = df_resid
        # What every later contrast needs, so none refits or reads y again.
        self._cov_unscaled = factors.cov_unscaled
        self._row_space = factors.row_space
        self._rounding = rounding
        starts = sorted(zero_variance)
        self._zero_variance_index = np.concatenate(
            [zero_variance[start][0] for start in starts]
        )
        self._zero_variance_norm = np.concatenate(
            [zero_variance[start][1] for start in starts]
        )
        # For t maps: 1 / sigma, a multiply per voxel instead of a divide
        # (0 where the variance is zero up to rounding: see
        # _zero_variance_effect).
        self._inverse_sigma = inverse_sigma

        if self.fit_intercept:
            coef, intercept = coef[:-1], coef[-1]
        else:
            intercept = 0.0
        if y.ndim == 1:
            coef = coef[:, 0]
            intercept = intercept if np.isscalar(intercept) else float(intercept[0])
            rss, sigma2, r2 = float(rss[0]), float(sigma2[0]), float(r2[0])
        self.coef_ = coef
        self.intercept_ = intercept
        self.rss_ = rss
        self.sigma2_ = sigma2
        self.r2_ = r2
        return self

    def predict(self, X):
        """Predict the data of every voxel from a design.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_regressors)
            A design with the columns the model was fitted with.

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_voxels) or (n_samples,)
            ``X @ coef_ + intercept_``.
        """
        check_is_fitted(self)
        reject_complex(X, "X", "MassUnivariateOLS")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X @ self.coef_ + self.intercept_

    # Checked with scikit-learn's constraint validation, called directly: its
    # validate_params decorator costs 0.1 ms a call, as much as a whole t
    # map of 50,000 voxels.
    _t_test_constraints = {
        "contrast": ["array-like", str],
        "alternative": [StrOptions(_ALTERNATIVES)],
    }
    _f_test_constraints = {"contrast": ["array-like", str]}

    def t_test(self, contrast, alternative="two-sided"):
        """t test of a contrast at every voxel.

        For a contrast vector ``c`` the effect is ``c @ coef_``, its standard
        error ``sqrt(c pinv(X^T W X) c^T * sigma2_)``, and
        ``t = effect / stderr`` follows Student's t with ``df_resid_``
        degrees of freedom under the null hypothesis ``c @ beta = 0``. The
        p-value is two-sided by default. Voxels whose residual variance is
        zero up to rounding get ``t = 0`` where the effect is zero and
        ``+-inf`` where it is not, with no warning.

        Parameters
        ----------
        contrast : array-like, str or list of str
            A vector ``(n_regressors,)``; a matrix ``(q, n_regressors)`` or a
            list of expressions, giving ``q`` maps; or an expression over
            ``feature_names_in_`` such as ``"faces - houses"`` or
            ``"0.5*a + 0.5*b - c"`` (backticks around names that are not
            identifiers).
        alternative : {"two-sided", "greater", "less"}, default="two-sided"
            The alternative hypothesis for ``p_value``. ``z_score`` does not
            depend on it: it always has the upper-tail probability of ``t``.

        Returns
        -------
        result : ContrastResult
            ``effect``, ``stderr``, ``stat`` (t), ``p_value`` and ``z_score``
            of shape ``(n_voxels,)`` for one contrast, ``(q, n_voxels)`` for
            ``q``; ``df_num`` 1, ``df_denom`` ``df_resid_``.

        Raises
        ------
        ValueError
            If the contrast is not estimable under a rank-deficient design,
            names an unknown regressor, has the wrong length, or the model
            has no residual degrees of freedom.

        Examples
        --------
        >>> import numpy as np
        >>> import pandas as pd
        >>> from skvoxel import MassUnivariateOLS
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"faces": rng.normal(size=30),
        ...                   "houses": rng.normal(size=30), "const": 1.0})
        >>> Y = X.to_numpy() @ [[2.0, 0.0], [0.5, 0.0], [10.0, 10.0]]
        >>> Y += rng.normal(size=(30, 2))
        >>> result = MassUnivariateOLS().fit(X, Y).t_test("faces - houses")
        >>> result.stat.shape, result.df_denom
        ((2,), 27)
        >>> bool(result.p_value[0] < 1e-6), bool(result.p_value[1] > 0.01)
        (True, True)
        """
        # Arrays and expressions with a known alternative pass the constraints
        # (t_test runs thousands of times on a fit): anything else is checked.
        known = isinstance(alternative, str) and alternative in _ALTERNATIVES
        if not (known and isinstance(contrast, np.ndarray | str)):
            validate_parameter_constraints(
                self._t_test_constraints,
                {"contrast": contrast, "alternative": alternative},
                caller_name="t_test",
            )
        matrix, weights, rows, row_max = self._contrast_rows(contrast, "t_test")
        unit_covariance, unit_weights, scale = self._unit_rows(matrix, weights, row_max)
        unit_root = np.sqrt(np.diag(unit_covariance))
        root = unit_root if scale is None else scale * unit_root  # sqrt(c V c^T)
        # (sigma2_ is a float for 1-D y.)
        sigma2 = np.asarray(self.sigma2_, dtype=rows.dtype).reshape(-1)
        zero = self._zero_variance_index
        # t = (c / sqrt(c V c^T)) @ coef / sigma: one read of the rows the
        # contrast uses, one map written; effect and stderr are computed if
        # and when they are read, from what this fit left (a later fit
        # replaces the model's arrays, it does not write into them).
        t = (unit_weights / unit_root[:, np.newaxis]).astype(rows.dtype) @ rows
        np.multiply(t, self._inverse_sigma, out=t)
        if zero.size:  # sigma is 0 there: t is 0 without an effect, else +-inf
            zero_effect = self._zero_variance_effect(unit_weights, rows, unit_root)
            infinite = np.copysign(np.inf, zero_effect)
            t[:, zero] = np.where(zero_effect == 0, 0.0, infinite)
        one_map = isinstance(contrast, str) or np.ndim(contrast) == 1
        shape = partial(_result_shape, one_map=one_map, one_voxel=self.coef_.ndim == 1)

        def effect():
            unit_effect = self._unit_effect(unit_weights, rows, unit_root)
            return shape(_scaled_back(unit_effect, scale))

        def stderr():
            # Beyond float32: inf (as the effect), and inf * 0 where zeroed.
            with np.errstate(over="ignore", invalid="ignore"):
                error = root.astype(rows.dtype)[:, np.newaxis] * np.sqrt(sigma2)
            error[:, zero] = 0.0  # (the variance is rounding there)
            return shape(error)

        return stats.ContrastResult._deferred_fields(
            {"effect": effect, "stderr": stderr},
            stat=shape(t),
            df_num=1,
            df_denom=self.df_resid_,
            stat_type="t",
            alternative=alternative,
        )

    def f_test(self, contrast):
        """F test of a joint contrast at every voxel.

        For a contrast matrix ``C`` (``q`` rows) the statistic is
        ``F = (C b)^T pinv(C pinv(X^T W X) C^T) (C b) / (r * sigma2_)``, with
        ``r`` the rank of ``C pinv(X^T W X) C^T``; under the null hypothesis
        ``C beta = 0`` it follows F with ``(r, df_resid_)`` degrees of
        freedom. A one-row F equals the square of the t statistic.

        Parameters
        ----------
        contrast : array-like, str or list of str
            A matrix ``(q, n_regressors)``, a vector (one row), an
            expression, or a list of expressions (one per row), as for
            :meth:`t_test`.

        Returns
        -------
        result : ContrastResult
            ``effect`` of shape ``(q, n_voxels)``; ``stat`` (F), ``p_value``
            (upper tail) and ``z_score`` of shape ``(n_voxels,)``;
            ``stderr`` None; ``df_num`` ``r``, ``df_denom`` ``df_resid_``.

        Examples
        --------
        >>> import numpy as np
        >>> from skvoxel import MassUnivariateOLS
        >>> rng = np.random.default_rng(0)
        >>> X = np.column_stack([rng.normal(size=(40, 2)), np.ones(40)])
        >>> Y = rng.normal(size=(40, 5))
        >>> result = MassUnivariateOLS().fit(X, Y).f_test([[1, 0, 0], [0, 1, 0]])
        >>> result.stat.shape, result.df_num, result.df_denom
        ((5,), 2, 37)
        """
        validate_parameter_constraints(
            self._f_test_constraints, {"contrast": contrast}, caller_name="f_test"
        )
        matrix, weights, rows, row_max = self._contrast_rows(contrast, "f_test")
        # F is the same for rows of any scale: computed from the unit rows.
        unit_covariance, unit_weights, scale = self._unit_rows(matrix, weights, row_max)
        unit_norm = np.sqrt(np.diag(unit_covariance))
        unit_effect = self._unit_effect(unit_weights, rows, unit_norm)
        effect = _scaled_back(unit_effect, scale)
        zero = self._zero_variance_index
        sigma2 = np.asarray(self.sigma2_, dtype=effect.dtype).reshape(-1)
        f, df_num = stats.f_statistics(
            unit_effect, unit_covariance, sigma2, zero_variance=zero
        )
        shape = partial(_result_shape, one_map=False, one_voxel=self.coef_.ndim == 1)
        return stats.ContrastResult(
            effect=shape(effect),
            stderr=None,
            stat=shape(f),
            df_num=df_num,
            df_denom=self.df_resid_,
            stat_type="F",
            alternative="greater",
        )

    def _contrast_rows(self, contrast, method):
        """Validate a contrast; return it and what its maps are computed from.

        Returns
        -------
        matrix : ndarray of shape (q, n_regressors)
        weights : ndarray of shape (q, n_rows)
            The columns of ``matrix`` that weight ``rows``.
        rows : ndarray of shape (n_rows, n_voxels)
            The rows of ``coef_`` the contrast uses (see :func:`_used_rows`).
        row_max : list of float
            Each row's largest ``|weight|`` (see :meth:`_unit_rows`).
        """
        if not hasattr(self, "_inverse_sigma"):  # (cheaper than the check)
            check_is_fitted(self)
        if self.df_resid_ <= 0:
            msg = (
                f"MassUnivariateOLS.{method}() needs residual degrees of freedom, "
                f"but df_resid_ is {self.df_resid_}: "
                f"{self.df_resid_ + self.rank_} samples for a design of rank "
                f"{self.rank_}. Use more samples or fewer regressors."
            )
            raise ValueError(msg)
        n_regressors = self.n_features_in_
        matrix, label, row_max = stats._checked_contrast(
            contrast, getattr(self, "feature_names_in_", None), n_regressors
        )
        self._check_estimable(matrix, label)
        # Never empty: rows are non-zero.
        used = np.flatnonzero(matrix[0] if len(matrix) == 1 else matrix.any(axis=0))
        coef = self.coef_.reshape(n_regressors, -1)
        rows, weights_at = _used_rows(coef, used)
        return matrix, matrix[:, weights_at], rows, row_max

    def _zero_variance_effect(self, weights, rows, row_norm):
        """The effects at zero-variance voxels, 0 where they are rounding noise.

        ``|effect|`` is rounding when below eps-ish * ``||c^T pinv|| * ||y||``,
        and ``||c^T pinv(W^1/2 X)||^2 = c^T pinv(X^T W X) c``: ``row_norm``
        holds ``sqrt(diag(C pinv(X^T W X) C^T))``. None without such voxels.
        """
        zero = self._zero_variance_index
        if not zero.size:
            return None
        effect = weights.astype(rows.dtype) @ rows[:, zero]
        scale = row_norm[:, np.newaxis] * self._zero_variance_norm
        rounding = np.abs(effect) <= self._rounding * scale
        return np.where(rounding, 0.0, effect).astype(rows.dtype)

    def _unit_effect(self, unit_weights, rows, unit_norm):
        """``unit_weights @ rows`` ``(q, n_voxels)``: the effects of the unit
        rows (see :meth:`_unit_rows`), 0 at zero-variance voxels where they
        are rounding (see :meth:`_zero_variance_effect`, ``unit_norm`` its
        ``row_norm``)."""
        effect = unit_weights.astype(rows.dtype) @ rows
        zero = self._zero_variance_index
        if zero.size:
            effect[:, zero] = self._zero_variance_effect(unit_weights, rows, unit_norm)
        return effect

    def _unit_rows(self, matrix, weights, row_max):
        """The contrast's rows divided by ``row_max``, their largest
        ``|weight|``: ``C pinv(X^T W X) C^T`` and the weights of ``rows``
        for those unit rows, and ``row_max`` as an array (None when all 1).

        t and F do not depend on a row's scale, but ``C V C^T`` of weights
        like 1e-200 or 1e200 underflows or overflows: the statistics use
        unit rows; the effect and its standard error are scaled back.
        """
        if row_max.count(1.0) == len(row_max):  # "a - b": nothing to do
            return self._contrast_covariance(matrix), weights, None
        scale = np.asarray(row_max)[:, np.newaxis]
        return (
            self._contrast_covariance(matrix / scale),
            weights / scale,
            scale[:, 0],
        )

    def _contrast_covariance(self, matrix):
        """``C pinv(X^T W X) C^T`` over the regressors of ``coef_``."""
        n_regressors = self.n_features_in_
        cov = self._cov_unscaled[:n_regressors, :n_regressors]
        return matrix @ cov @ matrix.T

    def _check_estimable(self, matrix, label):
        """Raise unless every row lies in the row space of the design."""
        if self.rank_ == self._row_space.shape[0]:
            return  # full rank: every contrast is estimable
        padded = np.zeros((matrix.shape[0], self._row_space.shape[0]))
        padded[:, : matrix.shape[1]] = matrix
        outside = padded - (padded @ self._row_space) @ self._row_space.T
        norms = np.linalg.norm(padded, axis=1)
        if np.any(np.linalg.norm(outside, axis=1) > np.sqrt(_EPS64) * norms):
            msg = (
                f"contrast {label} is not estimable: the design is rank "
                f"deficient (rank {self.rank_} < {padded.shape[1]})."
            )
            raise ValueError(msg)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # One target or many: a single voxel is as native as a million.
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags


def _scaled_back(unit_effect, scale):
    """The effects of the contrast's own rows from those of its unit rows."""
    if scale is None:
        return unit_effect
    # In float64: a float32 effect of weights beyond float32 is inf, as it
    # should be, and 0 stays 0.
    with np.errstate(over="ignore"):
        return (unit_effect * scale[:, np.newaxis]).astype(
            unit_effect.dtype, copy=False
        )


def _result_shape(array, one_map, one_voxel):
    """A contrast's maps without the contrast axis (one row given as a vector
    or an expression) and without the voxel axis (a model fitted on 1-D y)."""
    array = array[0] if one_map else array
    return array[..., 0][()] if one_voxel else array


def _used_rows(coef, used):
    """The rows ``used`` of ``coef``, read in place wherever possible.

    A contrast reads only the maps it weights: "a - b" reads two rows of
    ``coef_`` (a strided view, which BLAS reads in place), not every
    regressor's. Rows at uneven intervals are read as the whole span from
    the first to the last (the caller gives the span's weights) when it is
    at most twice as many rows, as gathering them would read and write each
    once more; otherwise they are gathered into a copy.

    Returns
    -------
    rows : ndarray of shape (n_rows, n_voxels)
    weights_at : ndarray of int or slice
        The columns of a contrast matrix that weight ``rows``.
    """
    first, last = used[0], used[-1]
    step = used[1] - first if used.size > 1 else 1
    if used.size <= 2 or (np.diff(used) == step).all():
        return coef[first : last + 1 : step], used
    if last + 1 - first <= 2 * used.size:
        return coef[first : last + 1], slice(first, last + 1)
    return coef[used], used


# A strip's rows are read from memory faster when long, and its buffer is
# re-read (sum of squares, multiply) faster when small. float32, one thread:
# rows of 11-16 KB were shifted at 2.3-2.6 values a nanosecond, rows of 4-10
# KB at 1.3-1.5 (n=400); with 2,000 samples no row that long fits a small
# buffer, and buffers of 2-3 MB fitted faster than of 5-6 MB (W3: strips of
# 250 or 375 voxels against 655 or 750). So strips widen to rows of
# STRIP_ROW_BYTES where such a strip's buffer stays within STRIP_BYTES: W1 in
# float32 was fitted 1.05-1.07x faster with strips of 3,000 voxels than of
# 1,500 (15 and 21 paired rounds).
STRIP_ROW_BYTES = 12 * 2**10
STRIP_BYTES = 5 * 2**20


def _block_and_strip(chunk_size, data, dtype, n_threads, *, shifted, n_work_rows):
    """Voxels per block, and per strip of a block shifted into a buffer.

    Blocks of data in memory are views: they cost no memory but their working
    rows, so they are large (few calls per voxel, which matters for threads
    sharing Python's lock). Shifted ones are copied into a buffer a strip at
    a time; blocks read from a memmap's file into a buffer are copies
    themselves, and are shifted whole. The working arrays of the blocks in
    flight and the strips' buffers hold at most ``WORK_SHARE`` of the data
    between them, half each (above the smallest sizes ``resolve_chunk_size``
    allows); but strips whose rows would be shorter than ``STRIP_ROW_BYTES``
    widen to that length where their buffer stays within ``STRIP_BYTES``,
    taking up to ``WORK_SHARE`` on their own (see ``STRIP_ROW_BYTES``).

    Returns
    -------
    n_block : int
    n_strip : int or None
        None when the block is not shifted, or shifted whole.
    """
    n_samples, n_voxels = data.shape
    if _chunking.reads_from_file(data):
        n_block = _chunking.resolve_chunk_size(
            chunk_size, n_samples, n_voxels, dtype, n_threads, n_work_rows=n_work_rows
        )
        return n_block, None
    share = _chunking.WORK_SHARE / 2 if shifted else _chunking.WORK_SHARE
    n_block = _chunking.resolve_chunk_size(
        chunk_size,
        n_samples,
        n_voxels,
        dtype,
        n_threads,
        in_place=True,
        n_work_rows=n_work_rows,
        work_share=share,
    )
    if not shifted:
        return n_block, None
    n_strip = _chunking.resolve_chunk_size(
        "auto", n_samples, n_voxels, dtype, n_threads, work_share=share
    )
    if n_samples * STRIP_ROW_BYTES <= STRIP_BYTES:
        long_rows = _chunking.resolve_chunk_size(
            "auto",
            n_samples,
            n_voxels,
            dtype,
            n_threads,
            block_bytes=n_samples * STRIP_ROW_BYTES,
        )
        n_strip = max(n_strip, long_rows)
    return n_block, min(n_strip, n_block)


def _check_data_ndim(y):
    """Reject data with more than two dimensions (images not yet flattened)."""
    if y.ndim > 2:
        msg = (
            f"y has {y.ndim} dimensions (shape {y.shape}), but "
            "MassUnivariateOLS expects (n_samples, n_voxels) or (n_samples,). "
            "Flatten images into voxel columns first, e.g. with VoxelMasker."
        )
        raise ValueError(msg)


def _check_same_n_samples(X, y):
    """Raise when the design and the data have different sample counts."""
    if X.shape[0] != y.shape[0]:
        msg = (
            f"X has {X.shape[0]} samples but y has {y.shape[0]}: the design "
            "and the data need one row per sample (volume) each."
        )
        raise ValueError(msg)


def _check_finite_fit(rss):
    """Raise when some voxel's data held NaN or inf (seen in its rss)."""
    bad = ~np.isfinite(rss)
    if np.any(bad):
        n_bad = int(np.count_nonzero(bad))
        first = int(np.flatnonzero(bad)[0])
        msg = (
            f"y contains NaN or inf (or values too large to square) in "
            f"{n_bad} of {rss.size} voxels (first: column {first}); the data "
            "must be finite. Mask those voxels out or fill them before fitting."
        )
        raise ValueError(msg)


def _check_kernel_range(kernel, pinv, *, weighted):
    """Raise when the design's factors overflow the working dtype (float32
    with weights or regressors of extreme scale): the fit would be inf."""
    arrays = [pinv, kernel.projector, kernel.shifted_coef_map]
    if kernel.sqrt_weight is not None:
        arrays.append(kernel.sqrt_weight)
    if all(np.isfinite(array).all() for array in arrays):
        return
    dtype = pinv.dtype
    if weighted:
        what = "The design's factors with sample_weight (W^1/2 and pinv(W^1/2 X))"
        fix = "Scale sample_weight by a constant (t, F, p-values and R^2 do not change)"
    else:
        what = "The design's pseudo-inverse"
        fix = "Rescale the design's columns"
    msg = (
        f"{what} hold values beyond the range of {dtype}, so a {dtype} fit "
        f"would overflow. {fix}, or fit float64 data."
    )
    raise ValueError(msg)


def _underflowed(fit, tiny, scale_floor):
    """A block's voxels whose sums of squares lost digits to underflow.

    Squares below ``tiny`` (the smallest normal number) are subnormal: each
    is off by up to ``tiny * eps``. ``rss`` is a difference of sums of
    ``n`` squares and at least 1 % of the sum it came from (else the voxel
    is redone, with squares as small), so it keeps the rounding tolerance
    ``10 sqrt(n) eps`` while that sum, ``rss_scale``, is at least
    ``5 sqrt(n) tiny`` (``scale_floor``). A zero ``rss_scale`` is a
    constant voxel, unless its data's whole sum of squares is below ``tiny``
    too while its coefficients are not zero: squares that all rounded to 0.
    All-zero voxels (background) are fine.

    Returns
    -------
    voxels : ndarray of int
        Positions within the block.
    """
    scale, sum_squares = fit.rss_scale, fit.sum_squares
    voxels = np.flatnonzero((scale < scale_floor) | (sum_squares < tiny))
    if voxels.size:
        lost = scale[voxels] > 0
        lost |= (sum_squares[voxels] < tiny) & fit.coef[:, voxels].any(axis=0)
        voxels = voxels[lost]
    return voxels


def _raise_underflow(voxels, n_voxels, dtype, *, weighted):
    """Raise for voxels whose data are too small to square in ``dtype``."""
    data = "y times the square roots of sample_weight" if weighted else "y"
    scalable = "y (or sample_weight)" if weighted else "y"
    fix = f"Multiply {scalable} by a constant such as 2.0**64"
    msg = (
        f"{data} has values too small to square in {voxels.size} of "
        f"{n_voxels} voxels (first: column {int(voxels.min())}): their squares "
        f"fall below {np.finfo(dtype).tiny:.3g}, the smallest normal {dtype}, "
        "and lose their digits, so their residual variances, t and F would be "
        f"wrong. {fix}: t, F, p-values and R^2 do not change."
    )
    raise ValueError(msg)


# The per-voxel sums a block's statistics need beyond rss (BlockFit's fields).
_SUMS = ("tss", "sum_squares", "rss_scale")


def _statistics_from_sums(sums, df_resid, rounding, r2, sigma2, inverse_sigma):
    """A block's R^2, residual variance and 1 / sd from its sums, into the arrays.

    ``sigma2 = rss / df_resid`` (NaN without residual degrees of freedom);
    ``inverse_sigma`` is ``1 / sqrt(sigma2)``, but 0 exactly where the
    variance is zero up to rounding: ``rss`` below ``rounding`` times the sum
    of squares it was computed from (see
    ``MassUnivariateOLS._zero_variance_effect``).
    R^2 is ``1 - rss / tss``, as ``r2_score`` defines it; constant voxels
    (``tss`` zero up to rounding) follow ``r2_score``'s ``force_finite``: 1
    when fitted exactly, 0 otherwise.

    Parameters
    ----------
    sums : skvoxel._ols.BlockFit
        The block's ``rss``, ``tss`` and ``rss_scale``.
    df_resid : int
    rounding : float
        :func:`skvoxel._ols.rounding_tolerance` of the fit.
    r2, sigma2, inverse_sigma : ndarray of shape (n_block,)
        Written in place.

    Returns
    -------
    zero : ndarray of int
        The block's zero-variance voxels, positions within the block.
    """
    rss, tss, scale = sums.rss, sums.tss, sums.rss_scale
    zero_residual = rss <= rounding * scale
    constant = tss <= rounding * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(rss, tss, out=r2)
        np.subtract(1.0, r2, out=r2)
    r2[constant] = np.where(zero_residual[constant], 1.0, 0.0)
    if df_resid > 0:
        np.divide(rss, rss.dtype.type(df_resid), out=sigma2)
    else:
        sigma2.fill(np.nan)
    np.sqrt(sigma2, out=inverse_sigma)
    with np.errstate(divide="ignore"):
        np.divide(1.0, inverse_sigma, out=inverse_sigma)
    zero = np.flatnonzero(zero_residual)
    inverse_sigma[zero] = 0.0
    return zero
