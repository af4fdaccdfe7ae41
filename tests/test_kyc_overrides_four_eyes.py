"""Overrides: a reason is mandatory, authorised actors only, a downgrade out of EDD needs a
different compliance officer, the computed tier stays visible, expiry is honoured, and every
step (and refusal) lands in the audit log. CLI included."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_actor_support import enrol_actors
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import PolicyDenied, UsageError
from engine.kyc import route_facts
from engine.kyc.bundle import evaluate_ruleset
from engine.kyc.io import write_routing
from engine.kyc.overrides import apply_overrides, approve_override, load_overrides, request_override
from engine.sample.kyc_facts import facts_from_rows
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

DEFAULTS = Path(__file__).resolve().parent.parent / "engine" / "defaults" / "pgov.toml"
TODAY = datetime.now(UTC).date()
FACTS: dict[str, dict[str, object]] = {
    "tok-pep": {"pep": True},
    "tok-edd": {"country": "IR"},
    "tok-cdd": {"customer_type": "smb", "employment_type": "self_employed"},
    "tok-sdd": {},
}


def _audit(ws: Workspace) -> list[dict[str, Any]]:
    from lineage.auditlog import AuditLog

    # (checkpoints are signed after some events now that the workspace has a signing key)
    entries = [json.loads(e) for e in AuditLog(ws.audit_dir).entries()]
    return [e for e in entries if e["type"] != "checkpoint_signed"]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    shutil.copy(DEFAULTS, tmp_path / "pgov.toml")
    workspace = Workspace.open(tmp_path)
    routing = route_facts(facts_from_rows(FACTS), evaluate_ruleset(), None, TODAY, 90)
    vdir = workspace.versions_dir("EU-DE", "kyc_aml") / "v0001"
    write_routing(routing, vdir)
    (vdir / "manifest.json").write_text(
        json.dumps({"version_id": "v0001", "jurisdiction": "EU-DE", "purpose": "kyc_aml"})
    )
    _mark_current(workspace, vdir)
    enrol_actors(workspace)  # actors' credentials, so the CLI can authenticate them
    return workspace


def _mark_current(ws: Workspace, vdir: Path) -> None:
    """Make a hand-built version the approved one, as 'pgov versions approve' records it
    (pointer + audit entry + statement digest), so views that default to current see it."""
    from engine.audit import record
    from lineage.canonical import canonical_json, sha256_hex

    (vdir / "statement.dsse.json").write_bytes(b"{}")
    approval = {
        "jurisdiction": "EU-DE",
        "purpose": "kyc_aml",
        "version_id": vdir.name,
        "statement_sha256": sha256_hex(b"{}"),
        "approved_by": "compliance-deputy",
        "approved_at": "2026-11-01T00:00:00+00:00",
    }
    (vdir.parent / "CURRENT.json").write_bytes(canonical_json(approval) + b"\n")
    record(ws, "version_approved", "compliance-deputy", **approval)


def _request(ws: Workspace, token: str, tier: str, actor: str = "kyc-ops", **kw: Any) -> Any:
    from_tier = {"tok-pep": "EDD_SENIOR", "tok-edd": "EDD", "tok-cdd": "CDD", "tok-sdd": "SDD"}
    return request_override(
        ws,
        customer=token,
        jurisdiction="EU-DE",
        from_tier=from_tier[token],
        tier=tier,
        reason=kw.pop("reason", "documented: source of wealth verified, file 12"),
        actor=actor,
        **kw,
    )


def test_reason_is_mandatory(ws: Workspace) -> None:
    for reason in ("", "   "):
        with pytest.raises(UsageError):
            _request(ws, "tok-cdd", "EDD", reason=reason)
    assert load_overrides(ws) == []


def test_unauthorised_actor_is_refused_and_audited(ws: Workspace) -> None:
    with pytest.raises(PolicyDenied):
        _request(ws, "tok-cdd", "EDD", actor="analyst-eu")
    assert load_overrides(ws) == []
    assert _audit(ws)[-1]["type"] == "kyc_override_refused"


def test_authorisation_unavailable_fails_closed(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_policy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "engine.policy.decide":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_policy)
    with pytest.raises(PolicyDenied):
        _request(ws, "tok-cdd", "EDD")


def test_upgrade_is_active_at_once_and_keeps_computed_tier(ws: Workspace) -> None:
    ovr = _request(ws, "tok-cdd", "EDD")
    assert ovr.status(TODAY) == "active"
    routing = _stored(ws)
    out = apply_overrides(routing, load_overrides(ws, "EU-DE"), TODAY)
    row = out.table.filter(pl.col("customer_id") == "tok-cdd").row(0, named=True)
    assert (row["tier"], row["computed_tier"], row["system_tier"]) == ("EDD", "CDD", "CDD")
    assert row["override_id"] == ovr.id
    assert row["queue"] == "edd-review"  # re-routed for the effective tier
    assert any(r.startswith(f"MANUAL_OVERRIDE({ovr.id} CDD->EDD)") for r in row["reasons"])
    others = out.table.filter(pl.col("customer_id") != "tok-cdd")
    assert others.equals(
        routing.table.filter(pl.col("customer_id") != "tok-cdd").select(others.columns)
    )


def test_downgrade_out_of_edd_needs_a_different_compliance_officer(ws: Workspace) -> None:
    ovr = _request(ws, "tok-pep", "CDD", actor="compliance-lead")
    assert ovr.status(TODAY) == "pending"
    # Pending: nothing changes yet.
    out = apply_overrides(_stored(ws), load_overrides(ws), TODAY)
    assert out.table.filter(pl.col("customer_id") == "tok-pep")["tier"].item() == "EDD_SENIOR"
    # The same person cannot approve their own downgrade.
    with pytest.raises(PolicyDenied) as same:
        approve_override(ws, ovr.id, "compliance-lead")
    assert "kyc.four_eyes_same_person" in same.value.reasons
    # KYC operations may not approve a downgrade out of EDD: compliance_officer role needed.
    with pytest.raises(PolicyDenied) as role:
        approve_override(ws, ovr.id, "kyc-ops")
    assert "kyc.approver_role_missing" in role.value.reasons
    assert load_overrides(ws)[0].status(TODAY) == "pending"
    done = approve_override(ws, ovr.id, "compliance-deputy")
    assert done.status(TODAY) == "active" and done.approved_by == "compliance-deputy"
    out = apply_overrides(_stored(ws), load_overrides(ws), TODAY)
    row = out.table.filter(pl.col("customer_id") == "tok-pep").row(0, named=True)
    assert (row["tier"], row["computed_tier"]) == ("CDD", "EDD_SENIOR")
    # A second approval is refused: it is no longer pending.
    with pytest.raises(UsageError):
        approve_override(ws, ovr.id, "compliance-deputy")
    types = [e["type"] for e in _audit(ws)]
    assert types.count("kyc_override_refused") == 2
    assert types[-1] == "kyc_override_approved"
    assert "kyc_override_requested" in types
    # The audit log carries a digest of the reason, never the text.
    requested = next(e for e in _audit(ws) if e["type"] == "kyc_override_requested")
    assert "reason" not in requested["details"] and len(requested["details"]["reason_sha256"]) == 64


def test_downgrade_within_low_tiers_needs_no_second_person(ws: Workspace) -> None:
    assert _request(ws, "tok-cdd", "SDD").status(TODAY) == "active"


def test_expiry_is_honoured(ws: Workspace) -> None:
    ovr = _request(ws, "tok-cdd", "EDD", expires=TODAY + timedelta(days=5))
    assert ovr.status(TODAY + timedelta(days=5)) == "active"
    assert ovr.status(TODAY + timedelta(days=6)) == "expired"
    later = apply_overrides(_stored(ws), load_overrides(ws), TODAY + timedelta(days=6))
    row = later.table.filter(pl.col("customer_id") == "tok-cdd").row(0, named=True)
    assert row["tier"] == "CDD" and row["override_id"] is None
    with pytest.raises(UsageError):
        _request(ws, "tok-cdd", "EDD", expires=TODAY - timedelta(days=1))


def test_an_expired_refresh_time_override_drops_out_on_read(ws: Workspace) -> None:
    _request(ws, "tok-cdd", "EDD", expires=TODAY + timedelta(days=1))
    applied = apply_overrides(_stored(ws), load_overrides(ws), TODAY)
    again = apply_overrides(applied, load_overrides(ws), TODAY + timedelta(days=2))
    row = again.table.filter(pl.col("customer_id") == "tok-cdd").row(0, named=True)
    assert (row["tier"], row["queue"], row["override_id"]) == ("CDD", "standard-review", None)
    assert not any(r.startswith("MANUAL_OVERRIDE") for r in row["reasons"])


def test_corrupt_override_log_stops_everything(ws: Workspace) -> None:
    _request(ws, "tok-cdd", "EDD")
    with (ws.kyc_dir / "overrides.jsonl").open("a") as fh:
        fh.write("{not json\n")
    from engine.errors import BadInputError

    with pytest.raises(BadInputError):
        load_overrides(ws)


def _stored(ws: Workspace) -> Any:
    from engine.kyc.io import load_routing

    return load_routing(ws.versions_dir("EU-DE", "kyc_aml") / "v0001")


# ---------------------------------------------------------------- CLI


OPS = ("--actor", "kyc-ops")


def _cli(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(app, ["kyc", *args, "-w", str(ws.root)])


def test_cli_override_approve_and_queue(ws: Workspace) -> None:
    res = _cli(
        ws,
        "override",
        "--customer",
        "tok-edd",
        "--tier",
        "CDD",
        "--reason",
        "false positive on country",
        "--actor",
        "kyc-ops",
        "--json",
    )
    assert res.exit_code == 0, res.output
    ovr = json.loads(res.stdout)
    assert ovr["status"] == "pending" and ovr["from_tier"] == "EDD"
    same = _cli(ws, "approve", "--override", ovr["id"], "--actor", "kyc-ops")
    assert same.exit_code == 3  # policy denied: same person
    ok = _cli(ws, "approve", "--override", ovr["id"], "--actor", "compliance-lead", "--json")
    assert ok.exit_code == 0, ok.output
    queue = _cli(ws, "queue", "standard-review", "--jurisdiction", "EU-DE", "--json", *OPS)
    assert queue.exit_code == 0, queue.output
    items = json.loads(queue.stdout)["items"]
    # Same SLA date; the overridden customer keeps the earlier (EDD) review date, so first.
    assert [i["customer_id"] for i in items] == ["tok-edd", "tok-cdd"]
    edd = next(i for i in items if i["customer_id"] == "tok-edd")
    assert (edd["tier"], edd["computed_tier"]) == ("CDD", "EDD")
    keys = [(i["sla_due"], i["review_due"]) for i in items]
    assert keys == sorted(keys)
    show = _cli(ws, "show", "--customer", "tok-edd", "--json", *OPS)
    shown = json.loads(show.stdout)
    assert shown["overrides"][0]["approved_by"] == "compliance-lead"
    assert shown["version"] == "v0001"


def test_cli_missing_reason_is_refused(ws: Workspace) -> None:
    res = _cli(
        ws,
        "override",
        "--customer",
        "tok-cdd",
        "--tier",
        "EDD",
        "--reason",
        " ",
        "--actor",
        "kyc-ops",
    )
    assert res.exit_code == 2
    missing = _cli(ws, "override", "--customer", "tok-cdd", "--tier", "EDD", "--actor", "kyc-ops")
    assert missing.exit_code != 0
    assert load_overrides(ws) == []


def test_cli_queue_human_output_and_unknown_version(ws: Workspace) -> None:
    res = _cli(ws, "queue", "edd-senior-approval", *OPS)
    assert res.exit_code == 0
    assert "tok-pep" in res.stdout and "PEP(floor:EDD_SENIOR)" in res.stdout
    bad = _cli(ws, "queue", "edd-review", "--jurisdiction", "EU-DE", "--version", "v0009", *OPS)
    assert bad.exit_code == 5
    unknown = _cli(ws, "show", "--customer", "tok-nobody", *OPS)
    assert unknown.exit_code == 5
    typo = _cli(ws, "queue", "edd-reveiw", *OPS)
    assert typo.exit_code == 2 and "edd-review" in typo.stderr


def test_iso_dates_only(ws: Workspace) -> None:
    res = _cli(
        ws,
        "override",
        "--customer",
        "tok-cdd",
        "--tier",
        "EDD",
        "--reason",
        "r",
        "--actor",
        "kyc-ops",
        "--expires",
        "next week",
    )
    assert res.exit_code == 2
    assert date.fromisoformat(TODAY.isoformat()) == TODAY


def test_kyc_views_are_policy_decisions_per_jurisdiction(ws: Workspace) -> None:
    # Analysts and engineers have no KYC view; compliance reads everywhere.
    for actor in ("analyst-eu", "data-engineer", "nobody"):
        for args in (("queue", "edd-review"), ("show", "--customer", "tok-edd"), ("overrides",)):
            res = _cli(ws, *args, "--actor", actor)
            assert res.exit_code == 3, (actor, args, res.output)
    assert _cli(ws, "queue", "edd-review", "--actor", "compliance-lead").exit_code == 0
    assert _cli(ws, "overrides", "--actor", "kyc-ops", "-j", "EU-DE").exit_code == 0
    # --actor is required: a view is never anonymous.
    assert _cli(ws, "queue", "edd-review").exit_code == 2
    log = AuditLog(ws.audit_dir)
    viewed = [
        e for e in (json.loads(log.entry(i)) for i in range(log.size()))
        if e["type"] == "kyc_queue_viewed"
    ]  # fmt: skip
    assert [e["actor"] for e in viewed] == ["compliance-lead"]
    assert viewed[0]["details"]["queue"] == "edd-review"
