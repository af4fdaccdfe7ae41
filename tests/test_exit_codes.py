"""The README exit-code table is true: it matches engine.errors.ExitCode, and each code comes
out of real commands for the situations the table names. Also: audit queries scripts can
trust (unknown types refused, filters), proofs for other verifiers, PEM keys."""

from __future__ import annotations

import ast
import errno
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import SEVERITY, ExitCode, PolicyDenied, most_severe
from engine.pseudonym.lifecycle import init_keys
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

ROOT = Path(__file__).resolve().parents[1]


def _pgov(ws: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "-w", str(ws)])


def _audit(ws: Path) -> list[dict[str, Any]]:
    log = AuditLog(ws / "audit")
    return [json.loads(log.entry(i)) for i in range(log.size())]


@pytest.fixture(scope="module")
def refreshed(sample_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace with a published UK kyc_aml version (read-only for the tests below)."""
    root = tmp_path_factory.mktemp("exit") / "ws"
    shutil.copytree(sample_workspace, root)
    init_keys(Workspace.open(root))
    res = _pgov(root, "refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead",
                "--as-of", "2026-11-01")  # fmt: skip
    assert res.exit_code in (0, 7), res.output
    return root


@pytest.fixture
def private(refreshed: Path, tmp_path: Path) -> Iterator[Path]:
    dest = tmp_path / "ws"
    shutil.copytree(refreshed, dest)
    yield dest


# ---------------------------------------------------------------- the table itself


def test_readme_table_matches_the_exit_codes() -> None:
    text = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", text, flags=re.M))
    assert sorted(int(c) for c in table) == sorted(int(c) for c in ExitCode)
    order = re.search(r"in this order: ([\d, ]+) \(", text)
    assert order is not None
    assert [int(x) for x in order.group(1).split(", ")] == [int(c) for c in SEVERITY]
    assert set(SEVERITY) == set(ExitCode) - {ExitCode.OK}


def test_aggregate_is_the_most_severe() -> None:
    assert most_severe([0, 0]) == 0
    assert most_severe([7, 7, 0]) == 7
    assert most_severe([7, 2, 3]) == 3  # a denial outranks "no worker" and invalid versions
    assert most_severe([3, 10]) == 10
    assert most_severe([10, 4]) == 4


def test_every_audit_event_type_written_is_known() -> None:
    from engine.audit import EVENT_TYPES

    written: set[str] = set()
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "lineage").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name == "record" and len(node.args) >= 2:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    written.add(arg.value)
    assert written and written <= EVENT_TYPES, written - EVENT_TYPES


# ---------------------------------------------------------------- 2 and 5: queries, lookups


def test_unknown_audit_event_type_is_refused_listing_known_ones(refreshed: Path) -> None:
    res = _pgov(refreshed, "audit", "query", "--type", "refresh_denyed")
    assert res.exit_code == 2
    assert "refresh_denied" in res.output and "version_published" in res.output
    assert _pgov(refreshed, "audit", "query", "--type", "refresh_denied").exit_code == 0


def test_audit_query_filters(refreshed: Path) -> None:
    rows = json.loads(_pgov(refreshed, "audit", "query", "--json").stdout)
    published = next(r for r in rows if r["type"] == "version_published")
    run_id = published["details"]["run_id"]
    by_run = json.loads(_pgov(refreshed, "audit", "query", "--run-id", run_id, "--json").stdout)
    assert by_run and all(r["details"]["run_id"] == run_id for r in by_run)
    assert {"refresh_requested", "refresh_allowed", "version_published"} <= {
        r["type"] for r in by_run
    }
    uk = json.loads(_pgov(refreshed, "audit", "query", "-j", "UK", "--json").stdout)
    assert uk and all("UK" in json.dumps(r["details"]) for r in uk)
    assert json.loads(_pgov(refreshed, "audit", "query", "-j", "SG", "--json").stdout) == []
    assert _pgov(refreshed, "audit", "query", "-j", "XX").exit_code == 2
    first_time = rows[0]["time"]
    until = json.loads(_pgov(refreshed, "audit", "query", "--until", first_time, "--json").stdout)
    assert until == []  # --until is exclusive
    assert json.loads(_pgov(refreshed, "audit", "query", "--until", "2999-01-01", "--json").stdout)
    mine = json.loads(
        _pgov(refreshed, "audit", "query", "--actor", "compliance-lead", "--json").stdout
    )
    assert mine and {r["actor"] for r in mine} == {"compliance-lead"}
    assert _pgov(refreshed, "audit", "query", "--until", "yesterday").exit_code == 2


def test_missing_things_are_exit_5(refreshed: Path) -> None:
    size = AuditLog(refreshed / "audit").size()
    res = _pgov(refreshed, "audit", "prove", "--entry", str(size + 17))
    assert res.exit_code == 5 and "does not exist" in res.output
    assert _pgov(refreshed, "lineage", "verify", "UK/kyc_aml/v0099").exit_code == 5
    assert _pgov(refreshed, "lineage", "show", "UK/kyc_aml/v0099").exit_code == 5
    assert _pgov(refreshed, "personas", "show", "UK/kyc_aml/v0099").exit_code == 5
    assert (
        _pgov(
            refreshed, "versions", "approve", "UK/kyc_aml/v0099", "-a", "compliance-deputy"
        ).exit_code
        == 5
    )


# ---------------------------------------------------------------- proofs and keys


def test_consistency_proof_round_trip_and_tamper(refreshed: Path, tmp_path: Path) -> None:
    sizes = sorted(int(p.stem) for p in (refreshed / "audit" / "checkpoints").glob("*.txt"))
    assert len(sizes) >= 2
    old, new = sizes[0], sizes[-1]
    out = tmp_path / "c.proof"
    res = _pgov(refreshed, "audit", "prove", "--consistency", str(old), str(new), "--out", str(out))
    assert res.exit_code == 0, res.output
    trust = str(refreshed / "keys" / "trust.json")
    ok = CliRunner().invoke(app, ["audit", "verify-proof", str(out), "--trust", trust])
    assert ok.exit_code == 0, ok.output
    assert "consistency verified" in ok.output
    lines = out.read_text().split("\n")
    lines[3] = "A" * 43 + "="  # a forged path hash
    out.write_text("\n".join(lines))
    bad = CliRunner().invoke(app, ["audit", "verify-proof", str(out), "--trust", trust])
    assert bad.exit_code == 4
    unsigned = _pgov(refreshed, "audit", "prove", "--consistency", "1", str(new + 1000))
    assert unsigned.exit_code == 5 and "signed sizes" in unsigned.output


def test_inclusion_proof_in_c2sp_tlog_proof_format(refreshed: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.tlog-proof"
    res = _pgov(refreshed, "audit", "prove", "--entry", "2", "--format", "tlog-proof",
                "--out", str(out))  # fmt: skip
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ") and "\nindex 2\n" in text
    trust = str(refreshed / "keys" / "trust.json")
    ok = CliRunner().invoke(app, ["audit", "verify-proof", str(out), "--trust", trust, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["index"] == 2
    out.write_text(text.replace("index 2", "index 3"))
    bad = CliRunner().invoke(app, ["audit", "verify-proof", str(out), "--trust", trust])
    assert bad.exit_code == 4


def test_public_keys_export_as_pem(refreshed: Path) -> None:
    res = _pgov(refreshed, "keys", "export", "--pem")
    assert res.exit_code == 0, res.output
    trust = json.loads((refreshed / "keys" / "trust.json").read_text())
    blocks = re.findall(
        r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----\n", res.stdout, re.S
    )
    assert len(blocks) == len(trust["keys"]) >= 1
    for block in blocks:
        load_pem_public_key(block.encode())  # any PEM reader takes it
    assert "PRIVATE" not in res.stdout
    assert _pgov(refreshed, "keys", "export").exit_code == 2
    assert _pgov(refreshed, "keys", "export", "--pem", "--key-id", "nope").exit_code == 5


# ---------------------------------------------------------------- refresh failures


def test_failure_after_allow_is_audited_with_stage_and_reason(private: Path) -> None:
    for f in (private / "data").glob("crm*"):
        f.unlink()
    res = _pgov(private, "refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead")
    assert res.exit_code == 5, res.output
    last = [e for e in _audit(private) if e["type"].startswith("refresh_")][-1]
    assert last["type"] == "refresh_failed"
    assert last["details"]["stage"] == "sources" and last["details"]["exit_code"] == 5
    assert "crm" in last["details"]["reason"]


def test_disk_full_is_exit_9_and_nothing_half_published(
    private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.publish

    def full(stage: Path, final: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(final))

    # The rename of the staged version is the publish step (engine/publish.py).
    monkeypatch.setattr(engine.publish, "commit", full)
    before = sorted(p.name for p in (private / "versions" / "UK" / "kyc_aml").iterdir())
    res = _pgov(private, "refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead",
                "--as-of", "2026-11-01")  # fmt: skip
    assert res.exit_code == 9, res.output
    after = sorted(
        p.name
        for p in (private / "versions" / "UK" / "kyc_aml").iterdir()
        if not p.name.startswith(".")
    )
    assert after == [n for n in before if not n.startswith(".")]
    last = [e for e in _audit(private) if e["type"] == "refresh_failed"][-1]
    assert (last["details"]["stage"], last["details"]["exit_code"]) == ("store", 9)


class _Fake:
    def __init__(self, manifest: dict[str, Any], dead: int = 0) -> None:
        self.manifest = manifest
        self.dead_lettered = dead


def test_all_jurisdictions_aggregate_exit(private: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.refresh
    from engine.errors import InfrastructureError

    behaviour: dict[str, Any] = {}

    def fake(ws: Any, req: Any, **_: Any) -> _Fake:
        what = behaviour.get(req.jurisdiction, "invalid")
        if what == "denied":
            raise PolicyDenied("denied", reasons=["x"])
        if what == "no-worker":
            raise InfrastructureError("no Dask worker serves region SG")
        return _Fake({"version_id": "v0001", "validity": what}, dead=1 if what == "dead" else 0)

    monkeypatch.setattr(engine.refresh, "run_refresh", fake)
    args = ("refresh", "--all-jurisdictions", "-p", "marketing_segmentation", "-a", "analyst-eu")
    assert _pgov(private, *args).exit_code == 7  # every version failed its gates: not 0
    behaviour.update({"SG": "no-worker"})
    assert _pgov(private, *args).exit_code == 2  # a deployment problem, not a denial
    behaviour.update({"UK": "denied"})
    assert _pgov(private, *args).exit_code == 3
    behaviour.update({"BR": "dead"})
    res = _pgov(private, *args, "--json")
    assert res.exit_code == 10
    codes = {r["jurisdiction"]: r["exit_code"] for r in json.loads(res.stdout)}
    assert (codes["SG"], codes["UK"], codes["BR"], codes["EU-DE"]) == (2, 3, 10, 7)
    behaviour.clear()
    behaviour.update({j: "valid" for j in Workspace.open(private).config.jurisdictions})
    assert _pgov(private, *args).exit_code == 0
