"""skvoxel against the floor and its peers: time, memory and equal results.

For each workload and dtype, in this one process, alternating and repeated:
a plain read of ``Y``; the bare ``pinv(X) @ Y``; skvoxel's fit; skvoxel's fit
and ``t_test`` (t, p, z) of one contrast; nilearn's OLS ``run_glm`` and
``compute_contrast`` (t, p, z); scikit-learn's ``LinearRegression``; and
statsmodels' ``OLS`` + ``t_test`` one voxel at a time on a sample of voxels,
its time extrapolated to all voxels. Peak extra memory is measured apart, in a
fresh child process per implementation, untimed. A correctness check compares
skvoxel's results with the peers'.

Run ``python benchmarks/bench_ols.py`` (``--quick`` for a smoke run).
"""

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine  # noqa: E402
import common  # noqa: E402

from skvoxel import MassUnivariateOLS  # noqa: E402

BARE = "pinv(X) @ Y"
READ = "read Y"
FIT = "skvoxel fit"
FIT_TP = "skvoxel fit + t_test (t, p)"
FIT_T = "skvoxel fit + t_test"
# In float32 rows: the same calls on the float64 data, in the same rounds, so
# the float32 speed-up is a paired ratio.
FIT_TP_64 = "float64: skvoxel fit + t_test (t, p)"
FIT_T_64 = "float64: skvoxel fit + t_test"
NILEARN = "nilearn OLS + contrast"
SKLEARN = "sklearn LinearRegression"
STATSMODELS = "statsmodels OLS, per voxel"
PEERS = (NILEARN, SKLEARN, STATSMODELS)


class Skipped(Exception):
    """An implementation that cannot run here; the message says why."""


def has_t_test():
    """Whether this skvoxel's MassUnivariateOLS has ``t_test`` (API.md)."""
    return callable(getattr(MassUnivariateOLS, "t_test", None))


def contrast_for(X):
    """The contrast tested everywhere: the first regressor, ``[1, 0, ..., 0]``."""
    contrast = np.zeros(X.shape[1])
    contrast[0] = 1.0
    return contrast


def voxel_sample(n_voxels, size):
    """``size`` evenly spaced voxel indices (statsmodels' sample)."""
    return np.unique(np.linspace(0, n_voxels - 1, min(size, n_voxels)).astype(int))


def _skvoxel_fit(X, Y, contrast, sample):
    return lambda: MassUnivariateOLS().fit(X, Y)


def _skvoxel_fit_t_reading(*fields):
    """An implementation: fit, ``t_test``, and read ``fields`` of the result
    (they may be computed on access)."""

    def build(X, Y, contrast, sample):
        if not has_t_test():
            msg = "MassUnivariateOLS has no t_test yet: row skipped, not timed"
            raise Skipped(msg)

        def fit_t():
            model = MassUnivariateOLS().fit(X, Y)
            result = model.t_test(contrast)
            return model, result, *(getattr(result, field) for field in fields)

        return fit_t

    return build


_skvoxel_fit_t = _skvoxel_fit_t_reading("stat", "p_value", "z_score")
_skvoxel_fit_tp = _skvoxel_fit_t_reading("stat", "p_value")


def _nilearn(X, Y, contrast, sample):
    from nilearn.glm import compute_contrast
    from nilearn.glm.first_level import run_glm

    def ols_contrast():
        labels, results = run_glm(Y, X, noise_model="ols")
        con = compute_contrast(labels, results, contrast, stat_type="t")
        return labels, results, con, con.stat(), con.p_value(), con.z_score()

    return ols_contrast


def _sklearn(X, Y, contrast, sample):
    from sklearn.linear_model import LinearRegression

    return lambda: LinearRegression(fit_intercept=False).fit(X, Y)


def _statsmodels(X, Y, contrast, sample):
    import statsmodels.api as sm

    def per_voxel():
        out = np.empty((3, len(sample)))
        for k, j in enumerate(sample):
            fit = sm.OLS(Y[:, j], X).fit()
            test = fit.t_test(contrast)
            out[:, k] = test.effect.item(), test.tvalue.item(), test.pvalue.item()
        return out

    return per_voxel


