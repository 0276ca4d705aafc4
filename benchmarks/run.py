"""All benchmarks in one command: the machine's floor, skvoxel vs peers, chunks.

Runs, in order: the machine's multiply rate and read bandwidth
(``bench_machine``); on W1, W2, W3 in float64 and float32, skvoxel against the
floor and its peers, alternating in this one process, with peak memory from a
child process per implementation and a correctness check (``bench_ols``); the
chunk_size sweep and a memmap fit (``bench_chunks``). Prints the tables and a
summary against the issue's figures; writes ``results/run.json``
(``results/run_quick.json`` with ``--quick``).

Run ``python benchmarks/run.py`` (``--quick`` for a smoke run).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_chunks  # noqa: E402
import bench_machine  # noqa: E402
import bench_ols  # noqa: E402
import common  # noqa: E402


def headline(ols_rows, chunks):
    """The issue's "must show" figures, as far as this run measured them."""
    lines = []
    by_key = {(r["workload"], r["dtype"]): r for r in ols_rows}
    for (workload, dtype), row in by_key.items():
        t = row["timings"]
        name = bench_ols.FIT_T if "median_s" in t[bench_ols.FIT_T] else bench_ols.FIT
        entry = t[name]
        text = (
            f"{workload} {dtype}: {name} = {entry['ratios']['x bare']['median']:.2f} x "
            f"bare multiply"
        )
        if "x floor" in entry:
            text += f", {entry['x floor']:.1f} x floor"
        t_and_p = t.get(bench_ols.FIT_TP, {})
        if "median_s" in t_and_p:
            text += (
                f"; {bench_ols.FIT_TP} = {t_and_p['ratios']['x bare']['median']:.2f}"
                f" x bare, {t_and_p['x floor']:.1f} x floor"
                if "x floor" in t_and_p
                else ""
            )
        for peer in (bench_ols.NILEARN, bench_ols.SKLEARN):
            ratio = t[peer].get("ratios", {}).get("x skvoxel")
            if ratio:
                text += f"; {peer} {ratio['median']:.1f} x slower"
        memory = row["memory"].get(name, {}).get("rss")
        if memory:
            text += (
                f"; peak extra {memory['peak_extra_over_Y']:.2f} x Y "
                f"({memory['peak_beyond_outputs_over_Y']:.2f} beyond outputs)"
            )
        if name == bench_ols.FIT:
            text += " [no t_test yet: fit only]"
        lines.append(text)
    for (workload, _), row in by_key.items():
        # The float32 speed-up, paired: float64 calls timed in the same rounds.
        for name in (bench_ols.FIT_TP_64, bench_ols.FIT_T_64):
            ratio = row["timings"].get(name, {}).get("ratios", {}).get("x float32")
            if ratio:
                lines.append(
                    f"{workload}: float32 is {ratio['median']:.2f} x faster than "
                    f"{name} (paired, same rounds)"
                )
    for row in ols_rows:
        check = row.get("check")
        if check:
            worst = max(check["relative_errors"].values())
            lines.append(
                f"{row['workload']} float64 check: worst relative error {worst:.1e} "
                f"({'within' if worst <= check['tolerance'] else 'OVER'} "
                f"{check['tolerance']:g}"
                + ("" if check["t_compared"] else "; skvoxel t not compared: no t_test")
                + ")"
            )
    for row in chunks.get("memmap", []):
        rss = row["rss"]
        lines.append(
            f"memmap {row['dtype']} {common.fmt_bytes(row['bytes_Y'])}: peak RSS "
            f"{common.fmt_bytes(rss['peak_bytes'])} in all "
            f"(anonymous extra {common.fmt_bytes(rss.get('peak_extra_anon_bytes'))}), "
            f"fit {row['time_s']:.2f} s cold, "
            + (
                "identical to in memory"
                if row.get("equal_to_in_memory", {}).get("coef_identical")
                and row["equal_to_in_memory"]["rss_identical"]
                else "see equal_to_in_memory"
            )
        )
    return lines


def main(argv=None):
    """Run everything; print tables and a summary; write results/run.json."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench_ols.add_arguments(parser)
    parser.add_argument("--no-chunks", action="store_true", help="skip bench_chunks")
    parser.add_argument("--memmap-gb", type=float, default=None, help="memmap size, GB")
    parser.add_argument("--tmpdir", default=None, help="for the memmap file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    info, machine_rates, rows = bench_ols.run_from_arguments(args)
    bench_ols.print_rows(rows)
    chunks = {}
    if not args.no_chunks:
        chunk_argv = ["--repeats", str(repeats), "--dtypes", *args.dtypes]
        for flag in ("quick", "no_memory"):
            if getattr(args, flag):
                chunk_argv.append("--" + flag.replace("_", "-"))
        for option in ("memmap_gb", "tmpdir", "threads"):
            if getattr(args, option) is not None:
                chunk_argv += [
                    "--" + option.replace("_", "-"),
                    str(getattr(args, option)),
                ]
        chunk_parser = argparse.ArgumentParser()
        bench_chunks.add_arguments(chunk_parser)
        chunks = bench_chunks.run(chunk_parser.parse_args(chunk_argv))
        bench_chunks.print_result(chunks)
    calibration = common.in_child(bench_machine.calibrate_memory)
    bench_machine.print_calibration(calibration)
    summary = headline(rows, chunks)
    print("\nsummary")
    for line in summary:
        print("  " + line)
    info["load_average_end"] = os.getloadavg()
    payload = {
        "run": common.stamp(args),
        "machine": info,
        "rates": machine_rates,
        "floors": [r["floor"] for r in rows],
        "ols": rows,
        "chunks": chunks,
        "memory_calibration": calibration,
        "summary": summary,
    }
    name = args.out or ("run_quick" if args.quick else "run")
    print(f"wrote {common.write_json(name, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
