"""Voxel blocks: how many voxels one kernel call sees, and their slices."""

import numpy as np
from sklearn import get_config

__all__ = ["resolve_chunk_size", "voxel_blocks"]


def resolve_chunk_size(chunk_size, n_samples, n_voxels, dtype):
    """Voxels per block.

    Parameters
    ----------
    chunk_size : int or "auto"
        An explicit count, or ``"auto"``: as many voxels as fit in
        scikit-learn's ``working_memory`` (MiB) with the block's data and its
        residuals (two ``n_samples`` columns per voxel).
    n_samples, n_voxels : int
    dtype : numpy dtype
        Working dtype of the block.

    Returns
    -------
    n_block : int
        Between 1 and ``n_voxels``.
    """
    if chunk_size == "auto":
        bytes_per_voxel = 2 * n_samples * np.dtype(dtype).itemsize
        budget = get_config()["working_memory"] * 2**20
        chunk_size = int(budget // max(bytes_per_voxel, 1))
    return int(min(max(chunk_size, 1), max(n_voxels, 1)))


def voxel_blocks(n_voxels, n_block):
    """Yield consecutive slices of at most ``n_block`` voxels covering all."""
    for start in range(0, n_voxels, n_block):
        yield slice(start, min(start + n_block, n_voxels))
