"""Segmentation benchmark: feature build and clustering time, peak RSS.

    .venv/bin/python bench/bench_segment.py                 # 1M customers
    .venv/bin/python bench/bench_segment.py --full          # also 10M customers
    .venv/bin/python bench/bench_segment.py --customers 200000 --strategy gmm

Synthetic governed frames (engine.sample.governed: tokens, four planted groups).
`peak_after_*` is the process high-water mark (ru_maxrss), which the input generator's numpy
temporaries dominate; `rss_*_peak_gib` is sampled (psutil, every 50 ms) during each stage
only, and `rss_*_delta_gib` is that stage's peak above the RSS it started from.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import TypeVar

import psutil

from engine.config import SegmentationSpec
from engine.features import build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.strategies import feature_matrix, make_strategy

AS_OF = date(2026, 10, 31)
T = TypeVar("T")
GIB = 1024**3


def sampled(fn: Callable[[], T]) -> tuple[T, float, float, float]:
    """(result, seconds, peak RSS GiB during the call, peak minus starting RSS GiB)."""
    proc = psutil.Process()
    start = proc.memory_info().rss
    peak = [start]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    t = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - t
        done.set()
        th.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return result, seconds, peak[0] / GIB, (peak[0] - start) / GIB


def peak_gib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run(customers: int, txns: int, app_months: int, strategy: str) -> dict[str, float]:
    t = time.perf_counter()
    governed, _ = synthetic_governed(
        customers, seed=1, as_of=AS_OF, txns_per_customer=txns, app_months=app_months
    )
    rows = {k: v.height for k, v in governed.frames.items()}
    out: dict[str, float] = {
        "generate_s": time.perf_counter() - t,
        "peak_after_input_gib": peak_gib(),
    }
    print(f"  input rows: {rows}", flush=True)

    gc.collect()
    features, secs, peak, delta = sampled(lambda: build_features(governed, AS_OF, sample_config()))
    out["features_s"] = secs
    out["rss_features_peak_gib"] = peak
    out["rss_features_delta_gib"] = delta
    out["peak_after_features_gib"] = peak_gib()
    out["features"] = float(len(features.features))

    # Shipped defaults: 50k sample, k in [4, 8] by silhouette among stable candidates.
    spec = SegmentationSpec(strategy=strategy)
    x = feature_matrix(features)
    t = time.perf_counter()
    strat = make_strategy(spec, spec.seed)
    strat.fit_matrix(x)
    out["fit_sample_s"] = time.perf_counter() - t
    t = time.perf_counter()
    strat.predict_matrix(x)
    out["assign_all_s"] = time.perf_counter() - t
    del x
    gc.collect()

    seg, secs, peak, delta = sampled(lambda: segment(features, spec, 10, spec.seed, governed))
    out["segment_total_s"] = secs
    out["rss_segment_peak_gib"] = peak
    out["rss_segment_delta_gib"] = delta
    out["peak_after_segment_gib"] = peak_gib()
    out["personas"] = float(len(seg.personas))
    out["k"] = float(seg.params.get("k", 0))
    # Candidates checked for bootstrap stability while choosing k (1 = the best silhouette
    # was stable, so its refits served the gates and selection cost nothing extra).
    out["k_checked"] = float(len(seg.params.get("k_stability", {})))
    out["valid"] = float(seg.valid)
    for g in seg.gates:
        out[f"gate_{g.name}"] = g.value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--full", action="store_true", help="also run 10M customers")
    ap.add_argument("--txns-per-customer", type=int, default=24)
    ap.add_argument("--app-months", type=int, default=12)
    ap.add_argument("--strategy", default="kmeans", choices=["kmeans", "gmm", "rules"])
    args = ap.parse_args(argv)
    sizes = [args.customers] + ([10_000_000] if args.full else [])
    for n in sizes:
        # At 10M the default 24 transactions and 12 app months per customer would be 240M +
        # 120M rows of input; fewer per customer keep the input itself within memory.
        txns = args.txns_per_customer if n < 5_000_000 else min(args.txns_per_customer, 8)
        months = args.app_months if n < 5_000_000 else min(args.app_months, 3)
        print(f"{n:,} customers, {txns} txns and {months} app months each, {args.strategy}")
        res = run(n, txns, months, args.strategy)
        for k, v in res.items():
            print(f"  {k:26s} {v:10.3f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
