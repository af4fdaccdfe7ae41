"""Governance overhead as an A/B: the same pipeline with governance switched off and on.

    python bench/bench_governance.py --customers 1000000 --runs 3   # generates the sample
    python bench/bench_governance.py --data SAMPLE/data --runs 3       # reuses one, read only
    python bench/bench_governance.py --workspace DIR --purpose kyc_aml

"On" is a real refresh (`run_refresh`, what `pgov refresh` runs): policy decision, source
contract checks and quarantine, enforcement (exclusions, tokens, generalisation), features,
segmentation, KYC tiering under kyc_aml, store + sign, audit and lineage.

"Off" exists only here, assembled from the engine's own stage functions, never as a product
flag: the sources stage (`load_sources`, with the refresh's file-digest and pre-pass caches:
scan with the jurisdiction pushed down and the contract checks, because features need
validated, typed rows; the valid rows carry the columns the purpose's declared features read
and those the plan would let through, for segmentation's KPIs, raw: identifiers untokenised,
nothing generalised; the failed rows are simply dropped: nothing is sealed or written), then
the same `build_features`, the same `segment` and, under kyc_aml, the same KYC tiering
(`engine.kyc.route`): tiering is the product, not governance. No policy decision, no
enforcement (exclusions, tokens, generalisation), no quarantine files, nothing stored,
signed or audited. The k-anonymity minimum and the KYC ruleset come from one policy decision
made before the clock starts (they are parameters of segmentation and tiering). So the
overhead measured is policy + quarantine sealing + enforce + store/sign + audit and lineage
(and the unscoped-rows count); the contract checks are on both sides (the refresh prints its
`sources` stage, so their cost can be read off too).

Segmentation's cost depends on its input (governance excludes customers, so the two sides
segment different sets, and the stability checks do more or less work), so two more figures
are printed: the governance stages' share of the refresh's CPU (quarantine, enforce, store +
sign, the unscoped count, audit/lineage/policy as the unstaged rest, and what the governed
sources stage costs beyond the ungoverned one: file digests for lineage, carried columns),
and the A/B with segmentation taken out of both sides.

The two alternate, `--runs` times each, one process; the script prints wall and CPU seconds
(all threads), medians, the load average, and the overhead as the share of the governed
refresh that governance costs: (on - off) / on (targets: <= 15 % marketing, <= 25 %
kyc_aml), plus on / off.

`--data DIR` builds a temporary workspace whose sources point at DIR's files (absolute
paths; nothing is written into DIR), so a large sample can be reused read-only.
"""

from __future__ import annotations

# First, before Polars: importing the engine sets the allocator every `pgov` process has
# (engine/allocator.py); Polars imported first would leave its own defaults in force.
import engine  # noqa: F401

# isort: split

import argparse
import functools
import importlib
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from engine.config import Purpose
from engine.enforce import SUBJECT, GovernedFrames
from engine.features import build_features
from engine.features.build import for_purpose
from engine.logs import configure_logging
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.sample.workspace import init_workspace
from engine.segment import segment
from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def _load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def _actor(ws: Workspace, jurisdiction: str, purpose: Purpose) -> str:
    if purpose is Purpose.KYC_AML:
        return "compliance-lead"
    for actor, spec in ws.config.actors.items():
        roles = [r.value for r in spec.roles]
        if "regional_analyst" in roles and jurisdiction in spec.jurisdictions:
            return actor
    raise SystemExit(f"no analyst serves {jurisdiction}")


def workspace_on(data: Path, root: Path) -> Workspace:
    """A fresh workspace (its own keys, audit log, versions) reading `data`'s files."""
    init_workspace(root, "parquet")
    toml = root / "pgov.toml"
    text = toml.read_text()
    toml.write_text(text.replace('path = "data/', f'path = "{data.resolve()}/'))
    shutil.rmtree(root / "data", ignore_errors=True)
    ws = Workspace.open(root)
    init_keys(ws)
    return Workspace.open(root)


def _validation_caches(ws: Workspace) -> tuple[Any, ...]:
    """The workspace's file-digest and pre-pass caches, as `run_refresh` opens them (none on
    code that has no pre-pass cache)."""
    try:
        from engine.digest_cache import DigestCache
        from engine.prepass_cache import PrepassCache
    except ImportError:
        return ()
    from engine.pseudonym.keyring import Keyring

    keyring = Keyring.load(ws)
    return (DigestCache.for_workspace(ws, keyring), PrepassCache.for_workspace(ws, keyring))