IMPLEMENTATIONS = {
    READ: lambda X, Y, c, s: bench_machine.read_y(X, Y),
    BARE: lambda X, Y, c, s: bench_machine.bare_multiply(X, Y),
    FIT: _skvoxel_fit,
    FIT_TP: _skvoxel_fit_tp,
    FIT_T: _skvoxel_fit_t,
    NILEARN: _nilearn,
    SKLEARN: _sklearn,
    STATSMODELS: _statsmodels,
}


def build(names, X, Y, n_sample):
    """Callables for ``names`` on ``(X, Y)``, and the reasons for skipped ones."""
    contrast = contrast_for(X)
    sample = voxel_sample(Y.shape[1], n_sample)
    functions, skipped = {}, {}
    for name in names:
        try:
            functions[name] = IMPLEMENTATIONS[name](X, Y, contrast, sample)
        except Skipped as exc:
            skipped[name] = str(exc)
    return functions, skipped, sample


# ---------------------------------------------------------------- memory


def memory_child(name, workload, dtype_name, n_sample, threads):
    """Peak extra memory of one implementation, in this (fresh) process."""
    warnings.simplefilter("ignore")  # peers' deprecation notes are not results
    with common.limit_threads(threads):
        X, Y = workload.make(common.DTYPES[dtype_name])
        # Warm up on a slice: imports, BLAS buffers and caches belong to the
        # process, not to the call measured.
        small = np.ascontiguousarray(Y[:, : min(Y.shape[1], 2000)])
        functions, skipped, _ = build([name], X, small, min(n_sample, 10))
        if skipped:
            return {"skipped": skipped[name]}
        functions[name]()
        del small, functions
        functions, _, sample = build([name], X, Y, n_sample)
        result, rss = common.measure_rss(functions[name])
        del result
        result, trace = common.measure_tracemalloc(functions[name])
        del result
    row = common.memory_row(rss, trace, Y.nbytes)
    if name == STATSMODELS:
        row["note"] = f"the per-voxel loop over {len(sample)} voxels; not extrapolated"
    return row


# ---------------------------------------------------------------- checks


def check_results(X, Y, n_sample):
    """Relative errors between skvoxel and its peers (float64 data).

    nilearn and scikit-learn are compared on every voxel, statsmodels on its
    sample. Until skvoxel has ``t_test``, skvoxel's coefficients and residual
    variance are compared, and the peers' t with each other.
    """
    from nilearn.glm import compute_contrast
    from nilearn.glm.first_level import run_glm
    from sklearn.linear_model import LinearRegression

    contrast = contrast_for(X)
    sample = voxel_sample(Y.shape[1], n_sample)
    model = MassUnivariateOLS().fit(X, Y)
    checks = {}
    coef_lr = LinearRegression(fit_intercept=False).fit(X, Y).coef_.T
    checks["coef_ vs LinearRegression coef_.T"] = common.relative_error(
        model.coef_, coef_lr
    )
    del coef_lr
    labels, results = run_glm(Y, X, noise_model="ols")
    ols = results[0.0]
    checks["coef_ vs nilearn theta"] = common.relative_error(model.coef_, ols.theta)
    checks["sigma2_ vs nilearn dispersion"] = common.relative_error(
        model.sigma2_, ols.dispersion
    )
    con = compute_contrast(labels, results, contrast, stat_type="t")
    t_nilearn, z_nilearn = con.stat(), con.z_score()
    del labels, results, ols, con
    sm = _statsmodels_reference(X, Y, contrast, sample)
    checks["coef_ vs statsmodels params (sample)"] = common.relative_error(
        model.coef_[:, sample], sm["params"]
    )
    checks["sigma2_ vs statsmodels scale (sample)"] = common.relative_error(
        model.sigma2_[sample], sm["scale"]
    )
    checks["peers: nilearn t vs statsmodels t (sample)"] = common.relative_error(
        t_nilearn[sample], sm["t"]
    )
    if has_t_test():
        result = model.t_test(contrast)
        checks["t vs nilearn t"] = common.relative_error(result.stat, t_nilearn)
        checks["t vs statsmodels t (sample)"] = common.relative_error(
            result.stat[sample], sm["t"]
        )
        checks["p vs statsmodels p (sample)"] = common.relative_error(
            result.p_value[sample], sm["p"]
        )
        checks["z vs nilearn z"] = common.relative_error(result.z_score, z_nilearn)
    return {
        "kind": "skvoxel vs peers, float64",
        "voxels": Y.shape[1],
        "statsmodels_sample": len(sample),
        "t_compared": has_t_test(),
        "tolerance": 1e-8,
        "relative_errors": checks,
        "all_within_tolerance": all(v <= 1e-8 for v in checks.values()),
    }


