"""Whole-refresh benchmark: sample N customers, then time each stage of real refreshes.

    python bench/bench_refresh.py --customers 1000000 [--jurisdiction EU-DE] [--purpose kyc_aml]
    python bench/bench_refresh.py --customers 10000000 --all   # every jurisdiction, one by one

Prints per-stage seconds, customers per second and the process's peak RSS. EU-DE holds about
16% of customers; --all refreshes each jurisdiction in turn in this one process, so the peak
RSS printed is that of the largest jurisdiction's refresh plus the sample generation.
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from engine.config import Purpose
from engine.logs import configure_logging
from engine.progress import ProgressEvent
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
    """Peak RSS per refresh stage, from the refresh's own progress events.

    A thread samples /proc/self/status every 20 ms; each progress event (the refresh emits
    one as each stage ends) closes that stage's window, so a stage's peak is the highest
    resident set seen since the previous event. Pass ``memory.hook`` as ``progress=`` to
    run_refresh. Work between two laps (e.g. writing quarantine after `sources`) counts
    towards the next stage.
    """

    def __init__(self) -> None:
        self.peak: dict[str, float] = {}
        # CPU seconds of the whole process (every thread) per stage: the steadier figure
        # when other jobs share the cores.
        self.cpu: dict[str, float] = {}
        self._cpu_mark = time.process_time()
        self._window = 0.0
        self._lock = threading.Lock()
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def rss_gib() -> float:
        with open("/proc/self/status") as fh:
            return next(int(x.split()[1]) for x in fh if x.startswith("VmRSS")) / 2**20

    def hook(self, event: ProgressEvent) -> None:
        with self._lock:
            now = self.rss_gib()
            self.peak[event.stage] = max(self.peak.get(event.stage, 0.0), self._window, now)
            self._window = now
            cpu = time.process_time()
            self.cpu[event.stage] = self.cpu.get(event.stage, 0.0) + cpu - self._cpu_mark
            self._cpu_mark = cpu

    def _sample(self) -> None:
        while True:
            rss = self.rss_gib()
            with self._lock:
                self._window = max(self._window, rss)
            time.sleep(0.02)

    def report(self) -> str:
        with self._lock:
            out = " ".join(f"{k}={v:.2f}" for k, v in self.peak.items())
            self.peak.clear()
            self._window = self.rss_gib()
        return out

    def report_cpu(self) -> str:
        with self._lock:
            out = " ".join(f"{k}={v:.2f}" for k, v in self.cpu.items())
            self.cpu.clear()
            self._cpu_mark = time.process_time()
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
            result = run_refresh(ws, request, progress=memory.hook)
            seconds = time.perf_counter() - t
            total += seconds
            crm = result.accounting["crm"]
            stages = " ".join(f"{k}={v:.2f}" for k, v in result.seconds.items())
            print(
                f"refresh {j} {purpose.value}: {crm.input_rows:,} customers in {seconds:.1f} s "
                f"({crm.input_rows / seconds:,.0f}/s), valid={result.valid}, "
                f"personas={result.personas}; stages: {stages}"
            )
            print(f"  cpu s by stage: {memory.report_cpu()}")
            print(f"  peak RSS GiB by stage: {memory.report()}")
        print(f"total refresh time: {total:.1f} s; peak RSS: {_peak_rss_gib():.2f} GiB")
    finally:
        if args.workspace is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
    # End as `pgov` does (engine/process_exit.py): bench_tenm's figure with process start
    # measures this script from start to exit.
    from engine.process_exit import exit_now

    exit_now(0)
