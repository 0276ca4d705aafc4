"""Array kernels of the mass-univariate least-squares fit (no scikit-learn)."""

from typing import NamedTuple

import numpy as np

__all__ = [
    "BlockBuffers",
    "BlockFit",
    "BlockKernel",
    "DesignFactors",
    "block_kernel",
    "default_rcond",
    "factor_design",
    "fit_block",
    "reads_in_place",
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

    Write ``w`` for the sample weights (ones when unweighted), ``U_r`` for an
    orthonormal basis of the column space of ``W^½ X`` and ``e`` for the part
    of ``sqrt(w)`` outside it (zero when the design holds a constant). For a
    block ``Y`` and any per-voxel shift ``y0``, with ``D = W^½ (Y - 1 y0)``
    and ``Z = U_r^T D``, one multiply gives everything::

        coef = coef_map @ Z + shift_coef y0
        rss  = ||D||^2 - ||Z||^2 + 2 y0 (e^T D) + y0^2 ||e||^2
        tss  = ||D||^2 - (a^T D)^2,   a = sqrt(w) / ||sqrt(w)||

    The shift by the block's first row keeps the baseline (about 1000 in
    BOLD data) out of every sum of squares, so float32 keeps its precision.
    """

    projector: np.ndarray
    """``(rank, n_samples)``, or ``(rank + 1, n_samples)`` with ``e^T`` as its
    last row when the constant is outside the column space; working dtype."""
    basis: np.ndarray
    """``(n_samples, rank)``, working dtype: ``U_r``, for explicit residuals."""
    outside: np.ndarray
    """``(n_samples,)``, working dtype: ``e``."""
    coef_map: np.ndarray
    """``(n_regressors, rank)``, working dtype: ``V_r diag(1 / s_r)``."""
    mean_map: np.ndarray
    """``(rank,)``, working dtype: ``U_r^T a``, so ``a^T D = mean_map @ Z``
    (plus ``e^T D / ||sqrt(w)||`` when ``e`` is not zero)."""
    shift_coef: np.ndarray
    """``(n_regressors,)``, working dtype: ``pinv_ @ 1``, the coefficients of
    the constant that the shift removed."""
    shifted_coef_map: np.ndarray
    """``(n_regressors, rank + 1)``, working dtype: ``[shift_coef, coef_map]``,
    so that one multiply by ``[y0; Z]`` gives the coefficients of shifted
    blocks."""
    sqrt_weight: np.ndarray | None
    """``(n_samples, 1)``, working dtype, or None when unweighted."""
    outside_norm2: float
    """``||e||^2``; 0 when the constant is in the column space."""
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
    tolerance = rounding_tolerance(n_samples, np.float64) * np.sqrt(total_weight)
    shift_coef = factors.pinv @ np.ones(n_samples)
    rows = [basis.T]
    if np.linalg.norm(outside) > tolerance:
        rows.append(outside[np.newaxis, :])
    else:
        outside = np.zeros_like(outside)  # the constant is in the column space
    return BlockKernel(
        projector=np.vstack(rows).astype(dtype),
        basis=basis.astype(dtype),
        outside=outside.astype(dtype),
        coef_map=factors.coef_map.astype(dtype),
        mean_map=(basis.T @ mean_row).astype(dtype),
        shift_coef=shift_coef.astype(dtype),
        shifted_coef_map=np.hstack(
            [shift_coef[:, np.newaxis], factors.coef_map]
        ).astype(dtype),
        sqrt_weight=(
            None if sample_weight is None else sqrt_weight[:, np.newaxis].astype(dtype)
        ),
        outside_norm2=float(outside @ outside),
        total_weight=total_weight,
    )


class BlockBuffers:
    """Working arrays a thread reuses from block to block, by name.

    Allocating a block-sized temporary for every block costs page faults on
    every block (large arrays come fresh from the operating system); one
    array per name and thread costs them once.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, n_rows, dtype, width):
        """An ``(n_rows, width)`` array called ``name``, reused while it fits.

        Parameters
        ----------
        name : str
        n_rows, width : int
        dtype : numpy dtype

        Returns
        -------
        array : ndarray
            A view of the array kept under ``name`` (made anew, at this
            size, when the kept one is smaller or of another dtype). Its
            values are whatever was left in it.
        """
        array = self._arrays.get(name)
        if (
            array is None
            or array.shape[0] < n_rows
            or array.shape[1] < width
            or array.dtype != dtype
        ):
            array = np.empty((n_rows, width), dtype=dtype)
            self._arrays[name] = array
        return array[:n_rows, :width]


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


