"""Benchmark: sample generation and scan+validate, for one jurisdiction and for all.

    .venv/bin/python bench/bench_sample.py                 # 1M customers
    .venv/bin/python bench/bench_sample.py --customers 200000
    .venv/bin/python bench/bench_sample.py --ten-million   # 10M: 4.3 GB disk, 11.5 GiB peak

Prints figures; asserts nothing about time (speed is measured here, not tested).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import structlog

from engine.sample import generate
from engine.sample.workspace import init_workspace
from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--ten-million", action="store_true", help="10M customers")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--skip-all", action="store_true", help="skip the all-jurisdictions pass")
    ap.add_argument("--keep", type=Path, default=None, help="workspace dir to keep")
    args = ap.parse_args()
    n = 10_000_000 if args.ten_million else args.customers
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    root = args.keep or Path(tempfile.mkdtemp(prefix="pgov-bench-")) / "ws"
    try:
        init_workspace(root, args.format)
        # Wall and CPU seconds (all threads): on a shared machine the CPU figure is the
        # stable one; the load average says how shared it was.
        print(f"load average         {os.getloadavg()[0]:>10.1f}")
        t, c = time.perf_counter(), time.process_time()
        summary = generate(n, args.seed, root / "data", args.format, as_of=AS_OF)
        gen_s, gen_cpu = time.perf_counter() - t, time.process_time() - c
        size = sum(p.stat().st_size for p in (root / "data").iterdir())
        print(f"customers            {n:>14,}")
        for name, rows in summary.rows.items():
            print(f"  {name:<18} {rows:>14,} rows")
        print(
            f"sample ({args.format})      {gen_s:>10.2f} s   cpu {gen_cpu:.2f} s   "
            f"{size / 1e9:.2f} GB on disk"
        )
        print(f"  transactions/s     {summary.rows['transactions'] / gen_s:>14,.0f}")
        # Peak resident memory so far (Linux reports KiB). Transactions and app events are
        # drawn per block of 1M customers; the customer table and one-row-per-customer
        # sources are whole, so this still grows with --customers, but far more slowly.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"  peak memory        {peak:>10.2f} GiB")

        ws = Workspace.open(root)
        t, c = time.perf_counter(), time.process_time()
        frames = load_sources(ws, args.jurisdiction, AS_OF)
        one_s, one_cpu = time.perf_counter() - t, time.process_time() - c
        rows = sum(f.accounting.input_rows for f in frames.frames.values())
        q = sum(f.accounting.quarantined_rows for f in frames.frames.values())
        print(
            f"scan+validate {args.jurisdiction:<6} {one_s:>10.2f} s   cpu {one_cpu:.2f} s   "
            f"{rows:,} rows, "
            f"{q:,} quarantined ({rows / one_s:,.0f} rows/s)"
        )
        del frames
        if not args.skip_all:
            t, c = time.perf_counter(), time.process_time()
            total = 0
            for j in ws.config.jurisdictions:
                fr = load_sources(ws, j, AS_OF)
                total += sum(f.accounting.input_rows for f in fr.frames.values())
                del fr
            all_s, all_cpu = time.perf_counter() - t, time.process_time() - c
            print(
                f"scan+validate all    {all_s:>10.2f} s   cpu {all_cpu:.2f} s   {total:,} rows "
                f"({total / all_s:,.0f} rows/s, {len(ws.config.jurisdictions)} jurisdictions)"
            )
        print(f"load average         {os.getloadavg()[0]:>10.1f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
