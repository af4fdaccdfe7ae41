"""Approving a version as current: valid, verified, by a second person, cross-checked later."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from engine.approval import approve_version, current_version
from engine.config import Purpose
from engine.errors import GateFailed, PolicyDenied, VerificationFailed
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.versions import resolve_version
from engine.workspace import Workspace


def _workspace(
    sample: Path, dest: Path, stability_threshold: float, min_silhouette: float = -1.0
) -> Workspace:
    """The gate thresholds are configuration: pin them so validity is known in advance."""
    shutil.copytree(sample, dest)
    config = dest / "pgov.toml"
    text = re.sub(
        r"stability_threshold = [0-9.]+",
        f"stability_threshold = {stability_threshold}\nmin_silhouette = {min_silhouette}",
        config.read_text(),
    )
    config.write_text(text)
    ws = Workspace.open(dest)
    init_keys(ws)
    return ws


def _refresh(ws: Workspace) -> Path:
    request = RefreshRequest(actor="compliance-lead", jurisdiction="UK",
                             purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1))  # fmt: skip
    return run_refresh(ws, request).version.path


@pytest.fixture()
def valid_ws(sample_workspace: Path, tmp_path: Path) -> Workspace:
    ws = _workspace(sample_workspace, tmp_path / "ws", 0.0)
    _refresh(ws)
    return ws


def test_a_second_compliance_officer_approves_a_valid_verified_version(valid_ws: Workspace) -> None:
    approval = approve_version(valid_ws, "UK/kyc_aml/latest", "compliance-deputy")
    assert approval.version_id == "v0001"
    current = current_version(valid_ws, "UK", "kyc_aml")
    assert current == approval
    assert resolve_version(valid_ws, "UK/kyc_aml/current").name == "v0001"


def test_the_refresh_actor_cannot_approve_their_own_version(valid_ws: Workspace) -> None:
    with pytest.raises(PolicyDenied, match="second person"):
        approve_version(valid_ws, "UK/kyc_aml/latest", "compliance-lead")


def test_an_analyst_cannot_approve(valid_ws: Workspace) -> None:
    with pytest.raises(PolicyDenied):
        approve_version(valid_ws, "UK/kyc_aml/latest", "analyst-uk")


def test_a_version_that_failed_its_gates_cannot_become_current(
    sample_workspace: Path, tmp_path: Path
) -> None:
    # A silhouette of 1 needs every customer on its centroid: no real clustering passes.
    ws = _workspace(sample_workspace, tmp_path / "ws", 0.0, min_silhouette=1.0)
    _refresh(ws)
    with pytest.raises(GateFailed, match="cannot be current"):
        approve_version(ws, "UK/kyc_aml/latest", "compliance-deputy")
    assert current_version(ws, "UK", "kyc_aml") is None


def test_a_tampered_version_is_not_approved(valid_ws: Workspace) -> None:
    version = resolve_version(valid_ws, "UK/kyc_aml/latest")
    (version / "queues.json").write_text("{}")
    with pytest.raises(VerificationFailed, match="does not verify"):
        approve_version(valid_ws, "UK/kyc_aml/latest", "compliance-deputy")


def test_an_edited_current_pointer_is_refused(valid_ws: Workspace) -> None:
    approve_version(valid_ws, "UK/kyc_aml/latest", "compliance-deputy")
    _refresh(valid_ws)  # v0002 exists but was never approved
    pointer = valid_ws.versions_dir("UK", "kyc_aml") / "CURRENT.json"
    data = json.loads(pointer.read_text())
    data["version_id"] = "v0002"
    pointer.write_text(json.dumps(data))
    with pytest.raises(VerificationFailed, match="version_approved"):
        current_version(valid_ws, "UK", "kyc_aml")
