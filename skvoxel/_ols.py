"""Array kernels of the mass-univariate least-squares fit (no scikit-learn)."""

from typing import NamedTuple

import numpy as np

__all__ = [
    "BlockFit",
    "DesignFactors",
    "default_rcond",
    "factor_design",
    "fit_block",
    "rounding_tolerance",
    "working_dtype",
]


class DesignFactors(NamedTuple):
    """What the fit and the statistics need to know about the design.

    Everything here is small: its size depends on the design, never on the
    number of voxels.
    """

    pinv: np.ndarray
    """``(n_regressors, n_samples)``: ``pinv(W^½ X) W^½``, data to coefficients."""
    rank: int
    """Numerical rank of ``W^½ X``."""
    singular_values: np.ndarray
    """``(min(n_samples, n_regressors),)`` singular values of ``W^½ X``."""
    cov_unscaled: np.ndarray
    """``(n_regressors, n_regressors)``: ``pinv(X^T W X)``, the coefficients'
    covariance divided by the residual variance."""
    row_space: np.ndarray
    """``(n_regressors, rank)``: orthonormal basis of the design's row space;
    a contrast is estimable when it lies in it."""


def working_dtype(dtype):
    """Return the floating dtype a computation on data of ``dtype`` runs in.

    float32 stays float32 (the speed and memory users chose); anything else
    becomes float64.
    """
    return (
        np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)
    )


def default_rcond(n_samples, n_regressors, dtype=np.float64):
    """Cut-off for small singular values, relative to the largest.

    ``max(n_samples, n_regressors) * eps`` of the working dtype: the
    threshold of ``numpy.linalg.matrix_rank`` and ``numpy.linalg.lstsq`` on
    arrays of that dtype, so rank, pseudo-inverse and least-squares solution
    agree with numpy's. A float32 fit cannot resolve directions that float32
    rounding already blurs, so it counts them as rank deficiency.
    """
    return max(n_samples, n_regressors) * np.finfo(dtype).eps


def factor_design(design, sample_weight=None, rcond=None, dtype=np.float64):
    """Factor the design once, by SVD in float64.

    Parameters
    ----------
    design : ndarray of shape (n_samples, n_regressors)
        The design actually fitted (with the constant column, if any).
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Non-negative precision weights; ``None`` means all ones.
    rcond : float or None, default=None
        Singular values at or below ``rcond * max(singular_values)`` count as
        zero; ``None`` uses :func:`default_rcond` for ``dtype``.
    dtype : numpy dtype, default=numpy.float64
        The working dtype of the fit; it sets the default ``rcond``.

    Returns
    -------
    factors : DesignFactors
        Float64 arrays whatever the dtype of ``design``: the design is small,
        and its inverse is where precision is won or lost.
    """
    design = np.asarray(design, dtype=np.float64)
    n_samples, n_regressors = design.shape
    if rcond is None:
        rcond = default_rcond(n_samples, n_regressors, dtype)
    if sample_weight is None:
        sqrt_weight = None
        weighted = design
    else:
        sqrt_weight = np.sqrt(np.asarray(sample_weight, dtype=np.float64))
        weighted = design * sqrt_weight[:, np.newaxis]

    u, s, vt = np.linalg.svd(weighted, full_matrices=False)
    largest = s.max(initial=0.0)
    kept = s > rcond * largest
    rank = int(np.count_nonzero(kept))
    inverse_s = np.divide(1.0, s, out=np.zeros_like(s), where=kept)
    # The same product as numpy.linalg.pinv, so pinv_ is pinv(X) to the bit.
    pinv = np.matmul(vt.T, inverse_s[:, np.newaxis] * u.T)
    if sqrt_weight is not None:
        pinv = pinv * sqrt_weight[np.newaxis, :]
    cov_unscaled = (vt.T * inverse_s**2) @ vt
    row_space = vt[kept].T
    return DesignFactors(pinv, rank, s, cov_unscaled, row_space)


class BlockFit(NamedTuple):
    """Per-voxel results of one block (the kernel's output)."""

    coef: np.ndarray
    """``(n_regressors, n_block)`` coefficients."""
    rss: np.ndarray
    """``(n_block,)`` residual sums of squares (weighted)."""
    tss: np.ndarray
    """``(n_block,)`` total sums of squares about the (weighted) mean."""
    sum_squares: np.ndarray
    """``(n_block,)`` uncentred sums of squares of the data: the voxel's scale."""


def rounding_tolerance(n_samples, dtype):
    """Relative size below which a voxel's residual or effect is rounding.

    ``10 * sqrt(n_samples) * eps``: sums of ``n_samples`` rounded products
    err by about ``sqrt(n_samples) * eps`` of their scale.
    """
    return 10.0 * np.sqrt(n_samples) * np.finfo(dtype).eps


def fit_block(pinv, design, data_block, sample_weight=None):
    """Fit one block of voxels: coefficients and sums of squares.

    Parameters
    ----------
    pinv : ndarray of shape (n_regressors, n_samples)
        ``DesignFactors.pinv`` in the working dtype.
    design : ndarray of shape (n_samples, n_regressors)
        The design in the working dtype.
    data_block : array-like of shape (n_samples, n_block)
        Voxel columns; converted to the dtype of ``pinv`` here, one block at a
        time, so a memmap or an integer array is never copied whole.
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Precision weights in the working dtype; sums of squares are weighted.

    Returns
    -------
    fit : BlockFit
        ``rss`` is non-finite exactly when the voxel's data hold NaN or inf
        (or values so large their squares overflow): both propagate into the
        residuals.
    """
    block = np.asarray(data_block, dtype=pinv.dtype)
    # Non-finite data are reported by the caller from rss: no warnings here.
    with np.errstate(invalid="ignore", over="ignore"):
        coef = pinv @ block
        residuals = block - design @ coef
        if sample_weight is None:
            mean = block.mean(axis=0)
        else:
            total_weight = sample_weight.sum()
            mean = (sample_weight @ block) / total_weight
        # Centred before squaring: sum(y^2) - n * mean^2 cancels on BOLD data.
        centred = block - mean
        if sample_weight is None:
            rss = np.einsum("ij,ij->j", residuals, residuals)
            tss = np.einsum("ij,ij->j", centred, centred)
            sum_squares = tss + block.shape[0] * mean**2
        else:
            rss = np.einsum("ij,ij,i->j", residuals, residuals, sample_weight)
            tss = np.einsum("ij,ij,i->j", centred, centred, sample_weight)
            sum_squares = tss + total_weight * mean**2
    return BlockFit(coef, rss, tss, sum_squares)
