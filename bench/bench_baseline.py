"""The governed refresh against the plain notebook pipeline, side by side in one run.

    python bench/bench_baseline.py --customers 1000000 [--jurisdiction EU-DE]
    python bench/bench_baseline.py --workspace DIR --runs 3   # reuse a generated sample

Runs the plain pipeline (bench/baseline.py) and a real marketing refresh (what
`pgov refresh` runs) of the same jurisdiction, alternating, `--runs` times each, and prints
medians, the refresh's stages and the ratio refresh / baseline (target: <= 2). The load
average is printed with every figure: on a shared machine only same-run ratios compare.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import run_baseline

from engine.config import Purpose
from engine.logs import configure_logging
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.sample import generate
from engine.sample.workspace import init_workspace
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def _load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def _analyst(ws: Workspace, jurisdiction: str) -> str:
    for actor, spec in ws.config.actors.items():
        roles = [r.value for r in spec.roles]
        if "regional_analyst" in roles and jurisdiction in spec.jurisdictions:
            return actor
    raise SystemExit(f"no analyst serves {jurisdiction}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--purpose", default="marketing_segmentation")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workspace", type=Path, help="reuse/keep this workspace")
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, {date.today().isoformat()}, {_load()}"
    )
    root = args.workspace or Path(tempfile.mkdtemp(prefix="pgov-bench-base-"))
    try:
        if not (root / "pgov.toml").exists():
            init_workspace(root, "parquet")
            init_keys(Workspace.open(root))
            generate(args.customers, args.seed, root / "data", "parquet", as_of=AS_OF)
        ws = Workspace.open(root)
        purpose = Purpose(args.purpose)
        actor = "compliance-lead" if purpose is Purpose.KYC_AML else _analyst(ws, args.jurisdiction)
        base_s: list[float] = []
        ref_s: list[float] = []
        for run in range(args.runs):
            t = time.perf_counter()
            n, _labels, parts = run_baseline(root / "data", args.jurisdiction)
            base_s.append(time.perf_counter() - t)
            detail = " ".join(f"{k}={v:.2f}" for k, v in parts.items())
            print(
                f"run {run + 1} baseline {base_s[-1]:.2f} s ({n:,} customers; {detail}) {_load()}"
            )
            request = RefreshRequest(
                actor=actor, jurisdiction=args.jurisdiction, purpose=purpose, as_of=AS_OF
            )
            t = time.perf_counter()
            result = run_refresh(ws, request)
            ref_s.append(time.perf_counter() - t)
            stages = " ".join(f"{k}={v:.2f}" for k, v in result.seconds.items())
            print(
                f"run {run + 1} refresh  {ref_s[-1]:.2f} s (valid={result.valid}, "
                f"personas={result.personas}; {stages}) {_load()}"
            )
        b, r = statistics.median(base_s), statistics.median(ref_s)
        print(
            f"median baseline {b:.2f} s, refresh {r:.2f} s ({purpose.value}): "
            f"ratio {r / b:.2f} (target <= 2.00) {_load()}"
        )
    finally:
        if args.workspace is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