def _statsmodels_reference(X, Y, contrast, sample):
    import statsmodels.api as sm

    params, scale, t, p = [], [], [], []
    for j in sample:
        fit = sm.OLS(Y[:, j], X).fit()
        test = fit.t_test(contrast)
        params.append(fit.params)
        scale.append(fit.scale)
        t.append(test.tvalue.item())
        p.append(test.pvalue.item())
    return {
        "params": np.array(params).T,
        "scale": np.array(scale),
        "t": np.array(t),
        "p": np.array(p),
    }


def check_float32(X32, Y32, n_voxels=20_000):
    """float32 against float64 on the same (rounded) data, first voxels.

    The reference fits the float32 numbers in float64, so the difference is
    the float32 arithmetic's alone. The issue's bar is t within 1e-3.
    """
    Y32 = Y32[:, : min(n_voxels, Y32.shape[1])]
    X64, Y64 = X32.astype(np.float64), Y32.astype(np.float64)
    fit32 = MassUnivariateOLS().fit(X32, Y32)
    fit64 = MassUnivariateOLS().fit(X64, Y64)
    checks = {
        "coef_ float32 vs float64": common.relative_error(fit32.coef_, fit64.coef_),
        "sigma2_ float32 vs float64": common.relative_error(
            fit32.sigma2_, fit64.sigma2_
        ),
    }
    if has_t_test():
        contrast = contrast_for(X64)
        checks["t float32 vs float64"] = common.relative_error(
            fit32.t_test(contrast).stat, fit64.t_test(contrast).stat
        )
    return {
        "kind": "skvoxel float32 vs float64 on the same data",
        "voxels": Y32.shape[1],
        "t_compared": has_t_test(),
        "tolerance_t": 1e-3,
        "relative_errors": checks,
    }


# ---------------------------------------------------------------- run