# The sums-of-squares formulas lose digits as rss becomes a small share of
# the sum of squares it is taken from; below these shares a voxel is redone
# with explicit residuals. float64 then keeps about 9 digits of rss at
# worst, float32 (always shifted) about 3 at worst and 5 on BOLD-like data.
_MIN_SHARE = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-2}


def fit_block(kernel, data_block, buffers=None, out=None, strip=None):
    """Fit one block of voxels in one pass: coefficients and sums of squares.

    Computes the formulas of :class:`BlockKernel` with one multiply and one
    sum of squares over the block; no residuals are formed. float32 and
    weighted fits shift the block by its first row, ``strip`` voxels at a
    time, into a buffer that the sum of squares and the multiply then read
    in cache; unweighted float64 fits skip the shift, the baseline costing
    them a few of float64's digits only. Voxels whose rss is too small a
    share of the sum of squares for the formulas (constant voxels,
    near-perfect fits) are redone with explicit residuals.

    Parameters
    ----------
    kernel : BlockKernel
    data_block : array-like of shape (n_samples, n_block)
        Voxel columns of any real dtype (a memmap slice, integers): they are
        converted once, block by block.
    buffers : BlockBuffers or None, default=None
        Working arrays reused across blocks (:class:`BlockBuffers`); None
        allocates them.
    out : BlockFit or None, default=None
        Arrays of the kernel's dtype to write the results into (views of the
        whole fit's arrays); None allocates them.
    strip : int or None, default=None
        Voxels shifted at a time (the buffer's width); None: the whole block.
        Large blocks shifted in small strips keep the buffer small and the
        calls per voxel few.

    Returns
    -------
    fit : BlockFit
        ``out`` when given. ``rss`` is non-finite exactly when the voxel's
        data hold NaN or inf (or values so large their squares overflow):
        both propagate into it.
    """
    dtype = kernel.projector.dtype
    n_block = data_block.shape[1]
    if buffers is None:
        buffers = BlockBuffers()
    if out is None:
        out = BlockFit(
            np.empty((kernel.coef_map.shape[0], n_block), dtype=dtype),
            *(np.empty(n_block, dtype=dtype) for _ in range(4)),
        )
    unshifted = reads_in_place(data_block, dtype, kernel.sqrt_weight)
    # Non-finite data are reported by the caller from rss: no warnings here.
    with np.errstate(invalid="ignore", over="ignore"):
        if unshifted:
            _fit_sums(kernel, data_block, out, buffers)
        else:
            _fit_shifted_sums(kernel, data_block, out, buffers, strip or n_block)
        redo = np.flatnonzero(_too_small(out, dtype))
        # A few blocks at a time (bounded working memory).
        for start in range(0, redo.size, _REDO_BLOCK):
            columns = redo[start : start + _REDO_BLOCK]
            if unshifted:
                # The baseline dominates these voxels' sums of squares (a
                # large mean, little noise): shifted sums, residuals if need be.
                _redo_with_residuals(
                    kernel, data_block[:, columns], out, columns, buffers
                )
            else:
                _fit_residuals_into(
                    kernel, data_block[:, columns], out, columns, buffers
                )
    return out


# Voxels redone at once (bounded working memory).
_REDO_BLOCK = 2048


