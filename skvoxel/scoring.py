"""Scoring image-shaped targets: the mean R^2 over the voxels of a mask."""

import numpy as np
from sklearn.metrics import r2_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_array, check_consistent_length

from ._compat import validate_params
from ._validation import reject_complex
from .masking import VoxelMasker, _check_mask_shape, _load_mask

__all__ = ["voxel_r2_score", "voxel_r2_scorer"]


@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "mask": ["array-like", None],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def voxel_r2_score(y_true, y_pred, *, mask=None, sample_weight=None):
    """Mean coefficient of determination R^2 over voxels, images accepted.

    The meaning of ``MassUnivariateOLS.score`` (scikit-learn's
    ``r2_score`` with ``multioutput="uniform_average"``): R^2 of each voxel
    (column), averaged with equal weights. Images ``(n_samples,
    *spatial_shape)`` are scored over the voxels of ``mask`` only: voxels
    outside it are zero in both the data and a ``TransformedTargetRegressor``'s
    predictions, and would count as perfectly predicted.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, *spatial_shape), (n_samples, n_voxels) \
            or (n_samples,)
        Observed images or data.
    y_pred : array-like of the shape of ``y_true``
        Predicted images or data.
    mask : array-like of bool of shape spatial_shape, default=None
        The voxels to score; ``None`` scores every voxel (column).
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights, as in ``r2_score``.

    Returns
    -------
    score : float
        The mean over voxels of ``1 - RSS / TSS``. As in ``r2_score``, a
        voxel constant in ``y_true`` scores 1 if predicted exactly, else 0.

    Examples
    --------
    Voxel 1 is perfectly predicted, voxel 0 has R^2 = 0.5:

    >>> import numpy as np
    >>> from skvoxel import voxel_r2_score
    >>> y_true = np.array([[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 6.0]]])
    >>> y_pred = np.array([[[2.0, 2.0]], [[3.0, 4.0]], [[4.0, 6.0]]])
    >>> voxel_r2_score(y_true, y_pred)
    0.875
    >>> voxel_r2_score(y_true, y_pred, mask=[[True, False]])
    0.75
    """
    arrays = []
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        reject_complex(y, name, "voxel_r2_score")
        y = check_array(
            y,
            ensure_2d=False,
            allow_nd=True,
            dtype=[np.float64, np.float32],
            input_name=name,
        )
        arrays.append(y)
    y_true, y_pred = arrays
    if y_true.shape != y_pred.shape:
        msg = (
            f"y_true has shape {y_true.shape} but y_pred has shape "
            f"{y_pred.shape}; they must be equal."
        )
        raise ValueError(msg)
    if sample_weight is not None:
        check_consistent_length(y_true, sample_weight)
    if mask is not None:
        mask, _ = _load_mask(mask)
        _check_mask_shape(mask.shape, y_true.shape[1:])
        # C order, as transform's output: the sums over samples then run in
        # the same order as in MassUnivariateOLS.score, to the last bit.
        y_true = np.ascontiguousarray(y_true[:, mask])
        y_pred = np.ascontiguousarray(y_pred[:, mask])
    elif y_true.ndim > 2:
        y_true = y_true.reshape(y_true.shape[0], -1)
        y_pred = y_pred.reshape(y_pred.shape[0], -1)
    return float(
        r2_score(
            y_true, y_pred, sample_weight=sample_weight, multioutput="uniform_average"
        )
    )


def voxel_r2_scorer(estimator, X, y, sample_weight=None):
    """Scorer: mean R^2 over the in-mask voxels of image-shaped targets.

    Pass it as ``scoring=voxel_r2_scorer`` to ``cross_val_score``,
    ``cross_validate`` or ``GridSearchCV``. scikit-learn's default scoring
    (``estimator.score``, i.e. ``r2_score``) rejects targets of more than 2
    dimensions, and cross-validation then reports NaN.

    The estimator predicts ``X``; the prediction is scored against ``y``
    with :func:`voxel_r2_score`. When the estimator is a fitted
    ``TransformedTargetRegressor`` whose transformer is a
    :class:`VoxelMasker` (possibly the last step of a ``Pipeline``), only the
    voxels of that masker's fitted ``mask_`` are scored: the score is then
    exactly ``regressor_.score(X, transformer_.transform(y))``, the mean
    R^2 of ``MassUnivariateOLS.score`` over in-mask voxels. Otherwise every
    voxel (column) is scored.

    Parameters
    ----------
    estimator : fitted estimator
        Anything with ``predict``.
    X : array-like or DataFrame of shape (n_samples, n_regressors)
        The design of the held-out samples.
    y : array-like of shape (n_samples, *spatial_shape), (n_samples, n_voxels) \
            or (n_samples,)
        The held-out images or data.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights, as in ``r2_score``.

    Returns
    -------
    score : float
        Mean R^2 over the scored voxels (greater is better).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.compose import TransformedTargetRegressor
    >>> from sklearn.model_selection import KFold, cross_val_score
    >>> from skvoxel import MassUnivariateOLS, VoxelMasker, voxel_r2_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([rng.normal(size=30), np.ones(30)])
    >>> mask = np.zeros((4, 5), dtype=bool)
    >>> mask[1:3, 1:4] = True
    >>> images = np.zeros((30, 4, 5))
    >>> images[:, mask] = X @ rng.normal(size=(2, 6)) + rng.normal(size=(30, 6))
    >>> model = TransformedTargetRegressor(
    ...     regressor=MassUnivariateOLS(), transformer=VoxelMasker(mask)
    ... )
    >>> scores = cross_val_score(
    ...     model, X, images, cv=KFold(3), scoring=voxel_r2_scorer
    ... )
    >>> bool(np.all(np.isfinite(scores)))
    True
    """
    y_pred = estimator.predict(X)
    masker = _fitted_masker(estimator)
    mask = None if masker is None else masker.mask_
    return voxel_r2_score(y, y_pred, mask=mask, sample_weight=sample_weight)


def _fitted_masker(estimator):
    """The fitted VoxelMasker transforming the target of ``estimator``, if any."""
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    transformer = getattr(estimator, "transformer_", None)
    return transformer if isinstance(transformer, VoxelMasker) else None
