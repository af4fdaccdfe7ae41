"""Run every benchmark at its default size, one after another, printing each one's figures.

    make bench            # or: python bench/run_all.py [--quick]

--quick shrinks the sizes so the whole set finishes in a few minutes (a smoke run; the
figures in docs/performance.md come from the default sizes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS: list[tuple[str, list[str], list[str]]] = [
    ("bench_sample.py", [], ["--customers", "100000"]),
    ("bench_policy.py", [], ["--rows", "10000,100000", "--repeat", "5"]),
    ("bench_pseudonym.py", [], ["--n", "1000000", "--refresh-customers", "0"]),
    ("bench_segment.py", [], ["--customers", "100000"]),
    ("bench_kyc.py", [], ["--sizes", "100000"]),
    ("bench_audit.py", [], ["--entries", "100000", "--single", "500"]),
    ("bench_refresh.py", [], ["--customers", "100000"]),
    ("bench_scaleout.py", [], ["--customers", "20000", "--executors", "sequential,local"]),
    ("bench_baseline.py", [], ["--customers", "100000", "--runs", "1"]),
    ("bench_governance.py", [], ["--customers", "50000", "--runs", "1"]),
    ("bench_validity.py", [], ["--customers", "20000"]),
    ("bench_scaling.py", [], ["--customers", "50000"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="script names to run")
    args = ap.parse_args()
    failed = []
    for script, full, quick in RUNS:
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        t = time.perf_counter()
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(script)
        print(f"=== {script}: {time.perf_counter() - t:.1f} s wall", flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
