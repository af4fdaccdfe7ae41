"""The whole actor x action x jurisdiction matrix (issue 14): every cell's CLI outcome is the
policy's answer, and every denial is in the audit log.

The sample workspace's actors plus actors scoped to a single region attempt every governed
action in every jurisdiction that has a published kyc_aml version. The expected answer comes
from the policy itself (`authorize` / `evaluate`) plus the rules beside it (four eyes), asked
just before each attempt; the attempt goes through the real CLI.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import Purpose, Role
from engine.errors import PolicyDenied
from engine.kyc.overrides import request_override
from engine.policy.decide import authorize, evaluate
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

runner = CliRunner()
AS_OF = "2026-11-01"
JURISDICTIONS = ["EU-DE", "UK", "SG"]
REGIONAL = """
[actors.kyc-ops-uk]
roles = ["kyc_operations"]
home_region = "UK"
jurisdictions = ["UK"]

[actors.kyc-ops-sg]
roles = ["kyc_operations"]
home_region = "SG"
jurisdictions = ["SG"]

[actors.compliance-sg]
roles = ["compliance_officer"]
home_region = "SG"
jurisdictions = ["SG"]
"""
DENIALS = {"access_denied", "refresh_denied", "kyc_override_refused", "key_change_refused"}


def _pgov(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def _denials(log: AuditLog, since: int, actor: str) -> list[dict[str, Any]]:
    out = []
    for e in log.query(actor=actor):
        if e["index"] < since:
            continue
        refused_reid = e["type"] == "reidentification" and e["details"]["outcome"] == "refused"
        if e["type"] in DENIALS or refused_reid:
            out.append(e)
    return out


def _allowed(ws: Workspace, actor: str, action: str, resource: dict[str, Any]) -> bool:
    try:
        authorize(ws, actor, action, resource)
    except PolicyDenied:
        return False
    return True


def _tokens(ws: Workspace, j: str) -> dict[str, str]:
    vdir = sorted((ws.versions_dir(j, "kyc_aml")).glob("v*"))[-1]
    table = pl.read_parquet(vdir / "routing.parquet")
    by_tier = {}
    for tier in ("CDD", "SDD", "EDD"):
        hit = table.filter(pl.col("tier") == tier)
        if hit.height:
            by_tier[tier] = str(hit["customer_id"][0])
    return by_tier


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("matrix") / "ws"
    assert _pgov("init", str(root), "--sample", "1500")[0] == 0
    cfg = root / "pgov.toml"
    cfg.write_text(cfg.read_text() + REGIONAL)
    assert _pgov("keys", "init", "-w", str(root))[0] == 0
    for j in JURISDICTIONS:
        code, out = _pgov(
            "refresh", "-j", j, "-p", "kyc_aml", "-a", "kyc-ops", "--as-of", AS_OF, "-w", str(root)
        )
        assert code in (0, 7), out[-2000:]
    return root


def _cell(ws: Workspace, actor: str, action: str, j: str) -> tuple[bool, list[str]]:
    """(expected allowed, CLI arguments) for one cell, asked of the policy right now."""
    w = ["-w", str(ws.root)]
    toks = _tokens(ws, j)
    token = toks.get("CDD") or next(iter(toks.values()))
    read = _allowed(ws, actor, "kyc_read", {"jurisdiction": j, "purpose": "kyc_aml"})
    if action == "kyc queue":
        return read, [
            "kyc",
            "queue",
            "standard-review",
            "-j",
            j,
            "--version",
            "latest",
            "--actor",
            actor,
            *w,
        ]
    if action == "kyc show":
        return read, ["kyc", "show", "--customer", token, "-j", j, "--actor", actor, *w]
    if action == "kyc deliver":
        ok = _allowed(ws, actor, "kyc_deliver", {"jurisdiction": j, "purpose": "kyc_aml"})
        return ok, ["kyc", "deliver", "-j", j, "--actor", actor, *w]
    if action == "kyc override":
        resource = {"jurisdiction": j, "domain": "kyc", "customer": token, "tier": "EDD_SENIOR"}
        ok = read and _allowed(ws, actor, "kyc_override", {**resource, "from_tier": "CDD"})
        args = ["kyc", "override", "--customer", token, "--tier", "EDD_SENIOR"]
        return ok, [*args, "--reason", "matrix", "-j", j, "--actor", actor, *w]
    if action == "kyc approve":
        edd = toks["EDD"]
        ovr = request_override(
            ws, customer=edd, jurisdiction=j, from_tier="EDD", tier="CDD", reason="matrix",
            actor="kyc-ops", version=f"{j}/kyc_aml/latest",
        )  # fmt: skip
        spec = ws.config.actors[actor]
        resource = {
            "jurisdiction": j, "domain": "kyc", "customer": edd, "tier": "CDD",
            "from_tier": "EDD", "requested_by": "kyc-ops",
        }  # fmt: skip
        ok = (
            actor != "kyc-ops"
            and Role.COMPLIANCE_OFFICER in spec.roles
            and _allowed(ws, actor, "kyc_approve", resource)
        )
        return ok, ["kyc", "approve", "--override", ovr.id, "--actor", actor, *w]
    if action == "reidentify":
        ok = _allowed(
            ws, actor, "reidentify", {"domain": "kyc", "column": "customer_id", "jurisdiction": j}
        )
        return ok, [
            "reidentify",
            "--token",
            token,
            "--reason",
            "matrix access check",
            "--actor",
            actor,
            *w,
        ]
    if action == "versions approve":
        latest = sorted(ws.versions_dir(j, "kyc_aml").glob("v*"))[-1]
        producer = json.loads((latest / "manifest.json").read_bytes())["actor"]
        ok = actor != producer and _allowed(
            ws, actor, "approve_version", {"jurisdiction": j, "purpose": "kyc_aml"}
        )
        return ok, ["versions", "approve", f"{j}/kyc_aml/latest", "--actor", actor, *w]
    if action == "refresh":
        req = RefreshRequest(
            actor=actor, jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date.fromisoformat(AS_OF)
        )
        ok = evaluate(ws, req).allowed
        return ok, ["refresh", "-j", j, "-p", "kyc_aml", "-a", actor, "--as-of", AS_OF, *w]
    raise AssertionError(action)


ACTIONS = [
    "kyc queue",
    "kyc show",
    "kyc deliver",
    "kyc override",
    "kyc approve",
    "reidentify",
    "versions approve",
    "refresh",
]


@pytest.mark.slow
def test_every_cell_matches_the_policy_and_every_denial_is_logged(workspace: Path) -> None:
    ws = Workspace.open(workspace)
    log = AuditLog(ws.audit_dir)
    mismatches: list[str] = []
    cells = denied = 0
    for j in JURISDICTIONS:
        for action in ACTIONS:
            for actor in sorted(ws.config.actors):
                expected, args = _cell(ws, actor, action, j)
                before = log.size()
                code, out = _pgov(*args)
                logged = _denials(log, before, actor)
                cells += 1
                cell = f"{actor} x {action} x {j}"
                if expected:
                    if code == 3 or logged:
                        mismatches.append(f"{cell}: policy allows, got exit {code} {out[-300:]}")
                    elif code not in (0, 7):
                        mismatches.append(f"{cell}: allowed but failed, exit {code} {out[-300:]}")
                else:
                    denied += 1
                    if code != 3:
                        mismatches.append(f"{cell}: policy denies, got exit {code}")
                    if not logged:
                        mismatches.append(f"{cell}: denied but no denial in the audit log")
    assert not mismatches, "\n".join(mismatches[:40])
    assert cells == len(JURISDICTIONS) * len(ACTIONS) * len(ws.config.actors)
    assert 0 < denied < cells


@pytest.mark.slow
def test_key_rotation_denials_are_logged(workspace: Path) -> None:
    ws = Workspace.open(workspace)
    log = AuditLog(ws.audit_dir)
    for actor in sorted(ws.config.actors):
        ok = _allowed(ws, actor, "rotate_keys", {"operation": "rotate_signing"})
        before = log.size()
        code, _ = _pgov("keys", "rotate", "--signing", "--actor", actor, "-w", str(ws.root))
        assert (code == 0) if ok else (code == 3), actor
        assert bool(_denials(log, before, actor)) == (not ok), actor
