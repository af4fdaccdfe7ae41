"""The features stage alone, on one jurisdiction's governed frames: CPU s, wall s, peak RSS.

    PYTHONPATH=$PWD python bench/bench_features.py --workspace WS --jurisdiction EU-DE \
        --purpose marketing_segmentation [--repeat 5] [--save a.parquet] [--compare b.parquet]

The governed frames come from the refresh's own stages (policy decision, sources, enforce),
run once in this process; nothing is published or audited. `build_features` then runs
`--repeat` times; the script prints each run's CPU seconds (every thread) and wall seconds,
and the highest resident set sampled during the runs above the RSS before them.

A/B between two trees: run it with PYTHONPATH set to each tree in turn, `--save` the frame
in one and `--compare` it in the other (exact equality: values, dtypes, row order).
"""

from __future__ import annotations

# First, before Polars: importing the engine sets the allocator every `pgov` process has
# (engine/allocator.py); Polars imported first would leave its own defaults in force.
import engine  # noqa: F401

# isort: split

import argparse
import gc
import platform
import threading
import time
from datetime import date
from pathlib import Path

import polars as pl

from engine.config import Purpose
from engine.enforce import GovernedFrames, enforce
from engine.enforce_subjects import needed_columns
from engine.features import build_features
from engine.logs import configure_logging
from engine.policy.decide import decide, engine_for
from engine.pseudonym import Pseudonymiser
from engine.pseudonym.keyring import Keyring
from engine.request import RefreshRequest
from engine.sources import load_sources
from engine.workspace import Workspace

GIB = 2**30


def rss_gib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) for x in fh if x.startswith("VmRSS")) * 1024 / GIB


def _actor(ws: Workspace, jurisdiction: str, purpose: str) -> str:
    wanted = "compliance_officer" if purpose == "kyc_aml" else "regional_analyst"
    for name, spec in ws.config.actors.items():
        if wanted in [r.value for r in spec.roles] and jurisdiction in spec.jurisdictions:
            return name
    raise SystemExit(f"no {wanted} serves {jurisdiction}")


def governed_frames(ws: Workspace, jurisdiction: str, purpose: str, as_of: date) -> GovernedFrames:
    actor = _actor(ws, jurisdiction, purpose)
    request = RefreshRequest(
        actor=actor, jurisdiction=jurisdiction, purpose=Purpose(purpose), as_of=as_of
    )
    plan = decide(ws, request, engine_for(ws))
    sources = load_sources(ws, jurisdiction, as_of, needed_columns(plan, ws.config))
    pseudonymiser = Pseudonymiser.for_workspace(ws, Keyring.load(ws))
    return enforce(sources, plan, pseudonymiser, as_of, release=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--purpose", default="marketing_segmentation")
    ap.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 1))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--save", type=Path, help="write the feature frame here (Parquet)")
    ap.add_argument("--compare", type=Path, help="a frame saved by another tree: must be equal")
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")
    ws = Workspace.open(args.workspace)
    t = time.perf_counter()
    governed = governed_frames(ws, args.jurisdiction, args.purpose, args.as_of)
    rows = {k: v.height for k, v in governed.frames.items()}
    print(
        f"machine: {platform.machine()}, python {platform.python_version()}, polars "
        f"{pl.__version__}, load {Path('/proc/loadavg').read_text().split()[:3]}; governed frames "
        f"in {time.perf_counter() - t:.1f} s: {rows}"
    )
    gc.collect()
    start = rss_gib()
    peak = [start]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_gib())

    threading.Thread(target=watch, daemon=True).start()
    cpus: list[float] = []
    walls: list[float] = []
    frame = None
    for _ in range(args.repeat):
        c, w = time.process_time(), time.perf_counter()
        frame = build_features(governed, args.as_of, ws.config).frame
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    done.set()
    assert frame is not None
    print(
        f"features {args.jurisdiction} {args.purpose}: {frame.height:,} subjects x "
        f"{frame.width} columns; cpu s {' '.join(f'{x:.2f}' for x in cpus)} (min "
        f"{min(cpus):.2f}); wall s {' '.join(f'{x:.2f}' for x in walls)}; peak RSS "
        f"{peak[0]:.2f} GiB ({peak[0] - start:+.2f} over the {start:.2f} before)"
    )
    if args.save:
        frame.write_parquet(args.save)
    if args.compare:
        other = pl.read_parquet(args.compare)
        same = other.schema == frame.schema and other.equals(frame)
        diff = [c for c in frame.columns if c not in other.columns or not other[c].equals(frame[c])]
        print(f"identical to {args.compare}: {same}" + ("" if same else f"; differ: {diff}"))
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
