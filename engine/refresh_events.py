"""A refresh's run events: its audit entries and its OpenLineage lifecycle (START, FAIL,
COMPLETE), in one place so every entry of a run names the same jurisdiction, purpose, actor
and run id, and every failure after the allow decision leaves a `refresh_failed` entry.

Only counts, reason codes, digests and locations are recorded: never a customer value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from engine.audit import record
from engine.errors import PgovError
from engine.request import RefreshRequest
from engine.workspace import Workspace

if TYPE_CHECKING:
    from engine.enforce import GovernedFrames

log = structlog.get_logger("engine.refresh")


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


def checkpoint(ws: Workspace) -> None:
    from engine.audit import checkpoint as sign_checkpoint

    sign_checkpoint(ws)


@dataclass(frozen=True)
class RunEvents:
    """The audit trail and run events of one refresh run."""

    ws: Workspace
    request: RefreshRequest
    run_id: str

    def record(self, event_type: str, **details: Any) -> int:
        """An audit entry scoped to this run (actor, jurisdiction, purpose, run id)."""
        r = self.request
        return record(
            self.ws,
            event_type,
            r.actor,
            jurisdiction=r.jurisdiction,
            purpose=r.purpose.value,
            run_id=self.run_id,
            **details,
        )

    def lifecycle(
        self, event_type: str, when: datetime, error: str | None = None
    ) -> dict[str, Any]:
        from engine.provenance import PRODUCER
        from lineage.openlineage import lifecycle_event

        r = self.request
        return lifecycle_event(
            event_type,
            self.run_id,
            f"personagov://{self.ws.config.name}",
            f"refresh.{r.jurisdiction}.{r.purpose.value}",
            PRODUCER,
            when,
            error,
        )

    def emit(self, event: dict[str, Any]) -> bool:
        return emit_openlineage(self.ws, event, self.request.actor, self.run_id)

    def emit_fail(self, error: str) -> None:
        self.emit(self.lifecycle("FAIL", datetime.now(UTC), error))

    def failed(self, stage: str, exc: BaseException) -> None:
        """A failure after the allow decision: audited with its stage and reason (a message
        that names locations and reason codes, never values), and a FAIL run event."""
        from engine.errors import exit_code_of

        code = exit_code_of(exc)
        if isinstance(exc, PgovError):
            reason = f"{exc.__class__.__name__}: {exc.message}"
        elif isinstance(exc, OSError):
            reason = f"{exc.__class__.__name__}: {exc.strerror or 'I/O error'}"
        else:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
        try:
            self.record("refresh_failed", stage=stage, reason=reason, exit_code=code)
            self.emit_fail(f"{stage}: {reason}")
            checkpoint(self.ws)
        except Exception:  # the original failure matters more than its audit trail
            log.exception("refresh_failed_not_recorded", run_id=self.run_id, stage=stage)

    def exclusions(self, governed: GovernedFrames) -> None:
        """Erasure honoured and other exclusions, as counts by reason (never who)."""
        subjects = governed.accounting.get(self.ws.config.subjects)
        if subjects is None:
            return
        by_reason = subjects.excluded_by_reason
        honoured = {r: n for r, n in by_reason.items() if "erasure" in r or "deletion" in r}
        self.record("rows_excluded", by_reason=dict(sorted(by_reason.items())))
        if honoured:
            self.record("erasure_honoured", by_reason=honoured)

    def quarantine(self, report: dict[str, Any]) -> None:
        """The report and sealed files by digest: editing or deleting them later is caught."""
        from engine.store import file_sha256

        rel = Path(str(report["report_path"]))
        directory = self.ws.root / rel.parent
        names = [rel.name, *(s["file"] for s in (report.get("sealed") or {}).values())]
        self.record(
            "quarantine_written",
            directory=rel.parent.as_posix(),
            counts=report.get("counts", {}),
            files={n: file_sha256(directory / n) for n in sorted(names)},
        )

    def unscoped(self, counted: dict[str, int] | None = None) -> dict[str, int]:
        """Rows whose jurisdiction is null or undeclared belong to no refresh: every refresh
        says how many there are, so they are never silently lost. `counted`: the counts
        when they were taken already (engine/refresh_side.py)."""
        from engine.sources import unscoped_rows

        unscoped = unscoped_rows(self.ws) if counted is None else counted
        if any(unscoped.values()):
            log.warning("rows_in_no_jurisdiction", by_source=unscoped)
            self.record(
                "rows_unscoped",
                by_source=dict(sorted(unscoped.items())),
                reason="jurisdiction null or not declared (e.g. trailing space, lower case)",
            )
        return dict(sorted(unscoped.items()))
