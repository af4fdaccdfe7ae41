"""All jurisdictions: sequential vs a local process pool vs a local Dask region cluster.

    .venv/bin/python bench/bench_scaleout.py [--customers 20000] [--purpose kyc_aml]
        [--executors sequential,local,dask] [--workers-per-region 1] [--workspace DIR] [--json]

Builds a sample workspace with `pgov demo` (unless --workspace points at one), then runs
the real refresh of every declared jurisdiction under each executor and prints wall time,
the sum of per-job times, and the speed-up over sequential. Each run publishes a new
version per jurisdiction, so the chains are checked at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any


def _build_workspace(customers: int, seed: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="pgov-bench-scaleout-")) / "ws"
    pgov = str(Path(sys.executable).with_name("pgov"))
    t = time.perf_counter()
    done = subprocess.run(
        [pgov, "demo", "-w", str(root), "--customers", str(customers), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=False,
    )
    if not (root / "pgov.toml").is_file():
        sys.exit(f"pgov demo failed to build a workspace:\n{done.stderr[-2000:]}")
    print(f"workspace: {root} ({customers} customers, built in {time.perf_counter() - t:.1f}s)")
    return root


def _run(
    root: Path, executor: str, purpose: str, actor: str, workers_per_region: int
) -> dict[str, Any]:
    from engine.config import Purpose
    from engine.executor import run_all
    from engine.executors.cluster import region_cluster
    from engine.executors.regions import region_of
    from engine.request import RefreshRequest
    from engine.workspace import Workspace

    ws = Workspace.open(root)
    reqs = [
        RefreshRequest(
            actor=actor, jurisdiction=j, purpose=Purpose(purpose), as_of=date(2026, 11, 1)
        )
        for j in ws.config.jurisdictions
    ]
    cluster = None
    scheduler = None
    setup = 0.0
    if executor == "dask":
        t = time.perf_counter()
        regions = sorted({region_of(j) for j in ws.config.jurisdictions})
        cluster = region_cluster(regions, workers_per_region, processes=True)
        scheduler = cluster.scheduler_address
        setup = time.perf_counter() - t
    try:
        t = time.perf_counter()
        outcomes = run_all(root, reqs, executor, scheduler, 3600)  # type: ignore[arg-type]
        wall = time.perf_counter() - t
    finally:
        if cluster is not None:
            cluster.close()
    return {
        "executor": executor,
        "jobs": len(outcomes),
        "ok": sum(o.ok for o in outcomes),
        "wall_s": round(wall, 2),
        "sum_job_s": round(sum(o.seconds for o in outcomes), 2),
        "cluster_start_s": round(setup, 2),
        "workers": len({o.worker for o in outcomes if o.worker}),
        "errors": sorted({o.error for o in outcomes if o.error})[:3],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--purpose", default="kyc_aml")
    ap.add_argument("--actor", default="compliance-lead")
    ap.add_argument("--executors", default="sequential,local,dask")
    ap.add_argument("--workers-per-region", type=int, default=1)
    ap.add_argument("--workspace", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from engine.logs import ensure_logging

    ensure_logging(None, "WARNING")  # figures on stdout, logs (if any) on stderr

    root = args.workspace or _build_workspace(args.customers, args.seed)
    results = [
        _run(root, ex, args.purpose, args.actor, args.workers_per_region)
        for ex in args.executors.split(",")
    ]
    base = next((r["wall_s"] for r in results if r["executor"] == "sequential"), None)
    for r in results:
        r["speedup"] = round(base / r["wall_s"], 2) if base and r["wall_s"] else None

    from engine.versions import check_chain
    from engine.workspace import Workspace

    ws = Workspace.open(root)
    broken = {j: p for j in ws.config.jurisdictions if (p := check_chain(ws, j, args.purpose))}
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "results": results, "broken": broken}, indent=2))
        return
    print(
        f"{'executor':<11} {'jobs':>4} {'ok':>3} {'wall s':>8} {'sum job s':>9} "
        f"{'speed-up':>8} {'workers':>7}  cluster start s"
    )
    for r in results:
        print(
            f"{r['executor']:<11} {r['jobs']:>4} {r['ok']:>3} {r['wall_s']:>8} "
            f"{r['sum_job_s']:>9} {r['speedup'] or '-':>8} {r['workers']:>7}  "
            f"{r['cluster_start_s'] or '-'}"
        )
        for e in r["errors"]:
            print(f"    error: {e}")
    print(f"cpus: {os.cpu_count()}; chains intact: {not broken}")


if __name__ == "__main__":
    main()
