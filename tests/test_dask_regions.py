"""Dask fan-out with data residency: each jurisdiction's refresh runs only in its region.

A local cluster with one region-EU and one region-UK worker (threads, 127.0.0.1). Every
task reports the worker that ran it; jurisdictions without a worker in their region fail
closed at once; a task that cannot start before the timeout is cancelled and fails closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from distributed import Client
from test_executor_fakes import blocking_refresh, fake_refresh, write_workspace

from engine.config import Purpose
from engine.executor import run_all, run_job
from engine.executors.cluster import region_cluster
from engine.request import RefreshRequest


def _requests(js: list[str]) -> list[RefreshRequest]:
    return [
        RefreshRequest(
            actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
        )
        for j in js
    ]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with region_cluster(["EU", "UK"], 1, processes=False) as c:
        yield c


def _workers_by_region(cluster: Any) -> dict[str, str]:
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        info = client.scheduler_info(n_workers=-1)["workers"]
    out = {}
    for address, w in info.items():
        for res in w["resources"]:
            out[res.removeprefix("region-")] = address
    return out


def test_each_jurisdiction_runs_only_on_its_regions_worker(tmp_path: Path, cluster: Any) -> None:
    root = write_workspace(tmp_path / "ws")
    workers = _workers_by_region(cluster)
    assert set(workers) == {"EU", "UK"}
    js = ["EU-DE", "UK", "EU-FR", "EU-IT", "UK"]
    outcomes = run_all(root, _requests(js), "dask", cluster.scheduler_address, 60, fake_refresh)
    assert [o.jurisdiction for o in outcomes] == js
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for o in outcomes:
        assert o.worker == workers[o.region], o
    assert {o.region for o in outcomes} == {"EU", "UK"}
    # only the manifest came back: ids, digests, counts
    assert all(o.manifest and o.manifest["jurisdiction"] == o.jurisdiction for o in outcomes)


def test_region_without_workers_fails_closed_at_once(tmp_path: Path, cluster: Any) -> None:
    root = write_workspace(tmp_path / "ws")
    outcomes = run_all(
        root,
        _requests(["US-CA", "EU-DE", "SG"]),
        "dask",
        cluster.scheduler_address,
        60,
        fake_refresh,
    )
    by_j = {o.jurisdiction: o for o in outcomes}
    assert by_j["EU-DE"].ok
    for j, region in (("US-CA", "US"), ("SG", "SG")):
        o = by_j[j]
        assert not o.ok and o.manifest is None and o.worker is None
        assert f"no Dask worker serves region {region}" in (o.error or "")
        assert "Serving: EU, UK" in (o.error or "")
    assert not (root / "versions" / "US-CA").exists()
    assert not (root / "versions" / "SG").exists()


def test_region_override_moves_work_to_another_regions_workers(
    tmp_path: Path, cluster: Any
) -> None:
    root = write_workspace(tmp_path / "ws")
    workers = _workers_by_region(cluster)
    outcomes = run_all(
        root,
        _requests(["SG"]),
        "dask",
        cluster.scheduler_address,
        60,
        fake_refresh,
        regions={"SG": "UK"},
    )
    assert outcomes[0].ok and outcomes[0].worker == workers["UK"]


def test_task_that_cannot_finish_in_time_is_cancelled_and_fails_closed(
    tmp_path: Path, cluster: Any
) -> None:
    root = write_workspace(tmp_path / "ws")
    try:
        # One EU slot: the first blocks it, so the second stays pending past the timeout.
        outcomes = run_all(
            root,
            _requests(["EU-DE", "EU-FR"]),
            "dask",
            cluster.scheduler_address,
            1.0,
            blocking_refresh,
        )
    finally:
        (root / "release").touch()
    assert [o.ok for o in outcomes] == [False, False]
    assert all("not finished within 1s on region EU" in (o.error or "") for o in outcomes)
    assert all("failing closed" in (o.error or "") for o in outcomes)


def test_worker_refuses_a_job_for_a_region_it_does_not_serve(tmp_path: Path, cluster: Any) -> None:
    root = write_workspace(tmp_path / "ws")
    workers = _workers_by_region(cluster)
    [req] = _requests(["EU-DE"])
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        # Force placement on the UK worker, as a mis-configured scheduler might.
        fut = client.submit(
            run_job,
            str(root),
            req.model_dump(mode="json"),
            "EU",
            fake_refresh,
            workers=[workers["UK"]],
            pure=False,
        )
        summary = fut.result(timeout=60)
    assert summary["manifest"] is None
    assert "does not serve region EU" in summary["error"]
    assert not (root / "versions" / "EU-DE").exists()


def test_every_placement_is_in_the_audit_log(tmp_path: Path, cluster: Any) -> None:
    import json

    from lineage.auditlog import AuditLog

    root = write_workspace(tmp_path / "ws")
    workers = _workers_by_region(cluster)
    run_all(
        root, _requests(["EU-DE", "US-CA"]), "dask", cluster.scheduler_address, 60, fake_refresh
    )
    entries = [json.loads(e) for e in AuditLog(root / "audit").entries()]
    placed = {
        e["details"]["jurisdiction"]: e["details"]
        for e in entries
        if e["type"] == "refresh_placement"
    }
    assert placed["EU-DE"]["worker"] == workers["EU"] and placed["EU-DE"]["ok"] is True
    assert placed["EU-DE"]["region"] == "EU" and placed["EU-DE"]["executor"] == "dask"
    assert placed["US-CA"]["ok"] is False and placed["US-CA"]["worker"] is None


def test_unreachable_scheduler_is_a_clear_usage_error(tmp_path: Path) -> None:
    from engine.errors import UsageError

    root = write_workspace(tmp_path / "ws")
    with pytest.raises(UsageError, match="cannot reach Dask scheduler"):
        run_all(root, _requests(["UK"]), "dask", "tcp://127.0.0.1:1", 1.0, fake_refresh)
