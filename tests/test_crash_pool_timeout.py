"""A local-pool job past its timeout is killed mid-publish: nothing half-published, lock free."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from structlog.testing import capture_logs
from test_executor_fakes import fake_refresh, stalling_publish_refresh, write_workspace

from engine.config import Purpose
from engine.executor import run_all
from engine.locks import read_holder, refresh_lock
from engine.request import RefreshRequest
from engine.versions import check_chain, list_versions
from engine.workspace import Workspace


def test_timed_out_job_is_killed_and_leaves_no_version_and_no_wedged_lock(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    req = RefreshRequest(
        actor="ops", jurisdiction="SG", purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
    )
    # The fake never finishes on its own within the timeout (it waits for a file nobody
    # writes), so the outcome does not depend on machine speed.
    [outcome] = run_all(root, [req], "local", None, 3.0, stalling_publish_refresh)
    assert not outcome.ok and "not finished within 3s" in (outcome.error or "")

    assert list_versions(ws, "SG", "kyc_aml") == []
    killed_mid_publish = (root / "staged-SG").exists()  # normally; spawn takes ~1s of the 3s
    if killed_mid_publish:
        holder = read_holder(ws, "SG", "kyc_aml")
        assert holder is not None and holder.is_dead()
    # the killed holder does not wedge the chain: one attempt, no waiting, succeeds
    with capture_logs() as logs, refresh_lock(ws, "SG", "kyc_aml", wait_seconds=0):
        pass
    assert any(e["event"] == "stale_lock_taken_over" for e in logs) == killed_mid_publish

    [again] = run_all(root, [req], "sequential", None, 60, fake_refresh)
    assert again.ok and again.manifest and again.manifest["version_id"] == "v0001"
    assert check_chain(ws, "SG", "kyc_aml") == []
