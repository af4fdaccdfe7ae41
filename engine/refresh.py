"""One governed refresh: request -> policy -> sources -> enforce -> features -> segment ->
kyc -> store -> lineage. Each stage takes the previous value and returns the next.

The policy decision comes first: a denied refresh reads no data at all. Every decision
and action is an audit event; a version is published only as a whole, signed directory.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine import __version__
from engine.audit import record
from engine.config import Purpose
from engine.enforce import GovernedFrames, SourceRowAccounting
from engine.errors import KeyMaterialError, PgovError, PolicyDenied
from engine.features import FeatureFrame
from engine.kyc.model import KycRouting
from engine.progress import ProgressEvent, ProgressHook
from engine.publish import Publication, crash_point, publish, recover_chain
from engine.request import RefreshRequest
from engine.segment.model import Segmentation
from engine.sources import SourceFrames
from engine.store import (
    MANIFEST,
    STATEMENT,
    PersonaVersion,
    clear_stale_staging,
    load_version,
    output_digests,
    predecessor_ref,
    staging_dir,
    write_json,
)
from engine.workspace import Workspace
from lineage.canonical import canonical_json

log = structlog.get_logger(__name__)


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


def _git_commit() -> str | None:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


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

    from engine.locks import refresh_lock
    from engine.policy.decide import decide, engine_for

    timer = _Timer(progress, f"{request.jurisdiction}/{request.purpose.value}")
    run_id = uuid.uuid4().hex
    started_at = datetime.now(UTC)
    j, p, actor = request.jurisdiction, request.purpose.value, request.actor
    record(
        ws,
        "refresh_requested",
        actor,
        jurisdiction=j,
        purpose=p,
        run_id=run_id,
        as_of=request.as_of.isoformat(),
    )
    start_event = _lifecycle_event(ws, request, run_id, "START", started_at)
    emit_openlineage(ws, start_event, actor, run_id)

    try:
        signer = _signer(ws)  # no valid signing key: refuse before any work (exit 6)
    except KeyMaterialError as exc:
        record(
            ws,
            "refresh_refused",
            actor,
            jurisdiction=j,
            purpose=p,
            run_id=run_id,
            reason="no_valid_signing_key",
            message=exc.message,
        )
        raise

    t = time.perf_counter()
    try:
        plan = decide(ws, request, engine_for(ws))
    except (PolicyDenied, KeyMaterialError) as exc:
        # A bundle that cannot be verified (no key) is refused like a denied decision.
        emit_openlineage(
            ws,
            _lifecycle_event(ws, request, run_id, "FAIL", datetime.now(UTC), "policy: denied"),
            actor,
            run_id,
        )
        record(
            ws,
            "refresh_denied",
            actor,
            jurisdiction=j,
            purpose=p,
            run_id=run_id,
            reasons=getattr(exc, "reasons", ["bundle.verification_key"]),
            message=exc.message,
        )
        _checkpoint(ws)
        raise
    timer.lap("policy", t)
    record(
        ws,
        "refresh_allowed",
        actor,
        jurisdiction=j,
        purpose=p,
        run_id=run_id,
        plan_digest=plan.digest(),
        bundle_revision=plan.bundle_revision,
        bundle_digest=plan.bundle_digest,
        input_digest=plan.input_digest,
        obligations=list(plan.obligations),
    )

    def failed(stage: str, exc: BaseException) -> None:
        # The log must not end at refresh_allowed: say which stage failed and why.
        _failed(ws, request, run_id, stage, exc)

    from engine.features.availability import refuse_contradictions

    try:
        # A feature declared for a purpose whose policy always removes its input.
        refuse_contradictions(ws.config, plan)
    except BaseException as exc:
        failed("features", exc)
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
            result = _run_locked(ws, request, plan, signer, run_id, started_at, timer, start_event)
    except BaseException as exc:
        failed(timer.stage, exc)
        raise
    _checkpoint(ws)
    complete = result.version.path / "openlineage.json"
    emit_openlineage(ws, json.loads(complete.read_bytes()), actor, run_id)
    return result


def _failed(
    ws: Workspace, request: RefreshRequest, run_id: str, stage: str, exc: BaseException
) -> None:
    """A failure after the allow decision: audited with its stage and reason (a message that
    names locations and reason codes, never values), and a FAIL run event."""
    from engine.errors import exit_code_of

    code = exit_code_of(exc)
    if isinstance(exc, PgovError):
        reason = f"{exc.__class__.__name__}: {exc.message}"
    elif isinstance(exc, OSError):
        reason = f"{exc.__class__.__name__}: {exc.strerror or 'I/O error'}"
    else:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else exc.__class__.__name__
    try:
        record(
            ws,
            "refresh_failed",
            request.actor,
            jurisdiction=request.jurisdiction,
            purpose=request.purpose.value,
            run_id=run_id,
            stage=stage,
            reason=reason,
            exit_code=code,
        )
        emit_openlineage(
            ws,
            _lifecycle_event(ws, request, run_id, "FAIL", datetime.now(UTC), f"{stage}: {reason}"),
            request.actor,
            run_id,
        )
        _checkpoint(ws)
    except Exception:  # the original failure matters more than its audit trail
        log.exception("refresh_failed_not_recorded", run_id=run_id, stage=stage)


def _lifecycle_event(
    ws: Workspace,
    request: RefreshRequest,
    run_id: str,
    event_type: str,
    when: datetime,
    error: str | None = None,
) -> dict[str, Any]:
    from engine.provenance import PRODUCER
    from lineage.openlineage import lifecycle_event

    return lifecycle_event(
        event_type,
        run_id,
        f"personagov://{ws.config.name}",
        f"refresh.{request.jurisdiction}.{request.purpose.value}",
        PRODUCER,
        when,
        error,
    )


def emit_openlineage(ws: Workspace, event: dict[str, Any], actor: str, run_id: str) -> bool:
    """Send a copy of a run event to the declared endpoint, if any. A failed send is visible
    (audit entry, warning) but is not the refresh's failure: the signed files are the record."""
    from engine.errors import BadInputError
    from lineage.openlineage import emit

    spec = ws.config.openlineage
    if not spec.url:
        return False
    try:
        emit(event, spec.url, spec.endpoint, spec.timeout_seconds)
    except BadInputError as exc:
        record(
            ws,
            "openlineage_emit_failed",
            actor,
            run_id=run_id,
            run_event=str(event.get("eventType")),
            error=exc.message,
        )
        from engine.cli._common import err_console

        err_console.print(f"[yellow]warning:[/] {exc.message}", highlight=False)
        return False
    return True


