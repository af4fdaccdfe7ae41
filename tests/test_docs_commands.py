"""Runbooks that run: every `pgov` command in the operations and compliance docs is run
here, from the workspace directory (as the docs say), with the docs' placeholders filled in.

A command line is taken from the docs' code blocks (continuation lines joined, trailing
`# comments` dropped). Optional `[...]` parts are dropped, except on the synopsis lines of
docs/keys.md where they are kept (the options are part of what the docs promise); `A | B`
alternatives keep `A`. A new doc command that this test cannot run fails it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.pseudonym.lifecycle import init_keys
from engine.sample import generate
from engine.sample.workspace import init_workspace
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("kyc-operations.md", "compliance-officer.md", "runbook-regional.md", "keys.md")
# Commands that need a live multi-process Dask cluster: test_dask_runbook_commands_run.
NEEDS_CLUSTER = ("--executor dask", "pgov cluster local")


def doc_commands(name: str) -> list[str]:
    text = (ROOT / "docs" / name).read_text()
    out: list[str] = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M):
        lines = block.replace("\\\n", " ").splitlines()
        for line in lines:
            line = line.strip()
            if line.startswith("pgov "):
                out.append(re.sub(r"\s{2,}#.*$", "", line).strip())
    return out


def _pgov(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small workspace with published EU-DE and UK versions, an approved EU-DE kyc_aml
    version and a pending override: what the runbooks assume exists."""
    root = tmp_path_factory.mktemp("docs") / "ws"
    init_workspace(root, "parquet")
    generate(1500, 11, root / "data", "parquet", as_of=date(2026, 11, 1))
    config = root / "pgov.toml"
    config.write_text(
        re.sub(
            r"stability_threshold = [0-9.]+",
            "stability_threshold = 0.0\nmin_silhouette = -1.0",
            config.read_text(),
        )
    )
    init_keys(Workspace.open(root))
    common = ("-w", str(root), "--as-of", "2026-11-01")
    for j, p, a in (
        ("EU-DE", "kyc_aml", "compliance-lead"),
        ("EU-DE", "marketing_segmentation", "analyst-eu"),
        ("UK", "kyc_aml", "compliance-lead"),
    ):
        res = _pgov("refresh", "-j", j, "-p", p, "-a", a, *common)
        assert res.exit_code == 0, res.output
    res = _pgov("versions", "approve", "EU-DE/kyc_aml/latest", "-a", "compliance-deputy",
                "-w", str(root))  # fmt: skip
    assert res.exit_code == 0, res.output
    _pgov("audit", "checkpoint", "-w", str(root))
    return root


def _facts(root: Path) -> dict[str, str]:
    import polars as pl

    routing = pl.read_parquet(root / "versions" / "EU-DE" / "kyc_aml" / "v0001" / "routing.parquet")
    edd = routing.filter(pl.col("tier") == "EDD")["customer_id"].to_list()
    cdd = routing.filter(pl.col("tier") == "CDD")["customer_id"].to_list()
    assert len(edd) >= 2 and cdd
    log = AuditLog(root / "audit")
    entries = [json.loads(log.entry(i)) for i in range(log.size())]
    run_id = next(e for e in entries if e["type"] == "version_published")["details"]["run_id"]
    sizes = sorted(int(p.stem) for p in (root / "audit" / "checkpoints").glob("*.txt"))
    # A pending override for `kyc approve`: a downgrade out of EDD waits for a second person.
    why = "documented false positive"
    res = _pgov("kyc", "override", "--customer", edd[1], "--tier", "CDD", "--reason", why,
                "--actor", "kyc-ops", "--json", "-w", str(root))  # fmt: skip
    assert res.exit_code == 0, res.output
    return {
        "TOKEN_CDD": cdd[0],
        "TOKEN_EDD": edd[0],
        "RUN_ID": run_id,
        "OLD": str(sizes[0]),
        "NEW": str(sizes[-1]),
        "OVERRIDE": json.loads(res.stdout)["id"],
    }


def runnable(cmd: str, keep_optional: bool, subst: dict[str, str]) -> list[str]:
    if keep_optional:
        cmd = re.sub(r"\[([^\[\]]*?\.\.\.)\]", "", cmd)  # repeatable extras: drop
        cmd = re.sub(r"\[([^\[\]]*)\]", r"\1", cmd)
    else:
        cmd = re.sub(r"\[[^\[\]]*\]", "", cmd)
    cmd = re.sub(r"\s\|\s.*?(?=\s--actor|$)", " ", cmd)  # `A | B`: keep A
    for old, new in subst.items():
        cmd = cmd.replace(old, new)
    return shlex.split(cmd)[1:]


def _check_all_covered(name: str, ran: list[str]) -> None:
    wanted = [c for c in doc_commands(name) if not any(n in c for n in NEEDS_CLUSTER)]
    assert ran == wanted, f"{name}: commands not run: {sorted(set(wanted) - set(ran))}"


