"""Work a refresh does beside enforcement: sealing and writing the quarantine of the rows
that broke their contracts, and counting the rows no jurisdiction's scan reads.

Neither reads anything enforcement changes (the quarantined rows are apart from the valid
ones; the unscoped count reads the source files), so both run on a thread of their own
while enforcement runs: on two cores that is a tenth of a second of wall time at 1M
customers (sealing the Parquet rows, the report, a scan of every file's jurisdiction
column). Their audit entries are written on the refresh's own thread once enforcement is
done, before anything else is recorded, so the log reads as it did when they ran first.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import structlog

from engine.refresh_events import RunEvents
from engine.sources import SourceFrames
from engine.workspace import Workspace

log = structlog.get_logger("engine.refresh")


def _quarantine_only(sources: SourceFrames) -> SourceFrames:
    """The sources with their quarantined rows and metadata but no valid rows: the thread
    must not keep alive the raw columns enforcement releases one by one."""
    return replace(
        sources,
        frames={n: replace(f, frame=f.frame.clear()) for n, f in sources.frames.items()},
    )


class SideWork:
    """The quarantine and the unscoped count of one run, started before enforcement."""

    def __init__(
        self, ws: Workspace, run_id: str, sources: SourceFrames, seal: Callable[[bytes], bytes]
    ) -> None:
        # Looked up at call time: the benchmarks time these functions where they live.
        from engine import quarantine
        from engine import sources as source_module

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgov-side")
        self._report: Future[dict[str, Any]] = pool.submit(
            quarantine.write_quarantine, ws, run_id, _quarantine_only(sources), seal
        )
        self._unscoped: Future[dict[str, int]] = pool.submit(source_module.unscoped_rows, ws)
        pool.shutdown(wait=False)
        # The thread holds its own view of the quarantined rows until they are sealed.
        sources.release_quarantine()

    def finish(self, events: RunEvents) -> tuple[dict[str, Any], dict[str, int]]:
        """Wait for both, then audit them: the quarantine report and the unscoped counts."""
        report = self._report.result()
        unscoped = self._unscoped.result()
        events.quarantine(report)
        return report, events.unscoped(unscoped)

    def finish_quietly(self, events: RunEvents) -> None:
        """After a failed enforcement: the quarantine is still written and audited, as it was
        when it ran first; a failure here yields to the one being raised."""
        try:
            self.finish(events)
        except Exception:
            log.exception("refresh_side_work_failed", run_id=events.run_id)
