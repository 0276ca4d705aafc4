"""Voxel blocks: their size, their slices, and running a kernel over them."""

import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
from sklearn import get_config
from threadpoolctl import ThreadpoolController

from ._ols import BlockBuffers

__all__ = [
    "FileBlockReader",
    "for_each_block",
    "one_blas_thread",
    "page_releaser",
    "reads_from_file",
    "resolve_chunk_size",
    "resolve_n_threads",
    "voxel_blocks",
]


# Data per block (measured: benchmarks/README.md). Blocks the kernel copies
# (float32 and weighted fits shift them into a scratch array) stay small, for
# the cache and for memory. Blocks it reads in place cost no copy: larger
# ones make larger multiplies, which BLAS runs faster (n=400, p=20: 1.31x
# the bare multiply with 50,000-voxel blocks, 1.47x with 10,000).
BLOCK_BYTES_COPIED = 8 * 2**20
BLOCK_BYTES_IN_PLACE = 128 * 2**20
# The working arrays of the blocks in flight (copies, multiply outputs; one
# block per thread) hold at most this share of the data, so that the fit's
# memory beyond its outputs stays a few per cent of Y (strips widened to long
# rows may take as much again as half of it: see linear_model._block_and_strip);
# but no block is made smaller than MIN_BLOCK_BYTES of data for it.
WORK_SHARE = 0.03
MIN_BLOCK_BYTES = 2**20


