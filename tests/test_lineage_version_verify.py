"""verify_version and `pgov lineage verify/show`: each tamper names its check and exits 4."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_lineage_support import Env, make_version, make_workspace, predicate
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import ExitCode
from lineage.canonical import canonical_json
from lineage.dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from lineage.statement import (
    PREDICATE_TYPE,
    STATEMENT_FILE,
    STATEMENT_TYPE,
    sign_version,
    verify_version,
)

runner = CliRunner()


@pytest.fixture()
def env(tmp_path: Path) -> Env:
    return make_workspace(tmp_path / "ws")


def _failed(env: Env, vdir: Path) -> dict[str, str]:
    rep = verify_version(vdir, env.trust(), workspace_root=env.ws.root, audit=env.audit)
    return {c.name: c.detail for c in rep.failures}


def test_statement_is_in_toto_v1_over_every_file_but_the_envelope(env: Env) -> None:
    vdir = make_version(env)
    doc = json.loads(vdir.joinpath(STATEMENT_FILE).read_bytes())
    assert doc["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    import base64

    st = json.loads(base64.b64decode(doc["payload"]))
    assert st["_type"] == STATEMENT_TYPE and st["predicateType"] == PREDICATE_TYPE
    names = [s["name"] for s in st["subject"]]
    assert names == sorted(names)
    assert STATEMENT_FILE not in names and "routing/EDD.json" in names
    assert st["predicate"]["policy"]["bundle_digest"].startswith("sha256:")


def test_a_clean_version_passes_every_check(env: Env) -> None:
    vdir = make_version(env)
    assert _failed(env, vdir) == {}


def test_flipping_a_byte_in_a_subject_file_fails_subjects(env: Env) -> None:
    vdir = make_version(env)
    p = vdir / "personas.json"
    data = bytearray(p.read_bytes())
    data[3] ^= 1
    p.write_bytes(bytes(data))
    failed = _failed(env, vdir)
    assert "personas.json" in failed["subjects"] and "altered" in failed["subjects"]


def test_flipping_any_byte_of_the_envelope_fails_signature(env: Env) -> None:
    vdir = make_version(env)
    env_path = vdir / STATEMENT_FILE
    good = env_path.read_bytes()
    for i in range(0, len(good), max(1, len(good) // 97)):
        env_path.write_bytes(good[:i] + bytes([good[i] ^ 1]) + good[i + 1 :])
        assert "signature" in _failed(env, vdir), i
    env_path.write_bytes(good)
    assert _failed(env, vdir) == {}


def test_extra_and_missing_files_are_named(env: Env) -> None:
    vdir = make_version(env)
    (vdir / "smuggled.csv").write_text("x")
    assert "smuggled.csv" in _failed(env, vdir)["no-extra-files"]
    (vdir / "smuggled.csv").unlink()
    (vdir / "routing" / "EDD.json").unlink()
    assert "missing on disk" in _failed(env, vdir)["subjects"]


def test_a_changed_input_is_reported(env: Env) -> None:
    vdir = make_version(env)
    (env.ws.root / "data" / "crm.csv").write_text("customer_id,jurisdiction\nc2,UK\n")
    assert "input crm" in _failed(env, vdir)["inputs"]


def test_an_unlogged_version_fails_the_audit_check(env: Env) -> None:
    vdir = make_version(env, publish=False)
    assert "no version_published" in _failed(env, vdir)["audit-log"]


def test_a_wrong_key_fails_signature(env: Env, tmp_path: Path) -> None:
    other = make_workspace(tmp_path / "other")
    vdir = make_version(env)
    rep = verify_version(vdir, other.trust())
    assert [c.name for c in rep.failures] == ["signature"]
    assert "untrusted key" in rep.failures[0].detail


def test_revoked_key_keeps_old_versions_and_refuses_later_signatures(env: Env) -> None:
    old = make_version(env, "v0001")
    env.audit.checkpoint(env.keyring.signer(), "test")  # binds the publication entry
    stolen = env.keyring.signer()  # e.g. a copy of the key that leaked before revocation
    env.keyring.revoke(stolen.key_id, datetime.now(UTC) + timedelta(seconds=30))
    assert _failed(env, old) == {}
    # Statement claims to be made after the revocation time: refused.
    late = env.ws.versions_dir("UK", "marketing_segmentation") / "v0002"
    late.mkdir(parents=True)
    (late / "personas.json").write_text("{}")
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    sign_version(late, predicate(env.ws.root, "v0002", finished_at=later), stolen)
    assert "revoked" in _failed(env, late)["signature"]


def test_a_bundle_digest_is_required(env: Env) -> None:
    vdir = make_version(env)
    pol = {"bundle_revision": "r1", "bundle_digest": " ", "plan_digest": "x"}
    sign_version(vdir, predicate(env.ws.root, policy=pol), env.keyring.signer())
    assert "bundle" in _failed(env, vdir)["policy-bundle"]


def test_a_statement_of_another_type_is_refused(env: Env) -> None:
    vdir = make_version(env)
    st = {"_type": STATEMENT_TYPE, "subject": [], "predicateType": "https://x/y", "predicate": {}}
    env_bytes = sign_envelope(canonical_json(st), IN_TOTO_PAYLOAD_TYPE, env.keyring.signer())
    (vdir / STATEMENT_FILE).write_bytes(env_bytes)
    assert "predicateType" in _failed(env, vdir)["signature"]


def test_cli_verify_passes_then_fails_with_exit_4_naming_the_file(env: Env) -> None:
    make_version(env)
    ws = str(env.ws.root)
    ok = runner.invoke(app, ["lineage", "verify", "UK/marketing_segmentation/v0001", "-w", ws])
    assert ok.exit_code == 0, ok.output
    assert "1 version(s) verified" in ok.output
    vdir = env.ws.versions_dir("UK", "marketing_segmentation") / "v0001"
    (vdir / "manifest.json").write_text('{"version_id":"forged"}')
    bad = runner.invoke(app, ["lineage", "verify", "--all", "-w", ws])
    assert bad.exit_code == ExitCode.VERIFICATION_FAILED
    assert "manifest.json" in bad.output


def test_cli_verify_json_and_show(env: Env) -> None:
    vdir = make_version(env)
    ws = str(env.ws.root)
    res = runner.invoke(app, ["lineage", "verify", str(vdir), "-w", ws, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["versions"][0]["checks"]
    show = runner.invoke(app, ["lineage", "show", "UK/marketing_segmentation/v0001", "-w", ws])
    assert show.exit_code == 0 and "v0001" in show.output and "not verified" in show.output
    js = runner.invoke(app, ["lineage", "show", str(vdir), "-w", ws, "--json"])
    assert json.loads(js.stdout)["statement"]["predicate"]["persona_version"] == "v0001"


def test_cli_offline_verify_with_only_a_trust_file(env: Env, tmp_path: Path) -> None:
    vdir = make_version(env)
    trust = env.ws.path(env.ws.config.keys.trust_file)
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    res = runner.invoke(
        app, ["lineage", "verify", str(vdir), "--trust", str(trust), "-w", str(elsewhere)]
    )
    assert res.exit_code == 0, res.output


def test_cli_unknown_version_is_not_found(env: Env) -> None:
    # A missing version exits 5 (bad input / not found), as everywhere else.
    res = runner.invoke(app, ["lineage", "verify", "UK/x/v9", "-w", str(env.ws.root)])
    assert res.exit_code == ExitCode.BAD_INPUT


def test_a_back_dated_statement_by_a_revoked_key_fails_the_audit_check(env: Env) -> None:
    make_version(env, "v0001")
    env.audit.checkpoint(env.keyring.signer(), "test")
    stolen = env.keyring.signer()
    env.keyring.revoke(stolen.key_id, datetime.now(UTC))
    env.keyring.rotate()
    # The thief signs a new version claiming it was finished before the revocation, and
    # (having write access) logs it; the next checkpoint is honest and signed later.
    vdir = env.ws.versions_dir("UK", "marketing_segmentation") / "v0002"
    vdir.mkdir(parents=True)
    (vdir / "personas.json").write_text("{}")
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    sign_version(vdir, predicate(env.ws.root, "v0002", finished_at=past), stolen)
    from lineage.statement import statement_sha256

    env.audit.append(
        canonical_json(
            {
                "type": "version_published",
                "actor": "thief",
                "time": datetime.now(UTC).isoformat(),
                "details": {"statement_sha256": statement_sha256(vdir)},
            }
        )
    )
    env.audit.checkpoint(env.keyring.signer(), "test")
    failed = _failed(env, vdir)
    assert set(failed) == {"audit-log"}
    assert "back-dating" in failed["audit-log"]
