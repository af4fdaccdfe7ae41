"""Local-pool admission: every decision logged, the budget never overcommitted, largest first
with small jobs beside, a job larger than the budget alone, thread limits per worker."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_executor_fakes import fake_refresh, write_workspace

from engine.config import Purpose
from engine.executor import run_all
from engine.executors import local
from engine.executors.memory import MARGIN, record_peaks
from engine.request import RefreshRequest
from engine.workspace import Workspace

GIB = 2**30


def _requests(js: list[str]) -> list[RefreshRequest]:
    return [
        RefreshRequest(
            actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
        )
        for j in js
    ]


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def thread_env_refresh(ws: Workspace, request: RefreshRequest) -> object:
    """fake_refresh that leaves the thread limits its process started with."""
    import os

    seen = {v: os.environ.get(v) for v in local.THREAD_VARS}
    (ws.root / f"env-{request.jurisdiction}.json").write_text(json.dumps(seen))
    return fake_refresh(ws, request)


def _peaks(root: Path, gib: dict[str, float]) -> None:
    record_peaks(root, [(j, "kyc_aml", None, None, int(g * GIB)) for j, g in gib.items()])


def test_admission_never_commits_more_than_the_budget_and_goes_largest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_own_rss", lambda: 0)
    root = write_workspace(tmp_path / "ws")
    _peaks(root, {"EU-DE": 6, "UK": 5, "EU-FR": 2.5, "SG": 1, "BR": 0.5})
    js = ["SG", "BR", "UK", "EU-FR", "EU-DE"]
    with capture_logs() as logs:
        outcomes = run_all(
            root,
            _requests(js),
            "local",
            None,
            120,
            fake_refresh,
            max_workers=2,
            memory_budget="10G",
        )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    admitted = _events(logs, "job_admitted")
    assert sorted(e["job"] for e in admitted) == sorted(f"{j}/kyc_aml" for j in js)
    # every decision within the budget: the running jobs' estimates plus the new one
    assert all(e["committed_gib"] <= 10.0 for e in admitted), admitted
    assert all(e["basis"] == "measured" for e in admitted)
    # largest first (6 GiB measured, 6.6 with the margin), and beside it the largest that
    # still fits (2.75): not UK (5.5), which waits for memory
    assert admitted[0]["job"] == "EU-DE/kyc_aml"
    assert admitted[0]["estimate_gib"] == round(6 * MARGIN, 2)
    assert admitted[1]["job"] == "EU-FR/kyc_aml" and admitted[1]["running"] == ["EU-DE/kyc_aml"]
    waits = _events(logs, "job_waiting_for_memory")
    assert waits and waits[0]["job"] == "UK/kyc_aml" and waits[0]["free_gib"] < 5 * MARGIN
    pool = _events(logs, "local_pool")[0]
    assert pool["estimates"]["EU-DE/kyc_aml"] == [round(6 * MARGIN, 2), "measured"]
    assert not _events(logs, "job_over_memory_budget")


def test_a_job_larger_than_the_budget_waits_and_runs_alone_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scheduling process's own memory comes off the budget: the jobs share the rest.
    monkeypatch.setattr(local, "_own_rss", lambda: GIB // 2)
    root = write_workspace(tmp_path / "ws")
    _peaks(root, {"UK": 50, "SG": 1, "BR": 1})
    with capture_logs() as logs:
        outcomes = run_all(
            root,
            _requests(["SG", "UK", "BR"]),
            "local",
            None,
            120,
            fake_refresh,
            max_workers=2,
            memory_budget="4G",
        )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    [over] = _events(logs, "job_over_memory_budget")
    assert over["job"] == "UK/kyc_aml" and over["budget_gib"] == 3.5
    pool = _events(logs, "local_pool")[0]
    assert (pool["budget_gib"], pool["pool_process_gib"], pool["jobs_budget_gib"]) == (4, 0.5, 3.5)
    admitted = {e["job"]: e for e in _events(logs, "job_admitted")}
    uk = admitted["UK/kyc_aml"]
    assert uk["running"] == [] and uk["reason"] == "larger than the budget: runs alone"
    # the others were admitted within the budget, and never beside it
    others = [e for j, e in admitted.items() if j != "UK/kyc_aml"]
    assert all(e["committed_gib"] <= 3.5 and "UK/kyc_aml" not in e["running"] for e in others)


def test_jobs_are_estimated_from_their_data_before_any_has_run(tmp_path: Path) -> None:
    import polars as pl

    root = write_workspace(tmp_path / "ws")
    (root / "data").mkdir()
    js = ["UK"] * 3000 + ["SG"] * 1000
    pl.DataFrame({"customer_id": [str(i) for i in range(len(js))], "jurisdiction": js}).sort(
        "jurisdiction"
    ).write_parquet(root / "data" / "crm.parquet", row_group_size=500)
    with capture_logs() as logs:
        run_all(root, _requests(["SG", "UK"]), "local", None, 120, fake_refresh, max_workers=2)
    estimates = _events(logs, "local_pool")[0]["estimates"]
    assert estimates["UK/kyc_aml"][1] == estimates["SG/kyc_aml"][1] == "default rate"
    # then each job's own measured peak, with its data size, for the next fan-out
    history = json.loads((root / "logs" / "job-memory.json").read_text())
    assert history["UK/kyc_aml"]["subjects"] == 3000
    assert history["UK/kyc_aml"]["data_bytes"] > history["SG/kyc_aml"]["data_bytes"] > 0
    with capture_logs() as logs:
        run_all(root, _requests(["SG", "UK"]), "local", None, 120, fake_refresh, max_workers=2)
    again = _events(logs, "local_pool")[0]["estimates"]
    assert again["UK/kyc_aml"][1] == again["SG/kyc_aml"][1] == "measured"
    # no identifier of any row in any log line
    assert not any(str(v) in json.dumps(e) for e in logs for v in ("customer_id", "'17'"))


@pytest.mark.parametrize(("user_set", "expected"), [(False, "1"), (True, "3")])
def test_workers_side_by_side_get_one_thread_each_unless_the_user_set_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_set: bool, expected: str
) -> None:
    root = write_workspace(tmp_path / "ws")
    if user_set:
        monkeypatch.setenv("POLARS_MAX_THREADS", "3")
    outcomes = run_all(
        root, _requests(["UK", "SG"]), "local", None, 120, thread_env_refresh, max_workers=2
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    seen = json.loads((root / "env-SG.json").read_text())
    assert seen["POLARS_MAX_THREADS"] == expected
