"""Every way of tampering with the audit log is detected with a specific message, and the
CLI exits with VERIFICATION_FAILED (4)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_lineage_support import Env, entry, make_workspace
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import ExitCode, VerificationFailed
from lineage.auditlog import MAGIC, AuditLog, verify_inclusion_proof
from lineage.merkle import leaf_hash

runner = CliRunner()
ORIGIN = "personagov/lineage-test"


@pytest.fixture()
def env(tmp_path: Path) -> Env:
    """A log of 10 entries with checkpoints at 5 and 11 (each checkpoint logs itself)."""
    e = make_workspace(tmp_path / "ws")
    e.audit.append_many([entry(i, at=datetime.now(UTC)) for i in range(5)])
    e.audit.checkpoint(e.keyring.signer(), ORIGIN)  # size 5, then entry 5 records it
    e.audit.append_many([entry(i, at=datetime.now(UTC)) for i in range(6, 11)])
    e.audit.checkpoint(e.keyring.signer(), ORIGIN)  # size 11, entry 11 records it
    return e


def _failures(env: Env) -> dict[str, str]:
    rep = env.audit.verify(env.trust())
    out: dict[str, str] = {}
    for c in rep.failures:
        out[c.name] = f"{out[c.name]} | {c.detail}" if c.name in out else c.detail
    return out


def _flip(path: Path, i: int) -> None:
    """Flip one bit in place (no truncate-and-rewrite: that forces a flush per call)."""
    with open(path, "r+b") as f:
        f.seek(i)
        b = f.read(1)
        f.seek(i)
        f.write(bytes([b[0] ^ 0x01]))


def _rewrite(log: AuditLog, entries: list[bytes]) -> None:
    """What an attacker with write access does: a well-formed log with other contents."""
    body = b"".join(len(e).to_bytes(4, "big") + e + leaf_hash(e) for e in entries)
    log.log_path.write_bytes(MAGIC + body)
    log.cache_path.unlink(missing_ok=True)


def _cli_verify(env: Env) -> tuple[int, str]:
    res = runner.invoke(app, ["audit", "verify", "-w", str(env.ws.root)])
    return res.exit_code, res.output


def test_an_untouched_log_verifies(env: Env) -> None:
    assert _failures(env) == {}
    code, out = _cli_verify(env)
    assert code == 0 and "audit log verified" in out


def test_flipping_any_byte_of_the_log_is_detected(env: Env) -> None:
    good = env.audit.log_path.read_bytes()
    for i in range(len(good)):
        _flip(env.audit.log_path, i)
        assert _failures(env), f"flip at byte {i} went unnoticed"
        _flip(env.audit.log_path, i)
    assert env.audit.log_path.read_bytes() == good
    assert _failures(env) == {}


def test_an_altered_entry_with_a_recomputed_leaf_hash_breaks_the_checkpoints(env: Env) -> None:
    entries = list(env.audit.entries())
    entries[2] = entries[2].replace(b'"i":2', b'"i":7')
    _rewrite(env.audit, entries)
    f = _failures(env)
    assert "checkpoint 5" in f["checkpoint-consistency"]
    code, out = _cli_verify(env)
    assert code == ExitCode.VERIFICATION_FAILED and "checkpoint-consistency" in out


def test_a_deleted_entry_is_detected(env: Env) -> None:
    entries = list(env.audit.entries())
    del entries[3]
    _rewrite(env.audit, entries)
    assert "different root" in _failures(env)["checkpoint-consistency"]


def test_reordered_entries_are_detected(env: Env) -> None:
    entries = list(env.audit.entries())
    entries[1], entries[2] = entries[2], entries[1]
    _rewrite(env.audit, entries)
    assert "reordered" in _failures(env)["checkpoint-consistency"]


def test_a_truncated_log_is_detected(env: Env) -> None:
    entries = list(env.audit.entries())
    _rewrite(env.audit, entries[:8])
    assert "covers more entries than the log holds" in _failures(env)["checkpoint-consistency"]


def test_a_duplicated_entry_is_detected(env: Env) -> None:
    entries = list(env.audit.entries())
    _rewrite(env.audit, [*entries, entries[4]])
    assert "duplicates entry 4" in _failures(env)["no-duplicates"]


def test_flipping_any_byte_of_a_checkpoint_is_detected(env: Env) -> None:
    cp = env.audit.checkpoint_dir / "11.txt"
    good = cp.read_bytes()
    for i in range(len(good)):
        _flip(cp, i)
        assert _failures(env), f"flip at byte {i} of the checkpoint went unnoticed"
        _flip(cp, i)
    assert cp.read_bytes() == good
    assert _failures(env) == {}


def test_replaying_an_old_checkpoint_as_latest_is_detected(env: Env) -> None:
    latest = env.audit.checkpoint_dir / "latest"
    shutil.copy(env.audit.checkpoint_dir / "5.txt", latest)
    assert "replayed" in _failures(env)["latest-checkpoint"]
    # Deleting the newer checkpoint file too does not help: the log records it was signed.
    (env.audit.checkpoint_dir / "11.txt").unlink()
    assert "replayed" in _failures(env)["latest-checkpoint"]
    code, out = _cli_verify(env)
    assert code == ExitCode.VERIFICATION_FAILED and "replayed" in out


def test_a_wrong_key_is_refused(env: Env, tmp_path: Path) -> None:
    other = make_workspace(tmp_path / "other")
    rep = env.audit.verify(other.trust())
    assert (
        "no signature by a trusted key"
        in {c.name: c.detail for c in rep.failures}["checkpoint-signature"]
    )


def test_a_key_revoked_before_the_checkpoint_time_is_refused(env: Env) -> None:
    kid = env.keyring.signer().key_id
    env.keyring.revoke(kid, datetime.now(UTC) - timedelta(hours=1))
    assert "after its revocation" in _failures(env)["checkpoint-signature"]


def test_a_key_revoked_after_the_checkpoints_still_verifies_them(env: Env) -> None:
    kid = env.keyring.signer().key_id
    env.keyring.revoke(kid, datetime.now(UTC) + timedelta(hours=1))
    assert _failures(env) == {}


def test_rotation_keeps_old_checkpoints_verifiable(env: Env) -> None:
    env.keyring.rotate()
    env.audit.append(entry(50, at=datetime.now(UTC)))
    env.audit.checkpoint(env.keyring.signer(), ORIGIN)
    assert _failures(env) == {}


def test_inclusion_proofs_verify_offline_and_refuse_tampering(env: Env) -> None:
    proof = env.audit.prove_inclusion(7)
    assert proof["tree_size"] == 11 and len(proof["proof"]) == 4
    assert json.loads(__import__("base64").b64decode(proof["entry"]))["details"]["i"] == 7
    trust = env.trust()
    assert verify_inclusion_proof(proof, trust)["details"]["i"] == 7
    for field, value in [
        ("index", 6),
        ("tree_size", 12),
        ("entry", __import__("base64").b64encode(entry(99)).decode()),
        ("proof", proof["proof"][:-1]),
        ("checkpoint", proof["checkpoint"].replace("\n11\n", "\n12\n")),
        ("leaf_hash", "00" * 32),
    ]:
        with pytest.raises(VerificationFailed):
            verify_inclusion_proof({**proof, field: value}, trust)
    with pytest.raises(VerificationFailed, match="field"):
        verify_inclusion_proof({**proof, "index": "7"}, trust)


def test_cli_prove_and_verify_proof_round_trip_and_fail_closed(env: Env, tmp_path: Path) -> None:
    ws = str(env.ws.root)
    out = tmp_path / "proof.json"
    res = runner.invoke(app, ["audit", "prove", "--entry", "3", "--out", str(out), "-w", ws])
    assert res.exit_code == 0, res.output
    trust = str(env.ws.path(env.ws.config.keys.trust_file))
    ok = runner.invoke(app, ["audit", "verify-proof", str(out), "--trust", trust])
    assert ok.exit_code == 0 and "proof verified" in ok.output
    doc = json.loads(out.read_text())
    doc["index"] = 4
    out.write_text(json.dumps(doc))
    bad = runner.invoke(app, ["audit", "verify-proof", str(out), "--trust", trust])
    assert bad.exit_code == ExitCode.VERIFICATION_FAILED and "inclusion proof" in bad.output
    # Entry 11 (the second checkpoint's own record) exists but no checkpoint covers it yet.
    uncovered = runner.invoke(app, ["audit", "prove", "--entry", "11", "-w", ws])
    assert uncovered.exit_code == ExitCode.USAGE and "checkpoint" in uncovered.output
    # An entry the log does not hold is not found (exit 5), not "checkpoint first".
    missing = runner.invoke(app, ["audit", "prove", "--entry", "40", "-w", ws])
    assert missing.exit_code == ExitCode.BAD_INPUT and "does not exist" in missing.output


def test_cli_query_checkpoint_and_repair(env: Env) -> None:
    ws = str(env.ws.root)
    res = runner.invoke(app, ["audit", "query", "--type", "checkpoint_signed", "--json", "-w", ws])
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    assert [r["details"]["size"] for r in rows] == [5, 11]
    res = runner.invoke(app, ["audit", "query", "--since", "2026-11-01", "-w", ws])
    assert res.exit_code == 0 and "entries" in res.output
    res = runner.invoke(app, ["audit", "checkpoint", "-w", ws])
    assert res.exit_code == 0 and "checkpoints/12.txt" in res.output.replace("\n", "")
    res = runner.invoke(app, ["audit", "repair", "-w", ws])
    assert res.exit_code == 0 and "nothing to repair" in res.output


def test_no_new_checkpoint_is_signed_over_a_rewritten_history(env: Env) -> None:
    entries = list(env.audit.entries())
    entries[1], entries[2] = entries[2], entries[1]
    _rewrite(env.audit, entries)
    with pytest.raises(VerificationFailed, match="refusing to sign"):
        env.audit.checkpoint(env.keyring.signer(), ORIGIN)
    assert not (env.audit.checkpoint_dir / "12.txt").exists()
