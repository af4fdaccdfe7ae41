"""`pgov cluster local` starts region workers in their own processes; a fan-out uses them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

from distributed import Client
from test_executor_fakes import fake_refresh, write_workspace
from test_locks_support import support_env

from engine.config import Purpose
from engine.executor import run_all
from engine.request import RefreshRequest


def test_cluster_command_serves_regions_and_runs_each_job_in_its_region(tmp_path: Path) -> None:
    pgov = str(Path(sys.executable).with_name("pgov"))
    proc = subprocess.Popen(
        [
            pgov,
            "cluster",
            "local",
            "--regions",
            "EU,UK",
            "--workers-per-region",
            "1",
            "--port",
            "0",
            "--duration",
            "300",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=support_env(),  # workers import the fake refresh from tests/
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), address
        with Client(address, set_as_default=False, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            info = client.scheduler_info(n_workers=-1)["workers"]
            by_region = {
                next(iter(w["resources"])).removeprefix("region-"): (addr, w)
                for addr, w in info.items()
            }
        assert set(by_region) == {"EU", "UK"}

        root = write_workspace(tmp_path / "ws")
        reqs = [
            RefreshRequest(
                actor="ops", jurisdiction=j, purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1)
            )
            for j in ["EU-DE", "UK", "US-CA"]
        ]
        outcomes = {
            o.jurisdiction: o for o in run_all(root, reqs, "dask", address, 120, fake_refresh)
        }
        assert outcomes["EU-DE"].worker == by_region["EU"][0]
        assert outcomes["UK"].worker == by_region["UK"][0]
        # real worker processes, not this one
        assert (
            outcomes["EU-DE"].manifest and outcomes["EU-DE"].manifest["ran_in_pid"] != os.getpid()
        )
        assert not outcomes["US-CA"].ok and "region US" in (outcomes["US-CA"].error or "")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
