"""chunk_size and memmap sweeps: time and peak memory relative to the size of Y.

1. chunk_size sweep on W1 (float64 and float32): skvoxel's fit with each
   ``chunk_size`` and ``"auto"``, alternating with the bare ``pinv(X) @ Y`` in
   one process, repeated; peak extra memory of each in a fresh child process;
   and whether every chunk size gives the results of ``"auto"``.
2. memmap: ``Y`` (n=400, p=20, as W1) written to a file in a temporary
   directory, fitted from a read-only ``numpy.memmap`` in a fresh child
   process: the time (page cache evicted first, then again warm), the peak
   resident memory (the kernel's VmHWM, anonymous and file-backed RSS), and
   equality with the in-memory fit. The file is removed afterwards.

Run ``python benchmarks/bench_chunks.py`` (``--quick`` for a smoke run);
``--memmap-gb 4`` for the 4 GB figure.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine  # noqa: E402
import common  # noqa: E402

from skvoxel import MassUnivariateOLS  # noqa: E402

CHUNK_SIZES = ["256", "1024", "4096", "16384", "65536", "auto"]
BARE = "pinv(X) @ Y"


def _chunk(value):
    return value if value == "auto" else int(value)


def _label(chunk_size):
    return f"chunk_size={chunk_size}"


def _fit(X, Y, chunk_size):
    return lambda: MassUnivariateOLS(chunk_size=chunk_size).fit(X, Y)


def resolved_auto(n_samples, n_voxels, n_regressors, dtype):
    """The blocks skvoxel's ``"auto"`` picks here, if its private helpers say:
    ``"25000"``, or ``"25000 (strips of 1500)"`` where blocks are shifted a
    strip at a time."""
    dtype = np.dtype(dtype)
    n_threads = None
    with contextlib.suppress(ImportError, AttributeError, TypeError):
        from skvoxel import _chunking, _ols

        n_threads = _chunking.resolve_n_threads(None)
        shifted = not _ols.reads_in_place(np.empty((0, 0), dtype), dtype, None)
        from skvoxel.linear_model import _block_and_strip

        data = np.lib.stride_tricks.as_strided(  # shapes only, no memory
            np.zeros(1, dtype=dtype), (n_samples, n_voxels), (0, 0)
        )
        n_block, n_strip = _block_and_strip(
            "auto",
            data,
            dtype,
            n_threads,
            shifted=shifted,
            n_work_rows=n_regressors + 3,
        )
        return str(n_block) if n_strip is None else f"{n_block} (strips of {n_strip})"
    if n_threads is None:
        return None
    # Checkouts before the strips: one block size.
    with contextlib.suppress(ImportError, AttributeError, TypeError):
        return str(
            _chunking.resolve_chunk_size(
                "auto",
                n_samples,
                n_voxels,
                dtype,
                n_threads,
                in_place=not shifted,
                n_work_rows=n_regressors + 2,
            )
        )
    return None


# ---------------------------------------------------------------- sweep


def sweep_memory_child(workload, dtype_name, chunk_size, threads):
    """Peak extra memory of one fit with ``chunk_size``, in a fresh process."""
    warnings.simplefilter("ignore")
    with common.limit_threads(threads):
        X, Y = workload.make(common.DTYPES[dtype_name])
        if chunk_size == BARE:
            make = bench_machine.bare_multiply
        else:
            make = lambda X, Y: _fit(X, Y, chunk_size)  # noqa: E731
        small = np.ascontiguousarray(Y[:, : min(Y.shape[1], 2000)])
        make(X, small)()  # warm up: imports, BLAS buffers
        del small
        function = make(X, Y)
        result, rss = common.measure_rss(function)
        del result
        result, trace = common.measure_tracemalloc(function)
        del result
    return common.memory_row(rss, trace, Y.nbytes)


def sweep(workload, dtype, chunk_sizes, repeats, memory, threads):
    """Time, memory and equality of the fit over ``chunk_sizes``."""
    dtype_name = np.dtype(dtype).name
    names = [BARE] + [_label(c) for c in chunk_sizes]
    row = {
        **workload.describe(),
        "dtype": dtype_name,
        "auto_resolves_to": resolved_auto(
            workload.n_samples, workload.n_voxels, workload.n_regressors, dtype
        ),
        "memory": {},
    }
    row["load_average_start"] = os.getloadavg()
    if memory:
        for chunk_size in [BARE, *chunk_sizes]:
            name = BARE if chunk_size == BARE else _label(chunk_size)
            common.progress(f"sweep {dtype_name}: memory of {name} (child process)")
            row["memory"][name] = common.in_child(
                sweep_memory_child, workload, dtype_name, chunk_size, threads
            )
    X, Y = workload.make(dtype)
    common.progress(f"sweep {dtype_name}: timing, {repeats} alternating rounds")
    functions = {BARE: bench_machine.bare_multiply(X, Y)}
    functions.update({_label(c): _fit(X, Y, c) for c in chunk_sizes})
    for function in functions.values():
        function()  # warm up
    times = common.alternate(functions, repeats)
    row["timings"] = common.summarize(times, {"x bare": BARE})
    row["timings"] = {name: row["timings"][name] for name in names}
    reference = _fit(X, Y, "auto")()
    equal = {}
    for chunk_size in chunk_sizes:
        model = _fit(X, Y, chunk_size)()
        equal[_label(chunk_size)] = {
            "coef_identical": bool(np.array_equal(model.coef_, reference.coef_)),
            "rss_identical": bool(np.array_equal(model.rss_, reference.rss_)),
            "coef_relative_error": common.relative_error(model.coef_, reference.coef_),
            "rss_relative_error": common.relative_error(model.rss_, reference.rss_),
        }
    row["equal_to_auto"] = equal
    row["repeats"] = repeats
    row["load_average_end"] = os.getloadavg()
    return row


# ---------------------------------------------------------------- memmap


def write_data(path, n_samples, n_voxels, dtype, seed=1):
    """Write BLD-like ``Y`` (n_samples, n_voxels) to ``path``, row by row."""
    out = np.memmap(path, dtype=dtype, mode="w+", shape=(n_samples, n_voxels))
    rng = np.random.default_rng(seed)
    for i in range(n_samples):
        row = rng.standard_normal(n_voxels)
        row *= 10.0
        row += 1000.0
        out[i] = row
    out.flush()
    del out


def evict(path):
    """Drop ``path`` from the page cache (this file only), so reads hit disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def memmap_child(path, shape, dtype_name, chunk_size, cold, check, threads):
    """Fit from a memmap: time, peak memory, equality with in memory."""
    warnings.simplefilter("ignore")
    dtype = common.DTYPES[dtype_name]
    workload = common.Workload("memmap", shape[0], 20, shape[1])
    X = workload.make_design(dtype)
    out = {}
    with common.limit_threads(threads):
        small = np.random.default_rng(2).normal(1000.0, 10.0, (shape[0], 2000))
        _fit(X, small.astype(dtype), chunk_size)()  # warm up, not from the file
        del small
        Y = np.memmap(path, dtype=dtype, mode="r", shape=shape)
        if cold:
            evict(path)
        elapsed = {}

        def fit():
            start = time.perf_counter()
            model = _fit(X, Y, chunk_size)()
            elapsed["s"] = time.perf_counter() - start
            return model

        model, rss = common.measure_rss(fit, sample=True)
        out["time_s"] = elapsed["s"]
        out["rss"] = rss
        out["time_warm_s"] = common.timed(_fit(X, Y, chunk_size))
        _, trace = common.measure_tracemalloc(_fit(X, Y, chunk_size))
        out["tracemalloc"] = trace
        if check:
            in_memory = np.array(Y)
            start = time.perf_counter()
            reference = _fit(X, in_memory, chunk_size)()
            out["time_in_memory_s"] = time.perf_counter() - start
            del in_memory
            out["equal_to_in_memory"] = {
                "coef_identical": bool(np.array_equal(model.coef_, reference.coef_)),
                "rss_identical": bool(np.array_equal(model.rss_, reference.rss_)),
                "coef_relative_error": common.relative_error(
                    model.coef_, reference.coef_
                ),
                "rss_relative_error": common.relative_error(model.rss_, reference.rss_),
            }
    return out