def run_one(workload, dtype, repeats, n_sample, machine_rates, memory, threads):
    """Everything measured for one workload in one dtype."""
    dtype_name = np.dtype(dtype).name
    names = list(IMPLEMENTATIONS)
    row = {**workload.describe(), "dtype": dtype_name}
    if machine_rates is not None:
        row["floor"] = bench_machine.floor(workload, dtype, machine_rates)
    row["memory"] = {}
    row["load_average_start"] = os.getloadavg()
    tag = f"{workload.name} {dtype_name}"
    if memory:  # first, while this process holds no data
        for name in names:
            common.progress(f"{tag}: memory of {name} (child process)")
            row["memory"][name] = common.in_child(
                memory_child, name, workload, dtype_name, n_sample, threads
            )
    X, Y = workload.make(dtype)
    common.progress(f"{tag}: correctness check")
    if dtype_name == "float64":
        row["check"] = check_results(X, Y, n_sample)
    else:
        row["check_float32"] = check_float32(X, Y)
    small = np.ascontiguousarray(Y[:, : min(Y.shape[1], 2000)])
    warm, _, _ = build(names, X, small, 10)
    for function in warm.values():  # imports, thread pools, caches
        function()
    del warm, small
    functions, skipped, sample = build(names, X, Y, n_sample)
    references = {"x bare": BARE, "x read": READ}
    if dtype_name == "float32" and has_t_test():
        X64, Y64 = workload.make(np.float64)
        contrast = contrast_for(X64)
        functions[FIT_TP_64] = _skvoxel_fit_tp(X64, Y64, contrast, sample)
        functions[FIT_T_64] = _skvoxel_fit_t(X64, Y64, contrast, sample)
        references["x float32"] = FIT_TP
        for function in (functions[FIT_TP_64], functions[FIT_T_64]):
            function()  # warm
    common.progress(f"{tag}: timing, {repeats} alternating rounds")
    scale = {STATSMODELS: Y.shape[1] / len(sample)}
    times = common.alternate(functions, repeats, scale=scale)
    skvoxel = FIT_T if FIT_T in functions else FIT
    references["x skvoxel"] = skvoxel
    summary = common.summarize(times, references)
    if FIT_T_64 in summary:  # (t, p, z) against (t, p, z)
        paired = np.asarray(times[FIT_T_64]) / np.asarray(times[FIT_T])
        summary[FIT_T_64]["ratios"]["x float32"] = {
            "median": float(np.median(paired)),
            "min": float(paired.min()),
            "max": float(paired.max()),
        }
    for name in PEERS:
        if name in summary:
            summary[name]["compared_to"] = skvoxel
    summary[STATSMODELS]["extrapolated"] = {
        "sample_voxels": len(sample),
        "factor": scale[STATSMODELS],
    }
    for name, reason in skipped.items():
        summary[name] = {"skipped": reason}
    order = names + [name for name in (FIT_TP_64, FIT_T_64) if name in summary]
    summary = {name: summary[name] for name in order}  # the table's order
    if machine_rates is not None:
        for entry in summary.values():
            if "median_s" in entry:
                entry["x floor"] = entry["median_s"] / row["floor"]["floor_s"]
    row["timings"] = summary
    row["repeats"] = repeats
    row["load_average_end"] = os.getloadavg()
    return row


