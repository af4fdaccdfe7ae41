"""Provenance: what a refresh tells lineage about itself.

Builds the signed statement's predicate and the OpenLineage run event from the stage
values. Only digests, counts, parameters and column names: never a customer value.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine import __version__
from engine.store import predecessor_ref
from engine.workspace import Workspace

if TYPE_CHECKING:
    from engine.refresh import BuiltVersion

PRODUCER = f"https://github.com/personagov/personagov/tree/v{__version__}"


def lineage_predicate(
    built: BuiltVersion,
    finished_at: datetime,
    git_commit: str | None,
    seconds: dict[str, float],
) -> Any:
    from lineage.statement import LineagePredicate

    request, plan, seg = built.request, built.plan, built.seg
    return LineagePredicate.model_validate(
        {
            "inputs": [
                {
                    "name": name,
                    "path": frame.path,
                    "sha256": frame.input_digest,
                    "rows": frame.accounting.input_rows,
                }
                for name, frame in sorted(built.sources.frames.items())
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
                "run_id": built.run_id,
                "quarantine_report": (
                    f"quarantine/{request.jurisdiction}/{built.run_id}/report.json"
                ),
            },
            "code": {"version": __version__, "git_commit": git_commit},
            "row_accounting": built.accounting_json(),
            "actor": request.actor,
            "jurisdiction": request.jurisdiction,
            "purpose": request.purpose.value,
            "persona_version": built.version_id,
            "predecessor": predecessor_ref(built.predecessor),
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
            "validity": built.validity,
            "started_at": built.started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
        }
    )


_TRANSFORM = {
    "keep": ("DIRECT", "IDENTITY", False),
    "pseudonymise": ("DIRECT", "TRANSFORMATION", True),
    "generalise": ("DIRECT", "TRANSFORMATION", True),
    "null_when": ("DIRECT", "TRANSFORMATION", True),
}


def openlineage_event(ws: Workspace, built: BuiltVersion, event_time: datetime) -> dict[str, Any]:
    """A COMPLETE RunEvent: inputs with schemas, outputs with column lineage."""
    import uuid

    from lineage.openlineage import run_event

    request, run_id, version_id = built.request, built.run_id, built.version_id
    sources, governed = built.sources, built.governed
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