def ungoverned(ws: Workspace, request: RefreshRequest, plan: Any) -> dict[str, float]:
    """sources + features + segment (+ KYC tiering), CPU seconds per part: no decision,
    quarantine, tokens or records."""
    purpose = request.purpose.value
    seconds: dict[str, float] = {}
    t = time.process_time()
    needed: dict[str, set[str]] = {name: set() for name in ws.config.sources}
    for spec in for_purpose(ws.config, purpose).values():
        if spec.source is not None:
            needed[spec.source].update(spec.inputs())
    for name in needed:
        needed[name].add(ws.source(name).subject_column)
        # What segmentation's KPIs and value read (loans, outcomes, ...): the columns the
        # plan would let through, raw (no generalisation without governance).
        sp = plan.sources.get(name)
        if sp is not None:
            needed[name] |= {c for c, a in sp.columns.items() if a.action != "drop"}
    # The same digest and pre-pass caches as the refresh: they spare contract-check work
    # that both sides do, so an "off" side without them charged governance with less than
    # it costs (measured 2026-12-02: off's sources 1.34-1.81 CPU s against on's 0.87).
    caches = _validation_caches(ws)
    try:
        loaded = load_sources(ws, request.jurisdiction, request.as_of, needed, *caches)
    except TypeError:  # code before the caches or the column projection (before/after runs)
        try:
            loaded = load_sources(ws, request.jurisdiction, request.as_of, needed)
        except TypeError:
            loaded = load_sources(ws, request.jurisdiction, request.as_of)
    frames: dict[str, pl.DataFrame] = {}
    for name, cols in sorted(needed.items()):
        subject = ws.source(name).subject_column
        frames[name] = loaded.frames[name].frame.select(
            pl.col(subject).alias(SUBJECT), *[pl.col(c) for c in sorted(cols - {subject})]
        )
    del loaded
    governed = GovernedFrames(
        jurisdiction=request.jurisdiction,
        purpose=purpose,
        frames=frames,
        accounting={},
        plan_digest="",
        subject_domain=plan.subject_domain,
    )
    seconds["sources"] = time.process_time() - t
    t = time.process_time()
    features = build_features(governed, request.as_of, ws.config)
    seconds["features"] = time.process_time() - t
    t = time.process_time()
    seg = segment(
        features,
        ws.config.segmentation.for_purpose(purpose),
        plan.k_anonymity_min,
        request.seed,
        governed,
    )
    seconds["segment"] = time.process_time() - t
    if request.purpose is Purpose.KYC_AML:
        from engine.kyc import route
        from engine.kyc.ruleset import KycRuleset

        t = time.process_time()
        ruleset = KycRuleset.from_policy(plan.kyc_ruleset)
        cooldown = ws.config.kyc.downgrade_cooldown_days
        route(features, governed, seg, ruleset, None, request.as_of, cooldown)
        seconds["kyc"] = time.process_time() - t
    seconds["customers"] = float(features.frame.height)
    return seconds


