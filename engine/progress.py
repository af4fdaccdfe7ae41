"""Progress of long work: one tiny typed hook the pipeline calls, and where events go.

The refresh calls ``hook(ProgressEvent)`` when a stage ends; it knows nothing about
terminals. ``progress_reporter`` decides: on a terminal a rich spinner line with elapsed
time and a line per finished stage (on stderr, so stdout stays clean for --json); off a
terminal a structured ``progress`` log event per stage; with --quiet nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("pgov.progress")


@dataclass(frozen=True)
class ProgressEvent:
    task: str  # what is running, e.g. "EU-DE/kyc_aml"
    stage: str  # the stage that just finished, e.g. "enforce"
    seconds: float  # how long that stage took


ProgressHook = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    del event


class _Terminal:
    """rich spinner with elapsed time; finished stages printed above it."""

    def __init__(self, console: Any, title: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.started = time.perf_counter()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(title, total=None)

    def __call__(self, event: ProgressEvent) -> None:
        elapsed = time.perf_counter() - self.started
        self.progress.console.print(
            f"  {event.task}  {event.stage:<10} {event.seconds:7.2f}s   (elapsed {elapsed:6.1f}s)",
            highlight=False,
        )
        self.progress.update(self.task, description=f"{event.task}: after {event.stage}")

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)


class _Log:
    def __init__(self, title: str) -> None:
        self.title = title
        self.started = time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        log.info(
            "progress",
            work=self.title,
            task=event.task,
            stage=event.stage,
            seconds=round(event.seconds, 3),
            elapsed=round(time.perf_counter() - self.started, 3),
        )

    def describe(self, text: str) -> None:
        log.info("progress", work=self.title, status=text)


@contextmanager
def progress_reporter(title: str, *, quiet: bool, console: Any = None) -> Iterator[Any]:
    """Yield a hook (callable with ``.describe(text)``) for the duration of the work."""
    if quiet:
        yield _Quiet()
        return
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if console.is_terminal:
        term = _Terminal(console, title)
        with term.progress:
            yield term
            elapsed = time.perf_counter() - term.started
        console.print(f"{title}: done in {elapsed:.1f}s", highlight=False)
        return
    hook = _Log(title)
    log.info("progress", work=title, status="started")
    yield hook
    log.info(
        "progress", work=title, status="done", elapsed=round(time.perf_counter() - hook.started, 3)
    )


class _Quiet:
    def __call__(self, event: ProgressEvent) -> None:
        del event

    def describe(self, text: str) -> None:
        del text


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()
