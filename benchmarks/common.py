"""Shared benchmark pieces: workloads, a timer, machine metadata, JSON output."""

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Workload:
    """A design of n samples x p regressors fitted to V voxels."""

    name: str
    n_samples: int
    n_regressors: int
    n_voxels: int

    def make(self, dtype, seed=0):
        """Return ``(X, Y)``: a design with a constant, BOLD-like data."""
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(self.n_samples, self.n_regressors))
        X[:, -1] = 1.0
        Y = rng.standard_normal((self.n_samples, self.n_voxels), dtype=np.float64)
        Y *= 10.0
        Y += 1000.0
        return X.astype(dtype), Y.astype(dtype, copy=False)


WORKLOADS = {
    "W1": Workload("W1", 400, 20, 200_000),
    "W2": Workload("W2", 100, 5, 500_000),
    "W3": Workload("W3", 2_000, 50, 50_000),
}
QUICK = {
    name: Workload(name, w.n_samples, w.n_regressors, w.n_voxels // 20)
    for name, w in WORKLOADS.items()
}


def best_and_median(function, repeats):
    """Run ``function`` ``repeats`` times; return (min, median) seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.min(times)), float(np.median(times))


def machine():
    """CPU, core count, numpy's BLAS and its thread count."""
    from threadpoolctl import threadpool_info

    blas = [
        {
            k: info.get(k)
            for k in ("internal_api", "version", "num_threads", "architecture")
        }
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "numpy": np.__version__,
        "blas": blas,
        "python": platform.python_version(),
    }


def write_json(name, payload):
    """Write ``payload`` as ``results/<name>.json`` and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    return path
