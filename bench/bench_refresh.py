"""Whole-refresh benchmark: sample N customers, then time each stage of real refreshes.

    python bench/bench_refresh.py --customers 1000000 [--jurisdiction EU-DE] [--purpose kyc_aml]
    python bench/bench_refresh.py --customers 10000000 --all   # every jurisdiction, one by one

Prints per-stage seconds, customers per second and the process's peak RSS. EU-DE holds about
16% of customers; --all refreshes each jurisdiction in turn in this one process, so the peak
RSS printed is that of the largest jurisdiction's refresh plus the sample generation.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import platform
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from engine.config import Purpose
from engine.logs import configure_logging
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.sample import generate
from engine.sample.workspace import init_workspace
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)
ACTORS = {"kyc_aml": "compliance-lead", "credit_risk_segmentation": "compliance-lead"}


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024)


class StageMemory:
    """Peak RSS per refresh stage: a thread samples /proc/self/status every 20 ms while the
    stage functions (wrapped, not changed) mark which stage is running."""

    STAGES = (
        ("engine.sources", "load_sources", "sources"),
        ("engine.enforce", "enforce", "enforce"),
        ("engine.features", "build_features", "features"),
        ("engine.segment", "segment", "segment"),
        ("engine.refresh", "_route", "kyc"),
        ("engine.refresh", "_write_outputs", "write"),
    )

    def __init__(self) -> None:
        self.stage = "policy"
        self.peak: dict[str, float] = {}
        for module, name, label in self.STAGES:
            mod = importlib.import_module(module)
            setattr(mod, name, self._wrap(getattr(mod, name), label))
        threading.Thread(target=self._sample, daemon=True).start()

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            self.stage = label
            try:
                return fn(*args, **kwargs)
            finally:
                self.stage = f"after {label}"

        return run

    def _sample(self) -> None:
        while True:
            with open("/proc/self/status") as fh:
                rss = next(int(x.split()[1]) for x in fh if x.startswith("VmRSS")) / 2**20
            self.peak[self.stage] = max(self.peak.get(self.stage, 0.0), rss)
            time.sleep(0.02)

    def report(self) -> str:
        out = " ".join(f"{k}={v:.2f}" for k, v in self.peak.items() if not k.startswith("after"))
        self.peak.clear()
        return out


def _analyst(ws: Workspace, jurisdiction: str) -> str:
    for actor, spec in ws.config.actors.items():
        if (
            "regional_analyst" in [r.value for r in spec.roles]
            and jurisdiction in spec.jurisdictions
        ):
            return actor
    raise SystemExit(f"no analyst serves {jurisdiction}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--purpose", default="kyc_aml", choices=[p.value for p in Purpose])
    ap.add_argument("--all", action="store_true", help="refresh every jurisdiction in turn")
    ap.add_argument("--workspace", type=Path, help="reuse/keep this workspace")
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")

    root = args.workspace or Path(tempfile.mkdtemp(prefix="pgov-bench-refresh-"))
    print(f"machine: {platform.machine()} {platform.processor() or ''}, cores: "
          f"{__import__('os').cpu_count()}, python {platform.python_version()}, "
          f"date {date.today().isoformat()}")  # fmt: skip
    try:
        if not (root / "pgov.toml").exists():
            init_workspace(root, "parquet")
            init_keys(Workspace.open(root))
            t = time.perf_counter()
            generate(args.customers, args.seed, root / "data", "parquet", as_of=AS_OF)
            print(f"sample: {args.customers:,} customers in {time.perf_counter() - t:.1f} s")
        ws = Workspace.open(root)
        memory = StageMemory()
        purpose = Purpose(args.purpose)
        jurisdictions = ws.config.jurisdictions if args.all else [args.jurisdiction]
        total = 0.0
        for j in jurisdictions:
            actor = ACTORS.get(purpose.value) or _analyst(ws, j)
            request = RefreshRequest(actor=actor, jurisdiction=j, purpose=purpose, as_of=AS_OF)
            t = time.perf_counter()
            result = run_refresh(ws, request)
            seconds = time.perf_counter() - t
            total += seconds
            crm = result.accounting["crm"]
            stages = " ".join(f"{k}={v:.2f}" for k, v in result.seconds.items())
            print(
                f"refresh {j} {purpose.value}: {crm.input_rows:,} customers in {seconds:.1f} s "
                f"({crm.input_rows / seconds:,.0f}/s), valid={result.valid}, "
                f"personas={result.personas}; stages: {stages}"
            )
            print(f"  peak RSS GiB by stage: {memory.report()}")
        print(f"total refresh time: {total:.1f} s; peak RSS: {_peak_rss_gib():.2f} GiB")
    finally:
        if args.workspace is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
