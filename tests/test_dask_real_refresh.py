"""Real refreshes on region workers: residency holds, versions verify, US fails closed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from distributed import Client
from test_crash_refresh import ACTOR, AS_OF, _sample_workspace

from engine.config import Purpose
from engine.executor import run_all
from engine.executors.cluster import region_cluster
from engine.request import RefreshRequest
from engine.versions import check_chain, list_versions


@pytest.mark.slow
def test_real_refreshes_run_in_their_regions_and_publish_verifiable_versions(
    tmp_path: Path,
) -> None:
    from lineage.signing import TrustStore
    from lineage.statement import verify_version

    ws = _sample_workspace(tmp_path / "ws", customers=1500)
    reqs = [
        RefreshRequest(
            actor=ACTOR, jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date.fromisoformat(AS_OF)
        )
        for j in ["EU-DE", "UK", "US-CA"]
    ]
    with region_cluster(["EU", "UK"], 1, processes=False) as cluster:
        with Client(cluster.scheduler_address, set_as_default=False) as client:
            workers = {
                next(iter(w["resources"])).removeprefix("region-"): a
                for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
            }
        outcomes = {
            o.jurisdiction: o
            for o in run_all(ws.root, reqs, "dask", cluster.scheduler_address, 600)
        }

    trust = TrustStore.load(ws.path(ws.config.keys.trust_file))
    for j, region in (("EU-DE", "EU"), ("UK", "UK")):
        o = outcomes[j]
        assert o.ok, o.error
        assert o.worker == workers[region]
        assert o.manifest is not None
        assert (o.manifest["jurisdiction"], o.manifest["version_id"]) == (j, "v0001")
        [v] = list_versions(ws, j, "kyc_aml")
        assert verify_version(v.path, trust, workspace_root=ws.root).ok
        assert check_chain(ws, j, "kyc_aml") == []
    us = outcomes["US-CA"]
    assert not us.ok and "no Dask worker serves region US" in (us.error or "")
    assert list_versions(ws, "US-CA") == []
