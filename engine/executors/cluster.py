"""A Dask cluster on this machine whose workers advertise region resources.

For demos, tests and benchmarks: one scheduler plus N workers per region, each worker
started with ``resources={"region-<R>": 1}``, so a region's refreshes run one at a time per
worker and only there. Everything binds to 127.0.0.1. Production runs one worker pool per
region on that region's hosts (docs/runbook-dask.md); this is the same shape, local.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.executors.regions import resource_name


def region_worker_specs(
    regions: Sequence[str], workers_per_region: int, processes: bool, nthreads: int = 1
) -> dict[str, dict[str, Any]]:
    from distributed import Nanny, Worker

    specs: dict[str, dict[str, Any]] = {}
    for region in regions:
        for i in range(workers_per_region):
            specs[f"{region}-{i}"] = {
                "cls": Nanny if processes else Worker,
                "options": {
                    "nthreads": nthreads,
                    "host": "127.0.0.1",
                    # One refresh per worker at a time: a refresh is already parallel inside.
                    "resources": {resource_name(region): 1},
                    "dashboard": False,
                },
            }
    return specs


def region_cluster(
    regions: Sequence[str],
    workers_per_region: int = 1,
    *,
    processes: bool = False,
    port: int = 0,
    nthreads: int = 1,
) -> Any:
    """Start a SpecCluster (use as a context manager); `.scheduler_address` to connect."""
    from distributed import Scheduler, SpecCluster

    if workers_per_region < 0:
        raise ValueError("workers_per_region must be >= 0")
    regions = [r.strip().upper() for r in regions if r.strip()]
    return SpecCluster(
        workers=region_worker_specs(regions, workers_per_region, processes, nthreads),
        scheduler={
            "cls": Scheduler,
            "options": {"host": "127.0.0.1", "port": port, "dashboard": False},
        },
        silence_logs=40,  # ERROR: worker chatter is not the user's business
        name="pgov-regions",
    )
