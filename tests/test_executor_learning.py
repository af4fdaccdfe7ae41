"""The local pool learns inside a fan-out: a job without a figure of its own is estimated
again, from the workspace rate and the stage windows of the jobs that have ended, as soon
as one ends; and the windows of a job never measured come from its purpose's measured
shape, at its most cautious, or not at all."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_executor_fakes import fake_refresh, write_workspace

from engine.config import Purpose
from engine.executors import local
from engine.executors.admission import TAIL
from engine.executors.memory import (
    BASE_BYTES,
    MARGIN,
    estimate,
    learn,
    load_history,
    stage_shape,
)
from engine.executors.sizing import JurisdictionSize
from engine.progress import ProgressEvent
from engine.request import RefreshRequest
from engine.workspace import Workspace

GIB = 2**30


def _size(data: int) -> JurisdictionSize:
    return JurisdictionSize(subjects=1000, rows=10_000, data_bytes=data)


def test_a_job_never_measured_gets_its_purposes_most_cautious_window_shares() -> None:
    history: dict[str, dict[str, Any]] = {}
    # a small job: its base makes the early windows a large share; a large one: enforce
    learn(history, "SG", "kyc_aml", 10, GIB, 2 * GIB, [("sources", GIB), ("enforce", 2 * GIB)])
    learn(
        history, "UK", "kyc_aml", 10, 4 * GIB, 8 * GIB, [("sources", 2 * GIB), ("enforce", 6 * GIB)]
    )
    assert stage_shape(history, "kyc_aml") == [("sources", 0.5), ("enforce", 1.0)]
    assert stage_shape(history, "marketing_segmentation") is None  # nothing measured for it
    [de] = estimate([("EU-DE", "kyc_aml")], history, {"EU-DE": _size(8 * GIB)})
    assert de.basis == "workspace rate" and de.bytes is not None and de.stages is not None
    # the largest rate above the base (UK's, about 1.94 per byte), with the margin
    assert de.bytes == int((BASE_BYTES + 8 * GIB * (8 * GIB - BASE_BYTES) / (4 * GIB)) * MARGIN)
    assert dict(de.stages) == {"sources": de.bytes // 2, "enforce": de.bytes}
    # a run before with a larger window counts, but no share exceeds the whole
    learn(
        history, "UK", "kyc_aml", 10, 4 * GIB, 5 * GIB, [("sources", 2 * GIB), ("enforce", 5 * GIB)]
    )
    uk = history["UK/kyc_aml"]
    assert [w["peak_bytes"] for w in uk["earlier_stages"]] == [2 * GIB, 6 * GIB]
    assert stage_shape(history, "kyc_aml") == [("sources", 0.5), ("enforce", 1.0)]
    # jobs that do not name the same stages in the same order give no shape: whole reservation
    learn(history, "BR", "kyc_aml", 10, GIB, GIB, [("enforce", GIB // 2), ("sources", GIB)])
    assert stage_shape(history, "kyc_aml") is None
    [de] = estimate([("EU-DE", "kyc_aml")], history, {"EU-DE": _size(8 * GIB)})
    assert de.stages is None


def stage_refresh(ws: Workspace, request: RefreshRequest, progress: Any = None) -> object:
    """fake_refresh that reports its stages like the real refresh (module level: it is
    pickled into the pool's processes by reference)."""
    task = f"{request.jurisdiction}/{request.purpose.value}"
    for stage in ("policy", "sources", "enforce"):
        if progress is not None:
            progress(ProgressEvent(task, stage, 0.0))
    return fake_refresh(ws, request)


@pytest.mark.slow
def test_a_first_fan_out_runs_on_its_first_jobs_figures_not_the_default_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.executor import run_all

    monkeypatch.setattr(local, "_own_rss", lambda: 0)
    root = write_workspace(tmp_path / "ws")
    # 1 GiB of data each: the default rate (no history) forecasts about 5.5 GiB per job, so
    # under 8 GiB only one runs at a time; a fake job really needs a Python process's size.
    sizes = {j: _size(GIB) for j in ("UK", "SG", "EU-DE")}
    monkeypatch.setattr(local, "jurisdiction_sizes", lambda _root: sizes)
    requests = [
        RefreshRequest(
            actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
        )
        for j in ("UK", "SG", "EU-DE")
    ]
    with capture_logs() as logs:
        out = run_all(
            root, requests, "local", None, 120, stage_refresh, max_workers=2, memory_budget="8G"
        )
    assert all(o.ok for o in out), [o.error for o in out]
    [pool] = [e for e in logs if e["event"] == "local_pool"]
    assert {basis for _, basis in pool["estimates"].values()} == {"default rate"}
    admitted = [e for e in logs if e["event"] == "job_admitted"]
    first = admitted[0]
    assert first["running"] == [] and first["basis"] == "default rate"
    # the other two were estimated again from the first's measured peak and windows ...
    again = [e for e in logs if e["event"] == "job_reestimated"]
    assert {e["job"] for e in again} == {
        j for j in ("UK/kyc_aml", "SG/kyc_aml", "EU-DE/kyc_aml")
    } - {first["job"]}
    assert all(
        e["basis"] == "workspace rate" and e["staged"] and e["after"] == first["job"] for e in again
    )
    assert all(e["estimate_gib"] < e["from_gib"] for e in again)
    # ... and so ran side by side, where the default rate would have kept them apart
    second, third = admitted[1], admitted[2]
    assert second["basis"] == third["basis"] == "workspace rate"
    assert third["running"] == [second["job"]]
    committed = [e["committed_gib"] for e in logs if "committed_gib" in e]
    assert max(committed) <= 8
    # the history written at the end holds every job with its windows
    history = load_history(root)
    assert all(
        [w["stage"] for w in h["stages"]] == ["policy", "sources", "enforce", TAIL]
        for h in history.values()
    )