def _run_locked(
    ws: Workspace,
    request: RefreshRequest,
    plan: Any,
    signer: Any,
    run_id: str,
    started_at: datetime,
    timer: _Timer,
    start_event: dict[str, Any],
) -> RefreshResult:
    import time

    from engine.enforce import enforce
    from engine.features import build_features
    from engine.pseudonym import Pseudonymiser
    from engine.pseudonym.keyring import Keyring
    from engine.quarantine import write_quarantine
    from engine.segment import segment
    from engine.sources import load_sources
    from engine.versions import next_version_id

    j, p, actor = request.jurisdiction, request.purpose.value, request.actor
    keyring = Keyring.load(ws)

    t = time.perf_counter()
    timer.stage = "sources"
    sources: SourceFrames = load_sources(ws, j, request.as_of)
    timer.lap("sources", t)
    crash_point("sources")
    _require_subjects(ws, sources)
    seal, _open = keyring.sealer("quarantine")
    quarantine_report = write_quarantine(ws, run_id, sources, seal)
    _audit_quarantine(ws, request, run_id, quarantine_report)
    unscoped = _audit_unscoped(ws, request, run_id)

    t = time.perf_counter()
    timer.stage = "enforce"
    governed: GovernedFrames = enforce(sources, plan, Pseudonymiser(keyring), request.as_of)
    timer.lap("enforce", t)
    crash_point("enforce")
    for name, acc in governed.accounting.items():
        if not acc.balanced():
            raise RuntimeError(f"row accounting does not balance for source '{name}'")
    # From here on only the governed frames carry rows; lineage keeps the sources' metadata.
    sources = sources.released()
    _audit_exclusions(ws, request, run_id, governed)

    t = time.perf_counter()
    timer.stage = "features"
    features: FeatureFrame = build_features(governed, request.as_of, ws.config)
    timer.lap("features", t)

    t = time.perf_counter()
    timer.stage = "segment"
    seg: Segmentation = segment(
        features,
        ws.config.segmentation.for_purpose(p),
        plan.k_anonymity_min,
        request.seed,
        governed,
    )
    timer.lap("segment", t)
    crash_point("segment")

    version_id = next_version_id(ws, j, p)
    chain = ws.versions_dir(j, p)
    predecessor = _predecessor(ws, j, p)

    routing: KycRouting | None = None
    if request.purpose is Purpose.KYC_AML:
        timer.stage = "kyc"
        t = time.perf_counter()
        routing = _route(ws, request, plan, features, governed, seg, predecessor)
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
    _write_outputs(stage, built)
    manifest = _manifest(built, output_digests(stage))
    manifest["replay"] = _keep_for_replay(ws, plan)
    # Rows whose jurisdiction is null or undeclared ("EU-DE ", "eu-de") belong to no refresh:
    # every refresh says how many there are, so they are never silently lost.
    manifest["unscoped_rows"] = unscoped
    write_json(stage / MANIFEST, manifest)
    finished_at = datetime.now(UTC)
    _write_openlineage(stage, ws, built, finished_at, start_event)
    crash_point("store_before_sign")
    _sign(stage, ws, built, finished_at, signer, timer.seconds)
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
                "validity": manifest["validity"],
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

        try:
            reports = sync(ws, j, actor, "refresh", request.as_of)
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
        tiers=_tier_counts(routing),
        delivered=delivered,
        seconds=timer.seconds,
        subjects=ws.config.subjects,
        dead_lettered=sum(r.dead_lettered for r in reports),
        deliveries=[r.to_json() for r in reports],
        approved_by=approval.approved_by if approval else None,
    )


