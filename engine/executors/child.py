"""A local-pool worker process's side: it runs one job, measures its memory per refresh
stage window, waits at each stage's end for the pool's word, and reports.

The pool (engine/executors/local.py) spawns one such process per job and reads what it sends
over the pipe: ("stage", name, window peak bytes) at each stage's end, then the job's
summary with its whole peak and its windows.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from engine.executors.admission import TAIL

# (root, request as JSON, region, refresh_fn, progress hook) -> summary dict
# (engine.executor.run_job)
JobFn = Callable[[str, dict[str, Any], str, Any, Any], dict[str, Any]]


def _hwm_bytes() -> int:
    """This process's peak resident set since it started or since the last reset."""
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) * 1024 for x in fh if x.startswith("VmHWM"))


def _reset_hwm() -> bool:
    """Start a new peak window (Linux >= 4.0: writing 5 to clear_refs resets VmHWM, and with
    it ru_maxrss). False where that is not allowed: then no stage peaks are reported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Stages:
    """The child's progress hook: at the end of each refresh stage, the peak of the window
    that just closed goes to the pool, and the child waits for the pool's word to go on
    (the pool answers at once unless the next stage's memory is not free yet)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.peaks: list[tuple[str, int]] = []
        self.resettable = True

    def __call__(self, event: Any) -> None:
        self.window(str(event.stage))
        self.conn.send(("stage", str(event.stage), self.peaks[-1][1]))
        self.conn.recv()  # ("go",): blocks while the pool waits for memory

    def window(self, stage: str) -> None:
        try:
            peak = _hwm_bytes()
        except (OSError, StopIteration):
            peak, self.resettable = 0, False
        self.peaks.append((stage, peak))
        self.resettable = self.resettable and _reset_hwm()

    def measured(self) -> list[tuple[str, int]] | None:
        names = [n for n, _ in self.peaks]
        ok = self.resettable and len(set(names)) == len(names) and all(b > 0 for _, b in self.peaks)
        return list(self.peaks) if ok else None


def run_child(conn: Connection, job: JobFn, args: tuple[str, dict[str, Any], str, Any]) -> None:
    stages = Stages(conn)
    root, request, region, refresh_fn = args
    summary = job(root, request, region, refresh_fn, stages)
    stages.window(TAIL)
    # Linux reports ru_maxrss in KiB; each window's reset lowers it, so the job's peak is
    # the largest of the windows (this process ran only this job).
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    summary["peak_rss_bytes"] = max([own, *(b for _, b in stages.peaks)])
    summary["stage_peaks"] = stages.measured()
    conn.send(summary)
    conn.close()
