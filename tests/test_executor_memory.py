"""The local pool within memory: fresh process per job, measured peaks, budgeted admission."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from test_executor_fakes import fake_refresh, write_workspace

from engine.config import Purpose
from engine.errors import UsageError
from engine.executor import run_all
from engine.executors import local
from engine.executors.memory import (
    BASE_BYTES,
    DEFAULT_BYTES_PER_SUBJECT,
    DEFAULT_PEAK_PER_DATA_BYTE,
    DEFAULT_PEAK_PER_DATA_BYTE_OTHER,
    MARGIN,
    estimate,
    load_history,
    parse_size,
    record_peaks,
    resolve_budget,
)
from engine.executors.sizing import JurisdictionSize, jurisdiction_sizes
from engine.request import RefreshRequest
from engine.workspace import Workspace

GIB = 2**30


def _clock() -> float:
    # CLOCK_MONOTONIC is one clock for every process of the machine, and unlike the wall
    # clock (time.time) it is never stepped back by a time sync between two jobs' readings.
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def timed_refresh(ws: Workspace, request: RefreshRequest) -> object:
    """fake_refresh that leaves (start, end) of its run in the workspace."""
    start = _clock()
    time.sleep(0.4)
    result = fake_refresh(ws, request)
    (ws.root / f"ran-{request.jurisdiction}.json").write_text(json.dumps([start, _clock()]))
    return result


def _requests(js: list[str]) -> list[RefreshRequest]:
    return [
        RefreshRequest(
            actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
        )
        for j in js
    ]


def _interval(root: Path, j: str) -> tuple[float, float]:
    start, end = json.loads((root / f"ran-{j}.json").read_text())
    return start, end


def test_sizes_parse_and_nonsense_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_size("10G") == 10 * GIB
    assert parse_size("10GiB") == 10 * GIB
    assert parse_size("512m") == 512 * 2**20
    assert parse_size("1.5G") == int(1.5 * GIB)
    assert parse_size("2000") == 2000
    for bad in ("", "ten", "-1G", "0", "5X"):
        with pytest.raises(UsageError, match="not a size"):
            parse_size(bad)
    monkeypatch.setenv("PGOV_MEMORY_BUDGET", "3G")
    assert resolve_budget(None) == 3 * GIB
    assert resolve_budget("1G") == GIB  # an explicit budget wins over the environment
    monkeypatch.delenv("PGOV_MEMORY_BUDGET")
    default = resolve_budget(None)
    assert default is None or 0 < default < 2**50  # 80 % of what is available now


def _size(subjects: int, data: int) -> JurisdictionSize:
    return JurisdictionSize(subjects=subjects, rows=subjects * 10, data_bytes=data)


def test_estimates_use_own_peak_then_workspace_rate_then_default() -> None:
    history = {
        "EU-DE/kyc_aml": {
            "subjects": 1000,
            "data_bytes": 10**6,
            "peak_bytes": BASE_BYTES + 4 * 10**6,
        },
        "UK/marketing_segmentation": {
            "subjects": 1000,
            "data_bytes": 10**6,
            "peak_bytes": BASE_BYTES + 2 * 10**6,
        },
        # an entry written before data sizes were recorded: its own subjects scale it
        "US-CA/kyc_aml": {"subjects": 100, "peak_bytes": GIB},
    }
    sizes = {
        "EU-DE": _size(2000, 2 * 10**6),
        "UK": _size(500, 5 * 10**5),
        "SG": _size(100, 10**5),
        "US-CA": _size(300, 10**6),
    }
    jobs = [("EU-DE", "kyc_aml"), ("SG", "kyc_aml"), ("SG", "credit"), ("BR", "kyc_aml")]
    de, sg, sg_other, br = estimate(jobs, history, sizes)
    # its own peak, grown with its data (twice as much now)
    assert de.basis == "measured" and de.bytes == int((BASE_BYTES + 4 * 10**6) * 2 * MARGIN)
    # no figure of its own: a process's base plus the workspace's peak per data byte for
    # this purpose (4 per byte above the base)
    assert sg.basis == "workspace rate" and sg.data_bytes == 10**5
    assert sg.bytes == int((BASE_BYTES + 10**5 * 4) * MARGIN)
    # no figure for the purpose either: the largest rate of any purpose
    assert sg_other.basis == "workspace rate" and sg_other.bytes == sg.bytes
    # nothing known about the jurisdiction: nothing to go by
    assert br.basis == "unknown" and br.bytes is None
    [ca] = estimate([("US-CA", "kyc_aml")], history, sizes)
    assert ca.basis == "measured" and ca.bytes == int(GIB * 3 * MARGIN)
    fresh_kyc, fresh_other = estimate([("SG", "kyc_aml"), ("SG", "credit")], {}, sizes)
    assert fresh_kyc.basis == "default rate"
    assert fresh_kyc.bytes == int(BASE_BYTES + 10**5 * DEFAULT_PEAK_PER_DATA_BYTE["kyc_aml"])
    assert fresh_other.bytes == int(BASE_BYTES + 10**5 * DEFAULT_PEAK_PER_DATA_BYTE_OTHER)
    # sources without a size (data 0): subjects, at the default per subject
    [by_subjects] = estimate([("SG", "kyc_aml")], {}, {"SG": _size(100, 0)})
    assert by_subjects.basis == "subjects rate"
    assert by_subjects.bytes == BASE_BYTES + 100 * DEFAULT_BYTES_PER_SUBJECT


def test_subjects_are_counted_per_jurisdiction_from_the_subjects_source(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    assert jurisdiction_sizes(root) == {}  # no data yet: no sizes, no failure
    (root / "data").mkdir()
    pl.DataFrame(
        {"customer_id": ["a", "b", "c", "d"], "jurisdiction": ["UK", "UK", "SG", None]}
    ).write_parquet(root / "data" / "crm.parquet")
    sizes = jurisdiction_sizes(root)
    assert {j: s.subjects for j, s in sizes.items()} == {"UK": 2, "SG": 1}


def test_each_job_runs_in_a_fresh_process_and_its_peak_is_recorded(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    js = ["EU-DE", "UK", "SG"]
    outcomes = run_all(root, _requests(js), "local", None, 120, fake_refresh, max_workers=2)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    # three jobs on two workers, three processes: no job inherits another's memory
    assert len({o.manifest["ran_in_pid"] for o in outcomes if o.manifest}) == 3
    history = load_history(root)
    assert sorted(history) == [f"{j}/kyc_aml" for j in sorted(js)]
    assert all(h["peak_bytes"] > 10 * 2**20 for h in history.values())  # a Python process


def test_jobs_that_do_not_fit_the_budget_together_never_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test's own process (pytest, its size depending on what ran before) takes nothing
    # off the budget here: the budget arithmetic below is about the jobs alone.
    monkeypatch.setattr(local, "_own_rss", lambda: 0)
    root = write_workspace(tmp_path / "ws")
    record_peaks(
        root,
        [
            ("UK", "kyc_aml", None, None, 7 * GIB),
            ("EU-DE", "kyc_aml", None, None, 6 * GIB),
            ("SG", "kyc_aml", None, None, 1 * GIB),
        ],
    )
    outcomes = run_all(
        root,
        _requests(["SG", "EU-DE", "UK"]),
        "local",
        None,
        120,
        timed_refresh,
        max_workers=2,
        memory_budget="8G",
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert [o.jurisdiction for o in outcomes] == ["SG", "EU-DE", "UK"]  # request order kept
    uk, de, sg = (_interval(root, j) for j in ("UK", "EU-DE", "SG"))
    # 7.7 GiB (UK, with margin) leaves no room for anything under 8 GiB: UK runs alone, first.
    # (SG, 1.1, fits next to EU-DE, 6.6: whether those two overlap is up to the clock.)
    assert uk[1] <= de[0] and uk[1] <= sg[0]


def test_a_job_larger_than_the_whole_budget_still_runs_alone(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    record_peaks(
        root, [("UK", "kyc_aml", None, None, 50 * GIB), ("SG", "kyc_aml", None, None, GIB)]
    )
    outcomes = run_all(
        root,
        _requests(["UK", "SG"]),
        "local",
        None,
        120,
        timed_refresh,
        max_workers=2,
        memory_budget="4G",
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    uk, sg = _interval(root, "UK"), _interval(root, "SG")
    assert uk[1] <= sg[0] or sg[1] <= uk[0]
