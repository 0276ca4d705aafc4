"""The floor: what this machine can do, and what a plain read and a bare multiply take.

Measures the multiply rate (GFLOP/s of a large square matrix product, per
dtype) and the read bandwidth (a sum over a large buffer, on one thread and on
as many threads as BLAS uses), and from them the physical floor of each
workload: the time its ``2 n p V`` flops take at that rate and the time
reading ``bytes(Y)`` takes at that bandwidth. Then times the two floor
implementations on the workloads, alternating: a plain read of ``Y``
(``Y.sum()``, numpy, one thread) and the bare ``pinv(X) @ Y``.

Run ``python benchmarks/bench_machine.py`` (``--quick`` for a smoke run).
"""

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402


def read_y(X, Y):
    """A plain read of ``Y``: numpy's sum, one pass, one thread."""
    return lambda: Y.sum()


def bare_multiply(X, Y):
    """The bare multiply, pseudo-inverse included: ``pinv(X) @ Y``."""
    return lambda: np.linalg.pinv(X) @ Y


FLOOR = {"read Y": read_y, "pinv(X) @ Y": bare_multiply}


def gemm_rate(dtype, size, repeats=3):
    """Best GFLOP/s of ``A @ B`` for square ``size`` x ``size`` matrices."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b  # warm up BLAS (thread pool, buffers)
    best = min(common.timed(lambda: a @ b) for _ in range(repeats))
    return {
        "dtype": np.dtype(dtype).name,
        "size": size,
        "best_s": best,
        "gflops": 2 * size**3 / best / 1e9,
    }


def read_bandwidth(nbytes, n_threads, repeats=5):
    """Best GB/s of summing a ``nbytes`` float64 buffer on ``n_threads`` threads.

    The buffer is split into ``n_threads`` contiguous row blocks, each summed
    by numpy in its own thread (numpy's reductions release the GIL).
    """
    rows = max(n_threads * 8, 64)
    buffer = np.ones((rows, nbytes // 8 // rows))
    parts = np.array_split(np.arange(rows), n_threads)
    with ThreadPoolExecutor(n_threads) as pool:

        def read():
            return sum(pool.map(lambda r: buffer[r[0] : r[-1] + 1].sum(), parts))

        read()
        best = min(common.timed(read) for _ in range(repeats))
    return {
        "threads": n_threads,
        "bytes": buffer.nbytes,
        "best_s": best,
        "gb_per_s": buffer.nbytes / best / 1e9,
    }


def calibrate_memory():
    """Both memory probes on the same calls, in this (fresh) process.

    1. A first BLAS product in the process: RSS also sees OpenBLAS's own
       buffers, tracemalloc only the output array.
    2. The same product again: buffers exist, both should see the output only.
    3. ``scipy.linalg.lstsq`` (LAPACK's gelsd), after a warm-up call: RSS also
       sees LAPACK's workspace.
    4. A short-lived 256 MiB temporary freed inside the call: the kernel's
       high-water mark must see it although nothing is left after the call.
    """
    import scipy.linalg

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 20))
    Y = rng.standard_normal((400, 50_000))
    P = np.linalg.pinv(X)
    cases = {}

    def record(name, function, note):
        result, rss, trace = common.measure_both(function)
        del result
        cases[name] = {
            "rss_peak_extra_bytes": rss["peak_extra_bytes"],
            "tracemalloc_peak_extra_bytes": trace["peak_extra_bytes"],
            "hwm_reset": rss["hwm_reset"],
            "note": note,
        }

    output = P.shape[0] * Y.shape[1] * 8
    record("first pinv @ Y", lambda: P @ Y, f"output {output} bytes; first BLAS call")
    record("second pinv @ Y", lambda: P @ Y, f"output {output} bytes")
    scipy.linalg.lstsq(X[:, :5], Y[:, :100])  # warm-up: load LAPACK
    record(
        "scipy.linalg.lstsq(X, Y)",
        lambda: scipy.linalg.lstsq(X, Y),
        f"Y is {Y.nbytes} bytes",
    )

    def spike():
        temporary = np.ones(2**25)  # 256 MiB, touched
        return float(temporary[-1])

    record("256 MiB temporary, freed", spike, f"temporary {2**28} bytes")
    return cases


def rates(quick=False):
    """Multiply rate per dtype and read bandwidth on 1 and all BLAS threads."""
    info = common.machine()
    threads = max(info["blas_threads"] or [1])
    size = 2048 if quick else 4096
    nbytes = (128 if quick else 1024) * 2**20
    bandwidth = [read_bandwidth(nbytes, 1)]
    if threads > 1:
        bandwidth.append(read_bandwidth(nbytes, threads))
    return {
        "gemm": {name: gemm_rate(dtype, size) for name, dtype in common.DTYPES.items()},
        "read": bandwidth,
        "read_gb_per_s": max(b["gb_per_s"] for b in bandwidth),
        "blas_threads": threads,
    }


def floor(workload, dtype, machine_rates):
    """The physical floor of ``pinv(X) @ Y`` on ``workload`` in ``dtype``.

    ``flops_s`` is ``2 n p V`` at the measured multiply rate, ``read_s`` is
    ``bytes(Y)`` at the measured read bandwidth; ``floor_s`` is the larger of
    the two (a kernel that overlaps compute and reads perfectly can reach it).
    """
    name = np.dtype(dtype).name
    gflops = machine_rates["gemm"][name]["gflops"]
    gbps = machine_rates["read_gb_per_s"]
    flops_s = workload.flops() / (gflops * 1e9)
    read_s = workload.nbytes(dtype) / (gbps * 1e9)
    return {
        **workload.describe(),
        "dtype": name,
        "flops": workload.flops(),
        "bytes_Y": workload.nbytes(dtype),
        "gflops": gflops,
        "read_gb_per_s": gbps,
        "flops_s": flops_s,
        "read_s": read_s,
        "floor_s": max(flops_s, read_s),
        "bound": "compute" if flops_s >= read_s else "memory",
    }


def run(workloads, dtypes, repeats, quick=False):
    """Rates, floors and the two floor timings on each workload."""
    machine_rates = rates(quick)
    rows = []
    for workload in workloads:
        for dtype in dtypes:
            X, Y = workload.make(dtype)
            functions = {name: make(X, Y) for name, make in FLOOR.items()}
            times = common.alternate(functions, repeats)
            summary = common.summarize(times, {"x bare": "pinv(X) @ Y"})
            rows.append(
                {
                    **floor(workload, dtype, machine_rates),
                    "timings": summary,
                }
            )
            del X, Y, functions
    return {"rates": machine_rates, "rows": rows}


def print_rates(machine_rates):
    """Print the measured multiply rate and read bandwidth."""
    for name, gemm in machine_rates["gemm"].items():
        print(
            f"multiply rate {name}: {gemm['gflops']:.1f} GFLOP/s "
            f"({gemm['size']}x{gemm['size']} matrix product)"
        )
    for read in machine_rates["read"]:
        print(
            f"read bandwidth, {read['threads']} thread(s): "
            f"{read['gb_per_s']:.1f} GB/s ({common.fmt_bytes(read['bytes'])} buffer)"
        )


def print_calibration(calibration):
    """Print both memory probes' figures for the calibration calls."""
    print("memory probes on the same call (peak extra, MiB): RSS / tracemalloc")
    for name, case in calibration.items():
        print(
            f"  {name:28} {case['rss_peak_extra_bytes'] / 2**20:8.1f} / "
            f"{case['tracemalloc_peak_extra_bytes'] / 2**20:8.1f}  ({case['note']})"
        )


def print_machine(info):
    """Print where the benchmark ran."""
    blas = ", ".join(
        f"{p['internal_api']} {p['version']} ({p['architecture']}, "
        f"{p['num_threads']} threads)"
        for p in info["threadpools"]
        if p["user_api"] == "blas"
    )
    print(
        f"machine: {info['cpu']}, {info['cores']} cores "
        f"({info['cores_usable']} usable), "
        f"{common.fmt_bytes(info['memory_bytes'])}; BLAS: {blas}; "
        f"load average at start {tuple(round(x, 2) for x in info['load_average'])}"
    )


def main(argv=None):
    """Measure the machine's floor; print it; write JSON into results/."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (5; 3 quick)")
    parser.add_argument("--workloads", nargs="*", default=None, help="e.g. W1 W3")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    workloads = common.select_workloads(args.workloads, args.quick)
    with common.limit_threads(args.threads):
        info = common.machine()
        print_machine(info)
        result = run(workloads, list(common.DTYPES.values()), repeats, args.quick)
    print_rates(result["rates"])
    print(
        f"{'workload':8} {'dtype':8} {'floor s':>9} {'bound':>8} "
        f"{'read Y s':>9} {'bare s':>9} {'bare/floor':>10}"
    )
    for row in result["rows"]:
        bare = row["timings"]["pinv(X) @ Y"]["median_s"]
        print(
            f"{row['workload']:8} {row['dtype']:8} {row['floor_s']:9.4f} "
            f"{row['bound']:>8} {row['timings']['read Y']['median_s']:9.4f} "
            f"{bare:9.4f} {bare / row['floor_s']:10.2f}"
        )
    calibration = common.in_child(calibrate_memory)
    print_calibration(calibration)
    payload = {
        "run": common.stamp(args),
        "machine": info,
        **result,
        "memory_calibration": calibration,
    }
    path = common.write_json(
        "bench_machine_quick" if args.quick else "bench_machine", payload
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
