"""Tests for skvoxel._chunking: block sizes and slices."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import config_context

from skvoxel._chunking import (
    FileBlockReader,
    for_each_block,
    one_blas_thread,
    page_releaser,
    reads_from_file,
    resolve_chunk_size,
    resolve_n_threads,
    voxel_blocks,
)


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
def test_auto_chunk_size_takes_the_target_bytes(dtype):
    """'auto' gives blocks of about block_bytes of data: 8 MiB copied blocks
    (on large data), 128 MiB blocks read in place, or as asked."""
    column = 400 * np.dtype(dtype).itemsize
    assert resolve_chunk_size("auto", 400, 10**7, dtype) == 8 * 2**20 // column
    in_place = resolve_chunk_size("auto", 400, 10**7, dtype, in_place=True)
    assert in_place == 128 * 2**20 // column
    larger = resolve_chunk_size("auto", 400, 10**7, dtype, block_bytes=2**25)
    assert larger == 2**25 // column


@pytest.mark.parametrize("n_threads", [1, 2, 4])
@pytest.mark.parametrize(
    ("in_place", "n_samples", "n_work_rows"),
    [(False, 100, 0), (False, 100, 7), (True, 100, 52), (True, 400, 22)],
)
def test_working_arrays_in_flight_hold_a_small_share_of_the_data(
    n_threads, in_place, n_samples, n_work_rows
):
    """Copies and multiply outputs of the blocks in flight (one per thread)
    hold at most 3 % of Y, unless blocks would shrink below 1 MiB of data."""
    n_voxels = 1_000_000
    data_bytes = n_samples * n_voxels * 4
    n_block = resolve_chunk_size(
        "auto",
        n_samples,
        n_voxels,
        np.float32,
        n_threads,
        in_place=in_place,
        n_work_rows=n_work_rows,
    )
    rows = n_work_rows + (0 if in_place else n_samples)
    in_flight = n_threads * n_block * rows * 4
    assert in_flight <= 0.03 * data_bytes or n_block == 2**20 // (n_samples * 4)
    assert n_block * n_samples * 4 >= 2**20 - n_samples * 4


def test_small_data_keep_blocks_of_a_mebibyte():
    """The share rule never splits small data into blocks under 1 MiB."""
    n_block = resolve_chunk_size("auto", 100, 20_000, np.float32, 2)
    assert n_block == min(2**20 // (100 * 4), -(-20_000 // 8))


def test_auto_chunk_size_respects_working_memory():
    """Blocks in flight (data, copy, file read; per thread) fit working_memory."""
    with config_context(working_memory=1):
        n_block = resolve_chunk_size("auto", 1000, 10**7, np.float64, n_threads=2)
    assert n_block == 2**20 // (3 * 2 * 1000 * 8)


def test_auto_chunk_size_leaves_blocks_for_every_thread():
    """Small data still give each thread several blocks."""
    assert resolve_chunk_size("auto", 100, 1000, np.float64, n_threads=2) == 125


def test_auto_chunk_size_is_at_least_one_voxel():
    """Even a tiny working_memory gives a block of one voxel."""
    with config_context(working_memory=1e-9):
        assert resolve_chunk_size("auto", 10**6, 10, np.float64) == 1


def test_n_threads_rule():
    """None and -1 give every core, 1 one thread, k gives k."""
    assert resolve_n_threads(None) == os.cpu_count()
    assert resolve_n_threads(1) == 1
    assert resolve_n_threads(3) == 3
    assert resolve_n_threads(-1) == os.cpu_count()


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_for_each_block_visits_every_block_once(n_threads):
    """Every voxel is handed to exactly one call; progress counts them all;
    each thread keeps one set of buffers for all its blocks."""
    data = np.zeros((4, 103))
    seen = np.zeros(103, dtype=int)
    lock = threading.Lock()
    reported = []
    buffers_of_thread = {}

    def fit_one(block_data, block, buffers):
        assert block_data.shape == (4, block.stop - block.start)
        with lock:
            seen[block] += 1
            mine = buffers_of_thread.setdefault(threading.get_ident(), buffers)
            assert mine is buffers

    for_each_block(fit_one, data, 10, n_threads=n_threads, progress=reported.append)
    np.testing.assert_array_equal(seen, 1)
    assert reported[-1] == 103 and reported == sorted(reported)
    assert len(buffers_of_thread) <= n_threads


def blas_threads():
    """The most threads any BLAS library of the process will use now."""
    from threadpoolctl import threadpool_info

    counts = [
        info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
    ]
    if not counts:
        pytest.skip("threadpoolctl finds no BLAS library here")
    return max(counts)


def test_blocks_and_the_design_run_on_one_blas_thread(monkeypatch, rng):
    """BLAS runs on one thread in the blocks and while the design is
    factored: threaded BLAS leaves threads spinning into the blocks' own."""
    from skvoxel import MassUnivariateOLS, _ols

    with one_blas_thread():
        assert blas_threads() == 1
    seen = []
    factor_design = _ols.factor_design
    fit_block = _ols.fit_block

    def factor_and_record(*args, **kwargs):
        seen.append(("design", blas_threads()))
        return factor_design(*args, **kwargs)

    def fit_and_record(*args, **kwargs):
        seen.append(("block", blas_threads()))
        return fit_block(*args, **kwargs)

    monkeypatch.setattr(_ols, "factor_design", factor_and_record)
    monkeypatch.setattr(_ols, "fit_block", fit_and_record)
    before = blas_threads()
    MassUnivariateOLS(chunk_size=10, n_jobs=2).fit(
        rng.normal(size=(30, 3)), rng.normal(size=(30, 25))
    )
    assert seen[0] == ("design", 1)
    assert sorted(set(seen[1:])) == [("block", 1)] and len(seen) == 4
    assert blas_threads() == before  # restored afterwards