def memmap_run(gigabytes, dtype, chunk_size, cold, check, tmpdir, threads):
    """Write a ``gigabytes`` GB file, fit it in a child, remove it."""
    n_samples = 400
    itemsize = np.dtype(dtype).itemsize
    n_voxels = max(int(gigabytes * 1e9 / (n_samples * itemsize)), 1)
    shape = (n_samples, n_voxels)
    row = {
        "dtype": np.dtype(dtype).name,
        "n": n_samples,
        "p": 20,
        "V": n_voxels,
        "bytes_Y": n_samples * n_voxels * itemsize,
        "chunk_size": chunk_size,
        "page_cache": "evicted before the first fit (posix_fadvise)"
        if cold
        else "warm",
    }
    with tempfile.TemporaryDirectory(prefix="skvoxel-bench-", dir=tmpdir) as tmp:
        path = os.path.join(tmp, "Y.dat")
        common.progress(f"memmap {row['dtype']}: writing {row['bytes_Y']:,} bytes")
        start = time.perf_counter()
        write_data(path, n_samples, n_voxels, dtype)
        row["write_s"] = time.perf_counter() - start
        row["tmpdir"] = tmp
        common.progress(f"memmap {row['dtype']}: fitting (child process)")
        row.update(
            common.in_child(
                memmap_child,
                path,
                shape,
                row["dtype"],
                chunk_size,
                cold,
                check,
                threads,
            )
        )
    row["file_removed"] = not os.path.exists(path)
    for key in ("rss", "tracemalloc"):
        info = row[key]
        for field in list(info):
            if field.endswith("_bytes") and field != "baseline_bytes":
                info[field.replace("_bytes", "_over_Y")] = info[field] / row["bytes_Y"]
    return row


