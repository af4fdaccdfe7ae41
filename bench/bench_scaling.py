"""Scaling: time(N) / time(N/10) for a whole jurisdiction set, with peak RSS per stage.

    python bench/bench_scaling.py --customers 200000 [--purpose marketing_segmentation]

Generates two samples (N/10 and N customers, same seed), refreshes every jurisdiction of
each in turn in this process and prints each set's total wall and CPU seconds, the ratio
(target: <= 11, i.e. close to linear) and the peak resident memory per stage (sampled every
20 ms by bench_refresh.StageMemory). Load averages are printed: compare CPU ratios when
the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_refresh import ACTORS, StageMemory, _analyst

from engine.config import Purpose
from engine.logs import configure_logging
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.sample import generate
from engine.sample.workspace import init_workspace
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def run_set(n: int, seed: int, purpose: Purpose, memory: StageMemory) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="pgov-bench-scale-"))
    try:
        init_workspace(root, "parquet")
        init_keys(Workspace.open(root))
        generate(n, seed, root / "data", "parquet", as_of=AS_OF)
        ws = Workspace.open(root)
        memory.report()  # forget the generator's peak
        memory.report_cpu()
        t, c = time.perf_counter(), time.process_time()
        for j in ws.config.jurisdictions:
            actor = ACTORS.get(purpose.value) or _analyst(ws, j)
            request = RefreshRequest(actor=actor, jurisdiction=j, purpose=purpose, as_of=AS_OF)
            run_refresh(ws, request, progress=memory.hook)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        print(
            f"{n:>10,} customers, {len(ws.config.jurisdictions)} jurisdictions: {wall:.1f} s "
            f"(cpu {cpu:.1f} s); peak RSS GiB by stage: {memory.report()}; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        return wall, cpu
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--purpose", default="marketing_segmentation")
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")
    purpose = Purpose(args.purpose)
    memory = StageMemory()
    small = run_set(args.customers // 10, args.seed, purpose, memory)
    large = run_set(args.customers, args.seed, purpose, memory)
    print(
        f"time(N)/time(N/10) {purpose.value}: {large[0] / small[0]:.2f} wall, "
        f"{large[1] / small[1]:.2f} cpu (target <= 11)"
    )


if __name__ == "__main__":
    main()