class StageCpu:
    """CPU seconds (all threads) per stage of the governed refresh: the stage functions are
    wrapped where the refresh looks them up, not changed; what no stage covers (policy,
    audit appends, lineage, locks, approval) is the remainder."""

    STAGES = (
        ("engine.sources", "load_sources", "sources"),
        # The quarantine and the unscoped count run on a thread beside enforcement
        # (engine/refresh_side.py): process CPU timed around them would count enforcement's
        # too, so their CPU falls into `enforce` (the overlap) and `rest`.
        ("engine.enforce", "enforce", "enforce"),
        ("engine.features", "build_features", "features"),
        ("engine.segment", "segment", "segment"),
        ("engine.refresh", "route_customers", "kyc"),
        ("engine.refresh", "_write_outputs", "write"),
        ("engine.refresh", "sign", "sign"),
    )

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        for module, name, label in self.STAGES:
            mod = importlib.import_module(module)
            if hasattr(mod, name):
                setattr(mod, name, self._wrap(getattr(mod, name), label))

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            c = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - c

        return run

    def take(self) -> dict[str, float]:
        out, self.cpu = self.cpu, {}
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, help="read this sample's files (never written)")
    ap.add_argument("--workspace", type=Path, help="use this workspace (versions are written)")
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument(
        "--purpose",
        action="append",
        choices=[Purpose.MARKETING.value, Purpose.KYC_AML.value],
        help="repeatable; default: both",
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--customers",
        type=int,
        default=1_000_000,
        help="without --data or --workspace: generate a sample of this size (seed 7)",
    )
    args = ap.parse_args()
    if args.data is not None and args.workspace is not None:
        raise SystemExit("give at most one of --data DIR or --workspace DIR")
    configure_logging(None, None, "WARNING")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, polars {pl.__version__}, {date.today().isoformat()}, "
        f"{_load()}"
    )
    tmp = None
    if args.workspace is not None:
        ws = Workspace.open(args.workspace)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="pgov-bench-gov-"))
        data = args.data
        if data is None:
            from engine.sample import generate

            data = tmp / "data"
            generate(args.customers, 7, data, "parquet", as_of=AS_OF)
        ws = workspace_on(data, tmp / "ws")
    from engine.policy.decide import decide, engine_for
    from engine.source_files import clear_digest_memo

    stages = StageCpu()

    try:
        for p in args.purpose or [Purpose.MARKETING.value, Purpose.KYC_AML.value]:
            purpose = Purpose(p)
            request = RefreshRequest(
                actor=_actor(ws, args.jurisdiction, purpose),
                jurisdiction=args.jurisdiction,
                purpose=purpose,
                as_of=AS_OF,
            )
            plan = decide(ws, request, engine_for(ws))  # parameters for "off", not timed
            off_s, off_c, on_s, on_c = [], [], [], []
            attributed: list[float] = []  # governance stages' share of the refresh's CPU
            unsegmented: list[float] = []  # the A/B without segmentation on either side
            for run in range(args.runs):
                t, c = time.perf_counter(), time.process_time()
                parts = ungoverned(ws, request, plan)
                off_s.append(time.perf_counter() - t)
                off_c.append(time.process_time() - c)
                n = int(parts.pop("customers"))
                off_parts = parts
                detail = " ".join(f"{k}={v:.2f}" for k, v in parts.items())
                print(
                    f"{p} run {run + 1} off {off_s[-1]:.2f} s cpu {off_c[-1]:.2f} s "
                    f"({n:,} customers; cpu {detail}) {_load()}",
                    flush=True,
                )
                # A `pgov refresh` process hashes its input files for lineage: so does this.
                clear_digest_memo()
                stages.take()
                t, c = time.perf_counter(), time.process_time()
                result = run_refresh(ws, request)
                on_s.append(time.perf_counter() - t)
                on_c.append(time.process_time() - c)
                cpu = stages.take()
                cpu["rest"] = on_c[-1] - sum(cpu.values())
                governance = ("enforce", "write", "sign", "rest")
                extra_scan = max(0.0, cpu.get("sources", 0.0) - off_parts["sources"])
                gov_cpu = sum(cpu.get(k, 0.0) for k in governance) + extra_scan
                attributed.append(gov_cpu / on_c[-1])
                on_rest = on_c[-1] - cpu.get("segment", 0.0)
                unsegmented.append((on_rest - (off_c[-1] - off_parts["segment"])) / on_rest)
                detail = " ".join(f"{k}={v:.2f}" for k, v in cpu.items())
                print(
                    f"{p} run {run + 1} on  {on_s[-1]:.2f} s cpu {on_c[-1]:.2f} s "
                    f"(valid={result.valid}, personas={result.personas}; cpu {detail}) {_load()}",
                    flush=True,
                )
            off, on = statistics.median(off_s), statistics.median(on_s)
            offc, onc = statistics.median(off_c), statistics.median(on_c)
            target = 0.25 if purpose is Purpose.KYC_AML else 0.15
            print(
                f"{p} median off {off:.2f} s (cpu {offc:.2f}), on {on:.2f} s (cpu {onc:.2f}): "
                f"governance overhead {(on - off) / on:.0%} wall, {(onc - offc) / onc:.0%} cpu "
                f"(target <= {target:.0%}); on/off {on / off:.2f} wall, {onc / offc:.2f} cpu; "
                f"governance stages {statistics.median(attributed):.0%} of the refresh's cpu; "
                f"without segmentation on either side {statistics.median(unsegmented):.0%} cpu "
                f"{_load()}",
                flush=True,
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
