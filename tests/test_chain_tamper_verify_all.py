"""`pgov lineage verify --all` catches chain-level tampering (issue 14): every case exits 4
with a one-line reason, on a real workspace of refreshed versions.

Byte-level tampering inside one version is covered by test_lineage_version_verify; these
are the attacks that keep every single file valid: deleting, replaying, swapping or copying
whole versions, rolling the log back, forging or deleting override and quarantine records.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.kyc.overrides import load_overrides
from engine.workspace import Workspace
from lineage.auditlog import MAGIC, AuditLog
from lineage.merkle import leaf_hash

runner = CliRunner()
AS_OF = "2026-11-01"
KYC = "kyc_aml"
MKT = "marketing_segmentation"


def _pgov(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def _refresh(root: Path, j: str, p: str, actor: str) -> None:
    code, out = _pgov("refresh", "-j", j, "-p", p, "-a", actor, "--as-of", AS_OF, "-w", str(root))
    assert code in (0, 7), out[-2000:]


@pytest.fixture(scope="module")
def _published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chains") / "ws"
    code, out = _pgov("init", str(root), "--sample", "1500")
    assert code == 0, out
    code, out = _pgov("keys", "init", "-w", str(root))
    assert code == 0, out
    _refresh(root, "EU-DE", KYC, "compliance-lead")
    _refresh(root, "EU-DE", KYC, "compliance-lead")
    _refresh(root, "UK", KYC, "compliance-lead")
    _refresh(root, "EU-DE", MKT, "analyst-eu")
    return root


@pytest.fixture()
def ws(_published: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(_published, dest)
    return dest


def _verify(root: Path, *extra: str) -> tuple[int, list[str]]:
    code, out = _pgov("lineage", "verify", "--all", "-w", str(root), *extra)
    return code, [line for line in out.splitlines() if line.startswith("FAIL ")]


def _chain(root: Path, j: str, p: str) -> Path:
    return root / "versions" / j / p


def test_an_untouched_workspace_verifies(ws: Path) -> None:
    code, fails = _verify(ws)
    assert (code, fails) == (0, [])


def _delete_older(root: Path) -> None:
    shutil.rmtree(_chain(root, "EU-DE", KYC) / "v0001")


def _delete_latest(root: Path) -> None:
    shutil.rmtree(_chain(root, "EU-DE", KYC) / "v0002")


def _delete_chain(root: Path) -> None:
    shutil.rmtree(_chain(root, "UK", KYC))


def _replay_as_v2(root: Path) -> None:
    c = _chain(root, "EU-DE", KYC)
    shutil.rmtree(c / "v0002")
    shutil.copytree(c / "v0001", c / "v0002")


def _replay_as_v3(root: Path) -> None:
    c = _chain(root, "EU-DE", KYC)
    shutil.copytree(c / "v0001", c / "v0003")


def _swap(root: Path) -> None:
    c = _chain(root, "EU-DE", KYC)
    (c / "v0001").rename(c / "tmp")
    (c / "v0002").rename(c / "v0001")
    (c / "tmp").rename(c / "v0002")


def _copy_across_jurisdictions(root: Path) -> None:
    shutil.copytree(_chain(root, "EU-DE", KYC) / "v0001", _chain(root, "UK", KYC) / "v0002")


def _copy_across_purposes(root: Path) -> None:
    shutil.copytree(_chain(root, "EU-DE", KYC) / "v0002", _chain(root, "EU-DE", MKT) / "v0002")


def _edit_quarantine_report(root: Path) -> None:
    report = next((root / "quarantine").rglob("report.json"))
    report.write_text(report.read_text().replace('"counts"', '"counts" ', 1))


def _flip_sealed_blob(root: Path) -> None:
    blob = next((root / "quarantine").rglob("*.rows.sealed"))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "delete an older version": (_delete_older, "EU-DE/kyc_aml/v0001"),
    "delete the latest version": (_delete_latest, "EU-DE/kyc_aml/v0002"),
    "delete a whole chain": (_delete_chain, "UK/kyc_aml/v0001"),
    "replay v0001 as v0002": (_replay_as_v2, "EU-DE/kyc_aml/v0002"),
    "replay v0001 as a new v0003": (_replay_as_v3, "EU-DE/kyc_aml/v0003"),
    "swap v0001 and v0002": (_swap, "EU-DE/kyc_aml/v0001"),
    "copy EU-DE's version into UK": (_copy_across_jurisdictions, "UK/kyc_aml/v0002"),
    "copy a kyc version into marketing": (_copy_across_purposes, f"EU-DE/{MKT}/v0002"),
    "edit a quarantine report": (_edit_quarantine_report, "report.json"),
    "flip a byte in a sealed quarantine blob": (_flip_sealed_blob, ".rows.sealed"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_chain_tamper_is_caught_with_exit_4_and_one_line_each(ws: Path, case: str) -> None:
    tamper, named = CASES[case]
    tamper(ws)
    code, fails = _verify(ws)
    assert code == 4, (case, fails)
    assert fails, case
    assert any(named in f for f in fails), (case, fails)
    assert all("\n" not in f for f in fails)


def _edd_token(root: Path) -> str:
    table = pl.read_parquet(_chain(root, "EU-DE", KYC) / "v0002" / "routing.parquet")
    return str(table.filter(pl.col("tier") == "EDD")["customer_id"][0])


def _pending_override(root: Path) -> str:
    code, out = _pgov(
        "kyc", "override", "--customer", _edd_token(root), "--tier", "CDD",
        "--reason", "documented false positive", "--actor", "kyc-ops",
        "-j", "EU-DE", "--json", "-w", str(root),
    )  # fmt: skip
    assert code == 0, out
    ovr = json.loads(out)
    assert ovr["status"] == "pending"
    return str(ovr["id"])


def test_a_forged_override_approval_line_fails_verify_and_takes_no_effect(ws: Path) -> None:
    oid = _pending_override(ws)
    assert _verify(ws) == (0, [])
    forged = {"actor": "compliance-deputy", "at": "2026-11-30T10:00:00Z", "event": "approved"}
    with (ws / "kyc" / "overrides.jsonl").open("a") as fh:
        fh.write(json.dumps({**forged, "id": oid}) + "\n")
    [ovr] = load_overrides(Workspace.open(ws), "EU-DE")
    assert ovr.approved_by is None  # still pending: the line has no audit entry
    code, fails = _verify(ws)
    assert code == 4 and any("no audit entry" in f and oid in f for f in fails), fails


def test_a_deleted_override_log_fails_verify(ws: Path) -> None:
    oid = _pending_override(ws)
    (ws / "kyc" / "overrides.jsonl").unlink()
    code, fails = _verify(ws)
    assert code == 4 and any(oid in f and "deleted" in f for f in fails), fails


def test_a_log_rolled_back_to_an_old_checkpoint_is_caught_by_the_pinned_checkpoint(
    ws: Path, tmp_path: Path
) -> None:
    pin = tmp_path / "verifier" / "pgov.checkpoint"  # the verifier's own, outside the workspace
    assert _verify(ws, "--pin", str(pin)) == (0, [])
    assert pin.is_file()
    audit = ws / "audit"
    cps = sorted(int(p.stem) for p in (audit / "checkpoints").glob("*.txt"))
    entries = list(AuditLog(audit).entries())
    first_v2 = next(
        i
        for i, e in enumerate(entries)
        if b'"version_published"' in e and b'"v0002"' in e and b"EU-DE" in e
    )
    # Roll back to the checkpoint before EU-DE's v0002 and delete what was published since.
    old = max(s for s in cps if s <= first_v2)
    kept = entries[:old]
    (audit / "log.bin").write_bytes(
        MAGIC + b"".join(struct.pack(">I", len(e)) + e + leaf_hash(e) for e in kept)
    )
    (audit / "leaves.bin").unlink()
    for s in cps:
        if s > old:
            (audit / "checkpoints" / f"{s}.txt").unlink()
    shutil.copy(audit / "checkpoints" / f"{old}.txt", audit / "checkpoints" / "latest")
    published = set()
    for e in kept:
        doc = json.loads(e)
        if doc["type"] == "version_published":
            d = doc["details"]
            published.add((d["jurisdiction"], d["purpose"], d["version_id"]))
    for vdir in list((ws / "versions").glob("*/*/v*")):
        if (vdir.parent.parent.name, vdir.parent.name, vdir.name) not in published:
            shutil.rmtree(vdir)
    # Without the pin the rolled-back workspace is consistent with itself...
    assert _verify(ws) == (0, [])
    # ...the verifier that remembers what it saw is not fooled.
    code, fails = _verify(ws, "--pin", str(pin))
    assert code == 4 and any("rolled back" in f for f in fails), fails


def test_an_injected_key_passes_workspace_trust_but_not_a_pinned_trust_file(
    ws: Path, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from lineage.canonical import canonical_json
    from lineage.signing import Ed25519Signer, TrustedKey, TrustStore, key_id_of

    pinned = tmp_path / "trust.json"
    shutil.copy(ws / "keys" / "trust.json", pinned)
    # The attacker adds their own key to the workspace's trust file, logs, and signs.
    sk = Ed25519PrivateKey.generate()
    signer = Ed25519Signer(key_id_of(sk.public_key().public_bytes_raw()), sk)
    store = TrustStore.load(ws / "keys" / "trust.json")
    mine = TrustedKey(signer.key_id, signer.public_raw, datetime.now(UTC), None)
    doc = json.loads(store.to_json())
    doc["keys"].append(mine.to_record().model_dump())
    (ws / "keys" / "trust.json").write_text(json.dumps(doc))
    log = AuditLog(ws / "audit")
    forged = {"type": "note", "actor": "x", "time": datetime.now(UTC).isoformat(), "details": {}}
    log.append(canonical_json(forged))
    log.checkpoint(signer, origin="personagov/personagov")
    code, out = _pgov("lineage", "verify", "--all", "-w", str(ws))
    assert code == 0 and "trusting only the keys found in the workspace" in out
    code, fails = _verify(ws, "--trust", str(pinned))
    assert code == 4 and any("checkpoint" in f for f in fails), fails
