"""Shared benchmark pieces: workloads, a timer, memory probes, metadata, JSON."""

import contextlib
import ctypes
import gc
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass(frozen=True)
class Workload:
    """A design of n samples x p regressors fitted to V voxels."""

    name: str
    n_samples: int
    n_regressors: int
    n_voxels: int

    def make(self, dtype, seed=0):
        """Return ``(X, Y)``: a design with a constant, BOLD-like data.

        Y is about 1000 with noise of 10 (1 %). ``float32`` data are the
        ``float64`` data rounded, so the two dtypes fit the same numbers.
        """
        rng = np.random.default_rng(seed)
        X = self._design(rng)
        Y = rng.standard_normal((self.n_samples, self.n_voxels), dtype=np.float64)
        Y *= 10.0
        Y += 1000.0
        return X.astype(dtype), Y.astype(dtype, copy=False)

    def make_design(self, dtype, seed=0):
        """Return the design ``X`` of :meth:`make` alone."""
        return self._design(np.random.default_rng(seed)).astype(dtype)

    def _design(self, rng):
        X = rng.normal(size=(self.n_samples, self.n_regressors))
        X[:, -1] = 1.0
        return X

    def nbytes(self, dtype):
        """Bytes of ``Y`` in ``dtype``."""
        return self.n_samples * self.n_voxels * np.dtype(dtype).itemsize

    def flops(self):
        """Flops of the bare multiply ``pinv(X) @ Y``: 2 n p V."""
        return 2 * self.n_samples * self.n_regressors * self.n_voxels

    def describe(self):
        """A dict of the sizes, for JSON."""
        return {
            "workload": self.name,
            "n": self.n_samples,
            "p": self.n_regressors,
            "V": self.n_voxels,
        }