def resolve_chunk_size(
    chunk_size,
    n_samples,
    n_voxels,
    dtype,
    n_threads=1,
    *,
    in_place=False,
    n_work_rows=0,
    block_bytes=None,
    work_share=WORK_SHARE,
):
    """Voxels per block.

    Parameters
    ----------
    chunk_size : int or "auto"
        An explicit count, or ``"auto"``: about ``block_bytes`` of data per
        block, at least 16 voxels, fewer when the working arrays of the
        ``n_threads`` blocks in flight would hold more than ``work_share``
        of the data (but not below ``MIN_BLOCK_BYTES`` of data), when they,
        with the data and a copy read from a file, would exceed
        scikit-learn's ``working_memory`` (MiB), or when there would be
        fewer than four blocks per thread.
    n_samples, n_voxels : int
    dtype : numpy dtype
        Working dtype of the block.
    n_threads : int, default=1
        Blocks fitted at the same time.
    in_place : bool, default=False
        Whether the kernel reads blocks in place; otherwise it works on a
        copy of each (``n_samples`` working rows per voxel).
    n_work_rows : int, default=0
        Other working rows per voxel of a block (multiply outputs).
    block_bytes : int or None, default=None
        The target size of a block's data, in bytes. None:
        ``BLOCK_BYTES_IN_PLACE`` or ``BLOCK_BYTES_COPIED``.
    work_share : float, default=WORK_SHARE
        The share of the data the working arrays may hold.

    Returns
    -------
    n_block : int
        Between 1 and ``n_voxels``.
    """
    if chunk_size == "auto":
        itemsize = np.dtype(dtype).itemsize
        column_bytes = max(n_samples * itemsize, 1)
        if block_bytes is None:
            block_bytes = BLOCK_BYTES_IN_PLACE if in_place else BLOCK_BYTES_COPIED
        work_bytes = (n_work_rows + (0 if in_place else n_samples)) * itemsize
        share = work_share * column_bytes * n_voxels / (n_threads * max(work_bytes, 1))
        in_flight = 3 * n_threads * column_bytes
        budget = get_config()["working_memory"] * 2**20
        chunk_size = min(
            max(block_bytes // column_bytes, 16),
            max(int(share), MIN_BLOCK_BYTES // column_bytes),
            budget // in_flight,
            -(-n_voxels // (4 * n_threads)),
        )
    return int(min(max(chunk_size, 1), max(n_voxels, 1)))


def voxel_blocks(n_voxels, n_block):
    """Yield consecutive slices of at most ``n_block`` voxels covering all."""
    for start in range(0, n_voxels, n_block):
        yield slice(start, min(start + n_block, n_voxels))


def resolve_n_threads(n_jobs):
    """Threads over blocks: ``None`` or -1 -> every core, -k -> all but k - 1."""
    if n_jobs is None:
        n_jobs = -1
    if n_jobs < 0:
        return max(os.cpu_count() + 1 + n_jobs, 1)
    return n_jobs


def _mapping_of(data):
    """The memmap mode and ``mmap`` behind ``data`` (or its view), or Nones."""
    mode, root, base = None, None, data
    while base is not None and not isinstance(base, mmap.mmap):
        if isinstance(base, np.memmap):
            mode, root = base.mode, base
        base = getattr(base, "base", None)
    if base is None or root is None:
        return None, None, None
    return mode, root, base


def reads_from_file(data):
    """Whether blocks of ``data`` come from a file into a buffer (a memmap,
    or a view of one): such blocks cost memory as copies do."""
    return _mapping_of(data)[2] is not None


def page_releaser(data):
    """A callable that drops ``data``'s file pages from resident memory, or None.

    Used where blocks are read through the mapping itself (see
    :class:`FileBlockReader` for the usual case): the pages then stay in the
    page cache but no longer count against the process. Only shared mappings
    (memmap modes ``"r"``, ``"r+"``, ``"w+"``) are released; a copy-on-write
    mapping (``"c"``) would lose its changes.

    Parameters
    ----------
    data : ndarray
        The data; a view of a memmap is traced back to its mapping.

    Returns
    -------
    release : callable or None
    """
    mode, _, mapping = _mapping_of(data)
    if mapping is None or mode == "c" or not hasattr(mapping, "madvise"):
        return None
    return lambda: mapping.madvise(mmap.MADV_DONTNEED)


class FileBlockReader:
    """Reads voxel blocks of a memmapped array from its file, not its mapping.

    Touching a block through the mapping maps whole page-cache folios of
    every row it crosses, so resident memory can grow to much of the file
    between two blocks. Reading the same bytes with ``os.preadv`` into a
    buffer keeps resident memory to that buffer; the file's pages stay in
    the page cache, shared and reclaimable.

    Use :meth:`for_data`, which returns None where the layout or the mapping
    does not allow it (then the mapping is read directly).
    """

    def __init__(self, path, position, row_stride, itemsize):
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._position = position
        self._row_stride = row_stride
        self._itemsize = itemsize

    @classmethod
    def for_data(cls, data):
        """A reader for ``data``, a 2-D view of a shared memmap with contiguous
        rows, or None."""
        mode, root, mapping = _mapping_of(data)
        if (
            mapping is None
            or mode == "c"  # private changes are in the mapping only
            or root.filename is None
            or data.ndim != 2
            or data.strides[1] != data.itemsize
            or data.strides[0] < 0
        ):
            return None
        map_start = root.offset - root.offset % mmap.ALLOCATIONGRANULARITY
        map_address = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
        position = map_start + data.ctypes.data - map_address
        return cls(root.filename, position, data.strides[0], data.itemsize)

    def read(self, block, out):
        """Fill ``out`` (``(n_samples, width)``, C-contiguous rows) with
        ``data[:, block]`` and return it."""
        start = self._position + block.start * self._itemsize
        descriptor = self._file.fileno()
        for row, values in enumerate(out):
            os.preadv(descriptor, [values], start + row * self._row_stride)
        return out

    def close(self):
        """Close the file."""
        self._file.close()


@cache
def _thread_pools():
    """threadpoolctl's controller, made once: finding the process's thread
    pools scans its libraries, which costs milliseconds a fit."""
    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS runs on one thread; the blocks' threads share
    the cores.

    BLAS threads spin-wait for about 0.1 s after each threaded call before
    they sleep, taking a core from whatever runs next. Everything a fit
    computes runs inside this context, the design's small factorisation too
    (on W3, a threaded SVD before the blocks cost the fit 0.25 x the bare
    multiply).
    """
    return _thread_pools().limit(limits=1, user_api="blas")


def for_each_block(fit_one, data, n_block, *, n_threads=1, progress=None):
    """Call ``fit_one(block_data, block, buffers)`` for every voxel block.

    ``block_data`` is ``data[:, block]``: a view, or for a memmap the same
    values read from its file (:class:`FileBlockReader`), so resident memory
    stays bounded. ``fit_one`` stores its own results (blocks are disjoint,
    so threads never write the same place). Each thread has its own
    :class:`skvoxel._ols.BlockBuffers`, reused from block to block.
    BLAS runs one thread per call: the blocks, not the multiplies, share the
    cores.

    Parameters
    ----------
    fit_one : callable
        ``fit_one(block_data, block, buffers)`` with ``block`` a slice of
        voxels and ``buffers`` the thread's :class:`skvoxel._ols.BlockBuffers`.
    data : ndarray of shape (n_samples, n_voxels)
    n_block : int
    n_threads : int, default=1
    progress : callable or None, default=None
        Called with the number of voxels done after each block.
    """
    n_samples, n_voxels = data.shape
    reader = FileBlockReader.for_data(data)
    release = None if reader is not None else page_releaser(data)
    local = threading.local()

    def run(block):
        buffers = getattr(local, "buffers", None)
        if buffers is None:
            buffers = local.buffers = BlockBuffers()
        width = block.stop - block.start
        if reader is None:
            block_data = data[:, block]
        else:
            raw = buffers.get("raw", n_samples, data.dtype, width)
            block_data = reader.read(block, raw)
        fit_one(block_data, block, buffers)
        if release is not None:
            release()
        return width

    blocks = voxel_blocks(n_voxels, n_block)
    done = 0
    # One BLAS thread per block: the multiplies are small, and BLAS threads
    # that spin-wait between them lose badly to threads over whole blocks.
    with one_blas_thread():
        try:
            if n_threads == 1:
                for block in blocks:
                    done += run(block)
                    if progress is not None:
                        progress(done)
                return
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                for n_done in pool.map(run, blocks):
                    done += n_done
                    if progress is not None:
                        progress(done)
        finally:
            if reader is not None:
                reader.close()
