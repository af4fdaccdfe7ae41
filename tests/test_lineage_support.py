"""Shared builders for the lineage/audit tests (a minimal workspace, keys, a signed version).

Imported by the other test_lineage_* / test_audit_* modules; the one test here checks the
builders themselves produce a version that verifies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.workspace import Workspace
from lineage.auditlog import AuditLog
from lineage.canonical import canonical_json
from lineage.signing import SigningKeyring, TrustStore
from lineage.statement import LineagePredicate, sign_version, statement_sha256

MINIMAL_TOML = """
name = "lineage-test"
jurisdictions = ["UK"]
subjects = "crm"

[actors.analyst-uk]
roles = ["regional_analyst"]
home_region = "UK"
jurisdictions = ["UK"]

[sources.crm]
path = "data/crm.csv"
format = "csv"
key = ["customer_id"]

[sources.crm.columns]
customer_id = { type = "str", classification = "direct_identifier" }
jurisdiction = { type = "str", classification = "technical" }
"""

# An hour ago: entries written by the tests precede the ones the log stamps itself (checkpoints),
# as they would in a real workspace, so the time-order check sees a plausible log.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def entry(
    i: int,
    actor: str = "analyst-uk",
    type_: str = "refresh_requested",
    at: datetime | None = None,
) -> bytes:
    t = (at or T0 + timedelta(seconds=i)).isoformat(timespec="microseconds")
    return canonical_json({"type": type_, "actor": actor, "time": t, "details": {"i": i}})


@dataclass
class Env:
    ws: Workspace
    keyring: SigningKeyring
    audit: AuditLog

    def trust(self) -> TrustStore:
        return self.keyring.trust()


def make_workspace(root: Path) -> Env:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pgov.toml").write_text(MINIMAL_TOML, encoding="utf-8")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "crm.csv").write_text("customer_id,jurisdiction\nc1,UK\n", encoding="utf-8")
    ws = Workspace.open(root)
    kr = SigningKeyring(ws.path(ws.config.keys.signing_dir), ws.path(ws.config.keys.trust_file))
    kr.init()
    return Env(ws=ws, keyring=kr, audit=AuditLog(ws.audit_dir))


def predicate(ws_root: Path, version: str = "v0001", **over: Any) -> LineagePredicate:
    crm = ws_root / "data" / "crm.csv"
    base: dict[str, Any] = {
        "inputs": [
            {
                "name": "crm",
                "path": "data/crm.csv",
                "sha256": hashlib.sha256(crm.read_bytes()).hexdigest(),
                "rows": 1,
            }
        ],
        "policy": {
            "bundle_revision": "2026.11.1",
            "bundle_digest": "sha256:" + "ab" * 32,
            "plan_digest": hashlib.sha256(b'{"plan":1}').hexdigest(),
        },
        "parameters": {"seed": 7, "k": 4},
        "code": {"version": "0.1.0", "git_commit": None},
        "row_accounting": {"crm": {"input_rows": 1, "kept": 1}},
        "actor": "analyst-uk",
        "jurisdiction": "UK",
        "purpose": "marketing_segmentation",
        "persona_version": version,
        "predecessor": None,
        "gates": [{"name": "stability", "passed": True, "value": 0.9, "threshold": 0.75}],
        "suppression": [],
        "validity": "valid",
        "started_at": datetime.now(UTC).isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    base.update(over)
    return LineagePredicate.model_validate(base)


def make_version(env: Env, version: str = "v0001", publish: bool = True) -> Path:
    """A version directory like the store writes, signed, and (optionally) logged."""
    vdir = env.ws.versions_dir("UK", "marketing_segmentation") / version
    (vdir / "routing").mkdir(parents=True)
    (vdir / "assignments.parquet").write_bytes(b"PAR1 fake parquet bytes PAR1")
    (vdir / "personas.json").write_bytes(canonical_json({"personas": [{"id": 0}]}))
    (vdir / "plan.json").write_bytes(b'{"plan":1}\n')
    (vdir / "manifest.json").write_bytes(canonical_json({"version_id": version}))
    (vdir / "openlineage.json").write_bytes(canonical_json({"eventType": "COMPLETE"}))
    (vdir / "routing" / "EDD.json").write_bytes(b"[]")
    sign_version(vdir, predicate(env.ws.root, version), env.keyring.signer())
    if publish:
        env.audit.append(
            canonical_json(
                {
                    "type": "version_published",
                    "actor": "analyst-uk",
                    "time": datetime.now(UTC).isoformat(),
                    "details": {"version_id": version, "statement_sha256": statement_sha256(vdir)},
                }
            )
        )
    return vdir


def test_support_builds_a_version_that_verifies(tmp_path: Path) -> None:
    from lineage.statement import verify_version

    env = make_workspace(tmp_path / "ws")
    vdir = make_version(env)
    rep = verify_version(vdir, env.trust(), workspace_root=env.ws.root, audit=env.audit)
    assert rep.ok, rep.to_dict()
    assert {c.name for c in rep.checks} >= {
        "signature",
        "subjects",
        "no-extra-files",
        "inputs",
        "policy-bundle",
        "plan-digest",
        "audit-log",
    }
