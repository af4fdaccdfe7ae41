"""What KYC operations receive, and when: deltas against what each sink already has.

Lifecycle (docs/kyc-operations.md, "What is delivered when"):

- **Obligation, at publish.** A risk increase (a customer newly at EDD or above, or moved to
  a higher tier than the sink has, e.g. a sanctions or PEP floor) is a legal obligation: it
  is delivered as soon as the version is published, whatever its persona gates say (tiers
  do not depend on them), with `basis = "obligation"`.
- **Approved, at approval.** Everything else (new customers at low tiers, downgrades,
  routine queue moves) waits until a compliance officer (or a declared auto-approval
  policy) approves the version as current; then the whole delta of the current version is
  delivered with `basis = "approved"`. An invalid version can never be approved, so its
  routine changes never reach a sink.
- **Overrides.** An active override changes the effective routing of the current version;
  the next sync (run at once by `kyc override` / `kyc approve`) delivers it as a delta.

Sink state: `<outbox>/_state/<sink-key>/<jurisdiction>.parquet`, one row per customer with
the queue, tier, override and version the sink last acknowledged. A delta is every item
whose (queue, tier, override) differs from that; after a delivery only acknowledged items
are remembered, so a re-run sends exactly what is missing and nothing twice. A version's
approved delta never undoes what a newer version delivered as an obligation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine.config import OutboxSink, Sink
from engine.errors import DeliveryFailed
from engine.kyc.model import KycRouting
from engine.kyc.ruleset import TIER_RANK
from engine.kyc.sinks import (
    SinkResult,
    atomic_write,
    check_delivery_id,
    deliver_outbox,
    items_frame,
    sink_key,
)
from engine.kyc.webhook import deliver_webhook
from engine.workspace import Workspace

log = structlog.get_logger(__name__)

STATE = "_state"
OBLIGATION = "obligation"
APPROVED = "approved"
BASES = (OBLIGATION, APPROVED)
# The lowest tier whose arrival is a legal obligation delivered at once.
OBLIGATION_FLOOR = "EDD"
_STATE_SCHEMA = {
    "customer": pl.String,
    "queue": pl.String,
    "tier": pl.String,
    "override_id": pl.String,
    "version_id": pl.String,
    "idempotency_key": pl.String,
}


@dataclass
class DeliveryReport:
    version_id: str
    basis: str
    counts: dict[str, int]  # queue -> items in the delta (the largest over sinks)
    sinks: list[SinkResult]

    @property
    def complete(self) -> bool:
        return all(s.dead_lettered == 0 for s in self.sinks)

    @property
    def dead_lettered(self) -> int:
        return sum(s.dead_lettered for s in self.sinks)

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.sinks)

    def to_json(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "basis": self.basis,
            "counts": self.counts,
            "complete": self.complete,
            "sinks": [s.to_json() for s in self.sinks],
        }


def state_path(ws: Workspace, key: str, jurisdiction: str) -> Path:
    return ws.outbox_dir / STATE / key / f"{jurisdiction}.parquet"


def load_state(ws: Workspace, key: str, jurisdiction: str) -> pl.DataFrame:
    path = state_path(ws, key, jurisdiction)
    if not path.is_file():
        return pl.DataFrame(schema=_STATE_SCHEMA)
    return pl.read_parquet(path).select(list(_STATE_SCHEMA)).cast(_STATE_SCHEMA)  # type: ignore[arg-type]


def _remember(ws: Workspace, key: str, jurisdiction: str, acked: pl.DataFrame) -> None:
    if acked.height == 0:
        return
    state = load_state(ws, key, jurisdiction)
    new = acked.select(list(_STATE_SCHEMA)).cast(_STATE_SCHEMA)  # type: ignore[arg-type]
    merged = pl.concat([state.join(new.select("customer"), on="customer", how="anti"), new]).sort(
        "customer"
    )
    path = state_path(ws, key, jurisdiction)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    merged.write_parquet(tmp)
    atomic_write(path, tmp.read_bytes())
    tmp.unlink()


def _version_no(col: pl.Expr) -> pl.Expr:
    return col.str.extract(r"v(\d+)$", 1).cast(pl.Int64)


def delta(items: pl.DataFrame, state: pl.DataFrame, basis: str) -> pl.DataFrame:
    """Items whose (queue, tier, override) differ from the sink's state, for this basis."""
    rank = {t: r for t, r in TIER_RANK.items()}
    sent = state.select(
        "customer",
        pl.col("queue").alias("previous_queue"),
        pl.col("tier").alias("previous_tier"),
        pl.col("override_id").alias("_sent_override"),
        pl.col("version_id").alias("_sent_version"),
    )
    joined = items.join(sent, on="customer", how="left")
    changed = (
        pl.col("previous_queue").is_null()
        | (pl.col("queue") != pl.col("previous_queue"))
        | (pl.col("tier") != pl.col("previous_tier"))
        | pl.col("override_id").ne_missing(pl.col("_sent_override"))
    )
    tier_rank = pl.col("tier").replace_strict(rank, return_dtype=pl.Int64)
    prev_rank = pl.col("previous_tier").replace_strict(rank, default=-1, return_dtype=pl.Int64)
    if basis == OBLIGATION:
        keep = changed & (tier_rank >= rank[OBLIGATION_FLOOR]) & (tier_rank > prev_rank)
    else:
        # Never roll a customer back to an older version's view, unless an override says so.
        newer_sent = _version_no(pl.col("_sent_version")) > _version_no(pl.col("version_id"))
        keep = changed & (newer_sent.fill_null(False).not_() | pl.col("override_id").is_not_null())
    return (
        joined.filter(keep)
        .with_columns(pl.lit(basis).alias("basis"))
        .drop("_sent_override", "_sent_version")
        .sort("queue", "customer")
    )