WORKLOADS = {
    "W1": Workload("W1", 400, 20, 200_000),
    "W2": Workload("W2", 100, 5, 500_000),
    "W3": Workload("W3", 2_000, 50, 50_000),
}
QUICK = {
    name: Workload(name, w.n_samples, w.n_regressors, w.n_voxels // 20)
    for name, w in WORKLOADS.items()
}


def select_workloads(names, quick):
    """The workloads called ``names`` (all when empty), quick-sized or not."""
    table = QUICK if quick else WORKLOADS
    names = names or list(table)
    unknown = sorted(set(names) - set(table))
    if unknown:
        msg = f"unknown workload(s) {unknown}; choose from {sorted(table)}."
        raise SystemExit(msg)
    return [table[name] for name in names]


# ---------------------------------------------------------------- timing


def progress(message):
    """Say what is being measured, on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# OpenBLAS's idle worker threads spin for about 2**28 cycles (0.1 s here)
# after a multi-threaded call before they sleep. A call timed within that
# window shares a core with the spinning thread: a skvoxel fit right after
# the bare multiply measured 144 ms against 113 ms after a pause (W1,
# float64; 118 ms either way with OPENBLAS_THREAD_TIMEOUT=4). Every timed
# call therefore starts after this pause, from the same quiet state.
SETTLE_S = 0.25


def timed(function):
    """Seconds one call of ``function`` takes.

    Garbage is collected and BLAS threads left to fall asleep
    (:data:`SETTLE_S`) before the clock starts.
    """
    gc.collect()
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - start
    del result  # freed outside the timed region, the same for all
    return elapsed


def alternate(functions, repeats, scale=None):
    """Time every function ``repeats`` times, alternating between them.

    Each round calls every function once; the starting point rotates from
    round to round, so a slow phase of a shared machine, or one function
    leaving the caches cold for the next, hits all of them alike. ``scale``
    maps a name to a factor applied to its times (an extrapolation).

    Returns a dict name -> list of seconds, round by round: the i-th times
    of two functions are a pair measured side by side.
    """
    scale = scale or {}
    names = list(functions)
    times = {name: [None] * repeats for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name][round_] = timed(functions[name]) * scale.get(name, 1.0)
    return times


def summarize(times, references):
    """Medians and paired ratios of the times of :func:`alternate`.

    ``references`` maps a label to a name in ``times``; for each reference
    the ratio is the median over rounds of ``t[i] / t_ref[i]`` (a paired
    ratio, robust to drifts that hit both), with its min and max.
    """
    summary = {}
    for name, values in times.items():
        values = np.asarray(values, dtype=float)
        entry = {
            "median_s": float(np.median(values)),
            "min_s": float(values.min()),
            "max_s": float(values.max()),
            "times_s": values.tolist(),
            "ratios": {},
        }
        for label, ref in references.items():
            if ref not in times:
                continue
            paired = values / np.asarray(times[ref], dtype=float)
            entry["ratios"][label] = {
                "median": float(np.median(paired)),
                "min": float(paired.min()),
                "max": float(paired.max()),
            }
        summary[name] = entry
    return summary


# ---------------------------------------------------------------- memory


def _status_kib(*keys):
    """Values (KiB) of ``keys`` in /proc/self/status."""
    text = Path("/proc/self/status").read_text()
    return {
        key: int(re.search(rf"^{key}:\s+(\d+)", text, re.M).group(1)) for key in keys
    }


def _trim_heap():
    """Return freed heap memory to the OS, so it does not hide new allocations."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak_rss():
    """Reset the kernel's peak RSS (VmHWM) to the current RSS; True if done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    """Polls anonymous and file-backed RSS; keeps their maxima (KiB)."""

    def __init__(self, interval=0.002):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            for key, value in _status_kib("RssAnon", "RssFile").items():
                self.peak[key] = max(self.peak[key], value)
            time.sleep(self.interval)

    def stop(self):
        self._done.set()
        self.join()
        for key, value in _status_kib("RssAnon", "RssFile").items():
            self.peak[key] = max(self.peak[key], value)


def measure_rss(function, sample=False):
    """Peak extra resident memory of one call, from the kernel's counters.

    Freed heap memory is trimmed first and the kernel's high-water mark
    (``VmHWM``) is reset to the current RSS through ``/proc/self/clear_refs``;
    after the call, ``VmHWM - baseline`` is the peak of *everything* the call
    made resident: numpy arrays, BLAS/LAPACK workspace, Python objects,
    thread stacks, mapped file pages. ``retained`` is what is still resident
    after the call, the outputs held. With ``sample=True`` a thread also polls
    anonymous and file-backed RSS every 2 ms (peaks between polls can be
    missed; ``VmHWM`` misses nothing).

    Returns ``(result, info)`` with byte counts in ``info``.
    """
    gc.collect()
    _trim_heap()
    reset = _reset_peak_rss()
    base = _status_kib("VmRSS", "VmHWM", "RssAnon", "RssFile")
    sampler = _Sampler() if sample else None
    if sampler:
        sampler.start()
    result = function()
    if sampler:
        sampler.stop()
    after = _status_kib("VmRSS", "VmHWM")
    info = {
        "method": "VmHWM after reset via /proc/self/clear_refs"
        if reset
        else "VmHWM since process start (reset not permitted)",
        "hwm_reset": reset,
        "baseline_bytes": base["VmRSS"] * 1024,
        "peak_bytes": after["VmHWM"] * 1024,
        "peak_extra_bytes": (after["VmHWM"] - base["VmRSS"]) * 1024,
        "retained_bytes": (after["VmRSS"] - base["VmRSS"]) * 1024,
    }
    if sampler:
        info["peak_extra_anon_bytes"] = (
            sampler.peak["RssAnon"] - base["RssAnon"]
        ) * 1024
        info["peak_extra_file_bytes"] = (
            sampler.peak["RssFile"] - base["RssFile"]
        ) * 1024
    return result, info


def measure_both(function):
    """One call measured by RSS (:func:`measure_rss`) and tracemalloc at once.

    For calibrating the two probes against each other on the same call; the
    benchmarks measure each in its own call, so tracemalloc's bookkeeping
    stays out of the RSS figure.
    """
    gc.collect()
    _trim_heap()
    (result, rss), trace = measure_tracemalloc(lambda: measure_rss(function))
    return result, rss, trace


def measure_tracemalloc(function):
    """Peak extra memory of one call as traced by ``tracemalloc``.

    numpy reports every array buffer it allocates to tracemalloc, so this
    counts arrays (touched or not) and Python objects exactly, but not memory
    that C or Fortran libraries allocate themselves (OpenBLAS buffers,
    LAPACK workspace allocated outside numpy) nor mapped files.
    """
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = function()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    info = {
        "peak_extra_bytes": peak - base,
        "retained_bytes": current - base,
    }
    return result, info


def in_child(function, *args, **kwargs):
    """Run ``function(*args, **kwargs)`` in a fresh interpreter; return its value.

    Used for memory: a new process has no freed-but-kept memory from earlier
    work, and its peak counters belong to this one measurement.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args, **kwargs).result()


