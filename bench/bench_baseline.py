"""The governed refresh against the plain notebook pipeline, side by side in one run.

    python bench/bench_baseline.py --customers 1000000 [--jurisdiction EU-DE]
    python bench/bench_baseline.py --workspace DIR --runs 3   # reuse a generated sample

Runs the plain pipeline (bench/baseline.py) and a real marketing refresh (what
`pgov refresh` runs) of the same jurisdiction, alternating, `--runs` times each, and prints
medians, the refresh's stages and the ratio refresh / baseline (target: <= 2), in wall
seconds and in CPU seconds (all threads of this process): when other jobs share the cores
the CPU ratio is the steadier one. The load average is printed with every figure.

Governance share: the refresh's time in policy, enforce (consent, retention, tokens),
store + sign and the unstaged remainder (audit appends, quarantine sealing, locks), over
the whole refresh. It is an attribution of the same run's stages, not a second run with
governance switched off: the features and segmentation of an ungoverned run would read
other inputs (raw identifiers instead of tokens), so the attribution is the fairer figure.
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
        base_cpu: list[float] = []
        ref_cpu: list[float] = []
        gov: list[float] = []
        for run in range(args.runs):
            t, c = time.perf_counter(), time.process_time()
            n, _labels, parts = run_baseline(root / "data", args.jurisdiction)
            base_s.append(time.perf_counter() - t)
            base_cpu.append(time.process_time() - c)
            detail = " ".join(f"{k}={v:.2f}" for k, v in parts.items())
            print(
                f"run {run + 1} baseline {base_s[-1]:.2f} s cpu {base_cpu[-1]:.2f} s "
                f"({n:,} customers; {detail}) {_load()}"
            )
            request = RefreshRequest(
                actor=actor, jurisdiction=args.jurisdiction, purpose=purpose, as_of=AS_OF
            )
            t, c = time.perf_counter(), time.process_time()
            result = run_refresh(ws, request)
            ref_s.append(time.perf_counter() - t)
            ref_cpu.append(time.process_time() - c)
            sec = result.seconds
            unstaged = ref_s[-1] - sum(sec.values())
            governed = sum(sec.get(k, 0.0) for k in ("policy", "enforce", "store")) + unstaged
            gov.append(governed / ref_s[-1])
            stages = " ".join(f"{k}={v:.2f}" for k, v in sec.items())
            print(
                f"run {run + 1} refresh  {ref_s[-1]:.2f} s cpu {ref_cpu[-1]:.2f} s "
                f"(valid={result.valid}, personas={result.personas}; {stages} "
                f"unstaged={unstaged:.2f}; governance {gov[-1]:.0%}) {_load()}"
            )
        b, r = statistics.median(base_s), statistics.median(ref_s)
        bc, rc = statistics.median(base_cpu), statistics.median(ref_cpu)
        print(
            f"median baseline {b:.2f} s (cpu {bc:.2f}), refresh {r:.2f} s (cpu {rc:.2f}) "
            f"{purpose.value}: ratio {r / b:.2f} wall, {rc / bc:.2f} cpu (target <= 2.00); "
            f"governance share {statistics.median(gov):.0%} {_load()}"
        )
    finally:
        if args.workspace is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
