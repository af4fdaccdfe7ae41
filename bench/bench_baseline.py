"""The governed refresh against the plain notebook pipeline, side by side in one run.

    python bench/bench_baseline.py --customers 1000000 [--jurisdiction EU-DE]
    python bench/bench_baseline.py --workspace DIR --runs 3   # reuse a generated sample
    python bench/bench_baseline.py --workspace DIR --no-cold  # steady refreshes only

Runs the plain pipeline (bench/baseline.py) and a real marketing refresh (what
`pgov refresh` runs) of the same jurisdiction, alternating, `--runs` times each, and prints
medians and the best runs, the refresh's stages and the ratio refresh / baseline
(target: <= 2), in wall seconds and in CPU seconds (all threads of this process): when
other jobs share the cores the CPU ratio is the steadier one. The load average is printed
with every figure. Each refresh line is followed by its stages' CPU seconds (this
process's CPU between one stage's end and the next's, so `sources` includes the little
done between the stages).

First, one cold refresh: the workspace's file-digest and pre-pass caches cleared (what
`pgov digests clear` removes) and this process's digests forgotten, as a first refresh of
new files, or one after a clear, runs. Its figure is printed on its own and is not in the
medians, which are steady refreshes of unchanged files (the caches warm). `--no-cold` skips
it. PGOV_PREPASS_CACHE=off (or PGOV_DIGEST_CACHE=off) in the environment measures the
steady refresh without that cache (docs/keys.md).

The plain pipeline runs in a process of its own (started once, then asked for each run, as
a notebook kernel would run it again), with Polars' allocator as a user's notebook has it:
jemalloc's defaults. The engine sets a shorter decay for itself (engine/allocator.py), and
this process has it; a baseline run in here inherited it and ran slower (measured
2026-12-01: 1.30 -> 1.01 CPU s). `--baseline-in-process` runs it here, as before. A value of
`_RJEM_MALLOC_CONF` you export yourself applies to both sides.

Governance share: the refresh's time in policy, enforce (consent, retention, tokens),
store + sign and the unstaged remainder (audit appends, quarantine sealing, locks), over
the whole refresh. It is an attribution of the same run's stages, not a second run with
governance switched off: the features and segmentation of an ungoverned run would read
other inputs (raw identifiers instead of tokens), so the attribution is the fairer figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

# What the user exported, if anything, before Polars (which adds its own defaults) or the
# engine (engine/allocator.py) touch it: the plain pipeline's process gets exactly this.
USER_ALLOCATOR = os.environ.get("_RJEM_MALLOC_CONF")

# The engine first, so the refresh runs with the allocator `pgov` has: importing Polars
# (bench/baseline.py does) before the engine would leave Polars' defaults in force.
from engine import digest_cache, prepass_cache  # noqa: E402  (engine before Polars, above)
from engine.config import Purpose  # noqa: E402
from engine.logs import configure_logging  # noqa: E402
from engine.progress import ProgressEvent  # noqa: E402
from engine.pseudonym.lifecycle import init_keys  # noqa: E402
from engine.refresh import run_refresh  # noqa: E402
from engine.request import RefreshRequest  # noqa: E402
from engine.sample import generate  # noqa: E402
from engine.sample.workspace import init_workspace  # noqa: E402
from engine.source_files import clear_digest_memo  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import run_baseline  # noqa: E402

AS_OF = date(2026, 11, 1)


def _load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


# The plain pipeline's own process: imports only bench/baseline.py (Polars, numpy,
# scikit-learn), runs it once per line read, answers with its timings as JSON.
_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from baseline import run_baseline
for _ in sys.stdin:
    t, c = time.perf_counter(), time.process_time()
    n, _labels, parts = run_baseline(Path(sys.argv[2]), sys.argv[3])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"wall": wall, "cpu": cpu, "n": n, "parts": parts}), flush=True)
"""


class Baseline:
    """The plain pipeline, in its own process (default) or in this one."""

    def __init__(self, data: Path, jurisdiction: str, in_process: bool) -> None:
        self.data, self.jurisdiction = data, jurisdiction
        self.proc: subprocess.Popen[str] | None = None
        self.allocator = "the refresh's, in this process"
        if not in_process:
            env = dict(os.environ)
            env.pop("_RJEM_MALLOC_CONF", None)
            if USER_ALLOCATOR is None:
                self.allocator = "Polars' defaults, as a notebook has (own process)"
            else:
                env["_RJEM_MALLOC_CONF"] = USER_ALLOCATOR
                self.allocator = f"{USER_ALLOCATOR}, exported (own process)"
            here = str(Path(__file__).resolve().parent)
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, here, str(data), jurisdiction],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )

    def run(self) -> tuple[float, float, int, dict[str, float]]:
        """(wall s, CPU s, customers, parts) of one run."""
        if self.proc is None:
            t, c = time.perf_counter(), time.process_time()
            n, _labels, parts = run_baseline(self.data, self.jurisdiction)
            return time.perf_counter() - t, time.process_time() - c, n, parts
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the baseline process ended (exit {self.proc.wait()})")
        out = json.loads(line)
        return out["wall"], out["cpu"], out["n"], out["parts"]

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            self.proc.wait(30)