def limit_threads(n_threads):
    """A context limiting BLAS/OpenMP threads to ``n_threads`` (None: as is)."""
    if n_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n_threads)


def memory_row(info_rss, info_trace, nbytes_y):
    """Memory figures of one implementation, also relative to bytes(Y).

    The outputs' size is what tracemalloc still counts after the call (the
    arrays and objects the call returned, exactly); RSS after the call is not
    used for it, because glibc may keep freed temporaries resident. "Beyond
    outputs" is each peak minus that size.
    """
    row = {"bytes_Y": nbytes_y, "rss": info_rss, "tracemalloc": info_trace}
    outputs = None
    if info_trace is not None:
        outputs = max(info_trace["retained_bytes"], 0)
    elif info_rss is not None:
        outputs = max(info_rss["retained_bytes"], 0)
    row["outputs_bytes"] = outputs
    row["outputs_over_Y"] = None if outputs is None else outputs / nbytes_y
    for info in (info_rss, info_trace):
        if info is None:
            continue
        peak = info["peak_extra_bytes"]
        info["peak_extra_over_Y"] = peak / nbytes_y
        info["retained_over_Y"] = info["retained_bytes"] / nbytes_y
        info["peak_beyond_outputs_over_Y"] = (peak - outputs) / nbytes_y
    return row


# ---------------------------------------------------------------- metadata


def machine():
    """CPU, cores, memory, BLAS and threads, versions, load: where this ran."""
    from threadpoolctl import threadpool_info

    pools = [
        {
            k: info.get(k)
            for k in (
                "user_api",
                "internal_api",
                "version",
                "num_threads",
                "architecture",
                "threading_layer",
                "filepath",
            )
        }
        for info in threadpool_info()
    ]
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    mem_total = None
    with contextlib.suppress(OSError, AttributeError):
        mem_total = _meminfo_kib("MemTotal") * 1024
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for module in ("scipy", "sklearn", "skvoxel", "nilearn", "statsmodels"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": mem_total,
        "threadpools": pools,
        "blas_threads": [p["num_threads"] for p in pools if p["user_api"] == "blas"],
        "thread_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
        "versions": versions,
        "skvoxel_path": _skvoxel_path(),
        "skvoxel_commit": _git_commit(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
    }


def _meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(key)


def _skvoxel_path():
    """Where the skvoxel that is imported lives (PYTHONPATH can pick another)."""
    try:
        import skvoxel
    except ImportError:
        return None
    return str(Path(skvoxel.__file__).resolve().parent)


def _git_commit():
    """The commit of the skvoxel checkout that is imported, with a dirty flag."""
    try:
        import skvoxel

        root = Path(skvoxel.__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "skvoxel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (ImportError, OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def stamp(args):
    """When and how a run was made, for its JSON."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "options": vars(args),
    }


def write_json(name, payload):
    """Write ``payload`` as ``results/<name>.json`` and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def relative_error(value, reference):
    """``max |value - reference| / max |reference|``, per row for 2-D arrays.

    Normwise (infinity norm) rather than elementwise, so values near zero
    (t-values of null voxels, small coefficients) do not blow it up; for a
    coefficient matrix each regressor's row is scaled by its own largest
    magnitude and the worst row is reported.
    """
    value = np.asarray(value, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if value.shape != reference.shape:
        msg = f"shapes differ: {value.shape} vs {reference.shape}"
        raise ValueError(msg)
    if reference.ndim < 2:
        value, reference = value.reshape(1, -1), reference.reshape(1, -1)
    diff = np.abs(value - reference).max(axis=1)
    scale = np.abs(reference).max(axis=1)
    scale[scale == 0] = 1.0
    return float((diff / scale).max())


def fmt_bytes(n):
    """Bytes as MiB/GiB text."""
    if n is None:
        return "-"
    if abs(n) >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB"
