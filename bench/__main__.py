"""Run the benchmark suites: ``python -m bench [--quick] [--suite NAME ...] [--json PATH]``."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from bench.report import Report
from bench.timing import cpu_ticks, memory_bandwidth, stolen_percent, thread_pools

SUITES = ("contrast", "recording", "processing", "pipeline")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1024² only, fewer repeats")
    parser.add_argument("--suite", action="append", choices=SUITES, help="run only these suites")
    parser.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args()

    report = Report()
    report.extra["load_average_1min_at_start"] = os.getloadavg()[0]
    report.extra["thread_pools"] = thread_pools()
    # Set on some processors for old OpenBLAS builds; they slow a current NumPy (none of the
    # baselines here calls BLAS, but the JSON says what the run had).
    report.extra["openblas_env"] = {
        name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    bandwidth = memory_bandwidth()
    report.extra["memory_bandwidth_GBps"] = {
        "one_thread": bandwidth.one_thread_bps / 1e9,
        f"{bandwidth.threads}_threads": bandwidth.all_threads_bps / 1e9,
    }
    print(
        f"memory bandwidth (copy, read+write): {bandwidth.one_thread_bps / 1e9:.1f} GB/s on one "
        f"thread, {bandwidth.all_threads_bps / 1e9:.1f} GB/s on {bandwidth.threads}",
        flush=True,
    )
    stolen: dict[str, float | None] = {}
    report.extra["cpu_stolen_by_hypervisor_percent"] = stolen
    for name in args.suite or SUITES:
        print(f"running {name} ...", flush=True)
        before = cpu_ticks()
        importlib.import_module(f"bench.{name}").run(report, bandwidth, quick=args.quick)
        stolen[name] = stolen_percent(before, cpu_ticks())
    report.extra["load_average_1min_at_end"] = os.getloadavg()[0]
    print(report.table())
    for key, value in report.extra.items():
        print(f"{key}: {value}")
    report.write_json(args.json)
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