def _too_small(fit, dtype):
    """Voxels whose rss is too small a share of its sum of squares (or NaN)."""
    # "not >" also catches NaN, which the redo reports as NaN again.
    return ~(fit.rss > _MIN_SHARE[dtype] * fit.rss_scale)


def _redo_with_residuals(kernel, data, out, columns, buffers):
    """Shifted sums of ``data`` (the block's ``columns``) into ``out``;
    explicit residuals where even they keep too few digits (near-perfect
    fits, constant voxels)."""
    dtype = kernel.projector.dtype
    redone = BlockFit(
        np.empty((kernel.coef_map.shape[0], columns.size), dtype=dtype),
        *(np.empty(columns.size, dtype=dtype) for _ in range(4)),
    )
    _fit_shifted_sums(kernel, data, redone, buffers, columns.size)
    still = np.flatnonzero(_too_small(redone, dtype))
    if still.size:
        _fit_residuals_into(kernel, data[:, still], redone, still, buffers)
    for mine, better in zip(out, redone, strict=True):
        mine[..., columns] = better


def _fit_residuals_into(kernel, data, out, columns, buffers):
    """:func:`_fit_residuals` of ``data`` (the block's ``columns``), shifted
    into a buffer, written into ``columns`` of ``out``."""
    dtype = kernel.projector.dtype
    scratch = buffers.get("redo", data.shape[0], dtype, columns.size)
    exact = _fit_residuals(kernel, *_shift(kernel, data, scratch))
    for mine, better in zip(out, exact, strict=True):
        mine[..., columns] = better


def reads_in_place(data, dtype, sample_weight):
    """Whether :func:`fit_block` uses blocks of ``data`` as they are.

    True for float64 data fitted in float64 without weights: no shift, no
    copy. Everything else is shifted into a scratch array.
    """
    return (
        isinstance(data, np.ndarray)
        and data.dtype == dtype == np.float64
        and sample_weight is None
    )


