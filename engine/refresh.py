"""One governed refresh: request -> policy -> sources -> enforce -> features -> segment ->
kyc -> store -> lineage. Each stage takes the previous value and returns the next.

The policy decision comes first: a denied refresh reads no data at all. Every decision
and action is an audit event; a version is published only as a whole, signed directory.

This module is the stage runner. A run's audit entries and lifecycle events live in
engine/refresh_events.py, the version's files in engine/refresh_outputs.py, its signature
in engine/refresh_signing.py; the names others import stay importable from here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.config import Purpose
from engine.enforce import GovernedFrames, SourceRowAccounting
from engine.errors import KeyMaterialError, PolicyDenied
from engine.features import FeatureFrame
from engine.kyc.model import KycRouting
from engine.progress import ProgressEvent, ProgressHook
from engine.publish import Publication, crash_point, publish, recover_chain
from engine.refresh_events import RunEvents, checkpoint, emit_openlineage
from engine.refresh_kyc import kyc_tokens_published, predecessor_of, route_customers
from engine.refresh_outputs import BuiltVersion, keep_for_replay, manifest, tier_counts
from engine.refresh_outputs import write_openlineage as _write_openlineage
from engine.refresh_outputs import write_outputs as _write_outputs
from engine.refresh_signing import sign, signer_for
from engine.request import RefreshRequest
from engine.segment.model import Segmentation
from engine.sources import SourceFrames
from engine.store import (
    MANIFEST,
    PersonaVersion,
    clear_stale_staging,
    staging_dir,
    write_json,
)
from engine.workspace import Workspace

__all__ = ["BuiltVersion", "RefreshResult", "emit_openlineage", "run_refresh"]


@dataclass(frozen=True)
class RefreshResult:
    request: RefreshRequest
    version: PersonaVersion
    accounting: dict[str, SourceRowAccounting]
    valid: bool
    personas: int
    tiers: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    subjects: str = ""  # the workspace's subjects source (its accounting is the customers')
    # Items a sink did not acknowledge after every retry (the CLI exits 10 when > 0).
    dead_lettered: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    approved_by: str | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        return self.version.manifest


# The stage that runs after each timed one (what a failure after its lap is attributed to).
_NEXT_STAGE = {
    "policy": "sources",
    "sources": "enforce",
    "enforce": "features",
    "features": "segment",
    "segment": "store",
    "kyc": "store",
    "store": "deliver",
}


class _Timer:
    """Stage durations for lineage; each lap is also a progress event (engine/progress.py)."""

    def __init__(self, progress: ProgressHook | None = None, task: str = "") -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress
        self.task = task
        self.stage = "policy"  # the stage now running

    def lap(self, stage: str, started: float) -> None:
        import time

        self.seconds[stage] = round(time.perf_counter() - started, 3)
        self.stage = _NEXT_STAGE.get(stage, stage)
        if self.progress is not None:
            self.progress(ProgressEvent(self.task, stage, self.seconds[stage]))


def run_refresh(
    ws: Workspace,
    request: RefreshRequest,
    *,
    wait_seconds: float = 0.0,
    progress: ProgressHook | None = None,
) -> RefreshResult:
    """Run one jurisdiction-scoped refresh and publish a signed version, or refuse."""
    import time

    from engine.heap import freeze_once, held

    with held():
        from engine.locks import refresh_lock
        from engine.policy.decide import decide, engine_for
    freeze_once()  # what lives for good is out of the collector's reach (engine/heap.py)

    timer = _Timer(progress, f"{request.jurisdiction}/{request.purpose.value}")
    events = RunEvents(ws, request, uuid.uuid4().hex)
    started_at = datetime.now(UTC)
    j, p, actor = request.jurisdiction, request.purpose.value, request.actor
    events.record("refresh_requested", as_of=request.as_of.isoformat())
    start_event = events.lifecycle("START", started_at)
    events.emit(start_event)

    try:
        signer = signer_for(ws)  # no valid signing key: refuse before any work (exit 6)
    except KeyMaterialError as exc:
        events.record("refresh_refused", reason="no_valid_signing_key", message=exc.message)
        raise

    t = time.perf_counter()
    try:
        plan = decide(ws, request, engine_for(ws))
    except (PolicyDenied, KeyMaterialError) as exc:
        # A bundle that cannot be verified (no key) is refused like a denied decision.
        events.emit_fail("policy: denied")
        events.record(
            "refresh_denied",
            reasons=getattr(exc, "reasons", ["bundle.verification_key"]),
            message=exc.message,
        )
        checkpoint(ws)
        raise
    timer.lap("policy", t)
    events.record(
        "refresh_allowed",
        plan_digest=plan.digest(),
        bundle_revision=plan.bundle_revision,
        bundle_digest=plan.bundle_digest,
        input_digest=plan.input_digest,
        obligations=list(plan.obligations),
    )

    from engine.features.availability import refuse_contradictions
    from engine.kyc.fact_check import refuse_undeclared_facts

    # From here on the log must not end at refresh_allowed: a failure says its stage and why.
    stage = "features"
    try:
        # A feature declared for a purpose whose policy always removes its input.
        refuse_contradictions(ws.config, plan)
        if request.purpose is Purpose.KYC_AML:  # a fact the ruleset reads, declared by no one
            stage = "kyc"
            refuse_undeclared_facts(ws.config, plan.kyc_ruleset)
    except BaseException as exc:
        events.failed(stage, exc)
        raise
    try:
        timer.stage = "lock"
        with refresh_lock(ws, j, p, wait_seconds, actor=actor):
            chain = ws.versions_dir(j, p)
            chain.mkdir(parents=True, exist_ok=True)
            # Finish or roll back a publish a crash interrupted, before anything new is staged.
            recover_chain(ws, j, p, actor)
            clear_stale_staging(chain)
            timer.stage = "sources"
            result = _run_locked(ws, request, plan, signer, events, started_at, timer, start_event)
    except BaseException as exc:
        events.failed(timer.stage, exc)
        raise
    checkpoint(ws)
    events.emit(json.loads((result.version.path / "openlineage.json").read_bytes()))
    return result


def _run_locked(
    ws: Workspace,
    request: RefreshRequest,
    plan: Any,
    signer: Any,
    events: RunEvents,
    started_at: datetime,
    timer: _Timer,
    start_event: dict[str, Any],
) -> RefreshResult:
    import time

    from engine.digest_cache import DigestCache
    from engine.enforce import enforce
    from engine.enforce_subjects import needed_columns
    from engine.features import build_features
    from engine.prepass_cache import PrepassCache
    from engine.pseudonym import Pseudonymiser
    from engine.pseudonym.filing import file_tokens
    from engine.pseudonym.keyring import Keyring
    from engine.refresh_side import SideWork
    from engine.segment import governed_reads, segment
    from engine.sources import load_sources
    from engine.versions import next_version_id

    j, p, actor = request.jurisdiction, request.purpose.value, request.actor
    run_id = events.run_id
    keyring = Keyring.load(ws)

    t = time.perf_counter()
    timer.stage = "sources"
    # Valid rows carry only the columns the plan uses (every column is still checked).
    keep = needed_columns(plan, ws.config)
    cache = DigestCache.for_workspace(ws, keyring)  # unchanged files are not re-hashed
    prepass = PrepassCache.for_workspace(ws, keyring)  # nor their pre-pass queries run
    sources: SourceFrames = load_sources(ws, j, request.as_of, keep, cache, prepass)
    timer.lap("sources", t)
    crash_point("sources")
    _require_subjects(ws, sources)
    # The quarantine is sealed and the unscoped rows counted beside enforcement (their audit
    # entries follow it, in their old order: engine/refresh_side.py).
    side = SideWork(ws, run_id, sources, keyring.sealer("quarantine")[0])

    t = time.perf_counter()
    timer.stage = "enforce"
    pseudonymiser = Pseudonymiser.for_workspace(ws, keyring)
    try:
        governed: GovernedFrames = enforce(
            sources, plan, pseudonymiser, request.as_of, release=True
        )
    except BaseException:
        side.finish_quietly(events)
        raise
    quarantine_report, unscoped = side.finish(events)
    # kv tokens are filed in the token vault before anything carrying them is published.
    used = kyc_tokens_published(governed)
    file_tokens(ws, pseudonymiser, actor, used, run_id=run_id, jurisdiction=j, purpose=p)
    del used  # a column of tokens per kyc context: not carried through the later stages
    timer.lap("enforce", t)
    crash_point("enforce")
    for name, acc in governed.accounting.items():
        if not acc.balanced():
            raise RuntimeError(f"row accounting does not balance for source '{name}'")
    # From here on only the governed frames carry rows; lineage keeps the sources' metadata.
    sources = sources.released()
    events.exclusions(governed)

    t = time.perf_counter()
    timer.stage = "features"
    seg_spec = ws.config.segmentation.for_purpose(p)
    # Each governed source's rows go as soon as their last reader is done (at 10M one
    # jurisdiction's governed transactions are GiBs): features call `done` once a source is
    # aggregated; segmentation reads only the sources its spec names; kyc and the version's
    # files need names, accounting and lineage only.
    reads = governed_reads(seg_spec)

    def done(source: str) -> None:
        if source not in reads:
            governed.frames[source] = governed.frames[source].clear()
            governed.subject_positions.pop(source, None)  # it holds the frame too

    features: FeatureFrame = build_features(governed, request.as_of, ws.config, done)
    governed = _rows_kept(governed, reads)
    timer.lap("features", t)

    t = time.perf_counter()
    timer.stage = "segment"
    seg: Segmentation = segment(
        features,
        seg_spec,
        plan.k_anonymity_min,
        request.seed,
        governed,
    )
    governed = _rows_kept(governed, frozenset())
    timer.lap("segment", t)
    crash_point("segment")

    version_id = next_version_id(ws, j, p)
    chain = ws.versions_dir(j, p)
    predecessor = predecessor_of(ws, j, p)

    routing: KycRouting | None = None
    if request.purpose is Purpose.KYC_AML:
        timer.stage = "kyc"
        t = time.perf_counter()
        routing = route_customers(ws, request, plan, features, governed, seg, predecessor)
        timer.lap("kyc", t)

    built = BuiltVersion(
        request=request,
        run_id=run_id,
        started_at=started_at,
        version_id=version_id,
        plan=plan,
        sources=sources,
        governed=governed,
        features=features,
        seg=seg,
        routing=routing,
        predecessor=predecessor,
        quarantine_report=quarantine_report,
    )
    timer.stage = "store"
    stage = staging_dir(chain, run_id)
    t = time.perf_counter()
    manifest_doc = manifest(built, _write_outputs(stage, built))
    manifest_doc["replay"] = keep_for_replay(ws, plan)
    # Rows whose jurisdiction is null or undeclared ("EU-DE ", "eu-de") belong to no refresh:
    # every refresh says how many there are, so they are never silently lost.
    manifest_doc["unscoped_rows"] = unscoped
    write_json(stage / MANIFEST, manifest_doc)
    finished_at = datetime.now(UTC)
    _write_openlineage(stage, ws, built, finished_at, start_event)
    crash_point("store_before_sign")
    sign(stage, built, finished_at, signer, timer.seconds)
    crash_point("store_before_rename")
    version = publish(
        ws,
        stage,
        chain / version_id,
        Publication(
            jurisdiction=j,
            purpose=p,
            version_id=version_id,
            run_id=run_id,
            actor=actor,
            details={
                "validity": manifest_doc["validity"],
                "gates": [g.name for g in seg.gates if not g.passed],
            },
        ),
    )
    timer.lap("store", t)

    timer.stage = "approve"
    from engine.approval import auto_approve

    approval = auto_approve(ws, version.path)
    delivered: dict[str, int] = {}
    reports: list[Any] = []
    if routing is not None:
        # Risk increases are a legal obligation delivered now, whatever the persona gates
        # say; routine changes wait for approval (see engine/kyc/delivery.py).
        timer.stage = "deliver"
        from engine.errors import StorageError, storage_error
        from engine.kyc.delivery import sync
        from engine.kyc.io import as_stored

        # The version just published is delivered from memory, as its file reads back.
        stored = (version_id, as_stored(routing))
        try:
            reports = sync(ws, j, actor, "refresh", request.as_of, stored)
        except OSError as exc:
            err = storage_error(exc)
            if not isinstance(err, StorageError):
                raise
            raise StorageError(
                f"{j}/{p}/{version_id} is published, but its delivery could not be written "
                f"({err.message.split('(', 1)[-1].split(')')[0]}); it is delivered at the next "
                "refresh of this chain or by 'pgov versions recover'"
            ) from None
        for r in reports:
            for q, n in r.counts.items():
                delivered[q] = delivered.get(q, 0) + n
    return RefreshResult(
        request=request,
        version=version,
        accounting=governed.accounting,
        valid=seg.valid,
        personas=len(seg.personas),
        tiers=tier_counts(routing),
        delivered=delivered,
        seconds=timer.seconds,
        subjects=ws.config.subjects,
        dead_lettered=sum(r.dead_lettered for r in reports),
        deliveries=[r.to_json() for r in reports],
        approved_by=approval.approved_by if approval else None,
    )


def _require_subjects(ws: Workspace, sources: SourceFrames) -> None:
    """No subjects in this jurisdiction: a clear refusal naming the file, before anything is
    written (segmenting zero customers is not a version)."""
    from engine.errors import BadInputError

    name = ws.config.subjects
    frame = sources.frames.get(name)
    if frame is not None and frame.frame.height == 0:
        acc = frame.accounting
        raise BadInputError(
            f"{ws.config.sources[name].path}: subjects source '{name}' has no usable rows for "
            f"{sources.jurisdiction} ({acc.input_rows} read, {acc.quarantined_rows} "
            "quarantined); nothing to build a version from"
        )


def _rows_kept(governed: GovernedFrames, sources: frozenset[str]) -> GovernedFrames:
    """The same governed frames with only `sources` still holding rows; every other frame
    keeps its schema with no rows (a source that was governed stays visible as such)."""
    from dataclasses import replace

    frames = {n: f if n in sources else f.clear() for n, f in governed.frames.items()}
    # A frame's subject positions refer to the frame itself: they go with its rows.
    positions = {n: p for n, p in governed.subject_positions.items() if n in sources}
    return replace(governed, frames=frames, subject_positions=positions)