def _changed_only(
    version_id: str, routing: KycRouting, states: list[pl.DataFrame], basis: str
) -> KycRouting:
    """The routing rows some sink's delta can hold. Whether a row is in a delta depends on
    that row and the sink's state alone, so the delta is first found on the few columns it
    compares; the items (a SHA-256 idempotency key and formatted dates per row) are then built
    for those rows only: a steady refresh changes a handful of 1.6M customers at 10M."""
    if any(s.height == 0 for s in states):
        return routing  # a sink that has received nothing: every row is in its delta
    t = routing.table
    light = t.select(
        pl.lit(version_id).alias("version_id"),
        pl.col("queue"),
        pl.col("customer_id").alias("customer"),
        pl.col("tier"),
        (pl.col("override_id") if "override_id" in t.columns else pl.lit(None, pl.String)).alias(
            "override_id"
        ),
    )
    changed = pl.concat([delta(light, s, basis).select("customer") for s in states])
    rows = t.filter(pl.col("customer_id").is_in(changed.get_column("customer").implode()))
    return replace(routing, table=rows)


def _delivery_id(version_id: str, basis: str, items: pl.DataFrame) -> str:
    h = hashlib.sha256(basis.encode())
    for k in items.get_column("idempotency_key").to_list():
        h.update(k.encode("ascii"))
    return f"{version_id}/{basis}-{h.hexdigest()[:12]}"


def deliver(
    ws: Workspace,
    version_id: str,
    routing: KycRouting,
    sinks: list[Sink],
    basis: str = APPROVED,
    *,
    batch_size: int | None = None,
) -> DeliveryReport:
    """Deliver one version's delta (for `basis`) to every configured sink."""
    if basis not in BASES:
        raise ValueError(f"unknown delivery basis {basis!r}")
    check_delivery_id(version_id)
    jurisdiction = version_id.split("/", 1)[0]
    targets = [(sink, sink_key(sink)) for sink in sinks or [OutboxSink()]]
    # Each sink's state is read again before its delivery (two sinks may share a state), and
    # can then only have fewer rows in its delta than it had here.
    first = [load_state(ws, key, jurisdiction) for key in dict.fromkeys(k for _, k in targets)]
    customers = routing.table.height
    items = items_frame(version_id, _changed_only(version_id, routing, first, basis))
    del first
    results: list[SinkResult] = []
    counts: dict[str, int] = {}
    for sink, key in targets:
        todo = delta(items, load_state(ws, key, jurisdiction), basis)
        for q, n in todo.group_by("queue").len().sort("queue").iter_rows():
            counts[str(q)] = max(counts.get(str(q), 0), int(n))
        if todo.height == 0:
            result = SinkResult(sink=_label(sink), key=key)
        else:
            did = _delivery_id(version_id, basis, todo)
            if isinstance(sink, OutboxSink):
                result = deliver_outbox(ws, did, todo, sink)
            elif batch_size is not None:
                result = deliver_webhook(ws, did, todo, sink, batch_size=batch_size)
            else:
                result = deliver_webhook(ws, did, todo, sink)
            acked = todo.filter(pl.col("idempotency_key").is_in(result.acked))
            _remember(ws, key, jurisdiction, acked)
        result.skipped = customers - todo.height
        results.append(result)
    report = DeliveryReport(version_id=version_id, basis=basis, counts=counts, sinks=results)
    log.info(
        "kyc_delivered",
        version_id=version_id,
        basis=basis,
        sinks=[(s.sink, s.delivered, s.skipped, s.dead_lettered) for s in results],
    )
    return report


