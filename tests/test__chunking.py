"""Tests for skvoxel._chunking: block sizes and slices."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import config_context

from skvoxel._chunking import resolve_chunk_size, voxel_blocks


@given(n_voxels=st.integers(0, 500), n_block=st.integers(1, 600))
def test_voxel_blocks_cover_every_voxel_once(n_voxels, n_block):
    """Blocks are consecutive, at most n_block wide, and cover 0..n_voxels."""
    blocks = list(voxel_blocks(n_voxels, n_block))
    covered = np.concatenate([np.arange(b.start, b.stop) for b in blocks] or [[]])
    np.testing.assert_array_equal(covered, np.arange(n_voxels))
    assert all(0 < b.stop - b.start <= n_block for b in blocks)


def test_explicit_chunk_size_is_capped_by_voxel_count():
    """An explicit size larger than the data gives one block."""
    assert resolve_chunk_size(10_000, 20, 300, np.float64) == 300
    assert resolve_chunk_size(7, 20, 300, np.float64) == 7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_chunk_size_follows_working_memory(dtype):
    """'auto' fits a block's data and residuals in working_memory."""
    n_samples = 1000
    with config_context(working_memory=1):
        n_block = resolve_chunk_size("auto", n_samples, 10**7, dtype)
    per_voxel = 2 * n_samples * np.dtype(dtype).itemsize
    assert n_block == 2**20 // per_voxel


def test_auto_chunk_size_is_at_least_one_voxel():
    """Even a tiny working_memory gives a block of one voxel."""
    with config_context(working_memory=1e-9):
        assert resolve_chunk_size("auto", 10**6, 10, np.float64) == 1
