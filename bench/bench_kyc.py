"""KYC tiering and routing time at 1M customers (10M with --10m), on synthetic facts.

    .venv/bin/python bench/bench_kyc.py            # 1M
    .venv/bin/python bench/bench_kyc.py --10m      # also 10M (needs ~10 GB RAM)
    .venv/bin/python bench/bench_kyc.py --sizes 100000 2000000

Stages timed separately: scoring (factors, floors, reason patterns), stability and queue
routing (once with no previous version, then a second version against the first so the
join, cooldown and factor-change logic run on every row), k-anonymous summaries, re-routing
a stored table (the override path), writing routing.parquet, and an outbox delivery.
The ruleset is the shipped one, evaluated once through regorus.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import structlog

from engine.config import OutboxSink, WorkspaceConfig
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.delivery import deliver
from engine.kyc.io import write_routing
from engine.kyc.model import KycRouting
from engine.kyc.routing import assign_queues, summarise
from engine.kyc.tiering import apply_stability, score_tiers
from engine.sample.kyc_facts import synthetic_facts

AS_OF = date(2026, 11, 23)


def _lap(label: str, t0: float, n: int) -> float:
    dt = time.perf_counter() - t0
    print(f"  {label:<28} {dt:8.2f} s   {n / dt / 1e6:6.2f} M rows/s")
    return dt


def bench(n: int, outbox: bool) -> dict[str, float]:
    from engine.workspace import Workspace

    print(f"\n{n:,} customers")
    t = time.perf_counter()
    facts = synthetic_facts(n, seed=1)
    print(f"  {'synthetic facts (not timed)':<28} {time.perf_counter() - t:8.2f} s")
    ruleset = evaluate_ruleset()
    out: dict[str, float] = {}

    t = time.perf_counter()
    scored = score_tiers(facts, ruleset)
    out["score"] = _lap("score + floors + reasons", t, n)
    t = time.perf_counter()
    table = apply_stability(scored, None, ruleset, AS_OF, 90, with_queues=True)
    out["stability_route"] = _lap("stability + queue routing", t, n)
    t = time.perf_counter()
    summaries = summarise(table, ruleset)
    out["summaries"] = _lap("k-anonymous summaries", t, n)
    out["total_first"] = out["score"] + out["stability_route"] + out["summaries"]
    print(f"  {'= tiering + routing':<28} {out['total_first']:8.2f} s")
    t = time.perf_counter()
    assign_queues(table.drop("queue", "sla_days", "sla_due"), ruleset, AS_OF)
    out["reroute_stored"] = _lap("re-route a stored table", t, n)

    # Second version against the first: the join, cooldown and factor-change logic.
    facts2 = synthetic_facts(n, seed=2)
    t = time.perf_counter()
    scored2 = score_tiers(facts2, ruleset)
    table2 = apply_stability(scored2, table, ruleset, AS_OF, 90, with_queues=True)
    summarise(table2, ruleset)
    out["total_with_previous"] = _lap("= again, with previous", t, n)
    changes = table2.group_by("tier_change").len().sort("tier_change").rows()
    print(f"  tier changes: {dict(changes)}")

    tmp = Path(tempfile.mkdtemp(prefix="pgov-bench-kyc-"))
    try:
        routing = KycRouting(ruleset.version, table, summaries, ruleset)
        t = time.perf_counter()
        write_routing(routing, tmp / "version")
        out["write"] = _lap("write routing.parquet", t, n)
        size = (tmp / "version" / "routing.parquet").stat().st_size
        print(f"  routing.parquet size         {size / 1e6:8.1f} MB")
        if outbox:
            (tmp / "pgov.toml").write_text("")
            ws = Workspace(root=tmp, config=_config())
            t = time.perf_counter()
            # The first delivery of a version to an empty outbox: the whole table is the delta.
            deliver(ws, "EU-DE/v0001", routing, [OutboxSink()])
            out["outbox"] = _lap("outbox delivery", t, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _config() -> WorkspaceConfig:
    from engine.config import load_config

    return load_config(Path(__file__).resolve().parent.parent / "engine/defaults/pgov.toml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--10m", dest="ten_m", action="store_true", help="also run 10M")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit sizes")
    parser.add_argument("--no-outbox", action="store_true", help="skip the outbox delivery")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = args.sizes or ([1_000_000, 10_000_000] if args.ten_m else [1_000_000])
    for n in sizes:
        bench(n, outbox=not args.no_outbox)


if __name__ == "__main__":
    main()
