"""Provenance: what a refresh tells lineage about itself.

Builds the signed statement's predicate and the OpenLineage run event from the stage
values. Only digests, counts, parameters and column names: never a customer value.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from engine import __version__
from engine.enforce import GovernedFrames
from engine.request import RefreshRequest
from engine.segment.model import Segmentation
from engine.sources import SourceFrames
from engine.store import PersonaVersion
from engine.workspace import Workspace

PRODUCER = f"https://github.com/personagov/personagov/tree/v{__version__}"


def lineage_predicate(
    ws: Workspace,
    request: RefreshRequest,
    version_id: str,
    plan: Any,
    sources: SourceFrames,
    governed: GovernedFrames,
    seg: Segmentation,
    predecessor: PersonaVersion | None,
    started_at: datetime,
    finished_at: datetime,
    row_accounting: dict[str, Any],
    git_commit: str | None,
    seconds: dict[str, float],
    run_id: str,
) -> Any:
    from lineage.statement import LineagePredicate

    return LineagePredicate.model_validate(
        {
            "inputs": [
                {
                    "name": name,
                    "path": frame.path,
                    "sha256": frame.input_digest,
                    "rows": frame.accounting.input_rows,
                }
                for name, frame in sorted(sources.frames.items())
            ],
            "policy": {
                "bundle_revision": plan.bundle_revision,
                "bundle_digest": plan.bundle_digest,
                "plan_digest": plan.digest(),
            },
            "parameters": {
                "seed": request.seed,
                "as_of": request.as_of.isoformat(),
                "segmentation": seg.params,
                "strategy": seg.strategy,
                "k_anonymity_min": plan.k_anonymity_min,
                "stage_seconds": seconds,
                "run_id": run_id,
                "quarantine_report": f"quarantine/{request.jurisdiction}/{run_id}/report.json",
            },
            "code": {"version": __version__, "git_commit": git_commit},
            "row_accounting": row_accounting,
            "actor": request.actor,
            "jurisdiction": request.jurisdiction,
            "purpose": request.purpose.value,
            "persona_version": version_id,
            "predecessor": None
            if predecessor is None
            else {
                "version": predecessor.version_id,
                "statement_sha256": predecessor.statement_sha256,
            },
            "gates": [
                {
                    "name": g.name,
                    "passed": g.passed,
                    "value": g.value,
                    "threshold": g.threshold,
                    "detail": g.detail,
                }
                for g in seg.gates
            ],
            "suppression": seg.suppressed,
            "validity": "valid" if seg.valid else "invalid",
            "started_at": started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
        }
    )


_TRANSFORM = {
    "keep": ("DIRECT", "IDENTITY", False),
    "pseudonymise": ("DIRECT", "TRANSFORMATION", True),
    "generalise": ("DIRECT", "TRANSFORMATION", True),
    "null_when": ("DIRECT", "TRANSFORMATION", True),
}


def openlineage_event(
    ws: Workspace,
    request: RefreshRequest,
    run_id: str,
    version_id: str,
    sources: SourceFrames,
    governed: GovernedFrames,
    stage: Path,
    event_time: datetime,
) -> dict[str, Any]:
    """A COMPLETE RunEvent: inputs with schemas, outputs with column lineage."""
    import uuid

    from lineage.openlineage import run_event

    namespace = f"personagov://{ws.config.name}"
    inputs = [
        {
            "namespace": namespace,
            "name": f"{name}",
            "fields": [
                {"name": col, "type": spec.type.value, "description": spec.classification.value}
                for col, spec in frame.spec.columns.items()
            ],
        }
        for name, frame in sorted(sources.frames.items())
    ]
    column_lineage: dict[str, list[dict[str, Any]]] = {}
    for key, action in sorted(governed.column_actions.items()):
        src, _, col = key.partition(".")
        kind = action.get("action", "keep")
        if kind not in _TRANSFORM:
            continue  # dropped columns have no output field
        type_, subtype, masking = _TRANSFORM[kind]
        column_lineage[f"{src}.{col}"] = [
            {
                "namespace": namespace,
                "name": src,
                "field": col,
                "transformations": [
                    {
                        "type": type_,
                        "subtype": subtype,
                        "description": " ".join(f"{k}={v}" for k, v in sorted(action.items())),
                        "masking": masking,
                    }
                ],
            }
        ]
    outputs = [
        {
            "namespace": namespace,
            "name": f"versions/{request.jurisdiction}/{request.purpose.value}/{version_id}",
            "fields": [],
        }
    ]
    # run ids must be UUIDs; the refresh run id is a uuid4 hex.
    return run_event(
        event_type="COMPLETE",
        run_id=str(uuid.UUID(run_id)),
        job_namespace=namespace,
        job_name=f"refresh.{request.jurisdiction}.{request.purpose.value}",
        inputs=inputs,
        outputs=outputs,
        column_lineage=column_lineage,
        persona_version=version_id,
        producer=PRODUCER,
        event_time=event_time,
    )
