"""Manual tier overrides with a documented reason and, for downgrades out of EDD and above,
a second person (four eyes).

EBA GL 2021/02 §3.6: an automatic score must be overridable, with the reason documented.
AMLR Art. 42(1)(b): PEP relationships need senior approval. So:

- every override needs a reason and an authorised actor (policy action `kyc_override`);
- a downgrade from EDD, EDD_SENIOR or PROHIBITED is *pending* until a different actor with
  the compliance_officer role approves it (policy action `kyc_approve`);
- the computed and system tiers stay visible under the override; an override can expire.

State is an append-only JSONL file in `ws.kyc_dir` (one event per line: requested,
approved); every event, and every refusal, is also an audit-log leaf. The audit log gets a
digest of the free-text reason, not the text (a reason may mention a person).

The log is the record, the file only carries the reason text: a line without its matching
audit entry (a forged approval appended to the file) never takes effect, and `pgov lineage
verify --all` reports it, as it reports an entry whose line is gone (a deleted file).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
import structlog
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine import audit
from engine.config import Role
from engine.errors import BadInputError, PolicyDenied, UsageError
from engine.kyc.model import KycRouting
from engine.kyc.ruleset import HIGH_RISK_RANK, TIER_RANK, KycRuleset, Tier
from engine.workspace import Workspace

log = structlog.get_logger(__name__)

OVERRIDES_FILE = "overrides.jsonl"
APPROVER_ROLE = Role.COMPLIANCE_OFFICER
KEY = "customer_id"

Status = Literal["pending", "active", "expired"]


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverrideRequested(_Edge):
    event: Literal["requested"] = "requested"
    id: str = Field(pattern=r"^ovr-[0-9a-f]{12}$")
    customer: str = Field(min_length=1)  # kyc-domain token
    jurisdiction: str
    version: str | None = None  # the routing version the requester looked at
    from_tier: Tier  # the system tier the override replaces
    tier: Tier
    reason: str = Field(min_length=1, max_length=2000)
    actor: str
    at: datetime
    expires: date | None = None
    requires_approval: bool

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a reason is mandatory (EBA GL 2021/02 §3.6)")
        return value.strip()


class OverrideApproved(_Edge):
    event: Literal["approved"] = "approved"
    id: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class Override:
    request: OverrideRequested
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.request.id

    def status(self, as_of: date) -> Status:
        if self.request.expires is not None and self.request.expires < as_of:
            return "expired"
        if self.request.requires_approval and self.approved_by is None:
            return "pending"
        return "active"

    def to_json(self, as_of: date) -> dict[str, Any]:
        d = self.request.model_dump(mode="json")
        d.update(
            approved_by=self.approved_by,
            approved_at=self.approved_at.isoformat() if self.approved_at else None,
            status=self.status(as_of),
        )
        return d


def is_four_eyes(from_tier: str, to_tier: str) -> bool:
    """A downgrade out of EDD or above needs a second person."""
    return TIER_RANK[from_tier] >= HIGH_RISK_RANK and TIER_RANK[to_tier] < TIER_RANK[from_tier]


def _log_path(ws: Workspace) -> Path:
    return ws.kyc_dir / OVERRIDES_FILE


def _append(ws: Workspace, event: BaseModel) -> None:
    ws.kyc_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(event.model_dump(mode="json"), sort_keys=True) + "\n"
    with (
        FileLock(str(ws.kyc_dir / ".overrides.lock"), timeout=30),
        _log_path(ws).open("a", encoding="utf-8") as fh,
    ):
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _read_events(ws: Workspace) -> list[tuple[int, OverrideRequested | OverrideApproved]]:
    path = _log_path(ws)
    if not path.is_file():
        return []
    out: list[tuple[int, OverrideRequested | OverrideApproved]] = []
    for n, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if data.get("event") == "requested":
                out.append((n, OverrideRequested.model_validate(data)))
            elif data.get("event") == "approved":
                out.append((n, OverrideApproved.model_validate(data)))
            else:
                raise ValueError("unknown event")
        except (ValueError, ValidationError, AttributeError):
            # A corrupt state file must stop overrides, not silently drop one.
            raise BadInputError(f"{path}:{n}: unreadable override event") from None
    return out


def load_overrides(ws: Workspace, jurisdiction: str | None = None) -> list[Override]:
    """Every override (any status), oldest first; one jurisdiction's or all.

    Only events backed by their audit entry count: a line appended to the file by hand is
    ignored here (and reported by verification)."""
    from engine.kyc.override_audit import audit_entries, logged_events, matches

    events = _read_events(ws)
    if not events:
        return []
    logged = logged_events(audit_entries(ws))
    by_id: dict[str, Override] = {}
    for _, event in events:
        entry = logged.get((event.event, event.id))
        if entry is None or not matches(event, entry):
            log.warning("kyc_override_unbacked", override_id=event.id, kind=event.event)
            continue
        if isinstance(event, OverrideRequested):
            by_id[event.id] = Override(request=event)
        elif event.id in by_id and by_id[event.id].approved_by is None:
            by_id[event.id] = replace(
                by_id[event.id], approved_by=event.actor, approved_at=event.at
            )
    out = list(by_id.values())
    if jurisdiction is not None:
        out = [o for o in out if o.request.jurisdiction == jurisdiction]
    return sorted(out, key=lambda o: (o.request.at, o.id))


def _reason_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _authorize(ws: Workspace, actor: str, action: str, resource: dict[str, Any]) -> None:
    """Policy decides who may act; imported lazily so the policy layer stays the authority."""
    try:
        from engine.policy.decide import authorize
    except ImportError:
        raise PolicyDenied(
            "authorisation engine unavailable; refusing", reasons=["kyc.authz_unavailable"]
        ) from None
    authorize(ws, actor, action, resource)


def _refuse(ws: Workspace, actor: str, reason: str, message: str, **details: Any) -> PolicyDenied:
    audit.record(ws, "kyc_override_refused", actor, reason=reason, **details)
    return PolicyDenied(message, reasons=[reason])


def request_override(
    ws: Workspace,
    *,
    customer: str,
    jurisdiction: str,
    from_tier: str,
    tier: str,
    reason: str,
    actor: str,
    expires: date | None = None,
    version: str | None = None,
    now: datetime | None = None,
) -> Override:
    """Record an override. Active at once unless it is a four-eyes downgrade (then pending)."""
    now = now or datetime.now(UTC)
    if not reason or not reason.strip():
        raise UsageError("--reason is mandatory: an override without a documented reason is void")
    if tier not in TIER_RANK or from_tier not in TIER_RANK:
        raise UsageError(f"tier must be one of {', '.join(TIER_RANK)}")
    if tier == from_tier:
        raise UsageError(f"customer is already {tier}; nothing to override")
    if expires is not None and expires < now.date():
        raise UsageError("--expires is in the past")
    resource = {
        "jurisdiction": jurisdiction,
        "domain": "kyc",
        "customer": customer,
        "tier": tier,
        "from_tier": from_tier,
    }
    try:
        _authorize(ws, actor, "kyc_override", resource)
    except PolicyDenied as exc:
        audit.record(
            ws,
            "kyc_override_refused",
            actor,
            reason="policy_denied",
            policy_reasons=exc.reasons,
            customer=customer,
            jurisdiction=jurisdiction,
        )
        raise
    try:
        req = OverrideRequested(
            id=f"ovr-{secrets.token_hex(6)}",
            customer=customer,
            jurisdiction=jurisdiction,
            version=version,
            from_tier=from_tier,
            tier=tier,
            reason=reason,
            actor=actor,
            at=now,
            expires=expires,
            requires_approval=is_four_eyes(from_tier, tier),
        )
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors(include_input=False))
        raise UsageError(f"invalid override ({fields})") from None
    _append(ws, req)
    audit.record(
        ws,
        "kyc_override_requested",
        actor,
        override_id=req.id,
        customer=customer,
        jurisdiction=jurisdiction,
        version=version,
        from_tier=from_tier,
        tier=tier,
        expires=expires.isoformat() if expires else None,
        requires_approval=req.requires_approval,
        reason_sha256=_reason_digest(req.reason),
    )
    return Override(request=req)


def approve_override(
    ws: Workspace, override_id: str, actor: str, now: datetime | None = None
) -> Override:
    """Second pair of eyes: a different person, with the compliance_officer role."""
    now = now or datetime.now(UTC)
    found = {o.id: o for o in load_overrides(ws)}
    ovr = found.get(override_id)
    if ovr is None:
        raise UsageError(f"no override '{override_id}'")
    details = {"override_id": override_id, "customer": ovr.request.customer}
    status = ovr.status(now.date())
    if status != "pending":
        raise UsageError(f"override '{override_id}' is {status}, not pending approval")
    if actor == ovr.request.actor:
        raise _refuse(
            ws,
            actor,
            "kyc.four_eyes_same_person",
            "four-eyes: the approver must be a different person from the requester",
            **details,
        )
    spec = ws.config.actors.get(actor)
    if spec is None or APPROVER_ROLE not in spec.roles:
        raise _refuse(
            ws,
            actor,
            "kyc.approver_role_missing",
            f"four-eyes: approving a downgrade out of {ovr.request.from_tier} needs the "
            f"{APPROVER_ROLE.value} role",
            **details,
        )
    resource = {
        "jurisdiction": ovr.request.jurisdiction,
        "domain": "kyc",
        "customer": ovr.request.customer,
        "tier": ovr.request.tier,
        "from_tier": ovr.request.from_tier,
        "requested_by": ovr.request.actor,
    }
    try:
        _authorize(ws, actor, "kyc_approve", resource)
    except PolicyDenied as exc:
        audit.record(
            ws,
            "kyc_override_refused",
            actor,
            reason="policy_denied",
            policy_reasons=exc.reasons,
            **details,
        )
        raise
    event = OverrideApproved(id=override_id, actor=actor, at=now)
    _append(ws, event)
    audit.record(
        ws,
        "kyc_override_approved",
        actor,
        requested_by=ovr.request.actor,
        from_tier=ovr.request.from_tier,
        tier=ovr.request.tier,
        **details,
    )
    return replace(ovr, approved_by=actor, approved_at=now)


def active_overrides(overrides: list[Override], as_of: date) -> pl.DataFrame:
    """customer_id, override_id, override_tier: the latest active override per customer."""
    rows = [
        {"customer_id": o.request.customer, "override_id": o.id, "override_tier": o.request.tier}
        for o in overrides
        if o.status(as_of) == "active"
    ]
    schema = {"customer_id": pl.String, "override_id": pl.String, "override_tier": pl.String}
    # `overrides` is oldest first, so keep="last" is the latest decision per customer.
    return pl.DataFrame(rows, schema=schema).unique("customer_id", keep="last")


def apply_overrides(
    routing: KycRouting,
    overrides: list[Override],
    as_of: date,
    ruleset: KycRuleset | None = None,
) -> KycRouting:
    """The effective tier = an active override's tier, else the system tier. computed_tier
    and system_tier are untouched; overridden rows are re-routed if a ruleset is known, and
    their review date only ever moves earlier."""
    from engine.kyc.routing import assign_queues, summarise
    from engine.kyc.tiering import review_dates

    table = routing.table
    if "system_tier" not in table.columns:
        table = table.with_columns(pl.col("tier").alias("system_tier"))
    if "override_id" not in table.columns:
        table = table.with_columns(pl.lit(None, pl.String).alias("override_id"))
    act = active_overrides(overrides, as_of)
    # Only rows with an active override, or one applied earlier (it may have expired since),
    # are touched; everyone else keeps exactly what their version published.
    affected = pl.col(KEY).is_in(act[KEY].implode()) | pl.col("override_id").is_not_null()
    touched = table.filter(affected)
    if touched.height == 0:
        return KycRouting(routing.ruleset_version, table, routing.summaries, routing.ruleset)
    # Start again from the system tier: an override that expired since must drop out.
    base = touched.drop("override_id").with_columns(
        pl.col("system_tier").alias("tier"),
        pl.col("reasons").list.eval(
            pl.element().filter(~pl.element().str.starts_with("MANUAL_OVERRIDE"))
        ),
        pl.col("reason_codes").list.eval(pl.element().filter(pl.element() != "MANUAL_OVERRIDE")),
    )
    joined = base.join(act, on=KEY, how="left")
    hit = pl.col("override_id").is_not_null()
    joined = joined.with_columns(
        pl.when(hit).then(pl.col("override_tier")).otherwise(pl.col("tier")).alias("tier"),
        pl.when(hit)
        .then(
            pl.concat_list(
                pl.col("reasons"),
                pl.format(
                    "MANUAL_OVERRIDE({} {}->{})", "override_id", "system_tier", "override_tier"
                ),
            )
        )
        .otherwise(pl.col("reasons"))
        .alias("reasons"),
        pl.when(hit)
        .then(pl.concat_list(pl.col("reason_codes"), pl.lit("MANUAL_OVERRIDE")))
        .otherwise(pl.col("reason_codes"))
        .alias("reason_codes"),
    ).drop("override_tier")
    rs = ruleset or routing.ruleset
    if rs is not None:
        due = review_dates(rs, as_of)
        new_due = pl.col("tier").replace_strict(list(due), list(due.values()), return_dtype=pl.Date)
        joined = assign_queues(joined.drop("queue", "sla_days", "sla_due"), rs, as_of)
        joined = joined.with_columns(
            pl.when(hit)
            .then(pl.min_horizontal(pl.col("review_due"), new_due))
            .otherwise(pl.col("review_due"))
            .alias("review_due")
        )
    joined = pl.concat(
        [table.filter(~affected), joined.select(table.columns)], how="vertical_relaxed"
    )
    columns = [c for c in table.columns if c in joined.columns]
    out = joined.select(columns).sort(KEY)
    summaries = summarise(out, rs) if rs is not None else routing.summaries
    return KycRouting(
        ruleset_version=routing.ruleset_version, table=out, summaries=summaries, ruleset=rs
    )