def _shift(kernel, data_block, scratch):
    """Return ``W^½ (Y - 1 y0)`` (in ``scratch``) and ``y0``, the first row."""
    dtype = kernel.projector.dtype
    first = np.array(data_block[0], dtype=dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        np.subtract(data_block, first, out=scratch, dtype=dtype, casting="unsafe")
        if kernel.sqrt_weight is not None:
            scratch *= kernel.sqrt_weight
    return scratch, first


def _fit_sums(kernel, data, out, buffers):
    """The formulas of BlockKernel into ``out`` for data read as they are
    (``y0 = 0``): one multiply, one sum of squares, no temporary."""
    dtype = kernel.projector.dtype
    np.einsum("ij,ij->j", data, data, out=out.rss_scale)
    rows = buffers.get("coordinates", kernel.projector.shape[0], dtype, data.shape[1])
    np.matmul(kernel.projector, data, out=rows)
    _sums_from_coordinates(kernel, rows, False, out, buffers)


def _fit_shifted_sums(kernel, data_block, out, buffers, strip):
    """The formulas of BlockKernel into ``out`` for ``D = W^½ (Y - 1 y0)``,
    shifted ``strip`` voxels at a time into a buffer that the sum of squares
    and the multiply read in cache."""
    dtype = kernel.projector.dtype
    n_samples, n_block = data_block.shape
    rows = buffers.get("coordinates", kernel.projector.shape[0] + 1, dtype, n_block)
    first, coordinates = rows[0], rows[1:]
    np.copyto(first, data_block[0], casting="unsafe")
    scratch = buffers.get("shifted", n_samples, dtype, min(strip, n_block))
    for start in range(0, n_block, strip):
        stop = min(start + strip, n_block)
        shifted = scratch[:, : stop - start]
        np.subtract(
            data_block[:, start:stop],
            first[start:stop],
            out=shifted,
            dtype=dtype,
            casting="unsafe",
        )
        if kernel.sqrt_weight is not None:
            shifted *= kernel.sqrt_weight
        np.einsum("ij,ij->j", shifted, shifted, out=out.rss_scale[start:stop])
        np.matmul(kernel.projector, shifted, out=coordinates[:, start:stop])
    _sums_from_coordinates(kernel, rows, True, out, buffers)


def _sums_from_coordinates(kernel, rows, shifted, out, buffers):
    """Coefficients and sums of squares from the coordinates and ``||D||^2``.

    ``rows`` holds the coordinates (``projector @ D``), after a first row
    holding ``y0`` when ``shifted``: one multiply then gives
    ``coef = coef_map @ Z + shift_coef y0``, with no temporary.
    ``out.rss_scale`` holds ``||D||^2``.
    """
    dtype = kernel.projector.dtype
    rank = kernel.coef_map.shape[1]
    n_block = rows.shape[1]
    norm2 = out.rss_scale
    coordinates = rows[int(shifted) :]
    in_space = coordinates[:rank]
    if shifted:
        first = rows[0]
        np.matmul(kernel.shifted_coef_map, rows[: rank + 1], out=out.coef)
    else:
        np.matmul(kernel.coef_map, in_space, out=out.coef)
    rss = np.einsum("ij,ij->j", in_space, in_space, out=out.rss)
    np.subtract(norm2, rss, out=rss)
    mean = np.matmul(
        kernel.mean_map, in_space, out=buffers.get("mean", 1, dtype, n_block)[0]
    )
    has_outside = coordinates.shape[0] > rank
    if has_outside:  # the constant is outside the column space
        mean += coordinates[rank] / dtype.type(np.sqrt(kernel.total_weight))
    tss = np.multiply(mean, mean, out=out.tss)
    np.subtract(norm2, tss, out=tss)
    np.copyto(out.sum_squares, norm2)
    if shifted:
        if has_outside:
            rss += first * (
                2 * coordinates[rank] + first * dtype.type(kernel.outside_norm2)
            )
        sum_squares = out.sum_squares
        sum_squares += _shifted_back(kernel, first, mean)
    # Rounding can take a zero sum of squares a little below zero.
    np.maximum(rss, 0, out=rss)
    np.maximum(tss, 0, out=tss)


def _fit_residuals(kernel, data, first):
    """The same results from explicit residuals: slower, exact to rounding.

    For the few voxels whose rss is a tiny share of their sum of squares.
    ``data`` is ``W^½ (Y - 1 y0)`` and ``first`` is ``y0``.
    """
    dtype = kernel.projector.dtype
    in_space = kernel.basis.T @ data
    coef = kernel.coef_map @ in_space + kernel.shift_coef[:, np.newaxis] * first
    residuals = data - kernel.basis @ in_space
    residuals += kernel.outside[:, np.newaxis] * first
    rss = np.einsum("ij,ij->j", residuals, residuals)
    sqrt_weight = (
        np.ones((data.shape[0], 1), dtype=dtype)
        if kernel.sqrt_weight is None
        else kernel.sqrt_weight
    )
    root_total = dtype.type(np.sqrt(kernel.total_weight))
    mean = (sqrt_weight[:, 0] @ data) / root_total
    centred = data - sqrt_weight * (mean / root_total)
    tss = np.einsum("ij,ij->j", centred, centred)
    norm2 = np.einsum("ij,ij->j", data, data)
    sum_squares = norm2 + _shifted_back(kernel, first, mean)
    return BlockFit(coef, rss, tss, sum_squares, norm2)


def _shifted_back(kernel, first, mean):
    """``||W^½ y||^2 - ||W^½ (y - y0)||^2``, from ``y0`` and ``a^T D``."""
    dtype = kernel.projector.dtype
    return first * (
        2 * dtype.type(np.sqrt(kernel.total_weight)) * mean
        + first * dtype.type(kernel.total_weight)
    )