def run(workloads, dtypes, repeats, n_sample, machine_rates, memory=True, threads=None):
    """:func:`run_one` over workloads and dtypes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peers' deprecation notes are not results
        return [
            run_one(w, d, repeats, n_sample, machine_rates, memory, threads)
            for w in workloads
            for d in dtypes
        ]


# ---------------------------------------------------------------- output


def _ratio(entry, label):
    ratio = entry.get("ratios", {}).get(label)
    return f"{ratio['median']:.2f}" if ratio else "-"


LEGEND = """\
columns: median s = median over rounds; x bare, x read = paired ratios to
pinv(X) @ Y and to a plain read of Y in the same rounds; x floor = median /
the physical floor; peer/skv = the peer's time / skvoxel's, paired;
peak/Y = peak extra resident memory (kernel VmHWM, child process) / bytes(Y);
trace/Y = peak extra by tracemalloc (numpy and Python allocations only);
out/Y = the outputs the call returns (tracemalloc) / bytes(Y);
beyond/Y = peak/Y - out/Y."""


def print_rows(rows):
    """Print one table per workload and dtype, with its checks."""
    print("\n" + LEGEND)
    for row in rows:
        head = (
            f"\n{row['workload']} {row['dtype']}  (n={row['n']}, p={row['p']}, "
            f"V={row['V']:,})"
        )
        if "floor" in row:
            floor = row["floor"]
            head += (
                f"  floor {floor['floor_s']:.4f} s ({floor['bound']}-bound: "
                f"{floor['flops_s']:.4f} s of flops, {floor['read_s']:.4f} s of reads)"
            )
        print(head)
        print(
            f"  {'implementation':27} {'median s':>9} {'x bare':>7} {'x read':>7} "
            f"{'x floor':>7} {'peer/skv':>8} {'peak/Y':>7} {'trace/Y':>7} "
            f"{'out/Y':>7} {'beyond/Y':>8}"
        )
        for name, entry in row["timings"].items():
            if "skipped" in entry:
                print(f"  {name:27} skipped: {entry['skipped']}")
                continue
            memory = row["memory"].get(name, {})
            rss, trace = memory.get("rss"), memory.get("tracemalloc")
            label = name + (" *" if "extrapolated" in entry else "")
            peer = _ratio(entry, "x skvoxel") if name in PEERS else ""
            x_floor = f"{entry['x floor']:.1f}" if "x floor" in entry else "-"
            print(
                f"  {label:27} {entry['median_s']:9.4f} {_ratio(entry, 'x bare'):>7} "
                f"{_ratio(entry, 'x read'):>7} {x_floor:>7} {peer:>8} "
                f"{_over(rss, 'peak_extra_over_Y'):>7} "
                f"{_over(trace, 'peak_extra_over_Y'):>7} "
                f"{_over(memory, 'outputs_over_Y'):>7} "
                f"{_over(rss, 'peak_beyond_outputs_over_Y'):>8}"
            )
        sm = row["timings"][STATSMODELS].get("extrapolated")
        if sm:
            print(
                f"  * extrapolated from {sm['sample_voxels']} voxels "
                f"(x{sm['factor']:.0f}); its memory is the loop's, not extrapolated"
            )
        peer_ref = next(
            (
                row["timings"][p].get("compared_to")
                for p in PEERS
                if p in row["timings"]
            ),
            None,
        )
        if peer_ref:
            print(f"  peer/skv: peer time / {peer_ref} time, paired")
        for key in ("check", "check_float32"):
            if key in row:
                _print_check(row[key])


def _over(info, key):
    return f"{info[key]:.2f}" if info and info.get(key) is not None else "-"


def _print_check(check):
    tolerance = check.get("tolerance", check.get("tolerance_t"))
    title = (
        f"  check ({check['kind']}, {check['voxels']:,} voxels"
        + (
            f", statsmodels on {check['statsmodels_sample']}"
            if "statsmodels_sample" in check
            else ""
        )
        + f"; tolerance {tolerance:g} relative)"
    )
    print(title)
    if not check["t_compared"]:
        print("    skvoxel t not compared: MassUnivariateOLS has no t_test yet")
    for name, value in check["relative_errors"].items():
        print(f"    {name:45} {value:.2e}")


def main(argv=None):
    """Run the comparison; print tables; write JSON into results/."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    info, machine_rates, rows = run_from_arguments(args)
    print_rows(rows)
    payload = {
        "run": common.stamp(args),
        "machine": info,
        "rates": machine_rates,
        "rows": rows,
    }
    path = common.write_json(
        args.out or ("bench_ols_quick" if args.quick else "bench_ols"), payload
    )
    print(f"wrote {path}")
    return 0


def run_from_arguments(args):
    """Measure the machine, then run the comparison as ``args`` (parsed
    :func:`add_arguments` options) say; print the machine and its rates.

    Returns
    -------
    info, machine_rates, rows
    """
    repeats = args.repeats or (3 if args.quick else 5)
    n_sample = args.sample or (50 if args.quick else 200)
    with common.limit_threads(args.threads):
        machine_rates = bench_machine.rates(args.quick)
        info = common.machine()
        bench_machine.print_machine(info)
        bench_machine.print_rates(machine_rates)
        rows = run(
            common.select_workloads(args.workloads, args.quick),
            [common.DTYPES[d] for d in args.dtypes],
            repeats,
            n_sample,
            machine_rates,
            memory=not args.no_memory,
            threads=args.threads,
        )
    return info, machine_rates, rows


def add_arguments(parser):
    """Options shared with run.py."""
    parser.add_argument(
        "--quick", action="store_true", help="1/20 of the voxels (smoke)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds (5; 3 quick)")
    parser.add_argument("--workloads", nargs="*", default=None, help="e.g. W1 W3")
    parser.add_argument(
        "--dtypes", nargs="*", default=list(common.DTYPES), choices=list(common.DTYPES)
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="voxels statsmodels fits (200; 50 quick)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip memory runs")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    parser.add_argument("--out", default=None, help="results/<OUT>.json")


if __name__ == "__main__":
    sys.exit(main())
