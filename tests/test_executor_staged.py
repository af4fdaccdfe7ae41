"""Staged admission in the local pool: a job reserves only what its remaining stages need,
one job may start staged and wait between stages for memory, reservations never exceed the
budget, nothing deadlocks, and anything the history does not say falls back to the whole
estimate. Pure ledger tests on synthetic estimates, then one real pool run."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_executor_fakes import fake_refresh, write_workspace

from engine.config import Purpose
from engine.executors import local
from engine.executors.admission import TAIL, Ledger, Need, pick
from engine.executors.memory import MARGIN, estimate, load_history, record_peaks
from engine.executors.sizing import JurisdictionSize
from engine.progress import ProgressEvent
from engine.request import RefreshRequest
from engine.workspace import Workspace

GIB = 2**30
STAGES = ("policy", "sources", "enforce", "features", "segment", "kyc", "store", TAIL)


def _need(whole: float, peaks: tuple[float, ...] | None) -> Need:
    if peaks is None:
        return Need(int(whole * GIB))
    return Need(
        int(whole * GIB), tuple((s, int(g * GIB)) for s, g in zip(STAGES, peaks, strict=True))
    )


# Shaped like the 10M kyc_aml jobs' steady peaks with the margin (EU-DE, UK, SG).
DE = _need(8.4, (0.4, 4.8, 8.4, 8.35, 4.9, 2.7, 2.7, 2.7))
UK = _need(7.4, (0.4, 4.2, 7.4, 7.3, 4.3, 2.4, 2.4, 2.4))
SG = _need(2.7, (0.4, 1.5, 2.7, 2.6, 1.5, 1.0, 1.0, 1.0))
BUDGET = int(9.65 * GIB)


def test_remaining_and_following_fall_back_to_the_whole_estimate_when_unknown() -> None:
    assert DE.first() == int(0.4 * GIB)
    assert DE.remaining(None) == DE.whole  # nothing ended yet
    assert DE.remaining("sources") == int(8.4 * GIB)
    assert DE.remaining("features") == int(4.9 * GIB)
    assert DE.remaining("store") == int(2.7 * GIB)  # the tail after the last stage
    assert DE.following("features") == int(4.9 * GIB)
    # a stage the history does not name, or nothing known after it: the whole job
    assert DE.remaining("approve") == DE.following("approve") == DE.whole
    assert DE.remaining(TAIL) == DE.whole
    plain = _need(5, None)
    assert plain.first() == plain.remaining("sources") == plain.following("policy") == plain.whole


def test_a_large_job_starts_staged_beside_a_full_one_and_waits_for_each_stage() -> None:
    ledger = Ledger(BUDGET)
    needs = [DE, UK]
    assert pick([0, 1], needs, ledger) == (0, False)
    ledger.start(0, DE, staged=False)
    # UK does not fit in full beside EU-DE's 8.4, but its first window (0.4) does
    assert pick([1], needs, ledger) == (1, True)
    assert ledger.start(1, UK, staged=True) == int(0.4 * GIB)
    assert ledger.committed() <= BUDGET
    # UK's sources (4.2) do not fit while EU-DE may still reach 8.4: it waits
    assert ledger.stage_done(1, "policy") is False
    assert ledger.stage_done(0, "policy") and ledger.stage_done(0, "sources")
    assert ledger.settle() == []
    assert ledger.stage_done(0, "enforce")  # features still 8.35 ahead
    assert ledger.settle() == []
    assert ledger.stage_done(0, "features")  # 4.9 left: UK's sources fit beside it
    assert ledger.settle() == [1]
    assert ledger.slots[1].reserved == int(4.2 * GIB) and not ledger.slots[1].full
    assert ledger.committed() <= BUDGET
    # UK's enforce (7.4) waits until EU-DE ends
    assert ledger.stage_done(1, "sources") is False
    for stage in ("segment", "kyc", "store"):
        assert ledger.stage_done(0, stage)
        assert ledger.settle() == []
        assert ledger.committed() <= BUDGET
    ledger.end(0)
    assert ledger.settle() == [1]
    # alone, UK reserves everything it has left and is in full: it never waits again
    assert ledger.slots[1].full and ledger.slots[1].reserved == int(7.4 * GIB)
    assert ledger.stage_done(1, "enforce")


def test_only_one_job_is_staged_and_only_with_stage_peaks_and_within_the_budget() -> None:
    ledger = Ledger(BUDGET)
    ledger.start(0, DE, staged=False)
    # no stage peaks: never staged (the whole estimate for its whole life, as before)
    assert pick([1], [DE, _need(7.4, None)], ledger) is None
    # larger than the budget: never beside anything, staged or not
    assert pick([1], [DE, _need(12, (0.4, 4, 12, 12, 5, 3, 3, 3))], ledger) is None
    ledger.start(1, UK, staged=True)
    # a staged job is running: no second one, even with room for its first window
    assert pick([2], [DE, UK, UK], ledger) is None
    # but a job that fits in full still may (here nothing does: 8.4 + 0.4 + 2.7 > 9.65)
    assert pick([2], [DE, UK, SG], ledger) is None
    ledger.end(0)
    assert pick([2], [DE, UK, SG], ledger) == (2, False)


def test_nothing_running_means_no_pick_for_a_job_over_the_budget() -> None:
    # the pool itself runs such a job alone (job_over_memory_budget), never staged
    assert pick([0], [_need(12, (0.4, 4, 12, 12, 5, 3, 3, 3))], Ledger(BUDGET)) is None
    assert pick([0], [_need(12, None)], Ledger(None)) == (0, False)  # no limit at all


def test_a_stage_the_history_does_not_name_restores_the_whole_reservation() -> None:
    ledger = Ledger(BUDGET)
    ledger.start(0, DE, staged=False)
    ledger.stage_done(0, "features")
    assert ledger.slots[0].reserved == int(4.9 * GIB)
    ledger.stage_done(0, "approve")  # not in its history: fail safe
    assert ledger.slots[0].reserved == DE.whole
    assert pick([1], [DE, SG], ledger) == (1, True)  # SG (2.7) no longer fits in full


def _simulate(needs: list[Need], budget: int, seconds: list[list[float]], workers: int) -> float:
    """A discrete-event run of the pool's rules: each job's stages take the given seconds;
    a job waiting between stages does not advance. Asserts the budget at every step and
    that every job ends; returns the makespan."""
    pending = sorted(range(len(needs)), key=lambda i: (-needs[i].whole, i))
    ledger = Ledger(budget)
    clock = 0.0
    stage_of: dict[int, int] = {}  # job -> index of the window it is in
    ends_at: dict[int, float] = {}  # job -> when its current window ends (running only)
    for _ in range(10_000):
        while pending and len(ledger.slots) < workers:
            choice = pick(pending, needs, ledger)
            if choice is None:
                if ledger.slots:
                    break
                choice = (pending[0], False)
            i, staged = choice
            pending.remove(i)
            ledger.start(i, needs[i], staged)
            stage_of[i], ends_at[i] = 0, clock + seconds[i][0]
            assert ledger.committed() <= budget or len(ledger.slots) == 1
        if not ledger.slots:
            assert not pending
            return clock
        i = min(ends_at, key=lambda j: (ends_at[j], j))
        clock = ends_at.pop(i)
        k = stage_of[i]
        if k + 1 == len(STAGES):
            ledger.end(i)
        elif ledger.stage_done(i, STAGES[k]):
            stage_of[i], ends_at[i] = k + 1, clock + seconds[i][k + 1]
        for j in ledger.settle():
            stage_of[j] += 1
            ends_at[j] = clock + seconds[j][stage_of[j]]
        assert ledger.committed() <= budget or len(ledger.slots) == 1
        assert ends_at or not ledger.slots, "deadlock: jobs running, none advancing"
    raise AssertionError("did not finish")


def test_a_synthetic_kyc_fan_out_finishes_within_the_budget_and_sooner_staged() -> None:
    # Ten jobs shaped like the 10M kyc_aml ones (whole GiB with the margin; windows scale)
    wholes = [8.4, 7.4, 6.9, 6.4, 5.4, 5.0, 4.9, 4.5, 3.0, 2.7]
    shape = (0.05, 0.57, 1.0, 0.99, 0.58, 0.32, 0.32, 0.32)
    times = (3.0, 10.0, 16.0, 7.0, 7.0, 1.0, 1.0, 1.0)
    staged = [_need(w, tuple(w * f for f in shape)) for w in wholes]
    plain = [_need(w, None) for w in wholes]
    seconds = [[t * w / 8.4 for t in times] for w in wholes]
    with_stages = _simulate(staged, BUDGET, seconds, workers=2)
    without = _simulate(plain, BUDGET, seconds, workers=2)
    serial = sum(sum(s) for s in seconds)
    assert with_stages < without <= serial


def test_stage_peaks_are_kept_scaled_like_the_whole_and_bad_ones_refused(tmp_path: Path) -> None:
    windows = [("policy", GIB // 4), ("enforce", 4 * GIB), (TAIL, GIB)]
    record_peaks(
        tmp_path,
        [("EU-DE", "kyc_aml", 10, 1000, 4 * GIB), ("SG", "kyc_aml", 5, 500, GIB)],
        {"EU-DE/kyc_aml": windows},
    )
    history = load_history(tmp_path)
    assert "stages" not in history["SG/kyc_aml"]
    sizes = {"EU-DE": JurisdictionSize(10, 100, 2000), "SG": JurisdictionSize(5, 50, 500)}
    de, sg = estimate([("EU-DE", "kyc_aml"), ("SG", "kyc_aml")], history, sizes)
    assert sg.stages is None
    # twice the data since: the whole and every window grow alike, with the margin
    assert de.bytes == int(8 * GIB * MARGIN)
    assert de.stages is not None and [s for s, _ in de.stages] == ["policy", "enforce", TAIL]
    assert abs(de.stages[1][1] - de.bytes) <= 1
    path = tmp_path / "logs" / "job-memory.json"
    data = json.loads(path.read_text())
    twice = {"stage": "policy", "peak_bytes": GIB}
    data["EU-DE/kyc_aml"]["stages"] = [twice, twice]  # a stage named twice
    data["SG/kyc_aml"]["stages"] = [{"stage": "enforce", "peak_bytes": 2 * GIB}]  # > the peak
    path.write_text(json.dumps(data))
    with capture_logs() as logs:
        assert load_history(tmp_path) == {}  # refused whole: estimated as never measured
    assert {e["job"] for e in logs if e["event"] == "job_memory_entry_ignored"} == {
        "EU-DE/kyc_aml",
        "SG/kyc_aml",
    }


def test_a_window_is_the_larger_of_the_last_two_runs_and_never_above_the_whole(
    tmp_path: Path,
) -> None:
    job, sizes = ("EU-DE", "kyc_aml"), {"EU-DE": JurisdictionSize(10, 100, 1000)}
    first = [("sources", 3 * GIB), ("enforce", 8 * GIB), ("store", 2 * GIB), (TAIL, GIB)]
    steady = [("sources", 3 * GIB), ("enforce", 6 * GIB), ("store", 5 * GIB // 2), (TAIL, GIB)]
    record_peaks(tmp_path, [(*job, 10, 1000, 8 * GIB)], {"EU-DE/kyc_aml": first})
    record_peaks(tmp_path, [(*job, 10, 1000, 6 * GIB)], {"EU-DE/kyc_aml": steady})
    (est,) = estimate([job], load_history(tmp_path), sizes)
    assert est.bytes == int(6 * GIB * MARGIN) and est.stages is not None
    windows = dict(est.stages)
    # the steady run's larger store window, the first run's larger enforce window, capped at
    # the whole estimate (a window above it could keep a staged job waiting for ever)
    assert abs(windows["store"] - 5 * GIB // 2 * MARGIN) <= 1
    assert windows["enforce"] == est.bytes
    assert abs(windows["sources"] - 3 * GIB * MARGIN) <= 1
    # a third run forgets the first: only the last two count (else enforce would be 8 GiB)
    record_peaks(tmp_path, [(*job, 10, 1000, 9 * GIB)], {"EU-DE/kyc_aml": steady})
    (est,) = estimate([job], load_history(tmp_path), sizes)
    assert est.bytes == int(9 * GIB * MARGIN) and est.stages is not None
    assert abs(dict(est.stages)["enforce"] - 6 * GIB * MARGIN) <= 1
    # a hand-edited earlier window named twice refuses the entry whole
    path = tmp_path / "logs" / "job-memory.json"
    data = json.loads(path.read_text())
    data["EU-DE/kyc_aml"]["earlier_stages"] = [{"stage": "store", "peak_bytes": GIB}] * 2
    path.write_text(json.dumps(data))
    assert load_history(tmp_path) == {}


# ---- one real pool run: two processes, the pipe, a staged start that must wait ----------


def staged_refresh(ws: Workspace, request: RefreshRequest, progress: Any = None) -> object:
    """fake_refresh that reports stages like the real refresh; UK holds after its sources
    until the test drops a file (so the other job's wait is certain, not a race)."""
    import time

    task = f"{request.jurisdiction}/{request.purpose.value}"
    for stage in ("policy", "sources", "enforce"):
        if stage == "enforce" and request.jurisdiction == "UK":
            for _ in range(6000):
                if (ws.root / "release-UK").exists():
                    break
                time.sleep(0.01)
        if progress is not None:
            progress(ProgressEvent(task, stage, 0.0))
    return fake_refresh(ws, request)


def _requests(js: list[str]) -> list[RefreshRequest]:
    return [
        RefreshRequest(
            actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
        )
        for j in js
    ]


@pytest.mark.slow
def test_a_real_pool_starts_a_job_staged_holds_it_between_stages_and_records_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.executor import run_all

    monkeypatch.setattr(local, "_own_rss", lambda: 0)
    root = write_workspace(tmp_path / "ws")
    # UK 6 GiB, high only in enforce; SG 5 GiB: 6.6 + 5.5 (with the margin) > 8, so SG
    # cannot start in full beside UK; its first window (1.1) can.
    record_peaks(
        root,
        [("UK", "kyc_aml", None, None, 6 * GIB), ("SG", "kyc_aml", None, None, 5 * GIB)],
        {
            "UK/kyc_aml": [("policy", GIB), ("sources", GIB), ("enforce", 6 * GIB), (TAIL, GIB)],
            "SG/kyc_aml": [
                ("policy", GIB),
                ("sources", 2 * GIB),
                ("enforce", 5 * GIB),
                (TAIL, GIB),
            ],
        },
    )
    out: list[Any] = []
    with capture_logs() as logs:
        runner = threading.Thread(
            target=lambda: out.extend(
                run_all(
                    root,
                    _requests(["SG", "UK"]),
                    "local",
                    None,
                    120,
                    staged_refresh,
                    max_workers=2,
                    memory_budget="8G",
                )
            )
        )
        runner.start()
        try:
            # SG has said its policy stage ended and waits: UK may still reach 6.6 GiB
            for _ in range(6000):
                if any(e["event"] == "job_waiting_at_stage" for e in list(logs)):
                    break
                threading.Event().wait(0.01)
        finally:
            (root / "release-UK").touch()
            runner.join(120)
    assert not runner.is_alive()
    assert all(o.ok for o in out), [o.error for o in out]
    admitted = {e["job"]: e for e in logs if e["event"] == "job_admitted"}
    assert admitted["UK/kyc_aml"]["staged"] is False
    # a staged start beside it waits rather than competes: UK keeps every core
    assert admitted["UK/kyc_aml"]["threads"] == "default"
    sg = admitted["SG/kyc_aml"]
    assert sg["staged"] is True and sg["running"] == ["UK/kyc_aml"]
    assert sg["threads"] == "default"  # it runs its heavy stages after UK: every core
    [wait] = [e for e in logs if e["event"] == "job_waiting_at_stage"]
    assert (wait["job"], wait["stage"]) == ("SG/kyc_aml", "policy")
    granted = [e for e in logs if e["event"] == "job_stage_granted"]
    assert granted and granted[0]["job"] == "SG/kyc_aml"
    # every reservation logged within the budget
    committed = [e["committed_gib"] for e in logs if "committed_gib" in e]
    assert committed and max(committed) <= 8
    # the children measured their own windows: recorded for the next fan-out
    history = load_history(root)
    for job in ("UK/kyc_aml", "SG/kyc_aml"):
        names = [s["stage"] for s in history[job]["stages"]]
        assert names == ["policy", "sources", "enforce", TAIL]
        assert max(s["peak_bytes"] for s in history[job]["stages"]) <= history[job]["peak_bytes"]