def _keep_for_replay(ws: Workspace, plan: Any) -> dict[str, str]:
    """The exact pgov.toml and bundle this run decided with, by digest (engine/replay.py)."""
    from engine.policy.decide import bundle_path_for
    from engine.replay import snapshot

    return snapshot(ws, Path(bundle_path_for(ws)), plan.bundle_digest)


def _signer(ws: Workspace) -> Any:
    from lineage.signing import SigningKeyring

    keys = ws.config.keys
    signing_dir, trust_file = ws.path(keys.signing_dir), ws.path(keys.trust_file)
    if not trust_file.is_file():
        raise KeyMaterialError(
            f"{trust_file}: no signing key for this workspace; run 'pgov keys init' first"
        )
    return SigningKeyring(signing_dir, trust_file).signer()


def _checkpoint(ws: Workspace) -> None:
    from engine.audit import checkpoint

    checkpoint(ws)


def _audit_exclusions(
    ws: Workspace, request: RefreshRequest, run_id: str, governed: GovernedFrames
) -> None:
    """Erasure honoured and other exclusions, as counts by reason (never who)."""
    subjects = governed.accounting.get(ws.config.subjects)
    if subjects is None:
        return
    honoured = {
        r: n for r, n in subjects.excluded_by_reason.items() if "erasure" in r or "deletion" in r
    }
    record(
        ws,
        "rows_excluded",
        request.actor,
        jurisdiction=request.jurisdiction,
        purpose=request.purpose.value,
        run_id=run_id,
        by_reason=dict(sorted(subjects.excluded_by_reason.items())),
    )
    if honoured:
        record(
            ws,
            "erasure_honoured",
            request.actor,
            jurisdiction=request.jurisdiction,
            purpose=request.purpose.value,
            run_id=run_id,
            by_reason=honoured,
        )