def _label(sink: Sink) -> str:
    if isinstance(sink, OutboxSink):
        return f"outbox:{sink.path}"
    import urllib.parse

    return f"webhook:{urllib.parse.urlsplit(sink.url).netloc}"


# ---------------------------------------------------------------- sync (what runs when)


def sync(
    ws: Workspace,
    jurisdiction: str,
    actor: str,
    trigger: str,
    as_of: date,
    published: tuple[str, KycRouting] | None = None,
) -> list[DeliveryReport]:
    """Bring every sink of a jurisdiction up to date: obligations of the latest published
    version (if it is newer than the current one), then the current version's approved
    delta with active overrides. Each delivery and each dead letter is an audit entry.

    `published`: (version id, its routing as stored: `kyc.io.as_stored`) of the version a
    refresh has just published, delivered from memory instead of read back from its file
    (the same value: a 1.6M-row table at 10M is not read again)."""
    from engine.approval import current_version
    from engine.audit import record
    from engine.kyc.io import ROUTING_FILE, load_routing
    from engine.kyc.versions import PURPOSE, RoutingVersion, with_overrides
    from engine.versions import latest_version, version_number

    reports: list[DeliveryReport] = []
    current = current_version(ws, jurisdiction, PURPOSE)
    latest = latest_version(ws, jurisdiction, PURPOSE)
    plan: list[tuple[str, str]] = []
    if latest is not None and (latest.path / ROUTING_FILE).is_file():
        cur_no = version_number(current.version_id) if current else 0
        if (version_number(latest.version_id) or 0) > (cur_no or 0):
            plan.append((latest.version_id, OBLIGATION))
    if current is not None:
        plan.append((current.version_id, APPROVED))
    for vid, basis in plan:
        path = ws.versions_dir(jurisdiction, PURPOSE) / vid
        rv = RoutingVersion(jurisdiction, vid, path)
        if published is not None and published[0] == vid:
            stored = published[1]
        else:
            stored = load_routing(rv.path)
        routing = with_overrides(ws, jurisdiction, stored, as_of) if basis == APPROVED else stored
        report = deliver(ws, f"{jurisdiction}/{vid}", routing, ws.config.sinks, basis)
        reports.append(report)
        validity = _validity(path)
        record(
            ws,
            "kyc_routing_delivered",
            actor,
            jurisdiction=jurisdiction,
            purpose=PURPOSE,
            version_id=vid,
            basis=basis,
            trigger=trigger,
            persona_validity=validity,
            queues=report.counts,
            delivered=report.delivered,
            dead_lettered=report.dead_lettered,
        )
        for s in report.sinks:
            if s.dead_lettered:
                record(
                    ws,
                    "kyc_delivery_failed",
                    actor,
                    jurisdiction=jurisdiction,
                    purpose=PURPOSE,
                    version_id=vid,
                    basis=basis,
                    sink=s.sink,
                    dead_lettered=s.dead_lettered,
                    errors=s.errors[:10],
                )
    if plan:
        from engine.audit import checkpoint

        # Deliveries (and dead letters) matter on their own: signed now, not at the next
        # refresh, so a report or proof about this version covers them.
        checkpoint(ws)
    return reports


def _validity(path: Path) -> str | None:
    import json

    try:
        return str(json.loads((path / "manifest.json").read_bytes()).get("validity"))
    except (OSError, ValueError):
        return None


def raise_if_dead_lettered(reports: list[DeliveryReport]) -> None:
    dead = [(r, s) for r in reports for s in r.sinks if s.dead_lettered]
    if dead:
        parts = [
            f"{s.sink}: {s.dead_lettered} item(s) of {r.version_id} ({r.basis})" for r, s in dead
        ]
        raise DeliveryFailed(
            "delivery failed, dead-lettered after every retry: "
            + "; ".join(parts)
            + ". Fix the receiver and run 'pgov kyc deliver' again (idempotent)."
        )
