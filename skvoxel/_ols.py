"""Array kernels of the mass-univariate least-squares fit (no scikit-learn)."""

from typing import NamedTuple

import numpy as np

__all__ = [
    "BlockFit",
    "BlockKernel",
    "DesignFactors",
    "block_kernel",
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
    column_space: np.ndarray
    """``(n_samples, rank)``: orthonormal basis of the column space of
    ``W^½ X`` (its left singular vectors)."""
    coef_map: np.ndarray
    """``(n_regressors, rank)``: coefficients from coordinates in
    ``column_space``, ``V_r diag(1 / s_r)``."""


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
    coef_map = row_space * inverse_s[kept]
    return DesignFactors(pinv, rank, s, cov_unscaled, row_space, u[:, kept], coef_map)


class BlockKernel(NamedTuple):
    """The design, prepared for the one-pass block kernel (small arrays).

    Each block ``Y`` is shifted by its first row, ``D = Y - 1 y0``, so the
    baseline (about 1000 in BOLD data) never enters a sum of squares: the
    shifted data are of the size of the signal, and sums of their squares
    keep their precision even in float32. The shift is undone exactly in the
    algebra below, for any design (with or without a constant).
    """

    projector: np.ndarray
    """``(rank + 2, n_samples)``, working dtype: ``U_r^T`` (coordinates in the
    column space), ``a^T = sqrt(w)^T / ||sqrt(w)||`` (the weighted mean) and
    ``e^T = ((I - U_r U_r^T) sqrt(w))^T`` (the part of the constant outside
    the column space)."""
    coef_map: np.ndarray
    """``(n_regressors, rank)``, working dtype."""
    shift_coef: np.ndarray
    """``(n_regressors,)``, working dtype: ``pinv_ @ 1``, the coefficients of
    the constant the shift removed."""
    sqrt_weight: np.ndarray | None
    """``(n_samples, 1)``, working dtype, or None when unweighted."""
    outside_norm2: float
    """``||e||^2``: zero when the constant is in the column space."""
    total_weight: float
    """``sum(w)`` (``n_samples`` when unweighted)."""


def block_kernel(factors, sample_weight, dtype):
    """Prepare the design for :func:`fit_block` in the working ``dtype``.

    Parameters
    ----------
    factors : DesignFactors
    sample_weight : ndarray of shape (n_samples,) or None
    dtype : numpy dtype

    Returns
    -------
    kernel : BlockKernel
    """
    basis = factors.column_space
    n_samples = basis.shape[0]
    if sample_weight is None:
        sqrt_weight = np.ones(n_samples)
    else:
        sqrt_weight = np.sqrt(np.asarray(sample_weight, dtype=np.float64))
    total_weight = float(sqrt_weight @ sqrt_weight)
    mean_row = sqrt_weight / np.sqrt(total_weight)
    outside = sqrt_weight - basis @ (basis.T @ sqrt_weight)
    if np.linalg.norm(outside) <= rounding_tolerance(n_samples, np.float64) * np.sqrt(
        total_weight
    ):
        outside[:] = 0.0  # the constant is in the column space: exact zeros
    projector = np.vstack([basis.T, mean_row, outside]).astype(dtype)
    return BlockKernel(
        projector=projector,
        coef_map=factors.coef_map.astype(dtype),
        shift_coef=(factors.pinv @ np.ones(n_samples)).astype(dtype),
        sqrt_weight=(
            None if sample_weight is None else sqrt_weight[:, np.newaxis].astype(dtype)
        ),
        outside_norm2=float(outside @ outside),
        total_weight=total_weight,
    )


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
    rss_scale: np.ndarray
    """``(n_block,)`` the sum of squares ``rss`` was computed from: an ``rss``
    below ``rounding_tolerance`` times this is zero up to rounding."""


def rounding_tolerance(n_samples, dtype):
    """Relative size below which a voxel's residual or effect is rounding.

    ``10 * sqrt(n_samples) * eps``: sums of ``n_samples`` rounded products
    err by about ``sqrt(n_samples) * eps`` of their scale.
    """
    return 10.0 * np.sqrt(n_samples) * np.finfo(dtype).eps


def fit_block(kernel, data_block, scratch=None):
    """Fit one block of voxels in one pass: coefficients and sums of squares.

    With ``D = W^½ (Y - 1 y0)`` (the block shifted by its first row) and
    ``Z = projector @ D``, one multiply gives everything::

        coef = coef_map @ Z_r + shift_coef y0
        rss  = ||D||^2 - ||Z_r||^2 + 2 y0 (e^T D) + y0^2 ||e||^2
        tss  = ||D||^2 - (a^T D)^2

    No ``n x block`` array other than ``D`` (in ``scratch``) is formed, and
    the data are read once.

    Parameters
    ----------
    kernel : BlockKernel
    data_block : array-like of shape (n_samples, n_block)
        Voxel columns of any real dtype (a memmap slice, integers): they are
        converted while shifted, one block at a time.
    scratch : ndarray of shape (n_samples, >= n_block) or None, default=None
        Working memory in the kernel's dtype, reused across blocks.

    Returns
    -------
    fit : BlockFit
        ``rss`` is non-finite exactly when the voxel's data hold NaN or inf
        (or values so large their squares overflow): both propagate into it.
    """
    dtype = kernel.projector.dtype
    n_block = data_block.shape[1]
    if scratch is None:
        scratch = np.empty((data_block.shape[0], n_block), dtype=dtype)
    shifted = scratch[:, :n_block]
    # Non-finite data are reported by the caller from rss: no warnings here.
    with np.errstate(invalid="ignore", over="ignore"):
        first = np.array(data_block[0], dtype=dtype)
        np.subtract(data_block, first, out=shifted, dtype=dtype, casting="unsafe")
        if kernel.sqrt_weight is not None:
            shifted *= kernel.sqrt_weight
        norm2 = np.einsum("ij,ij->j", shifted, shifted)
        coordinates = kernel.projector @ shifted
        rank = kernel.coef_map.shape[1]
        in_space, mean, outside = (
            coordinates[:rank],
            coordinates[rank],
            coordinates[rank + 1],
        )
        coef = kernel.coef_map @ in_space
        coef += kernel.shift_coef[:, np.newaxis] * first
        rss = norm2 - np.einsum("ij,ij->j", in_space, in_space)
        rss += first * (2 * outside + first * dtype.type(kernel.outside_norm2))
        tss = norm2 - mean * mean
        sum_squares = norm2 + first * (
            2 * dtype.type(np.sqrt(kernel.total_weight)) * mean
            + first * dtype.type(kernel.total_weight)
        )
        # Rounding can take a zero sum of squares a little below zero.
        np.maximum(rss, 0, out=rss)
        np.maximum(tss, 0, out=tss)
    return BlockFit(coef, rss, tss, sum_squares, norm2)