def _audit_quarantine(
    ws: Workspace, request: RefreshRequest, run_id: str, report: dict[str, Any]
) -> None:
    """The report and sealed files by digest: editing or deleting them later is caught."""
    from engine.store import file_sha256

    rel = Path(str(report["report_path"]))
    directory = ws.root / rel.parent
    names = [rel.name, *(s["file"] for s in (report.get("sealed") or {}).values())]
    record(
        ws,
        "quarantine_written",
        request.actor,
        jurisdiction=request.jurisdiction,
        purpose=request.purpose.value,
        run_id=run_id,
        directory=rel.parent.as_posix(),
        counts=report.get("counts", {}),
        files={n: file_sha256(directory / n) for n in sorted(names)},
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


def _audit_unscoped(ws: Workspace, request: RefreshRequest, run_id: str) -> dict[str, int]:
    from engine.sources import unscoped_rows

    unscoped = unscoped_rows(ws)
    if any(unscoped.values()):
        log.warning("rows_in_no_jurisdiction", by_source=unscoped)
        record(
            ws,
            "rows_unscoped",
            request.actor,
            jurisdiction=request.jurisdiction,
            purpose=request.purpose.value,
            run_id=run_id,
            by_source=dict(sorted(unscoped.items())),
            reason="jurisdiction null or not declared (e.g. trailing space, lower case)",
        )
    return dict(sorted(unscoped.items()))


def _predecessor(ws: Workspace, j: str, p: str) -> PersonaVersion | None:
    from engine.versions import list_versions

    versions = list_versions(ws, j, p)
    if not versions:
        return None
    return load_version(Path(versions[-1].path))


def _route(
    ws: Workspace,
    request: RefreshRequest,
    plan: Any,
    features: FeatureFrame,
    governed: GovernedFrames,
    seg: Segmentation,
    predecessor: PersonaVersion | None,
) -> KycRouting:
    from engine.errors import PolicyError
    from engine.kyc import route
    from engine.kyc.io import read_routing
    from engine.kyc.overrides import apply_overrides, load_overrides
    from engine.kyc.ruleset import KycRuleset

    if plan.kyc_ruleset is None:
        raise PolicyError(
            "kyc_aml refresh without a KYC ruleset from policy; refusing",
            reasons=["kyc.ruleset_undefined"],
        )
    ruleset = KycRuleset.from_policy(plan.kyc_ruleset)
    previous: pl.DataFrame | None = None
    if predecessor is not None and (predecessor.path / "routing.parquet").is_file():
        previous = read_routing(predecessor.path)
    routing = route(
        features,
        governed,
        seg,
        ruleset,
        previous,
        request.as_of,
        ws.config.kyc.downgrade_cooldown_days,
    )
    return apply_overrides(routing, load_overrides(ws, request.jurisdiction), request.as_of)


def _tier_counts(routing: KycRouting | None) -> dict[str, int]:
    if routing is None:
        return {}
    counts = routing.table.group_by("tier").len().sort("tier")
    return {str(t): int(n) for t, n in counts.iter_rows()}


def _write_outputs(stage: Path, built: BuiltVersion) -> None:
    from engine.kyc.io import write_routing
    from engine.segment.io import write_segmentation

    write_segmentation(built.seg, stage)
    if built.routing is not None:
        write_routing(built.routing, stage)
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


def _manifest(built: BuiltVersion, outputs: dict[str, str]) -> dict[str, Any]:
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
        "tiers": _tier_counts(routing),
        "kyc_ruleset_version": routing.ruleset_version if routing else None,
        "code_version": __version__,
    }


def _write_openlineage(
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


def _sign(
    stage: Path,
    ws: Workspace,
    built: BuiltVersion,
    finished_at: datetime,
    signer: Any,
    seconds: dict[str, float],
) -> None:
    from engine.provenance import lineage_predicate
    from lineage.statement import sign_version

    predicate = lineage_predicate(built, finished_at, _git_commit(), seconds)
    sign_version(stage, predicate, signer)
    assert (stage / STATEMENT).is_file()
