"""The sources stage alone, as a refresh runs it: per source rows, wall and CPU seconds, the
process's peak resident set while that source loads, and the carried frame's size.

    python bench/bench_sources.py --workspace WS [--jurisdiction EU-DE]
        [--purpose marketing_segmentation] [--actor NAME] [--all-columns] [--clear-digests]

WS is a workspace over a sample's files (e.g. one `bench/bench_tenm.py --keep` made; set
PGOV_ACTOR_KEYS as for it). The policy decision gives the plan whose `needed_columns` the
scan carries, exactly as `pgov refresh` does; `--all-columns` carries every column. Parquet
page walks are cold (one process per run). File digests come from the workspace's sealed
digest cache as in a refresh (engine/digest_cache.py), and so do the pre-pass answers
(engine/prepass_cache.py): run twice for a first and a steady figure, `--clear-digests` to
start cold (both caches cleared), PGOV_DIGEST_CACHE=off to hash every file as before the
cache, PGOV_PREPASS_CACHE=off to run every pre-pass. CPU seconds count every thread; at a
load above the core count they are the figure to compare, not wall seconds. Sources of one
wave load two at a time (engine/source_order.py), so a source's own line counts the other
reader's CPU and RSS too: the totals are the figure. `--runs N` loads the stage N times in
this process (the later runs with warm page walks and digests, as bench_baseline's later
refreshes).
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

from engine.config import Purpose
from engine.logs import configure_logging
from engine.request import RefreshRequest
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


class _Rss:
    """Highest VmRSS seen since `reset`, sampled every 10 ms."""

    def __init__(self) -> None:
        self.peak_kib = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            time.sleep(0.01)

    def reset(self) -> None:
        self.peak_kib = 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--purpose", default="marketing_segmentation")
    ap.add_argument(
        "--actor",
        default=None,
        help="default: an analyst (marketing) or officer serving it",
    )
    ap.add_argument("--all-columns", action="store_true", help="carry every declared column")
    ap.add_argument(
        "--runs",
        type=int,
        default=1,
        help="load the stage this many times in this process (after the first: page walks "
        "and digests warm, as in a long-lived worker or bench_baseline's later refreshes)",
    )
    ap.add_argument(
        "--clear-digests",
        action="store_true",
        help="empty the digest and pre-pass caches first (cold)",
    )
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")

    import engine.sources as sources
    from engine import digest_cache, prepass_cache
    from engine.enforce_subjects import needed_columns
    from engine.policy.decide import decide, engine_for
    from engine.pseudonym.keyring import Keyring

    ws = Workspace.open(args.workspace)
    purpose = Purpose(args.purpose)
    actor = args.actor or _actor(ws, args.jurisdiction, purpose)
    request = RefreshRequest(
        actor=actor, jurisdiction=args.jurisdiction, purpose=purpose, as_of=AS_OF
    )
    plan = decide(ws, request, engine_for(ws))
    keep = None if args.all_columns else needed_columns(plan, ws.config)

    if args.clear_digests:
        digest_cache.clear(ws)
        prepass_cache.clear(ws)
    keyring = Keyring.load(ws)
    cache = digest_cache.DigestCache.for_workspace(ws, keyring)
    prepass = prepass_cache.PrepassCache.for_workspace(ws, keyring)
    outcomes: dict[str, int] = {}
    import engine.source_files as source_files

    take = source_files.digest_file

    def counted(path: Path, c: Any) -> Any:
        d = take(path, c)
        outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
        return d

    source_files.digest_file = counted  # type: ignore[assignment]

    rss = _Rss()
    one = sources._load_one

    def timed(ws_: Workspace, name: str, *a: Any, **k: Any) -> Any:
        rss.reset()
        t, c = time.perf_counter(), time.process_time()
        f, state, prepass = one(ws_, name, *a, **k)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if args.runs > 1:  # the totals are the figure; skip the RSS sample's pause
            return f, state, prepass
        time.sleep(0.02)  # one more RSS sample
        print(
            f"  {name:18s} {f.accounting.input_rows:>12,} rows  wall {wall:6.2f} s  "
            f"cpu {cpu:6.2f} s  peak {rss.peak_kib / 2**20:5.2f} GiB  "
            f"carried {f.frame.width - 1} cols, {f.frame.estimated_size() / 2**30:.3f} GiB",
            flush=True,
        )
        return f, state, prepass

    sources._load_one = timed  # type: ignore[assignment]
    print(f"sources of {args.jurisdiction} for {args.purpose}, {_load()}")
    for _ in range(args.runs):
        _run(args, ws, keep, (cache, prepass), outcomes)


def _run(args: argparse.Namespace, ws: Workspace, keep: Any, caches: Any, outcomes: Any) -> None:
    import engine.sources as sources

    t, c = time.perf_counter(), time.process_time()
    before = resource.getrusage(resource.RUSAGE_SELF)
    loaded = sources.load_sources(ws, args.jurisdiction, AS_OF, keep, *caches)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    rows = sum(f.accounting.input_rows for f in loaded.frames.values())
    size = sum(f.frame.estimated_size() for f in loaded.frames.values())
    print(
        f"total {rows:,} rows: wall {wall:.2f} s, cpu {cpu:.2f} s "
        f"(user {user:.2f}, sys {system:.2f}),"
        f" {rows / cpu / 1e6:.2f} M rows per CPU-second, {rows / wall / 1e6:.2f} M rows/s wall; "
        f"peak RSS {after.ru_maxrss / 2**20:.2f} GiB, valid frames {size / 2**30:.2f} GiB; "
        f"file digests {dict(sorted(outcomes.items()))}; {_load()}"
    )


def _actor(ws: Workspace, jurisdiction: str, purpose: Purpose) -> str:
    """A declared actor who may run this refresh: a regional analyst for marketing, else
    a compliance officer."""
    role = "regional_analyst" if purpose is Purpose.MARKETING else "compliance_officer"
    for name, spec in ws.config.actors.items():
        if role in [r.value for r in spec.roles] and jurisdiction in spec.jurisdictions:
            return name
    raise SystemExit(f"no actor with role {role} serves {jurisdiction}: pass --actor")


def _load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