# ---------------------------------------------------------------- output


def print_sweep(row):
    """Print one chunk_size sweep."""
    print(
        f"\nchunk_size sweep, {row['workload']} {row['dtype']} (n={row['n']}, "
        f"p={row['p']}, V={row['V']:,}); auto -> {row['auto_resolves_to']} voxels"
    )
    print(
        f"  {'':20} {'median s':>9} {'x bare':>7} {'peak/Y':>7} {'trace/Y':>7} "
        f"{'same as auto':>13}"
    )
    for name, entry in row["timings"].items():
        memory = row["memory"].get(name, {})
        rss, trace = memory.get("rss"), memory.get("tracemalloc")
        equal = row["equal_to_auto"].get(name)
        same = "-"
        if equal:
            worst = max(equal["coef_relative_error"], equal["rss_relative_error"])
            identical = equal["coef_identical"] and equal["rss_identical"]
            same = "identical" if identical else f"{worst:.1e}"
        print(
            f"  {name:20} {entry['median_s']:9.4f} "
            f"{entry['ratios']['x bare']['median']:7.2f} "
            f"{_over(rss):>7} {_over(trace):>7} {same:>13}"
        )


def _over(info):
    return f"{info['peak_extra_over_Y']:.2f}" if info else "-"


def print_memmap(row):
    """Print one memmap run."""
    rss, trace = row["rss"], row["tracemalloc"]
    print(
        f"\nmemmap {row['dtype']}: {common.fmt_bytes(row['bytes_Y'])} file "
        f"(n={row['n']}, V={row['V']:,}), chunk_size={row['chunk_size']}, "
        f"{row['page_cache']}"
    )
    print(
        f"  fit {row['time_s']:.3f} s (warm {row['time_warm_s']:.3f} s"
        + (
            f", in memory {row['time_in_memory_s']:.3f} s)"
            if "time_in_memory_s" in row
            else ")"
        )
    )
    print(
        f"  peak RSS {common.fmt_bytes(rss['peak_bytes'])} in all; extra "
        f"{common.fmt_bytes(rss['peak_extra_bytes'])} "
        f"({rss['peak_extra_over_Y']:.2f} x Y): anonymous "
        f"{common.fmt_bytes(rss.get('peak_extra_anon_bytes'))}, file-backed "
        f"{common.fmt_bytes(rss.get('peak_extra_file_bytes'))} (sampled); "
        f"tracemalloc peak {common.fmt_bytes(trace['peak_extra_bytes'])}"
    )
    equal = row.get("equal_to_in_memory")
    if equal:
        same = equal["coef_identical"] and equal["rss_identical"]
        print(
            "  results "
            + (
                "identical to the in-memory fit"
                if same
                else f"differ from in memory by {equal['coef_relative_error']:.1e} "
                f"(coef), {equal['rss_relative_error']:.1e} (rss)"
            )
        )
    print(f"  temporary file removed: {row['file_removed']}")


