"""The local pool: jurisdiction refreshes in worker processes on this machine, within memory.

Each job runs in a fresh spawned process that exits when the job ends, so the memory a
large jurisdiction's refresh held goes back to the system before the next job starts (an
allocator keeps freed pages for reuse; a long-lived worker would carry the largest job's
footprint into every later job). At most ``workers`` jobs run at once, and the running
jobs' memory reservations never exceed the budget (engine/executors/admission.py: a job
reserves the largest peak of the stages it has still to run, from the per-stage peaks an
earlier run measured; without them, its whole estimate, sized before any job runs by
engine/executors/sizing.py and memory.py). The largest job that fits goes first, small ones
fill the other workers beside it; when none fits in full, the next large job may start
*staged* beside jobs finishing their last stages: its child (engine/executors/child.py)
reports each stage's end over the pipe and waits there until the pool has the memory for
its next stage. When a job ends, the jobs still waiting without a figure of their own are
estimated again from it (``job_reestimated``): a new workspace's first fan-out is sized by
the default rate only until its first job has been measured. A job larger
than the whole budget waits until nothing runs, then runs alone. Every decision is logged
(``job_admitted`` with the memory committed, ``job_stage``, ``job_waiting_at_stage``,
``job_stage_granted``, ``job_waiting_for_memory``, ``job_over_memory_budget``,
``job_finished``), and every job's measured peak, whole and per stage, is recorded for the
next estimate. Jobs that start side by side in full share the cores (THREAD_VARS): two
Polars pools as wide as the machine on the same cores cost CPU (docs/performance.md, "Local
pool at 10M"); a job started staged keeps every core, since it runs its heavy stages after
the jobs before it have ended.

Scheduling changes when a job runs, never what it computes: each refresh reads only its own
jurisdiction's inputs and its own chain, so published digests do not depend on the order.

``timeout`` bounds each job from the start of the fan-out (waiting for a slot or for a
stage's memory counts), as for the other executors: a job still running then is killed (a
refresh is crash-safe: atomic publish, the lock is freed with the process), one not started
is reported so.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import structlog

from engine.errors import ExitCode
from engine.executors.admission import Ledger, Need, pick
from engine.executors.child import JobFn, run_child
from engine.executors.memory import (
    estimate,
    learn,
    load_history,
    remember_jobs,
    resolve_budget,
)
from engine.executors.sizing import jurisdiction_sizes
from engine.request import RefreshRequest

log = structlog.get_logger(__name__)

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
    sizes = jurisdiction_sizes(Path(root))
    estimates = estimate(keys, history, sizes)
    # The budget is for the whole process tree: this process stays resident while the jobs
    # run (0.3 GiB at 10M, measured), so the jobs share what it leaves.
    own = _own_rss()
    budget = None if whole is None else max(0, whole - own)
    # Equal shares for jobs nothing is known about: the plain pool's behaviour.
    share = budget // n_workers if budget else 0
    need = [e.bytes if e.bytes is not None else share for e in estimates]
    needs = [
        Need(n, e.stages if e.bytes is not None else None)
        for n, e in zip(need, estimates, strict=True)
    ]
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
        staged={
            f"{k[0]}/{k[1]}": [[st, _gib(b)] for st, b in n.stages]
            for k, n in zip(keys, needs, strict=True)
            if n.stages
        },
    )
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold threads
    ledger = Ledger(budget)
    running: dict[int, _Running] = {}
    results: dict[int, dict[str, Any]] = {}
    started_at: dict[int, float] = {}
    t0 = time.monotonic()
    deadline = t0 + timeout
    last_wait: list[tuple[int, int] | None] = [None]
    name = ["/".join(k) for k in keys]

    def admit() -> None:
        picks: list[tuple[int, str, int, bool]] = []  # (job, why, committed, staged)
        while pending and len(running) + len(picks) < n_workers:
            choice = pick(pending, needs, ledger)
            reason = "fits the budget"  # with the running jobs (listed) if any
            if choice is None and not ledger.slots:
                # Larger than the whole budget: it waits until nothing else runs, then runs
                # alone (the budget bounds what runs together; it cannot shrink one job).
                choice = (pending[0], False)
                reason = "larger than the budget: runs alone"
                log.warning(
                    "job_over_memory_budget",
                    job=name[pending[0]],
                    estimate_gib=_gib(need[pending[0]]),
                    budget_gib=_gib(budget),
                )
            elif choice is not None and choice[1]:
                reason = "staged: its first stage fits; later stages wait for memory"
            if choice is None or choice[0] != pending[0] or choice[1]:
                # The largest job does not fit in full beside the running ones: it waits (a
                # smaller one, or it staged, may start meanwhile). Logged once per change.
                waiting = (pending[0], len(ledger.slots))
                if waiting != last_wait[0]:
                    last_wait[0] = waiting
                    log.info(
                        "job_waiting_for_memory",
                        job=name[pending[0]],
                        estimate_gib=_gib(need[pending[0]]),
                        free_gib=None if budget is None else _gib(budget - ledger.committed()),
                        running=sorted(name[i] for i in ledger.slots),
                        instead=None
                        if choice is None
                        else name[choice[0]] + (" (staged)" if choice[1] else ""),
                    )
            if choice is None:
                break
            job_index, staged = choice
            pending.remove(job_index)
            ledger.start(job_index, needs[job_index], staged)
            picks.append((job_index, reason, ledger.committed(), staged))
        # A staged start waits beside the others rather than competing for the cores, so it
        # does not count towards their share.
        together = len(running) + sum(1 for *_, staged in picks if not staged)
        for job_index, reason, committed, staged in picks:
            # A staged job runs its heavy stages after the jobs before it end: every core.
            env = {} if staged else _thread_env(together)
            log.info(
                "job_admitted",
                job=name[job_index],
                estimate_gib=_gib(need[job_index]),
                basis=estimates[job_index].basis,
                staged=staged,
                reserved_gib=_gib(ledger.slots[job_index].reserved),
                committed_gib=_gib(committed),
                budget_gib=_gib(budget),
                running=sorted(name[i] for i in running),
                threads=env.get(THREAD_VARS[0], "default"),
                reason=reason,
                at_s=round(time.monotonic() - t0, 1),
            )
            start(job_index, env)

    def start(job_index: int, env: dict[str, str]) -> None:
        parent, child = ctx.Pipe(duplex=True)
        r = requests[job_index]
        args = (root, r.model_dump(mode="json"), regions[job_index], refresh_fn)
        proc = ctx.Process(target=run_child, args=(child, job, args), daemon=False)
        with _environment(env):  # a spawned child starts with this process's environment
            proc.start()
        child.close()
        started_at[job_index] = time.monotonic()
        running[job_index] = _Running(job_index, proc, parent, need[job_index])

    def go(run: _Running) -> None:
        with suppress(OSError):  # the child is gone: its sentinel says so
            run.conn.send(("go",))

    def stage_done(run: _Running, stage: str, window: int) -> None:
        ok = ledger.stage_done(run.index, stage)
        slot = ledger.slots[run.index]
        log.info(
            "job_stage" if ok else "job_waiting_at_stage",
            job=name[run.index],
            stage=stage,
            window_peak_gib=_gib(window),
            reserved_gib=_gib(slot.reserved),
            committed_gib=_gib(ledger.committed()),
            staged=not slot.full,
            at_s=round(time.monotonic() - t0, 1),
        )
        if ok:
            go(run)

    def settle() -> None:
        for i in ledger.settle():
            slot = ledger.slots[i]
            log.info(
                "job_stage_granted",
                job=name[i],
                after=slot.done,
                reserved_gib=_gib(slot.reserved),
                committed_gib=_gib(ledger.committed()),
                staged=not slot.full,
                at_s=round(time.monotonic() - t0, 1),
            )
            go(running[i])

    def finish(run: _Running, summary: dict[str, Any]) -> None:
        run.proc.join(10)
        run.conn.close()
        results[run.index] = summary
        del running[run.index]
        ledger.end(run.index)
        log.info(
            "job_finished",
            job=name[run.index],
            ok=summary.get("error") is None,
            seconds=round(time.monotonic() - started_at[run.index], 1),
            at_s=round(time.monotonic() - t0, 1),
        )
        relearn(run.index, summary)

    def relearn(i: int, summary: dict[str, Any]) -> None:
        """A job ended well: jobs still waiting without a figure of their own are estimated
        again from it (its rate, its stage windows), as the next fan-out would be."""
        peak = summary.get("peak_rss_bytes")
        if not peak or summary.get("error") is not None:
            return
        e = estimates[i]
        learn(history, *keys[i], e.subjects, e.data_bytes, int(peak), summary.get("stage_peaks"))
        for k in pending:
            if estimates[k].basis == "measured":
                continue
            [new] = estimate([keys[k]], history, sizes)
            if new.bytes is None:
                continue
            log.info(
                "job_reestimated",
                job=name[k],
                from_gib=_gib(need[k]),
                estimate_gib=_gib(new.bytes),
                basis=new.basis,
                staged=bool(new.stages),
                after=name[i],
                at_s=round(time.monotonic() - t0, 1),
            )
            estimates[k], need[k], needs[k] = new, new.bytes, Need(new.bytes, new.stages)
        pending.sort(key=lambda k: (-need[k], k))

    def receive(run: _Running) -> bool:
        """Read what the child sent; True once it has finished (summary received)."""
        while run.conn.poll():
            try:
                msg = run.conn.recv()
            except (EOFError, OSError):
                return False
            if isinstance(msg, tuple) and len(msg) == 3 and msg[0] == "stage":
                stage_done(run, str(msg[1]), int(msg[2]))
                continue
            if isinstance(msg, dict):
                finish(run, msg)
                return True
        return False

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
                if (run.conn in ready or run.conn.poll()) and receive(run):
                    continue
                if run.proc.sentinel in ready or not run.proc.is_alive():
                    if receive(run):  # reported, then exited before we read it
                        continue
                    run.proc.join(1)
                    code = run.proc.exitcode
                    why = (
                        f"worker process killed by signal {-code}"
                        + (" (out of memory?)" if code == -9 else "")
                        if code is not None and code < 0
                        else f"worker process exited with code {code} before reporting"
                    )
                    finish(run, _lost(why, time.monotonic() - started_at[run.index]))
            settle()
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
    remember_jobs(Path(root), keys, estimates, results)
    return [results[i] for i in range(len(requests))]


def _lost(error: str, seconds: float, code: ExitCode = ExitCode.INTERNAL) -> dict[str, Any]:
    return {
        "manifest": None,
        "error": error,
        "worker": None,
        "seconds": seconds,
        "exit_code": int(code),
    }
