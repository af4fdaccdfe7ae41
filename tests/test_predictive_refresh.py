"""A credit-risk refresh of the sample with the shipped declaration (predictive): the model
card is in the version and signed with it; a failing gate stores the version as invalid."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from engine.config import Purpose
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.signing import TrustStore
from lineage.statement import verify_version

REQUEST = RefreshRequest(
    actor="analyst-eu",
    jurisdiction="EU-DE",
    purpose=Purpose.CREDIT_RISK,
    as_of=date(2026, 11, 1),
)


def _ws(sample: Path, dest: Path, min_auc: float | None = None) -> Workspace:
    shutil.copytree(sample, dest)
    if min_auc is not None:
        config = dest / "pgov.toml"
        config.write_text(re.sub(r"min_auc = [0-9.]+", f"min_auc = {min_auc}", config.read_text()))
    ws = Workspace.open(dest)
    init_keys(ws)
    return ws


@pytest.mark.slow
def test_credit_risk_refresh_publishes_signed_risk_bands(
    sample_workspace: Path, tmp_path: Path
) -> None:
    ws = _ws(sample_workspace, tmp_path / "ws")
    result = run_refresh(ws, REQUEST)
    vdir = result.version.path
    personas = json.loads((vdir / "personas.json").read_bytes())
    assert personas["strategy"] == "predictive"
    card = json.loads((vdir / "model_card.json").read_bytes())
    assert card["outcome"] == "default_rate" and card["chosen"] in card["candidates"]
    assert card["band_rates"][-1] > card["band_rates"][0]
    assert "model_card.json" in result.manifest["outputs"]
    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    assert verify_version(vdir, trust, workspace_root=ws.root).ok
    value = json.loads((vdir / "value.json").read_bytes())
    assert value["personas"] and "unavailable" not in value
    # No token or raw id in the card: aggregates only.
    assert "customer_id" not in (vdir / "model_card.json").read_text()
    # Same inputs, same seed: the next version's outputs are byte-identical.
    again = run_refresh(ws, REQUEST).manifest["outputs"]
    for name in ("assignments.parquet", "personas.json", "model_card.json", "value.json"):
        assert again[name] == result.manifest["outputs"][name], name


@pytest.mark.slow
def test_failing_auc_gate_stores_the_version_invalid(
    sample_workspace: Path, tmp_path: Path
) -> None:
    ws = _ws(sample_workspace, tmp_path / "ws", min_auc=0.999)
    result = run_refresh(ws, REQUEST)
    assert result.manifest["validity"] == "invalid"
    assert any(r.startswith("oof_auc") for r in result.manifest["invalid_reasons"])
