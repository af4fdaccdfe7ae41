"""run_all sequentially and on a local process pool: one job per jurisdiction, manifests back."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from test_executor_fakes import crashing_refresh, denying_refresh, fake_refresh, write_workspace

from engine.config import Purpose
from engine.errors import UsageError
from engine.executor import raised_at, run_all
from engine.executors.regions import parse_region_map, region_of
from engine.request import RefreshRequest
from engine.versions import check_chain, list_versions
from engine.workspace import Workspace

JS = ["EU-DE", "EU-FR", "UK", "US-CA", "SG", "BR"]


def _requests(js: list[str], purpose: Purpose = Purpose.KYC_AML) -> list[RefreshRequest]:
    return [
        RefreshRequest(actor="ops", jurisdiction=j, purpose=purpose, as_of=date(2026, 11, 1))
        for j in js
    ]


def test_regions_follow_the_jurisdiction_prefix_and_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert [region_of(j) for j in JS] == ["EU", "EU", "UK", "US", "SG", "BR"]
    assert region_of("CH", {"CH": "eu"}) == "EU"
    monkeypatch.setenv("PGOV_REGION_MAP", "CH=EU, EU-IE=UK")
    assert region_of("CH") == "EU"
    assert region_of("EU-IE") == "UK"
    assert region_of("EU-IE", {"EU-IE": "EU"}) == "EU"  # caller's mapping wins
    with pytest.raises(UsageError):
        parse_region_map("CH")
    with pytest.raises(UsageError):
        parse_region_map("CH=EU,CH=UK")


def test_sequential_runs_every_jurisdiction_in_order(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    outcomes = run_all(root, _requests(JS), "sequential", None, 60, fake_refresh)
    assert [o.jurisdiction for o in outcomes] == JS
    assert all(o.ok for o in outcomes)
    assert all(o.manifest and o.manifest["version_id"] == "v0001" for o in outcomes)
    assert {o.worker for o in outcomes} == {f"pid {os.getpid()} on {os.uname().nodename}"}


def test_local_pool_runs_jurisdictions_in_other_processes(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    outcomes = run_all(root, _requests(JS), "local", None, 120, fake_refresh, max_workers=2)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    pids = {o.manifest["ran_in_pid"] for o in outcomes if o.manifest}
    assert os.getpid() not in pids
    for j in JS:
        assert [v.version_id for v in list_versions(ws, j, "kyc_aml")] == ["v0001"]
    # a second fan-out extends every chain by one, and the chains hold
    again = run_all(root, _requests(JS), "sequential", None, 120, fake_refresh)
    assert [o.manifest["version_id"] for o in again if o.manifest] == ["v0002"] * len(JS)
    assert all(check_chain(ws, j, "kyc_aml") == [] for j in JS)


def test_same_chain_twice_in_one_fan_out_serialises_on_the_lock(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    ws = Workspace.open(root)
    outcomes = run_all(root, _requests(["UK"] * 3), "local", None, 120, fake_refresh)
    assert all(o.ok for o in outcomes)
    assert sorted(o.manifest["version_id"] for o in outcomes if o.manifest) == [
        "v0001",
        "v0002",
        "v0003",
    ]
    assert check_chain(ws, "UK", "kyc_aml") == []


def test_a_failing_jurisdiction_does_not_stop_the_others(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    outcomes = run_all(
        root, _requests(["EU-DE", "UK", "SG"]), "sequential", None, 120, denying_refresh
    )
    by_j = {o.jurisdiction: o for o in outcomes}
    assert by_j["EU-DE"].ok and by_j["SG"].ok
    assert not by_j["UK"].ok and by_j["UK"].manifest is None
    assert by_j["UK"].error == "PolicyDenied: actor may not run here"
    crashed = run_all(root, _requests(["BR"]), "sequential", None, 60, crashing_refresh)
    assert not crashed[0].ok and crashed[0].error is not None
    # An unexpected exception (a bug) says where it was raised: code locations, no values.
    assert crashed[0].error.startswith("RuntimeError: boom [raised at ")
    assert "tests/test_executor_fakes.py:" in crashed[0].error
    assert "in crashing_refresh]" in crashed[0].error


def test_a_crash_inside_a_library_names_our_frame_and_the_library_frame() -> None:
    import json

    try:
        json.loads("{")  # raised inside the standard library, called from here
    except ValueError as exc:
        where = raised_at(exc)
    ours, theirs = where.split(" -> ")
    assert ours.startswith("tests/test_executor_local.py:") and ours.endswith(
        "in test_a_crash_inside_a_library_names_our_frame_and_the_library_frame"
    )
    assert theirs.startswith("decoder.py:") and "{" not in where


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    root = write_workspace(tmp_path / "ws")
    with pytest.raises(UsageError, match="unknown executor"):
        run_all(root, _requests(["UK"]), "threads", None, 60, fake_refresh)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--scheduler"):
        run_all(root, _requests(["UK"]), "dask", None, 60, fake_refresh)
