"""A refresh's version files: what a built version writes into its staging directory before
it is signed (segmentation, routing, plan, accounting, features, quarantine summary,
manifest, OpenLineage events).

No timestamps go into the files the manifest digests: the same inputs, keys and seed give
the same bytes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import __version__
from engine.enforce import GovernedFrames
from engine.features import FeatureFrame
from engine.kyc.io import QUEUES_FILE, ROUTING_FILE, RULESET_FILE, write_routing
from engine.kyc.model import KycRouting
from engine.request import RefreshRequest
from engine.segment.model import Segmentation
from engine.sources import SourceFrames
from engine.store import (
    PersonaVersion,
    file_sha256,
    output_digests,
    predecessor_ref,
    write_json,
)
from engine.workspace import Workspace
from lineage.canonical import canonical_json

# The files write_routing writes into a version directory.
ROUTING_OUTPUTS = frozenset({ROUTING_FILE, QUEUES_FILE, RULESET_FILE})


@dataclass(frozen=True)
class BuiltVersion:
    """Everything a refresh computed for one version, before it is written and signed."""

    request: RefreshRequest
    run_id: str
    started_at: datetime
    version_id: str
    plan: Any
    sources: SourceFrames
    governed: GovernedFrames
    features: FeatureFrame
    seg: Segmentation
    routing: KycRouting | None
    predecessor: PersonaVersion | None
    quarantine_report: dict[str, Any]

    @property
    def validity(self) -> str:
        return "valid" if self.seg.valid else "invalid"

    def accounting_json(self) -> dict[str, Any]:
        return {
            name: {
                "input_rows": a.input_rows,
                "kept": a.kept,
                "excluded": a.excluded,
                "quarantined": a.quarantined,
                "excluded_by_reason": dict(sorted(a.excluded_by_reason.items())),
                "quarantined_by_reason": dict(sorted(a.quarantined_by_reason.items())),
            }
            for name, a in sorted(self.governed.accounting.items())
        }


def tier_counts(routing: KycRouting | None) -> dict[str, int]:
    if routing is None:
        return {}
    counts = routing.table.group_by("tier").len().sort("tier")
    return {str(t): int(n) for t, n in counts.iter_rows()}


def keep_for_replay(ws: Workspace, plan: Any) -> dict[str, str]:
    """The exact pgov.toml and bundle this run decided with, by digest (engine/replay.py)."""
    from engine.policy.decide import bundle_path_for
    from engine.replay import snapshot

    return snapshot(ws, Path(bundle_path_for(ws)), plan.bundle_digest)


def write_outputs(stage: Path, built: BuiltVersion) -> dict[str, str]:
    """Write the version's files into `stage`; returns their digests (`output_digests` of
    the stage: what the manifest lists).

    The routing files are written, and digested, on a thread of their own while the others
    are written and digested here (at 10M the routing table is 1.6M rows of lists: about a
    second to encode). Its result is taken before returning, so a failed routing write
    fails the refresh before anything is signed; the pool's exit waits for the thread even
    when the rest fails, so nothing writes into a staging directory being removed."""

    def routing_files(routing: KycRouting) -> dict[str, str]:
        return {p.name: file_sha256(p) for p in write_routing(routing, stage)}

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="routing-write") as pool:
        routing = None if built.routing is None else pool.submit(routing_files, built.routing)
        _write_rest(stage, built)
        digests = output_digests(stage, exclude=ROUTING_OUTPUTS)
        if routing is not None:
            digests.update(routing.result())
    # The order output_digests gives (by path), as when every file was digested at once.
    return dict(sorted(digests.items(), key=lambda item: Path(item[0])))


def _write_rest(stage: Path, built: BuiltVersion) -> None:
    from engine.segment.io import write_segmentation

    write_segmentation(built.seg, stage)
    (stage / "plan.json").write_bytes(built.plan.canonical_json() + b"\n")
    if built.plan.decision_input():
        # The exact decision input (column names, roles, actor id; no personal data), so an
        # auditor can replay the decision: `pgov policy eval --input decision_input.json`.
        (stage / "decision_input.json").write_bytes(
            canonical_json(built.plan.decision_input()) + b"\n"
        )
    write_json(stage / "accounting.json", built.accounting_json())
    features = built.features
    write_json(
        stage / "features.json",
        {
            "features": features.features,
            "descriptors": features.descriptors,
            "rows": features.frame.height,
        },
    )
    # Row numbers, fields and reasons (no values). The run id and report path stay out so
    # the version's files are the same for the same inputs; the signed statement has them.
    report = built.quarantine_report
    summary = {k: v for k, v in report.items() if k in ("jurisdiction", "sources", "counts")}
    write_json(stage / "quarantine.json", summary)


def manifest(built: BuiltVersion, outputs: dict[str, str]) -> dict[str, Any]:
    # No timestamps here: same inputs, keys and seed give the same manifest bytes.
    request, plan, seg, routing = built.request, built.plan, built.seg, built.routing
    return {
        "version_id": built.version_id,
        "jurisdiction": request.jurisdiction,
        "purpose": request.purpose.value,
        "actor": request.actor,
        "as_of": request.as_of.isoformat(),
        "seed": request.seed,
        "validity": built.validity,
        "invalid_reasons": [f"{g.name}: {g.detail or g.value}" for g in seg.gates if not g.passed],
        "predecessor": predecessor_ref(built.predecessor),
        "inputs": {n: f.input_digest for n, f in sorted(built.sources.frames.items())},
        "outputs": outputs,
        "plan_digest": plan.digest(),
        "bundle_revision": plan.bundle_revision,
        "bundle_digest": plan.bundle_digest,
        "personas": len(seg.personas),
        "customers": int(seg.assignments.height),
        "tiers": tier_counts(routing),
        "kyc_ruleset_version": routing.ruleset_version if routing else None,
        "code_version": __version__,
    }


def write_openlineage(
    stage: Path,
    ws: Workspace,
    built: BuiltVersion,
    finished_at: datetime,
    start_event: dict[str, Any],
) -> None:
    from engine.provenance import openlineage_event

    # Both ends of the run are signed subjects of the version: the files are the record.
    write_json(stage / "openlineage-start.json", start_event)
    write_json(stage / "openlineage.json", openlineage_event(ws, built, finished_at))