def _analyst(ws: Workspace, jurisdiction: str) -> str:
    for actor, spec in ws.config.actors.items():
        roles = [r.value for r in spec.roles]
        if "regional_analyst" in roles and jurisdiction in spec.jurisdictions:
            return actor
    raise SystemExit(f"no analyst serves {jurisdiction}")


class _StageCpu:
    """A progress hook: this process's CPU seconds between one stage's end and the next's."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self._last = time.process_time()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.process_time()
        self.cpu[event.stage] = now - self._last
        self._last = now

    def __str__(self) -> str:
        return " ".join(f"{k}={v:.2f}" for k, v in self.cpu.items())


def _refresh(ws: Workspace, request: RefreshRequest) -> tuple[float, float, Any, _StageCpu]:
    """(wall s, CPU s, result, stage CPU) of one refresh."""
    stages = _StageCpu()
    t, c = time.perf_counter(), time.process_time()
    result = run_refresh(ws, request, progress=stages)
    return time.perf_counter() - t, time.process_time() - c, result, stages


def _cold(ws: Workspace, request: RefreshRequest) -> None:
    """One refresh with the digest and pre-pass caches cleared and this process's digests
    forgotten (not part of the medians)."""
    digest_cache.clear(ws)
    prepass_cache.clear(ws)
    clear_digest_memo()
    wall, cpu, result, stages = _refresh(ws, request)
    detail = " ".join(f"{k}={v:.2f}" for k, v in result.seconds.items())
    print(f"cold refresh {wall:.2f} s cpu {cpu:.2f} s ({detail}) {_load()}")
    print(f"cold refresh stage cpu {stages}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--purpose", default="marketing_segmentation")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workspace", type=Path, help="reuse/keep this workspace")
    ap.add_argument(
        "--baseline-in-process",
        action="store_true",
        help="run the plain pipeline in this process (with the engine's allocator setting)",
    )
    ap.add_argument(
        "--no-cold",
        action="store_true",
        help="skip the cold refresh (digest and pre-pass caches cleared) printed first",
    )
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
        request = RefreshRequest(
            actor=actor, jurisdiction=args.jurisdiction, purpose=purpose, as_of=AS_OF
        )
        if not args.no_cold:
            _cold(ws, request)
        base_s: list[float] = []
        ref_s: list[float] = []
        base_cpu: list[float] = []
        ref_cpu: list[float] = []
        gov: list[float] = []
        baseline = Baseline(root / "data", args.jurisdiction, args.baseline_in_process)
        print(f"baseline allocator: {baseline.allocator}")
        for run in range(args.runs):
            wall, cpu, n, parts = baseline.run()
            base_s.append(wall)
            base_cpu.append(cpu)
            detail = " ".join(f"{k}={v:.2f}" for k, v in parts.items())
            print(
                f"run {run + 1} baseline {base_s[-1]:.2f} s cpu {base_cpu[-1]:.2f} s "
                f"({n:,} customers; {detail}) {_load()}"
            )
            wall, cpu, result, stage_cpu = _refresh(ws, request)
            ref_s.append(wall)
            ref_cpu.append(cpu)
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
            print(f"run {run + 1} refresh  stage cpu {stage_cpu}")
        b, r = statistics.median(base_s), statistics.median(ref_s)
        bc, rc = statistics.median(base_cpu), statistics.median(ref_cpu)
        baseline.close()
        print(
            f"median baseline {b:.2f} s (cpu {bc:.2f}), refresh {r:.2f} s (cpu {rc:.2f}) "
            f"{purpose.value}: ratio {r / b:.2f} wall, {rc / bc:.2f} cpu (target <= 2.00); "
            f"governance share {statistics.median(gov):.0%} {_load()}"
        )
        # The plain pipeline's own time varies far more than the refresh's (its KMeans took
        # 0.38-0.73 s quiet and up to 2.2 s at load 1-2 on the same inputs, 2026-12-02, Intel
        # machine, while the refresh held 1.82 s): the median ratio moves with it. The best
        # runs' ratio (timeit's rule) is the stricter figure; quote both.
        bb, rb = min(base_s), min(ref_s)
        print(
            f"best baseline {bb:.2f} s (cpu {min(base_cpu):.2f}), refresh {rb:.2f} s "
            f"(cpu {min(ref_cpu):.2f}): ratio {rb / bb:.2f} wall, "
            f"{min(ref_cpu) / min(base_cpu):.2f} cpu"
        )
    finally:
        if args.workspace is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