def test_reads_from_file_knows_memmaps_and_their_views(tmp_path):
    """Memmaps (any mode) and views of them read from a file; arrays do not."""
    path = tmp_path / "y.dat"
    np.arange(64.0).tofile(path)
    for mode in ("r", "c"):
        mapped = np.memmap(path, dtype=np.float64, mode=mode, shape=(8, 8))
        assert reads_from_file(mapped) and reads_from_file(mapped[:, 2:5])
    assert not reads_from_file(np.arange(64.0).reshape(8, 8))


def test_page_releaser_only_for_shared_memmaps(tmp_path):
    """Shared memmaps (and views of them) get a releaser; arrays and "c" do not."""
    path = tmp_path / "y.dat"
    np.arange(64.0).tofile(path)
    shared = np.memmap(path, dtype=np.float64, mode="r", shape=(8, 8))
    assert page_releaser(np.asarray(shared)[:, 2:5]) is not None
    page_releaser(shared)()  # releasing keeps the data readable
    np.testing.assert_array_equal(shared[1], np.arange(8.0, 16.0))
    private = np.memmap(path, dtype=np.float64, mode="c", shape=(8, 8))
    assert page_releaser(private) is None
    assert page_releaser(np.ones((3, 3))) is None


MEMMAP_CHILD = """
import sys, numpy as np
from skvoxel import MassUnivariateOLS

def rss_kib(field):
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(field))

n, v = 200, int(sys.argv[2])
Y = np.memmap(sys.argv[1], dtype=np.float32, mode="r", shape=(n, v))
X = np.column_stack([np.linspace(-1, 1, n), np.ones(n)])
MassUnivariateOLS(chunk_size=1024).fit(X[:20], np.zeros((20, 3)))  # warm up
before = rss_kib("VmRSS:")
MassUnivariateOLS(chunk_size=1024).fit(X, Y)
print(before, rss_kib("VmHWM:"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memmap_fit_keeps_resident_memory_bounded(tmp_path):
    """Fitting a 160 MB memmap raises the peak resident memory by under 40 MB."""
    n_samples, n_voxels = 200, 200_000
    path = tmp_path / "y.dat"
    rng = np.random.default_rng(0)
    data = np.memmap(path, dtype=np.float32, mode="w+", shape=(n_samples, n_voxels))
    for rows in np.array_split(np.arange(n_samples), 10):
        data[rows] = 1000 + rng.standard_normal((rows.size, n_voxels), np.float32)
    data.flush()
    del data
    done = subprocess.run(
        [sys.executable, "-c", MEMMAP_CHILD, str(path), str(n_voxels)],
        capture_output=True,
        text=True,
        check=True,
    )
    before, peak = map(int, done.stdout.split())
    # Outputs: coef (2 x V) and five vectors of V, float32: 5.6 MB.
    assert (peak - before) * 1024 < 40e6, (before, peak)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float64])
def test_file_block_reader_reads_what_the_mapping_holds(tmp_path, dtype):
    """Blocks read from the file equal the memmap's, for views and offsets too."""
    path = tmp_path / "y.dat"
    values = (np.arange(7 * 50) % 97).astype(dtype).reshape(7, 50)
    with open(path, "wb") as file:
        file.write(b"x" * 24)  # a header before the data
        values.tofile(file)
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=24, shape=(7, 50))
    view = np.asarray(mapped)[1:6, 3:40]
    reader = FileBlockReader.for_data(view)
    try:
        out = np.empty((5, 8), dtype=dtype)
        block = slice(2, 9)
        read = reader.read(block, out[:, :7])
        np.testing.assert_array_equal(read, view[:, block])
    finally:
        reader.close()
    assert FileBlockReader.for_data(np.asarray(mapped).T) is None  # rows strided
    private = np.memmap(path, dtype=dtype, mode="c", offset=24, shape=(7, 50))
    assert FileBlockReader.for_data(private) is None
