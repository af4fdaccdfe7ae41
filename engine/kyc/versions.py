"""Finding routing tables in published kyc_aml versions (for the operations view and overrides).

Versions live in `versions/<jurisdiction>/kyc_aml/<version_id>/routing.parquet`. Views default
to "current" (the approved version: what operations work from); "latest" (the highest
version id, possibly unapproved) and a version id can be asked for. Overrides recorded after
a version was published are applied when it is read, so the view always shows the effective
tier with the computed tier beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from engine.config import Purpose
from engine.errors import BadInputError, PolicyDenied, UsageError
from engine.kyc.io import ROUTING_FILE, load_routing
from engine.kyc.model import KycRouting
from engine.kyc.overrides import apply_overrides, load_overrides
from engine.workspace import Workspace

PURPOSE = Purpose.KYC_AML.value


@dataclass(frozen=True)
class RoutingVersion:
    jurisdiction: str
    version_id: str
    path: Path


def routing_versions(
    ws: Workspace, jurisdiction: str | None = None, version: str | None = None
) -> list[RoutingVersion]:
    """The routing versions a command looks at: one per jurisdiction (current unless named)."""
    from engine.approval import current_version
    from engine.versions import latest_version, resolve_version, version_number

    version = version or "current"

    if version and "/" in version:
        path = resolve_version(ws, version)
        j = path.parent.parent.name
        if jurisdiction and j != jurisdiction:
            raise UsageError(f"--version {version} is not in jurisdiction {jurisdiction}")
        return [_checked(RoutingVersion(j, path.name, path))]
    if version not in ("latest", "current") and version_number(version) is None:
        raise UsageError(f"'{version}' is not a version id (v0001, ..., 'current' or 'latest')")
    wanted = [jurisdiction] if jurisdiction else list(ws.config.jurisdictions)
    if jurisdiction and jurisdiction not in ws.config.jurisdictions:
        raise UsageError(f"unknown jurisdiction '{jurisdiction}'")
    found: list[RoutingVersion] = []
    for j in wanted:
        if version == "current":
            approved = current_version(ws, j, PURPOSE)
            if approved is not None:
                d = ws.versions_dir(j, PURPOSE) / approved.version_id
                found.append(_checked(RoutingVersion(j, approved.version_id, d)))
            continue
        if version != "latest":
            d = ws.versions_dir(j, PURPOSE) / version
            if d.is_dir():
                found.append(_checked(RoutingVersion(j, version, d)))
            elif jurisdiction:
                raise BadInputError(f"{j}/{PURPOSE}/{version}: no such version")
            continue
        latest = latest_version(ws, j, PURPOSE)
        if latest is not None and (latest.path / ROUTING_FILE).is_file():
            found.append(RoutingVersion(j, latest.path.name, latest.path))
    if not found:
        where = jurisdiction or "any jurisdiction"
        if version == "current":
            raise BadInputError(
                f"no approved (current) {PURPOSE} version for {where}; approve one with "
                "'pgov versions approve', or look at an unapproved one with --version latest"
            )
        raise BadInputError(f"no published {PURPOSE} routing for {where}")
    return found


def authorize_read(ws: Workspace, actor: str, jurisdictions: list[str]) -> None:
    """KYC queues, customer views and overrides are personal data (pseudonymised): each
    jurisdiction read is a `kyc_read` decision of the policy, refused as a whole if any is
    denied, so a view is never silently partial."""
    from engine.audit import authorize

    for j in sorted(set(jurisdictions)):
        try:
            authorize(ws, actor, "kyc_read", {"jurisdiction": j, "purpose": PURPOSE})
        except PolicyDenied as exc:
            raise PolicyDenied(
                f"{exc} (reading {j}; narrow the view with --jurisdiction)", reasons=exc.reasons
            ) from exc


def _checked(rv: RoutingVersion) -> RoutingVersion:
    if not (rv.path / ROUTING_FILE).is_file():
        raise BadInputError(f"{rv.path}: no KYC routing in this version")
    return rv


def effective_routing(ws: Workspace, rv: RoutingVersion, as_of: date) -> KycRouting:
    """A stored routing with the overrides active on `as_of` applied."""
    return with_overrides(ws, rv.jurisdiction, load_routing(rv.path), as_of)


def with_overrides(
    ws: Workspace, jurisdiction: str, routing: KycRouting, as_of: date
) -> KycRouting:
    """`routing` (as stored) with the jurisdiction's overrides active on `as_of` applied."""
    overrides = load_overrides(ws, jurisdiction)
    return apply_overrides(routing, overrides, as_of) if overrides else routing


def queue_items(
    ws: Workspace,
    queue: str,
    as_of: date,
    actor: str,
    jurisdiction: str | None = None,
    version: str | None = None,
) -> pl.DataFrame:
    """One queue's items across the chosen versions, most urgent first, if `actor` may read
    every one of them."""
    frames = []
    if jurisdiction is not None:
        # Decide before looking: a refused actor learns nothing, not even whether an approved
        # version exists, and the refusal is what the log records.
        authorize_read(ws, actor, [jurisdiction])
    chosen = routing_versions(ws, jurisdiction, version)
    if jurisdiction is None:
        authorize_read(ws, actor, [rv.jurisdiction for rv in chosen])
    for rv in chosen:
        routing = effective_routing(ws, rv, as_of)
        known = [q.queue for q in routing.ruleset.queues] if routing.ruleset else []
        if known and queue not in known:
            raise UsageError(
                f"no queue '{queue}' in {rv.jurisdiction}/{rv.version_id}; "
                f"queues: {', '.join(known)}"
            )
        t = routing.table
        frames.append(
            t.filter(pl.col("queue") == queue).with_columns(pl.lit(rv.version_id).alias("version"))
        )
    out = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    if out.height == 0:
        return out
    return out.sort("sla_due", "review_due", "customer_id")


def find_customer(
    ws: Workspace,
    customer: str,
    as_of: date,
    actor: str,
    jurisdiction: str | None = None,
    version: str | None = None,
) -> tuple[RoutingVersion, dict[str, object]]:
    """The customer in the chosen version(s). Without --version: the current version, then
    the latest one (a new EDD is delivered at publish, before approval, and operations must
    be able to see and override it)."""
    tries = [version] if version else ["current", "latest"]
    for attempt in tries:
        try:
            chosen = routing_versions(ws, jurisdiction, attempt)
        except BadInputError:
            if attempt != tries[-1]:
                continue
            raise
        authorize_read(ws, actor, [rv.jurisdiction for rv in chosen])
        for rv in chosen:
            t = effective_routing(ws, rv, as_of).table.filter(pl.col("customer_id") == customer)
            if t.height:
                return rv, t.row(0, named=True)
    raise BadInputError("customer token not found in the chosen kyc_aml version(s)")
