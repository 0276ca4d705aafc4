"""MassUnivariateOLS: one linear model fitted to every voxel at once."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _chunking, _ols
from ._compat import Interval, StrOptions, _check_sample_weight, _fit_context

__all__ = ["MassUnivariateOLS"]


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
        Voxels per block; "auto" sizes blocks from scikit-learn's
        ``working_memory``. Results do not depend on it.

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
    }

    def __init__(self, *, fit_intercept=False, rcond=None, chunk_size="auto"):
        self.fit_intercept = fit_intercept
        self.rcond = rcond
        self.chunk_size = chunk_size

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
        """
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
        factors = _ols.factor_design(
            design, sample_weight, rcond=self.rcond, dtype=dtype
        )

        pinv = factors.pinv.astype(dtype)
        design_work = design.astype(dtype)
        weight_work = None if sample_weight is None else sample_weight.astype(dtype)
        coef = np.empty((design.shape[1], n_voxels), dtype=dtype)
        rss = np.empty(n_voxels, dtype=dtype)
        n_block = _chunking.resolve_chunk_size(
            self.chunk_size, n_samples, n_voxels, dtype
        )
        for block in _chunking.voxel_blocks(n_voxels, n_block):
            coef[:, block], rss[block] = _ols.fit_block(
                pinv, design_work, data[:, block], weight_work
            )
        _check_finite_fit(rss)

        n_effective = (
            n_samples if sample_weight is None else int(np.count_nonzero(sample_weight))
        )
        self.pinv_ = pinv
        self.rank_ = factors.rank
        self.singular_values_ = factors.singular_values
        self.df_resid_ = n_effective - factors.rank
        self._cov_unscaled = factors.cov_unscaled
        self._row_space = factors.row_space
        if self.fit_intercept:
            coef, intercept = coef[:-1], coef[-1]
        else:
            intercept = 0.0
        if self.df_resid_ > 0:
            sigma2 = rss / dtype.type(self.df_resid_)
        else:
            sigma2 = np.full_like(rss, np.nan)
        if y.ndim == 1:
            coef = coef[:, 0]
            intercept = intercept if np.isscalar(intercept) else float(intercept[0])
            rss, sigma2 = float(rss[0]), float(sigma2[0])
        self.coef_ = coef
        self.intercept_ = intercept
        self.rss_ = rss
        self.sigma2_ = sigma2
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
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X @ self.coef_ + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # One target or many: a single voxel is as native as a million.
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        return tags


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
