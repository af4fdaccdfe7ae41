"""The pool's memory history (logs/job-memory.json) is shared state: checked on the way in,
written whole under a lock, so no reader ever crashes on it and no writer loses another's."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from test_executor_fakes import fake_refresh, write_workspace
from test_locks_support import support_env

from engine.config import Purpose
from engine.executor import run_all
from engine.executors.memory import HISTORY, estimate, load_history, record_peaks
from engine.executors.sizing import JurisdictionSize
from engine.request import RefreshRequest

GIB = 2**30


def _history(root: Path) -> Path:
    return root / "logs" / HISTORY


def test_malformed_entries_are_skipped_and_the_rest_still_counts(tmp_path: Path) -> None:
    path = _history(tmp_path)
    path.parent.mkdir(parents=True)
    good = {"subjects": 10, "data_bytes": 1000, "peak_bytes": GIB}
    path.write_text(
        json.dumps(
            {
                "EU-DE/kyc_aml": good,
                "UK/kyc_aml": "7516192768",  # a string where an object belongs
                "SG/kyc_aml": {"peak_bytes": -5},
                "BR/kyc_aml": [GIB],
                "US-CA/kyc_aml": {"peak_bytes": "1G"},
                "no-purpose": good,
            }
        )
    )
    history = load_history(tmp_path)
    assert history == {"EU-DE/kyc_aml": good}
    sizes = {j: JurisdictionSize(10, 100, 1000) for j in ("EU-DE", "UK", "SG")}
    de, uk, sg = estimate(
        [("EU-DE", "kyc_aml"), ("UK", "kyc_aml"), ("SG", "kyc_aml")], history, sizes
    )
    assert de.basis == "measured"
    assert uk.basis == sg.basis == "workspace rate"  # as if never measured: no crash


def test_an_unreadable_file_reads_as_no_history(tmp_path: Path) -> None:
    path = _history(tmp_path)
    path.parent.mkdir(parents=True)
    for text in ('{"EU-DE/kyc_aml": {"peak_by', '["EU-DE/kyc_aml"]', '"just a string"', ""):
        path.write_text(text)
        assert load_history(tmp_path) == {}, text


def test_a_fan_out_over_a_corrupt_history_runs_and_rewrites_it_whole(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    _history(root).parent.mkdir(parents=True, exist_ok=True)
    # Before entries were checked, the string crashed the scheduling process ('str' object
    # has no attribute 'get') and the negative peak made a negative estimate.
    _history(root).write_text('{"UK/kyc_aml": "not an object", "SG/kyc_aml": {"peak_bytes": -1}}')
    requests = [
        RefreshRequest(
            actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
        )
        for j in ("UK", "SG")
    ]
    outcomes = run_all(root, requests, "local", None, 120, fake_refresh, max_workers=2)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    doc = json.loads(_history(root).read_bytes())
    assert sorted(doc) == ["SG/kyc_aml", "UK/kyc_aml"]
    assert all(isinstance(e, dict) and e["peak_bytes"] > 0 for e in doc.values())
    assert not list(_history(root).parent.glob("*.tmp"))


WRITERS = 3
EACH = 12

_WRITER = """
import pathlib, sys, time
from engine.executors.memory import record_peaks
root, name, gate = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[4])
n = int(sys.argv[3])
while not gate.exists():
    time.sleep(0.005)
for i in range(n):
    # one job per call: every call reads, updates and replaces the whole file
    record_peaks(root, [(f"{name}-{i}", "kyc_aml", i, 1000 + i, 2**30 + i)])
"""


def test_writers_finishing_together_lose_no_figure(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), f"W{w}", str(EACH), str(gate)],
            env=support_env(),
        )
        for w in range(WRITERS)
    ]
    gate.touch()  # release every writer at once
    assert [p.wait(timeout=120) for p in procs] == [0] * WRITERS
    history = load_history(tmp_path)
    assert sorted(history) == sorted(
        f"W{w}-{i}/kyc_aml" for w in range(WRITERS) for i in range(EACH)
    )
    assert all(history[f"W0-{i}/kyc_aml"]["peak_bytes"] == GIB + i for i in range(EACH))
    assert not list(_history(tmp_path).parent.glob("*.tmp"))
    record_peaks(tmp_path, [])  # nothing measured: nothing written, nothing lost
    assert load_history(tmp_path) == history