def add_arguments(parser):
    """Options of this script (run.py passes some on)."""
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (5; 3 quick)")
    parser.add_argument(
        "--dtypes", nargs="*", default=list(common.DTYPES), choices=list(common.DTYPES)
    )
    parser.add_argument(
        "--chunk-sizes", nargs="*", default=CHUNK_SIZES, help="voxels, or auto"
    )
    parser.add_argument(
        "--memmap-gb",
        type=float,
        default=None,
        help="size of the memmapped Y in GB (0.25; 0.02 quick); 4 for the 4 GB figure",
    )
    parser.add_argument(
        "--memmap-chunk-size", default="auto", help="chunk_size for the memmap fit"
    )
    parser.add_argument("--warm", action="store_true", help="keep the page cache")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the in-memory equality fit"
    )
    parser.add_argument("--tmpdir", default=None, help="where the temporary file goes")
    parser.add_argument("--no-sweep", action="store_true", help="memmap only")
    parser.add_argument("--no-memmap", action="store_true", help="sweep only")
    parser.add_argument("--no-memory", action="store_true", help="sweep: no memory")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    parser.add_argument("--out", default=None, help="results/<OUT>.json")


def run(args):
    """The sweeps ``args`` ask for."""
    repeats = args.repeats or (3 if args.quick else 5)
    gigabytes = args.memmap_gb or (0.02 if args.quick else 0.25)
    result = {"sweeps": [], "memmap": []}
    with warnings.catch_warnings(), common.limit_threads(args.threads):
        warnings.simplefilter("ignore")
        if not args.no_sweep:
            (workload,) = common.select_workloads(["W1"], args.quick)
            for dtype in args.dtypes:
                result["sweeps"].append(
                    sweep(
                        workload,
                        common.DTYPES[dtype],
                        [_chunk(c) for c in args.chunk_sizes],
                        repeats,
                        not args.no_memory,
                        args.threads,
                    )
                )
        if not args.no_memmap:
            for dtype in args.dtypes:
                result["memmap"].append(
                    memmap_run(
                        gigabytes,
                        common.DTYPES[dtype],
                        _chunk(args.memmap_chunk_size),
                        not args.warm,
                        not args.no_check,
                        args.tmpdir,
                        args.threads,
                    )
                )
    return result


def print_result(result):
    """Print all sweeps and memmap runs."""
    for row in result["sweeps"]:
        print_sweep(row)
    for row in result["memmap"]:
        print_memmap(row)


def main(argv=None):
    """Run the sweeps; print them; write JSON into results/."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    info = common.machine()
    bench_machine.print_machine(info)
    result = run(args)
    print_result(result)
    name = args.out or ("bench_chunks_quick" if args.quick else "bench_chunks")
    payload = {"run": common.stamp(args), "machine": info, **result}
    print(f"wrote {common.write_json(name, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