@pytest.mark.slow
def test_compliance_officer_and_kyc_operations_commands_run(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = _facts(ws)
    monkeypatch.chdir(ws)
    # The verifier's own pinned copies, kept outside the workspace as the guide says.
    verifier = ws.parent / "pgov-verifier"
    verifier.mkdir(exist_ok=True)
    shutil.copy(ws / "keys" / "trust.json", verifier / "trust.json")
    subst = {
        "~/pgov-verifier/trust.json": str(verifier / "trust.json"),
        "~/pgov-verifier/WS.checkpoint": str(verifier / "ws.checkpoint"),
        " -w WS": "",
        "EU-DE/marketing_segmentation/v0003": "EU-DE/marketing_segmentation/v0001",
        "EU-DE/kyc_aml/v0004": "EU-DE/kyc_aml/v0001",
        "EU-DE/kyc_aml/v0003": "EU-DE/kyc_aml/v0001",
        "EU-DE/kyc_aml/v0002": "EU-DE/kyc_aml/v0001",
        "--version v0003": "--version v0001",
        "--entry 42": "--entry 2",
        "k1.AbC…": facts["TOKEN_CDD"],
        "RUN_ID": facts["RUN_ID"],
        "OLD NEW": f"{facts['OLD']} {facts['NEW']}",
        "ovr-1a2b3c4d5e6f": facts["OVERRIDE"],
    }
    for name in ("compliance-officer.md", "kyc-operations.md"):
        ran = []
        for cmd in doc_commands(name):
            args = runnable(cmd, keep_optional=False, subst=subst)
            res = _pgov(*args)
            assert res.exit_code == 0, f"{name}: {cmd}\n-> {args}\n{res.output}"
            ran.append(cmd)
        _check_all_covered(name, ran)


@pytest.mark.slow
def test_regional_runbook_commands_run(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(ws, root)
    monkeypatch.chdir(root)
    ran = []
    for cmd in doc_commands("runbook-regional.md"):
        if any(n in cmd for n in NEEDS_CLUSTER):
            continue
        args = runnable(cmd, keep_optional=False, subst={})
        if "--all-jurisdictions" in args:
            args += ["--workers", "2", "--as-of", "2026-11-01"]
        res = _pgov(*args)
        assert res.exit_code == 0, f"{cmd}\n-> {args}\n{res.output}"
        ran.append(cmd)
    _check_all_covered("runbook-regional.md", ran)


@pytest.mark.slow
def test_keys_commands_run(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # keys init needs a workspace without keys: a fresh copy of the configuration and data.
    root = tmp_path / "ws"
    shutil.copytree(ws, root, ignore=shutil.ignore_patterns("keys", "audit", "versions", "outbox"))
    monkeypatch.chdir(root)
    facts_root = tmp_path / "facts"
    shutil.copytree(ws, facts_root)
    facts = _facts(facts_root)
    ran: list[str] = []
    subst = {
        " -w WS": "",
        "--actor A": "--actor data-engineer",
        "--at ISO": "",
        "--since ISO": "",
        "--key-id ID": "",
        "--out FILE": "--out keys.pem",
        "--token T": f"--token {facts['TOKEN_EDD']}",
        "--reason TEXT": "--reason 'EDD file review'",
        "--case REF": "--case AML-2026-0042",
        "--version-dir DIR": "",
        "--public-key B64": "",
        "enrol-actor NAME": "enrol-actor analyst-eu",
        "--values-file FILE": "--values-file erase.txt",
    }
    # `pgov vault erase`: one subject's id (none filed in this fresh copy: 0 erased).
    (root / "erase.txt").write_text("CUST-000001\n")
    for cmd in doc_commands("keys.md"):
        if cmd.startswith("pgov keys revoke"):
            # Revoke the key that `keys rotate --signing` just retired.
            keys = json.loads(_pgov("keys", "list", "--json").stdout)["signing"]
            subst["KEY_ID"] = next(k["key_id"] for k in keys if not k.get("active"))
        if cmd.startswith("pgov reidentify"):
            # Tokens are the workspace's: reveal against the published copy, as KYC ops.
            monkeypatch.chdir(facts_root)
            subst["--actor A"] = "--actor kyc-ops"
            if "<digest>" in cmd:
                (found,) = list(
                    (facts_root / "outbox" / "edd-review" / "UK" / "v0001").glob(
                        "obligation-*.jsonl"
                    )
                )
                subst["obligation-<digest>.jsonl"] = found.name
        args = runnable(
            cmd, keep_optional=cmd.startswith("pgov keys ") or "--token T" in cmd, subst=subst
        )
        res = _pgov(*args)
        assert res.exit_code == 0, f"{cmd}\n-> {args}\n{res.output}"
        ran.append(cmd)
    _check_all_covered("keys.md", ran)


@pytest.mark.slow
def test_dask_runbook_commands_run(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pgov cluster local` as the runbook shows it (plus `--port 0` so tests never collide),
    then the fan-out against it: EU, UK and US jobs run on their regions' workers; SG and BR
    have no worker, fail closed, and make the command exit 2 (a deployment problem)."""
    import os
    import signal
    import subprocess
    import sys

    root = tmp_path / "ws"
    shutil.copytree(ws, root)
    monkeypatch.chdir(root)
    cluster, fanout = [c for c in doc_commands("runbook-dask.md") if c.startswith("pgov ")]
    assert cluster.startswith("pgov cluster local")
    pgov = str(Path(sys.executable).with_name("pgov"))
    args = runnable(cluster, keep_optional=False, subst={})
    proc = subprocess.Popen(
        [pgov, *args, "--port", "0", "--duration", "600"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), address
        argv = runnable(fanout, keep_optional=False, subst={"tcp://127.0.0.1:8786": address})
        res = _pgov(*argv, "--as-of", "2026-11-01", "--timeout", "600", "--json")
        assert res.exit_code == 2, res.output
        codes = {r["jurisdiction"]: r["exit_code"] for r in json.loads(res.stdout)}
        assert (codes.pop("SG"), codes.pop("BR")) == (2, 2)
        assert set(codes.values()) == {0}, codes
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
