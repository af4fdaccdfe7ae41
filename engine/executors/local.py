"""The local pool: jurisdiction refreshes in worker processes on this machine, within memory.

Each job runs in a fresh spawned process that exits when the job ends, so the memory a
large jurisdiction's refresh held goes back to the system before the next job starts (an
allocator keeps freed pages for reuse; a long-lived worker would carry the largest job's
footprint into every later job). At most ``workers`` jobs run at once, and a job starts only
when its estimated peak fits next to the running jobs' estimates within the memory budget
(engine/executors/memory.py, sized before any job runs by engine/executors/sizing.py); the
largest job that fits goes first, small ones fill the other workers beside it, which also
keeps the last minutes from being one large job running alone. A job larger than the whole
budget waits until nothing runs, then runs alone. Every decision is logged (``job_admitted``
with the memory committed, ``job_waiting_for_memory``, ``job_over_memory_budget``), and every
job's measured peak is recorded for the next estimate. Jobs that start side by side share
the cores (THREAD_VARS): two Polars pools as wide as the machine on the same cores cost CPU
(docs/performance.md, "Local pool at 10M").

``timeout`` bounds each job from the start of the fan-out (waiting for a slot counts), as
for the other executors: a job still running then is killed (a refresh is crash-safe:
atomic publish, the lock is freed with the process), one not started is reported so.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import structlog

from engine.errors import ExitCode
from engine.executors.memory import (
    Estimate,
    estimate,
    load_history,
    record_peaks,
    resolve_budget,
)
from engine.executors.sizing import jurisdiction_sizes
from engine.request import RefreshRequest

log = structlog.get_logger(__name__)

# (root, request as JSON, region, refresh_fn) -> summary dict (engine.executor.run_job)
JobFn = Callable[[str, dict[str, Any], str, Any], dict[str, Any]]


# The native thread pools a refresh uses: Polars' own, and the OpenMP / BLAS pools under
# scikit-learn. Each reads its variable once, when the worker process first uses it.
THREAD_VARS = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _thread_env(together: int) -> dict[str, str]:
    """Thread limits for a worker that starts with ``together`` jobs running (itself
    included): the cores shared out between them, so two workers do not each run a pool as
    wide as the machine. A job that starts alone keeps every core."""
    if together <= 1 or any(v in os.environ for v in THREAD_VARS):
        return {}  # alone, or the user's own limits: they win
    share = max(1, (os.cpu_count() or 1) // together)
    return {v: str(share) for v in THREAD_VARS}


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _child(conn: Connection, job: JobFn, args: tuple[Any, ...]) -> None:
    summary = job(*args)
    # Linux reports ru_maxrss in KiB. This process ran only this job: it is the job's peak.
    summary["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send(summary)
    conn.close()


@dataclass
class _Running:
    index: int
    proc: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    estimate: int


def _own_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 2)


def run_local(
    root: str,
    requests: list[RefreshRequest],
    regions: list[str],
    timeout: float,
    job: JobFn,
    refresh_fn: Any,
    workers: int | None,
    memory_budget: str | int | None = None,
) -> list[dict[str, Any]]:
    """Run every job; one summary dict per request, in request order (see run_job)."""
    if not requests:
        return []
    n_workers = max(1, workers or min(len(requests), os.cpu_count() or 1))
    whole = resolve_budget(memory_budget)
    keys = [(r.jurisdiction, r.purpose.value) for r in requests]
    history = load_history(Path(root))
    estimates = estimate(keys, history, jurisdiction_sizes(Path(root)))
    # The budget is for the whole process tree: this process stays resident while the jobs
    # run (0.3 GiB at 10M, measured), so the jobs share what it leaves.
    own = _own_rss()
    budget = None if whole is None else max(0, whole - own)
    # Equal shares for jobs nothing is known about: the plain pool's behaviour.
    share = budget // n_workers if budget else 0
    need = [e.bytes if e.bytes is not None else share for e in estimates]
    # Largest first: big jobs start while small ones can still fill the other slots.
    pending = sorted(range(len(requests)), key=lambda i: (-need[i], i))
    log.info(
        "local_pool",
        workers=n_workers,
        budget_gib=_gib(whole),
        pool_process_gib=_gib(own),
        jobs_budget_gib=_gib(budget),
        estimates={
            f"{k[0]}/{k[1]}": [_gib(e.bytes), e.basis] for k, e in zip(keys, estimates, strict=True)
        },
    )
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold threads
    running: dict[int, _Running] = {}
    results: dict[int, dict[str, Any]] = {}
    started_at: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    last_wait: list[tuple[int, int] | None] = [None]

    def admit() -> None:
        picks: list[tuple[int, str, int]] = []  # (job, why, committed with it)
        while pending and len(running) + len(picks) < n_workers:
            committed = sum(r.estimate for r in running.values()) + sum(need[p] for p, *_ in picks)
            free = None if budget is None else budget - committed
            pick = next((i for i in pending if free is None or need[i] <= free), None)
            reason = "fits the budget"  # with the running jobs (listed) if any
            if pick is None and not running and not picks:
                # Larger than the whole budget: it waits until nothing else runs, then runs
                # alone (the budget bounds what runs together; it cannot shrink one job).
                pick = pending[0]
                reason = "larger than the budget: runs alone"
                log.warning(
                    "job_over_memory_budget",
                    job="/".join(keys[pick]),
                    estimate_gib=_gib(need[pick]),
                    budget_gib=_gib(budget),
                )
            if pick != pending[0]:
                # The largest job does not fit beside the running ones: it waits (a smaller
                # one may take the free worker meanwhile). Logged once per change.
                waiting = (pending[0], len(running) + len(picks))
                if waiting != last_wait[0]:
                    last_wait[0] = waiting
                    log.info(
                        "job_waiting_for_memory",
                        job="/".join(keys[pending[0]]),
                        estimate_gib=_gib(need[pending[0]]),
                        free_gib=_gib(free),
                        running=sorted(
                            "/".join(keys[i]) for i in [*running, *(p for p, *_ in picks)]
                        ),
                        instead=None if pick is None else "/".join(keys[pick]),
                    )
            if pick is None:
                break
            pending.remove(pick)
            picks.append((pick, reason, committed + need[pick]))
        together = len(running) + len(picks)
        for pick, reason, committed in picks:
            env = _thread_env(together)
            log.info(
                "job_admitted",
                job="/".join(keys[pick]),
                estimate_gib=_gib(need[pick]),
                basis=estimates[pick].basis,
                committed_gib=_gib(committed),
                budget_gib=_gib(budget),
                running=sorted("/".join(keys[i]) for i in running),
                threads=env.get(THREAD_VARS[0], "default"),
                reason=reason,
            )
            start(pick, env)

    def start(pick: int, env: dict[str, str]) -> None:
        parent, child = ctx.Pipe(duplex=False)
        r = requests[pick]
        args = (root, r.model_dump(mode="json"), regions[pick], refresh_fn)
        proc = ctx.Process(target=_child, args=(child, job, args), daemon=False)
        with _environment(env):  # a spawned child starts with this process's environment
            proc.start()
        child.close()
        started_at[pick] = time.monotonic()
        running[pick] = _Running(pick, proc, parent, need[pick])

    def finish(run: _Running, summary: dict[str, Any]) -> None:
        run.proc.join(10)
        run.conn.close()
        results[run.index] = summary
        del running[run.index]

    try:
        admit()
        while running:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready = wait(
                [r.conn for r in running.values()] + [r.proc.sentinel for r in running.values()],
                timeout=min(left, 5.0),
            )
            for run in list(running.values()):
                if run.conn in ready or run.conn.poll():
                    try:
                        summary = run.conn.recv()
                    except (EOFError, OSError):
                        summary = None
                    if summary is not None:
                        finish(run, summary)
                        continue
                if run.proc.sentinel in ready or not run.proc.is_alive():
                    run.proc.join(1)
                    code = run.proc.exitcode
                    why = (
                        f"worker process killed by signal {-code}"
                        + (" (out of memory?)" if code == -9 else "")
                        if code is not None and code < 0
                        else f"worker process exited with code {code} before reporting"
                    )
                    finish(run, _lost(why, time.monotonic() - started_at[run.index]))
            admit()
    finally:
        # Past the deadline (or on an error here): stop what still runs. A refresh is
        # crash-safe, so killing its process is the honest way to enforce the timeout.
        for run in list(running.values()):
            run.proc.kill()
            run.proc.join(10)  # reap, so nobody mistakes the dead for a live lock holder
            run.conn.close()
            results[run.index] = _lost(
                f"not finished within {timeout:g}s; stopped", timeout, ExitCode.INTERNAL
            )
        running.clear()
    for i in pending:
        results[i] = _lost(
            f"not started within {timeout:g}s (waiting for a worker or memory)", timeout
        )
    _remember(root, keys, estimates, results)
    return [results[i] for i in range(len(requests))]


def _lost(error: str, seconds: float, code: ExitCode = ExitCode.INTERNAL) -> dict[str, Any]:
    return {
        "manifest": None,
        "error": error,
        "worker": None,
        "seconds": seconds,
        "exit_code": int(code),
    }


def _remember(
    root: str,
    keys: list[tuple[str, str]],
    estimates: list[Estimate],
    results: dict[int, dict[str, Any]],
) -> None:
    measured = [
        (j, p, e.subjects, e.data_bytes, int(results[i]["peak_rss_bytes"]))
        for i, ((j, p), e) in enumerate(zip(keys, estimates, strict=True))
        if results.get(i, {}).get("peak_rss_bytes") and results[i].get("error") is None
    ]
    record_peaks(Path(root), measured)
    for j, p, _, _, peak in measured:
        log.info("job_memory", job=f"{j}/{p}", peak_gib=_gib(peak))
